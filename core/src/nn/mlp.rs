//! The gated MLP of most decoders: `down(act(gate(x)) · up(x))`: SwiGLU
//! with `silu`, GeGLU with either gelu.

use mlx_rs::{ops, Array};

use super::{Activation, Linear};
use crate::error::Result;
use crate::weights::Weights;

/// `down_proj(act(gate_proj(x)) · up_proj(x))`.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    /// `[inter, hidden]`.
    pub gate_proj: Linear,
    /// `[inter, hidden]`.
    pub up_proj: Linear,
    /// `[hidden, inter]`.
    pub down_proj: Linear,
    /// Applied to the gate.
    pub act: Activation,
}

impl GatedMlp {
    /// Takes `{prefix}.{gate,up,down}_proj` (with biases when `bias`).
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        hidden: usize,
        inter: usize,
        bias: bool,
        act: Activation,
    ) -> Self {
        let p = |name: &str| format!("{prefix}.{name}");
        GatedMlp {
            gate_proj: Linear::load(w, &p("gate_proj"), hidden, inter, bias),
            up_proj: Linear::load(w, &p("up_proj"), hidden, inter, bias),
            down_proj: Linear::load(w, &p("down_proj"), inter, hidden, bias),
            act,
        }
    }

    /// `[..., hidden]` → `[..., hidden]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let gate = self.act.apply(&self.gate_proj.forward(x)?)?;
        let h = ops::multiply(&gate, self.up_proj.forward(x)?)?;
        self.down_proj.forward(&h)
    }
}
