//! Vision towers as [`Model`]s: encoders with no cache and no generation.
//! A plugin implements [`VisionTower`] and registers `Encoder(tower)`.

use forge_core::cache::KvCache;
use forge_core::mlx_rs::Array;
use forge_core::model::{ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem};
use forge_core::{Error, Result};

/// What a vision tower returns (HF names).
#[derive(Debug, Clone)]
pub struct TowerOutput {
    /// `[B, T, D]`.
    pub last_hidden_state: Array,
    /// `[B, D]`, where the model has a pooler.
    pub pooler_output: Option<Array>,
    /// Every layer's input and the last layer's output, when asked for.
    pub hidden_states: Vec<Array>,
}

/// A vision encoder: pixels in, hidden states out.
pub trait VisionTower: std::fmt::Debug {
    /// What it is, for messages ("a CLIP vision tower").
    fn name(&self) -> &'static str;
    /// Runs the tower on `pixels` `[B, C, H, W]`.
    fn encode(&self, pixels: &Array, keep_hidden: bool) -> Result<TowerOutput>;
    /// The pooled output projected into an image-text space (HF's
    /// `image_embeds`), for towers whose checkpoint has a projection.
    fn project(&self, _pooled: &Array) -> Result<Option<Array>> {
        Ok(None)
    }
    /// Runs the tower with the whole forward options; towers that need more
    /// than pixels (Qwen2-VL's `image_grid_thw`) override this.
    fn encode_with(&self, pixels: &Array, options: &ForwardOptions) -> Result<TowerOutput> {
        self.encode(pixels, options.output_hidden_states)
    }
    /// Number of encoder layers.
    fn num_layers(&self) -> usize;
    /// The compiled plan, for `forge inspect`.
    fn plan(&self) -> Vec<PlanItem>;
}

/// A [`VisionTower`] as a [`Model`] of kind [`ModelKind::Encoder`].
#[derive(Debug)]
pub struct Encoder<T>(pub T);

impl<T: VisionTower> Model for Encoder<T> {
    fn kind(&self) -> ModelKind {
        ModelKind::Encoder
    }

    fn forward(
        &self,
        input: &ModelInput,
        _cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let ModelInput::Pixels(pixels) = input else {
            return Err(Error::InvalidInput {
                expected: format!("pixel values for {}", self.0.name()),
                found: "token ids or embeddings".into(),
            });
        };
        let out = self.0.encode_with(pixels, options)?;
        let image_embeds = match &out.pooler_output {
            Some(pooled) => self.0.project(pooled)?,
            None => None,
        };
        Ok(ModelOutput {
            last_hidden_state: Some(out.last_hidden_state),
            pooler_output: out.pooler_output,
            image_embeds,
            hidden_states: out.hidden_states,
            logits: None,
        })
    }

    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        Vec::new()
    }

    fn num_layers(&self) -> usize {
        self.0.num_layers()
    }

    fn vocab_size(&self) -> usize {
        0
    }

    fn max_context(&self) -> Option<usize> {
        None
    }

    fn kv_bytes_per_token(&self) -> usize {
        0
    }

    fn plan(&self) -> Vec<PlanItem> {
        self.0.plan()
    }
}
