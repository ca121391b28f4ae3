"""Golden cases for Forge's batch_generate, made by HF transformers.

Manifest `kind` "batch_generate": a tiny seeded causal LM (llama, gpt-oss,
deepseek-v3), a batch of prompts of very different lengths left-padded with
pad id 0, and for each item (a generation config with HF names) what HF
`generate()` gives on the whole padded batch with its attention_mask:
each row's new tokens (up to and including its EOS, which stops that row
while the others go on), its finish reason, and its raw logits at every
step (`output_logits`). The builder refuses near ties (top-2 gap below
MIN_GAP on any row's step) and checks that HF's batched tokens equal HF's
single-prompt tokens, row by row.

Forge runs each item through `BatchGenerator` on the unpadded prompts and
must give the same tokens and finish reasons exactly and the same logits
within the tolerance; it also checks its batched rows against its own
single-prompt generation.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

MIN_GAP = 1e-3
MAX_NEW_TOKENS = 10
# Forge-only keys, left out of HF's GenerationConfig.
FORGE_ONLY = {"prefill_step_size"}


def _g():
    """generate.py's module (run as a script it is __main__)."""
    return sys.modules.get("generate") or sys.modules["__main__"]


@dataclass
class BatchCase:
    name: str
    description: str
    seed: int
    config: Callable[[], object]
    prompt_lengths: tuple[int, ...] = (3, 17, 8, 1)

    def prompts(self, vocab: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + 1)
        first = _g().FIRST_PROMPT_ID
        return [torch.randint(first, vocab, (n,), generator=gen).tolist() for n in self.prompt_lengths]

    def build(self, out_root: Path) -> str:
        g = _g()
        case_dir = out_root / self.name
        model_dir = case_dir / "model"
        if case_dir.exists():
            shutil.rmtree(case_dir)
        model_dir.mkdir(parents=True)
        g.build_model(self.config(), self.seed).save_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
        model = model.eval()
        prompts = self.prompts(model.config.vocab_size)
        input_ids, attention_mask = left_pad(prompts)
        plain = batched(model, input_ids, attention_mask, {"max_new_tokens": MAX_NEW_TOKENS})
        items_configs = item_configs([row[0] for row in plain])
        tensors = {"input_ids": input_ids, "attention_mask": attention_mask}
        items, lines = [], []
        for i, config in enumerate(items_configs):
            rows = batched(model, input_ids, attention_mask, config)
            check_single(model, prompts, config, rows, f"{self.name} item {i}")
            entry = {"config": config, "tokens": [], "logits": [], "finish_reasons": []}
            for r, (tokens, logits, finish, gap) in enumerate(rows):
                if gap < MIN_GAP:
                    raise RuntimeError(f"{self.name} item {i} row {r}: near tie (gap {gap:.3g}); change the seed")
                tensors[f"tokens.{i}.{r}"] = torch.tensor([tokens], dtype=torch.int64)
                tensors[f"logits.{i}.{r}"] = logits.contiguous()
                entry["tokens"].append(f"tokens.{i}.{r}")
                entry["logits"].append(f"logits.{i}.{r}")
                entry["finish_reasons"].append(finish)
            items.append(entry)
            lines.append(f"  {i}: {config} -> {[(r[0], r[2]) for r in rows]}")
        if "stop" not in items[1]["finish_reasons"]:
            raise RuntimeError(f"{self.name}: no row stops early; the EOS item proves nothing")
        save_file(tensors, str(case_dir / "expected.safetensors"))
        write_manifest(self, case_dir, items)
        kib = sum(f.stat().st_size for f in case_dir.rglob("*") if f.is_file()) / 1024
        return f"{self.name}: prompts {prompts} ({kib:.0f}KiB)\n" + "\n".join(lines)


def left_pad(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.int64)
    mask = torch.zeros((len(prompts), width), dtype=torch.int64)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p)
        mask[r, width - len(p) :] = 1
    return ids, mask


def item_configs(plain: list[list[int]]) -> list[dict]:
    """Plain greedy; an EOS that ends one row early (the others go on), with
    chunked prefill; a repetition penalty (each row its own history)."""
    eos = early_eos(plain)
    n = MAX_NEW_TOKENS
    return [
        {"max_new_tokens": n},
        {"max_new_tokens": n, "eos_token_id": [eos], "prefill_step_size": 4},
        {"max_new_tokens": n, "eos_token_id": [eos], "repetition_penalty": 1.5},
    ]


def early_eos(plain: list[list[int]]) -> int:
    """A token some row makes at step 1..3 (new in that row) that no other row makes."""
    for r, tokens in enumerate(plain):
        for k in range(1, 4):
            t = tokens[k]
            others = [x for s, row in enumerate(plain) if s != r for x in row]
            if t not in tokens[:k] and t not in others:
                return t
    raise RuntimeError(f"no token ends exactly one row early in {plain}")


def hf_config(config: dict) -> dict:
    values = {k: v for k, v in config.items() if k not in FORGE_ONLY}
    eos = values.pop("eos_token_id", None)
    return dict(values, eos_token_id=eos, do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None)


@torch.no_grad()
def batched(model, input_ids, attention_mask, config: dict) -> list[tuple[list[int], torch.Tensor, str, float]]:
    """HF generate on the padded batch: per row (tokens, logits [n, V], finish reason, smallest top-2 gap)."""
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_logits=True,
        output_scores=True,
        **hf_config(config),
    )
    eos = config.get("eos_token_id") or []
    width = input_ids.shape[1]
    rows = []
    for r in range(input_ids.shape[0]):
        tokens = []
        for t in out.sequences[r, width:].tolist():
            tokens.append(t)
            if t in eos:
                break
        finish = "stop" if tokens[-1] in eos else "length"
        logits = torch.stack([out.logits[s][r] for s in range(len(tokens))])
        gap = math.inf
        for s in range(len(tokens)):
            top2 = torch.topk(out.scores[s][r], 2).values
            gap = min(gap, float(top2[0] - top2[1]))
        rows.append((tokens, logits, finish, gap))
    return rows


@torch.no_grad()
def check_single(model, prompts, config, rows, what: str) -> None:
    """HF's batched tokens must equal HF on each prompt alone."""
    for r, prompt in enumerate(prompts):
        ids = torch.tensor([prompt])
        alone = batched(model, ids, torch.ones_like(ids), config)[0][0]
        if alone != rows[r][0]:
            raise RuntimeError(f"{what} row {r}: batched {rows[r][0]} != alone {alone}")


def write_manifest(case: BatchCase, case_dir: Path, items: list) -> None:
    manifest = {
        "format": 1,
        "kind": "batch_generate",
        "arch": "generation",
        "case": case.name,
        "description": case.description,
        "reference": _g().reference_versions(),
        "dtype": "float32",
        "seed": case.seed,
        "command": f"cargo xtask golden --case {case.name}",
        "checks": ["batch_generate"],
        "tolerance": {"max_abs": 1e-4, "rel": 1e-5},
        "items": items,
    }
    (case_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _llama():
    return _g().tiny_llama(vocab_size=96, hidden_size=32, intermediate_size=64, max_position_embeddings=128, pad_token_id=0)


def _gptoss():
    import gptoss_cases

    return gptoss_cases.tiny_gptoss(
        vocab_size=96,
        pad_token_id=0,
        layer_types=["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
    )


def _deepseek():
    from deepseek_v3_cases import tiny_deepseek_v3

    return tiny_deepseek_v3(vocab_size=96, pad_token_id=0)


DESCRIPTION = (
    "batch_generate on a tiny {arch}: 4 prompts of 3, 17, 8 and 1 tokens left-padded (pad id 0) into one "
    "batch; HF generate() greedy on the padded batch with its attention_mask: plain, an EOS that ends one "
    "row early while the others go on (Forge prefills in chunks of 4), and repetition_penalty 1.5 (each "
    "row its own history); per row the new tokens, finish reason and raw logits of every step"
)


def cases() -> dict:
    specs = [
        ("gen-batch-llama", "llama", 3101, _llama),
        ("gen-batch-gpt-oss", "gpt-oss (sliding window 4, sinks, YaRN)", 3102, _gptoss),
        ("gen-batch-deepseek-v3", "deepseek-v3 (MLA, grouped MoE routing)", 3103, _deepseek),
    ]
    return {
        name: (lambda name=name, arch=arch, seed=seed, config=config: BatchCase(
            name=name, description=DESCRIPTION.format(arch=arch), seed=seed, config=config
        ))
        for name, arch, seed, config in specs
    }
