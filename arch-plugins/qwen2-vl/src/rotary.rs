//! Axial 2-D rotary embedding: a quarter of each head's frequencies turn
//! with the patch's row, a quarter with its column; the angles are laid out
//! `[rows, columns, rows, columns]` and applied rotate-half style over the
//! whole head.

use forge_core::mlx_rs::{ops, Array, Dtype};
use forge_core::Result;

/// The inverse frequencies of one axis (`head_dim / 4` of them).
#[derive(Debug, Clone)]
pub struct VisionRotary {
    inv_freq: Vec<f32>,
}

/// cos and sin `[N, 1, head_dim]`, ready to broadcast over heads.
#[derive(Debug, Clone)]
pub struct Angles {
    cos: Array,
    sin: Array,
}

impl VisionRotary {
    /// `θ^(-2i / (head_dim/2))` for `i < head_dim / 4`, in f32 as HF computes them.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let spatial = head_dim / 2;
        let inv_freq = (0..spatial)
            .step_by(2)
            .map(|i| 1.0 / (theta as f32).powf(i as f32 / spatial as f32))
            .collect();
        VisionRotary { inv_freq }
    }

    /// The angles of patches at `(row, column)` positions.
    pub fn angles(&self, positions: &[[i32; 2]]) -> Result<Angles> {
        let n = positions.len() as i32;
        let k = self.inv_freq.len() as i32;
        let inv = Array::from_slice(&self.inv_freq, &[1, k]);
        let axis = |a: usize| -> Result<Array> {
            let p: Vec<f32> = positions.iter().map(|x| x[a] as f32).collect();
            Ok(ops::multiply(Array::from_slice(&p, &[n, 1]), &inv)?)
        };
        let (rows, cols) = (axis(0)?, axis(1)?);
        let emb = ops::concatenate(&[&rows, &cols, &rows, &cols], -1)?.expand_dims(1)?;
        Ok(Angles {
            cos: ops::cos(&emb)?,
            sin: ops::sin(&emb)?,
        })
    }
}

impl Angles {
    /// Rotates `[N, heads, head_dim]`: `x·cos + rotate_half(x)·sin`, in
    /// f32 (as HF does), returned in `x`'s dtype.
    pub fn apply(&self, x: &Array) -> Result<Array> {
        let x32 = x.as_dtype(Dtype::Float32)?;
        let halves = x32.split_equal(2, -1)?;
        let rotated = ops::concatenate(&[&ops::negative(&halves[1])?, &halves[0]], -1)?;
        let out = ops::add(
            ops::multiply(&x32, &self.cos)?,
            ops::multiply(&rotated, &self.sin)?,
        )?;
        Ok(out.as_dtype(x.dtype())?)
    }
}
