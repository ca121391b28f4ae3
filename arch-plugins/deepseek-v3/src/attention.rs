//! Multi-head latent attention (MLA).
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

use forge_core::cache::KvCache;
use forge_core::mlx_rs::fast::ScaledDotProductAttentionMask;
use forge_core::mlx_rs::{fast, ops, Array};
use forge_core::nn::{Linear, RmsNorm};
use forge_core::rope::Rope;
use forge_core::{Result, Weights};

use crate::config::DeepseekV3Args;

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
        })
    }

    /// `x`: `[B, T, hidden]`; `mask`: additive `[B or 1, 1, T, past + T]`
    /// or `None` for "see everything".
    pub fn forward(
        &self,
        x: &Array,
        mask: Option<&Array>,
        cache: Option<&mut Box<dyn KvCache>>,
        path: AttentionPath,
    ) -> Result<Array> {
        let (b, t) = (x.dim(0), x.dim(1));
        let offset = cache.as_ref().map_or(0, |c| c.offset()) as i32;

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
        let q_rope = self.rope.apply(&q_parts[1], offset)?;

        // The latent [B, 1, T, rank] and the shared rope key [B, 1, T, rope].
        let kv = self.kv_a_proj_with_mqa.forward(x)?;
        let kv_parts = kv.split_at_indices(&[self.latent_dim], -1)?;
        let latent =
            self.kv_a_layernorm
                .forward(&kv_parts[0])?
                .reshape(&[b, 1, t, self.latent_dim])?;
        let k_rope = kv_parts[1].reshape(&[b, 1, t, self.rope_dim])?;
        let k_rope = self.rope.apply(&k_rope, offset)?;

        let absorbed = match path {
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
            self.attend_absorbed(&projected, mask)?
        } else {
            self.attend_expanded(&projected, mask)?
        };
        // [B, H, T, v] → [B, T, H·v] → o_proj.
        let out = out
            .transpose_axes(&[0, 2, 1, 3])?
            .reshape(&[b, t, self.heads * self.v_dim])?;
        self.o_proj.forward(&out)
    }

    /// Expands every latent to per-head keys and values, then plain attention.
    fn attend_expanded(&self, p: &Projected, mask: Option<&Array>) -> Result<Array> {
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
            mask.map(ScaledDotProductAttentionMask::Array),
            None,
        )?)
    }

    /// Attends over the latents themselves: scores are `(q_nope·W_uk)·latent
    /// + q_rope·k_rope`, the output `(probs·latent)·W_uvᵀ`.
    fn attend_absorbed(&self, p: &Projected, mask: Option<&Array>) -> Result<Array> {
        // [B, H, T, nope] @ [H, nope, rank] → [B, H, T, rank]
        let q_latent = ops::matmul(&p.q_nope, &self.w_uk)?;
        // Latent and rope key have one head, broadcast over the H query heads.
        let scores = ops::add(
            ops::matmul(&q_latent, p.latent.swap_axes(-1, -2)?)?,
            ops::matmul(&p.q_rope, p.k_rope.swap_axes(-1, -2)?)?,
        )?;
        let mut scores = ops::multiply(&scores, Array::from_f32(self.scale))?;
        if let Some(mask) = mask {
            scores = ops::add(&scores, mask)?;
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
