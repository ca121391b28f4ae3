//! gemma2 for Forge, started by `cargo xtask add-arch` from the llama plugin.
//! Replace the copied llama code with the new architecture, then prove it
//! with `cargo xtask parity --model gemma2`.
//!
//! Llama for Forge: token embedding, `num_hidden_layers` pre-norm decoder
//! layers (RMSNorm → grouped-query attention with RoPE → residual, RMSNorm
//! → SwiGLU MLP → residual), a final RMSNorm and the output head.
//!
//! Options covered by the golden cases: biases on the attention and MLP
//! projections, an explicit `head_dim` (heads × head_dim ≠ hidden), tied
//! embeddings, every rope variant of [`forge_core::rope`], and a sliding
//! window through `sliding_window` / `layer_types`. Mistral is this model
//! with a window on every layer, so the plugin also serves model_type
//! `mistral` (golden case mistral-sliding-window).
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: the decoder layer, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::LlamaArgs;
pub use model::{build, load, Llama, LlamaLayer};

inventory::submit! {
    Architecture {
        model_type: "gemma2",
        aliases: &[],
        description: "gemma2 (started from llama by cargo xtask add-arch)",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
