"""Qwen2 golden cases (imported by generate.py).

Tiny seeded Qwen2ForCausalLM models. What Qwen2 adds to Llama: biases on
q, k and v (none on o), and Qwen's sliding-window rule: the window counts
only with `use_sliding_window`, and without `layer_types` the layers from
`max_window_layers` on slide. The main case's config.json has its
`layer_types` removed, as hub checkpoints have none, so the plugin must
derive the pattern itself (HF reloads the rewritten file and must agree).
"""

import json

import torch
from transformers import Qwen2Config


def tiny_qwen2(**overrides) -> Qwen2Config:
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
        use_sliding_window=True,
        sliding_window=5,
        max_window_layers=1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return Qwen2Config(**values)


def drop_layer_types(case, model_dir) -> None:
    """Hub Qwen2 configs have no `layer_types`: remove the derived one."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    config.pop("layer_types", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def zero_qkv_biases(model) -> None:
    for layer in model.model.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
            proj.bias.zero_()


def feature_ablations(num_layers: int):
    from generate import ablations, with_change, with_config

    return ablations(
        ("q/k/v biases", with_change(zero_qkv_biases)),
        ("the sliding window", with_config(layer_types=["full_attention"] * num_layers)),
    )


def case_qwen2_bias_sliding():
    from generate import Case

    return Case(
        name="qwen2-bias-sliding",
        arch="qwen2",
        description=(
            "qwen2, 3 layers, 4 query / 2 kv heads, q/k/v biases (no o bias), use_sliding_window true "
            "with sliding_window 5 and max_window_layers 1 (layer 0 full, layers 1-2 sliding) over 20 "
            "positions; config.json without layer_types, as hub checkpoints are"
        ),
        seed=1501,
        config=tiny_qwen2(),
        prompt_lengths=[20],
        rewrite_checkpoint=drop_layer_types,
        describe_extra=feature_ablations(3),
    )


def case_qwen2_batch_leftpad():
    from generate import Case

    return Case(
        name="qwen2-batch-leftpad",
        arch="qwen2",
        description=(
            "qwen2, batch of 2 with left padding (rows of 14 and 9 real tokens, pad_token_id 0), "
            "sliding_window 6 from layer 1 on, tied embeddings; greedy tokens from batched generate"
        ),
        seed=1503,
        config=tiny_qwen2(pad_token_id=0, sliding_window=6, tie_word_embeddings=True, num_hidden_layers=2),
        prompt_lengths=[14, 9],
        describe_extra=feature_ablations(2),
    )
