//! A tower block: `x + attn(norm1(x))`, then `h + mlp(norm2(h))`. Qwen2-VL
//! uses LayerNorm and a two-layer MLP; Qwen2.5-VL uses RMSNorm and a gated
//! (SwiGLU-style) MLP with biases. Both norms have epsilon 1e-6 in HF.

use forge_core::mlx_rs::{ops, Array};
use forge_core::nn::GatedMlp;
use forge_core::nn::RmsNorm;
use forge_core::{Result, Weights};
use forge_vision::vit::{LayerNorm, Mlp};

use crate::attention::VisionAttention;
use crate::rotary::Angles;

/// HF's epsilon of every norm in these towers (fixed, not in the config).
pub const NORM_EPS: f64 = 1e-6;

/// The norm flavour of a tower.
#[derive(Debug, Clone)]
pub enum Norm {
    /// Qwen2-VL: LayerNorm with bias.
    Layer(LayerNorm),
    /// Qwen2.5-VL: RMSNorm.
    Rms(RmsNorm),
}

impl Norm {
    /// Takes the norm under `prefix`; `rms` picks the flavour.
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, rms: bool) -> Self {
        if rms {
            Norm::Rms(RmsNorm::load(w, prefix, dim, NORM_EPS))
        } else {
            Norm::Layer(LayerNorm::load(w, prefix, dim, NORM_EPS))
        }
    }

    /// Normalizes the last axis.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }
}

/// The MLP flavour of a tower.
#[derive(Debug, Clone)]
pub enum BlockMlp {
    /// Qwen2-VL: `fc2(act(fc1(x)))`.
    Plain(Mlp),
    /// Qwen2.5-VL: gated.
    Gated(GatedMlp),
}

/// One tower block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Before attention.
    pub norm1: Norm,
    /// Attention.
    pub attn: VisionAttention,
    /// Before the MLP.
    pub norm2: Norm,
    /// The MLP.
    pub mlp: BlockMlp,
}

impl Block {
    /// Runs the block on `[N, dim]` with attention inside `bounds`.
    pub fn forward(&self, x: &Array, angles: &Angles, bounds: &[usize]) -> Result<Array> {
        let attn = self.attn.forward(&self.norm1.forward(x)?, angles, bounds)?;
        let h = ops::add(x, &attn)?;
        let normed = self.norm2.forward(&h)?;
        let mlp = match &self.mlp {
            BlockMlp::Plain(m) => m.forward(&normed)?,
            BlockMlp::Gated(m) => m.forward(&normed)?,
        };
        Ok(ops::add(&h, &mlp)?)
    }
}
