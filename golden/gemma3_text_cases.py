"""Golden cases for gemma3_text, started by `cargo xtask add-arch`.

Each case is a tiny seeded model built by Hugging Face transformers from a
config; generate.py writes its checkpoint, inputs and reference outputs.
Make the config exercise what the architecture adds (its rope, its
attention pattern, its MLP), then run `cargo xtask golden --case gemma3-text-tiny`.
"""

from transformers import AutoConfig

# The checkpoint's config keys, sizes shrunk to a tiny model (marked).
TINY_CONFIG = {
    "vocab_size": 256,  # shrunk
    "hidden_size": 64,  # shrunk
    "intermediate_size": 128,  # shrunk
    "num_hidden_layers": 2,  # shrunk
    "num_attention_heads": 4,  # shrunk
    "head_dim": 16,  # shrunk
    "max_position_embeddings": 512,  # shrunk
    "num_key_value_heads": 2,  # shrunk
}


def case_gemma3_text_tiny():
    # Imported here, not at the top: generate.py imports this module.
    from generate import Case

    return Case(
        name="gemma3-text-tiny",
        arch="gemma3_text",
        description="tiny gemma3_text from its config (cargo xtask add-arch)",
        seed=0,
        config=AutoConfig.for_model("gemma3_text", **TINY_CONFIG),
        prompt_lengths=[12],
    )
