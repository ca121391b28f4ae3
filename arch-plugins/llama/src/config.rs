//! The Llama config (HF `LlamaConfig` names) and what it implies.

use forge_core::decoder::{check_heads, layer_windows};
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Llama config keys that do not change the numerics of inference.
/// (`pretraining_tp` only split matmuls in old transformers versions.)
pub const IGNORED_CONFIG_KEYS: &[&str] = &["pretraining_tp"];

/// The config of a Llama checkpoint (HF `LlamaConfig` names).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaArgs {
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
    /// Per-head width (defaults to hidden_size / num_attention_heads).
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
    /// The MLP activation; only "silu" is Llama.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Attention window for sliding layers.
    pub sliding_window: Option<usize>,
    /// Per layer "full_attention" or "sliding_attention".
    pub layer_types: Option<Vec<String>>,
    /// `false` turns the window off even when `sliding_window` is set.
    pub use_sliding_window: Option<bool>,
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

impl LlamaArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: LlamaArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found,
        };
        if args.hidden_act != "silu" {
            return Err(bad(
                "hidden_act",
                "\"silu\" (Llama's SwiGLU)".into(),
                format!("{:?}", args.hidden_act),
            ));
        }
        check_heads(config, args.num_attention_heads, args.kv_heads())?;
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

    /// The attention window of each layer (`None` = full attention).
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        // HF: a window given with use_sliding_window = false is not used.
        let window = match self.use_sliding_window {
            Some(false) => None,
            _ => self.sliding_window,
        };
        match &self.layer_types {
            None => Ok(vec![window; self.num_hidden_layers]),
            Some(types) => layer_windows(config, types, window, self.num_hidden_layers),
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
