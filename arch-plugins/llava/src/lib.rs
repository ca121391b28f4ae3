//! LLaVA for Forge (`llava`, HF `LlavaForConditionalGeneration`): a CLIP
//! vision tower, a projector (linear → activation → linear) and a Llama.
//!
//! An image's features are the tower's hidden state(s) at
//! `vision_feature_layer` (a list is concatenated along the features),
//! without the class token under the "default" strategy, through the
//! projector: one row per patch, each the width of the language model.
//! They replace, in order, the embeddings of the prompt's image tokens
//! (`image_token_id`), whose count must equal the number of rows. The
//! language model then runs over those embeddings; its logits and hidden
//! states are the model's.
//!
//! Weights load from both layouts transformers has used: `model.vision_tower`,
//! `model.multi_modal_projector`, `model.language_model`, `lm_head`, and
//! the older `vision_tower`, `multi_modal_projector`,
//! `language_model.model`, `language_model.lm_head` (which transformers
//! 5.23 still writes).

pub mod config;

use forge_clip::ClipVision;
use forge_core::cache::KvCache;
use forge_core::mlx_rs::{ops, Array, Dtype};
use forge_core::model::{
    Fault, ForwardOptions, ImageTokens, Model, ModelInput, ModelKind, ModelOutput, PlanItem,
};
use forge_core::nn::Linear;
use forge_core::registry::Architecture;
use forge_core::{Error, ModelConfig, Result, TensorMap, Weights};
use forge_llama::Llama;
use forge_vision::vit::{Activation, VitConfig};

use crate::config::{nested, LlavaArgs, IGNORED_CONFIG_KEYS};

inventory::submit! {
    Architecture {
        model_type: "llava",
        aliases: &[],
        description: "LLaVA: CLIP vision tower, linear-act-linear projector, Llama; image features at the image tokens",
        ignored_config_keys: IGNORED_CONFIG_KEYS,
        sanitize,
        build,
    }
}

/// Where each part's tensors live after [`sanitize`].
const VISION: &str = "vision_tower.";
const PROJECTOR: &str = "multi_modal_projector";

/// Renames both checkpoint layouts to one: the tower under `vision_tower.`,
/// the projector under `multi_modal_projector.`, the language model under
/// the names a plain Llama checkpoint uses (`model.*`, `lm_head`).
pub fn sanitize(_config: &ModelConfig, weights: TensorMap) -> Result<TensorMap> {
    const RENAMES: &[(&str, &str)] = &[
        ("model.vision_tower.vision_model.", VISION),
        ("model.vision_tower.", VISION),
        ("vision_tower.vision_model.", VISION),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("model.language_model.", "model."),
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
    ];
    Ok(weights
        .into_iter()
        .map(|(name, a)| {
            let renamed = RENAMES
                .iter()
                .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")));
            (renamed.unwrap_or(name), a)
        })
        .collect())
}

/// A LLaVA model.
#[derive(Debug)]
pub struct Llava {
    vision_tower: ClipVision,
    /// Indices into the tower's hidden states (`num_layers + 1` of them).
    feature_layers: Vec<usize>,
    keep_class_token: bool,
    linear_1: Linear,
    act: Activation,
    linear_2: Linear,
    language_model: Llama,
    image_tokens: ImageTokens,
}

/// Builds a LLaVA model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(Llava::load(config, weights)?))
}

impl Llava {
    /// Loads the three parts from the config and (sanitized) weights.
    pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Self> {
        let args: LlavaArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
        let keep_class_token = args.keeps_class_token(config)?;
        let act = Activation::parse(&args.projector_hidden_act, config, "projector_hidden_act")?;

        let vision_config = nested(config, "vision_config", &["clip_vision_model"])?;
        let vit: VitConfig = vision_config.parse_args(forge_clip::IGNORED_CONFIG_KEYS)?;
        let vision_tower = ClipVision::load(&vision_config, &vit, weights, VISION)?;
        let feature_layers = args
            .vision_feature_layer
            .resolve(vit.num_hidden_layers + 1, config)?;

        let mut text_config = nested(config, "text_config", &["llama"])?;
        if args.tie_word_embeddings {
            // HF ties the head when either level says so.
            let mut json = text_config.json().clone();
            json.insert("tie_word_embeddings".into(), true.into());
            text_config = ModelConfig::from_json(json, config.path().into(), config.is_strict())?;
        }
        let language_model = forge_llama::load(&text_config, weights)?;
        let text_hidden = hidden_size(&text_config)?;

        let features_in = vit.hidden_size * feature_layers.len();
        let bias = args.multimodal_projector_bias;
        let linear_1 = Linear::load(
            weights,
            &format!("{PROJECTOR}.linear_1"),
            features_in,
            text_hidden,
            bias,
        );
        let linear_2 = Linear::load(
            weights,
            &format!("{PROJECTOR}.linear_2"),
            text_hidden,
            text_hidden,
            bias,
        );
        let patches = vit.grid() * vit.grid();
        let image_tokens = ImageTokens {
            token_id: args.image_token_id,
            per_image: patches + usize::from(keep_class_token),
        };
        if image_tokens.token_id as usize >= language_model.vocab_size() {
            return Err(Error::ConfigValue {
                path: config.path().to_path_buf(),
                key: "image_token_id".into(),
                expected: format!(
                    "a token id below the vocabulary size {}",
                    language_model.vocab_size()
                ),
                found: image_tokens.token_id.to_string(),
            });
        }
        Ok(Llava {
            vision_tower,
            feature_layers,
            keep_class_token,
            linear_1,
            act,
            linear_2,
            language_model,
            image_tokens,
        })
    }

    /// The projected features of `pixels` `[images, C, H, W]`: `[images ×
    /// per_image, text_hidden]`, images in order.
    pub fn image_features(&self, pixels: &Array) -> Result<Array> {
        let deepest = self.feature_layers.iter().copied().max().unwrap_or(0);
        let (_, states) = self
            .vision_tower
            .hidden_states(pixels, Some(deepest), true)?;
        let mut selected = Vec::with_capacity(self.feature_layers.len());
        for &i in &self.feature_layers {
            let h = &states[i];
            selected.push(if self.keep_class_token {
                h.clone()
            } else {
                let t = h.dim(1);
                h.take_axis(Array::from_iter(1..t, &[t - 1]), 1)?
            });
        }
        let features = ops::concatenate(&selected, -1)?;
        let h = self.linear_1.forward(&features)?;
        let h = self.linear_2.forward(&self.act.apply(&h)?)?;
        let d = h.dim(2);
        Ok(h.reshape(&[-1, d])?)
    }
}

/// `hidden_size` of the text config.
fn hidden_size(config: &ModelConfig) -> Result<usize> {
    config
        .json()
        .get("hidden_size")
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: "text_config.hidden_size".into(),
            expected: "a positive integer".into(),
            found: "none".into(),
        })
}

/// `embeds` `[B, T, D]` with the rows of `features` `[M, D]` in place of the
/// positions of `ids` `[B, T]` that hold `token`, in row-major order; the
/// number of such positions must be M.
pub fn splice(ids: &Array, embeds: &Array, features: &Array, tokens: ImageTokens) -> Result<Array> {
    let flat = ids.as_dtype(Dtype::Int32)?;
    flat.eval()?;
    let ids = flat.as_slice::<i32>();
    let rows = features.dim(0) as usize;
    let placeholders = ids.iter().filter(|&&t| t == tokens.token_id as i32).count();
    if placeholders != rows {
        let images = rows / tokens.per_image.max(1);
        return Err(Error::InvalidInput {
            expected: format!(
                "{rows} image tokens (id {}) in the prompt: {images} image(s) × {} features",
                tokens.token_id, tokens.per_image
            ),
            found: format!("{placeholders} image tokens"),
        });
    }
    // Gather from [text embeddings; image features]: text position p keeps
    // row p, the k-th image token takes row n + k.
    let n = ids.len() as i32;
    let mut next = n;
    let index: Vec<i32> = (0..n)
        .map(|p| {
            if ids[p as usize] == tokens.token_id as i32 {
                next += 1;
                next - 1
            } else {
                p
            }
        })
        .collect();
    let (b, t, d) = (embeds.dim(0), embeds.dim(1), embeds.dim(2));
    let all = ops::concatenate(
        &[
            embeds.reshape(&[b * t, d])?,
            features.as_dtype(embeds.dtype())?,
        ],
        0,
    )?;
    let index = Array::from_slice(&index, &[n]);
    Ok(all.take_axis(&index, 0)?.reshape(&[b, t, d])?)
}

impl Model for Llava {
    fn kind(&self) -> ModelKind {
        ModelKind::CausalLm
    }

    fn forward(
        &self,
        input: &ModelInput,
        cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let Some(pixels) = &options.pixel_values else {
            return self.language_model.forward(input, cache, options);
        };
        let ModelInput::Tokens(ids) = input else {
            return Err(Error::InvalidInput {
                expected:
                    "token ids with pixel_values (LLaVA puts image features at the image tokens)"
                        .into(),
                found: "embeddings or pixels".into(),
            });
        };
        let embeds = self.embed_with_images(ids, pixels)?;
        let options = ForwardOptions {
            pixel_values: None,
            ..options.clone()
        };
        self.language_model
            .forward(&ModelInput::Embeddings(embeds), cache, &options)
    }

    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        self.language_model.new_cache()
    }

    fn num_layers(&self) -> usize {
        self.language_model.num_layers()
    }

    fn vocab_size(&self) -> usize {
        self.language_model.vocab_size()
    }

    fn max_context(&self) -> Option<usize> {
        self.language_model.max_context()
    }

    fn kv_bytes_per_token(&self) -> usize {
        self.language_model.kv_bytes_per_token()
    }

    fn plan(&self) -> Vec<PlanItem> {
        use forge_vision::tower::VisionTower;
        let strategy = if self.keep_class_token {
            "full: class token kept"
        } else {
            "default: class token dropped"
        };
        let mut plan = vec![PlanItem::new(
            "image tokens",
            format!(
                "id {}, {} per image",
                self.image_tokens.token_id, self.image_tokens.per_image
            ),
        )];
        plan.extend(
            self.vision_tower
                .plan()
                .into_iter()
                .map(|item| PlanItem::new(format!("vision {}", item.label), item.value)),
        );
        plan.push(PlanItem::new(
            "vision features",
            format!("hidden_states {:?} ({strategy})", self.feature_layers),
        ));
        plan.push(PlanItem::new(
            "projector",
            format!(
                "linear {} -> {}, {:?}, linear, bias {}",
                self.linear_1.weight.dim(1),
                self.linear_1.weight.dim(0),
                self.act,
                self.linear_1.bias.is_some()
            ),
        ));
        plan.extend(self.language_model.plan());
        plan
    }

    fn image_tokens(&self) -> Option<ImageTokens> {
        Some(self.image_tokens)
    }

    fn embed_with_images(&self, input_ids: &Array, pixel_values: &Array) -> Result<Array> {
        let features = self.image_features(pixel_values)?;
        let embeds = self.language_model.embed(input_ids)?;
        splice(input_ids, &embeds, &features, self.image_tokens)
    }

    fn plant_fault(&mut self, fault: &Fault) -> bool {
        self.language_model.plant_fault(fault)
    }
}
