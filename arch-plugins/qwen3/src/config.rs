//! The Qwen3 config (HF `Qwen3Config` names) and what it implies.

use forge_core::rope::{Rope, RopeParameters};
use forge_core::{ModelConfig, Result};
use forge_qwen2::config::check_act_and_heads;
use forge_qwen2::QwenWindow;
use serde::Deserialize;

/// Qwen3 config keys that do not change the numerics of inference.
pub const IGNORED_CONFIG_KEYS: &[&str] = &[];

/// The config of a Qwen3 checkpoint (HF `Qwen3Config` names).
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3Args {
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
    /// Per-head width; HF's default is 128, whatever the hidden size.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
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
    /// The MLP activation; Qwen3 uses "silu".
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// The window is used only when this is true.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Attention window of sliding layers.
    pub sliding_window: Option<usize>,
    /// Without `layer_types`: layers from this index on slide.
    #[serde(default = "default_max_window_layers")]
    pub max_window_layers: usize,
    /// Per layer "full_attention" or "sliding_attention".
    pub layer_types: Option<Vec<String>>,
}

fn default_head_dim() -> usize {
    128
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
fn default_max_window_layers() -> usize {
    28
}

impl Qwen3Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Qwen3Args = config.parse_args(IGNORED_CONFIG_KEYS)?;
        check_act_and_heads(
            config,
            &args.hidden_act,
            args.num_attention_heads,
            args.kv_heads(),
        )?;
        Ok(args)
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The attention window of each layer (`None` = full attention), by
    /// the rule Qwen2 and Qwen3 share.
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        QwenWindow {
            use_sliding_window: self.use_sliding_window,
            sliding_window: self.sliding_window,
            max_window_layers: self.max_window_layers,
            layer_types: self.layer_types.as_deref(),
        }
        .windows(config, self.num_hidden_layers)
    }

    /// The rope every layer applies.
    pub fn rope(&self) -> Result<Rope> {
        Rope::new(
            &self.rope_parameters,
            self.head_dim,
            10000.0,
            self.max_position_embeddings,
            false,
        )
    }
}
