//! FP8 checkpoints: e4m3 tensors and the block scales of DeepSeek-style
//! fine-grained quantization.
//!
//! Safetensors `F8_E4M3` tensors are decoded to bfloat16 when read (every
//! e4m3 value is exact in bfloat16), so an FP8 tensor is never mistaken for
//! raw bytes. Checkpoints quantized in blocks (DeepSeek-V3, `quantization_config`
//! `{"quant_method": "fp8", "weight_block_size": [128, 128]}`) store one f32
//! `{name}.weight_scale_inv` per block of `{name}.weight`;
//! [`dequantize_blocks`] multiplies them in, at load.

use mlx_rs::{ops, Array, Dtype};

use crate::error::{Error, Result};
use crate::weights::TensorMap;

/// The value of one `float8_e4m3fn` byte: 1 sign bit, 4 exponent bits (bias
/// 7), 3 mantissa bits; exponent 0 is subnormal; no infinities, and
/// `0x7f` / `0xff` are NaN.
pub fn e4m3_value(byte: u8) -> f32 {
    let sign = if byte & 0x80 != 0 { -1.0 } else { 1.0 };
    let exponent = ((byte >> 3) & 0x0f) as i32;
    let mantissa = (byte & 0x07) as f32;
    if exponent == 0x0f && byte & 0x07 == 0x07 {
        return f32::NAN;
    }
    let magnitude = if exponent == 0 {
        mantissa / 8.0 * 2f32.powi(-6)
    } else {
        (1.0 + mantissa / 8.0) * 2f32.powi(exponent - 7)
    };
    sign * magnitude
}

/// Decodes e4m3 bytes into a bfloat16 array of `shape`.
pub fn decode_e4m3(bytes: &[u8], shape: &[i32]) -> Result<Array> {
    let table: Vec<f32> = (0..=255u8).map(e4m3_value).collect();
    let values: Vec<f32> = bytes.iter().map(|&b| table[b as usize]).collect();
    Ok(Array::from_slice(&values, shape).as_dtype(Dtype::Bfloat16)?)
}

/// Replaces every `{name}.weight` that has a `{name}.weight_scale_inv` by
/// `weight × scale` (each scale covering a `block[0] × block[1]` tile, the
/// last tiles possibly cut short), in bfloat16, and drops the scales.
pub fn dequantize_blocks(tensors: &mut TensorMap, block: [usize; 2]) -> Result<()> {
    const SCALE: &str = ".weight_scale_inv";
    let scales: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with(SCALE))
        .cloned()
        .collect();
    for scale_name in scales {
        let weight_name = format!("{}.weight", &scale_name[..scale_name.len() - SCALE.len()]);
        let (Some(weight), Some(scale)) =
            (tensors.remove(&weight_name), tensors.remove(&scale_name))
        else {
            return Err(Error::InvalidInput {
                expected: format!("a tensor {weight_name} for the block scales {scale_name}"),
                found: "no such tensor".into(),
            });
        };
        let dequantized =
            scale_blocks(&weight, &scale, block).map_err(|found| Error::InvalidInput {
                expected: format!(
                    "{scale_name} with one scale per {}x{} block of {weight_name}",
                    block[0], block[1]
                ),
                found,
            })?;
        tensors.insert(weight_name, dequantized);
    }
    Ok(())
}

/// `weight [R, C] × scale [⌈R/b0⌉, ⌈C/b1⌉]` expanded to the blocks.
fn scale_blocks(
    weight: &Array,
    scale: &Array,
    block: [usize; 2],
) -> std::result::Result<Array, String> {
    let shapes = || format!("weight {:?}, scales {:?}", weight.shape(), scale.shape());
    let (&[rows, cols], &[row_blocks, col_blocks]) = (weight.shape(), scale.shape()) else {
        return Err(shapes());
    };
    let (b0, b1) = (block[0] as i32, block[1] as i32);
    if b0 == 0
        || b1 == 0
        || row_blocks != (rows + b0 - 1) / b0
        || col_blocks != (cols + b1 - 1) / b1
    {
        return Err(shapes());
    }
    let expand = || -> std::result::Result<Array, mlx_rs::error::Exception> {
        let tiles = ops::broadcast_to(
            scale
                .as_dtype(Dtype::Float32)?
                .reshape(&[row_blocks, 1, col_blocks, 1])?,
            &[row_blocks, b0, col_blocks, b1],
        )?
        .reshape(&[row_blocks * b0, col_blocks * b1])?;
        let tiles = tiles.split_at_indices(&[rows], 0)?.swap_remove(0);
        let tiles = tiles.split_at_indices(&[cols], 1)?.swap_remove(0);
        ops::multiply(weight.as_dtype(Dtype::Float32)?, &tiles)?.as_dtype(Dtype::Bfloat16)
    };
    expand().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_values_by_hand() {
        // (byte, value): zero, one, 1.5, two, the smallest subnormal 2^-9,
        // the largest subnormal 7/8·2^-6, the largest normal 448, negatives.
        let cases = [
            (0x00, 0.0),
            (0x38, 1.0),
            (0x3c, 1.5),
            (0x40, 2.0),
            (0x01, 1.0 / 512.0),
            (0x07, 7.0 / 8.0 / 64.0),
            (0x7e, 448.0),
            (0xb8, -1.0),
            (0xc4, -3.0),
        ];
        for (byte, value) in cases {
            assert_eq!(e4m3_value(byte), value, "byte {byte:#04x}");
        }
        assert!(e4m3_value(0x7f).is_nan() && e4m3_value(0xff).is_nan());
        // 0x78 (exponent 15, mantissa 0) is a number, not infinity.
        assert_eq!(e4m3_value(0x78), 256.0);
    }
}
