"""DeepSeek-V3 golden cases (model_type deepseek_v3), registered in generate.py's CASES.

Each case exercises a part of the architecture that a port can get wrong
without any error: multi-head latent attention with and without the query
low-rank path, YaRN with mscale / mscale_all_dim (rope attention factor and
softmax scale), interleaved rope, group-limited sigmoid routing with the
selection-only correction bias, shared experts and the first dense layers.

Besides generate.py's own refusals, a case is refused when routing has a
near tie (a correct port could pick another expert or group) or, for YaRN
cases, when switching the scaling off barely moves the logits.
"""

from __future__ import annotations

import sys

import torch
from transformers import AutoModelForCausalLM, DeepseekV3Config

# Routing decisions must not hinge on differences of the order of f32 noise:
# every selected group / expert must beat the first rejected one by this much.
MIN_ROUTING_GAP = 1e-4


def _g():
    """generate.py's module (run as a script it is __main__)."""
    return sys.modules.get("generate") or sys.modules["__main__"]


def tiny_deepseek_v3(**overrides) -> DeepseekV3Config:
    """A small DeepSeek-V3 config (3 layers, 12 routed experts in 3 groups); overrides win."""
    values = dict(
        vocab_size=160,
        hidden_size=48,
        intermediate_size=96,
        moe_intermediate_size=16,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        q_lora_rank=24,
        kv_lora_rank=32,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        v_head_dim=12,
        n_routed_experts=12,
        n_shared_experts=1,
        num_experts_per_tok=3,
        n_group=3,
        topk_group=2,
        first_k_dense_replace=1,
        norm_topk_prob=True,
        routed_scaling_factor=2.5,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rope_interleave=True,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return DeepseekV3Config(**values)


def noisy_correction_bias(model, seed: int) -> None:
    """e_score_correction_bias is a buffer (not a parameter), so the seeded init
    leaves it at zero; give it noise of the routing scores' own size so that
    selection (biased) and weighting (unbiased) differ."""
    gen = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_((torch.rand(buf.shape, generator=gen) * 2.0 - 1.0) * 0.1)


def _routing_gaps(router, hidden: torch.Tensor) -> float:
    """Smallest margin of the group and expert choices of one router call."""
    x = hidden.reshape(-1, router.hidden_dim).float()
    scores = torch.sigmoid(x @ router.weight.float().t())
    choice = scores + router.e_score_correction_bias
    per_group = router.num_experts // router.num_group
    groups = choice.view(-1, router.num_group, per_group).topk(2, dim=-1)[0].sum(-1)
    gap = float("inf")
    if router.topk_group < router.num_group:
        ordered = groups.sort(dim=-1, descending=True).values
        gap = min(gap, float((ordered[:, router.topk_group - 1] - ordered[:, router.topk_group]).min()))
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, groups.topk(router.topk_group, dim=-1)[1], True)
    allowed = keep.unsqueeze(-1).expand(-1, -1, per_group).reshape(-1, router.num_experts)
    masked = choice.masked_fill(~allowed, float("-inf"))
    ordered = masked.sort(dim=-1, descending=True).values
    if router.top_k < router.topk_group * per_group:
        gap = min(gap, float((ordered[:, router.top_k - 1] - ordered[:, router.top_k]).min()))
    return gap


def routing_gap_check(case, model, input_ids, attention_mask):
    """Runs the prompt and the greedy continuation with every router watched;
    refuses the case when any routing decision is a near tie."""
    g = _g()
    gaps = []
    routers = [m for m in model.modules() if type(m).__name__ == "DeepseekV3TopkRouter"]
    hooks = [r.register_forward_hook(lambda mod, args, out: gaps.append(_routing_gaps(mod, args[0]))) for r in routers]
    try:
        g.forward(model, input_ids, attention_mask)
        g.greedy(model, input_ids, attention_mask, case.max_new_tokens)
    finally:
        for h in hooks:
            h.remove()
    if not routers:
        return "", ""
    gap = min(gaps)
    if gap < MIN_ROUTING_GAP:
        raise RuntimeError(f"case {case.name}: routing has a near tie (gap {gap:.3g}); change the seed")
    return f"; smallest routing margin {gap:.2g}", f"; routing gap {gap:.3g}"


def rope_scaling_matters(case, model, input_ids, attention_mask, logits):
    """Same weights with plain rope (and so no mscale): how much do the logits move?"""
    g = _g()
    plain_config = DeepseekV3Config.from_dict(model.config.to_dict())
    plain_config.rope_parameters = {
        "rope_type": "default",
        "rope_theta": model.config.rope_parameters["rope_theta"],
    }
    plain = AutoModelForCausalLM.from_config(plain_config, attn_implementation="eager", dtype=torch.float32).eval()
    plain.load_state_dict(model.state_dict())
    plain_logits, _ = g.forward(plain, input_ids, attention_mask)
    diff = g.masked_max_abs(logits, plain_logits, attention_mask)
    if diff < 1e-2:
        raise RuntimeError(f"case {case.name}: rope scaling barely matters ({diff:.3g})")
    return (
        f"; switching the scaling off moves logits by up to {diff:.2g}",
        f"; rope scaling off: max |dlogits| {diff:.3g}",
    )


def with_checks(*checks):
    """Chains describe_extra hooks (routing checks take no logits)."""

    def run(case, model, input_ids, attention_mask, logits):
        text, line = "", ""
        for check in checks:
            if check is routing_gap_check:
                t, l = check(case, model, input_ids, attention_mask)
            else:
                t, l = check(case, model, input_ids, attention_mask, logits)
            text, line = text + t, line + l
        return text, line

    return run


def case_grouped_yarn():
    return _g().Case(
        name="deepseek-v3-grouped-yarn",
        arch="deepseek_v3",
        description=(
            "deepseek_v3 with q_lora_rank 24 (q_a_proj, q_a_layernorm, q_b_proj), kv_lora_rank 32, "
            "interleaved rope on 8 of 24 query/key dims, YaRN factor 4 over 40 positions with "
            "original_max_position_embeddings 16, mscale 0.8 and mscale_all_dim 0.9 (rope attention "
            "factor and softmax scale both change); 12 routed experts in 3 groups, the best 2 groups "
            "kept (each scored by its top-2 experts), 3 experts per token, correction bias for "
            "selection only, normalized weights times 2.5, one shared expert; layer 0 dense"
        ),
        seed=6011,
        config=tiny_deepseek_v3(
            max_position_embeddings=64,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 16,
                "mscale": 0.8,
                "mscale_all_dim": 0.9,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
            },
        ),
        prompt_lengths=[40],
        after_init=noisy_correction_bias,
        describe_extra=with_checks(rope_scaling_matters, routing_gap_check),
    )


def case_no_qlora():
    return _g().Case(
        name="deepseek-v3-no-qlora",
        arch="deepseek_v3",
        description=(
            "deepseek_v3 with q_lora_rank null (plain q_proj), attention_bias (q_proj has none; "
            "kv_a_proj_with_mqa and o_proj do), rotate-half rope (rope_interleave false), default "
            "rope; every layer MoE (first_k_dense_replace 0), one group (n_group 1), weights not "
            "normalized (norm_topk_prob false) times 1.5, 2 shared experts"
        ),
        seed=6003,
        config=tiny_deepseek_v3(
            q_lora_rank=None,
            attention_bias=True,
            rope_interleave=False,
            first_k_dense_replace=0,
            n_group=1,
            topk_group=1,
            norm_topk_prob=False,
            routed_scaling_factor=1.5,
            n_shared_experts=2,
        ),
        prompt_lengths=[16],
        after_init=noisy_correction_bias,
        describe_extra=with_checks(routing_gap_check),
    )


def case_dense_first_leftpad():
    return _g().Case(
        name="deepseek-v3-dense-first-leftpad",
        arch="deepseek_v3",
        description=(
            "deepseek_v3 with the first 2 of 3 layers dense (first_k_dense_replace 2), batch of 2 "
            "with left padding (pad_token_id 0); config.json in transformers-4 style like the "
            "released checkpoint (rope_theta + rope_scaling of type yarn, factor 4, mscale and "
            "mscale_all_dim 1.0: rope attention factor 1, softmax scale times mscale^2) over 24 "
            "positions with original context 8; 2 groups of 6 experts, the best 1 kept"
        ),
        seed=6003,
        config=tiny_deepseek_v3(
            first_k_dense_replace=2,
            n_group=2,
            topk_group=1,
            pad_token_id=0,
            max_position_embeddings=64,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 8,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
            },
        ),
        prompt_lengths=[24, 18],
        config_style="v4",
        after_init=noisy_correction_bias,
        describe_extra=with_checks(rope_scaling_matters, routing_gap_check),
    )


DEEPSEEK_V3_CASES = {
    "deepseek-v3-grouped-yarn": case_grouped_yarn,
    "deepseek-v3-no-qlora": case_no_qlora,
    "deepseek-v3-dense-first-leftpad": case_dense_first_leftpad,
}
