//! The Gemma 3 text config (HF `Gemma3TextConfig` names, with its defaults)
//! and what it implies, above all the rope of each layer type.

use std::fmt;

use forge_core::rope::{Rope, RopeParameters};
use forge_core::{ModelConfig, Result};
use forge_gemma2::config::{activation, check_common, config_error, gemma_windows};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Gemma 3 config keys that do not change the numerics of inference:
/// `_sliding_window_pattern` is the private copy of the pattern that
/// transformers 5 writes out but never reads back (it reads
/// `sliding_window_pattern`, and only when `layer_types` is absent), and
/// `cache_implementation` only picks the cache class `generate` uses.
pub const IGNORED_CONFIG_KEYS: &[&str] = &["_sliding_window_pattern", "cache_implementation"];

/// The rope settings a flat `rope_parameters` object may hold.
const FLAT_ROPE_KEYS: &[&str] = &[
    "rope_type",
    "rope_theta",
    "factor",
    "original_max_position_embeddings",
    "low_freq_factor",
    "high_freq_factor",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "attention_factor",
    "truncate",
    "partial_rotary_factor",
    "short_factor",
    "long_factor",
];

/// The config of a Gemma 3 text checkpoint (HF `Gemma3TextConfig` names;
/// defaults as HF's).
#[derive(Debug, Clone, Deserialize)]
pub struct Gemma3TextArgs {
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
    /// Per-head width (also the width of the q/k norms).
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// The MLP activation (GeGLU: a gelu).
    #[serde(default = "default_activation")]
    pub hidden_activation: String,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon (every norm, the q/k norms too).
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// The output head reuses the embedding table.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// The rope of each layer type (see [`GemmaRopes`]).
    #[serde(default)]
    pub rope_parameters: GemmaRopes,
    /// transformers 4: θ of the sliding layers' (default) rope.
    pub rope_local_base_freq: Option<f64>,
    /// Biases on q, k, v and o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5`.
    #[serde(default = "default_query_scalar")]
    pub query_pre_attn_scalar: f64,
    /// Attention window of the sliding layers.
    #[serde(default = "default_window")]
    pub sliding_window: Option<usize>,
    /// Per layer "full_attention" or "sliding_attention".
    pub layer_types: Option<Vec<String>>,
    /// Without `layer_types`: every `n`-th layer is full, the rest slide.
    #[serde(default = "default_pattern")]
    pub sliding_window_pattern: usize,
    /// Final logits become `tanh(logits / c) · c` (null: off).
    pub final_logit_softcapping: Option<f64>,
    /// Kept in HF's config, but HF's Gemma 3 attention never applies it.
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
    131_072
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
fn default_pattern() -> usize {
    6
}

/// `rope_parameters` as a Gemma 3 config holds it: transformers 5 nests
/// one object per layer type (`sliding_attention`, `full_attention`); a
/// transformers-4 config's `rope_theta` and `rope_scaling` (the full
/// layers' rope) arrive as flat keys, which Forge's loader moved there.
#[derive(Debug, Clone, Default)]
pub struct GemmaRopes {
    /// The sliding layers' rope (`None`: absent or null).
    pub sliding_attention: Option<RopeParameters>,
    /// The full layers' rope (`None`: absent or null).
    pub full_attention: Option<RopeParameters>,
    /// Whether either per-type key was there.
    pub nested: bool,
    /// The flat keys, unparsed.
    pub flat: Map<String, Value>,
}

impl<'de> Deserialize<'de> for GemmaRopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct RopesVisitor;
        impl<'de> Visitor<'de> for RopesVisitor {
            type Value = GemmaRopes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rope_parameters object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<GemmaRopes, A::Error> {
                let mut ropes = GemmaRopes::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "sliding_attention" => ropes.sliding_attention = map.next_value()?,
                        "full_attention" => ropes.full_attention = map.next_value()?,
                        _ => {
                            ropes.flat.insert(key, map.next_value()?);
                            continue;
                        }
                    }
                    ropes.nested = true;
                }
                Ok(ropes)
            }
        }
        d.deserialize_map(RopesVisitor)
    }
}

impl Gemma3TextArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Gemma3TextArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        activation(config, &args.hidden_activation)?;
        check_common(
            config,
            (args.num_attention_heads, args.num_key_value_heads),
            args.use_bidirectional_attention,
            &[
                ("query_pre_attn_scalar", Some(args.query_pre_attn_scalar)),
                ("final_logit_softcapping", args.final_logit_softcapping),
                ("rope_local_base_freq", args.rope_local_base_freq),
            ],
        )?;
        if args.layer_types.is_none() && args.sliding_window_pattern == 0 {
            return Err(config_error(
                config,
                "sliding_window_pattern",
                "a positive layer count",
                "0".into(),
            ));
        }
        args.rope_parameters(config)?;
        Ok(args)
    }

    /// The attention window of each layer (`None` = full attention): from
    /// `layer_types`, else every `sliding_window_pattern`-th layer is full.
    pub fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        let types = self.layer_types.as_deref();
        let n = self.num_hidden_layers;
        gemma_windows(
            config,
            types,
            self.sliding_window,
            n,
            self.sliding_window_pattern,
        )
    }

    /// The rope settings of (sliding, full) layers, as HF's
    /// `Gemma3TextConfig` settles them: the nested objects (a null or
    /// missing one is default rope), or the flat transformers-4 keys for the
    /// full layers; θ defaults to `rope_theta` then 1e6 for full layers and
    /// `rope_local_base_freq` then 1e4 for sliding ones.
    pub fn rope_parameters(
        &self,
        config: &ModelConfig,
    ) -> Result<(RopeParameters, RopeParameters)> {
        let ropes = &self.rope_parameters;
        if let Some(key) = ropes
            .flat
            .keys()
            .find(|k| !FLAT_ROPE_KEYS.contains(&k.as_str()))
        {
            return Err(config_error(
                config,
                &format!("rope_parameters.{key}"),
                "sliding_attention, full_attention or a rope setting (rope_type, rope_theta, factor, ...)",
                format!("{:?}", ropes.flat[key]),
            ));
        }
        let flat: RopeParameters = serde_json::from_value(Value::Object(ropes.flat.clone()))
            .map_err(|e| config_error(config, "rope_parameters", "rope settings", e.to_string()))?;
        let (mut sliding, mut full) = if ropes.nested {
            if let Some(key) = ropes.flat.keys().find(|k| *k != "rope_theta") {
                return Err(config_error(
                    config,
                    &format!("rope_parameters.{key}"),
                    "one layout: per-layer-type objects or flat (transformers-4) rope settings, not both",
                    format!("{:?}", ropes.flat[key]),
                ));
            }
            let full = ropes.full_attention.clone().unwrap_or_default();
            (ropes.sliding_attention.clone().unwrap_or_default(), full)
        } else {
            (RopeParameters::default(), flat.clone())
        };
        full.rope_theta = full.rope_theta.or(flat.rope_theta).or(Some(1e6));
        sliding.rope_theta = sliding
            .rope_theta
            .or(self.rope_local_base_freq)
            .or(Some(1e4));
        Ok((sliding, full))
    }

    /// The ropes of (sliding, full) layers.
    pub fn ropes(&self, config: &ModelConfig) -> Result<(Rope, Rope)> {
        let (sliding, full) = self.rope_parameters(config)?;
        let rope = |p: &RopeParameters| {
            Rope::new(
                p,
                self.head_dim,
                10000.0,
                self.max_position_embeddings,
                false,
            )
        };
        Ok((rope(&sliding)?, rope(&full)?))
    }
}
