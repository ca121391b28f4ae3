//! The gpt-oss config (HF `GptOssConfig` names) and what it implies.

use forge_core::decoder::{check_heads, layer_windows};
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Config keys that do not change the numerics of inference.
///
/// `router_aux_loss_coef` and `output_router_logits` only concern training;
/// HF's gpt-oss never reads `hidden_act` (the experts' activation is the
/// clamped SwiGLU below, whatever the key says), nor the released configs'
/// `experts_per_token` (a copy of `num_experts_per_tok`) and
/// `initial_context_length` (the rope's `original_max_position_embeddings`).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[
    "router_aux_loss_coef",
    "output_router_logits",
    "hidden_act",
    "experts_per_token",
    "initial_context_length",
];

/// The config of a gpt-oss checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct GptOssArgs {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of each expert's MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Per-head width (defaults to hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    /// Number of experts.
    pub num_local_experts: usize,
    /// Experts chosen per token.
    pub num_experts_per_tok: usize,
    /// Attention window of the sliding layers, counting the current token.
    pub sliding_window: Option<usize>,
    /// Per layer "sliding_attention" or "full_attention" (default: alternating, sliding first).
    pub layer_types: Option<Vec<String>>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Rope settings (YaRN in the released models).
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// Sigmoid gain of the experts' SwiGLU.
    #[serde(default = "default_alpha")]
    pub swiglu_alpha: f64,
    /// Clamp of the experts' SwiGLU: gate ≤ L, −L ≤ linear ≤ L.
    #[serde(default = "default_limit")]
    pub swiglu_limit: f64,
    /// Biases on q, k, v and o.
    #[serde(default = "default_true")]
    pub attention_bias: bool,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Present in the released MXFP4 checkpoints.
    pub quantization_config: Option<QuantizationConfig>,
}

/// `quantization_config` of a released gpt-oss checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct QuantizationConfig {
    /// Only "mxfp4" is understood.
    pub quant_method: String,
    /// Modules left unquantized (in the released models: everything but the experts).
    #[serde(default)]
    pub modules_to_not_convert: Vec<String>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_max_positions() -> usize {
    131072
}
fn default_alpha() -> f64 {
    1.702
}
fn default_limit() -> f64 {
    7.0
}
fn default_true() -> bool {
    true
}

/// gpt-oss's rope base when the config gives none (HF `default_theta`).
pub const DEFAULT_ROPE_THETA: f64 = 150000.0;

impl GptOssArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: GptOssArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found,
        };
        check_heads(config, args.num_attention_heads, args.num_key_value_heads)?;
        if args.num_experts_per_tok == 0 || args.num_experts_per_tok > args.num_local_experts {
            return Err(bad(
                "num_experts_per_tok",
                format!("1 to num_local_experts ({})", args.num_local_experts),
                args.num_experts_per_tok.to_string(),
            ));
        }
        if let Some(q) = &args.quantization_config {
            if q.quant_method != "mxfp4" {
                return Err(bad(
                    "quantization_config.quant_method",
                    "\"mxfp4\" (the released gpt-oss checkpoints)".into(),
                    format!("{:?}", q.quant_method),
                ));
            }
        }
        args.windows(config)?;
        Ok(args)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// True when the experts are stored as MXFP4 blocks and scales.
    pub fn is_mxfp4(&self) -> bool {
        self.quantization_config.is_some()
    }

    /// The attention window of each layer (`None` = full attention).
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        let types: Vec<String> = match &self.layer_types {
            Some(types) => types.clone(),
            // HF's default: sliding, full, sliding, full, ...
            None => (0..self.num_hidden_layers)
                .map(|i| {
                    let kind = if i % 2 == 0 { "sliding" } else { "full" };
                    format!("{kind}_attention")
                })
                .collect(),
        };
        layer_windows(config, &types, self.sliding_window, self.num_hidden_layers)
    }

    /// The rotary embedding every layer shares.
    pub fn rope(&self) -> Result<Rope> {
        let params = self.rope_parameters.clone().unwrap_or_else(released_rope);
        Rope::new(
            &params,
            self.head_dim(),
            DEFAULT_ROPE_THETA,
            self.max_position_embeddings,
            false,
        )
    }
}

/// HF's default rope for gpt-oss when the config has none: the released YaRN.
fn released_rope() -> RopeParameters {
    RopeParameters {
        rope_type: forge_core::rope::RopeType::Yarn,
        factor: Some(32.0),
        beta_fast: Some(32.0),
        beta_slow: Some(1.0),
        truncate: Some(false),
        original_max_position_embeddings: Some(4096),
        ..Default::default()
    }
}
