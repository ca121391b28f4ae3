//! Affine-quantized weights in MLX's format.
//!
//! A quantized `[rows, cols]` matrix is stored as three tensors:
//! `{name}.weight` (`u32`, `[rows, cols * bits / 32]`, packed codes),
//! `{name}.scales` and `{name}.biases` (`[rows, cols / group_size]`), and
//! each value is `scale * code + bias` within its group of `group_size`
//! consecutive columns. GGUF's Q4_0, Q4_1 and Q8_0 load into this format
//! (see [`crate::gguf`]), as do mlx-lm's quantized checkpoints.
//!
//! The bit width and group size are not stored: they follow from the shapes
//! once the logical `cols` is known, which is how [`QuantParams::infer`]
//! recovers them.

use mlx_rs::{ops, Array};

use crate::error::{Error, Result};
use crate::weights::TensorMap;

/// Bit widths MLX's affine quantization supports.
pub const SUPPORTED_BITS: [i32; 6] = [2, 3, 4, 5, 6, 8];

/// The scales and biases of a quantized matrix, with its bit width and group size.
#[derive(Debug, Clone)]
pub struct QuantParams {
    /// `[rows, cols / group_size]`.
    pub scales: Array,
    /// `[rows, cols / group_size]`.
    pub biases: Array,
    /// Consecutive columns sharing one scale and bias.
    pub group_size: i32,
    /// Bits per code.
    pub bits: i32,
}

impl QuantParams {
    /// Works out bits and group size from the shapes of a packed `weight`
    /// and its `scales` for a logical `[rows, cols]` matrix. Returns a
    /// message saying what did not fit when the shapes are inconsistent.
    pub fn infer(
        weight: &Array,
        scales: Array,
        biases: Array,
        rows: usize,
        cols: usize,
    ) -> std::result::Result<Self, String> {
        let (rows, cols) = (rows as i32, cols as i32);
        let w = weight.shape();
        let s = scales.shape();
        if w.len() != 2 || w[0] != rows || s.len() != 2 || s[0] != rows || biases.shape() != s {
            return Err(format!(
                "quantized [{rows}, {cols}] needs weight [{rows}, packed], scales and biases \
                 [{rows}, groups]; found weight {w:?}, scales {s:?}, biases {:?}",
                biases.shape()
            ));
        }
        let (packed, groups) = (w[1], s[1]);
        let bits_x_cols = packed * 32;
        if groups == 0 || cols % groups != 0 || bits_x_cols % cols != 0 {
            return Err(format!(
                "weight {w:?} and scales {s:?} do not divide {cols} columns into groups of whole codes"
            ));
        }
        let bits = bits_x_cols / cols;
        if !SUPPORTED_BITS.contains(&bits) {
            return Err(format!(
                "weight {w:?} implies {bits}-bit codes for {cols} columns; supported: {SUPPORTED_BITS:?}"
            ));
        }
        Ok(QuantParams {
            scales,
            biases,
            group_size: cols / groups,
            bits,
        })
    }

    /// `x @ dequantize(weight)ᵀ` without materializing the matrix.
    pub fn matmul_transposed(&self, x: &Array, weight: &Array) -> Result<Array> {
        Ok(ops::quantized_matmul(
            x,
            weight,
            &self.scales,
            &self.biases,
            true,
            self.group_size,
            self.bits,
        )?)
    }

    /// The full-precision matrix (in the scales' dtype).
    pub fn dequantize(&self, weight: &Array) -> Result<Array> {
        Ok(ops::dequantize(
            weight,
            &self.scales,
            &self.biases,
            self.group_size,
            self.bits,
        )?)
    }

    /// Rows `ids` of the matrix, dequantized (an embedding lookup).
    pub fn take_rows(&self, weight: &Array, ids: &Array) -> Result<Array> {
        let rows = QuantParams {
            scales: self.scales.take_axis(ids, 0)?,
            biases: self.biases.take_axis(ids, 0)?,
            ..self.clone()
        };
        rows.dequantize(&weight.take_axis(ids, 0)?)
    }
}

/// Replaces every quantized matrix in `tensors` (a `.weight` with `.scales`
/// and `.biases` beside it) by its float32 dequantized form. `bits_of`
/// gives a matrix's bit width by its `.weight` name (what the file says:
/// GGUF's tensor type, or the config's `quantization.bits`).
pub fn dequantize_tensors(tensors: &mut TensorMap, bits_of: impl Fn(&str) -> i32) -> Result<()> {
    let prefixes: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".scales").map(str::to_string))
        .filter(|p| tensors.contains_key(&format!("{p}.weight")))
        .collect();
    for prefix in prefixes {
        let weight_name = format!("{prefix}.weight");
        let weight = tensors
            .remove(&weight_name)
            .ok_or_else(|| missing(&weight_name))?;
        let scales = tensors
            .remove(&format!("{prefix}.scales"))
            .ok_or_else(|| missing(&prefix))?;
        let biases = tensors
            .remove(&format!("{prefix}.biases"))
            .ok_or_else(|| missing(&format!("{prefix}.biases")))?;
        let bits = bits_of(&weight_name);
        let rows = weight.dim(0) as usize;
        let cols = (weight.dim(1) * 32 / bits) as usize;
        let params =
            QuantParams::infer(&weight, scales, biases, rows, cols).map_err(|message| {
                Error::InvalidInput {
                    expected: format!("a consistent quantized tensor `{weight_name}`"),
                    found: message,
                }
            })?;
        let dense = params
            .dequantize(&weight)?
            .as_dtype(mlx_rs::Dtype::Float32)?;
        tensors.insert(weight_name, dense);
    }
    Ok(())
}

fn missing(name: &str) -> Error {
    Error::InvalidInput {
        expected: format!("tensor `{name}` of a quantized matrix"),
        found: "nothing".into(),
    }
}
