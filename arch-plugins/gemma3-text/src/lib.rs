//! Gemma 3 (text only, model_type `gemma3_text`) for Forge: Gemma 2's
//! decoder (embeddings scaled by `sqrt(hidden_size)`, four x·(1+w) RMSNorms
//! per layer, attention scaled by `query_pre_attn_scalar^-0.5`, a GeGLU MLP,
//! a (1+w) final norm, an optional final soft-cap), reusing the gemma2
//! plugin's layer, with two changes. Every query and key head is normalized
//! by a (1+w) RMSNorm over `head_dim` before rope. And each layer type has
//! its own rope: transformers 5 writes `rope_parameters` keyed by
//! `sliding_attention` and `full_attention`; transformers 4 wrote
//! `rope_theta` + `rope_scaling` for the full layers and
//! `rope_local_base_freq` (default rope) for the sliding ones. Sliding
//! layers come from `layer_types`, else every `sliding_window_pattern`-th
//! layer (default 6) is full and the rest slide. HF's Gemma 3 keeps
//! `attn_logit_softcapping` in its config but never applies it; neither
//! does Forge.
//!
//! Golden cases: `gemma3-text-qknorm-rope-types` (q/k norms, sliding layers,
//! a linear-scaled full-layer rope with another θ than the sliding layers',
//! each shown to move the logits when switched off, and a set
//! `attn_logit_softcapping` that must stay unapplied) and
//! `gemma3-text-v4-batch` (a transformers-4 config.json with rope_theta,
//! rope_scaling, rope_local_base_freq and sliding_window_pattern, a final
//! soft-cap, an untied head, and a left-padded batch of two).
//!
//! - [`config`]: the typed args, above all the rope of each layer type;
//! - [`model`]: the model, on the gemma2 plugin's [`GemmaLayer`].

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::Gemma3TextArgs;
pub use forge_gemma2::GemmaLayer;
pub use model::{build, load, Gemma3Text};

inventory::submit! {
    Architecture {
        model_type: "gemma3_text",
        aliases: &[],
        description: "Gemma 3 (text): Gemma 2's layer with (1+w) q/k norms and a rope per layer type",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
