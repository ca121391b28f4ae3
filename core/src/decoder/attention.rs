//! Grouped-query attention with rope, the attention of most decoders:
//! `q`, `k`, `v` projections split into heads, rope on `q` and `k` from the
//! cache's offset, the cache update, MLX's fused attention with the
//! layer's mask (and learned sinks, where the family has them), and the
//! output projection.
//!
//! The family options: norms on `q` and `k` ([`QkNorm`], per head or over
//! the whole projection), a scale other than `head_dim^-0.5`, layers
//! without rope (NoPE), and attention-logit soft-capping, which needs the
//! scores themselves and so runs outside the fused kernel with the mask as
//! an additive array.

use mlx_rs::{fast, ops, Array, Dtype};

use crate::cache::KvCache;
use crate::decoder::LayerContext;
use crate::error::Result;
use crate::nn::{merge_heads, rotate_and_cache, split_heads, Linear, RmsNorm};
use crate::rope::Rope;
use crate::weights::Weights;

/// The head counts and widths of an attention layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    /// Width of the residual stream.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (a divisor of `heads`).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// One layer's grouped-query attention.
#[derive(Debug, Clone)]
pub struct Attention {
    /// `[heads·head_dim, hidden]`.
    pub q_proj: Linear,
    /// `[kv_heads·head_dim, hidden]`.
    pub k_proj: Linear,
    /// `[kv_heads·head_dim, hidden]`.
    pub v_proj: Linear,
    /// `[hidden, heads·head_dim]`.
    pub o_proj: Linear,
    /// Head counts and widths.
    pub dims: AttentionDims,
    /// Multiplies `q·kᵀ` (`head_dim^-0.5` unless the family says otherwise).
    pub scale: f32,
    /// Applied to `q` and `k`; `None` for a layer without positional
    /// encoding (SmolLM3's NoPE layers).
    pub rope: Option<Rope>,
    /// Keys each query sees, itself included (`None`: all).
    pub window: Option<usize>,
    /// `[heads]`: a learned logit per head that joins the softmax with no
    /// value behind it (gpt-oss), so a head can attend to nothing.
    pub sinks: Option<Array>,
    /// Norms of `q` and `k`, before rope.
    pub qk_norm: Option<QkNorm>,
    /// Attention-logit soft-cap `c`: scores become `tanh(s / c) · c`
    /// before the mask (Gemma 2).
    pub softcap: Option<f32>,
}

/// RMSNorms on the queries and keys, applied before rope.
#[derive(Debug, Clone)]
pub enum QkNorm {
    /// One norm of width `head_dim`, shared by every head (Qwen3, Gemma 3).
    PerHead {
        /// Normalizes each query head.
        q: RmsNorm,
        /// Normalizes each key head.
        k: RmsNorm,
    },
    /// One norm over the whole projection, before the head split (OLMo 2).
    Whole {
        /// Width `heads · head_dim`.
        q: RmsNorm,
        /// Width `kv_heads · head_dim`.
        k: RmsNorm,
    },
}

impl QkNorm {
    /// `{prefix}.q_norm` and `{prefix}.k_norm` of width `head_dim`.
    pub fn per_head(w: &mut Weights, prefix: &str, dims: AttentionDims, eps: f64) -> Self {
        QkNorm::PerHead {
            q: RmsNorm::load(w, &format!("{prefix}.q_norm"), dims.head_dim, eps),
            k: RmsNorm::load(w, &format!("{prefix}.k_norm"), dims.head_dim, eps),
        }
    }

    /// `{prefix}.q_norm` and `{prefix}.k_norm` over the whole projections.
    pub fn whole(w: &mut Weights, prefix: &str, dims: AttentionDims, eps: f64) -> Self {
        QkNorm::Whole {
            q: RmsNorm::load(
                w,
                &format!("{prefix}.q_norm"),
                dims.heads * dims.head_dim,
                eps,
            ),
            k: RmsNorm::load(
                w,
                &format!("{prefix}.k_norm"),
                dims.kv_heads * dims.head_dim,
                eps,
            ),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            QkNorm::PerHead { .. } => "q/k RMSNorm per head",
            QkNorm::Whole { .. } => "q/k RMSNorm over the whole projection",
        }
    }
}

impl Attention {
    /// Takes `{prefix}.{q,k,v,o}_proj`; `qkv_bias` and `o_bias` say which
    /// have biases.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        dims: AttentionDims,
        (qkv_bias, o_bias): (bool, bool),
        rope: Rope,
        window: Option<usize>,
    ) -> Self {
        let AttentionDims {
            hidden,
            heads,
            kv_heads,
            head_dim,
        } = dims;
        let p = |name: &str| format!("{prefix}.{name}");
        Attention {
            q_proj: Linear::load(w, &p("q_proj"), hidden, heads * head_dim, qkv_bias),
            k_proj: Linear::load(w, &p("k_proj"), hidden, kv_heads * head_dim, qkv_bias),
            v_proj: Linear::load(w, &p("v_proj"), hidden, kv_heads * head_dim, qkv_bias),
            o_proj: Linear::load(w, &p("o_proj"), heads * head_dim, hidden, o_bias),
            dims,
            scale: (head_dim as f32).powf(-0.5),
            rope: Some(rope),
            window,
            sinks: None,
            qk_norm: None,
            softcap: None,
        }
    }

    /// Multiplies `q·kᵀ` by `scale` instead of `head_dim^-0.5`.
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }

    /// Normalizes `q` and `k` before rope.
    pub fn with_qk_norm(mut self, norm: QkNorm) -> Self {
        self.qk_norm = Some(norm);
        self
    }

    /// Soft-caps the attention logits at `cap`.
    pub fn with_softcap(mut self, cap: f32) -> Self {
        self.softcap = Some(cap);
        self
    }

    /// No rope in this layer (NoPE).
    pub fn without_rope(mut self) -> Self {
        self.rope = None;
        self
    }

    /// Numbers cached per token: a key and a value per kv head.
    pub fn cached_values_per_token(&self) -> usize {
        2 * self.dims.kv_heads * self.dims.head_dim
    }

    /// `x` `[B, T, hidden]` → `[B, T, hidden]`, with the layer's mask from `ctx`.
    pub fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let (heads, kv_heads, head_dim) = (
            self.dims.heads as i32,
            self.dims.kv_heads as i32,
            self.dims.head_dim as i32,
        );
        let mut q = self.q_proj.forward(x)?;
        let mut k = self.k_proj.forward(x)?;
        if let Some(QkNorm::Whole {
            q: q_norm,
            k: k_norm,
        }) = &self.qk_norm
        {
            q = q_norm.forward(&q)?;
            k = k_norm.forward(&k)?;
        }
        let mut q = split_heads(&q, heads, head_dim)?;
        let mut k = split_heads(&k, kv_heads, head_dim)?;
        if let Some(QkNorm::PerHead {
            q: q_norm,
            k: k_norm,
        }) = &self.qk_norm
        {
            q = q_norm.forward(&q)?;
            k = k_norm.forward(&k)?;
        }
        let v = split_heads(&self.v_proj.forward(x)?, kv_heads, head_dim)?;
        let rope = match &self.rope {
            Some(rope) => Some(ctx.rope(rope)?),
            None => None,
        };
        let (q, k, v) = rotate_and_cache(&q, &k, v, rope.as_deref(), cache)?;
        let out = match self.softcap {
            Some(cap) => self.capped_attention(&q, &k, &v, cap, ctx)?,
            None => {
                let sinks = match &self.sinks {
                    Some(s) => Some(s.as_dtype(q.dtype())?),
                    None => None,
                };
                fast::scaled_dot_product_attention(
                    &q,
                    &k,
                    &v,
                    self.scale,
                    ctx.mask.sdpa(),
                    sinks.as_ref(),
                )?
            }
        };
        self.o_proj.forward(&merge_heads(&out)?)
    }

    /// Attention with soft-capped scores, as HF's eager path computes it:
    /// `softmax(tanh(q·kᵀ·scale / cap) · cap + mask)` in float32, then `·v`.
    /// The query heads of one kv head share it without copying the keys.
    fn capped_attention(
        &self,
        q: &Array,
        k: &Array,
        v: &Array,
        cap: f32,
        ctx: &LayerContext<'_>,
    ) -> Result<Array> {
        let (b, heads, t, d) = (q.dim(0), q.dim(1), q.dim(2), q.dim(3));
        let (kv_heads, s) = (k.dim(1), k.dim(2));
        let groups = heads / kv_heads;
        // [B, KV, G, T, D] against [B, KV, 1, S, D].
        let q = q.reshape(&[b, kv_heads, groups, t, d])?;
        let k = ops::expand_dims(k, 2)?;
        let v = ops::expand_dims(v, 2)?;
        let scores = ops::matmul(&q, k.swap_axes(-1, -2)?)?;
        let scores = ops::multiply(&scores, Array::from_f32(self.scale).as_dtype(q.dtype())?)?;
        let cap = Array::from_f32(cap).as_dtype(q.dtype())?;
        let mut scores = ops::multiply(ops::tanh(ops::divide(&scores, &cap)?)?, &cap)?;
        if let Some(mask) = ctx.mask.additive(t as usize, s as usize, scores.dtype())? {
            // [B or 1, 1, T, S] → [B or 1, 1, 1, T, S].
            scores = ops::add(&scores, ops::expand_dims(&mask, 2)?)?;
        }
        let probs = ops::softmax_axis(&scores.as_dtype(Dtype::Float32)?, -1, None)?;
        let out = ops::matmul(probs.as_dtype(v.dtype())?, &v)?;
        Ok(out.reshape(&[b, heads, t, d])?)
    }

    /// The rope line of the plan: the kernel's description, or "none".
    pub fn describe_rope(&self) -> String {
        match &self.rope {
            Some(rope) => rope.describe(),
            None => "none (NoPE)".into(),
        }
    }

    /// One plan line: heads, widths, biases, sinks.
    pub fn describe(&self) -> String {
        let d = &self.dims;
        let mut line = format!(
            "{} heads, {} kv heads, head_dim {}, bias {}",
            d.heads,
            d.kv_heads,
            d.head_dim,
            self.q_proj.bias.is_some()
        );
        if self.sinks.is_some() {
            line.push_str(", learned sinks");
        }
        if let Some(norm) = &self.qk_norm {
            line.push_str(&format!(", {}", norm.describe()));
        }
        let default_scale = (d.head_dim as f32).powf(-0.5);
        if self.scale != default_scale {
            line.push_str(&format!(", scale {}", self.scale));
        }
        if let Some(cap) = self.softcap {
            line.push_str(&format!(", logit soft-cap {cap}"));
        }
        line
    }
}
