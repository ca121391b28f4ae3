#!/usr/bin/env python3
"""Build Forge's golden fixtures from Hugging Face transformers.

Each case is a tiny, seeded, float32 model built from a config. The script
saves the checkpoint as `save_pretrained` writes it, runs the reference
(eager attention) on a seeded prompt and writes:

    golden/<case>/model/               config.json, model.safetensors, generation_config.json
    golden/<case>/expected.safetensors input_ids, [attention_mask], logits,
                                       hidden_states.<i>, greedy_tokens
    golden/<case>/manifest.json        what made it and how to compare

Usage:
    python golden/generate.py [--case NAME ...] [--out golden] [--list]

Reruns on the same machine are byte-identical. To add a case, write a
function that returns a `Case` and list it in `CASES`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

import safetensors  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from generation_cases import case_gen_greedy_processors, case_gen_logits_processors  # noqa: E402
from beam_cases import case_gen_beam_search  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

MANIFEST_FORMAT = 1
DEFAULT_TOLERANCE = {"max_abs": 1e-4, "rel": 1e-5}
WEIGHT_STD = 0.1  # std of >=2-D parameters (HF's 0.02 hides rope and norm features)
VECTOR_NOISE = 0.1  # half-width of uniform noise added to 1-D parameters
FIRST_PROMPT_ID = 3  # prompts avoid ids 0..2 (pad / bos / eos in these configs)
# The greedy path must not hinge on a near tie: every step's top-1 logit must beat
# the runner-up by this much (f32 implementations differ by ~1e-6).
MIN_GREEDY_GAP = 1e-3


# --------------------------------------------------------------------------
# What a case is
# --------------------------------------------------------------------------


@dataclass
class Case:
    """One golden case: a config, a prompt, and how to write them down."""

    name: str
    arch: str
    description: str
    seed: int
    config: transformers.PretrainedConfig
    # Number of real tokens per row; rows shorter than the longest are left-padded.
    prompt_lengths: list[int]
    max_new_tokens: int = 8
    # "v5": config.json as transformers 5 writes it (`rope_parameters`).
    # "v4": `rope_theta` and `rope_scaling` at top level, as transformers 4 wrote it.
    config_style: str = "v5"
    checks: list[str] = field(default_factory=lambda: ["logits", "hidden_states", "greedy_tokens"])
    tolerance: dict = field(default_factory=lambda: dict(DEFAULT_TOLERANCE))
    check_tolerances: dict | None = None
    # Optional hook: (case, model, input_ids, attention_mask, logits) ->
    # (text appended to the description, text appended to the printed line).
    describe_extra: Callable | None = None
    # Optional hook: (model, seed) -> None, run after the seeded init (e.g. to set buffers).
    after_init: Callable | None = None
    # How the HF-vs-HF noise figure loads a second implementation of the same files.
    noise_variant: dict = field(default_factory=lambda: {"attn_implementation": "sdpa"})
    # Optional hook: (case, model_dir) -> None, run after saving (e.g. to quantize the files).
    rewrite_checkpoint: Callable | None = None


# --------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------


def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Normal(0, WEIGHT_STD) for matrices; uniform +-VECTOR_NOISE added to vectors.

    Norm weights start at 1.0 and biases at 0.0 in HF, so vectors end up
    around those values with noise that makes them matter.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():  # shared (tied) params appear once
            if param.dim() >= 2:
                values = torch.randn(param.shape, generator=gen, dtype=torch.float32) * WEIGHT_STD
                param.copy_(values)
            else:
                if name.endswith("bias"):
                    param.zero_()
                elif "norm" in name:
                    param.fill_(1.0)
                noise = (torch.rand(param.shape, generator=gen, dtype=torch.float32) * 2.0 - 1.0) * VECTOR_NOISE
                param.add_(noise)


def build_model(config, seed: int, attn_implementation: str = "eager") -> torch.nn.Module:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        config, attn_implementation=attn_implementation, dtype=torch.float32
    )
    init_weights(model, seed)
    return model.eval()


def make_prompt(case: Case) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Seeded random ids, left-padded with the config's pad id when rows differ in length."""
    gen = torch.Generator().manual_seed(case.seed + 1)
    width = max(case.prompt_lengths)
    batch = len(case.prompt_lengths)
    vocab = case.config.vocab_size
    ids = torch.randint(FIRST_PROMPT_ID, vocab, (batch, width), generator=gen, dtype=torch.int64)
    mask = torch.ones((batch, width), dtype=torch.int64)
    for row, length in enumerate(case.prompt_lengths):
        pad = width - length
        if pad:
            if case.config.pad_token_id is None:
                raise ValueError(f"case {case.name}: left padding needs pad_token_id in the config")
            ids[row, :pad] = case.config.pad_token_id
            mask[row, :pad] = 0
    needs_mask = any(length != width for length in case.prompt_lengths)
    return ids, (mask if needs_mask else None)


@torch.no_grad()
def forward(model, input_ids, attention_mask):
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=True,
        use_cache=False,
        return_dict=True,
    )
    return out.logits, list(out.hidden_states)


@torch.no_grad()
def greedy(model, input_ids, attention_mask, max_new_tokens: int) -> torch.Tensor:
    """HF generate, greedy, exactly `max_new_tokens` new tokens: EOS is switched off."""
    kwargs = dict(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens,
        eos_token_id=None,  # no stopping and no EOS suppression by min_new_tokens
        pad_token_id=model.config.pad_token_id,
        num_beams=1,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    out = model.generate(input_ids=input_ids, **kwargs)
    tokens = out[:, input_ids.shape[1]:].clone()
    if tokens.shape[1] != max_new_tokens:
        raise RuntimeError(f"generate gave {tokens.shape[1]} tokens, wanted {max_new_tokens}")
    return tokens


@torch.no_grad()
def greedy_by_hand(model, input_ids, attention_mask, max_new_tokens: int):
    """Argmax of full (uncached) forwards, one row at a time, without padding.

    Returns the tokens [B, N] and the smallest top-1/top-2 logit gap on the way,
    which says how fragile the greedy path is.
    """
    rows, min_gap = [], math.inf
    for row in range(input_ids.shape[0]):
        ids = input_ids[row]
        if attention_mask is not None:
            ids = ids[attention_mask[row].bool()]
        ids = ids.unsqueeze(0)
        new = []
        for _ in range(max_new_tokens):
            last = model(input_ids=ids, use_cache=False).logits[0, -1]
            top2 = torch.topk(last, 2).values
            min_gap = min(min_gap, float(top2[0] - top2[1]))
            token = int(torch.argmax(last))
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        rows.append(new)
    return torch.tensor(rows, dtype=torch.int64), min_gap


def masked_max_abs(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> float:
    diff = (a.double() - b.double()).abs()
    if mask is not None:
        diff = diff[mask.bool()]
    return float(diff.max())


def masked_rel(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> float:
    """||a - b|| / ||b|| over the positions where the mask is 1 (the harness's relative error)."""
    a, b = a.double(), b.double()
    if mask is not None:
        a, b = a[mask.bool()], b[mask.bool()]
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def rewrite_config_v4(config_path: Path) -> None:
    """Turn transformers 5's `rope_parameters` into transformers 4's top-level keys.

    Also spells the dtype `torch_dtype`, as transformers 4 did.
    """
    config = json.loads(config_path.read_text())
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    rope_type = rope.get("rope_type", "default")
    config["rope_scaling"] = None if rope_type == "default" else rope
    write_json(config_path, config)


def write_json(path: Path, value: dict, sort_keys: bool = True) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=sort_keys) + "\n")


def reference_versions() -> dict:
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
    }


# --------------------------------------------------------------------------
# Building one case
# --------------------------------------------------------------------------


def build_case(case: Case, out_root: Path) -> str:
    case_dir = out_root / case.name
    model_dir = case_dir / "model"
    if case_dir.exists():
        shutil.rmtree(case_dir)
    model_dir.mkdir(parents=True)

    model = build_model(case.config, case.seed)
    if case.after_init is not None:
        case.after_init(model, case.seed)
    input_ids, attention_mask = make_prompt(case)
    logits_mem, _ = forward(model, input_ids, attention_mask)

    model.save_pretrained(model_dir)
    if case.config_style == "v4":
        rewrite_config_v4(model_dir / "config.json")
    elif case.config_style != "v5":
        raise ValueError(f"case {case.name}: unknown config_style {case.config_style!r}")
    if case.rewrite_checkpoint is not None:
        case.rewrite_checkpoint(case, model_dir)

    # The fixture is what HF makes of the files on disk, so reload them.
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation="eager", dtype=torch.float32
    ).eval()
    logits, hidden = forward(model, input_ids, attention_mask)
    if not torch.equal(logits, logits_mem):
        raise RuntimeError(
            f"case {case.name}: reloaded model differs from the built one by "
            f"{masked_max_abs(logits, logits_mem, attention_mask):.3g}"
        )
    if len(hidden) != model.config.num_hidden_layers + 1:
        raise RuntimeError(f"case {case.name}: {len(hidden)} hidden states")
    # The convention the fixtures promise: the last hidden state is after the final norm,
    # so the output head alone maps it to the logits.
    with torch.no_grad():
        head_logits = model.get_output_embeddings()(hidden[-1])
        cap = getattr(model.config, "final_logit_softcapping", None)  # Gemma's final soft-cap
        if cap is not None:
            head_logits = torch.tanh(head_logits / cap) * cap
        scaling = getattr(model.config, "logits_scaling", None)  # Granite divides the logits
        if scaling is not None:
            head_logits = head_logits / scaling
    if masked_max_abs(head_logits, logits, attention_mask) > 1e-5:
        raise RuntimeError(f"case {case.name}: last hidden state is not the output head's input")
    for t in [logits, *hidden]:
        if not torch.isfinite(t).all():
            raise RuntimeError(f"case {case.name}: non-finite values in the reference outputs")

    tokens = greedy(model, input_ids, attention_mask, case.max_new_tokens)
    by_hand, min_gap = greedy_by_hand(model, input_ids, attention_mask, case.max_new_tokens)
    if not torch.equal(tokens, by_hand):
        raise RuntimeError(
            f"case {case.name}: generate {tokens.tolist()} != per-row argmax {by_hand.tolist()}"
        )
    if min_gap < MIN_GREEDY_GAP:
        raise RuntimeError(
            f"case {case.name}: greedy path has a near tie (gap {min_gap:.3g}); change the seed"
        )

    # HF-vs-HF noise: the same files through another implementation (SDPA attention by default).
    sdpa = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **case.noise_variant).eval()
    logits_sdpa, hidden_sdpa = forward(sdpa, input_ids, attention_mask)
    noise_logits = masked_max_abs(logits, logits_sdpa, attention_mask)
    noise_hidden = max(masked_max_abs(a, b, attention_mask) for a, b in zip(hidden, hidden_sdpa))
    noise_rel = max(
        masked_rel(a, b, attention_mask) for a, b in zip([logits, *hidden], [logits_sdpa, *hidden_sdpa])
    )

    description, extra = case.description, ""
    if case.describe_extra is not None:
        suffix, extra = case.describe_extra(case, model, input_ids, attention_mask, logits)
        description += suffix

    tensors = {"input_ids": input_ids.clone().contiguous()}
    if attention_mask is not None:
        tensors["attention_mask"] = attention_mask.clone().contiguous()
    tensors["logits"] = logits.clone().contiguous()
    for i, h in enumerate(hidden):
        tensors[f"hidden_states.{i}"] = h.clone().contiguous()
    tensors["greedy_tokens"] = tokens.clone().contiguous()
    save_file(tensors, str(case_dir / "expected.safetensors"))

    manifest = {
        "format": MANIFEST_FORMAT,
        "arch": case.arch,
        "case": case.name,
        "description": description,
        "reference": reference_versions(),
        "dtype": "float32",
        "seed": case.seed,
        "command": f"cargo xtask golden --case {case.name}",
        "checks": list(case.checks),
        "tolerance": dict(case.tolerance),
        "greedy": {"max_new_tokens": case.max_new_tokens},
    }
    if case.check_tolerances:
        manifest["check_tolerances"] = case.check_tolerances
    write_json(case_dir / "manifest.json", manifest, sort_keys=False)

    weights_kib = (model_dir / "model.safetensors").stat().st_size / 1024
    b, t = input_ids.shape
    return (
        f"{case.name}: B={b} T={t} V={logits.shape[-1]} H={hidden[0].shape[-1]} "
        f"layers={len(hidden) - 1} N={case.max_new_tokens} weights={weights_kib:.0f}KiB "
        f"|logits|max={float(logits.abs().max()):.2f} eager-vs-sdpa: logits {noise_logits:.2g} "
        f"hidden {noise_hidden:.2g} rel {noise_rel:.2g}; greedy gap {min_gap:.3g}{extra}"
    )


# --------------------------------------------------------------------------
# Llama cases
# --------------------------------------------------------------------------


def tiny_llama(**overrides) -> LlamaConfig:
    """A small llama config; overrides win. Extra rope keys go through `rope_parameters`."""
    values = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return LlamaConfig(**values)


def case_llama_gqa() -> Case:
    return Case(
        name="llama-gqa",
        arch="llama",
        description=(
            "llama with grouped-query attention (4 query heads, 2 kv heads), default rope, "
            "untied embeddings; config.json in transformers-4 style (rope_theta, rope_scaling: null)"
        ),
        seed=1001,
        config=tiny_llama(num_hidden_layers=3, vocab_size=128),
        prompt_lengths=[14],
        config_style="v4",
    )


def case_llama_bias_headdim_tied() -> Case:
    return Case(
        name="llama-bias-headdim-tied",
        arch="llama",
        description=(
            "llama with attention_bias and mlp_bias, explicit head_dim 32 with 4 heads "
            "(heads*head_dim=128 != hidden 64), 4 query / 2 kv heads, tied embeddings"
        ),
        seed=1002,
        config=tiny_llama(
            attention_bias=True,
            mlp_bias=True,
            head_dim=32,
            tie_word_embeddings=True,
        ),
        prompt_lengths=[13],
    )


def rope_scaling_off_difference(case, model, input_ids, attention_mask, logits) -> str:
    """Rebuild the same weights with plain rope: how much does llama3 scaling move logits?"""
    plain_config = LlamaConfig.from_dict(model.config.to_dict())
    plain_config.rope_parameters = {
        "rope_type": "default",
        "rope_theta": model.config.rope_parameters["rope_theta"],
    }
    plain = AutoModelForCausalLM.from_config(
        plain_config, attn_implementation="eager", dtype=torch.float32
    ).eval()
    plain.load_state_dict(model.state_dict())
    plain_logits, _ = forward(plain, input_ids, attention_mask)
    diff = masked_max_abs(logits, plain_logits, attention_mask)
    if diff < 1e-2:
        raise RuntimeError(f"case {case.name}: rope scaling barely matters ({diff:.3g})")
    return (
        f"; switching the scaling off moves logits by up to {diff:.2g}",
        f"; rope scaling off: max |dlogits| {diff:.3g}",
    )


def case_llama3_rope_long() -> Case:
    return Case(
        name="llama3-rope-long",
        arch="llama",
        description=(
            "llama with llama3 rope scaling (factor 8, low_freq_factor 1, high_freq_factor 4, "
            "original_max_position_embeddings 16, rope_theta 10000) over 64 positions, "
            "past the original context; config.json as transformers 5 writes it (rope_parameters)"
        ),
        seed=1003,
        config=tiny_llama(
            max_position_embeddings=512,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        prompt_lengths=[64],
        describe_extra=rope_scaling_off_difference,
    )


def case_llama_batch_leftpad() -> Case:
    return Case(
        name="llama-batch-leftpad",
        arch="llama",
        description=(
            "llama, batch of 2 with left padding (row 1 has 4 pad positions, attention_mask 0 there), "
            "pad_token_id 0; greedy tokens from batched generate with the mask"
        ),
        seed=1004,
        config=tiny_llama(pad_token_id=0),
        prompt_lengths=[12, 8],
    )


def case_llama_yarn() -> Case:
    return Case(
        name="llama-yarn",
        arch="llama",
        description=(
            "llama with yarn rope (factor 4, original_max_position_embeddings 16, "
            "beta_fast/beta_slow/truncate left to their defaults 32/1/true, attention factor "
            "from factor: 0.1*ln(4)+1) over 48 positions"
        ),
        seed=1005,
        config=tiny_llama(
            max_position_embeddings=64,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        prompt_lengths=[48],
        describe_extra=rope_scaling_off_difference,
    )


def case_llama_rope_linear() -> Case:
    return Case(
        name="llama-rope-linear",
        arch="llama",
        description=(
            "llama with linear rope scaling (positions divided by factor 4) over 32 positions; "
            "config.json in transformers-4 style (rope_theta, rope_scaling with rope_type linear)"
        ),
        seed=1006,
        config=tiny_llama(
            rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
        ),
        prompt_lengths=[32],
        config_style="v4",
        describe_extra=rope_scaling_off_difference,
    )


# --------------------------------------------------------------------------
# Mistral cases (served by the llama plugin: model_type "mistral" is an alias)
# --------------------------------------------------------------------------


def tiny_mistral(**overrides) -> MistralConfig:
    """A small mistral config, the same shapes as `tiny_llama`; overrides win.

    MistralConfig has no attention_bias / mlp_bias / pretraining_tp, so its
    config.json has none of those keys; it has `sliding_window` instead.
    """
    values = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        sliding_window=4096,
    )
    values.update(overrides)
    return MistralConfig(**values)


def sliding_window_off_difference(case, model, input_ids, attention_mask, logits) -> str:
    """Rebuild the same weights with `sliding_window` None: how much does the window move logits?"""
    full_config = MistralConfig.from_dict(model.config.to_dict())
    full_config.sliding_window = None
    full = AutoModelForCausalLM.from_config(
        full_config, attn_implementation="eager", dtype=torch.float32
    ).eval()
    full.load_state_dict(model.state_dict())
    full_logits, _ = forward(full, input_ids, attention_mask)
    diff = masked_max_abs(logits, full_logits, attention_mask)
    if diff < 1e-2:
        raise RuntimeError(f"case {case.name}: the sliding window barely matters ({diff:.3g})")
    return (
        f"; switching the window off (sliding_window null) moves logits by up to {diff:.2g}",
        f"; sliding window off: max |dlogits| {diff:.3g}",
    )


def case_mistral_sliding_window() -> Case:
    return Case(
        name="mistral-sliding-window",
        arch="llama",
        description=(
            "mistral (model_type mistral, MistralForCausalLM) with sliding_window 6 in every layer "
            "over 24 prompt positions: query i sees keys j with i-6 < j <= i (6 keys including "
            "itself); 4 query / 2 kv heads, head_dim 16, default rope, untied embeddings; greedy "
            "tokens from generate with HF's sliding-window KV cache; config.json has sliding_window "
            "but no layer_types, use_sliding_window or max_window_layers"
        ),
        seed=1007,
        config=tiny_mistral(sliding_window=6),
        prompt_lengths=[24],
        describe_extra=sliding_window_off_difference,
    )


# --------------------------------------------------------------------------
# Feature ablations: proof that a case's features show in its logits
# --------------------------------------------------------------------------


def with_config(**changes) -> Callable:
    """A variant maker: the same weights under the config with `changes` applied."""

    def make(model):
        values = model.config.to_dict()
        values.update(changes)
        config = type(model.config).from_dict(values)
        variant = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32).eval()
        missing, unexpected = variant.load_state_dict(model.state_dict(), strict=False)
        if missing:
            raise RuntimeError(f"config variant {changes} needs weights the model lacks: {missing}")
        return variant

    return make


def with_change(change: Callable) -> Callable:
    """A variant maker: a copy of the model that `change(model)` edits in place."""

    def make(model):
        variant = copy.deepcopy(model)
        with torch.no_grad():
            change(variant)
        return variant.eval()

    return make


def ablations(*variants: tuple[str, Callable], min_difference: float = 1e-2) -> Callable:
    """A `describe_extra` hook: for each (feature, variant maker), how far the
    logits move when the feature is switched off; refuses the case when one
    moves them by less than `min_difference` (the feature would go untested)."""

    def hook(case, model, input_ids, attention_mask, logits):
        described, printed = [], []
        for feature, make in variants:
            variant = make(model)
            variant_logits, _ = forward(variant, input_ids, attention_mask)
            diff = masked_max_abs(logits, variant_logits, attention_mask)
            if diff < min_difference:
                raise RuntimeError(f"case {case.name}: switching off {feature} barely matters ({diff:.3g})")
            described.append(f"{feature} off moves logits by up to {diff:.2g}")
            printed.append(f"{feature} off: {diff:.3g}")
        return "; " + "; ".join(described), "; ablations: " + ", ".join(printed)

    return hook


def generation_helpers() -> dict:
    """What golden/generation_cases.py borrows from this script."""
    return {"reference_versions": reference_versions, "build_model": build_model, "tiny_llama": tiny_llama}


import qwen2_cases  # noqa: E402  (cargo xtask add-arch)
import qwen3_cases  # noqa: E402  (cargo xtask add-arch)
import gemma2_cases  # noqa: E402  (cargo xtask add-arch)
import gemma3_text_cases  # noqa: E402  (cargo xtask add-arch)
import phi3_cases  # noqa: E402  (cargo xtask add-arch)
import olmo2_cases  # noqa: E402  (cargo xtask add-arch)
import granite_cases  # noqa: E402  (cargo xtask add-arch)
import smollm3_cases  # noqa: E402  (cargo xtask add-arch)
import mixtral_cases  # noqa: E402  (cargo xtask add-arch)
import qwen3_moe_cases  # noqa: E402  (cargo xtask add-arch)
import qwen2_moe_cases  # noqa: E402  (cargo xtask add-arch)
CASES: dict[str, Callable[[], Case]] = {
    "qwen2-moe-shared-expert": qwen2_moe_cases.case_qwen2_moe_shared_expert,
    "qwen2-moe-dense-first": qwen2_moe_cases.case_qwen2_moe_dense_first,
    "qwen3-moe-dense-layer-sliding": qwen3_moe_cases.case_qwen3_moe_dense_layer_sliding,
    "qwen3-moe-sparse-step": qwen3_moe_cases.case_qwen3_moe_sparse_step,
    "mixtral-top2-sliding": mixtral_cases.case_mixtral_top2_sliding,
    "mixtral-batch-leftpad": mixtral_cases.case_mixtral_batch_leftpad,
    "smollm3-nope-sliding": smollm3_cases.case_smollm3_nope_sliding,
    "granite-multipliers": granite_cases.case_granite_multipliers,
    "olmo2-qknorm-postnorm": olmo2_cases.case_olmo2_qknorm_postnorm,
    "phi3-longrope-long-prompt": phi3_cases.case_phi3_longrope_long_prompt,
    "phi3-longrope-switch-in-generation": phi3_cases.case_phi3_longrope_switch_in_generation,
    "phi3-longrope-v4-config": phi3_cases.case_phi3_longrope_v4_config,
    "gemma3-text-qknorm-rope-types": gemma3_text_cases.case_gemma3_text_qknorm_rope_types,
    "gemma3-text-v4-batch": gemma3_text_cases.case_gemma3_text_v4_batch,
    "gemma2-softcap-sliding": gemma2_cases.case_gemma2_softcap_sliding,
    "gemma2-batch-leftpad-v4": gemma2_cases.case_gemma2_batch_leftpad_v4,
    "qwen3-qknorm-yarn": qwen3_cases.case_qwen3_qknorm_yarn,
    "qwen3-rope-llama3-v4": qwen3_cases.case_qwen3_rope_llama3_v4,
    "qwen2-bias-sliding": qwen2_cases.case_qwen2_bias_sliding,
    "qwen2-batch-leftpad": qwen2_cases.case_qwen2_batch_leftpad,
    "llama-gqa": case_llama_gqa,
    "llama-bias-headdim-tied": case_llama_bias_headdim_tied,
    "llama3-rope-long": case_llama3_rope_long,
    "llama-batch-leftpad": case_llama_batch_leftpad,
    "llama-yarn": case_llama_yarn,
    "llama-rope-linear": case_llama_rope_linear,
    "mistral-sliding-window": case_mistral_sliding_window,
    "gen-logits-processors": lambda: case_gen_logits_processors(generation_helpers()),
    "gen-greedy-processors": lambda: case_gen_greedy_processors(generation_helpers()),
    "gen-beam-search": lambda: case_gen_beam_search(generation_helpers()),
}

# Cases over real checkpoints build themselves (`.build(out_root)`).
import smollm2_cases  # noqa: E402

CASES.update(smollm2_cases.cases())

from deepseek_v3_cases import DEEPSEEK_V3_CASES  # noqa: E402

CASES.update(DEEPSEEK_V3_CASES)

import gptoss_cases  # noqa: E402

CASES.update(gptoss_cases.register(sys.modules[__name__]))

import cache_cases  # noqa: E402

CASES.update(cache_cases.register(sys.modules[__name__]))

import speculative_cases  # noqa: E402

CASES.update(speculative_cases.cases(generation_helpers()))

from vision_cases import VISION_CASES  # noqa: E402  (cases with their own build())

CASES.update(VISION_CASES)

from llava_cases import LLAVA_CASES  # noqa: E402  (LLaVA and CLIP projection cases)

CASES.update(LLAVA_CASES)

import batch_cases  # noqa: E402  (batch_generate cases)

CASES.update(batch_cases.cases())

from qwen_vl_cases import QWEN_VL_CASES  # noqa: E402  (cases with their own build())

CASES.update(QWEN_VL_CASES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", metavar="NAME", help="case to build (repeatable); default: all")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent), help="output folder (default: golden/)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name in CASES:
            print(name)
        return 0
    names = args.case or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}")

    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    for name in names:
        case = CASES[name]()
        if case.name != name:
            raise RuntimeError(f"case function for {name} names itself {case.name}")
        line = case.build(out_root) if hasattr(case, "build") else build_case(case, out_root)
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
