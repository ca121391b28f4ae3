//! gpt-oss for Forge, with the Harmony chat format it speaks.
//!
//! The architecture ([`model`], on forge-core's decoder base): a pre-norm
//! decoder whose attention has biased projections, YaRN rope, a learned
//! sink logit per head and alternating sliding-window / full layers
//! (`layer_types`), and whose MLP is a mixture of experts: a biased router,
//! softmax over the top-k logits, experts with a clamped SwiGLU on the
//! shared switch layer. Expert weights load from transformers' dense layout
//! or from the released MXFP4 blocks and scales. [`config`] holds the typed
//! args and their checks.
//!
//! [`harmony`] renders conversations the way gpt-oss's chat template does
//! and parses the model's output stream into reasoning, final text and
//! tool calls.

pub mod config;
pub mod harmony;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::GptOssArgs;
pub use model::{build, GptOss, GptOssLayer};

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
