"""Qwen3 golden cases (imported by generate.py).

Tiny seeded Qwen3ForCausalLM models. What Qwen3 adds to Qwen2: an
RMSNorm over head_dim on every query and key head before rope, an
explicit head_dim (here heads x head_dim != hidden), `attention_bias` on
all four projections, and (like every family) the shared rope variants.
"""

import torch
from transformers import Qwen3Config


def tiny_qwen3(**overrides) -> Qwen3Config:
    values = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        attention_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return Qwen3Config(**values)


def no_qk_norm(model) -> None:
    for layer in model.model.layers:
        layer.self_attn.q_norm = torch.nn.Identity()
        layer.self_attn.k_norm = torch.nn.Identity()


def zero_attention_biases(model) -> None:
    for layer in model.model.layers:
        a = layer.self_attn
        for proj in (a.q_proj, a.k_proj, a.v_proj, a.o_proj):
            proj.bias.zero_()


PLAIN_ROPE = {"rope_type": "default", "rope_theta": 10000.0}


def case_qwen3_qknorm_yarn():
    from generate import Case, ablations, with_change, with_config

    return Case(
        name="qwen3-qknorm-yarn",
        arch="qwen3",
        description=(
            "qwen3, per-head q/k RMSNorm, head_dim 32 with 4 query / 2 kv heads (128 != hidden 64), "
            "tied embeddings, no attention bias, yarn rope (factor 4, original_max_position_embeddings "
            "16) over 40 positions"
        ),
        seed=1513,
        config=tiny_qwen3(
            max_position_embeddings=64,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        ),
        prompt_lengths=[40],
        describe_extra=ablations(
            ("q/k norms", with_change(no_qk_norm)),
            ("yarn scaling", with_config(rope_parameters=PLAIN_ROPE)),
        ),
    )


def case_qwen3_rope_llama3_v4():
    from generate import Case, ablations, with_change, with_config

    return Case(
        name="qwen3-rope-llama3-v4",
        arch="qwen3",
        description=(
            "qwen3, 3 layers, attention_bias on q/k/v/o, untied head, llama3 rope scaling (factor 8, "
            "low/high freq factors 1/4, original_max_position_embeddings 16) over 48 positions, "
            "use_sliding_window with sliding_window 8 from layer 1 on; config.json in transformers-4 "
            "style (rope_theta, rope_scaling)"
        ),
        seed=1512,
        config=tiny_qwen3(
            num_hidden_layers=3,
            attention_bias=True,
            tie_word_embeddings=False,
            use_sliding_window=True,
            sliding_window=8,
            max_window_layers=1,
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
        prompt_lengths=[48],
        config_style="v4",
        describe_extra=ablations(
            ("attention biases", with_change(zero_attention_biases)),
            ("llama3 scaling", with_config(rope_parameters=PLAIN_ROPE)),
            ("the sliding window", with_config(layer_types=["full_attention"] * 3)),
        ),
    )
