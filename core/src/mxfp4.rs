//! MXFP4 through MLX's quantized kernels.
//!
//! MXFP4 (OCP microscaling): groups of 32 values share one power-of-two
//! scale stored as a uint8 exponent (e8m0, bias 127); each value is a 4-bit
//! E2M1 float (0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6). gpt-oss checkpoints
//! store an expert matrix `[E, out, in]` as `*_blocks` `[E, out, in/32, 16]`
//! (two values per byte, the low nibble first) and `*_scales`
//! `[E, out, in/32]`. MLX's "mxfp4" mode packs the same nibbles into uint32
//! words `[E, out, in/8]` with the same scales, so loading is a reinterpret.
//!
//! mlx-rs 0.33's safe `gather_qmm` / `dequantize` pass mode "affine", so
//! these call mlx-c directly.

use std::ffi::CStr;

use mlx_rs::{Array, Dtype, Stream};

use crate::error::{Error, Result};
use mlx_sys::{mlx_array, mlx_optional_dtype, mlx_optional_int};

/// Values per shared scale.
pub const GROUP_SIZE: i32 = 32;
/// Bits per value.
pub const BITS: i32 = 4;
const MODE: &CStr = c"mxfp4";

/// An MXFP4 matrix stack in MLX's layout: `weight` uint32 `[E, out, in/8]`,
/// `scales` uint8 `[E, out, in/32]`.
#[derive(Debug, Clone)]
pub struct Mxfp4Weight {
    /// Packed values, uint32 `[E, out, in/8]`.
    pub weight: Array,
    /// Shared exponents, uint8 `[E, out, in/32]`.
    pub scales: Array,
}

impl Mxfp4Weight {
    /// Reinterprets gpt-oss `blocks` (uint8 `[E, out, G, 16]`) and `scales`
    /// (uint8 `[E, out, G]`) as an MLX mxfp4 weight of `[E, out, 32·G]`.
    pub fn from_blocks(name: &str, blocks: &Array, scales: &Array) -> Result<Self> {
        let shape = blocks.shape();
        let valid = blocks.dtype() == Dtype::Uint8
            && scales.dtype() == Dtype::Uint8
            && shape.len() == 4
            && shape[3] == 16
            && scales.shape() == &shape[..3];
        if !valid {
            return Err(Error::InvalidInput {
                expected: format!(
                    "{name}_blocks uint8 [E, out, G, 16] and {name}_scales uint8 [E, out, G]"
                ),
                found: format!(
                    "blocks {:?} {:?}, scales {:?} {:?}",
                    blocks.dtype(),
                    shape,
                    scales.dtype(),
                    scales.shape()
                ),
            });
        }
        let (e, out, groups) = (shape[0], shape[1], shape[2]);
        let weight = blocks
            .reshape(&[e, out, groups * 16])?
            .view::<u32>()?
            .reshape(&[e, out, groups * 4])?;
        Ok(Mxfp4Weight {
            weight,
            scales: scales.clone(),
        })
    }

    /// The output rows `rows` (of axis 1) of every expert: quantization runs
    /// along the input axis, so a subset of rows is still a valid stack.
    pub fn rows(&self, rows: &Array) -> Result<Self> {
        Ok(Mxfp4Weight {
            weight: self.weight.take_axis(rows, 1)?,
            scales: self.scales.take_axis(rows, 1)?,
        })
    }

    /// `x @ W[e]ᵀ` for the experts `indices` picks, as [`mlx_rs::ops::gather_mm`]
    /// does for dense weights: `x` `[..., 1, in]`, `indices` broadcasting
    /// with `x`'s batch axes; result `[..., 1, out]`.
    pub fn gather_matmul(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        let stream = Stream::thread_local_or_default();
        call("gather_qmm (mxfp4)", |res| unsafe {
            mlx_sys::mlx_gather_qmm(
                res,
                x.as_ptr(),
                self.weight.as_ptr(),
                self.scales.as_ptr(),
                mlx_sys::mlx_array_new(),
                mlx_sys::mlx_array_new(),
                indices.as_ptr(),
                true,
                some_int(GROUP_SIZE),
                some_int(BITS),
                MODE.as_ptr(),
                sorted,
                stream.as_ptr(),
            )
        })
    }

    /// The dense `[E, out, in]` matrices in `dtype`.
    pub fn dequantize(&self, dtype: Dtype) -> Result<Array> {
        let stream = Stream::thread_local_or_default();
        call("dequantize (mxfp4)", |res| unsafe {
            mlx_sys::mlx_dequantize(
                res,
                self.weight.as_ptr(),
                self.scales.as_ptr(),
                mlx_sys::mlx_array_new(),
                some_int(GROUP_SIZE),
                some_int(BITS),
                MODE.as_ptr(),
                mlx_sys::mlx_array_new(),
                mlx_optional_dtype {
                    value: dtype.into(),
                    has_value: true,
                },
                stream.as_ptr(),
            )
        })
    }
}

fn some_int(value: i32) -> mlx_optional_int {
    mlx_optional_int {
        value,
        has_value: true,
    }
}

/// Runs one mlx-c op that writes its result into an `mlx_array`.
fn call(what: &str, op: impl FnOnce(*mut mlx_array) -> i32) -> Result<Array> {
    // SAFETY: a fresh, empty array handle for the op to fill; on success
    // ownership passes to the returned `Array`, on failure it is freed here.
    let mut res = unsafe { mlx_sys::mlx_array_new() };
    let status = op(&mut res);
    if status != 0 {
        // SAFETY: `res` came from mlx_array_new and is not used afterwards.
        unsafe { mlx_sys::mlx_array_free(res) };
        return Err(Error::InvalidInput {
            expected: format!("arguments MLX's {what} accepts"),
            found: format!("MLX refused them (status {status})"),
        });
    }
    // SAFETY: the op succeeded, so `res` is a valid array we now own.
    Ok(unsafe { Array::from_ptr(res) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_rs::ops;

    /// E2M1 values by 4-bit code (sign in the high bit).
    const E2M1: [f32; 16] = [
        0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
    ];

    /// Deterministic bytes (a small LCG), so the test needs no RNG crate.
    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect()
    }

    /// Decodes blocks/scales by hand: byte b of group g holds values 2b (low nibble) and 2b+1.
    fn decode(blocks: &[u8], scales: &[u8], rows: usize, groups: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * groups * 32);
        for r in 0..rows {
            for g in 0..groups {
                let scale = 2f32.powi(scales[r * groups + g] as i32 - 127);
                for b in 0..16 {
                    let byte = blocks[(r * groups + g) * 16 + b];
                    out.push(E2M1[(byte & 0x0f) as usize] * scale);
                    out.push(E2M1[(byte >> 4) as usize] * scale);
                }
            }
        }
        out
    }

    fn sample(e: i32, out: i32, groups: i32) -> (Vec<u8>, Vec<u8>, Mxfp4Weight) {
        let rows = (e * out) as usize;
        let blocks = bytes(rows * groups as usize * 16, 7);
        // Exponents near 127 keep the values in a readable range.
        let scales: Vec<u8> = bytes(rows * groups as usize, 11)
            .iter()
            .map(|b| 120 + b % 12)
            .collect();
        let w = Mxfp4Weight::from_blocks(
            "test",
            &Array::from_slice(&blocks, &[e, out, groups, 16]),
            &Array::from_slice(&scales, &[e, out, groups]),
        )
        .unwrap();
        (blocks, scales, w)
    }

    #[test]
    fn mlx_dequantizes_checkpoint_blocks_as_decoded_by_hand() {
        let (e, out, groups) = (2, 3, 2);
        let (blocks, scales, w) = sample(e, out, groups);
        let dense = w.dequantize(Dtype::Float32).unwrap();
        assert_eq!(dense.shape(), &[e, out, groups * 32]);
        dense.eval().unwrap();
        let expected = decode(&blocks, &scales, (e * out) as usize, groups as usize);
        assert_eq!(dense.as_slice::<f32>(), expected.as_slice());
    }

    #[test]
    fn gathered_quantized_matmul_equals_dense_matmul() {
        let (e, out, groups) = (3, 4, 2);
        let (blocks, scales, w) = sample(e, out, groups);
        let dense = decode(&blocks, &scales, (e * out) as usize, groups as usize);
        let dense = Array::from_slice(&dense, &[e, out, groups * 32]);
        let x_values: Vec<f32> = bytes(2 * 64, 3)
            .iter()
            .map(|&b| b as f32 / 255.0 - 0.5)
            .collect();
        let x = Array::from_slice(&x_values, &[2, 1, 1, 64]);
        let indices = Array::from_slice(&[2u32, 0, 1, 2], &[2, 2]);
        let got = w.gather_matmul(&x, &indices, false).unwrap();
        let want = ops::gather_mm(
            &x,
            dense.transpose_axes(&[0, 2, 1]).unwrap(),
            None,
            &indices,
            false,
        )
        .unwrap();
        assert_eq!(got.shape(), &[2, 2, 1, out]);
        let max_abs = |a: &Array| -> f32 {
            let m = ops::abs(a).unwrap().max(None).unwrap();
            m.eval().unwrap();
            m.item_exact::<f32>()
        };
        // Values reach ~1e2, so compare relative to the largest.
        let rel = max_abs(&ops::subtract(&got, &want).unwrap()) / max_abs(&want);
        assert!(rel < 1e-6, "relative difference {rel}");
    }

    #[test]
    fn wrong_layouts_are_refused() {
        let blocks = Array::from_slice(&[0u8; 32], &[1, 1, 2, 16]);
        let scales = Array::from_slice(&[127u8; 3], &[1, 1, 3]);
        let err = Mxfp4Weight::from_blocks("down_proj", &blocks, &scales).unwrap_err();
        assert!(err.to_string().contains("down_proj_blocks"), "{err}");
    }
}
