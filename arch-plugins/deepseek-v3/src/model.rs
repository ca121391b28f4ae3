//! The DeepSeek-V3 decoder layer and its parts. Everything around the
//! layers is forge-core's decoder base.
//!
//! A layer is RMSNorm → multi-head latent attention → residual, RMSNorm →
//! MLP → residual; the MLP is a dense SwiGLU in the first
//! `first_k_dense_replace` layers and a mixture of experts in the others
//! (a group-limited sigmoid router, routed experts on forge-core's switch
//! layer, always-on shared experts).
//!
//! ## Multi-head latent attention (MLA)
//!
//! Queries: `q_proj`, or `q_a_proj → q_a_layernorm → q_b_proj`, split per
//! head into a no-rope part and a rope part. Keys and values come from one
//! small projection, `kv_a_proj_with_mqa`: a latent of `kv_lora_rank`
//! (normalized by `kv_a_layernorm`) and a single rope key shared by all
//! heads. Only those two go into the [`LatentCache`](crate::cache::LatentCache).
//!
//! Two ways to attend over the cached latents, equal up to rounding:
//! - expanded: `kv_b_proj` turns every cached latent into per-head no-rope
//!   keys and values (used for prefill, where there are many queries);
//! - absorbed: `kv_b_proj`'s key half `W_uk` is folded into the queries and
//!   its value half `W_uv` applied after attention, so attention runs over
//!   the latents directly (used for decode, one query against a long cache).
//!
//! ## From the checkpoint
//! [`sanitize`] dequantizes FP8 block-quantized weights (to bfloat16),
//! drops the multi-token-prediction layers and stacks each MoE layer's
//! per-expert tensors into one `[experts, ...]` tensor per projection.

use forge_core::cache::KvCache;
use forge_core::decoder::{CausalLm, DecoderLayer, DecoderSpec, LayerContext};
use forge_core::fp8;
use forge_core::mask::LayerMask;
use forge_core::mlx_rs::{fast, ops, Array, Dtype};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::switch::{combine, stack_experts, Glu};
use forge_core::nn::{dtype_bytes, Activation, GatedMlp, Linear, RmsNorm, SwitchGlu};
use forge_core::rope::Rope;
use forge_core::{Error, ModelConfig, Result, TensorMap, Weights};
use serde_json::Value;

use crate::cache::LatentCache;
use crate::config::DeepseekV3Args;

const PROJECTIONS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

/// DeepSeek-V3: the decoder base over DeepSeek-V3 layers.
pub type DeepseekV3 = CausalLm<DeepseekV3Layer>;

/// Builds a DeepSeek-V3 model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Parses the config and takes every tensor (as [`sanitize`] left them).
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<DeepseekV3> {
    let args = DeepseekV3Args::parse(config)?;
    let rope = Rope::new(
        &args.rope_parameters,
        args.qk_rope_head_dim,
        10000.0,
        args.max_position_embeddings,
        args.rope_interleave,
    )?;
    let layers = (0..args.num_hidden_layers)
        .map(|i| DeepseekV3Layer::load(weights, &args, i, rope.clone()))
        .collect::<Result<Vec<_>>>()?;
    let spec = DecoderSpec {
        name: "DeepSeek-V3",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = CausalLm::load(weights, spec, layers)?;
    let plan = plan(&args, model.layers(), dtype_bytes(model.dtype()));
    Ok(model.with_plan(plan))
}

/// Chooses how every layer's attention runs over the latent cache (tests
/// compare the paths).
pub fn set_attention_path(model: &mut DeepseekV3, path: AttentionPath) {
    for layer in model.layers_mut() {
        layer.self_attn.path = path;
    }
}

/// One DeepSeek-V3 decoder layer.
#[derive(Debug)]
pub struct DeepseekV3Layer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: FeedForward,
    latent_dim: usize,
    rope_dim: usize,
}

impl DeepseekV3Layer {
    fn load(w: &mut Weights, args: &DeepseekV3Args, i: usize, rope: Rope) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let (hidden, eps) = (args.hidden_size, args.rms_norm_eps);
        let mlp = if args.is_moe_layer(i) {
            FeedForward::Moe(Box::new(Moe::load(w, args, &format!("{p}.mlp"))?))
        } else {
            FeedForward::Dense(swiglu(
                w,
                &format!("{p}.mlp"),
                hidden,
                args.intermediate_size,
            ))
        };
        Ok(DeepseekV3Layer {
            input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), hidden, eps),
            self_attn: Attention::load(w, args, &format!("{p}.self_attn"), rope)?,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp,
            latent_dim: args.kv_lora_rank,
            rope_dim: args.qk_rope_head_dim,
        })
    }
}

impl DecoderLayer for DeepseekV3Layer {
    fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let normed = ctx.input_norm(&self.input_layernorm, x)?;
        let h = ops::add(x, self.self_attn.forward(&normed, ctx, cache)?)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        Ok(ops::add(&h, self.mlp.forward(&normed)?)?)
    }

    /// The latent and the shared rope key.
    fn cached_values_per_token(&self) -> usize {
        self.latent_dim + self.rope_dim
    }

    fn new_cache(&self) -> Box<dyn KvCache> {
        Box::new(LatentCache::new(self.latent_dim, self.rope_dim))
    }
}

/// A SwiGLU MLP without biases: the dense layers and the shared experts.
fn swiglu(w: &mut Weights, prefix: &str, hidden: usize, inter: usize) -> GatedMlp {
    GatedMlp::load(w, prefix, hidden, inter, false, Activation::Silu)
}

/// How attention runs over the latents (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPath {
    /// Absorbed for single-token steps with a cache, expanded otherwise.
    #[default]
    Auto,
    /// Always expand the latents to per-head keys and values.
    Expanded,
    /// Always absorb `kv_b_proj` into the queries and the output.
    Absorbed,
}

/// The query projection: plain or through a low-rank bottleneck.
#[derive(Debug)]
enum QueryProj {
    Plain(Linear),
    LowRank {
        q_a_proj: Linear,
        q_a_layernorm: RmsNorm,
        q_b_proj: Linear,
    },
}

/// One layer's MLA.
#[derive(Debug)]
pub struct Attention {
    q: QueryProj,
    kv_a_proj_with_mqa: Linear,
    kv_a_layernorm: RmsNorm,
    kv_b_proj: Linear,
    /// `kv_b_proj`'s key half per head, `[heads, qk_nope_head_dim, kv_lora_rank]`.
    w_uk: Array,
    /// `kv_b_proj`'s value half per head, transposed: `[heads, kv_lora_rank, v_head_dim]`.
    w_uv_t: Array,
    o_proj: Linear,
    heads: i32,
    nope_dim: i32,
    rope_dim: i32,
    v_dim: i32,
    latent_dim: i32,
    scale: f32,
    /// The rope of the rope part (interleaved or rotate-half).
    pub rope: Rope,
    /// How attention runs over the latents.
    pub path: AttentionPath,
}

impl Attention {
    /// Takes `{prefix}.*` from the checkpoint.
    pub fn load(w: &mut Weights, args: &DeepseekV3Args, prefix: &str, rope: Rope) -> Result<Self> {
        let hidden = args.hidden_size;
        let heads = args.num_attention_heads;
        let qk = args.qk_head_dim();
        let bias = args.attention_bias;
        let eps = args.rms_norm_eps;
        let p = |name: &str| format!("{prefix}.{name}");
        let q = match args.q_lora_rank {
            None => QueryProj::Plain(Linear::load(w, &p("q_proj"), hidden, heads * qk, false)),
            Some(rank) => QueryProj::LowRank {
                q_a_proj: Linear::load(w, &p("q_a_proj"), hidden, rank, bias),
                q_a_layernorm: RmsNorm::load(w, &p("q_a_layernorm"), rank, eps),
                q_b_proj: Linear::load(w, &p("q_b_proj"), rank, heads * qk, false),
            },
        };
        let latent = args.kv_lora_rank;
        let (nope, v) = (args.qk_nope_head_dim, args.v_head_dim);
        let kv_b_proj = Linear::load(w, &p("kv_b_proj"), latent, heads * (nope + v), false);
        let (w_uk, w_uv_t) = split_kv_b(&kv_b_proj.weight, heads, nope, v, latent)?;
        Ok(Attention {
            q,
            kv_a_proj_with_mqa: Linear::load(
                w,
                &p("kv_a_proj_with_mqa"),
                hidden,
                latent + args.qk_rope_head_dim,
                bias,
            ),
            kv_a_layernorm: RmsNorm::load(w, &p("kv_a_layernorm"), latent, eps),
            kv_b_proj,
            w_uk,
            w_uv_t,
            o_proj: Linear::load(w, &p("o_proj"), heads * v, hidden, bias),
            heads: heads as i32,
            nope_dim: nope as i32,
            rope_dim: args.qk_rope_head_dim as i32,
            v_dim: v as i32,
            latent_dim: latent as i32,
            scale: args.softmax_scale(),
            rope,
            path: AttentionPath::Auto,
        })
    }

    /// `x`: `[B, T, hidden]`, with the layer's mask and planted rope from `ctx`.
    pub fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let (b, t) = (x.dim(0), x.dim(1));
        let offset = cache.as_ref().map_or(0, |c| c.offset()) as i32;
        let rope = ctx.rope(&self.rope)?;

        // Queries [B, H, T, nope + rope], split into the two parts.
        let q = match &self.q {
            QueryProj::Plain(q_proj) => q_proj.forward(x)?,
            QueryProj::LowRank {
                q_a_proj,
                q_a_layernorm,
                q_b_proj,
            } => q_b_proj.forward(&q_a_layernorm.forward(&q_a_proj.forward(x)?)?)?,
        };
        let q = q
            .reshape(&[b, t, self.heads, self.nope_dim + self.rope_dim])?
            .transpose_axes(&[0, 2, 1, 3])?;
        let q_parts = q.split_at_indices(&[self.nope_dim], -1)?;
        let q_rope = rope.apply(&q_parts[1], offset)?;

        // The latent [B, 1, T, rank] and the shared rope key [B, 1, T, rope].
        let kv = self.kv_a_proj_with_mqa.forward(x)?;
        let kv_parts = kv.split_at_indices(&[self.latent_dim], -1)?;
        let latent =
            self.kv_a_layernorm
                .forward(&kv_parts[0])?
                .reshape(&[b, 1, t, self.latent_dim])?;
        let k_rope = kv_parts[1].reshape(&[b, 1, t, self.rope_dim])?;
        let k_rope = rope.apply(&k_rope, offset)?;

        let absorbed = match self.path {
            AttentionPath::Auto => cache.is_some() && t == 1,
            AttentionPath::Expanded => false,
            AttentionPath::Absorbed => true,
        };
        let (latent, k_rope) = match cache {
            Some(cache) => cache.update_and_fetch(&latent, &k_rope)?,
            None => (latent, k_rope),
        };
        let projected = Projected {
            q_nope: q_parts[0].clone(),
            q_rope,
            latent,
            k_rope,
        };
        let out = if absorbed {
            self.attend_absorbed(&projected, ctx.mask)?
        } else {
            self.attend_expanded(&projected, ctx.mask)?
        };
        // [B, H, T, v] → [B, T, H·v] → o_proj.
        let out = out
            .transpose_axes(&[0, 2, 1, 3])?
            .reshape(&[b, t, self.heads * self.v_dim])?;
        self.o_proj.forward(&out)
    }

    /// Expands every latent to per-head keys and values, then plain attention.
    fn attend_expanded(&self, p: &Projected, mask: &LayerMask) -> Result<Array> {
        let (b, s) = (p.latent.dim(0), p.latent.dim(2));
        let kv = self
            .kv_b_proj
            .forward(&p.latent)?
            .reshape(&[b, s, self.heads, self.nope_dim + self.v_dim])?
            .transpose_axes(&[0, 2, 1, 3])?;
        let kv_parts = kv.split_at_indices(&[self.nope_dim], -1)?;
        let k_rope = ops::broadcast_to(&p.k_rope, &[b, self.heads, s, self.rope_dim])?;
        let keys = ops::concatenate(&[kv_parts[0].clone(), k_rope], -1)?;
        let queries = ops::concatenate(&[p.q_nope.clone(), p.q_rope.clone()], -1)?;
        Ok(fast::scaled_dot_product_attention(
            &queries,
            &keys,
            &kv_parts[1],
            self.scale,
            mask.sdpa(),
            None,
        )?)
    }

    /// Attends over the latents themselves: scores are `(q_nope·W_uk)·latent
    /// + q_rope·k_rope`, the output `(probs·latent)·W_uvᵀ`.
    fn attend_absorbed(&self, p: &Projected, mask: &LayerMask) -> Result<Array> {
        // [B, H, T, nope] @ [H, nope, rank] → [B, H, T, rank]
        let q_latent = ops::matmul(&p.q_nope, &self.w_uk)?;
        // Latent and rope key have one head, broadcast over the H query heads.
        let scores = ops::add(
            ops::matmul(&q_latent, p.latent.swap_axes(-1, -2)?)?,
            ops::matmul(&p.q_rope, p.k_rope.swap_axes(-1, -2)?)?,
        )?;
        let mut scores = ops::multiply(&scores, Array::from_f32(self.scale))?;
        let (queries, keys) = (scores.dim(2) as usize, scores.dim(3) as usize);
        if let Some(mask) = mask.additive(queries, keys, scores.dtype())? {
            scores = ops::add(&scores, &mask)?;
        }
        let probs = ops::softmax_axis(&scores, -1, true)?;
        // [B, H, T, S] @ [B, 1, S, rank] → [B, H, T, rank] @ [H, rank, v] → [B, H, T, v]
        let out_latent = ops::matmul(&probs, &p.latent)?;
        Ok(ops::matmul(&out_latent, &self.w_uv_t)?)
    }
}

/// What attention works from: the query parts `[B, H, T, ·]` and the
/// (cached) latents and rope keys `[B, 1, S, ·]`.
struct Projected {
    q_nope: Array,
    q_rope: Array,
    latent: Array,
    k_rope: Array,
}

/// Splits `kv_b_proj.weight` `[H·(nope + v), rank]` into `W_uk` `[H, nope,
/// rank]` and `W_uvᵀ` `[H, rank, v]`.
fn split_kv_b(
    weight: &Array,
    heads: usize,
    nope: usize,
    v: usize,
    rank: usize,
) -> Result<(Array, Array)> {
    // A mis-shaped checkpoint tensor arrives as an empty placeholder; the
    // loader reports it, so hand back placeholders too.
    if weight.size() != heads * (nope + v) * rank {
        return Ok((weight.clone(), weight.clone()));
    }
    let per_head = weight.reshape(&[heads as i32, (nope + v) as i32, rank as i32])?;
    let parts = per_head.split_at_indices(&[nope as i32], 1)?;
    Ok((parts[0].clone(), parts[1].swap_axes(-1, -2)?))
}

/// DeepSeek-V3's router (`noaux_tc`), computed in f32.
#[derive(Debug)]
pub struct Router {
    /// `[experts, hidden]`, f32.
    weight: Array,
    /// `[experts]`, f32: added to the scores to choose experts, never to weigh them.
    correction_bias: Array,
    experts: i32,
    groups: i32,
    topk_group: i32,
    top_k: i32,
    norm_topk_prob: bool,
    scaling: f32,
}

impl Router {
    /// Takes `{prefix}.weight` and `{prefix}.e_score_correction_bias`.
    pub fn load(w: &mut Weights, args: &DeepseekV3Args, prefix: &str) -> Result<Self> {
        let experts = args.n_routed_experts as i32;
        let weight = w.take(
            &format!("{prefix}.weight"),
            &[experts, args.hidden_size as i32],
        );
        let bias = w.take(&format!("{prefix}.e_score_correction_bias"), &[experts]);
        Ok(Router {
            weight: weight.as_dtype(Dtype::Float32)?,
            correction_bias: bias.as_dtype(Dtype::Float32)?,
            experts,
            groups: args.n_group as i32,
            topk_group: args.topk_group as i32,
            top_k: args.num_experts_per_tok as i32,
            norm_topk_prob: args.norm_topk_prob,
            scaling: args.routed_scaling_factor as f32,
        })
    }

    /// Routes `x` `[N, hidden]`: the chosen experts `[N, top_k]` (uint32) and
    /// their weights `[N, top_k]` (f32).
    ///
    /// Scores are `sigmoid(x Wᵀ)`. Choosing uses the scores plus the
    /// correction bias: each group of experts is rated by the sum of its two
    /// best, only the best `topk_group` groups stay eligible, and the
    /// `top_k` best eligible experts are chosen. Their weights are the plain
    /// scores, normalized to sum to one when `norm_topk_prob`, times
    /// `routed_scaling_factor`.
    pub fn route(&self, x: &Array) -> Result<(Array, Array)> {
        let logits = ops::matmul(x.as_dtype(Dtype::Float32)?, self.weight.t())?;
        let scores = ops::sigmoid(&logits)?;
        let choice = ops::add(&scores, &self.correction_bias)?;
        let choice = if self.topk_group < self.groups {
            self.keep_best_groups(&choice)?
        } else {
            choice
        };
        let order = ops::argpartition_axis(ops::negative(&choice)?, self.top_k - 1, -1)?;
        let indices = order.split_at_indices(&[self.top_k], -1)?.swap_remove(0);
        let mut weights = scores.take_along_axis(&indices, -1)?;
        if self.norm_topk_prob {
            let total = ops::add(weights.sum_axis(-1, true)?, Array::from_f32(1e-20))?;
            weights = ops::divide(&weights, &total)?;
        }
        let weights = ops::multiply(&weights, Array::from_f32(self.scaling))?;
        Ok((indices, weights))
    }

    /// Sets the choice score of every expert outside the best `topk_group`
    /// groups to -inf.
    fn keep_best_groups(&self, choice: &Array) -> Result<Array> {
        let n = choice.dim(0);
        let per_group = self.experts / self.groups;
        let grouped = choice.reshape(&[n, self.groups, per_group])?;
        // Each group's rating: the sum of its two best experts.
        let sorted = ops::sort_axis(&grouped, -1)?;
        let best_two = sorted
            .split_at_indices(&[per_group - 2], -1)?
            .swap_remove(1);
        let rating = best_two.sum_axis(-1, false)?;
        // The topk_group-th best rating is the bar a group must reach.
        let bar = ops::sort_axis(&rating, -1)?
            .take_axis(Array::from_int(self.groups - self.topk_group), -1)?
            .reshape(&[n, 1])?;
        let kept = rating.ge(&bar)?.reshape(&[n, self.groups, 1])?;
        let masked = ops::select(&kept, &grouped, Array::from_f32(f32::NEG_INFINITY))?;
        Ok(masked.reshape(&[n, self.experts])?)
    }
}

/// A mixture-of-experts MLP.
#[derive(Debug)]
pub struct Moe {
    router: Router,
    experts: SwitchGlu,
    shared_experts: Option<GatedMlp>,
}

impl Moe {
    /// Takes `{prefix}.gate.*`, the experts stacked by [`sanitize`] and `{prefix}.shared_experts.*`.
    pub fn load(w: &mut Weights, args: &DeepseekV3Args, prefix: &str) -> Result<Self> {
        let shared_experts = (args.n_shared_experts > 0).then(|| {
            swiglu(
                w,
                &format!("{prefix}.shared_experts"),
                args.hidden_size,
                args.moe_intermediate_size * args.n_shared_experts,
            )
        });
        Ok(Moe {
            router: Router::load(w, args, &format!("{prefix}.gate"))?,
            experts: SwitchGlu::load(
                w,
                &format!("{prefix}.experts"),
                args.n_routed_experts,
                args.hidden_size,
                args.moe_intermediate_size,
                false,
                Glu::Gated(Activation::Silu),
            ),
            shared_experts,
        })
    }

    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let shape = x.shape().to_vec();
        let flat = x.reshape(&[-1, x.dim(-1)])?;
        let (indices, weights) = self.router.route(&flat)?;
        let routed = combine(&self.experts.forward(&flat, &indices)?, &weights)?.reshape(&shape)?;
        match &self.shared_experts {
            Some(shared) => Ok(ops::add(&routed, shared.forward(x)?)?),
            None => Ok(routed),
        }
    }
}

/// The MLP of one decoder layer.
#[derive(Debug)]
pub enum FeedForward {
    /// The first `first_k_dense_replace` layers.
    Dense(GatedMlp),
    /// The rest.
    Moe(Box<Moe>),
}

impl FeedForward {
    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            FeedForward::Dense(mlp) => mlp.forward(x),
            FeedForward::Moe(moe) => moe.forward(x),
        }
    }
}

/// The architecture's `sanitize`.
pub fn sanitize(config: &ModelConfig, mut tensors: TensorMap) -> Result<TensorMap> {
    let layers = config_usize(config, "num_hidden_layers")?;
    let experts = config_usize(config, "n_routed_experts")?;
    let mtp = config_usize(config, "num_nextn_predict_layers").unwrap_or(0);
    if let Some(block) = fp8_block_size(config)? {
        fp8::dequantize_blocks(&mut tensors, block)?;
    }
    drop_mtp_layers(&mut tensors, layers, mtp);
    for layer in 0..layers {
        let prefix = format!("model.layers.{layer}.mlp.experts");
        stack_experts(&mut tensors, &prefix, &prefix, experts, &PROJECTIONS)?;
    }
    Ok(tensors)
}

fn config_usize(config: &ModelConfig, key: &str) -> Result<usize> {
    match config.json().get(key) {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0) as usize),
        other => Err(Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: "a non-negative integer".into(),
            found: other.map_or("no such key".into(), |v| v.to_string()),
        }),
    }
}

/// The block size of an FP8 block-quantized checkpoint (`quantization_config`
/// with `quant_method` "fp8"; `weight_block_size` defaults to 128×128).
fn fp8_block_size(config: &ModelConfig) -> Result<Option<[usize; 2]>> {
    let Some(q) = config.json().get("quantization_config") else {
        return Ok(None);
    };
    if q.get("quant_method").and_then(Value::as_str) != Some("fp8") {
        return Ok(None);
    }
    match q.get("weight_block_size") {
        None | Some(Value::Null) => Ok(Some([128, 128])),
        Some(Value::Array(v)) => match v.as_slice() {
            [Value::Number(a), Value::Number(b)] => match (a.as_u64(), b.as_u64()) {
                (Some(a), Some(b)) if a > 0 && b > 0 => Ok(Some([a as usize, b as usize])),
                _ => Err(block_size_error(config, q)),
            },
            _ => Err(block_size_error(config, q)),
        },
        Some(_) => Err(block_size_error(config, q)),
    }
}

fn block_size_error(config: &ModelConfig, q: &Value) -> Error {
    Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: "quantization_config.weight_block_size".into(),
        expected: "two positive integers (rows, columns of a block)".into(),
        found: q
            .get("weight_block_size")
            .map_or("".into(), |v| v.to_string()),
    }
}

/// Removes `model.layers.{i}.*` for the `mtp` layers stored after the
/// `layers` decoder layers (DeepSeek-V3's multi-token-prediction module,
/// which next-token inference does not use).
fn drop_mtp_layers(tensors: &mut TensorMap, layers: usize, mtp: usize) {
    let prefixes: Vec<String> = (layers..layers + mtp)
        .map(|i| format!("model.layers.{i}."))
        .collect();
    tensors.retain(|name, _| !prefixes.iter().any(|p| name.starts_with(p)));
}

/// DeepSeek-V3's own plan lines; `bytes` per cached number.
fn plan(a: &DeepseekV3Args, layers: &[DeepseekV3Layer], bytes: usize) -> Vec<PlanItem> {
    let query = match a.q_lora_rank {
        Some(r) => format!("q_a_proj → RMSNorm → q_b_proj (q_lora_rank {r})"),
        None => "q_proj".into(),
    };
    let moe_layers = (0..a.num_hidden_layers)
        .filter(|&i| a.is_moe_layer(i))
        .count();
    let rope = layers
        .first()
        .map(|l| l.self_attn.rope.describe())
        .unwrap_or_default();
    let mut plan = vec![
        PlanItem::new(
            "attention",
            format!(
                "MLA, {} heads, qk_nope_head_dim {}, qk_rope_head_dim {}, v_head_dim {}, \
                 kv_lora_rank {}, queries {query}, bias {}, softmax scale {}",
                a.num_attention_heads,
                a.qk_nope_head_dim,
                a.qk_rope_head_dim,
                a.v_head_dim,
                a.kv_lora_rank,
                a.attention_bias,
                a.softmax_scale()
            ),
        ),
        PlanItem::new(
            "kv cache",
            format!(
                "latent + rope key, {} values per token per layer ({} bytes/token; an \
                 expanded K/V cache would take {} bytes/token); decode attends through \
                 absorbed kv_b_proj",
                a.kv_lora_rank + a.qk_rope_head_dim,
                a.latent_cache_bytes_per_token(bytes),
                a.expanded_cache_bytes_per_token(bytes)
            ),
        ),
        PlanItem::new(
            "mlp",
            format!(
                "dense SwiGLU (intermediate {}) in layers {}; MoE in {moe_layers} layers",
                a.intermediate_size,
                describe_dense(a),
            ),
        ),
        PlanItem::new(
            "moe",
            format!(
                "{} routed experts (intermediate {}), {} per token, sigmoid router with \
                 correction bias ({}), {} groups keep {}, norm_topk_prob {}, scaling {}, \
                 shared experts {}",
                a.n_routed_experts,
                a.moe_intermediate_size,
                a.num_experts_per_tok,
                a.topk_method,
                a.n_group,
                a.topk_group,
                a.norm_topk_prob,
                a.routed_scaling_factor,
                a.n_shared_experts
            ),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
        PlanItem::new(
            "mtp layers",
            match a.num_nextn_predict_layers {
                0 => "none in the config".to_string(),
                n => format!(
                    "{n} multi-token-prediction layer(s) (model.layers.{}.*) dropped at load: \
                     not used for next-token logits",
                    a.num_hidden_layers
                ),
            },
        ),
    ];
    if let Some(q) = &a.quantization_config {
        plan.push(PlanItem::new(
            "quantization",
            format!(
                "{} {} with block size {:?}: dequantized at load",
                q.quant_method,
                q.fmt.as_deref().unwrap_or("e4m3"),
                q.weight_block_size.as_deref().unwrap_or(&[128, 128])
            ),
        ));
    }
    plan
}

/// The dense layers, "0, 1, 2", or "none".
fn describe_dense(a: &DeepseekV3Args) -> String {
    let dense: Vec<String> = (0..a.num_hidden_layers)
        .filter(|&i| !a.is_moe_layer(i))
        .map(|i| i.to_string())
        .collect();
    if dense.is_empty() {
        "none".into()
    } else {
        dense.join(", ")
    }
}

#[cfg(test)]
mod sanitize_tests {
    use super::*;

    fn config(text: &str) -> ModelConfig {
        ModelConfig::from_str(text, "config.json", true).unwrap()
    }

    #[test]
    fn experts_are_stacked_in_order_and_mtp_layers_dropped() {
        let mut tensors = TensorMap::new();
        for e in 0..3 {
            for proj in PROJECTIONS {
                let value = Array::from_slice(&[e as f32; 4], &[2, 2]);
                tensors.insert(
                    format!("model.layers.0.mlp.experts.{e}.{proj}.weight"),
                    value,
                );
            }
        }
        tensors.insert("model.layers.1.embed.weight".into(), Array::from_f32(1.0));
        tensors.insert("model.norm.weight".into(), Array::from_f32(1.0));
        let cfg = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 1, "n_routed_experts": 3,
                "num_nextn_predict_layers": 1}"#,
        );
        let out = sanitize(&cfg, tensors).unwrap();
        let names: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "model.layers.0.mlp.experts.down_proj.weight",
                "model.layers.0.mlp.experts.gate_proj.weight",
                "model.layers.0.mlp.experts.up_proj.weight",
                "model.norm.weight",
            ]
        );
        let gate = &out["model.layers.0.mlp.experts.gate_proj.weight"];
        assert_eq!(gate.shape(), &[3, 2, 2]);
        let firsts: Vec<f32> = gate.as_slice::<f32>().iter().step_by(4).copied().collect();
        assert_eq!(firsts, [0.0, 1.0, 2.0]);
    }

    #[test]
    fn an_incomplete_expert_set_is_left_for_the_strict_load() {
        let mut tensors = TensorMap::new();
        tensors.insert(
            "model.layers.0.mlp.experts.0.gate_proj.weight".into(),
            Array::from_slice(&[0f32; 4], &[2, 2]),
        );
        let cfg = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 1, "n_routed_experts": 2}"#,
        );
        let out = sanitize(&cfg, tensors).unwrap();
        assert!(out.contains_key("model.layers.0.mlp.experts.0.gate_proj.weight"));
    }

    #[test]
    fn fp8_weights_are_dequantized_with_their_block_scales() {
        let mut tensors = TensorMap::new();
        tensors.insert(
            "model.embed_tokens.weight".into(),
            Array::from_slice(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]),
        );
        tensors.insert(
            "model.embed_tokens.weight_scale_inv".into(),
            Array::from_slice(&[0.5f32, 4.0], &[1, 2]),
        );
        let cfg = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 0, "n_routed_experts": 2,
                "quantization_config": {"quant_method": "fp8", "weight_block_size": [2, 2]}}"#,
        );
        let out = sanitize(&cfg, tensors).unwrap();
        assert_eq!(out.len(), 1);
        let w = out["model.embed_tokens.weight"]
            .as_dtype(forge_core::mlx_rs::Dtype::Float32)
            .unwrap();
        assert_eq!(w.as_slice::<f32>(), [0.5, 1.0, 12.0, 2.0, 2.5, 24.0]);
        let bad = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 0, "n_routed_experts": 2,
                "quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}}"#,
        );
        let err = sanitize(&bad, TensorMap::new()).unwrap_err().to_string();
        assert!(
            err.contains("weight_block_size") && err.contains("[128]"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_layer_count_is_a_config_error() {
        let cfg = config(r#"{"model_type": "deepseek_v3", "n_routed_experts": 2}"#);
        let err = sanitize(&cfg, TensorMap::new()).unwrap_err().to_string();
        assert!(err.contains("num_hidden_layers"), "{err}");
    }
}
