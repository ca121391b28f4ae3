//! The Mixtral config (HF `MixtralConfig` names) and what it implies.

use forge_core::decoder::check_heads;
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Mixtral config keys that do not change the numerics of inference:
/// - `router_aux_loss_coef`: the weight of the load-balancing loss, a
///   training loss;
/// - `output_router_logits`: only adds the router logits (and that loss)
///   to HF's outputs; the hidden states and logits are the same;
/// - `router_jitter_noise`: multiplicative noise HF applies to the MoE
///   input only in training mode.
pub const IGNORED_CONFIG_KEYS: &[&str] = &[
    "router_aux_loss_coef",
    "output_router_logits",
    "router_jitter_noise",
];

/// The config of a Mixtral checkpoint (HF `MixtralConfig` names).
#[derive(Debug, Clone, Deserialize)]
pub struct MixtralArgs {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of each expert's SwiGLU.
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
    /// The expert activation; only "silu" (SwiGLU) is Mixtral.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Attention window of every layer (`null`: full attention).
    pub sliding_window: Option<usize>,
    /// Experts per MoE layer (HF also accepts `num_experts`).
    #[serde(default = "default_experts", alias = "num_experts")]
    pub num_local_experts: usize,
    /// Experts chosen per token.
    #[serde(default = "default_top_k")]
    pub num_experts_per_tok: usize,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_max_positions() -> usize {
    4096 * 32
}
fn default_act() -> String {
    "silu".into()
}
fn default_experts() -> usize {
    8
}
fn default_top_k() -> usize {
    2
}

/// Mixtral's rope theta when the config names none (HF's `default_theta`).
pub const DEFAULT_ROPE_THETA: f64 = 1_000_000.0;

impl MixtralArgs {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: MixtralArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found,
        };
        if args.hidden_act != "silu" {
            return Err(bad(
                "hidden_act",
                "\"silu\" (Mixtral's SwiGLU experts)".into(),
                format!("{:?}", args.hidden_act),
            ));
        }
        check_heads(config, args.num_attention_heads, args.kv_heads())?;
        if args.sliding_window == Some(0) {
            return Err(bad(
                "sliding_window",
                "a positive window size or null".into(),
                "0".into(),
            ));
        }
        check_experts(
            config,
            ("num_local_experts", args.num_local_experts),
            args.num_experts_per_tok,
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

    /// The rope every layer applies.
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

/// At least one expert, and `num_experts_per_tok` between 1 and the
/// number of experts (`experts` is the config key and its value).
pub fn check_experts(
    config: &ModelConfig,
    (experts_key, experts): (&str, usize),
    top_k: usize,
) -> Result<()> {
    let bad = |key: &str, expected: String, found: usize| Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected,
        found: found.to_string(),
    };
    if experts == 0 {
        return Err(bad(experts_key, "at least one expert".into(), experts));
    }
    if top_k == 0 || top_k > experts {
        return Err(bad(
            "num_experts_per_tok",
            format!("between 1 and {experts_key} ({experts})"),
            top_k,
        ));
    }
    Ok(())
}
