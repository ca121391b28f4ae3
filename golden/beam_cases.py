"""Golden case for Forge's beam search, made by HF transformers.

Manifest `kind` `beam_search`: a tiny seeded llama and HF
`generate(num_beams=..., num_return_sequences=..., output_scores=True,
return_dict_in_generate=True)` under several settings (num_beams 2 to 4,
length_penalty 0.5 / 1.0 / 2.0 / -0.5, early_stopping True / False /
"never", several returned sequences, EOS ids some beams hit early, with
no_repeat_ngram_size, repetition_penalty or min_new_tokens on; pairs that
differ only in early_stopping and give different hypotheses), and a few
settings on a left-padded batch of two prompts (`prompts`,
`attention_mask`: each prompt's hypotheses in turn). For each
setting the returned hypotheses are saved best first: their new tokens
(`tokens.<i>.<j>`), HF's `sequences_scores` (`scores.<i>`) and the finish
reason ("stop" when the last token is an EOS id).

A setting is refused (change the seed) when the same search in float64
returns other sequences: no decision may sit on a knife edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from generation_cases import hf_generate, new_tiny_llama_case, write_manifest


# With the case's second EOS id, this token as a third makes early_stopping
# "never" and false end differently (found by trying the tokens of the plain
# search's beams; `build` checks the difference still holds).
EOS_THIRD = 32

# Three of the best first tokens after the case's prompt (from the settings'
# hypotheses), used together as EOS ids.
FIRST_TOKENS = [43, 77, 20]

# Pairs of settings that must give different hypotheses: early_stopping
# false against true, and false against "never".
CONTRASTS = [(8, 9), (10, 11), (12, 13)]


def beam_settings(eos_early: int, eos_other: int, n: int) -> list[dict]:
    """The settings; `eos_early` is a token some beams of the plain search
    produce after a few steps, `eos_other` another one."""
    three = {"max_new_tokens": n, "num_beams": 3, "num_return_sequences": 3}
    two = {"max_new_tokens": n, "num_beams": 2, "num_return_sequences": 2}
    return [
        {"max_new_tokens": n, "num_beams": 2},
        {"max_new_tokens": n, "num_beams": 4, "num_return_sequences": 4},
        {"max_new_tokens": n, "num_beams": 4, "num_return_sequences": 4, "eos_token_id": [eos_early]},
        {
            "max_new_tokens": n,
            "num_beams": 4,
            "num_return_sequences": 2,
            "eos_token_id": [eos_early],
            "length_penalty": 0.5,
            "early_stopping": True,
        },
        {
            "max_new_tokens": n,
            "num_beams": 4,
            "num_return_sequences": 3,
            "eos_token_id": [eos_early],
            "length_penalty": 2.0,
            "early_stopping": "never",
        },
        {
            "max_new_tokens": n,
            "num_beams": 3,
            "num_return_sequences": 3,
            "eos_token_id": [eos_other, eos_early],
            "length_penalty": -0.5,
            "early_stopping": "never",
        },
        {
            "max_new_tokens": n,
            "num_beams": 3,
            "num_return_sequences": 2,
            "eos_token_id": [eos_early],
            "early_stopping": True,
            "no_repeat_ngram_size": 2,
        },
        {
            "max_new_tokens": n,
            "num_beams": 2,
            "num_return_sequences": 2,
            "eos_token_id": [eos_early],
            "repetition_penalty": 1.3,
            "min_new_tokens": 3,
        },
        {**three, "eos_token_id": [eos_early]},
        {**three, "eos_token_id": [eos_early], "early_stopping": True},
        {**three, "eos_token_id": [eos_other, EOS_THIRD]},
        {**three, "eos_token_id": [eos_other, EOS_THIRD], "early_stopping": "never"},
        {**two, "eos_token_id": [eos_other], "length_penalty": 2.0},
        {**two, "eos_token_id": [eos_other], "length_penalty": 2.0, "early_stopping": "never"},
        # Most of the best first tokens are EOS ids: the search must keep
        # (1 + EOS ids) x num_beams candidates per step to have beams to go on.
        {**two, "eos_token_id": FIRST_TOKENS, "early_stopping": "never"},
    ]


def batch_settings(eos_early: int, eos_other: int, n: int) -> list[dict]:
    """Settings run on the left-padded batch of two prompts."""
    return [
        {"max_new_tokens": n, "num_beams": 3, "num_return_sequences": 2, "eos_token_id": [eos_early]},
        {
            "max_new_tokens": n,
            "num_beams": 2,
            "num_return_sequences": 2,
            "eos_token_id": [eos_other],
            "length_penalty": 2.0,
            "early_stopping": "never",
        },
        {
            "max_new_tokens": n,
            "num_beams": 4,
            "num_return_sequences": 3,
            "eos_token_id": [eos_early],
            "length_penalty": 0.5,
            "early_stopping": True,
        },
    ]


@dataclass
class BeamCase:
    name: str
    description: str
    seed: int
    helpers: dict
    prompt_length: int = 8
    max_new_tokens: int = 10

    def run(self, model, prompt, config: dict, mask=None) -> list[tuple[list[int], float]]:
        """(new tokens, sequence score) of each returned hypothesis, best
        first (prompt by prompt for a batch)."""
        width = prompt.shape[1]
        out = hf_generate(model, prompt, config, width, attention_mask=mask)
        lengths = (out.beam_indices >= 0).sum(dim=1).tolist()
        return [
            (out.sequences[j, width : width + n].tolist(), float(out.sequences_scores[j]))
            for j, n in enumerate(lengths)
        ]

    def pick_eos(self, model, prompt) -> tuple[int, int]:
        """Two tokens that, as the EOS id of a 4-beam search returning every
        beam, end some returned beams early; tokens that also leave some
        beams running to max length come first."""
        n = self.max_new_tokens
        mixed, early = [], []
        for token in range(3, model.config.vocab_size):
            config = {"max_new_tokens": n, "num_beams": 4, "num_return_sequences": 4, "eos_token_id": [token]}
            hyps = [t for t, _ in self.run(model, prompt, config)]
            stopped = [t for t in hyps if t[-1] == token]
            if any(len(t) < n - 1 for t in stopped):
                (mixed if len(stopped) < len(hyps) else early).append(token)
        picked = mixed + early
        if len(picked) < 2:
            raise RuntimeError(f"{self.name}: fewer than two early EOS candidates {picked}; change the seed")
        print(f"{self.name}: EOS candidates mixed {mixed}, all-stop {early}")
        return picked[0], picked[1]

    def build(self, out_root: Path) -> str:
        helpers = self.helpers
        case_dir, model_dir = new_tiny_llama_case(out_root, self.name, self.seed, helpers)
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
        model64 = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float64).eval()
        for m in (model, model64):
            # generate() fills settings left at HF's defaults from the model's
            # generation_config.json (its eos_token_id 2): items without EOS ids have none.
            m.generation_config.eos_token_id = None
        gen = torch.Generator().manual_seed(self.seed + 1)
        prompt = torch.randint(3, model.config.vocab_size, (1, self.prompt_length), generator=gen)

        n = self.max_new_tokens
        eos_early, eos_other = self.pick_eos(model, prompt)
        tensors = {"input_ids": prompt.clone()}
        items, lines = [], []
        for i, config in enumerate(beam_settings(eos_early, eos_other, n)):
            hyps = self.run(model, prompt, config)
            hyps64 = self.run(model64, prompt, config)
            if [t for t, _ in hyps] != [t for t, _ in hyps64]:
                raise RuntimeError(f"{self.name} setting {i}: f32 and f64 searches differ; change the seed")
            eos = config.get("eos_token_id") or []
            finish = ["stop" if t and t[-1] in eos else "length" for t, _ in hyps]
            if eos and "stop" not in finish and config.get("early_stopping", False) is False:
                raise RuntimeError(f"{self.name} setting {i}: no returned beam ends on EOS; pick another token")
            for j, (tokens, _) in enumerate(hyps):
                tensors[f"tokens.{i}.{j}"] = torch.tensor([tokens], dtype=torch.int64)
            tensors[f"scores.{i}"] = torch.tensor([s for _, s in hyps], dtype=torch.float32)
            items.append(
                {
                    "config": config,
                    "tokens": [f"tokens.{i}.{j}" for j in range(len(hyps))],
                    "scores": f"scores.{i}",
                    "finish_reasons": finish,
                }
            )
            lines.append(f"  {i}: {config} -> " + "; ".join(f"{t} {s:.4f} {f}" for (t, s), f in zip(hyps, finish)))
        # A left-padded batch: the prompt above and a shorter one.
        short = torch.randint(3, model.config.vocab_size, (1, self.prompt_length - 3), generator=gen)
        batch = torch.cat([prompt, torch.cat([torch.zeros((1, 3), dtype=prompt.dtype), short], dim=1)])
        mask = torch.ones_like(batch)
        mask[1, :3] = 0
        tensors["input_ids_batch"], tensors["attention_mask_batch"] = batch.clone(), mask.clone()
        for config in batch_settings(eos_early, eos_other, n):
            i = len(items)
            hyps = self.run(model, batch, config, mask)
            # f64 on padded rows is not usable (NaN spreads from the padding),
            # so each prompt alone in f64 must give its hypotheses.
            alone = [self.run(model64, p, config) for p in (prompt, short)]
            if [t for t, _ in hyps] != [t for run in alone for t, _ in run]:
                raise RuntimeError(f"{self.name} batch setting {i}: the batch and each prompt alone in f64 differ")
            eos = config["eos_token_id"]
            finish = ["stop" if t and t[-1] in eos else "length" for t, _ in hyps]
            for j, (tokens, _) in enumerate(hyps):
                tensors[f"tokens.{i}.{j}"] = torch.tensor([tokens], dtype=torch.int64)
            tensors[f"scores.{i}"] = torch.tensor([s for _, s in hyps], dtype=torch.float32)
            items.append(
                {
                    "config": config,
                    "prompts": "input_ids_batch",
                    "attention_mask": "attention_mask_batch",
                    "tokens": [f"tokens.{i}.{j}" for j in range(len(hyps))],
                    "scores": f"scores.{i}",
                    "finish_reasons": finish,
                }
            )
            lines.append(f"  {i} (batch): {config} -> " + "; ".join(f"{t} {s:.4f}" for t, s in hyps))
        for a, b in CONTRASTS:
            if tensors[f"scores.{a}"].shape == tensors[f"scores.{b}"].shape and all(
                torch.equal(tensors[f"tokens.{a}.{j}"], tensors[f"tokens.{b}.{j}"])
                for j in range(tensors[f"scores.{a}"].shape[0])
            ):
                raise RuntimeError(f"{self.name}: settings {a} and {b} give the same hypotheses; they prove nothing")
        save_file(tensors, str(case_dir / "expected.safetensors"))
        write_manifest(self, case_dir, "beam_search", {"max_abs": 1e-4, "rel": 1e-5}, items, helpers)
        kib = (model_dir / "model.safetensors").stat().st_size / 1024
        return f"{self.name}: prompt {prompt.tolist()} weights={kib:.0f}KiB eos {eos_early}/{eos_other}\n" + "\n".join(
            lines
        )


def case_gen_beam_search(helpers: dict) -> BeamCase:
    return BeamCase(
        name="gen-beam-search",
        description=(
            "HF generate(num_beams=...) on a tiny llama (vocab 96, 2 layers): num_beams 2-4, length_penalty "
            "0.5/1/2/-0.5, early_stopping True/False/never, num_return_sequences up to 4, EOS ids some beams hit "
            "early, no_repeat_ngram_size, repetition_penalty, min_new_tokens, early_stopping pairs that differ; "
            "sequences, sequences_scores, finish reasons"
        ),
        seed=2005,
        helpers=helpers,
    )
