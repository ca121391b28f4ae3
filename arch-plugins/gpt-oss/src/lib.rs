//! gpt-oss for Forge, with the Harmony chat format it speaks.
//!
//! The architecture ([`model`]): a pre-norm decoder whose attention
//! ([`attention`]) has biased projections, YaRN rope, a learned sink logit
//! per head and alternating sliding-window / full layers (`layer_types`),
//! and whose MLP is a mixture of experts ([`experts`]): a biased router,
//! softmax over the top-k logits, experts with a clamped SwiGLU. Expert
//! weights load from transformers' dense layout or from the released MXFP4
//! blocks and scales ([`mxfp4`]).
//!
//! [`harmony`] renders conversations the way gpt-oss's chat template does
//! and parses the model's output stream into reasoning, final text and
//! tool calls.

pub mod attention;
pub mod config;
pub mod experts;
pub mod harmony;
pub mod model;
pub mod mxfp4;

use forge_core::registry::{keep_weights, Architecture};

pub use config::GptOssArgs;
pub use model::{build, GptOss};

inventory::submit! {
    Architecture {
        model_type: "gpt_oss",
        aliases: &[],
        description: "gpt-oss: attention with sinks and sliding windows, top-k mixture of clamped-SwiGLU experts (dense or MXFP4)",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
