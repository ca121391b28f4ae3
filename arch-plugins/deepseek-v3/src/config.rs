//! The config of a DeepSeek-V3 checkpoint (HF `DeepseekV3Config` names, plus
//! the keys of the released checkpoints' own config.json).

use forge_core::rope::{RopeParameters, RopeType};
use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// Config keys that do not change the numerics of inference: training-only
/// losses, expert-parallel layout, remote-code pointers, and keys HF derives
/// from others (`qk_head_dim`, `head_dim`: checked for consistency by
/// [`DeepseekV3Args::validate`] when present).
pub const IGNORED_CONFIG_KEYS: &[&str] = &[
    "pretraining_tp",
    "output_router_logits",
    "router_aux_loss_coef",
    "aux_loss_alpha",
    "seq_aux",
    "ep_size",
    "auto_map",
];

/// The config of a DeepSeek-V3 (or Kimi K2) checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct DeepseekV3Args {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the dense MLP layers.
    pub intermediate_size: usize,
    /// Width of one routed (and one shared) expert.
    pub moe_intermediate_size: usize,
    /// Number of decoder layers (the multi-token-prediction layers come after these).
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Must equal the attention heads: MLA expands one latent to every head.
    pub num_key_value_heads: Option<usize>,
    /// Rank of the query compression; `None`: a plain `q_proj`.
    pub q_lora_rank: Option<usize>,
    /// Rank of the shared key/value latent (what the cache stores).
    pub kv_lora_rank: usize,
    /// Per-head width of the query/key part without rope.
    pub qk_nope_head_dim: usize,
    /// Per-head width of the rope part (shared by all heads on the key side).
    pub qk_rope_head_dim: usize,
    /// Per-head width of the values.
    pub v_head_dim: usize,
    /// HF writes `qk_rope_head_dim` here; checked when present.
    pub head_dim: Option<usize>,
    /// HF writes `qk_nope_head_dim + qk_rope_head_dim` here; checked when present.
    pub qk_head_dim: Option<usize>,
    /// Routed experts.
    pub n_routed_experts: usize,
    /// Shared experts, added to every token unweighted (one MLP of
    /// `n_shared_experts × moe_intermediate_size`).
    #[serde(default)]
    pub n_shared_experts: usize,
    /// Routed experts per token.
    pub num_experts_per_tok: usize,
    /// Expert groups for group-limited routing.
    #[serde(default = "one")]
    pub n_group: usize,
    /// Groups kept per token.
    #[serde(default = "one")]
    pub topk_group: usize,
    /// The first layers with a dense MLP instead of experts.
    #[serde(default)]
    pub first_k_dense_replace: usize,
    /// After the dense layers, every `moe_layer_freq`-th layer is MoE.
    #[serde(default = "one")]
    pub moe_layer_freq: usize,
    /// Normalize the selected experts' weights to sum to 1.
    #[serde(default)]
    pub norm_topk_prob: bool,
    /// Multiplier of the routed experts' weights.
    #[serde(default = "unit")]
    pub routed_scaling_factor: f64,
    /// Routing method; only `noaux_tc` (DeepSeek-V3's) is implemented.
    #[serde(default = "noaux_tc")]
    pub topk_method: String,
    /// Router scoring function; only `sigmoid` is DeepSeek-V3's.
    #[serde(default = "sigmoid")]
    pub scoring_func: String,
    /// Multi-token-prediction layers stored after the decoder layers (dropped at load).
    #[serde(default)]
    pub num_nextn_predict_layers: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Biases on q_a_proj, kv_a_proj_with_mqa and o_proj (never on q_proj, q_b_proj, kv_b_proj).
    #[serde(default)]
    pub attention_bias: bool,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP activation; DeepSeek-V3 uses "silu".
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Rope pairs are interleaved `(2i, 2i+1)` rather than rotate-half.
    #[serde(default = "yes")]
    pub rope_interleave: bool,
    /// FP8 block quantization of the released checkpoints.
    pub quantization_config: Option<QuantizationConfig>,
}

/// `quantization_config` of the released FP8 checkpoints.
#[derive(Debug, Clone, Deserialize)]
pub struct QuantizationConfig {
    /// Only "fp8" is understood.
    pub quant_method: String,
    /// "e4m3".
    pub fmt: Option<String>,
    /// `[128, 128]`: one `weight_scale_inv` value per block.
    pub weight_block_size: Option<Vec<usize>>,
    /// How activations were quantized in training/serving; weights are
    /// dequantized at load so activations stay in the model dtype.
    pub activation_scheme: Option<String>,
}

fn one() -> usize {
    1
}
fn unit() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn noaux_tc() -> String {
    "noaux_tc".into()
}
fn sigmoid() -> String {
    "sigmoid".into()
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    4096
}
fn default_act() -> String {
    "silu".into()
}

impl DeepseekV3Args {
    /// Parses and checks the config.
    pub fn parse(config: &ModelConfig) -> Result<Self> {
        let args: Self = config.parse_args(IGNORED_CONFIG_KEYS)?;
        args.validate(config)?;
        Ok(args)
    }

    /// Query/key width per head (no-rope part + rope part).
    pub fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// True when layer `i` has routed experts (the rest are dense).
    ///
    /// HF transformers only looks at `first_k_dense_replace`; the original
    /// DeepSeek code also requires `i % moe_layer_freq == 0`. Every released
    /// checkpoint has `moe_layer_freq` 1, where the two agree.
    pub fn is_moe_layer(&self, i: usize) -> bool {
        i >= self.first_k_dense_replace && i.is_multiple_of(self.moe_layer_freq)
    }

    /// The softmax scale: `qk_head_dim^-1/2`, times `mscale(factor,
    /// mscale_all_dim)²` when a scaled rope sets `mscale_all_dim` (HF's
    /// `yarn_apply_mscale`).
    pub fn softmax_scale(&self) -> f32 {
        let base = (self.qk_head_dim() as f64).powf(-0.5);
        let rope = &self.rope_parameters;
        let m_all = rope.mscale_all_dim.unwrap_or(0.0);
        match (rope.rope_type, rope.factor) {
            (RopeType::Default, _) => base as f32,
            (_, Some(factor)) if m_all != 0.0 => {
                let m = mscale(factor, m_all);
                (base * m * m) as f32
            }
            _ => base as f32,
        }
    }

    /// Bytes per token (all layers, batch 1) of the latent cache: the
    /// normalized latent and the rope key.
    pub fn latent_cache_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        self.num_hidden_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * dtype_bytes
    }

    /// Bytes per token of a cache holding expanded keys and values per head,
    /// for comparison.
    pub fn expanded_cache_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        self.num_hidden_layers
            * self.num_attention_heads
            * (self.qk_head_dim() + self.v_head_dim)
            * dtype_bytes
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        let bad = |key: &str, expected: String, found: String| {
            Err(Error::ConfigValue {
                path: config.path().to_path_buf(),
                key: key.into(),
                expected,
                found,
            })
        };
        if self.hidden_act != "silu" {
            return bad(
                "hidden_act",
                "\"silu\" (DeepSeek-V3's SwiGLU)".into(),
                format!("{:?}", self.hidden_act),
            );
        }
        if self.topk_method != "noaux_tc" {
            return bad(
                "topk_method",
                "\"noaux_tc\" (DeepSeek-V3's group-limited routing with a correction bias; \
                 DeepSeek-V2's \"greedy\" / \"group_limited_greedy\" are not implemented)"
                    .into(),
                format!("{:?}", self.topk_method),
            );
        }
        if self.scoring_func != "sigmoid" {
            return bad(
                "scoring_func",
                "\"sigmoid\" (DeepSeek-V3's router)".into(),
                format!("{:?}", self.scoring_func),
            );
        }
        let heads = self.num_attention_heads;
        if let Some(kv) = self.num_key_value_heads.filter(|&kv| kv != heads) {
            return bad(
                "num_key_value_heads",
                format!("{heads} (num_attention_heads: MLA expands the latent to every head)"),
                kv.to_string(),
            );
        }
        if let Some(d) = self.head_dim.filter(|&d| d != self.qk_rope_head_dim) {
            return bad(
                "head_dim",
                format!(
                    "{} (qk_rope_head_dim, as HF writes it)",
                    self.qk_rope_head_dim
                ),
                d.to_string(),
            );
        }
        if let Some(d) = self.qk_head_dim.filter(|&d| d != self.qk_head_dim()) {
            return bad(
                "qk_head_dim",
                format!(
                    "{} (qk_nope_head_dim + qk_rope_head_dim)",
                    self.qk_head_dim()
                ),
                d.to_string(),
            );
        }
        if !self.qk_rope_head_dim.is_multiple_of(2) {
            return bad(
                "qk_rope_head_dim",
                "an even number (rope rotates pairs)".into(),
                self.qk_rope_head_dim.to_string(),
            );
        }
        if self.moe_layer_freq == 0 {
            return bad("moe_layer_freq", "at least 1".into(), "0".into());
        }
        let experts = self.n_routed_experts;
        if self.n_group == 0 || !experts.is_multiple_of(self.n_group) {
            return bad(
                "n_group",
                format!("a divisor of n_routed_experts ({experts})"),
                self.n_group.to_string(),
            );
        }
        if experts / self.n_group < 2 {
            return bad(
                "n_group",
                format!(
                    "at most {} groups: each group is scored by its top-2 experts",
                    experts / 2
                ),
                self.n_group.to_string(),
            );
        }
        if self.topk_group == 0 || self.topk_group > self.n_group {
            return bad(
                "topk_group",
                format!("between 1 and n_group ({})", self.n_group),
                self.topk_group.to_string(),
            );
        }
        let reachable = self.topk_group * (experts / self.n_group);
        if self.num_experts_per_tok == 0 || self.num_experts_per_tok > reachable {
            return bad(
                "num_experts_per_tok",
                format!("between 1 and {reachable} (the experts of topk_group groups)"),
                self.num_experts_per_tok.to_string(),
            );
        }
        if let Some(q) = &self.quantization_config {
            if q.quant_method != "fp8" {
                return bad(
                    "quantization_config.quant_method",
                    "\"fp8\" (block-quantized weights, dequantized at load)".into(),
                    format!("{:?}", q.quant_method),
                );
            }
        }
        Ok(())
    }
}

/// YaRN's magnitude correction `0.1·m·ln(s) + 1` (1 when `s ≤ 1`).
fn mscale(scale: f64, m: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * m * scale.ln() + 1.0
    }
}
