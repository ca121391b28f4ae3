//! The mixture of experts: a biased linear router picks the top-k experts
//! per token, a softmax over the chosen logits weights them, and each
//! expert is a clamped SwiGLU MLP with biases.
//!
//! Expert weights keep the checkpoint's fused layout: one gate/up
//! projection whose output interleaves gate (even columns) and linear
//! (odd columns), then a down projection. Dense weights run through MLX's
//! `gather_mm`, MXFP4 ones through `gather_qmm`; both gather the chosen
//! experts per token without materializing them.

use forge_core::mlx_rs::ops::argpartition_axis;
use forge_core::mlx_rs::ops::indexing::TryIndexOp;
use forge_core::mlx_rs::ops::{self, argsort_axis, gather_mm};
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::nn::Linear;
use forge_core::{Error, Result, Weights};

use crate::config::GptOssArgs;
use crate::mxfp4::Mxfp4Weight;

/// Sort the (token, expert) pairs by expert once there are this many:
/// gathered matmuls then read each expert's weights once.
const SORT_THRESHOLD: i32 = 64;

/// One projection of every expert.
#[derive(Debug, Clone)]
enum ExpertMatrix {
    /// `[E, in, out]`, as transformers saves it (`x @ W[e]`).
    Dense(Array),
    /// MXFP4, `[E, out, in]` logically.
    Mxfp4(Mxfp4Weight),
}

impl ExpertMatrix {
    /// `x` `[..., 1, in]` times the expert `indices` picks → `[..., 1, out]`.
    fn apply(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        match self {
            ExpertMatrix::Dense(w) => Ok(gather_mm(x, w, None, indices, sorted)?),
            ExpertMatrix::Mxfp4(w) => w.gather_matmul(x, indices, sorted),
        }
    }

    fn load(
        w: &mut Weights,
        prefix: &str,
        experts: usize,
        in_dim: usize,
        out_dim: usize,
        mxfp4: bool,
    ) -> Result<Self> {
        let (e, i, o) = (experts as i32, in_dim as i32, out_dim as i32);
        if !mxfp4 {
            return Ok(ExpertMatrix::Dense(w.take(prefix, &[e, i, o])));
        }
        if !in_dim.is_multiple_of(32) {
            return Err(Error::InvalidInput {
                expected: format!("{prefix}: an input width divisible by 32 for MXFP4"),
                found: in_dim.to_string(),
            });
        }
        let groups = i / 32;
        let blocks = w.take(&format!("{prefix}_blocks"), &[e, o, groups, 16]);
        let scales = w.take(&format!("{prefix}_scales"), &[e, o, groups]);
        if blocks.size() == 0 || scales.size() == 0 {
            // Missing or mis-shaped: `Weights::finish` reports it.
            return Ok(ExpertMatrix::Dense(blocks));
        }
        Ok(ExpertMatrix::Mxfp4(Mxfp4Weight::from_blocks(
            prefix, &blocks, &scales,
        )?))
    }
}

/// The router and experts of one layer.
#[derive(Debug, Clone)]
pub struct MoeBlock {
    router: Linear,
    gate_up: ExpertMatrix,
    /// `[E, 2·I]`, interleaved like the projection's output.
    gate_up_bias: Array,
    down: ExpertMatrix,
    /// `[E, H]`.
    down_bias: Array,
    top_k: i32,
    alpha: f32,
    limit: f32,
}

impl MoeBlock {
    /// Takes `{prefix}.router.*` and `{prefix}.experts.*`.
    pub fn load(w: &mut Weights, prefix: &str, args: &GptOssArgs) -> Result<Self> {
        let (h, i, e) = (
            args.hidden_size,
            args.intermediate_size,
            args.num_local_experts,
        );
        let mxfp4 = args.is_mxfp4();
        let experts = format!("{prefix}.experts");
        Ok(MoeBlock {
            router: Linear::load(w, &format!("{prefix}.router"), h, e, true),
            gate_up: ExpertMatrix::load(w, &format!("{experts}.gate_up_proj"), e, h, 2 * i, mxfp4)?,
            gate_up_bias: w.take(
                &format!("{experts}.gate_up_proj_bias"),
                &[e as i32, 2 * i as i32],
            ),
            down: ExpertMatrix::load(w, &format!("{experts}.down_proj"), e, i, h, mxfp4)?,
            down_bias: w.take(&format!("{experts}.down_proj_bias"), &[e as i32, h as i32]),
            top_k: args.num_experts_per_tok as i32,
            alpha: args.swiglu_alpha as f32,
            limit: args.swiglu_limit as f32,
        })
    }

    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let (b, t, h) = (x.dim(0), x.dim(1), x.dim(2));
        let x = x.reshape(&[b * t, h])?;
        let (indices, weights) = self.route(&x)?;
        let out = self.experts(&x, &indices)?;
        // Σ over the chosen experts of weight · output.
        let weighted = ops::multiply(&out, weights.expand_dims(-1)?)?;
        Ok(weighted.sum_axis(1, false)?.reshape(&[b, t, h])?)
    }

    /// The chosen experts `[N, k]` (uint32) and their weights `[N, k]`.
    fn route(&self, x: &Array) -> Result<(Array, Array)> {
        let logits = self.router.forward(x)?;
        let k = self.top_k;
        let negated = ops::negative(&logits)?;
        let indices = argpartition_axis(&negated, k - 1, -1)?.try_index((.., ..k))?;
        let chosen = logits.take_along_axis(&indices, -1)?;
        let weights = ops::softmax_axis(&chosen, -1, true)?;
        Ok((indices.as_dtype(Dtype::Uint32)?, weights))
    }

    /// Each token through its chosen experts: `[N, H]`, `[N, k]` → `[N, k, H]`.
    fn experts(&self, x: &Array, indices: &Array) -> Result<Array> {
        let (n, k) = (indices.dim(0), indices.dim(1));
        let sort = n * k >= SORT_THRESHOLD;
        // x as [N, 1, 1, H]: one row vector per token, broadcast over its k experts.
        let (rows, idx, inverse) = if sort {
            let flat = indices.reshape(&[-1])?;
            let order = argsort_axis(&flat, 0)?;
            let inverse = argsort_axis(&order, 0)?;
            let token = ops::floor_divide(&order, Array::from_int(k))?;
            let rows = x.take_axis(&token, 0)?.reshape(&[n * k, 1, -1])?;
            (rows, flat.take_axis(&order, 0)?, Some(inverse))
        } else {
            (x.reshape(&[n, 1, 1, -1])?, indices.clone(), None)
        };
        let gate_up = self.gate_up.apply(&rows, &idx, sort)?;
        let gate_up = ops::add(&gate_up, self.bias_rows(&self.gate_up_bias, &idx)?)?;
        let hidden = self.swiglu(&gate_up)?;
        let out = self.down.apply(&hidden, &idx, sort)?;
        let out = ops::add(&out, self.bias_rows(&self.down_bias, &idx)?)?;
        let width = out.dim(-1);
        Ok(match inverse {
            Some(inverse) => out
                .reshape(&[n * k, width])?
                .take_axis(&inverse, 0)?
                .reshape(&[n, k, width])?,
            None => out.reshape(&[n, k, width])?,
        })
    }

    /// The bias rows of the experts `idx` picks, shaped like a gathered
    /// matmul's output (`[..., 1, out]`).
    fn bias_rows(&self, bias: &Array, idx: &Array) -> Result<Array> {
        Ok(bias.take_axis(idx, 0)?.expand_dims(-2)?)
    }

    /// The clamped SwiGLU on interleaved gate/linear columns:
    /// `min(g, L) · σ(α · min(g, L)) · (clip(l, −L, L) + 1)`.
    fn swiglu(&self, gate_up: &Array) -> Result<Array> {
        let shape = gate_up.shape().to_vec();
        let half = shape[shape.len() - 1] / 2;
        let mut pairs_shape = shape[..shape.len() - 1].to_vec();
        pairs_shape.extend([half, 2]);
        let pairs = gate_up.reshape(&pairs_shape)?;
        let gate = pairs.take_axis(Array::from_int(0), -1)?;
        let linear = pairs.take_axis(Array::from_int(1), -1)?;
        let gate = ops::minimum(&gate, Array::from_f32(self.limit))?;
        let linear = ops::clip(&linear, (-self.limit, self.limit))?;
        let glu = ops::multiply(
            &gate,
            ops::sigmoid(ops::multiply(&gate, Array::from_f32(self.alpha))?)?,
        )?;
        Ok(ops::multiply(
            &glu,
            ops::add(&linear, Array::from_f32(1.0))?,
        )?)
    }
}
