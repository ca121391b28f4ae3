//! The OLMo 2 config (HF `Olmo2Config` names) and what it implies.

use forge_core::decoder::check_heads;
use forge_core::nn::Activation;
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{ModelConfig, Result};
use serde::Deserialize;

/// OLMo 2 config keys that do not change the numerics of inference (the
/// generic list already holds dropouts, token ids and the like).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[];

/// The config of an OLMo 2 checkpoint (HF `Olmo2Config` names and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct Olmo2Args {
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
    /// Per-head width (not an `Olmo2Config` field, but HF reads it when a
    /// config carries it; defaults to hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    /// Epsilon of every RMSNorm (q/k, post-sublayer and final).
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Biases on q, k, v and o projections (the MLP never has biases).
    #[serde(default)]
    pub attention_bias: bool,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The activation of the gated MLP.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_max_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

impl Olmo2Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Olmo2Args = config.parse_args(IGNORED_CONFIG_KEYS)?;
        args.activation(config)?;
        check_heads(config, args.num_attention_heads, args.kv_heads())?;
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
