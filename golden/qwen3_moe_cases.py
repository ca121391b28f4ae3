"""Qwen3-MoE golden cases (model_type qwen3_moe), registered in generate.py's CASES.

Tiny seeded Qwen3MoeForCausalLM models: Qwen3's attention (per-head q/k
RMSNorm, head_dim independent of the hidden size) and a sparse MoE block in
the layers HF's rule picks (not in `mlp_only_layers`, `(i + 1)` a multiple
of `decoder_sparse_step`), a dense SwiGLU elsewhere. The router is a
softmax over all experts in float32, top-k, renormalised only with
`norm_topk_prob`.

Cases are refused on routing near ties (see mixtral_cases.routing_gap_check)
and when a feature barely moves the logits.
"""

import torch
from transformers import Qwen3MoeConfig

from mixtral_cases import NOISE_VARIANT, moe_checks


def tiny_qwen3_moe(**overrides) -> Qwen3MoeConfig:
    values = dict(
        vocab_size=160,
        hidden_size=48,
        intermediate_size=96,
        moe_intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_experts=8,
        num_experts_per_tok=2,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        attention_bias=False,
        use_sliding_window=False,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return Qwen3MoeConfig(**values)


def zero_dense_mlps(model) -> None:
    """The dense layers' MLP output set to zero (down_proj weights zeroed)."""
    for layer in model.model.layers:
        if type(layer.mlp).__name__ == "Qwen3MoeMLP":
            layer.mlp.down_proj.weight.zero_()


def case_qwen3_moe_dense_layer_sliding():
    from generate import Case, ablations, with_change, with_config

    return Case(
        name="qwen3-moe-dense-layer-sliding",
        arch="qwen3_moe",
        description=(
            "qwen3_moe, 3 layers, layer 1 dense through mlp_only_layers [1] (SwiGLU, intermediate 96), "
            "layers 0 and 2 sparse: 8 experts (intermediate 32), top-2, norm_topk_prob true; per-head "
            "q/k RMSNorm, 4 query / 2 kv heads of head_dim 16 (64 != hidden 48), attention_bias, "
            "use_sliding_window with sliding_window 8 on every layer over 40 positions (80 "
            "token-expert pairs: the sorted dispatch)"
        ),
        seed=7203,
        config=tiny_qwen3_moe(
            mlp_only_layers=[1],
            attention_bias=True,
            use_sliding_window=True,
            sliding_window=8,
        ),
        prompt_lengths=[40],
        noise_variant=NOISE_VARIANT,
        describe_extra=moe_checks(
            ablations(
                ("top-2 routing (top-1 instead)", with_config(num_experts_per_tok=1)),
                ("norm_topk_prob", with_config(norm_topk_prob=False)),
                ("the dense layer's MLP", with_change(zero_dense_mlps)),
                ("the sliding window", with_config(use_sliding_window=False)),
            )
        ),
    )


def case_qwen3_moe_sparse_step():
    from generate import Case, ablations, with_config

    return Case(
        name="qwen3-moe-sparse-step",
        arch="qwen3_moe",
        description=(
            "qwen3_moe, 4 layers with decoder_sparse_step 2 (layers 1 and 3 sparse, 0 and 2 dense), "
            "8 experts top-3 with norm_topk_prob false (the chosen probabilities used as they are), "
            "tied embeddings, 20 positions"
        ),
        seed=7202,
        config=tiny_qwen3_moe(
            num_hidden_layers=4,
            decoder_sparse_step=2,
            num_experts_per_tok=3,
            norm_topk_prob=False,
            tie_word_embeddings=True,
        ),
        prompt_lengths=[20],
        noise_variant=NOISE_VARIANT,
        describe_extra=moe_checks(
            ablations(
                ("top-3 routing (top-1 instead)", with_config(num_experts_per_tok=1)),
                ("unnormalised weights (norm_topk_prob on)", with_config(norm_topk_prob=True)),
            )
        ),
    )
