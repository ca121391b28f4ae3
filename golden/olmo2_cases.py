"""OLMo 2 golden cases (imported by generate.py).

Tiny seeded Olmo2ForCausalLM models. What OLMo 2 adds to Llama: no norm
before the sublayers but an RMSNorm after each (post_attention_layernorm
on the attention output, post_feedforward_layernorm on the MLP output,
both before the residual add), and an RMSNorm over the whole q and k
projections (width heads*head_dim, kv_heads*head_dim) before the head split.
"""

import torch
from transformers import Olmo2Config


def tiny_olmo2(**overrides) -> Olmo2Config:
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
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    values.update(overrides)
    return Olmo2Config(**values)


def no_qk_norm(model) -> None:
    for layer in model.model.layers:
        layer.self_attn.q_norm = torch.nn.Identity()
        layer.self_attn.k_norm = torch.nn.Identity()


def no_post_norms(model) -> None:
    for layer in model.model.layers:
        layer.post_attention_layernorm = torch.nn.Identity()
        layer.post_feedforward_layernorm = torch.nn.Identity()


def zero_attention_biases(model) -> None:
    for layer in model.model.layers:
        a = layer.self_attn
        for proj in (a.q_proj, a.k_proj, a.v_proj, a.o_proj):
            proj.bias.zero_()


def case_olmo2_qknorm_postnorm():
    # Imported here, not at the top: generate.py imports this module.
    from generate import Case, ablations, with_change

    return Case(
        name="olmo2-qknorm-postnorm",
        arch="olmo2",
        description=(
            "olmo2, 3 layers, RMSNorm after each sublayer (post_attention_layernorm, "
            "post_feedforward_layernorm; no input norm), q/k RMSNorm over the whole projection "
            "(widths 64 and 32) before the head split, 4 query / 2 kv heads, head_dim 16, "
            "attention_bias on q/k/v/o, untied head, default rope"
        ),
        seed=2101,
        config=tiny_olmo2(),
        prompt_lengths=[14],
        describe_extra=ablations(
            ("whole-projection q/k norms", with_change(no_qk_norm)),
            ("post-sublayer norms", with_change(no_post_norms)),
            ("attention biases", with_change(zero_attention_biases)),
        ),
    )
