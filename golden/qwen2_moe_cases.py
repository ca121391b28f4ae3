"""Qwen2-MoE golden cases (model_type qwen2_moe), registered in generate.py's CASES.

Tiny seeded Qwen2MoeForCausalLM models: Qwen2's attention (q/k/v biases,
none on o) and a sparse MoE block in the layers HF's rule picks, a dense
SwiGLU elsewhere. The MoE block: softmax over all experts in float32,
top-k, renormalised only with `norm_topk_prob`, plus a shared SwiGLU expert
scaled per token by sigmoid(shared_expert_gate(x)).

Cases are refused on routing near ties (see mixtral_cases.routing_gap_check)
and when a feature barely moves the logits.
"""

from transformers import Qwen2MoeConfig

from mixtral_cases import NOISE_VARIANT, moe_checks


def tiny_qwen2_moe(**overrides) -> Qwen2MoeConfig:
    values = dict(
        vocab_size=160,
        hidden_size=48,
        intermediate_size=96,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=8,
        num_experts_per_tok=2,
        norm_topk_prob=False,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        qkv_bias=True,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        use_sliding_window=False,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return Qwen2MoeConfig(**values)


def _moe_blocks(model):
    return [layer.mlp for layer in model.model.layers if hasattr(layer.mlp, "shared_expert")]


def zero_shared_expert(model) -> None:
    for moe in _moe_blocks(model):
        moe.shared_expert.down_proj.weight.zero_()


def zero_shared_expert_gate(model) -> None:
    """gate logit 0: every token's shared expert scaled by sigmoid(0) = 0.5."""
    for moe in _moe_blocks(model):
        moe.shared_expert_gate.weight.zero_()


def zero_qkv_biases(model) -> None:
    for layer in model.model.layers:
        a = layer.self_attn
        for proj in (a.q_proj, a.k_proj, a.v_proj):
            proj.bias.zero_()


def case_qwen2_moe_shared_expert():
    from generate import Case, ablations, with_change, with_config

    return Case(
        name="qwen2-moe-shared-expert",
        arch="qwen2_moe",
        description=(
            "qwen2_moe, 3 sparse layers: 8 experts (intermediate 32) top-2 with norm_topk_prob false, "
            "a shared expert (intermediate 64) scaled by sigmoid(shared_expert_gate(x)); q/k/v biases; "
            "use_sliding_window with sliding_window 6 and max_window_layers 2 (transformers 5's rule: "
            "layer 0 slides, 1 and 2 full) over 40 positions (80 token-expert pairs: the sorted dispatch)"
        ),
        seed=7301,
        config=tiny_qwen2_moe(use_sliding_window=True, sliding_window=6, max_window_layers=2),
        prompt_lengths=[40],
        noise_variant=NOISE_VARIANT,
        describe_extra=moe_checks(
            ablations(
                ("top-2 routing (top-1 instead)", with_config(num_experts_per_tok=1)),
                ("unnormalised weights (norm_topk_prob on)", with_config(norm_topk_prob=True)),
                ("the shared expert", with_change(zero_shared_expert)),
                ("the shared expert gate (sigmoid(0) instead)", with_change(zero_shared_expert_gate)),
                ("the q/k/v biases", with_change(zero_qkv_biases)),
                ("the sliding window", with_config(layer_types=["full_attention"] * 3)),
            )
        ),
    )


def zero_dense_mlps(model) -> None:
    for layer in model.model.layers:
        if not hasattr(layer.mlp, "shared_expert"):
            layer.mlp.down_proj.weight.zero_()


def case_qwen2_moe_dense_first():
    from generate import Case, ablations, with_change, with_config

    return Case(
        name="qwen2-moe-dense-first",
        arch="qwen2_moe",
        description=(
            "qwen2_moe, 3 layers with layer 0 dense (mlp_only_layers [0], SwiGLU intermediate 96), "
            "6 experts top-2 with norm_topk_prob true, qkv_bias false, head_dim 16 with 4 query / "
            "2 kv heads (64 != hidden 48), tied embeddings, 20 positions"
        ),
        seed=7302,
        config=tiny_qwen2_moe(
            mlp_only_layers=[0],
            num_experts=6,
            norm_topk_prob=True,
            qkv_bias=False,
            head_dim=16,
            tie_word_embeddings=True,
        ),
        prompt_lengths=[20],
        noise_variant=NOISE_VARIANT,
        describe_extra=moe_checks(
            ablations(
                ("top-2 routing (top-1 instead)", with_config(num_experts_per_tok=1)),
                ("norm_topk_prob", with_config(norm_topk_prob=False)),
                ("the dense layer's MLP", with_change(zero_dense_mlps)),
            )
        ),
    )
