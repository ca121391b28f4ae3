//! SigLIP's vision tower (`siglip_vision_model`, HF `SiglipVisionModel`) for Forge.
//!
//! Patches (a stride-P convolution with bias) plus learned position
//! embeddings, no class token, pre-norm encoder layers, `post_layernorm`,
//! and an attention-pooling head: a learned probe attends over the tokens
//! (`nn.MultiheadAttention` with packed `in_proj`), then a residual MLP
//! behind a LayerNorm. HF's outputs: `last_hidden_state` has the
//! post-layernorm; `hidden_states` end with the encoder output before it;
//! `pooler_output` is the head's output.

use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::Linear;
use forge_core::registry::Architecture;
use forge_core::{ModelConfig, Result, Weights};
use forge_vision::tower::{Encoder, TowerOutput, VisionTower};
use forge_vision::vit::{
    attend, run_layers, strip_vision_model_prefix, EncoderDims, EncoderLayer, LayerNorm, Mlp,
    PatchEmbedding, VitConfig,
};

inventory::submit! {
    Architecture {
        model_type: "siglip_vision_model",
        aliases: &[],
        description: "SigLIP vision tower: ViT without class token, post-layernorm, attention-pooling head",
        ignored_config_keys: &[],
        sanitize: strip_vision_model_prefix,
        build,
    }
}

/// The attention-pooling head.
#[derive(Debug)]
struct PoolingHead {
    probe: Array,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: i32,
    layernorm: LayerNorm,
    mlp: Mlp,
}

impl PoolingHead {
    fn load(w: &mut Weights, prefix: &str, d: EncoderDims) -> Result<Self> {
        let dim = d.hidden as i32;
        let packed = w.take(
            &format!("{prefix}attention.in_proj_weight"),
            &[3 * dim, dim],
        );
        let packed_bias = w.take(&format!("{prefix}attention.in_proj_bias"), &[3 * dim]);
        // A placeholder (after a shape error) cannot be split; `finish` reports it.
        let (weights, biases) = if packed.size() == 0 || packed_bias.size() == 0 {
            (vec![packed.clone(); 3], vec![packed_bias.clone(); 3])
        } else {
            (packed.split_equal(3, 0)?, packed_bias.split_equal(3, 0)?)
        };
        let proj = |i: usize| Linear::new(weights[i].clone(), Some(biases[i].clone()));
        Ok(PoolingHead {
            probe: w.take(&format!("{prefix}probe"), &[1, 1, dim]),
            q_proj: proj(0),
            k_proj: proj(1),
            v_proj: proj(2),
            out_proj: Linear::load(
                w,
                &format!("{prefix}attention.out_proj"),
                d.hidden,
                d.hidden,
                true,
            ),
            heads: d.heads as i32,
            layernorm: LayerNorm::load(w, &format!("{prefix}layernorm"), d.hidden, d.eps),
            mlp: Mlp::load(w, &format!("{prefix}mlp"), d.hidden, d.intermediate, d.act),
        })
    }

    /// `[B, T, D]` → `[B, D]`.
    fn forward(&self, x: &Array) -> Result<Array> {
        let b = x.dim(0);
        let probe = ops::broadcast_to(&self.probe, &[b, 1, self.probe.dim(2)])?;
        let q = self.q_proj.forward(&probe)?;
        let k = self.k_proj.forward(x)?;
        let v = self.v_proj.forward(x)?;
        let h = self.out_proj.forward(&attend(&q, &k, &v, self.heads)?)?;
        let h = ops::add(&h, self.mlp.forward(&self.layernorm.forward(&h)?)?)?;
        Ok(h.take_axis(Array::from_int(0), 1)?)
    }
}

/// HF's default `hidden_act` for this tower.
const DEFAULT_ACT: &str = "gelu_pytorch_tanh";
/// HF's default `layer_norm_eps` for this tower.
const DEFAULT_EPS: f64 = 1e-6;

/// A SigLIP vision tower.
#[derive(Debug)]
pub struct SiglipVision {
    args: VitConfig,
    dims: EncoderDims,
    patch_embedding: PatchEmbedding,
    position_embedding: Array,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
    head: Option<PoolingHead>,
}

/// Builds a SigLIP vision tower from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    let args: VitConfig = config.parse_args(&[])?;
    Ok(Box::new(Encoder(SiglipVision::load(
        config, &args, weights, "",
    )?)))
}

impl SiglipVision {
    /// Takes the tower's tensors under `prefix` (empty for a standalone tower; ends in a dot otherwise).
    pub fn load(
        config: &ModelConfig,
        args: &VitConfig,
        w: &mut Weights,
        prefix: &str,
    ) -> Result<Self> {
        let dims = args.dims(config, DEFAULT_ACT, DEFAULT_EPS)?;
        let d = args.hidden_size;
        let positions = args.grid().pow(2);
        let e = format!("{prefix}embeddings.");
        let head = if args.vision_use_head.unwrap_or(true) {
            Some(PoolingHead::load(w, &format!("{prefix}head."), dims)?)
        } else {
            None
        };
        Ok(SiglipVision {
            patch_embedding: PatchEmbedding::load(
                w,
                &format!("{e}patch_embedding"),
                d,
                args.num_channels,
                args.patch_size,
                true,
            ),
            position_embedding: w.take(
                &format!("{e}position_embedding.weight"),
                &[positions as i32, d as i32],
            ),
            layers: (0..args.num_hidden_layers)
                .map(|i| EncoderLayer::load(w, &format!("{prefix}encoder.layers.{i}"), dims))
                .collect(),
            post_layernorm: LayerNorm::load(w, &format!("{prefix}post_layernorm"), d, dims.eps),
            head,
            args: args.clone(),
            dims,
        })
    }
}

impl VisionTower for SiglipVision {
    fn name(&self) -> &'static str {
        "a SigLIP vision tower"
    }

    fn encode(&self, pixels: &Array, keep_hidden: bool) -> Result<TowerOutput> {
        let patches = self.patch_embedding.forward(pixels, self.args.image_size)?;
        let h = ops::add(&patches, &self.position_embedding)?;
        let (out, hidden_states) = run_layers(&self.layers, h, keep_hidden)?;
        let last = self.post_layernorm.forward(&out)?;
        let pooler_output = self
            .head
            .as_ref()
            .map(|head| head.forward(&last))
            .transpose()?;
        Ok(TowerOutput {
            last_hidden_state: last,
            pooler_output,
            hidden_states,
        })
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn plan(&self) -> Vec<PlanItem> {
        let pooler = if self.head.is_some() {
            "attention-pooling head"
        } else {
            "none"
        };
        self.args
            .plan(&self.dims, "no class token; post_layernorm", pooler)
    }
}
