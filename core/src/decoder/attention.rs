//! Grouped-query attention with rope, the attention of most decoders:
//! `q`, `k`, `v` projections split into heads, rope on `q` and `k` from the
//! cache's offset, the cache update, MLX's fused attention with the
//! layer's mask (and learned sinks, where the family has them), and the
//! output projection.

use mlx_rs::{fast, Array};

use crate::cache::KvCache;
use crate::decoder::LayerContext;
use crate::error::Result;
use crate::nn::{merge_heads, rotate_and_cache, split_heads, Linear};
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
    /// Applied to `q` and `k`.
    pub rope: Rope,
    /// Keys each query sees, itself included (`None`: all).
    pub window: Option<usize>,
    /// `[heads]`: a learned logit per head that joins the softmax with no
    /// value behind it (gpt-oss), so a head can attend to nothing.
    pub sinks: Option<Array>,
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
            rope,
            window,
            sinks: None,
        }
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
        let q = split_heads(&self.q_proj.forward(x)?, heads, head_dim)?;
        let k = split_heads(&self.k_proj.forward(x)?, kv_heads, head_dim)?;
        let v = split_heads(&self.v_proj.forward(x)?, kv_heads, head_dim)?;
        let rope = ctx.rope(&self.rope)?;
        let (q, k, v) = rotate_and_cache(&q, &k, v, &rope, cache)?;
        let sinks = match &self.sinks {
            Some(s) => Some(s.as_dtype(q.dtype())?),
            None => None,
        };
        let out = fast::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            self.scale,
            ctx.mask.sdpa(),
            sinks.as_ref(),
        )?;
        self.o_proj.forward(&merge_heads(&out)?)
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
        line
    }
}
