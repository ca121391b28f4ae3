//! Qwen3 for Forge: Qwen2's decoder with an RMSNorm (width `head_dim`,
//! shared by the heads) on every query and key head before rope, an
//! explicit `head_dim` (128 unless the config says otherwise, whatever
//! the hidden size), `attention_bias` for all four projections, and
//! Qwen's sliding-window rule (shared with the Qwen2 plugin).
//!
//! Golden cases: qwen3-qknorm-yarn (q/k norms, tied embeddings,
//! heads × head_dim ≠ hidden, YaRN past the original context),
//! qwen3-rope-llama3-v4 (llama3 rope scaling, sliding layers,
//! transformers-4 config keys).
//!
//! - [`config`]: the typed args;
//! - [`model`]: the layers, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::Qwen3Args;
pub use model::{build, load, Qwen3};

inventory::submit! {
    Architecture {
        model_type: "qwen3",
        aliases: &[],
        description: "Qwen3: Qwen2 layers with per-head q/k RMSNorm and an explicit head_dim",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
