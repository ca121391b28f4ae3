//! The Phi-3 config (HF `Phi3Config` names) and what it implies.

use forge_core::decoder::check_heads;
use forge_core::rope::{Rope, RopeParameters, RopeType};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Phi-3 config keys that do not change the numerics of inference.
/// (The dropouts are on the generic list; `auto_map` only names remote
/// code.) Phi-4-mini's config also carries `full_attn_mod`,
/// `interpolate_factor` and `lm_head_bias`, left from its remote code;
/// transformers' Phi-3 reads none of them (a head bias in the weights
/// would still be refused as an unexpected tensor).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[
    "auto_map",
    "full_attn_mod",
    "interpolate_factor",
    "lm_head_bias",
];

/// The config of a Phi-3 checkpoint (HF `Phi3Config` names and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct Phi3Args {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP (the fused gate_up projection is twice this).
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
    /// Longest context (with `original_max_position_embeddings` it gives
    /// LongRoPE's default scaling factor).
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// The pretraining context: LongRoPE uses the long factors past it. HF's
    /// Phi-3 takes this top-level key (default 4096) over the one inside
    /// `rope_parameters`.
    #[serde(default = "default_positions")]
    pub original_max_position_embeddings: usize,
    /// Fraction of each head that is rotated, when `rope_parameters` has none.
    pub partial_rotary_factor: Option<f64>,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP activation; Phi-3's SwiGLU is "silu".
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Keys each query sees, on every layer (`None`: all).
    pub sliding_window: Option<usize>,
    /// Phi-3 has no attention biases; only `false` is accepted.
    pub attention_bias: Option<bool>,
    /// Phi-3 has no MLP biases; only `false` is accepted.
    pub mlp_bias: Option<bool>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_positions() -> usize {
    4096
}
fn default_act() -> String {
    "silu".into()
}

impl Phi3Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let mut args: Phi3Args = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let bad = |key: &str, expected: &str, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: expected.into(),
            found,
        };
        if args.hidden_act != "silu" {
            let found = format!("{:?}", args.hidden_act);
            return Err(bad("hidden_act", "\"silu\" (Phi-3's SwiGLU)", found));
        }
        check_heads(config, args.num_attention_heads, args.kv_heads())?;
        for (key, value) in [
            ("attention_bias", args.attention_bias),
            ("mlp_bias", args.mlp_bias),
        ] {
            if value == Some(true) {
                return Err(bad(key, "false (Phi-3 has no biases)", "true".into()));
            }
        }
        let rope = &mut args.rope_parameters;
        // HF's Phi-3 reads old "yarn" (and "su") configs as longrope.
        if rope.rope_type == RopeType::Yarn {
            rope.rope_type = RopeType::Longrope;
        }
        if !matches!(rope.rope_type, RopeType::Default | RopeType::Longrope) {
            let found = format!("{:?}", rope.rope_type).to_lowercase();
            return Err(bad(
                "rope_parameters.rope_type",
                "\"default\" or \"longrope\"",
                found,
            ));
        }
        rope.original_max_position_embeddings = Some(args.original_max_position_embeddings);
        let factor = args.partial_factor();
        if !(factor > 0.0 && factor <= 1.0) {
            let key = "rope_parameters.partial_rotary_factor";
            return Err(bad(key, "a fraction in (0, 1]", factor.to_string()));
        }
        if args.rotary_dims() < 2 {
            let found = format!("{factor} of head_dim {}", args.head_dim());
            return Err(bad(
                "partial_rotary_factor",
                "at least 2 rotated dims",
                found,
            ));
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

    /// The rotated fraction: `rope_parameters` first, then the top-level key, then 1.
    pub fn partial_factor(&self) -> f64 {
        self.rope_parameters
            .partial_rotary_factor
            .or(self.partial_rotary_factor)
            .unwrap_or(1.0)
    }

    /// Rotated dims per head, `int(head_dim · partial_rotary_factor)` as HF rounds it.
    pub fn rotary_dims(&self) -> usize {
        (self.head_dim() as f64 * self.partial_factor()) as usize
    }

    /// The rope every layer applies to the first `rotary_dims` of each head.
    pub fn rope(&self) -> Result<Rope> {
        Rope::new(
            &self.rope_parameters,
            self.rotary_dims(),
            10000.0,
            self.max_position_embeddings,
            false,
        )
    }
}
