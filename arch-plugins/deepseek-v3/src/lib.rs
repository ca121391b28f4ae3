//! DeepSeek-V3 for Forge (model_type `deepseek_v3`; Kimi K2 uses the same
//! architecture): token embedding, `num_hidden_layers` pre-norm decoder
//! layers (RMSNorm → multi-head latent attention → residual, RMSNorm → MLP
//! → residual), a final RMSNorm and the output head, on forge-core's
//! decoder base.
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: the layer: multi-head latent attention (expanded for
//!   prefill, absorbed for decode), the dense MLP of the first
//!   `first_k_dense_replace` layers and the mixture of experts of the
//!   others (group-limited sigmoid routing, shared experts), and `sanitize`
//!   (FP8 dequantized, per-expert tensors stacked, multi-token-prediction
//!   layers dropped);
//! - [`cache`]: the latent cache (compressed latent + rope key per token).
//!
//! Golden cases: deepseek-v3-grouped-yarn, deepseek-v3-no-qlora,
//! deepseek-v3-dense-first-leftpad.

pub mod cache;
pub mod config;
pub mod model;

use forge_core::registry::Architecture;

pub use cache::LatentCache;
pub use config::DeepseekV3Args;
pub use model::{build, load, sanitize, set_attention_path, AttentionPath, DeepseekV3};

inventory::submit! {
    Architecture {
        model_type: "deepseek_v3",
        // Kimi K2 is DeepSeek-V3's architecture under its own model_type
        // (its config has the same keys; mlx-lm serves it the same way).
        aliases: &["kimi_k2"],
        description: "DeepSeek-V3: multi-head latent attention with a latent cache, \
                      group-limited sigmoid MoE with shared experts",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize,
        build,
    }
}
