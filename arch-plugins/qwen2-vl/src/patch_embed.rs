//! The patch embedding: HF's `Conv3d` with stride equal to its kernel
//! `(T, P, P)` and no bias, over rows that are already one patch each
//! (`[N, C·T·P·P]`), so it is one matmul with the kernel flattened.

use forge_core::mlx_rs::{ops, Array};
use forge_core::{Error, Result, Weights};

use crate::config::TowerDims;

/// `patch_embed.proj`.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    /// `[D, C·T·P·P]`.
    weight: Array,
    values: i32,
}

impl PatchEmbed {
    /// Takes `{prefix}.proj.weight` `[D, C, T, P, P]`.
    pub fn load(w: &mut Weights, prefix: &str, d: &TowerDims) -> Self {
        let (p, t) = (d.patch as i32, d.temporal as i32);
        let shape = [d.dim as i32, d.channels as i32, t, p, p];
        let weight = w.take(&format!("{prefix}.proj.weight"), &shape);
        let values = d.patch_values() as i32;
        PatchEmbed {
            // A placeholder (after a load error) stays as it is; the loader reports it.
            weight: weight.reshape(&[d.dim as i32, values]).unwrap_or(weight),
            values,
        }
    }

    /// `[N, C·T·P·P]` → `[N, D]`.
    pub fn forward(&self, pixels: &Array) -> Result<Array> {
        let shape = pixels.shape();
        if shape.len() != 2 || shape[1] != self.values {
            return Err(Error::InvalidInput {
                expected: format!(
                    "pixel_values [patches, {}] (channels · temporal_patch_size · patch_size²)",
                    self.values
                ),
                found: format!("shape {shape:?}"),
            });
        }
        // HF casts the pixels to the weights' dtype first.
        let pixels = pixels.as_dtype(self.weight.dtype())?;
        Ok(ops::matmul(&pixels, self.weight.t())?)
    }
}
