//! The towers' attention: packed `qkv` projection, 2-D rotary on queries and
//! keys, and attention only inside blocks of consecutive patches (one image
//! frame, or one window), like HF's `cu_seqlens`: block-diagonal, no mask.

use forge_core::mlx_rs::{fast, ops, Array};
use forge_core::nn::Linear;
use forge_core::{Result, Weights};

use crate::rotary::Angles;

/// `attn.qkv` and `attn.proj`, both with biases.
#[derive(Debug, Clone)]
pub struct VisionAttention {
    qkv: Linear,
    proj: Linear,
    heads: i32,
}

impl VisionAttention {
    /// Takes `{prefix}.qkv` `[3·dim, dim]` and `{prefix}.proj` `[dim, dim]`.
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, heads: usize) -> Self {
        VisionAttention {
            qkv: Linear::load(w, &format!("{prefix}.qkv"), dim, 3 * dim, true),
            proj: Linear::load(w, &format!("{prefix}.proj"), dim, dim, true),
            heads: heads as i32,
        }
    }

    /// `x` `[N, dim]`; patches `bounds[i]..bounds[i+1]` attend to each other only.
    pub fn forward(&self, x: &Array, angles: &Angles, bounds: &[usize]) -> Result<Array> {
        let (n, dim) = (x.dim(0), x.dim(1));
        let head_dim = dim / self.heads;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape(&[n, 3, self.heads, head_dim])?;
        let parts = qkv.split_equal(3, 1)?;
        let heads_first = |a: Array| -> Result<Array> {
            Ok(a.reshape(&[n, self.heads, head_dim])?
                .transpose_axes(&[1, 0, 2])?
                .expand_dims(0)?)
        };
        let q = heads_first(angles.apply(&parts[0].reshape(&[n, self.heads, head_dim])?)?)?;
        let k = heads_first(angles.apply(&parts[1].reshape(&[n, self.heads, head_dim])?)?)?;
        let v = heads_first(parts[2].clone())?;
        let scale = (head_dim as f32).powf(-0.5);
        let inner: Vec<i32> = bounds[1..bounds.len() - 1]
            .iter()
            .map(|&b| b as i32)
            .collect();
        let out = if inner.is_empty() {
            fast::scaled_dot_product_attention(&q, &k, &v, scale, None, None)?
        } else {
            let (qs, ks, vs) = (
                q.split_at_indices(&inner, 2)?,
                k.split_at_indices(&inner, 2)?,
                v.split_at_indices(&inner, 2)?,
            );
            let blocks = qs
                .iter()
                .zip(&ks)
                .zip(&vs)
                .map(|((q, k), v)| fast::scaled_dot_product_attention(q, k, v, scale, None, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            ops::concatenate(&blocks, 2)?
        };
        let out = out
            .squeeze_axes(&[0])?
            .transpose_axes(&[1, 0, 2])?
            .reshape(&[n, dim])?;
        self.proj.forward(&out)
    }
}
