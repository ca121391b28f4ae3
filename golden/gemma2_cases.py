"""Gemma 2 golden cases (imported by generate.py).

Tiny seeded Gemma2ForCausalLM models. What Gemma 2 adds to a Llama-style
decoder: embeddings scaled by sqrt(hidden_size), every RMSNorm as
x * (1 + w), four norms per layer (around attention and around the MLP),
attention scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5,
tanh soft-capping of the attention logits and of the final logits, a
sliding window on alternate layers, and a GeGLU MLP (gelu, tanh form).

HF's Gemma 2 has no SDPA path (SDPA cannot soft-cap), so the HF-vs-HF noise
figure compares eager attention with HF's flex_attention path (which
soft-caps through a score modifier).
"""

import json

import torch
from transformers import Gemma2Config

NOISE_VARIANT = {"attn_implementation": "flex_attention"}


def tiny_gemma2(**overrides) -> Gemma2Config:
    values = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=32,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        sliding_window=4,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    values.update(overrides)
    return Gemma2Config(**values)


def fresh_flex() -> None:
    """Forget flex_attention's compiled kernels: a second case in the same run
    would otherwise recompile with dynamic shapes, which fails on the soft-cap."""
    torch._dynamo.reset()


def no_embed_scale(model) -> None:
    model.model.embed_tokens.embed_scale.fill_(1.0)


def zero_attention_biases(model) -> None:
    for layer in model.model.layers:
        a = layer.self_attn
        for proj in (a.q_proj, a.k_proj, a.v_proj, a.o_proj):
            proj.bias.zero_()


def rewrite_v4(case, model_dir) -> None:
    """config.json as transformers 4 wrote Gemma 2's (the released checkpoints):
    top-level rope_theta, no layer_types (HF derives sliding on even layers),
    plus keys HF never reads for inference (hidden_act, cache_implementation,
    sliding_window_size, torch_dtype)."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    config["torch_dtype"] = config.pop("dtype")
    rope = config.pop("rope_parameters")
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"case {case.name}: the v4 rewrite expects default rope")
    config["rope_theta"] = rope["rope_theta"]
    types = config.pop("layer_types")
    derived = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(len(types))]
    if types != derived:
        raise ValueError(f"case {case.name}: layer_types {types} are not HF's default, cannot drop them")
    config["hidden_act"] = config["hidden_activation"]
    config["cache_implementation"] = "hybrid"
    config["sliding_window_size"] = config["sliding_window"]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def case_gemma2_softcap_sliding():
    from generate import Case, ablations, with_change, with_config

    fresh_flex()
    return Case(
        name="gemma2-softcap-sliding",
        arch="gemma2",
        description=(
            "gemma2, 4 layers (sliding, full, sliding, full) with sliding_window 4 over 16 positions "
            "(query i sees keys i-4 < j <= i), attn_logit_softcapping 2, final_logit_softcapping 3, "
            "query_pre_attn_scalar 32 with head_dim 16 (scale 32^-0.5, not 16^-0.5), 4 query / 2 kv "
            "heads, embeddings scaled by sqrt(64), four (1+w) RMSNorms per layer, GeGLU "
            "(gelu_pytorch_tanh), tied embeddings, default rope"
        ),
        seed=2001,
        config=tiny_gemma2(),
        prompt_lengths=[16],
        noise_variant=NOISE_VARIANT,
        describe_extra=ablations(
            ("attention soft-cap", with_config(attn_logit_softcapping=None)),
            ("final soft-cap", with_config(final_logit_softcapping=None)),
            ("the sliding window", with_config(layer_types=["full_attention"] * 4)),
            ("query_pre_attn_scalar (16 = head_dim)", with_config(query_pre_attn_scalar=16)),
            ("the embedding scale", with_change(no_embed_scale)),
        ),
    )


def case_gemma2_batch_leftpad_v4():
    from generate import Case, ablations, with_change

    fresh_flex()
    return Case(
        name="gemma2-batch-leftpad-v4",
        arch="gemma2",
        description=(
            "gemma2, batch of 2 with left padding (row 1 has 4 pad positions), pad_token_id 0, "
            "3 layers with sliding_window 4, attention_bias on q/k/v/o, untied lm_head, head_dim 32 "
            "(4 heads x 32 = 128 != hidden 64), query_pre_attn_scalar 24, both soft-caps; config.json "
            "as transformers 4 wrote it (rope_theta at top level, no layer_types: sliding on even "
            "layers, hidden_act, cache_implementation and sliding_window_size present); greedy tokens "
            "from batched generate with the mask"
        ),
        seed=2011,
        config=tiny_gemma2(
            num_hidden_layers=3,
            head_dim=32,
            query_pre_attn_scalar=24,
            attention_bias=True,
            tie_word_embeddings=False,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=5.0,
        ),
        prompt_lengths=[12, 8],
        noise_variant=NOISE_VARIANT,
        rewrite_checkpoint=rewrite_v4,
        describe_extra=ablations(("attention biases", with_change(zero_attention_biases))),
    )
