//! Activations by their HF `hidden_act` names.

use mlx_rs::{ops, Array};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// An MLP activation, by its HF `hidden_act` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu` / `swish`: x·σ(x).
    Silu,
    /// `gelu`: x·Φ(x) with the exact (erf) normal CDF.
    Gelu,
    /// `gelu_pytorch_tanh` / `gelu_new`: the tanh approximation of gelu.
    GeluTanh,
    /// `quick_gelu`: x·σ(1.702·x).
    QuickGelu,
}

impl Activation {
    /// The activation named `name`, if it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Activation::Silu),
            "gelu" => Some(Activation::Gelu),
            "gelu_pytorch_tanh" | "gelu_new" => Some(Activation::GeluTanh),
            "quick_gelu" => Some(Activation::QuickGelu),
            _ => None,
        }
    }

    /// Parses the value of config `key`; the error names the accepted values.
    pub fn parse(name: &str, config: &ModelConfig, key: &str) -> Result<Self> {
        Self::from_name(name).ok_or_else(|| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: "\"silu\", \"gelu\", \"gelu_pytorch_tanh\", \"gelu_new\" or \"quick_gelu\""
                .into(),
            found: format!("{name:?}"),
        })
    }

    /// Applies the activation.
    pub fn apply(self, x: &Array) -> Result<Array> {
        let half_x = || ops::multiply(x, Array::from_f32(0.5));
        Ok(match self {
            Activation::Silu => ops::multiply(x, ops::sigmoid(x)?)?,
            Activation::Gelu => {
                let cdf = ops::erf(ops::multiply(
                    x,
                    Array::from_f32(std::f32::consts::FRAC_1_SQRT_2),
                )?)?;
                ops::multiply(half_x()?, ops::add(&cdf, Array::from_f32(1.0))?)?
            }
            Activation::GeluTanh => {
                let cube = ops::multiply(ops::multiply(x, x)?, x)?;
                let inner = ops::add(x, ops::multiply(&cube, Array::from_f32(0.044715))?)?;
                let k = (2.0f32 / std::f32::consts::PI).sqrt();
                let t = ops::tanh(ops::multiply(&inner, Array::from_f32(k))?)?;
                ops::multiply(half_x()?, ops::add(&t, Array::from_f32(1.0))?)?
            }
            Activation::QuickGelu => {
                ops::multiply(x, ops::sigmoid(ops::multiply(x, Array::from_f32(1.702))?)?)?
            }
        })
    }
}
