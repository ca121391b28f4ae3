//! Qwen2 (and Qwen2.5) for Forge: token embedding, pre-norm decoder layers
//! (RMSNorm → grouped-query attention with RoPE → residual, RMSNorm →
//! SwiGLU → residual), a final RMSNorm and the output head. What sets it
//! apart from Llama: biases on the q, k and v projections but not on o,
//! and a sliding window that applies only with `use_sliding_window`, on
//! the layers from `max_window_layers` on (or as `layer_types` says).
//!
//! Golden cases: qwen2-bias-sliding (biases, sliding layers chosen by
//! `max_window_layers`), qwen2-batch-leftpad (left-padded batch).
//!
//! - [`config`]: the typed args, the window rule Qwen3 shares;
//! - [`model`]: the layers, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::{Qwen2Args, QwenWindow};
pub use model::{build, load, Qwen2};

inventory::submit! {
    Architecture {
        model_type: "qwen2",
        aliases: &[],
        description: "Qwen2: Llama layers with q/k/v biases and Qwen's sliding-window rule",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
