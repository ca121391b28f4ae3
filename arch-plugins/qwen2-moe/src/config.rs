//! The Qwen2-MoE config (HF `Qwen2MoeConfig` names) and what it implies.

use forge_core::decoder::layer_windows;
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{ModelConfig, Result};
use forge_mixtral::config::check_experts;
use forge_qwen2::config::check_act_and_heads;
use forge_qwen3_moe::config::{check_sparsity, is_moe_layer};
use serde::Deserialize;

/// Qwen2-MoE config keys that do not change the numerics of inference:
/// - `router_aux_loss_coef`: the weight of the load-balancing loss, a
///   training loss;
/// - `output_router_logits`: only adds the router logits (and that loss)
///   to HF's outputs.
pub const IGNORED_CONFIG_KEYS: &[&str] = &["router_aux_loss_coef", "output_router_logits"];

/// The config of a Qwen2-MoE checkpoint (HF `Qwen2MoeConfig` names).
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2MoeArgs {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the dense layers' SwiGLU.
    #[serde(default = "default_intermediate")]
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (HF's default is 16; null means the query heads).
    #[serde(default = "default_kv_heads")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width (defaults to hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP activation; only "silu" (SwiGLU).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Biases on the q, k and v projections (never on o).
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    /// The window is used only when this is true.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Attention window of sliding layers.
    pub sliding_window: Option<usize>,
    /// Without `layer_types`: only layers below this index may slide.
    #[serde(default = "default_max_window_layers")]
    pub max_window_layers: usize,
    /// Per layer "full_attention" or "sliding_attention".
    pub layer_types: Option<Vec<String>>,
    /// Every `decoder_sparse_step`-th layer (1-based) is MoE.
    #[serde(default = "default_sparse_step")]
    pub decoder_sparse_step: usize,
    /// Layers that are dense whatever `decoder_sparse_step` says.
    #[serde(default)]
    pub mlp_only_layers: Option<Vec<usize>>,
    /// Width of each routed expert.
    #[serde(default = "default_moe_intermediate")]
    pub moe_intermediate_size: usize,
    /// Width of the shared expert.
    #[serde(default = "default_intermediate")]
    pub shared_expert_intermediate_size: usize,
    /// Routed experts per MoE layer.
    #[serde(default = "default_experts")]
    pub num_experts: usize,
    /// Experts chosen per token.
    #[serde(default = "default_top_k")]
    pub num_experts_per_tok: usize,
    /// Renormalise the chosen experts' probabilities to sum to one.
    #[serde(default)]
    pub norm_topk_prob: bool,
}

fn default_intermediate() -> usize {
    5632
}
fn default_kv_heads() -> Option<usize> {
    Some(16)
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    32768
}
fn default_act() -> String {
    "silu".into()
}
fn default_true() -> bool {
    true
}
fn default_max_window_layers() -> usize {
    28
}
fn default_sparse_step() -> usize {
    1
}
fn default_moe_intermediate() -> usize {
    1408
}
fn default_experts() -> usize {
    60
}
fn default_top_k() -> usize {
    4
}

impl Qwen2MoeArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Qwen2MoeArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        check_act_and_heads(
            config,
            &args.hidden_act,
            args.num_attention_heads,
            args.kv_heads(),
        )?;
        check_sparsity(
            config,
            args.decoder_sparse_step,
            args.mlp_only_layers.as_deref(),
            args.num_hidden_layers,
        )?;
        if (0..args.num_hidden_layers).any(|i| args.is_moe_layer(i)) {
            check_experts(
                config,
                ("num_experts", args.num_experts),
                args.num_experts_per_tok,
            )?;
        }
        args.windows(config)?;
        Ok(args)
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Layer `i` is a sparse MoE block (else a dense SwiGLU), as HF decides.
    pub fn is_moe_layer(&self, i: usize) -> bool {
        is_moe_layer(
            i,
            self.mlp_only_layers.as_deref(),
            self.num_experts,
            self.decoder_sparse_step,
        )
    }

    /// The attention window of each layer, as transformers 5 derives it:
    /// the window counts only with `use_sliding_window`; `layer_types` when
    /// given, else layer `i` slides when it is even and below
    /// `max_window_layers`.
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        let window = self
            .sliding_window
            .filter(|&w| self.use_sliding_window && w > 0);
        match &self.layer_types {
            Some(types) => layer_windows(config, types, window, self.num_hidden_layers),
            None => Ok((0..self.num_hidden_layers)
                .map(|i| window.filter(|_| i % 2 == 0 && i < self.max_window_layers))
                .collect()),
        }
    }

    /// The rope every layer applies.
    pub fn rope(&self) -> Result<Rope> {
        Rope::new(
            &self.rope_parameters,
            self.head_dim(),
            10000.0,
            self.max_position_embeddings,
            false,
        )
    }
}
