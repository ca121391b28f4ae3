"""Gemma 3 (text) golden cases (imported by generate.py).

Tiny seeded Gemma3ForCausalLM models. Gemma 3 is Gemma 2's layer (four
x * (1 + w) RMSNorms, GeGLU, query_pre_attn_scalar, embeddings scaled by
sqrt(hidden_size)) plus a (1 + w) RMSNorm over head_dim on every query and
key head before rope, and a rope per layer type: `rope_parameters` keyed by
`sliding_attention` / `full_attention` in transformers 5, `rope_theta` +
`rope_scaling` (full layers) and `rope_local_base_freq` (sliding layers) in
transformers 4. HF 5.23's Gemma 3 keeps `attn_logit_softcapping` in its
config but never hands it to attention; the first case sets it to prove
Forge does the same.
"""

import json

import torch
from transformers import Gemma3TextConfig

SLIDING_ROPE = {"rope_type": "default", "rope_theta": 10000.0}
FULL_ROPE = {"rope_type": "linear", "factor": 4.0, "rope_theta": 200000.0}


def tiny_gemma3(**overrides) -> Gemma3TextConfig:
    values = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        query_pre_attn_scalar=24,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_parameters={"sliding_attention": dict(SLIDING_ROPE), "full_attention": dict(FULL_ROPE)},
        sliding_window=6,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    values.update(overrides)
    return Gemma3TextConfig(**values)


def no_qk_norm(model) -> None:
    for layer in model.model.layers:
        layer.self_attn.q_norm = torch.nn.Identity()
        layer.self_attn.k_norm = torch.nn.Identity()


def apply_attn_softcap(model) -> None:
    """What HF's Gemma 3 does not do: soft-cap the attention scores at attn_logit_softcapping."""
    for layer in model.model.layers:
        attn = layer.self_attn
        forward = attn.forward
        attn.forward = lambda *args, _f=forward, _c=attn.attn_logit_softcapping, **kw: _f(*args, softcap=_c, **kw)


def case_gemma3_text_qknorm_rope_types():
    from generate import Case, ablations, with_change, with_config

    types = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"]
    return Case(
        name="gemma3-text-qknorm-rope-types",
        arch="gemma3_text",
        description=(
            "gemma3_text, 4 layers (sliding, sliding, full, sliding) with sliding_window 6 over 24 "
            "positions, per-head (1+w) q/k RMSNorm over head_dim 32 (4 heads x 32 = 128 != hidden 64), "
            "4 query / 2 kv heads, query_pre_attn_scalar 24, rope per layer type (sliding: default, "
            "theta 10000; full: linear factor 4, theta 200000), tied embeddings; "
            "attn_logit_softcapping 1.0 is set and, as in HF 5.23's Gemma 3, not applied"
        ),
        seed=3001,
        config=tiny_gemma3(layer_types=types, attn_logit_softcapping=1.0),
        prompt_lengths=[24],
        describe_extra=ablations(
            ("the sliding window", with_config(layer_types=["full_attention"] * 4)),
            (
                "full-layer rope scaling",
                with_config(
                    rope_parameters={
                        "sliding_attention": dict(SLIDING_ROPE),
                        "full_attention": {"rope_type": "default", "rope_theta": 200000.0},
                    }
                ),
            ),
            (
                "a rope per layer type (sliding layers given the full layers' rope)",
                with_config(rope_parameters={"sliding_attention": dict(FULL_ROPE), "full_attention": dict(FULL_ROPE)}),
            ),
            ("q/k norms (replaced by identity)", with_change(no_qk_norm)),
            ("leaving attn_logit_softcapping unapplied (i.e. applying it)", with_change(apply_attn_softcap)),
        ),
    )


def rewrite_v4(case, model_dir) -> None:
    """config.json as transformers 4 wrote Gemma 3's: rope_theta and rope_scaling for the
    full layers, rope_local_base_freq for the sliding ones (default rope), and
    sliding_window_pattern instead of layer_types."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    config["torch_dtype"] = config.pop("dtype")
    rope = config.pop("rope_parameters")
    full, sliding = dict(rope["full_attention"]), dict(rope["sliding_attention"])
    if sliding.get("rope_type", "default") != "default" or set(sliding) - {"rope_type", "rope_theta"}:
        raise ValueError(f"case {case.name}: transformers 4 had only a theta for sliding layers: {sliding}")
    config["rope_local_base_freq"] = sliding["rope_theta"]
    config["rope_theta"] = full.pop("rope_theta")
    config["rope_scaling"] = None if full.get("rope_type", "default") == "default" else full
    pattern = case.config.sliding_window_pattern
    types = config.pop("layer_types")
    derived = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(len(types))]
    if types != derived:
        raise ValueError(f"case {case.name}: layer_types {types} do not follow sliding_window_pattern {pattern}")
    config["sliding_window_pattern"] = pattern
    config.pop("_sliding_window_pattern", None)  # transformers 5 writes its private copy; 4 did not
    config["cache_implementation"] = "hybrid"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def case_gemma3_text_v4_batch():
    from generate import Case, ablations, with_config

    return Case(
        name="gemma3-text-v4-batch",
        arch="gemma3_text",
        description=(
            "gemma3_text, config.json as transformers 4 wrote it: rope_theta 1000000 with rope_scaling "
            "linear factor 8 for the full layers, rope_local_base_freq 10000 for the sliding ones, "
            "sliding_window_pattern 2 instead of layer_types (sliding, full, sliding), sliding_window 4, "
            "final_logit_softcapping 4, untied lm_head, head_dim 16; batch of 2 with left padding "
            "(row 1 has 5 pad positions), pad_token_id 0; greedy tokens from batched generate"
        ),
        seed=3011,
        config=tiny_gemma3(
            num_hidden_layers=3,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            sliding_window_pattern=2,
            final_logit_softcapping=4.0,
            tie_word_embeddings=False,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
            },
        ),
        prompt_lengths=[14, 9],
        rewrite_checkpoint=rewrite_v4,
        describe_extra=ablations(
            ("the final soft-cap", with_config(final_logit_softcapping=None)),
            ("the sliding window", with_config(layer_types=["full_attention"] * 3)),
        ),
    )
