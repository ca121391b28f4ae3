"""gpt-oss golden cases (imported by generate.py).

Tiny seeded GptOssForCausalLM models: 4 layers alternating sliding and full
attention, 4 experts with 2 chosen per token, learned attention sinks, YaRN
rope as the released models configure it. HF's gpt-oss has no SDPA path, so
the HF-vs-HF noise figure compares its two expert implementations instead
(grouped_mm, the default, against the eager per-expert loop).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, GptOssConfig

# generate.py's module (its Case and helpers), set by `register`.
g = None

# The released models' rope (gpt-oss-20b / 120b config.json).
RELEASED_YARN = {
    "rope_type": "yarn",
    "rope_theta": 150000.0,
    "factor": 32.0,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "truncate": False,
    "original_max_position_embeddings": 4096,
}

NOISE_VARIANT = {"attn_implementation": "eager", "experts_implementation": "eager"}


def tiny_gptoss(**overrides) -> GptOssConfig:
    values = dict(
        vocab_size=160,
        hidden_size=32,
        intermediate_size=32,
        head_dim=16,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=4,
        num_local_experts=4,
        num_experts_per_tok=2,
        sliding_window=4,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_parameters=dict(RELEASED_YARN),
        swiglu_limit=7.0,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return GptOssConfig(**values)


def gptoss_case(name: str, seed: int, description: str, prompt_lengths: list[int], config: GptOssConfig, **extra):
    """A gpt-oss Case: the arch, and the expert-implementation noise variant, filled in."""
    return g.Case(
        name=name,
        arch="gpt_oss",
        noise_variant=NOISE_VARIANT,
        description=description,
        seed=seed,
        config=config,
        prompt_lengths=prompt_lengths,
        **extra,
    )


def _rebuilt(model, edit):
    """The same weights under an edited config."""
    config = GptOssConfig.from_dict(model.config.to_dict())
    edit(config)
    other = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32).eval()
    other.load_state_dict(model.state_dict())
    return other


def _feature_difference(label: str, edit):
    def describe(case, model, input_ids, attention_mask, logits):
        other_logits, _ = g.forward(_rebuilt(model, edit), input_ids, attention_mask)
        diff = g.masked_max_abs(logits, other_logits, attention_mask)
        if diff < 1e-3:
            raise RuntimeError(f"case {case.name}: {label} barely matters ({diff:.3g})")
        return (f"; {label} moves logits by up to {diff:.2g}", f"; {label}: max |dlogits| {diff:.3g}")

    return describe


def _window_off(config):
    config.layer_types = ["full_attention"] * config.num_hidden_layers


def _truncate_flipped(config):
    params = dict(config.rope_parameters)
    params["truncate"] = not params.get("truncate", True)
    config.rope_parameters = params


def case_gptoss_long_window() -> g.Case:
    return gptoss_case(
        name="gpt-oss-long-window",
        description=(
            "gpt-oss: 4 layers (sliding, full, sliding, full) with sliding_window 4 over 40 positions "
            "(query i sees keys i-4 < j <= i), learned sinks, 4 query / 2 kv heads, 4 experts top-2 "
            "with swiglu_limit 7, the released YaRN rope (factor 32, truncate false); greedy tokens "
            "from generate with HF's sliding-window cache"
        ),
        seed=9001,
        config=tiny_gptoss(),
        prompt_lengths=[40],
        describe_extra=_feature_difference("making every layer full attention", _window_off),
    )


def case_gptoss_truncate_true() -> g.Case:
    rope = dict(RELEASED_YARN, truncate=True)
    return gptoss_case(
        name="gpt-oss-yarn-truncate",
        description=(
            "gpt-oss with YaRN truncate true (the correction range rounded to whole dimensions), "
            "otherwise the released rope; swiglu_limit 0.5 and swiglu_alpha 1.5 so the clamp and gain "
            "bite; 24 positions, sliding_window 6"
        ),
        seed=9002,
        config=tiny_gptoss(rope_parameters=rope, swiglu_limit=0.5, swiglu_alpha=1.5, sliding_window=6),
        prompt_lengths=[24],
        describe_extra=_feature_difference("flipping truncate", _truncate_flipped),
    )


def case_gptoss_batch_leftpad() -> g.Case:
    return gptoss_case(
        name="gpt-oss-batch-leftpad",
        description=(
            "gpt-oss, batch of 2 with left padding (row 1 has 6 pad positions), pad_token_id 0, "
            "sliding_window 4, layer_types full, sliding, sliding, full; greedy tokens from batched "
            "generate with the mask"
        ),
        seed=9003,
        config=tiny_gptoss(
            pad_token_id=0,
            layer_types=["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
        ),
        prompt_lengths=[16, 10],
    )


# --------------------------------------------------------------------------
# MXFP4
# --------------------------------------------------------------------------

FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
MXFP4_GROUP = 32


def mxfp4_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[E, out, in] -> (blocks uint8 [E, out, in/32, 16], scales uint8 [E, out, in/32], exact dequantized values).

    Each group of 32 gets the power of two that brings its largest magnitude to at
    most 6 (the largest E2M1 value); each value then takes the nearest E2M1 code.
    """
    e, out, inp = w.shape
    groups = w.reshape(e, out, inp // MXFP4_GROUP, MXFP4_GROUP).double()
    peak = groups.abs().amax(dim=-1).clamp(min=1e-30)
    exponent = torch.ceil(torch.log2(peak / 6.0)).clamp(-127, 127)
    scaled = groups / torch.pow(2.0, exponent).unsqueeze(-1)
    codes = (scaled.unsqueeze(-1) - FP4_VALUES.double()).abs().argmin(dim=-1).to(torch.uint8)
    values = FP4_VALUES.double()[codes.long()] * torch.pow(2.0, exponent).unsqueeze(-1)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    scales = (exponent + 127).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous(), values.reshape(e, out, inp).float()


def snap_experts_to_mxfp4(model, seed: int) -> None:
    """Replace every expert matrix by its MXFP4 value, so the saved blocks hold it exactly."""
    with torch.no_grad():
        for layer in model.model.layers:
            experts = layer.mlp.experts
            for name in ("gate_up_proj", "down_proj"):
                param = getattr(experts, name)  # [E, in, out]
                _, _, values = mxfp4_quantize(param.transpose(1, 2))
                param.copy_(values.transpose(1, 2))


def write_mxfp4_checkpoint(case, model_dir: Path) -> None:
    """Rewrite the saved dense checkpoint the way the released gpt-oss files store experts."""
    path = model_dir / "model.safetensors"
    tensors = load_file(str(path))
    out = {}
    for name, tensor in tensors.items():
        proj = next((p for p in ("gate_up_proj", "down_proj") if name.endswith(f"experts.{p}")), None)
        if proj is None:
            out[name] = tensor
            continue
        blocks, scales, values = mxfp4_quantize(tensor.transpose(1, 2).contiguous())
        if not torch.equal(values.transpose(1, 2), tensor):
            raise RuntimeError(f"case {case.name}: {name} is not exactly MXFP4-representable")
        out[f"{name}_blocks"] = blocks
        out[f"{name}_scales"] = scales
    save_file(out, str(path), metadata={"format": "pt"})
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }
    g.write_json(config_path, config)


def case_gptoss_mxfp4() -> g.Case:
    return gptoss_case(
        name="gpt-oss-mxfp4",
        description=(
            "gpt-oss with MXFP4 experts stored as the released checkpoints store them "
            "(*_blocks uint8 [E, out, in/32, 16], *_scales uint8 e8m0 [E, out, in/32], "
            "quantization_config quant_method mxfp4); HF on CPU dequantizes them to float32 "
            "exactly (every MXFP4 value is an f32), which is the reference; 20 positions"
        ),
        seed=9004,
        config=tiny_gptoss(),
        prompt_lengths=[20],
        after_init=snap_experts_to_mxfp4,
        rewrite_checkpoint=write_mxfp4_checkpoint,
    )


def register(generate_module) -> dict:
    """The gpt-oss cases by name; `generate_module` supplies Case and the shared helpers."""
    global g
    g = generate_module
    return {
        "gpt-oss-long-window": case_gptoss_long_window,
        "gpt-oss-yarn-truncate": case_gptoss_truncate_true,
        "gpt-oss-batch-leftpad": case_gptoss_batch_leftpad,
        "gpt-oss-mxfp4": case_gptoss_mxfp4,
    }
