//! The Qwen3-MoE config (HF `Qwen3MoeConfig` names) and what it implies.

use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use forge_mixtral::config::check_experts;
use forge_qwen2::config::check_act_and_heads;
use serde::Deserialize;

/// Qwen3-MoE config keys that do not change the numerics of inference:
/// - `router_aux_loss_coef`: the weight of the load-balancing loss, a
///   training loss;
/// - `output_router_logits`: only adds the router logits (and that loss)
///   to HF's outputs;
/// - `max_window_layers`: the released configs carry it, but transformers
///   5's Qwen3-MoE never reads it (with `use_sliding_window` every layer
///   slides; see [`Qwen3MoeArgs::windows`]).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[
    "router_aux_loss_coef",
    "output_router_logits",
    "max_window_layers",
];

/// The config of a Qwen3-MoE checkpoint (HF `Qwen3MoeConfig` names).
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3MoeArgs {
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
    /// Key/value heads (defaults to the query heads).
    pub num_key_value_heads: Option<usize>,
    /// Per-head width (defaults to hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon (the q/k norms' too).
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Biases on the q, k, v and o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP activation; only "silu" (SwiGLU).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// The window is used only when this is true.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Attention window (of every layer, with `use_sliding_window`).
    pub sliding_window: Option<usize>,
    /// Every `decoder_sparse_step`-th layer (1-based) is MoE.
    #[serde(default = "default_sparse_step")]
    pub decoder_sparse_step: usize,
    /// Layers that are dense whatever `decoder_sparse_step` says.
    #[serde(default)]
    pub mlp_only_layers: Option<Vec<usize>>,
    /// Width of each routed expert.
    #[serde(default = "default_moe_intermediate")]
    pub moe_intermediate_size: usize,
    /// Routed experts per MoE layer.
    #[serde(default = "default_experts", alias = "num_local_experts")]
    pub num_experts: usize,
    /// Experts chosen per token.
    #[serde(default = "default_top_k")]
    pub num_experts_per_tok: usize,
    /// Renormalise the chosen experts' probabilities to sum to one.
    #[serde(default)]
    pub norm_topk_prob: bool,
}

fn default_intermediate() -> usize {
    6144
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
fn default_sparse_step() -> usize {
    1
}
fn default_moe_intermediate() -> usize {
    768
}
fn default_experts() -> usize {
    128
}
fn default_top_k() -> usize {
    8
}

impl Qwen3MoeArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Qwen3MoeArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
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
        if args.use_sliding_window && args.sliding_window == Some(0) {
            return Err(Error::ConfigValue {
                path: config.path().to_path_buf(),
                key: "sliding_window".into(),
                expected: "a positive window size (use_sliding_window is true)".into(),
                found: "0".into(),
            });
        }
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

    /// Layer `i` is a sparse MoE block (else a dense SwiGLU), as HF decides:
    /// not in `mlp_only_layers`, experts exist, and `(i + 1)` is a multiple
    /// of `decoder_sparse_step`.
    pub fn is_moe_layer(&self, i: usize) -> bool {
        is_moe_layer(
            i,
            self.mlp_only_layers.as_deref(),
            self.num_experts,
            self.decoder_sparse_step,
        )
    }

    /// The attention window of each layer: transformers 5's Qwen3-MoE uses
    /// `sliding_window` on every layer when `use_sliding_window` is true
    /// (it has no `layer_types` and never reads `max_window_layers`).
    pub fn windows(&self) -> Vec<Option<usize>> {
        let window = self.sliding_window.filter(|_| self.use_sliding_window);
        vec![window; self.num_hidden_layers]
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

/// HF's rule for Qwen MoE models: layer `i` is MoE unless it is in
/// `mlp_only_layers`, there are no experts, or `(i + 1)` is not a multiple
/// of `decoder_sparse_step`.
pub fn is_moe_layer(i: usize, mlp_only: Option<&[usize]>, experts: usize, step: usize) -> bool {
    !mlp_only.unwrap_or_default().contains(&i)
        && experts > 0
        && step > 0
        && (i + 1).is_multiple_of(step)
}

/// `decoder_sparse_step` is positive and `mlp_only_layers` names layers
/// that exist.
pub fn check_sparsity(
    config: &ModelConfig,
    step: usize,
    mlp_only: Option<&[usize]>,
    layers: usize,
) -> Result<()> {
    let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected,
        found,
    };
    if step == 0 {
        return Err(bad(
            "decoder_sparse_step",
            "a positive step".into(),
            "0".into(),
        ));
    }
    if let Some(&i) = mlp_only.unwrap_or_default().iter().find(|&&i| i >= layers) {
        return Err(bad(
            "mlp_only_layers",
            format!("layer indices below num_hidden_layers ({layers})"),
            i.to_string(),
        ));
    }
    Ok(())
}

/// The dense layers, "0, 2", or "none".
pub fn describe_dense(layers: usize, is_moe: impl Fn(usize) -> bool) -> String {
    let dense: Vec<String> = (0..layers)
        .filter(|&i| !is_moe(i))
        .map(|i| i.to_string())
        .collect();
    if dense.is_empty() {
        "none".into()
    } else {
        dense.join(", ")
    }
}
