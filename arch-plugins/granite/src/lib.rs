//! Granite for Forge: Llama's shape (token embedding, `num_hidden_layers`
//! pre-norm layers of RMSNorm → grouped-query attention with rope →
//! residual, RMSNorm → SwiGLU MLP → residual, a final RMSNorm and the
//! head) with four multipliers from the config:
//!
//! - `embedding_multiplier` scales the token embeddings;
//! - `attention_multiplier` is the attention scale, in place of
//!   `head_dim^-0.5`;
//! - `residual_multiplier` scales each sublayer's output before the
//!   residual add;
//! - `logits_scaling` divides the logits.
//!
//! The golden case `granite-multipliers` sets all four away from their
//! neutral values (each ablated in the fixture), with attention and MLP
//! biases, grouped kv heads and an untied head.
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: the layers and multipliers, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::GraniteArgs;
pub use model::{build, load, Granite, GraniteLayer};

inventory::submit! {
    Architecture {
        model_type: "granite",
        aliases: &[],
        description: "Granite: Llama with embedding, attention, residual and logit multipliers",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
