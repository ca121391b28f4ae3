"""Golden cases for Forge's generation runtime, made by HF transformers.

Two kinds of case (manifest `kind`):

* `logits_processors`: seeded scores and token histories go through the
  logits processors and warpers HF's `generate()` builds from a
  GenerationConfig (`GenerationMixin._get_logits_processor`, so HF's order
  too); every item's output is saved. A few rules HF does not have
  (presence/frequency penalty, forced_decoder_ids) get a reference written
  here by hand and say so.
* `generate`: a tiny seeded llama and HF `generate()` (greedy) with
  processors switched on; the new tokens of each setting are saved, and
  whether generation ended on an EOS id ("stop") or at max_new_tokens
  ("length").

Each item's `config` uses HF GenerationConfig names (Forge's
`GenerationConfig` reads the same names); `logit_bias` is given to HF as
single-token `sequence_bias`. HF's generate() ignores `min_tokens_to_keep`
(it passes 1 to the warpers), so items with it build that warper directly.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, GenerationConfig
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    LogitsProcessorList,
    MinPLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)
from transformers.generation.utils import GenerationMixin

# Keys Forge's GenerationConfig has that HF's does not (or spells differently).
FORGE_ONLY = {"logit_bias", "presence_penalty", "frequency_penalty", "forced_decoder_ids", "stop_strings"}


def _tiny_llama(helpers: dict):
    """generate.py's tiny llama, smaller still: vocab 96, hidden 32; pad id 0."""
    return helpers["tiny_llama"](
        vocab_size=96, hidden_size=32, intermediate_size=64, max_position_embeddings=128, pad_token_id=0
    )


def hf_generation_config(config: dict, prompt_length: int) -> GenerationConfig:
    """HF's GenerationConfig for one of our item configs."""
    values = {k: v for k, v in config.items() if k not in FORGE_ONLY}
    if "logit_bias" in config:
        values["sequence_bias"] = [[[int(t)], float(b)] for t, b in config["logit_bias"].items()]
    temperature = values.get("temperature", 0.0)
    values["do_sample"] = temperature > 0
    if temperature == 0:
        values["temperature"] = None
    gc = GenerationConfig(**values)
    eos = config.get("eos_token_id")
    gc._eos_token_tensor = torch.tensor(eos) if eos else None
    gc.max_length = prompt_length + config.get("max_new_tokens", 256)
    return gc


def hf_generate(model, prompt, config: dict, prompt_length: int, attention_mask=None):
    """HF generate() with one of our item configs: pad id 0, no EOS ids unless
    the item gives some, scores returned."""
    gc = hf_generation_config(config, prompt_length)
    gc.pad_token_id = 0
    if not config.get("eos_token_id"):
        gc.eos_token_id = None
    with torch.no_grad():
        return model.generate(
            input_ids=prompt,
            attention_mask=attention_mask,
            generation_config=gc,
            return_dict_in_generate=True,
            output_scores=True,
        )


def hf_processors(model, config: dict, prompt_length: int):
    if "min_tokens_to_keep" in config:
        # HF's generate() passes 1 (2+ with beams) whatever the config says, so
        # build the one warper with the argument directly.
        return LogitsProcessorList([direct_warper(config)])
    gc = hf_generation_config(config, prompt_length)
    return GenerationMixin._get_logits_processor(
        model, generation_config=gc, input_ids_seq_length=prompt_length, device="cpu", model_kwargs={}
    )


def direct_warper(config: dict):
    keep = config["min_tokens_to_keep"]
    if "top_k" in config:
        return TopKLogitsWarper(config["top_k"], min_tokens_to_keep=keep)
    if "top_p" in config:
        return TopPLogitsWarper(config["top_p"], min_tokens_to_keep=keep)
    if "min_p" in config:
        return MinPLogitsWarper(config["min_p"], min_tokens_to_keep=keep)
    if "typical_p" in config:
        return TypicalLogitsWarper(config["typical_p"], min_tokens_to_keep=keep)
    if "epsilon_cutoff" in config:
        return EpsilonLogitsWarper(config["epsilon_cutoff"], min_tokens_to_keep=keep)
    raise ValueError(f"no warper with min_tokens_to_keep in {config}")


def by_hand_presence_frequency(config, input_ids, scores):
    out = scores.clone()
    for row in range(scores.shape[0]):
        counts = torch.bincount(input_ids[row], minlength=scores.shape[1]).to(scores.dtype)
        penalty = config.get("presence_penalty", 0.0) * (counts > 0).to(scores.dtype)
        penalty = penalty + config.get("frequency_penalty", 0.0) * counts
        out[row] = scores[row] - penalty
    return out


def by_hand_forced_decoder_ids(config, input_ids, scores, prompt_length):
    index = input_ids.shape[1] - prompt_length + 1
    forced = {int(i): int(t) for i, t in config["forced_decoder_ids"]}
    out = scores.clone()
    if index in forced:
        out.fill_(-math.inf)
        out[:, forced[index]] = 0.0
    return out


def write_manifest(case, case_dir: Path, kind: str, tolerance: dict, items: list, helpers: dict) -> None:
    manifest = {
        "format": 1,
        "kind": kind,
        "arch": "generation",
        "case": case.name,
        "description": case.description,
        "reference": helpers["reference_versions"](),
        "dtype": "float32",
        "seed": case.seed,
        "command": f"cargo xtask golden --case {case.name}",
        "checks": [kind],
        "tolerance": tolerance,
        "items": items,
    }
    (case_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# --------------------------------------------------------------------------
# logits_processors
# --------------------------------------------------------------------------


def processor_items(t: int) -> list[dict]:
    """(config, prompt_length, which input) for each item; T = t history tokens."""
    sample = {"temperature": 1.0}
    return [
        {"config": {"repetition_penalty": 1.3}, "prompt_length": t},
        {"config": {"repetition_penalty": 0.7}, "prompt_length": t},
        {"config": {"no_repeat_ngram_size": 2}, "prompt_length": t},
        {"config": {"no_repeat_ngram_size": 3}, "prompt_length": t},
        {"config": {"bad_words_ids": [[5], [4, 7], [2], [4, 4, 9]], "eos_token_id": [2]}, "prompt_length": t},
        {"config": {"logit_bias": {"3": 2.5, "10": -1.5, "11": -40.0}}, "prompt_length": t},
        {"config": {"min_new_tokens": 5, "eos_token_id": [2, 4]}, "prompt_length": t - 2},
        {"config": {"min_new_tokens": 2, "eos_token_id": [2, 4]}, "prompt_length": t - 3, "inactive": True},
        {"config": {"suppress_tokens": [0, 6, 11]}, "prompt_length": t},
        {"config": {"begin_suppress_tokens": [1, 9]}, "prompt_length": t},
        {"config": {"begin_suppress_tokens": [1, 9]}, "prompt_length": t - 1, "inactive": True},
        {"config": {"forced_eos_token_id": [2], "max_new_tokens": 3}, "prompt_length": t - 2},
        {"config": {"forced_bos_token_id": 1}, "prompt_length": 1, "input_ids": "input_ids_short"},
        {"config": {"temperature": 0.7}, "prompt_length": t},
        {"config": {**sample, "top_k": 5}, "prompt_length": t},
        {"config": {**sample, "top_k": 3, "min_tokens_to_keep": 5}, "prompt_length": t},
        {"config": {**sample, "top_p": 0.8}, "prompt_length": t},
        {"config": {**sample, "top_p": 0.3, "min_tokens_to_keep": 3}, "prompt_length": t},
        {"config": {**sample, "min_p": 0.1}, "prompt_length": t},
        {"config": {**sample, "min_p": 0.5, "min_tokens_to_keep": 2}, "prompt_length": t},
        {"config": {**sample, "typical_p": 0.9}, "prompt_length": t},
        {"config": {**sample, "typical_p": 0.4, "min_tokens_to_keep": 2}, "prompt_length": t},
        {"config": {**sample, "epsilon_cutoff": 0.02}, "prompt_length": t},
        {"config": {**sample, "epsilon_cutoff": 0.1, "min_tokens_to_keep": 3}, "prompt_length": t},
        {
            "config": {
                "repetition_penalty": 1.2,
                "no_repeat_ngram_size": 2,
                "logit_bias": {"5": 1.0},
                "suppress_tokens": [7],
                "temperature": 0.8,
                "top_k": 20,
                "top_p": 0.9,
                "min_p": 0.05,
            },
            "prompt_length": t,
        },
        {"config": {"presence_penalty": 0.5, "frequency_penalty": 0.3}, "prompt_length": t, "reference": "by hand"},
        {"config": {"forced_decoder_ids": [[1, 7], [3, 9]]}, "prompt_length": t - 2, "reference": "by hand"},
    ]


@dataclass
class ProcessorsCase:
    name: str
    description: str
    seed: int
    helpers: dict
    batch: int = 2
    vocab: int = 48
    history: int = 12

    def build(self, out_root: Path) -> str:
        helpers = self.helpers
        case_dir = out_root / self.name
        if case_dir.exists():
            shutil.rmtree(case_dir)
        case_dir.mkdir(parents=True)
        gen = torch.Generator().manual_seed(self.seed)
        scores = torch.randn((self.batch, self.vocab), generator=gen) * 2.5
        # A small alphabet, so repeats and n-gram matches happen.
        input_ids = torch.randint(3, 12, (self.batch, self.history), generator=gen)
        input_ids[0, -2:] = input_ids[0, 2:4]  # row 0: the last bigram occurred before
        input_ids[1, -2:] = torch.tensor([4, 4])  # row 1: ends with prefixes of bad words
        inputs = {"input_ids": input_ids, "input_ids_short": input_ids[:, :1].clone()}
        model = AutoModelForCausalLM.from_config(_tiny_llama(helpers), dtype=torch.float32).eval()

        tensors = {"scores": scores.clone(), **{k: v.clone() for k, v in inputs.items()}}
        items, notes = [], []
        for i, item in enumerate(processor_items(self.history)):
            config, prompt_length = item["config"], item["prompt_length"]
            ids = inputs[item.get("input_ids", "input_ids")]
            reference = item.get("reference", "hf")
            if reference == "hf":
                processors = hf_processors(model, config, prompt_length)
                if not processors:
                    raise RuntimeError(f"{self.name} item {i}: HF built no processor from {config}")
                out = processors(ids, scores.clone())
                # The same in float64 must remove the same tokens: no decision on a knife edge.
                out64 = hf_processors(model, config, prompt_length)(ids, scores.double())
                if not torch.equal(torch.isinf(out), torch.isinf(out64)):
                    raise RuntimeError(f"{self.name} item {i}: f32/f64 disagree on removed tokens; change the seed")
                names = [type(p).__name__ for p in processors]
            elif "forced_decoder_ids" in config:
                out = by_hand_forced_decoder_ids(config, ids, scores, prompt_length)
                names = ["by hand: forced_decoder_ids"]
            else:
                out = by_hand_presence_frequency(config, ids, scores)
                names = ["by hand: presence/frequency penalty"]
            if torch.equal(out, scores) != item.get("inactive", False):
                raise RuntimeError(f"{self.name} item {i}: {config} (inactive: {item.get('inactive', False)}) "
                                   "does not do what the item is for")
            tensors[f"out.{i}"] = out.clone().contiguous()
            removed = int(torch.isinf(out).sum()) - int(torch.isinf(scores).sum())
            items.append(
                {
                    "config": config,
                    "prompt_length": prompt_length,
                    "input_ids": item.get("input_ids", "input_ids"),
                    "output": f"out.{i}",
                    "reference": "HF " + " -> ".join(names) if reference == "hf" else names[0],
                }
            )
            notes.append(f"  {i}: {names} removed {removed}")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(case_dir / "expected.safetensors"))
        write_manifest(self, case_dir, "logits_processors", {"max_abs": 1e-6, "rel": 1e-6}, items, helpers)
        return f"{self.name}: {len(items)} items, B={self.batch} V={self.vocab} T={self.history}\n" + "\n".join(notes)


# --------------------------------------------------------------------------
# generate: greedy with processors against HF generate()
# --------------------------------------------------------------------------

MIN_GAP = 1e-3

# A chat template for the tiny tokenizer: roles in angle brackets.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_symbols(count: int) -> list[str]:
    """Byte-level symbols of the tiny tokenizer: letters, digits, `Ġ` (space),
    the two bytes of `é` (`Ã`, `©`), then punctuation; one token per byte."""
    symbols = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    symbols += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    symbols += [str(d) for d in range(10)]
    symbols += ["Ġ", "Ã", "©"] + list(".,!?:;-()[]{}<>=+*/#%&@^~|_$'\"`")
    if len(symbols) < count:
        raise ValueError(f"only {len(symbols)} symbols for a vocabulary of {count}")
    return symbols[:count]


def write_tokenizer(model_dir: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer (no merges: one token per byte) over the
    model's vocabulary, with `~` as EOS and a tiny chat template, made with
    HF tokenizers (text-level tests: streaming, stop strings, split UTF-8)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {s: i for i, s in enumerate(tiny_symbols(vocab_size))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(model_dir / "tokenizer.json"))
    config = {"eos_token": "~", "chat_template": TINY_CHAT_TEMPLATE}
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def new_tiny_llama_case(out_root: Path, name: str, seed: int, helpers: dict) -> tuple[Path, Path]:
    """A fresh case folder holding the seeded tiny llama in `model/`."""
    case_dir = out_root / name
    model_dir = case_dir / "model"
    if case_dir.exists():
        shutil.rmtree(case_dir)
    model_dir.mkdir(parents=True)
    helpers["build_model"](_tiny_llama(helpers), seed).save_pretrained(model_dir)
    return case_dir, model_dir


def _first_new_position(tokens: list[int], start: int) -> int:
    """The first position >= start whose token did not occur before it."""
    for k in range(start, len(tokens)):
        if tokens[k] not in tokens[:k]:
            return k
    raise RuntimeError(f"no fresh token after position {start} in {tokens}")


def _repeats_a_bigram(tokens: list[int]) -> bool:
    pairs = list(zip(tokens, tokens[1:]))
    return len(set(pairs)) < len(pairs)


def greedy_settings(prompt: list[int], plain: list[int], n: int) -> list[dict]:
    # No repeated bigram to break in the plain output: ban repeated tokens instead.
    ngram = 2 if _repeats_a_bigram(prompt + plain) else 1
    k = _first_new_position(plain, 3)
    j = _first_new_position(plain, 5)
    eos = plain[k]
    return [
        {"max_new_tokens": n},
        {"max_new_tokens": n, "eos_token_id": [eos]},
        {"max_new_tokens": n, "eos_token_id": [eos], "min_new_tokens": k + 3},
        {"max_new_tokens": n, "eos_token_id": [plain[j], eos]},
        {"max_new_tokens": n, "repetition_penalty": 1.5},
        {"max_new_tokens": n, "repetition_penalty": 0.8},
        {"max_new_tokens": n, "no_repeat_ngram_size": ngram},
        {"max_new_tokens": n, "bad_words_ids": [[plain[1]], [plain[2], plain[3]]]},
        {"max_new_tokens": n, "suppress_tokens": [plain[0], plain[4]]},
        {"max_new_tokens": n, "begin_suppress_tokens": [plain[0]]},
        {
            "max_new_tokens": n,
            "repetition_penalty": 1.3,
            "no_repeat_ngram_size": 3,
            "logit_bias": {str(plain[6]): 3.0},
            "eos_token_id": [plain[j]],
            "min_new_tokens": 2,
        },
    ]


@dataclass
class GreedyCase:
    name: str
    description: str
    seed: int
    helpers: dict
    prompt_length: int = 8
    max_new_tokens: int = 16

    def build(self, out_root: Path) -> str:
        helpers = self.helpers
        case_dir, model_dir = new_tiny_llama_case(out_root, self.name, self.seed, helpers)
        write_tokenizer(model_dir, _tiny_llama(helpers).vocab_size)
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
        gen = torch.Generator().manual_seed(self.seed + 1)
        prompt = torch.randint(3, model.config.vocab_size, (1, self.prompt_length), generator=gen)

        def run(config: dict) -> tuple[list[int], float]:
            out = hf_generate(model, prompt, config, self.prompt_length)
            gap = math.inf
            for step in out.scores:
                finite = step[0][torch.isfinite(step[0])]
                top2 = torch.topk(finite, 2).values
                gap = min(gap, float(top2[0] - top2[1]))
            return out.sequences[0, self.prompt_length :].tolist(), gap

        plain, _ = run({"max_new_tokens": self.max_new_tokens})
        tensors = {"input_ids": prompt.clone()}
        items, lines = [], []
        for i, config in enumerate(greedy_settings(prompt[0].tolist(), plain, self.max_new_tokens)):
            tokens, gap = run(config)
            if gap < MIN_GAP:
                raise RuntimeError(f"{self.name} setting {i}: near tie (gap {gap:.3g}); change the seed")
            eos = config.get("eos_token_id") or []
            finish = "stop" if tokens and tokens[-1] in eos else "length"
            if i > 0 and tokens == plain:
                raise RuntimeError(f"{self.name} setting {i}: {config} changes nothing; it proves nothing")
            tensors[f"tokens.{i}"] = torch.tensor([tokens], dtype=torch.int64)
            items.append({"config": config, "tokens": f"tokens.{i}", "finish_reason": finish})
            lines.append(f"  {i}: {config} -> {tokens} ({finish}, gap {gap:.3g})")
        save_file(tensors, str(case_dir / "expected.safetensors"))
        write_manifest(self, case_dir, "generate", {"max_abs": 1e-4, "rel": 1e-5}, items, helpers)
        kib = (model_dir / "model.safetensors").stat().st_size / 1024
        return f"{self.name}: prompt {prompt.tolist()} weights={kib:.0f}KiB plain {plain}\n" + "\n".join(lines)


def case_gen_logits_processors(helpers: dict) -> ProcessorsCase:
    return ProcessorsCase(
        name="gen-logits-processors",
        description=(
            "HF logits processors and warpers (GenerationMixin._get_logits_processor from a GenerationConfig) "
            "on seeded scores [2, 48] with a 12-token history: every processor and warper alone, a chain, "
            "and by-hand references for presence/frequency penalty and forced_decoder_ids"
        ),
        seed=2001,
        helpers=helpers,
    )


def case_gen_greedy_processors(helpers: dict) -> GreedyCase:
    return GreedyCase(
        name="gen-greedy-processors",
        description=(
            "HF generate() greedy on a tiny llama (vocab 96, 2 layers) with processors switched on: "
            "EOS ids, min_new_tokens, repetition penalty, no_repeat_ngram, bad words, suppress tokens, "
            "begin_suppress_tokens, logit bias; tokens and finish reasons"
        ),
        seed=2002,
        helpers=helpers,
    )
