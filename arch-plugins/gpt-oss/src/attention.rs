//! gpt-oss attention: grouped-query attention with biased projections,
//! YaRN rope, an optional sliding window, and a learned sink per head.
//!
//! A sink is an extra logit in each head's softmax that no value stands
//! behind: `softmax([q·kᵀ·scale + mask, sink])` with the sink's share
//! dropped, so a head can attend to "nothing". MLX's fused attention takes
//! the sinks directly.

use forge_core::cache::KvCache;
use forge_core::mask::LayerMask;
use forge_core::mlx_rs::fast;
use forge_core::mlx_rs::Array;
use forge_core::nn::{merge_heads, rotate_and_cache, split_heads, Linear};
use forge_core::rope::Rope;
use forge_core::{Result, Weights};

use crate::config::GptOssArgs;

/// One layer's attention.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    /// `[heads]`, one sink logit per query head.
    sinks: Array,
    heads: i32,
    kv_heads: i32,
    head_dim: i32,
    scale: f32,
    /// Keys this layer sees, counting the current one (`None`: all).
    pub window: Option<usize>,
    rope: Rope,
}

impl Attention {
    /// Takes `{prefix}.{q,k,v,o}_proj.*` and `{prefix}.sinks`.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        args: &GptOssArgs,
        window: Option<usize>,
        rope: Rope,
    ) -> Self {
        let (hidden, head_dim) = (args.hidden_size, args.head_dim());
        let (heads, kv_heads) = (args.num_attention_heads, args.num_key_value_heads);
        let bias = args.attention_bias;
        let linear = |w: &mut Weights, name: &str, i: usize, o: usize| {
            Linear::load(w, &format!("{prefix}.{name}"), i, o, bias)
        };
        Attention {
            q_proj: linear(w, "q_proj", hidden, heads * head_dim),
            k_proj: linear(w, "k_proj", hidden, kv_heads * head_dim),
            v_proj: linear(w, "v_proj", hidden, kv_heads * head_dim),
            o_proj: linear(w, "o_proj", heads * head_dim, hidden),
            sinks: w.take(&format!("{prefix}.sinks"), &[heads as i32]),
            heads: heads as i32,
            kv_heads: kv_heads as i32,
            head_dim: head_dim as i32,
            scale: (head_dim as f32).powf(-0.5),
            window,
            rope,
        }
    }

    /// The rope this layer applies.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// `x` `[B, T, hidden]` with this layer's `mask` (see [`forge_core::mask`]).
    pub fn forward(
        &self,
        x: &Array,
        mask: &LayerMask,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let q = split_heads(&self.q_proj.forward(x)?, self.heads, self.head_dim)?;
        let k = split_heads(&self.k_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let v = split_heads(&self.v_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let (q, k, v) = rotate_and_cache(&q, &k, v, &self.rope, cache)?;
        let sinks = self.sinks.as_dtype(q.dtype())?;
        let out = fast::scaled_dot_product_attention(&q, &k, &v, self.scale, mask.sdpa(), &sinks)?;
        self.o_proj.forward(&merge_heads(&out)?)
    }
}
