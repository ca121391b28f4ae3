"""Golden cases for Forge's KV caches, made by HF transformers.

`cache-sliding-generate` (manifest `kind` `cache_generate`): a tiny
mistral-style model whose every layer attends within a sliding window, and
HF `generate()` (greedy, eager attention, HF's own sliding-window cache)
running well past the window. The new tokens and every step's logits are
saved; Forge generates with its rotating caches (one per layer, the window's
size) and each item's prefill chunk size, and must give the same tokens and
the same per-step log-probabilities (log-softmax of HF's logits).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

g = None  # generate.py, given to register()


@dataclass
class SlidingGenerateCase:
    name: str
    description: str
    seed: int
    window: int = 5
    prompt_length: int = 13
    max_new_tokens: int = 27
    # Forge's prefill chunk sizes: several chunks inside the window, a chunk
    # longer than the window, and the whole prompt at once.
    chunks: tuple = (3, 7, 13)

    def config(self):
        return g.tiny_mistral(
            vocab_size=96, hidden_size=32, intermediate_size=64, head_dim=8, sliding_window=self.window
        )

    def generate(self, model, prompt):
        n = self.max_new_tokens
        with torch.no_grad():
            out = model.generate(
                input_ids=prompt,
                do_sample=False,
                max_new_tokens=n,
                min_new_tokens=n,
                eos_token_id=None,
                pad_token_id=0,
                temperature=None,
                top_p=None,
                top_k=None,
                return_dict_in_generate=True,
                output_logits=True,
            )
        tokens = out.sequences[:, prompt.shape[1] :].clone()
        logits = torch.stack(out.logits, dim=1).clone()
        return tokens, logits

    def build(self, out_root: Path) -> str:
        case_dir = out_root / self.name
        model_dir = case_dir / "model"
        if case_dir.exists():
            shutil.rmtree(case_dir)
        model_dir.mkdir(parents=True)
        g.build_model(self.config(), self.seed).save_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
        gen = torch.Generator().manual_seed(self.seed + 1)
        prompt = torch.randint(g.FIRST_PROMPT_ID, model.config.vocab_size, (1, self.prompt_length), generator=gen)
        tokens, logits = self.generate(model, prompt)

        # HF's cached generation against uncached forwards of the whole
        # sequence (the sliding mask alone): the reference agrees with itself.
        full = torch.cat([prompt, tokens], dim=1)
        with torch.no_grad():
            uncached = model(input_ids=full, use_cache=False).logits[:, self.prompt_length - 1 : -1]
        self_diff = float((uncached - logits).abs().max())
        if self_diff > 1e-4:
            raise RuntimeError(f"{self.name}: HF cached vs uncached logits differ by {self_diff:.3g}")
        top2 = torch.topk(logits[0], 2, dim=-1).values
        gap = float((top2[:, 0] - top2[:, 1]).min())
        if gap < g.MIN_GREEDY_GAP:
            raise RuntimeError(f"{self.name}: greedy path has a near tie (gap {gap:.3g}); change the seed")

        # The window must matter beyond it: the same weights with full attention differ.
        full_config = type(model.config).from_dict(model.config.to_dict())
        full_config.sliding_window = None
        no_window = AutoModelForCausalLM.from_config(full_config, attn_implementation="eager", dtype=torch.float32)
        no_window.load_state_dict(model.state_dict())
        no_window.eval()
        _, logits_full = self.generate(no_window, prompt)
        window_effect = float((logits_full - logits).abs().max())
        if window_effect < 1e-2:
            raise RuntimeError(f"{self.name}: the window barely matters ({window_effect:.3g})")

        save_file(
            {"input_ids": prompt.clone(), "tokens": tokens, "logits": logits.contiguous()},
            str(case_dir / "expected.safetensors"),
        )
        items = [
            {"config": {"max_new_tokens": self.max_new_tokens, "prefill_step_size": c}, "tokens": "tokens", "logits": "logits"}
            for c in self.chunks
        ]
        manifest = {
            "format": 1,
            "kind": "cache_generate",
            "arch": "generation",
            "case": self.name,
            "description": self.description,
            "reference": g.reference_versions(),
            "dtype": "float32",
            "seed": self.seed,
            "command": f"cargo xtask golden --case {self.name}",
            "checks": ["cache_generate"],
            "tolerance": dict(g.DEFAULT_TOLERANCE),
            "items": items,
        }
        (case_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        kib = (model_dir / "model.safetensors").stat().st_size / 1024
        return (
            f"{self.name}: prompt {prompt.tolist()} tokens {tokens.tolist()} weights={kib:.0f}KiB; "
            f"HF cached vs uncached {self_diff:.2g}; window off moves logits by {window_effect:.3g}; "
            f"greedy gap {gap:.3g}"
        )


def case_cache_sliding_generate() -> SlidingGenerateCase:
    return SlidingGenerateCase(
        name="cache-sliding-generate",
        description=(
            "mistral-style tiny model (vocab 96, hidden 32, 2 layers, 4 query / 2 kv heads, head_dim 8) with "
            "sliding_window 5 in every layer; HF generate() greedy, 27 new tokens after a 13-token prompt "
            "(40 positions, 8 windows), eager attention and HF's sliding-window cache; per-step logits and "
            "tokens. Forge runs its rotating caches with prefill chunks of 3, 7 and 13"
        ),
        seed=3002,
    )


def register(generate_module) -> dict:
    """The cache cases by name; `generate_module` supplies the shared helpers."""
    global g
    g = generate_module
    return {"cache-sliding-generate": case_cache_sliding_generate}
