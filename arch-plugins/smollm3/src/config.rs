//! The SmolLM3 config (HF `SmolLM3Config` names) and what it implies.

use forge_core::decoder::{check_heads, layer_windows};
use forge_core::nn::Activation;
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// SmolLM3 config keys that do not change the numerics of inference (the
/// generic list already holds dropouts, token ids and the like).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[];

/// The config of a SmolLM3 checkpoint (HF `SmolLM3Config` names and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct SmolLm3Args {
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
    /// Key/value heads (4 when absent, the query heads when null, as HF).
    #[serde(default = "default_kv_heads")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width (not a `SmolLM3Config` field, but HF reads it when a
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
    /// The output head reuses the embedding table (SmolLM3's default).
    #[serde(default = "default_tied")]
    pub tie_word_embeddings: bool,
    /// The activation of the gated MLP.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Per layer: 1 applies rope, 0 is a NoPE layer.
    pub no_rope_layers: Option<Vec<i64>>,
    /// Without `no_rope_layers`, every `n`-th layer (the n-th, 2n-th, ...)
    /// is a NoPE layer.
    #[serde(default = "default_no_rope_interval")]
    pub no_rope_layer_interval: usize,
    /// Without `layer_types`: the NoPE layers get the sliding window.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Attention window for sliding layers.
    pub sliding_window: Option<usize>,
    /// Per layer "full_attention" or "sliding_attention".
    pub layer_types: Option<Vec<String>>,
}

fn default_kv_heads() -> Option<usize> {
    Some(4)
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    32768
}
fn default_tied() -> bool {
    true
}
fn default_act() -> String {
    "silu".into()
}
fn default_no_rope_interval() -> usize {
    4
}

/// The rope base when the config gives none (`SmolLM3Config.default_theta`).
const DEFAULT_ROPE_THETA: f64 = 2_000_000.0;

impl SmolLm3Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: SmolLm3Args = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found,
        };
        args.activation(config)?;
        check_heads(config, args.num_attention_heads, args.kv_heads())?;
        match &args.no_rope_layers {
            Some(flags) if flags.len() != args.num_hidden_layers => {
                return Err(bad(
                    "no_rope_layers",
                    format!("{} entries (num_hidden_layers)", args.num_hidden_layers),
                    format!("{} entries", flags.len()),
                ));
            }
            Some(flags) => {
                if let Some(other) = flags.iter().find(|f| !matches!(f, 0 | 1)) {
                    return Err(bad(
                        "no_rope_layers",
                        "1 (rope) or 0 (NoPE) per layer".into(),
                        other.to_string(),
                    ));
                }
            }
            None if args.no_rope_layer_interval == 0 => {
                return Err(bad(
                    "no_rope_layer_interval",
                    "a positive interval (no_rope_layers is absent)".into(),
                    "0".into(),
                ));
            }
            None => {}
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

    /// Per layer, whether it applies rope: `no_rope_layers`, or as HF
    /// derives it, NoPE on every `no_rope_layer_interval`-th layer.
    pub fn uses_rope(&self) -> Vec<bool> {
        match &self.no_rope_layers {
            Some(flags) => flags.iter().map(|&f| f != 0).collect(),
            None => (0..self.num_hidden_layers)
                .map(|i| !(i + 1).is_multiple_of(self.no_rope_layer_interval.max(1)))
                .collect(),
        }
    }

    /// The attention window of each layer (`None` = full attention):
    /// `layer_types`, or as HF derives it, the window on the NoPE layers
    /// when `use_sliding_window` and `sliding_window` are both set. Given
    /// `layer_types`, HF's masks follow it whatever `use_sliding_window` says
    /// (that flag only steers flash attention), and so does Forge.
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        let derived;
        let types = match &self.layer_types {
            Some(types) => types,
            None => {
                let sliding = self.use_sliding_window && self.sliding_window.is_some();
                derived = self
                    .uses_rope()
                    .into_iter()
                    .map(|rope| {
                        let kind = if sliding && !rope { "sliding" } else { "full" };
                        format!("{kind}_attention")
                    })
                    .collect::<Vec<_>>();
                &derived
            }
        };
        layer_windows(config, types, self.sliding_window, self.num_hidden_layers)
    }

    /// The rope of the layers that apply one.
    pub fn rope(&self) -> Result<Rope> {
        Rope::new(
            &self.rope_parameters,
            self.head_dim(),
            DEFAULT_ROPE_THETA,
            self.max_position_embeddings,
            false,
        )
    }
}
