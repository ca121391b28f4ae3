"""Phi-3 golden cases (imported by generate.py).

Tiny seeded Phi3ForCausalLM models. What Phi-3 adds to Llama: fused
`qkv_proj` and `gate_up_proj` in the checkpoint, partial rotary (only the
first head_dim * partial_rotary_factor dims of a head rotate), LongRoPE and
a sliding window on every layer when `sliding_window` is set.

LongRoPE as HF computes it: each forward call picks `short_factor` while
max(position_ids) + 1 <= original_max_position_embeddings and `long_factor`
past it; the rotated part is scaled by the attention factor, here
sqrt(1 + ln(64 / 16) / ln(16)) = sqrt(1.5). Within one forward call over
a cache, cached keys keep the rotation they got; but HF's generate
(Phi3ForCausalLM.prepare_inputs_for_generation) drops the cache at the
first step whose sequence reaches original + 1 while at most original
positions are cached, and recomputes the whole sequence, so after the
switch every key has the long factors. The cases:

- phi3-longrope-long-prompt: a 24-token prompt past the original 16, so the
  logits use the long factors; ablations prove each feature shows.
- phi3-longrope-switch-in-generation: a 12-token prompt (short factors)
  whose 10 greedy tokens cross position 16, so HF switches to the long
  factors during generation; sliding window 6.
- phi3-longrope-v4-config: config.json as transformers 4 wrote Phi-3's
  (rope_theta, rope_scaling {type, short_factor, long_factor},
  partial_rotary_factor and original_max_position_embeddings at the top
  level only); its generation crosses the original context too.
"""

import json
import math
import random

from transformers import Phi3Config

ORIGINAL = 16  # original_max_position_embeddings
MAX_POSITIONS = 64  # max_position_embeddings: factor 4, attention factor sqrt(1.5)
HEAD_DIM = 16


def factors(seed: int, count: int, low: float, high: float) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(low, high), 4) for _ in range(count)]


def longrope(seed: int, partial: float, theta: float = 10000.0) -> dict:
    pairs = int(HEAD_DIM * partial) // 2
    return {
        "rope_type": "longrope",
        "rope_theta": theta,
        "short_factor": factors(seed, pairs, 1.0, 2.0),
        "long_factor": factors(seed + 1, pairs, 2.0, 4.0),
        "original_max_position_embeddings": ORIGINAL,
        "partial_rotary_factor": partial,
    }


def tiny_phi3(partial: float, rope_seed: int, **overrides) -> Phi3Config:
    values = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        original_max_position_embeddings=ORIGINAL,
        partial_rotary_factor=partial,
        rope_parameters=longrope(rope_seed, partial),
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    values.update(overrides)
    return Phi3Config(**values)


def rope_variant(model, **changes) -> dict:
    rope = dict(model.config.rope_parameters)
    rope.update(changes)
    return rope


def feature_variants(model, *features: str) -> list:
    """(feature, variant maker) pairs for `ablations`, by name."""
    from generate import with_config

    rope = model.config.rope_parameters
    short, long = rope["short_factor"], rope["long_factor"]
    extra = 8 - len(short)  # full rotary: 16 dims, 8 pairs
    plain = {"rope_type": "default", "rope_theta": rope["rope_theta"]}
    plain["partial_rotary_factor"] = rope["partial_rotary_factor"]
    made = {
        "longrope (plain rope instead)": with_config(rope_parameters=plain),
        "long factors (long = short)": with_config(rope_parameters=rope_variant(model, long_factor=short)),
        "short factors (short = long)": with_config(rope_parameters=rope_variant(model, short_factor=long)),
        "partial rotary (all 16 dims rotate, factor lists padded with 1.0)": with_config(
            partial_rotary_factor=1.0,
            rope_parameters=rope_variant(
                model,
                partial_rotary_factor=1.0,
                short_factor=short + [1.0] * extra,
                long_factor=long + [1.0] * extra,
            ),
        ),
        "the attention factor (attention_factor 1)": with_config(
            rope_parameters=rope_variant(model, attention_factor=1.0)
        ),
        "the sliding window (sliding_window null)": with_config(sliding_window=None),
    }
    # The switch one position early or late, the attention factor kept.
    attention = math.sqrt(1 + math.log(MAX_POSITIONS / ORIGINAL) / math.log(ORIGINAL))
    for name, original in [("early", ORIGINAL - 1), ("late", ORIGINAL + 1)]:
        made[f"the switch point (switching one position {name})"] = with_config(
            original_max_position_embeddings=original,
            rope_parameters=rope_variant(
                model, original_max_position_embeddings=original, attention_factor=attention
            ),
        )
    return [(f, made[f]) for f in features]


# What the greedy tokens of a case whose generation crosses the original
# context must prove: the switch to the long factors, exactly where HF makes it.
TOKEN_FEATURES = [
    "long factors (long = short)",
    "the switch point (switching one position early)",
    "the switch point (switching one position late)",
]


def checks(logit_features: list[str], token_features: list[str]):
    """A `describe_extra` hook: the logit ablations of generate.py, then, for
    each of `token_features`, proof that the greedy tokens change when it is
    switched off (a feature that only shows past the prompt, such as the
    switch to the long factors during generation)."""
    from generate import ablations, greedy

    def hook(case, model, input_ids, attention_mask, logits):
        suffix, printed = ablations(*feature_variants(model, *logit_features))(
            case, model, input_ids, attention_mask, logits
        )
        want = greedy(model, input_ids, attention_mask, case.max_new_tokens)
        for feature, make in feature_variants(model, *token_features):
            got = greedy(make(model), input_ids, attention_mask, case.max_new_tokens)
            if (got == want).all():
                raise RuntimeError(f"case {case.name}: switching off {feature} leaves the greedy tokens")
            first = int((got != want).int().argmax())
            suffix += f"; {feature} off changes greedy token {first} on"
            printed += f", {feature} off: tokens differ from {first}"
        return suffix, printed

    return hook


def to_v4_phi3(case, model_dir) -> None:
    """Phi-3's transformers-4 config: rope_scaling {type, short_factor,
    long_factor}; partial_rotary_factor and original_max_position_embeddings
    only at the top level (generate.py's v4 rewrite copies them inside)."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    scaling = config["rope_scaling"]
    config["rope_scaling"] = {
        "type": scaling["rope_type"],
        "short_factor": scaling["short_factor"],
        "long_factor": scaling["long_factor"],
    }
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def case_phi3_longrope_long_prompt():
    from generate import Case

    return Case(
        name="phi3-longrope-long-prompt",
        arch="phi3",
        description=(
            "phi3, 2 layers, 4 query / 2 kv heads, head_dim 16, partial_rotary_factor 0.75 (12 of 16 "
            "dims rotate), longrope with 6 seeded short (1-2) and long (2-4) factors, "
            "original_max_position_embeddings 16, max_position_embeddings 64 (attention factor "
            "sqrt(1.5) on the rotated part), a 24-token prompt past the original context so the "
            "logits and generation use the long factors; fused qkv_proj and gate_up_proj"
        ),
        seed=1701,
        config=tiny_phi3(0.75, 11),
        prompt_lengths=[24],
        describe_extra=checks(
            [
                "longrope (plain rope instead)",
                "long factors (long = short)",
                "partial rotary (all 16 dims rotate, factor lists padded with 1.0)",
                "the attention factor (attention_factor 1)",
            ],
            [],
        ),
    )


def case_phi3_longrope_switch_in_generation():
    from generate import Case

    return Case(
        name="phi3-longrope-switch-in-generation",
        arch="phi3",
        description=(
            "phi3 as phi3-longrope-long-prompt but with sliding_window 6 on every layer and other "
            "seeds: a 12-token prompt within original_max_position_embeddings 16 (short factors) and "
            "10 greedy tokens, so HF switches to the long factors at the step whose largest position "
            "is 16, where its generate drops the cache and recomputes all 17 positions"
        ),
        seed=1706,
        config=tiny_phi3(0.75, 21, sliding_window=6),
        prompt_lengths=[12],
        max_new_tokens=10,
        describe_extra=checks(
            [
                "longrope (plain rope instead)",
                "short factors (short = long)",
                "the sliding window (sliding_window null)",
            ],
            TOKEN_FEATURES,
        ),
    )


def case_phi3_longrope_v4_config():
    from generate import Case

    return Case(
        name="phi3-longrope-v4-config",
        arch="phi3",
        description=(
            "phi3 with partial_rotary_factor 0.5 (8 of 16 dims rotate) and longrope (4 short and 4 "
            "long factors, rope_theta 500), config.json as transformers 4 wrote Phi-3's: rope_theta "
            "and rope_scaling {type longrope, short_factor, long_factor} with partial_rotary_factor "
            "and original_max_position_embeddings (16) only at the top level; a 14-token prompt and "
            "8 greedy tokens that cross the original context"
        ),
        seed=1734,
        config=tiny_phi3(
            0.5, 31, rope_parameters={**longrope(31, 0.5, theta=500.0)}
        ),
        prompt_lengths=[14],
        config_style="v4",
        rewrite_checkpoint=to_v4_phi3,
        describe_extra=checks(
            ["longrope (plain rope instead)", "short factors (short = long)"],
            TOKEN_FEATURES,
        ),
    )
