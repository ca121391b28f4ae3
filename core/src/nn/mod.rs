//! Small building blocks shared by architectures: linear layers, RMSNorm,
//! embeddings, head reshapes, activations, gated MLPs and the switch layer
//! of stacked experts. (The decoders' shared attention is in
//! [`crate::decoder`], which builds on these.) Weights are plain arrays taken from a
//! [`Weights`]; there is no module framework.

use mlx_rs::{fast, ops, Array, Dtype};

use crate::cache::KvCache;
use crate::error::Result;
use crate::quant::QuantParams;
use crate::rope::Rope;
use crate::weights::Weights;

/// `y = x Wᵀ + b`, with `W` stored `[out, in]` as in HF checkpoints, or
/// quantized (see [`crate::quant`]).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`, or the packed codes `[out, in * bits / 32]` when quantized.
    pub weight: Array,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Array>,
    /// Scales, biases, bits and group size when the weight is quantized.
    pub quant: Option<QuantParams>,
}

impl Linear {
    /// A full-precision layer from `weight` `[out, in]` and an optional bias.
    pub fn new(weight: Array, bias: Option<Array>) -> Self {
        Linear {
            weight,
            bias,
            quant: None,
        }
    }

    /// Takes `{prefix}.weight` (quantized when `{prefix}.scales` is there)
    /// and `{prefix}.bias` when `bias`.
    pub fn load(w: &mut Weights, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Self {
        let (weight, quant) = w.take_matrix(prefix, out_dim, in_dim);
        let bias = bias.then(|| w.take(&format!("{prefix}.bias"), &[out_dim as i32]));
        Linear {
            weight,
            bias,
            quant,
        }
    }

    /// Applies the layer to `[..., in]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        if let Some(quant) = &self.quant {
            let y = quant.matmul_transposed(x, &self.weight)?;
            return Ok(match &self.bias {
                Some(b) => ops::add(&y, b)?,
                None => y,
            });
        }
        let wt = self.weight.t();
        Ok(match &self.bias {
            Some(b) => ops::addmm(b, x, &wt, None, None)?,
            None => ops::matmul(x, &wt)?,
        })
    }
}

/// Root-mean-square norm with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// `[dim]`.
    pub weight: Array,
    /// Added to the mean square before the square root.
    pub eps: f32,
}

impl RmsNorm {
    /// Takes `{prefix}.weight`.
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, eps: f64) -> Self {
        RmsNorm {
            weight: w.take(&format!("{prefix}.weight"), &[dim as i32]),
            eps: eps as f32,
        }
    }

    /// Gemma's norm, `x · (1 + w)`: takes `{prefix}.weight` and keeps
    /// `1 + w` in float32 (HF adds the one and scales in float32, then
    /// casts back to the input's dtype).
    pub fn load_plus_one(w: &mut Weights, prefix: &str, dim: usize, eps: f64) -> Self {
        let norm = RmsNorm::load(w, prefix, dim, eps);
        let plus_one = norm
            .weight
            .as_dtype(Dtype::Float32)
            .and_then(|w| ops::add(&w, Array::from_f32(1.0)));
        match plus_one {
            Ok(weight) => RmsNorm { weight, ..norm },
            // A missing tensor is a placeholder the loader reports; keep it.
            Err(_) => norm,
        }
    }

    /// Normalizes the last axis. A float32 weight on lower-precision input
    /// (Gemma's) normalizes in float32 and returns the input's dtype.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        if self.weight.dtype() == Dtype::Float32 && x.dtype() != Dtype::Float32 {
            let wide = x.as_dtype(Dtype::Float32)?;
            let out = fast::rms_norm(&wide, Some(&self.weight), self.eps)?;
            return Ok(out.as_dtype(x.dtype())?);
        }
        Ok(fast::rms_norm(x, Some(&self.weight), self.eps)?)
    }
}

/// A token embedding table `[vocab, dim]`, possibly quantized.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `[vocab, dim]`, or the packed codes when quantized.
    pub weight: Array,
    /// Scales, biases, bits and group size when the table is quantized.
    pub quant: Option<QuantParams>,
}

impl Embedding {
    /// Takes `{prefix}.weight` (quantized when `{prefix}.scales` is there).
    pub fn load(w: &mut Weights, prefix: &str, vocab: usize, dim: usize) -> Self {
        let (weight, quant) = w.take_matrix(prefix, vocab, dim);
        Embedding { weight, quant }
    }

    /// Looks up `ids` `[B, T]` → `[B, T, dim]`.
    pub fn forward(&self, ids: &Array) -> Result<Array> {
        match &self.quant {
            Some(quant) => quant.take_rows(&self.weight, ids),
            None => Ok(self.weight.take_axis(ids, 0)?),
        }
    }

    /// Uses the table as an output head: `[..., dim]` → `[..., vocab]`.
    pub fn as_linear(&self, x: &Array) -> Result<Array> {
        match &self.quant {
            Some(quant) => quant.matmul_transposed(x, &self.weight),
            None => Ok(ops::matmul(x, self.weight.t())?),
        }
    }

    /// The dtype of the looked-up vectors.
    pub fn dtype(&self) -> Dtype {
        match &self.quant {
            Some(quant) => quant.scales.dtype(),
            None => self.weight.dtype(),
        }
    }
}

/// Bytes per element of `dtype`.
pub fn dtype_bytes(dtype: Dtype) -> usize {
    match dtype {
        Dtype::Bool | Dtype::Uint8 | Dtype::Int8 => 1,
        Dtype::Uint16 | Dtype::Int16 | Dtype::Float16 | Dtype::Bfloat16 => 2,
        Dtype::Uint32 | Dtype::Int32 | Dtype::Float32 => 4,
        Dtype::Uint64 | Dtype::Int64 | Dtype::Float64 | Dtype::Complex64 => 8,
    }
}

/// `[B, T, heads·head_dim]` → `[B, heads, T, head_dim]`.
pub fn split_heads(x: &Array, heads: i32, head_dim: i32) -> Result<Array> {
    let (b, t) = (x.dim(0), x.dim(1));
    Ok(x.reshape(&[b, t, heads, head_dim])?
        .transpose_axes(&[0, 2, 1, 3])?)
}

/// `[B, heads, T, head_dim]` → `[B, T, heads·head_dim]`.
pub fn merge_heads(x: &Array) -> Result<Array> {
    let (b, heads, t, head_dim) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    Ok(x.transpose_axes(&[0, 2, 1, 3])?
        .reshape(&[b, t, heads * head_dim])?)
}

/// Rotates `q` and `k` (`[B, heads, T, dim]`) from the cache's offset
/// (unless the layer has no rope) and appends `k`, `v` to the cache.
/// Returns the queries and every key and value attention should see.
pub fn rotate_and_cache(
    q: &Array,
    k: &Array,
    v: Array,
    rope: Option<&Rope>,
    cache: Option<&mut Box<dyn KvCache>>,
) -> Result<(Array, Array, Array)> {
    let offset = cache.as_ref().map_or(0, |c| c.offset()) as i32;
    let (q, k) = match rope {
        Some(rope) => (rope.apply(q, offset)?, rope.apply(k, offset)?),
        None => (q.clone(), k.clone()),
    };
    let (k, v) = match cache {
        Some(cache) => cache.update_and_fetch(&k, &v)?,
        None => (k, v),
    };
    Ok((q, k, v))
}

mod activation;
mod mlp;
pub mod switch;

pub use activation::Activation;
pub use mlp::GatedMlp;
pub use switch::{ExpertStack, SwitchGlu};
