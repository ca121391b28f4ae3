"""SmolLM3 golden cases (imported by generate.py).

Tiny seeded SmolLM3ForCausalLM models. What SmolLM3 adds to Llama: NoPE
layers, which apply no rope to q and k. `no_rope_layers` (1 = rope,
0 = NoPE per layer) is derived by the config from `no_rope_layer_interval`
when absent; with `use_sliding_window` and `sliding_window`, the derived
`layer_types` put the window on the NoPE layers.
"""

from transformers import SmolLM3Config


def tiny_smollm3(**overrides) -> SmolLM3Config:
    values = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    values.update(overrides)
    return SmolLM3Config(**values)


def case_smollm3_nope_sliding():
    # Imported here, not at the top: generate.py imports this module.
    from generate import Case, ablations, with_config

    return Case(
        name="smollm3-nope-sliding",
        arch="smollm3",
        description=(
            "smollm3, 4 layers, no_rope_layer_interval 2 (no_rope_layers [1, 0, 1, 0]: layers 1 and "
            "3 are NoPE), use_sliding_window with sliding_window 6, which the config puts on the NoPE "
            "layers (layer_types full, sliding, full, sliding), over 20 positions; 4 query / 2 kv "
            "heads, head_dim 16, tied embeddings, default rope"
        ),
        seed=2301,
        config=tiny_smollm3(no_rope_layer_interval=2, use_sliding_window=True, sliding_window=6),
        prompt_lengths=[20],
        describe_extra=ablations(
            ("NoPE layers (rope in all)", with_config(no_rope_layers=[1, 1, 1, 1])),
            ("the sliding window", with_config(layer_types=["full_attention"] * 4)),
        ),
    )
