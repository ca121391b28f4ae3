//! OLMo 2 for Forge: token embedding, `num_hidden_layers` decoder layers,
//! a final RMSNorm and the output head. Each layer normalizes the output of
//! its sublayers rather than their input: `h = x + norm(attn(x))`, then
//! `out = h + norm(mlp(h))`. The attention is grouped-query attention with
//! rope whose queries and keys pass through an RMSNorm over the whole
//! projection (width heads·head_dim and kv_heads·head_dim) before the head
//! split; the MLP is SwiGLU without biases.
//!
//! The golden case `olmo2-qknorm-postnorm` covers the whole-projection q/k
//! norms and the post-sublayer norms (each ablated in the fixture), grouped
//! kv heads, attention biases and an untied head.
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: the decoder layer, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::Olmo2Args;
pub use model::{build, load, Olmo2, Olmo2Layer};

inventory::submit! {
    Architecture {
        model_type: "olmo2",
        aliases: &[],
        description: "OLMo 2: post-sublayer RMSNorms, q/k RMSNorm over the whole projection, SwiGLU",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
