//! The pieces vision transformers (CLIP, SigLIP, the LLaVA tower) share:
//! LayerNorm, the MLP activations, bidirectional multi-head attention, the
//! pre-norm encoder layer and the patch embedding. Weights are plain arrays
//! taken from [`Weights`] under HF's names (`layer_norm1`, `self_attn.q_proj`,
//! `mlp.fc1`, ...).

use forge_core::mlx_rs::{fast, ops, Array};
use forge_core::nn::Linear;
use forge_core::{Error, Result, Weights};

/// LayerNorm with a learned scale and bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[dim]`.
    pub weight: Array,
    /// `[dim]`.
    pub bias: Array,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// Takes `{prefix}.weight` and `{prefix}.bias`.
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, eps: f64) -> Self {
        LayerNorm {
            weight: w.take(&format!("{prefix}.weight"), &[dim as i32]),
            bias: w.take(&format!("{prefix}.bias"), &[dim as i32]),
            eps: eps as f32,
        }
    }

    /// Normalizes the last axis.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        Ok(fast::layer_norm(x, &self.weight, &self.bias, self.eps)?)
    }
}

/// The MLP activation, by its HF `hidden_act` name (shared with the decoders).
pub use forge_core::nn::Activation;

/// Two linear layers around an activation (`fc1`, `fc2`).
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    /// Takes `{prefix}.fc1` and `{prefix}.fc2` (with biases).
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, inner: usize, act: Activation) -> Self {
        Mlp {
            fc1: Linear::load(w, &format!("{prefix}.fc1"), dim, inner, true),
            fc2: Linear::load(w, &format!("{prefix}.fc2"), inner, dim, true),
            act,
        }
    }

    /// `fc2(act(fc1(x)))`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)?)?)
    }
}

/// Multi-head attention where every position sees every other one.
#[derive(Debug, Clone)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    /// Number of heads.
    pub heads: i32,
}

impl Attention {
    /// Takes `{prefix}.{q,k,v,out}_proj` (with biases).
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, heads: usize) -> Self {
        let proj = |w: &mut Weights, name: &str| {
            Linear::load(w, &format!("{prefix}.{name}"), dim, dim, true)
        };
        Attention {
            q_proj: proj(w, "q_proj"),
            k_proj: proj(w, "k_proj"),
            v_proj: proj(w, "v_proj"),
            out_proj: proj(w, "out_proj"),
            heads: heads as i32,
        }
    }

    /// Attends from `queries` `[B, Tq, D]` over `context` `[B, Tk, D]`.
    pub fn forward(&self, queries: &Array, context: &Array) -> Result<Array> {
        let q = self.q_proj.forward(queries)?;
        let k = self.k_proj.forward(context)?;
        let v = self.v_proj.forward(context)?;
        let out = attend(&q, &k, &v, self.heads)?;
        self.out_proj.forward(&out)
    }
}

/// Unmasked scaled dot-product attention over projected `[B, T, heads·head_dim]` inputs.
pub fn attend(q: &Array, k: &Array, v: &Array, heads: i32) -> Result<Array> {
    let (b, tq, tk, dim) = (q.dim(0), q.dim(1), k.dim(1), q.dim(2));
    let head_dim = dim / heads;
    let split = |a: &Array, t: i32| -> Result<Array> {
        Ok(a.reshape(&[b, t, heads, head_dim])?
            .transpose_axes(&[0, 2, 1, 3])?)
    };
    let scale = (head_dim as f32).powf(-0.5);
    let out = fast::scaled_dot_product_attention(
        split(q, tq)?,
        split(k, tk)?,
        split(v, tk)?,
        scale,
        None,
        None,
    )?;
    Ok(out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, tq, dim])?)
}

/// A pre-norm encoder layer: `x + attn(ln1(x))`, then `h + mlp(ln2(h))`.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: Attention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

/// Sizes of a ViT encoder.
#[derive(Debug, Clone, Copy)]
pub struct EncoderDims {
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the MLP.
    pub intermediate: usize,
    /// Attention heads.
    pub heads: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// MLP activation.
    pub act: Activation,
}

impl EncoderLayer {
    /// Takes the layer under `prefix` (e.g. `vision_model.encoder.layers.0`).
    pub fn load(w: &mut Weights, prefix: &str, d: EncoderDims) -> Self {
        EncoderLayer {
            layer_norm1: LayerNorm::load(w, &format!("{prefix}.layer_norm1"), d.hidden, d.eps),
            self_attn: Attention::load(w, &format!("{prefix}.self_attn"), d.hidden, d.heads),
            layer_norm2: LayerNorm::load(w, &format!("{prefix}.layer_norm2"), d.hidden, d.eps),
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), d.hidden, d.intermediate, d.act),
        }
    }

    /// Runs the layer on `[B, T, D]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let normed = self.layer_norm1.forward(x)?;
        let h = ops::add(x, self.self_attn.forward(&normed, &normed)?)?;
        Ok(ops::add(
            &h,
            self.mlp.forward(&self.layer_norm2.forward(&h)?)?,
        )?)
    }
}

/// Runs `layers` over `x`; returns the output and, when `keep` is set, the
/// input of every layer followed by the output (HF's `hidden_states`).
pub fn run_layers(layers: &[EncoderLayer], x: Array, keep: bool) -> Result<(Array, Vec<Array>)> {
    let mut h = x;
    let mut states = Vec::new();
    for layer in layers {
        if keep {
            states.push(h.clone());
        }
        h = layer.forward(&h)?;
    }
    if keep {
        states.push(h.clone());
    }
    Ok((h, states))
}

/// A convolution whose stride equals its kernel (`[D, C, P, P]`), applied as
/// a matmul over non-overlapping patches: `[B, C, H, W]` → `[B, N, D]` with
/// patches in row-major order.
#[derive(Debug, Clone)]
pub struct PatchEmbedding {
    /// `[D, C·P·P]`.
    weight: Array,
    bias: Option<Array>,
    patch: i32,
    channels: i32,
}

impl PatchEmbedding {
    /// Takes `{prefix}.weight` `[D, C, P, P]` (and `{prefix}.bias` when `bias`).
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        dim: usize,
        channels: usize,
        patch: usize,
        bias: bool,
    ) -> Self {
        let (d, c, p) = (dim as i32, channels as i32, patch as i32);
        let weight = w.take(&format!("{prefix}.weight"), &[d, c, p, p]);
        let bias = bias.then(|| w.take(&format!("{prefix}.bias"), &[d]));
        PatchEmbedding {
            weight: weight.reshape(&[d, c * p * p]).unwrap_or(weight),
            bias,
            patch: p,
            channels: c,
        }
    }

    /// Embeds `pixels` `[B, C, H, W]`, whose height and width must be
    /// `image_size`.
    pub fn forward(&self, pixels: &Array, image_size: usize) -> Result<Array> {
        let shape = pixels.shape();
        let size = image_size as i32;
        if shape.len() != 4 || shape[1] != self.channels || shape[2] != size || shape[3] != size {
            return Err(Error::InvalidInput {
                expected: format!(
                    "pixel_values [batch, {}, {size}, {size}] (image_size {size} in config.json)",
                    self.channels
                ),
                found: format!("shape {shape:?}"),
            });
        }
        let (b, c, p) = (shape[0], self.channels, self.patch);
        let (gh, gw) = (size / p, size / p);
        let patches = pixels
            .reshape(&[b, c, gh, p, gw, p])?
            .transpose_axes(&[0, 2, 4, 1, 3, 5])?
            .reshape(&[b, gh * gw, c * p * p])?;
        let wt = self.weight.t();
        Ok(match &self.bias {
            Some(bias) => ops::addmm(bias, &patches, &wt, None, None)?,
            None => ops::matmul(&patches, &wt)?,
        })
    }
}

/// A `sanitize` for standalone vision towers: transformers 5 saves them
/// without the `vision_model.` prefix that older checkpoints carry; both
/// load under the bare names.
pub fn strip_vision_model_prefix(
    _config: &forge_core::ModelConfig,
    weights: forge_core::TensorMap,
) -> Result<forge_core::TensorMap> {
    Ok(weights
        .into_iter()
        .map(|(name, a)| match name.strip_prefix("vision_model.") {
            Some(bare) => (bare.to_string(), a),
            None => (name, a),
        })
        .collect())
}

/// The config of a ViT vision tower (HF `CLIPVisionConfig` /
/// `SiglipVisionConfig` names). Defaults that differ between models
/// (activation, epsilon) are given by the plugin.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct VitConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels.
    #[serde(default = "three")]
    pub num_channels: usize,
    /// Input height and width.
    pub image_size: usize,
    /// Patch height and width.
    pub patch_size: usize,
    /// MLP activation (`None`: the model's default).
    pub hidden_act: Option<String>,
    /// LayerNorm epsilon (`None`: the model's default).
    pub layer_norm_eps: Option<f64>,
    /// SigLIP's attention-pooling head switch (`None`: not given).
    pub vision_use_head: Option<bool>,
}

fn three() -> usize {
    3
}

impl VitConfig {
    /// Checks that patches tile the image and heads divide the width, and
    /// resolves the activation and epsilon (given the model's defaults).
    pub fn dims(
        &self,
        config: &forge_core::ModelConfig,
        default_act: &str,
        default_eps: f64,
    ) -> Result<EncoderDims> {
        let bad = |key: &str, expected: String, found: usize| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found: found.to_string(),
        };
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            let expected = format!("a divisor of image_size ({})", self.image_size);
            return Err(bad("patch_size", expected, self.patch_size));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            let expected = format!("a divisor of hidden_size ({})", self.hidden_size);
            return Err(bad(
                "num_attention_heads",
                expected,
                self.num_attention_heads,
            ));
        }
        let act = self.hidden_act.as_deref().unwrap_or(default_act);
        Ok(EncoderDims {
            hidden: self.hidden_size,
            intermediate: self.intermediate_size,
            heads: self.num_attention_heads,
            eps: self.layer_norm_eps.unwrap_or(default_eps),
            act: Activation::parse(act, config, "hidden_act")?,
        })
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Plan lines shared by ViT towers; `tokens` says how the sequence is made.
    pub fn plan(
        &self,
        dims: &EncoderDims,
        tokens: &str,
        pooler: &str,
    ) -> Vec<forge_core::PlanItem> {
        use forge_core::PlanItem;
        vec![
            PlanItem::new("layers", self.num_hidden_layers),
            PlanItem::new("hidden size", self.hidden_size),
            PlanItem::new(
                "image",
                format!(
                    "{0}x{0}, {1}x{1} patches, {tokens}",
                    self.image_size, self.patch_size
                ),
            ),
            PlanItem::new(
                "attention",
                format!("{} heads, bidirectional", self.num_attention_heads),
            ),
            PlanItem::new(
                "mlp",
                format!("{:?}, intermediate {}", dims.act, self.intermediate_size),
            ),
            PlanItem::new("norm", format!("LayerNorm, eps {}", dims.eps)),
            PlanItem::new("pooler", pooler),
        ]
    }
}
