//! Qwen2-MoE for Forge: Qwen2's decoder (biases on the q, k and v
//! projections when `qkv_bias`, none on o, rope) with a sparse mixture of
//! experts and a shared expert in place of the MLP in most layers.
//!
//! Each layer is RMSNorm → attention → residual, RMSNorm → feed-forward →
//! residual. The feed-forward of layer `i` is a sparse MoE block when `i`
//! is not in `mlp_only_layers` and `(i + 1)` is a multiple of
//! `decoder_sparse_step`, else a dense SwiGLU of `intermediate_size`. The
//! MoE block (forge-mixtral's): a linear router, a softmax over all
//! `num_experts` logits in float32, the `num_experts_per_tok` most probable
//! experts kept, renormalised to sum to one only when `norm_topk_prob`;
//! each routed expert a SwiGLU of `moe_intermediate_size`; plus a shared
//! SwiGLU expert of `shared_expert_intermediate_size` that every token goes
//! through, scaled by `sigmoid(shared_expert_gate(x))` (one logit per
//! token). Sliding windows apply only with `use_sliding_window`: as
//! `layer_types` says, or (transformers 5's default) on the even layers
//! below `max_window_layers`.
//!
//! Golden cases: qwen2-moe-shared-expert (shared expert and its gate,
//! qkv biases, a sliding first layer; ablations: top-1, norm_topk_prob
//! on, shared expert zeroed, gate zeroed, biases zeroed, no window),
//! qwen2-moe-dense-first (layer 0 dense through `mlp_only_layers`,
//! norm_topk_prob true, `qkv_bias` false).
//!
//! - [`config`]: the typed args, the window rule;
//! - [`model`]: the layers, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::Architecture;

pub use config::Qwen2MoeArgs;
pub use model::{build, load, sanitize, Qwen2Moe};

inventory::submit! {
    Architecture {
        model_type: "qwen2_moe",
        aliases: &[],
        description: "Qwen2-MoE: Qwen2 attention, sparse MoE (softmax top-k) plus a sigmoid-gated shared expert",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize,
        build,
    }
}
