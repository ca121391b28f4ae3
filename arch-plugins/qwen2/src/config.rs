//! The Qwen2 config (HF `Qwen2Config` names) and what it implies.

use forge_core::decoder::{check_heads, layer_windows};
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Qwen2 config keys that do not change the numerics of inference.
pub const IGNORED_CONFIG_KEYS: &[&str] = &[];

/// The config of a Qwen2 checkpoint (HF `Qwen2Config` names).
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2Args {
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
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP activation; Qwen2 uses "silu".
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

/// The settings that choose Qwen's sliding layers.
#[derive(Debug, Clone, Copy)]
pub struct QwenWindow<'a> {
    /// `use_sliding_window`.
    pub use_sliding_window: bool,
    /// `sliding_window`.
    pub sliding_window: Option<usize>,
    /// `max_window_layers`.
    pub max_window_layers: usize,
    /// `layer_types`.
    pub layer_types: Option<&'a [String]>,
}

impl QwenWindow<'_> {
    /// Each layer's window, as transformers 5 derives it for Qwen2 and
    /// Qwen3: the window counts only when `use_sliding_window` is true;
    /// without `layer_types`, the layers from `max_window_layers` on slide.
    pub fn windows(&self, config: &ModelConfig, n: usize) -> Result<Vec<Option<usize>>> {
        let window = self.sliding_window.filter(|_| self.use_sliding_window);
        match self.layer_types {
            Some(types) => layer_windows(config, types, window, n),
            None => Ok((0..n)
                .map(|i| window.filter(|_| i >= self.max_window_layers))
                .collect()),
        }
    }
}

impl Qwen2Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Qwen2Args = config.parse_args(IGNORED_CONFIG_KEYS)?;
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

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// The attention window of each layer (`None` = full attention).
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
            self.head_dim(),
            10000.0,
            self.max_position_embeddings,
            false,
        )
    }
}

/// Qwen's MLP is SwiGLU, and its kv heads must divide its query heads.
pub fn check_act_and_heads(
    config: &ModelConfig,
    hidden_act: &str,
    heads: usize,
    kv_heads: usize,
) -> Result<()> {
    let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected,
        found,
    };
    if hidden_act != "silu" {
        return Err(bad(
            "hidden_act",
            "\"silu\" (SwiGLU)".into(),
            format!("{hidden_act:?}"),
        ));
    }
    check_heads(config, heads, kv_heads)
}
