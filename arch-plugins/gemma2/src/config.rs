//! The Gemma 2 config (HF `Gemma2Config` names, with its defaults) and what
//! it implies; the checks Gemma 3 shares are public.

use forge_core::decoder::{check_heads, layer_windows};
use forge_core::nn::Activation;
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Gemma 2 config keys that do not change the numerics of inference:
/// `hidden_act` is a stale duplicate that HF's Gemma 2 never reads (it uses
/// `hidden_activation`), `sliding_window_size` a stale duplicate of
/// `sliding_window` that HF never reads either, and `cache_implementation`
/// only picks the cache class `generate` uses.
pub const IGNORED_CONFIG_KEYS: &[&str] =
    &["hidden_act", "sliding_window_size", "cache_implementation"];

/// The config of a Gemma 2 checkpoint (HF `Gemma2Config` names; defaults as HF's).
#[derive(Debug, Clone, Deserialize)]
pub struct Gemma2Args {
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
    /// Key/value heads.
    #[serde(default = "default_kv_heads")]
    pub num_key_value_heads: usize,
    /// Per-head width.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// The MLP activation (GeGLU: a gelu).
    #[serde(default = "default_activation")]
    pub hidden_activation: String,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// The output head reuses the embedding table.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Biases on q, k, v and o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5`.
    #[serde(default = "default_query_scalar")]
    pub query_pre_attn_scalar: f64,
    /// Attention window of the sliding layers.
    #[serde(default = "default_window")]
    pub sliding_window: Option<usize>,
    /// Per layer "full_attention" or "sliding_attention" (HF's default:
    /// sliding on even layers, full on odd ones).
    pub layer_types: Option<Vec<String>>,
    /// Final logits become `tanh(logits / c) · c` (null: off).
    #[serde(default = "default_final_softcap")]
    pub final_logit_softcapping: Option<f64>,
    /// Attention scores become `tanh(s / c) · c` (null: off).
    #[serde(default = "default_attn_softcap")]
    pub attn_logit_softcapping: Option<f64>,
    /// Non-causal attention (embedding models); Forge's decoder is causal.
    pub use_bidirectional_attention: Option<bool>,
}

fn default_kv_heads() -> usize {
    4
}
fn default_head_dim() -> usize {
    256
}
fn default_activation() -> String {
    "gelu_pytorch_tanh".into()
}
fn default_max_positions() -> usize {
    8192
}
fn default_eps() -> f64 {
    1e-6
}
fn default_true() -> bool {
    true
}
fn default_query_scalar() -> f64 {
    256.0
}
fn default_window() -> Option<usize> {
    Some(4096)
}
fn default_final_softcap() -> Option<f64> {
    Some(30.0)
}
fn default_attn_softcap() -> Option<f64> {
    Some(50.0)
}

/// A config error naming `key`, what was expected and what was found.
pub fn config_error(config: &ModelConfig, key: &str, expected: &str, found: String) -> Error {
    Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected: expected.into(),
        found,
    }
}

/// The gated MLP's activation from `hidden_activation`: every HF name of
/// the tanh-approximated gelu (Gemma's), the exact gelu, and the other
/// activations Forge has.
pub fn activation(config: &ModelConfig, name: &str) -> Result<Activation> {
    match name {
        "gelu_pytorch_tanh" | "gelu_new" | "gelu_python_tanh" | "gelu_fast" | "gelu_accurate" => {
            Ok(Activation::GeluTanh)
        }
        "gelu" | "gelu_python" => Ok(Activation::Gelu),
        other => Activation::from_name(other).ok_or_else(|| {
            config_error(
                config,
                "hidden_activation",
                "a gelu (\"gelu_pytorch_tanh\", \"gelu_new\", \"gelu_fast\", \"gelu_accurate\", \
                 \"gelu\"), \"silu\" or \"quick_gelu\"",
                format!("{other:?}"),
            )
        }),
    }
}

/// The checks Gemma 2 and 3 share: grouped heads, a causal model, finite
/// positive soft-caps and attention scalar.
pub fn check_common(
    config: &ModelConfig,
    (heads, kv_heads): (usize, usize),
    bidirectional: Option<bool>,
    positive: &[(&str, Option<f64>)],
) -> Result<()> {
    check_heads(config, heads, kv_heads)?;
    if bidirectional == Some(true) {
        return Err(config_error(
            config,
            "use_bidirectional_attention",
            "false or null (Forge runs Gemma as a causal decoder)",
            "true".into(),
        ));
    }
    for (key, value) in positive {
        if let Some(v) = value {
            if !(v.is_finite() && *v > 0.0) {
                return Err(config_error(
                    config,
                    key,
                    "a positive number",
                    v.to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// Each layer's window from `layer_types`, or from HF's derivation when the
/// config has none: layer `i` slides unless `(i + 1) % pattern == 0`.
pub fn gemma_windows(
    config: &ModelConfig,
    layer_types: Option<&[String]>,
    sliding_window: Option<usize>,
    num_layers: usize,
    pattern: usize,
) -> Result<Vec<Option<usize>>> {
    let derived: Vec<String>;
    let types = match layer_types {
        Some(types) => types,
        None => {
            derived = (0..num_layers)
                .map(|i| match (i + 1) % pattern {
                    0 => "full_attention".to_string(),
                    _ => "sliding_attention".to_string(),
                })
                .collect();
            &derived
        }
    };
    layer_windows(config, types, sliding_window, num_layers)
}

impl Gemma2Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Gemma2Args = config.parse_args(IGNORED_CONFIG_KEYS)?;
        activation(config, &args.hidden_activation)?;
        check_common(
            config,
            (args.num_attention_heads, args.num_key_value_heads),
            args.use_bidirectional_attention,
            &[
                ("query_pre_attn_scalar", Some(args.query_pre_attn_scalar)),
                ("final_logit_softcapping", args.final_logit_softcapping),
                ("attn_logit_softcapping", args.attn_logit_softcapping),
            ],
        )?;
        Ok(args)
    }

    /// The attention window of each layer (`None` = full attention).
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        let types = self.layer_types.as_deref();
        gemma_windows(
            config,
            types,
            self.sliding_window,
            self.num_hidden_layers,
            2,
        )
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
