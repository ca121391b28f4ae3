//! Mixtral for Forge: token embedding, `num_hidden_layers` decoder layers
//! (RMSNorm → grouped-query attention with RoPE → residual, RMSNorm →
//! sparse mixture of experts → residual), a final RMSNorm and the output
//! head. Attention is Mistral's, with an optional `sliding_window` on
//! every layer (`null`: full attention); rope theta defaults to 1e6.
//!
//! The mixture of experts: a linear router gives one logit per expert;
//! a softmax over all `num_local_experts` logits (in float32) gives the
//! probabilities, the `num_experts_per_tok` most probable experts are
//! kept and their probabilities renormalised to sum to one; each expert
//! is a SwiGLU (`w1` gate, `w3` up, `w2` down in the hub's names) and the
//! layer's output is the weighted sum of the chosen experts'. The experts
//! are stacked once at load and run by forge-core's switch layer.
//!
//! Golden cases: mixtral-top2-sliding (6 experts, top-2, sliding window 6
//! over 40 positions, so the switch layer's sorted dispatch runs;
//! ablations: top-1, no window), mixtral-batch-leftpad (left-padded batch,
//! `sliding_window` null).
//!
//! The MoE parts ([`model::SparseMoe`], [`model::MoeLayer`],
//! [`model::sanitize_experts`]) are shared with the Qwen2-MoE and
//! Qwen3-MoE plugins.
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: the router, the MoE block and layer, sanitize.

pub mod config;
pub mod model;

use forge_core::registry::Architecture;

pub use config::MixtralArgs;
pub use model::{
    build, load, sanitize, sanitize_experts, FeedForward, Mixtral, MoeDims, MoeLayer, SparseMoe,
    TopKRouter,
};

inventory::submit! {
    Architecture {
        model_type: "mixtral",
        aliases: &[],
        description: "Mixtral: Mistral attention, sparse MoE of SwiGLU experts (softmax top-k, renormalised)",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize,
        build,
    }
}
