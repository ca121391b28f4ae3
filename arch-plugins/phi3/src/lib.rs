//! Phi-3 for Forge (Phi-3, Phi-3.5 and Phi-4-mini checkpoints, model_type
//! `phi3`).
//!
//! The network is Llama's: token embedding, `num_hidden_layers` pre-norm
//! decoder layers (RMSNorm → grouped-query attention → residual, RMSNorm →
//! SwiGLU MLP → residual), a final RMSNorm and the output head. What Phi-3
//! adds:
//!
//! - **Fused projections.** Checkpoints store `self_attn.qkv_proj` (query
//!   rows, then key rows, then value rows) and `mlp.gate_up_proj` (gate
//!   half, then up half). `sanitize` splits them, MLX-quantized ones
//!   included, so the layers are forge-core's standard ones. No biases.
//! - **Partial rotary.** Only the first `head_dim · partial_rotary_factor`
//!   dims of each head are rotated (Phi-4-mini: 0.75). The factor is read
//!   from `rope_parameters` first, then the top-level key.
//! - **LongRoPE.** Per-frequency wavelength factors: `short_factor` while
//!   the largest position of a forward call + 1 is at most the top-level
//!   `original_max_position_embeddings`, `long_factor` past it. As in HF,
//!   the choice is per call, so in cached generation keys already in the
//!   cache keep the rotation they were given. The rotated part is scaled by
//!   the attention factor (`attention_factor`, or
//!   `sqrt(1 + ln(f) / ln(original))` with `f = max_position_embeddings /
//!   original` when `factor` is absent).
//!
//!   Generation recomputes as HF's does: `Phi3ForCausalLM` drops the cache
//!   at the first step whose sequence passes `original` while at most
//!   `original` positions are cached, and runs the whole sequence again
//!   (so every key gets the long factors). The plugin asks forge-core's
//!   generation loops for the same (`CausalLm::with_restart_past`); a
//!   chunked prefill that crosses `original` likewise reruns the prompt so
//!   far in one pass. Batch, beam and speculative generation refuse such a
//!   step with an error instead.
//! - **Sliding window.** `sliding_window`, when set, applies to every layer.
//!
//! Golden cases (golden/phi3_cases.py): `phi3-longrope-long-prompt` (a
//! prompt past the original context, so every position uses the long
//! factors; ablations show that plain rope, long = short factors, full
//! rotary and attention factor 1 each move the logits),
//! `phi3-longrope-switch-in-generation` (a prompt within the original
//! context whose greedy generation crosses it, with a sliding window) and
//! `phi3-longrope-v4-config` (a transformers-4 config: `rope_theta`,
//! `rope_scaling` with `type`, and `partial_rotary_factor` /
//! `original_max_position_embeddings` only at the top level).
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: `sanitize`, the layers and the plan.

pub mod config;
pub mod model;

use forge_core::registry::Architecture;

pub use config::Phi3Args;
pub use model::{build, load, sanitize, Phi3};

inventory::submit! {
    Architecture {
        model_type: "phi3",
        aliases: &[],
        description: "Phi-3: fused qkv / gate_up (split at load), partial rotary LongRoPE, SwiGLU MLP",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize,
        build,
    }
}
