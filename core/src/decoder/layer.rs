//! The pre-norm decoder layer most families share: RMSNorm → attention →
//! residual, RMSNorm → gated MLP → residual. Llama, Mistral, Qwen 2 and 3,
//! SmolLM3, Granite and Phi-3 differ only inside the attention and MLP
//! they hand it (and Granite in a residual multiplier).

use mlx_rs::{ops, Array};

use crate::cache::KvCache;
use crate::decoder::{Attention, DecoderLayer, LayerContext};
use crate::error::Result;
use crate::nn::{GatedMlp, RmsNorm};
use crate::weights::Weights;

/// `h = x + r·attn(norm(x))`, `out = h + r·mlp(norm(h))`, with `r` the
/// residual multiplier (1 unless the family has one).
#[derive(Debug)]
pub struct PreNormLayer {
    /// Before attention.
    pub input_layernorm: RmsNorm,
    /// The layer's attention.
    pub self_attn: Attention,
    /// Before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// The layer's MLP.
    pub mlp: GatedMlp,
    /// Multiplies each sublayer's output before it joins the residual
    /// stream (Granite's `residual_multiplier`).
    pub residual_scale: Option<f32>,
}

impl PreNormLayer {
    /// Takes `{prefix}.input_layernorm` and `{prefix}.post_attention_layernorm`
    /// (width `hidden`) around the loaded attention and MLP.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        (hidden, eps): (usize, f64),
        self_attn: Attention,
        mlp: GatedMlp,
    ) -> Self {
        PreNormLayer {
            input_layernorm: RmsNorm::load(w, &format!("{prefix}.input_layernorm"), hidden, eps),
            self_attn,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{prefix}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp,
            residual_scale: None,
        }
    }

    /// Scales each sublayer's output by `scale` before the residual add.
    pub fn with_residual_scale(mut self, scale: f32) -> Self {
        self.residual_scale = Some(scale);
        self
    }

    fn residual(&self, x: &Array, sublayer: Array) -> Result<Array> {
        let sublayer = match self.residual_scale {
            Some(s) => ops::multiply(&sublayer, Array::from_f32(s).as_dtype(sublayer.dtype())?)?,
            None => sublayer,
        };
        Ok(ops::add(x, &sublayer)?)
    }
}

impl DecoderLayer for PreNormLayer {
    fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let normed = ctx.input_norm(&self.input_layernorm, x)?;
        let h = self.residual(x, self.self_attn.forward(&normed, ctx, cache)?)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        self.residual(&h, self.mlp.forward(&normed)?)
    }

    fn window(&self) -> Option<usize> {
        self.self_attn.window
    }

    fn cached_values_per_token(&self) -> usize {
        self.self_attn.cached_values_per_token()
    }
}
