//! A cache that stores keys and values quantized (MLX affine quantization
//! along the head dimension: codes, one scale and one bias per group), as
//! mlx-lm's `QuantizedKVCache` with `kv_bits` / `kv_group_size`.
//!
//! Attention gets the stored keys and values dequantized to the dtype of
//! the new ones, so every plugin's attention works on it unchanged; the
//! memory held between steps is the quantized form. Generation switches a
//! standard cache to this one once it holds `quantized_kv_start` positions
//! (see [`crate::generation::prompt_cache::maybe_quantize`]).

use mlx_rs::{ops, Array};

use crate::cache::{check_new, first_positions, CacheKind, KvCache};
use crate::error::{Error, Result};

/// The bit widths MLX's affine quantization supports.
pub const KV_BITS: &[i32] = &[2, 3, 4, 5, 6, 8];
/// The group sizes MLX's affine quantization supports.
pub const KV_GROUP_SIZES: &[i32] = &[32, 64, 128];

/// Codes, scales and biases of one quantized tensor.
type Quantized = [Array; 3];

/// A quantized key/value cache.
#[derive(Debug, Clone)]
pub struct QuantizedKvCache {
    bits: i32,
    group_size: i32,
    keys: Option<Quantized>,
    values: Option<Quantized>,
    offset: usize,
}

impl QuantizedKvCache {
    /// An empty cache with `bits` per element and `group_size` elements per
    /// scale and bias.
    pub fn new(bits: i32, group_size: i32) -> Result<Self> {
        check_settings(bits, group_size)?;
        Ok(QuantizedKvCache {
            bits,
            group_size,
            keys: None,
            values: None,
            offset: 0,
        })
    }

    fn quantize(&self, x: &Array) -> Result<Quantized> {
        let dim = x.dim(-1);
        if dim % self.group_size != 0 {
            return Err(Error::InvalidInput {
                expected: format!(
                    "a head dimension divisible by kv_group_size {}",
                    self.group_size
                ),
                found: dim.to_string(),
            });
        }
        let (codes, scales, biases) = ops::quantize(x, self.group_size, self.bits)?;
        Ok([codes, scales, biases])
    }

    fn dequantize(&self, q: &Quantized, like: &Array) -> Result<Array> {
        let [codes, scales, biases] = q;
        let x = ops::dequantize(codes, scales, biases, self.group_size, self.bits)?;
        Ok(x.as_dtype(like.dtype())?)
    }

    fn append(stored: &Option<Quantized>, new: Quantized) -> Result<Quantized> {
        match stored {
            None => Ok(new),
            Some(old) => {
                let [c, s, b] = new;
                Ok([
                    ops::concatenate(&[old[0].clone(), c], 2)?,
                    ops::concatenate(&[old[1].clone(), s], 2)?,
                    ops::concatenate(&[old[2].clone(), b], 2)?,
                ])
            }
        }
    }
}

/// Checks `kv_bits` and `kv_group_size` against what MLX supports.
pub fn check_settings(bits: i32, group_size: i32) -> Result<()> {
    if !KV_BITS.contains(&bits) {
        return Err(Error::InvalidInput {
            expected: format!("kv_bits one of {KV_BITS:?}"),
            found: bits.to_string(),
        });
    }
    if !KV_GROUP_SIZES.contains(&group_size) {
        return Err(Error::InvalidInput {
            expected: format!("kv_group_size one of {KV_GROUP_SIZES:?}"),
            found: group_size.to_string(),
        });
    }
    Ok(())
}

impl KvCache for QuantizedKvCache {
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let new = check_new(keys, values)?;
        let k = Self::append(&self.keys, self.quantize(keys)?)?;
        let v = Self::append(&self.values, self.quantize(values)?)?;
        let out = (self.dequantize(&k, keys)?, self.dequantize(&v, values)?);
        self.keys = Some(k);
        self.values = Some(v);
        self.offset += new;
        Ok(out)
    }

    fn trim(&mut self, n: usize) -> usize {
        let n = n.min(self.offset);
        let keep = self.offset - n;
        let cut = |q: &Option<Quantized>| -> Option<Quantized> {
            let [c, s, b] = q.as_ref()?;
            Some([
                first_positions(Some(c), keep)?,
                first_positions(Some(s), keep)?,
                first_positions(Some(b), keep)?,
            ])
        };
        self.keys = cut(&self.keys);
        self.values = cut(&self.values);
        self.offset = keep;
        n
    }

    /// Key codes, scales, biases, then value codes, scales, biases.
    fn state(&self) -> Vec<Array> {
        match (&self.keys, &self.values) {
            (Some(k), Some(v)) => k.iter().chain(v.iter()).cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn set_state(&mut self, state: Vec<Array>, offset: usize) -> Result<()> {
        if state.is_empty() && offset == 0 {
            self.keys = None;
            self.values = None;
            self.offset = 0;
            return Ok(());
        }
        let Ok([kc, ks, kb, vc, vs, vb]) = <[Array; 6]>::try_from(state) else {
            return Err(Error::InvalidInput {
                expected: "six quantized cache tensors (key and value codes, scales, biases)"
                    .into(),
                found: "another number of tensors".into(),
            });
        };
        let parts = [&kc, &ks, &kb, &vc, &vs, &vb];
        if parts
            .iter()
            .any(|a| a.ndim() != 4 || a.dim(2) as usize != offset)
        {
            return Err(Error::InvalidInput {
                expected: format!("quantized cache tensors [B, heads, {offset}, _]"),
                found: format!(
                    "{:?}",
                    parts.iter().map(|a| a.shape().to_vec()).collect::<Vec<_>>()
                ),
            });
        }
        self.keys = Some([kc, ks, kb]);
        self.values = Some([vc, vs, vb]);
        self.offset = offset;
        Ok(())
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn is_trimmable(&self) -> bool {
        true
    }

    fn kind(&self) -> CacheKind {
        CacheKind::Quantized {
            bits: self.bits,
            group_size: self.group_size,
        }
    }
}
