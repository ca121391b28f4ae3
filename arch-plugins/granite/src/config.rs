//! The Granite config (HF `GraniteConfig` names) and what it implies.

use forge_core::decoder::check_heads;
use forge_core::nn::Activation;
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Granite config keys that do not change the numerics of inference (the
/// generic list already holds dropouts, token ids and the like).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[];

/// The config of a Granite checkpoint (HF `GraniteConfig` names and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct GraniteArgs {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (defaults to the query heads).
    pub num_key_value_heads: Option<usize>,
    /// Per-head width (not a `GraniteConfig` field, but HF reads it when a
    /// config carries it; defaults to hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Biases on q, k, v and o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The activation of the gated MLP.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Multiplies the token embeddings.
    #[serde(default = "one")]
    pub embedding_multiplier: f64,
    /// The attention scale, in place of `head_dim^-0.5`.
    #[serde(default = "one")]
    pub attention_multiplier: f64,
    /// Multiplies each sublayer's output before the residual add.
    #[serde(default = "one")]
    pub residual_multiplier: f64,
    /// Divides the logits.
    #[serde(default = "one")]
    pub logits_scaling: f64,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}
fn one() -> f64 {
    1.0
}

impl GraniteArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: GraniteArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found,
        };
        args.activation(config)?;
        check_heads(config, args.num_attention_heads, args.kv_heads())?;
        let multipliers = [
            ("embedding_multiplier", args.embedding_multiplier),
            ("attention_multiplier", args.attention_multiplier),
            ("residual_multiplier", args.residual_multiplier),
        ];
        for (key, value) in multipliers {
            if !value.is_finite() {
                return Err(bad(key, "a finite number".into(), value.to_string()));
            }
        }
        if !args.logits_scaling.is_finite() || args.logits_scaling == 0.0 {
            return Err(bad(
                "logits_scaling",
                "a finite, non-zero number (the logits are divided by it)".into(),
                args.logits_scaling.to_string(),
            ));
        }
        Ok(args)
    }

    /// The MLP activation named by `hidden_act`.
    pub fn activation(&self, config: &ModelConfig) -> Result<Activation> {
        Activation::parse(&self.hidden_act, config, "hidden_act")
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
