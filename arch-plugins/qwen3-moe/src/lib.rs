//! Qwen3-MoE for Forge: Qwen3's decoder (an RMSNorm of width `head_dim` on
//! every query and key head before rope, `attention_bias` on all four
//! projections, rope) with a sparse mixture of experts in place of the
//! MLP in most layers.
//!
//! Each layer is RMSNorm → attention → residual, RMSNorm → feed-forward →
//! residual. The feed-forward of layer `i` is a sparse MoE block when `i`
//! is not in `mlp_only_layers` and `(i + 1)` is a multiple of
//! `decoder_sparse_step`, else a dense SwiGLU of `intermediate_size`. The
//! MoE block (forge-mixtral's): a linear router, a softmax over all
//! `num_experts` logits in float32, the `num_experts_per_tok` most probable
//! experts kept, their probabilities renormalised to sum to one only when
//! `norm_topk_prob`; each expert a SwiGLU of `moe_intermediate_size`.
//! There is no shared expert. With `use_sliding_window`, `sliding_window`
//! applies to every layer (transformers 5 reads no `max_window_layers` or
//! `layer_types` for this family).
//!
//! Golden cases: qwen3-moe-dense-layer-sliding (layer 1 dense through
//! `mlp_only_layers`, norm_topk_prob, a window on every layer; ablations:
//! top-1, norm_topk_prob off, the dense layer zeroed, the window off),
//! qwen3-moe-sparse-step (`decoder_sparse_step` 2, probabilities not
//! renormalised, tied embeddings; ablations: top-1, norm_topk_prob on).
//!
//! - [`config`]: the typed args, HF's dense/MoE layer rule;
//! - [`model`]: the layers, on forge-core's decoder base, and sanitize.

pub mod config;
pub mod model;

use forge_core::registry::Architecture;

pub use config::Qwen3MoeArgs;
pub use model::{build, load, sanitize, Qwen3Moe};

inventory::submit! {
    Architecture {
        model_type: "qwen3_moe",
        aliases: &[],
        description: "Qwen3-MoE: Qwen3 attention (q/k norms), sparse MoE of SwiGLU experts (softmax top-k)",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize,
        build,
    }
}
