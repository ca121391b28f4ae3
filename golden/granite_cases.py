"""Granite golden cases (imported by generate.py).

Tiny seeded GraniteForCausalLM models. What Granite adds to Llama: four
multipliers. `embedding_multiplier` scales the token embeddings,
`attention_multiplier` replaces head_dim^-0.5 as the attention scale,
`residual_multiplier` scales each sublayer's output before the residual
add, and the logits are divided by `logits_scaling`.
"""

import torch
from transformers import GraniteConfig


def tiny_granite(**overrides) -> GraniteConfig:
    values = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        attention_bias=True,
        mlp_bias=True,
        embedding_multiplier=3.0,
        attention_multiplier=0.1,  # head_dim 16 would give 0.25
        residual_multiplier=0.5,
        logits_scaling=4.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    values.update(overrides)
    return GraniteConfig(**values)


def zero_biases(model) -> None:
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        for proj in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj):
            proj.bias.zero_()


def case_granite_multipliers():
    # Imported here, not at the top: generate.py imports this module.
    from generate import Case, ablations, with_change, with_config

    return Case(
        name="granite-multipliers",
        arch="granite",
        description=(
            "granite, 3 layers, embedding_multiplier 3, attention_multiplier 0.1 (in place of "
            "head_dim^-0.5 = 0.25), residual_multiplier 0.5, logits_scaling 4; 4 query / 2 kv heads, "
            "head_dim 16, attention_bias and mlp_bias, untied head, default rope"
        ),
        seed=2201,
        config=tiny_granite(),
        prompt_lengths=[14],
        describe_extra=ablations(
            ("embedding_multiplier", with_config(embedding_multiplier=1.0)),
            ("attention_multiplier", with_config(attention_multiplier=1.0)),
            ("residual_multiplier", with_config(residual_multiplier=1.0)),
            ("logits_scaling", with_config(logits_scaling=1.0)),
            ("biases", with_change(zero_biases)),
        ),
    )
