//! The patch merger: norm each patch (`ln_q`), concatenate the
//! `merge × merge` patches of a merged unit (consecutive rows), then
//! `Linear → GELU (exact) → Linear` to the output width.

use forge_core::mlx_rs::Array;
use forge_core::nn::Linear;
use forge_core::{Result, Weights};
use forge_vision::vit::Activation;

use crate::block::Norm;

/// `merger.ln_q`, `merger.mlp.0`, `merger.mlp.2`.
#[derive(Debug, Clone)]
pub struct PatchMerger {
    ln_q: Norm,
    fc1: Linear,
    fc2: Linear,
    width: i32,
}

impl PatchMerger {
    /// Takes the merger under `prefix`; `rms` picks `ln_q`'s flavour.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        dim: usize,
        merge: usize,
        out_dim: usize,
        rms: bool,
    ) -> Self {
        let width = dim * merge * merge;
        PatchMerger {
            ln_q: Norm::load(w, &format!("{prefix}.ln_q"), dim, rms),
            fc1: Linear::load(w, &format!("{prefix}.mlp.0"), width, width, true),
            fc2: Linear::load(w, &format!("{prefix}.mlp.2"), width, out_dim, true),
            width: width as i32,
        }
    }

    /// `[N, dim]` → `[N / merge², out_dim]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let h = self.ln_q.forward(x)?.reshape(&[-1, self.width])?;
        let h = Activation::Gelu.apply(&self.fc1.forward(&h)?)?;
        self.fc2.forward(&h)
    }
}
