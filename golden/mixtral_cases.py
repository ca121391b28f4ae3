"""Mixtral golden cases (model_type mixtral), registered in generate.py's CASES.

Tiny seeded MixtralForCausalLM models: Mistral's attention (grouped-query,
rope, an optional sliding window on every layer) with a sparse mixture of
experts in every layer's MLP slot: a linear router, softmax over all
experts in float32, the top-k kept and renormalised to sum to one, each
expert a SwiGLU.

Besides generate.py's own refusals, a case is refused when routing has a
near tie anywhere on the prompt or the greedy continuation (a correct port
could pick another expert). The HF-vs-HF noise figure compares the default
grouped_mm experts and SDPA-less eager attention against the eager expert
loop, as the gpt-oss cases do.

The routing-margin helpers here are shared by the qwen3_moe and qwen2_moe
case modules.
"""

from __future__ import annotations

import sys

import torch
from transformers import MixtralConfig

# Every chosen expert must beat the first unchosen one by this much (in
# router-logit units), on the prompt and on the greedy continuation.
MIN_ROUTING_GAP = 1e-4

NOISE_VARIANT = {"attn_implementation": "eager", "experts_implementation": "eager"}


def _g():
    """generate.py's module (run as a script it is __main__)."""
    return sys.modules.get("generate") or sys.modules["__main__"]


def _routing_gap(logits: torch.Tensor, top_k: int, rows: torch.Tensor | None) -> float:
    """Smallest (k-th best - (k+1)-th best) router logit over the rows checked."""
    logits = logits.float()
    if rows is not None and rows.numel() == logits.shape[0]:
        logits = logits[rows]
    if logits.shape[-1] <= top_k or logits.shape[0] == 0:
        return float("inf")
    ordered = logits.sort(dim=-1, descending=True).values
    return float((ordered[:, top_k - 1] - ordered[:, top_k]).min())


def routing_gap_check(case, model, input_ids, attention_mask):
    """Runs the prompt and the greedy continuation with every router watched
    (HF's *TopKRouter modules return the router logits first); refuses the
    case when a routing decision is a near tie. Padded prompt positions are
    left out (their outputs are never compared)."""
    g = _g()
    routers = [m for m in model.modules() if type(m).__name__.endswith("TopKRouter")]
    if not routers:
        raise RuntimeError(f"case {case.name}: no router found to check")
    top_k = model.config.num_experts_per_tok
    gaps = []
    state = {"rows": None}

    def hook(module, args, out):
        gaps.append(_routing_gap(out[0], top_k, state["rows"]))

    hooks = [r.register_forward_hook(hook) for r in routers]
    try:
        if attention_mask is not None:
            state["rows"] = attention_mask.reshape(-1).bool()
        g.forward(model, input_ids, attention_mask)
        state["rows"] = None
        # Greedy continuation: prefill (padding included) then one token per step.
        g.greedy(model, input_ids, attention_mask, case.max_new_tokens)
    finally:
        for h in hooks:
            h.remove()
    gap = min(gaps)
    if gap < MIN_ROUTING_GAP:
        raise RuntimeError(f"case {case.name}: routing has a near tie (gap {gap:.3g}); change the seed")
    return f"; smallest routing margin {gap:.2g}", f"; routing margin {gap:.3g}"


def moe_checks(ablation_hook=None):
    """A describe_extra hook: the routing-margin check, then the ablations."""

    def run(case, model, input_ids, attention_mask, logits):
        text, line = routing_gap_check(case, model, input_ids, attention_mask)
        if ablation_hook is not None:
            t, l = ablation_hook(case, model, input_ids, attention_mask, logits)
            text, line = text + t, line + l
        return text, line

    return run


def tiny_mixtral(**overrides) -> MixtralConfig:
    values = dict(
        vocab_size=160,
        hidden_size=48,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=6,
        num_experts_per_tok=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return MixtralConfig(**values)


def case_mixtral_top2_sliding():
    from generate import Case, ablations, with_config

    return Case(
        name="mixtral-top2-sliding",
        arch="mixtral",
        description=(
            "mixtral, 3 layers, 6 experts with 2 per token (softmax over all router logits in "
            "float32, top-2 renormalised), SwiGLU experts of intermediate 64, 4 query / 2 kv heads "
            "with head_dim 16 (64 != hidden 48), sliding_window 6 on every layer over 40 positions (80 token-expert pairs: the sorted dispatch), "
            "rope theta 1e6, untied head"
        ),
        seed=7111,
        config=tiny_mixtral(sliding_window=6),
        prompt_lengths=[40],
        noise_variant=NOISE_VARIANT,
        describe_extra=moe_checks(
            ablations(
                ("top-2 routing (top-1 instead)", with_config(num_experts_per_tok=1)),
                ("the sliding window", with_config(sliding_window=None)),
            )
        ),
    )


def case_mixtral_batch_leftpad():
    from generate import Case

    return Case(
        name="mixtral-batch-leftpad",
        arch="mixtral",
        description=(
            "mixtral, batch of 2 with left padding (row 1 has 4 pad positions), pad_token_id 0, "
            "sliding_window null (full attention), 6 experts top-2; greedy tokens from batched "
            "generate with the mask"
        ),
        seed=7102,
        config=tiny_mixtral(pad_token_id=0),
        prompt_lengths=[12, 8],
        noise_variant=NOISE_VARIANT,
        describe_extra=moe_checks(),
    )
