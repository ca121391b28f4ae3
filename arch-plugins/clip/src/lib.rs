//! CLIP's vision tower (`clip_vision_model`, HF `CLIPVisionModel`) for Forge.
//!
//! Patches (a stride-P convolution without bias) plus a learned class
//! embedding in front, learned position embeddings, `pre_layrnorm` (HF's
//! spelling), pre-norm encoder layers, and `post_layernorm` on the class
//! token as the pooled output. HF's outputs: `hidden_states[0]` is after
//! `pre_layrnorm`; `last_hidden_state` is the encoder output, without the
//! post-layernorm; `pooler_output` is `post_layernorm(last_hidden_state[:, 0])`.
//!
//! Checkpoints saved from `CLIPVisionModelWithProjection` (same model_type)
//! also carry `visual_projection.weight` `[projection_dim, hidden]`: then
//! the model also returns `image_embeds` = `visual_projection(pooler_output)`
//! ([`ModelOutput::image_embeds`](forge_core::model::ModelOutput)), and
//! `pooler_output` stays the unprojected pooled output.

use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::Linear;
use forge_core::registry::Architecture;
use forge_core::{ModelConfig, Result, Weights};
use forge_vision::tower::{Encoder, TowerOutput, VisionTower};
use forge_vision::vit::{
    run_layers, strip_vision_model_prefix, EncoderDims, EncoderLayer, LayerNorm, PatchEmbedding,
    VitConfig,
};

inventory::submit! {
    Architecture {
        model_type: "clip_vision_model",
        aliases: &[],
        description: "CLIP vision tower: class token, pre_layrnorm, pre-norm ViT layers, post-layernorm pooler",
        ignored_config_keys: IGNORED_CONFIG_KEYS,
        sanitize: strip_vision_model_prefix,
        build,
    }
}

/// Keys that do not change inference: init scales, dropout, and the
/// projection size (read by [`build`] only when the checkpoint has a
/// `visual_projection`; the LLaVA tower has none).
pub const IGNORED_CONFIG_KEYS: &[&str] = &["initializer_factor", "dropout", "projection_dim"];

/// HF's default `projection_dim`.
const DEFAULT_PROJECTION_DIM: u64 = 512;
/// HF's default `hidden_act` for this tower.
const DEFAULT_ACT: &str = "quick_gelu";
/// HF's default `layer_norm_eps` for this tower.
const DEFAULT_EPS: f64 = 1e-5;

/// A CLIP vision tower.
#[derive(Debug)]
pub struct ClipVision {
    args: VitConfig,
    dims: EncoderDims,
    class_embedding: Array,
    patch_embedding: PatchEmbedding,
    position_embedding: Array,
    pre_layrnorm: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
    visual_projection: Option<Linear>,
}

/// Builds a CLIP vision tower from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    let args: VitConfig = config.parse_args(IGNORED_CONFIG_KEYS)?;
    if args.vision_use_head.is_some() {
        return Err(forge_core::Error::UnknownConfigKeys {
            path: config.path().to_path_buf(),
            model_type: "clip_vision_model".into(),
            keys: vec!["vision_use_head".into()],
        });
    }
    let mut tower = ClipVision::load(config, &args, weights, "")?;
    if weights.contains("visual_projection.weight") {
        let dim = match config.json().get("projection_dim") {
            None => DEFAULT_PROJECTION_DIM,
            Some(v) => v.as_u64().ok_or_else(|| forge_core::Error::ConfigValue {
                path: config.path().to_path_buf(),
                key: "projection_dim".into(),
                expected: "a positive integer".into(),
                found: v.to_string(),
            })?,
        };
        let hidden = args.hidden_size;
        tower.visual_projection = Some(Linear::load(
            weights,
            "visual_projection",
            hidden,
            dim as usize,
            false,
        ));
    }
    Ok(Box::new(Encoder(tower)))
}

impl ClipVision {
    /// Takes the tower's tensors under `prefix`: empty for a standalone
    /// tower (after [`strip_vision_model_prefix`]), e.g.
    /// `model.vision_tower.vision_model.` inside LLaVA.
    pub fn load(
        config: &ModelConfig,
        args: &VitConfig,
        w: &mut Weights,
        prefix: &str,
    ) -> Result<Self> {
        let dims = args.dims(config, DEFAULT_ACT, DEFAULT_EPS)?;
        let d = args.hidden_size;
        let positions = args.grid().pow(2) + 1;
        let e = format!("{prefix}embeddings.");
        Ok(ClipVision {
            class_embedding: w.take(&format!("{e}class_embedding"), &[d as i32]),
            patch_embedding: PatchEmbedding::load(
                w,
                &format!("{e}patch_embedding"),
                d,
                args.num_channels,
                args.patch_size,
                false,
            ),
            position_embedding: w.take(
                &format!("{e}position_embedding.weight"),
                &[positions as i32, d as i32],
            ),
            pre_layrnorm: LayerNorm::load(w, &format!("{prefix}pre_layrnorm"), d, dims.eps),
            layers: (0..args.num_hidden_layers)
                .map(|i| EncoderLayer::load(w, &format!("{prefix}encoder.layers.{i}"), dims))
                .collect(),
            post_layernorm: LayerNorm::load(w, &format!("{prefix}post_layernorm"), d, dims.eps),
            visual_projection: None,
            args: args.clone(),
            dims,
        })
    }

    /// Runs the tower up to layer `upto` (all layers when `None`) and
    /// returns every hidden state on the way when `keep_hidden` is set.
    pub fn hidden_states(
        &self,
        pixels: &Array,
        upto: Option<usize>,
        keep_hidden: bool,
    ) -> Result<(Array, Vec<Array>)> {
        let patches = self.patch_embedding.forward(pixels, self.args.image_size)?;
        let (b, d) = (patches.dim(0), self.args.hidden_size as i32);
        let class = ops::broadcast_to(self.class_embedding.reshape(&[1, 1, d])?, &[b, 1, d])?;
        let h = ops::add(
            ops::concatenate(&[class, patches], 1)?,
            &self.position_embedding,
        )?;
        let h = self.pre_layrnorm.forward(&h)?;
        let layers = &self.layers[..upto.unwrap_or(self.layers.len()).min(self.layers.len())];
        run_layers(layers, h, keep_hidden)
    }
}

impl VisionTower for ClipVision {
    fn name(&self) -> &'static str {
        "a CLIP vision tower"
    }

    fn encode(&self, pixels: &Array, keep_hidden: bool) -> Result<TowerOutput> {
        let (last, hidden_states) = self.hidden_states(pixels, None, keep_hidden)?;
        let class_out = last.take_axis(Array::from_int(0), 1)?;
        Ok(TowerOutput {
            pooler_output: Some(self.post_layernorm.forward(&class_out)?),
            last_hidden_state: last,
            hidden_states,
        })
    }

    fn project(&self, pooled: &Array) -> Result<Option<Array>> {
        self.visual_projection
            .as_ref()
            .map(|p| p.forward(pooled))
            .transpose()
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn plan(&self) -> Vec<PlanItem> {
        let tokens = "plus a class token; pre_layrnorm";
        let mut plan = self
            .args
            .plan(&self.dims, tokens, "post_layernorm(class token)");
        if let Some(p) = &self.visual_projection {
            let to = p.weight.dim(0);
            plan.push(PlanItem::new(
                "projection",
                format!(
                    "visual_projection {} -> {to} (image_embeds)",
                    self.args.hidden_size
                ),
            ));
        }
        plan
    }
}
