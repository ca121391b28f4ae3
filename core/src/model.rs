//! The `Model` trait every architecture implements, and what goes in and
//! out of a forward pass.

use mlx_rs::Array;

use crate::cache::KvCache;
use crate::error::{Error, Result};

/// What kind of model a plugin builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Decoder-only language model: token ids in, next-token logits out, with a cache.
    CausalLm,
    /// Encoder (e.g. a vision tower): no cache, no generation.
    Encoder,
}

/// The input of one forward pass.
#[derive(Debug, Clone)]
pub enum ModelInput {
    /// Token ids, `[B, T]` (int32 or int64).
    Tokens(Array),
    /// Input embeddings, `[B, T, hidden]` (e.g. with image features spliced in).
    Embeddings(Array),
    /// Images, `[B, C, H, W]`, for vision encoders.
    Pixels(Array),
}

/// The number of positions a decoder's cache already holds (0 without a
/// cache), after checking it has one entry per layer.
pub fn cache_offset(cache: Option<&[Box<dyn KvCache>]>, layers: usize) -> Result<usize> {
    match cache {
        None => Ok(0),
        Some(cache) if cache.len() != layers => Err(Error::InvalidInput {
            expected: format!("a cache with {layers} layers"),
            found: format!("{} layers", cache.len()),
        }),
        Some(cache) => Ok(cache.first().map_or(0, |c| c.offset())),
    }
}

/// Options of one forward pass.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// `[B, past + T]` with 1 for real tokens and 0 for padding (left
    /// padding for batches); `None` means every position is real.
    pub attention_mask: Option<Array>,
    /// Also return every layer's hidden state (HF order: embeddings first,
    /// the last one after the final norm).
    pub output_hidden_states: bool,
    /// Images `[B, C, H, W]` that go with the tokens, for vision-language
    /// models (their features replace the image tokens' embeddings).
    pub pixel_values: Option<Array>,
    /// `[images, 3]` (t, h, w) patch grid of each image, for vision towers
    /// that take pre-flattened patches (Qwen2-VL: `ModelInput::Pixels`
    /// holds `[N, C·T·P·P]`, `N` the sum of t·h·w).
    pub image_grid_thw: Option<Array>,
}

/// What a forward pass returns.
#[derive(Debug, Clone, Default)]
pub struct ModelOutput {
    /// `[B, T, vocab]` for causal LMs.
    pub logits: Option<Array>,
    /// `[B, T, hidden]`: encoders' final hidden state.
    pub last_hidden_state: Option<Array>,
    /// `[B, hidden]`: encoders' pooled output, where the model has one.
    pub pooler_output: Option<Array>,
    /// `[B, projection_dim]`: the pooled output through the model's
    /// projection into a shared image-text space (CLIP's
    /// `visual_projection`), where the checkpoint has one; HF's
    /// `image_embeds`. `pooler_output` stays unprojected.
    pub image_embeds: Option<Array>,
    /// Every layer's hidden state when asked for (num_layers + 1 entries).
    pub hidden_states: Vec<Array>,
}

/// How a vision-language model marks where an image goes in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageTokens {
    /// The placeholder token id (HF `image_token_id` / `image_token_index`).
    pub token_id: u32,
    /// Placeholder tokens per image: one per image feature row.
    pub per_image: usize,
}

impl ImageTokens {
    /// Repeats each placeholder in `ids` `per_image` times, as HF's
    /// LlavaProcessor expands its image token; `ids` must hold exactly one
    /// placeholder per image.
    pub fn expand(&self, ids: &[u32], images: usize) -> Result<Vec<u32>> {
        let found = ids.iter().filter(|&&t| t == self.token_id).count();
        if found != images {
            return Err(Error::InvalidInput {
                expected: format!("one image token (id {}) per image: {images}", self.token_id),
                found: format!("{found} image token(s) in the prompt"),
            });
        }
        Ok(ids
            .iter()
            .flat_map(|&t| {
                let n = if t == self.token_id {
                    self.per_image
                } else {
                    1
                };
                std::iter::repeat_n(t, n)
            })
            .collect())
    }
}

#[cfg(test)]
mod image_token_tests {
    use super::*;

    const TOKENS: ImageTokens = ImageTokens {
        token_id: 7,
        per_image: 3,
    };

    #[test]
    fn each_image_token_becomes_one_per_feature() {
        let ids = TOKENS.expand(&[1, 7, 4, 7, 5], 2).unwrap();
        assert_eq!(ids, [1, 7, 7, 7, 4, 7, 7, 7, 5]);
    }

    #[test]
    fn a_count_mismatch_names_both_counts() {
        let err = TOKENS.expand(&[1, 4], 1).unwrap_err().to_string();
        assert!(
            err.contains("one image token (id 7) per image: 1")
                && err.contains("0 image token(s) in the prompt"),
            "{err}"
        );
        assert!(TOKENS.expand(&[7, 7], 1).is_err());
    }
}

/// One line of a model's compiled plan, for `forge inspect`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    /// What is described ("layers", "rope", "attention pattern", ...).
    pub label: String,
    /// The description.
    pub value: String,
}

impl PlanItem {
    /// A plan line.
    pub fn new(label: impl Into<String>, value: impl ToString) -> Self {
        PlanItem {
            label: label.into(),
            value: value.to_string(),
        }
    }
}

/// A runnable architecture instance with its weights.
pub trait Model {
    /// Causal LM or encoder.
    fn kind(&self) -> ModelKind;

    /// Runs the model. `cache` holds one entry per layer for causal LMs (see
    /// [`Model::new_cache`]); encoders take `None`.
    fn forward(
        &self,
        input: &ModelInput,
        cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput>;

    /// A fresh cache, one entry per layer (empty for encoders).
    fn new_cache(&self) -> Vec<Box<dyn KvCache>>;

    /// Number of transformer layers.
    fn num_layers(&self) -> usize;

    /// Vocabulary size (0 for encoders).
    fn vocab_size(&self) -> usize;

    /// The longest context the model supports, if it has a limit.
    fn max_context(&self) -> Option<usize>;

    /// Bytes of KV cache per token (all layers, batch 1) in the model dtype.
    fn kv_bytes_per_token(&self) -> usize;

    /// The compiled plan: layers, heads, rope, attention pattern...
    fn plan(&self) -> Vec<PlanItem>;

    /// For vision-language models: the image placeholder token and how many
    /// of them one image takes (a prompt repeats the placeholder that often).
    fn image_tokens(&self) -> Option<ImageTokens> {
        None
    }

    /// For vision-language models: the input embeddings `[B, T, hidden]` of
    /// `input_ids` with the features of `pixel_values` `[images, C, H, W]`
    /// in place of the image placeholder tokens, in order. Generation
    /// computes them once and prefills over them, so chunks never split an
    /// image's features.
    fn embed_with_images(&self, _input_ids: &Array, _pixel_values: &Array) -> Result<Array> {
        Err(Error::InvalidInput {
            expected: "a vision-language model (one that takes images)".into(),
            found: "a model without image input".into(),
        })
    }

    /// Whether generation must empty the cache and run the whole sequence
    /// again before running `new` positions after `cached` ones. Phi-3's
    /// LongRoPE rotates with short factors up to its original context and
    /// long ones past it; HF's `generate` recomputes every key once, when
    /// the sequence first passes that context, so that all of them carry the
    /// long factors. Forge's generation does the same when this is true.
    fn restart_before(&self, _cached: usize, _new: usize) -> bool {
        false
    }

    /// A test-only fault, used to prove the parity report names the layer
    /// where outputs diverge. Plugins may ignore it.
    fn plant_fault(&mut self, _fault: &Fault) -> bool {
        false
    }
}

/// A deliberate error planted in a model (tests of the harness only).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Skip the input norm of this layer.
    SkipNorm {
        /// The layer.
        layer: usize,
    },
    /// Use this rope θ instead of the configured one.
    RopeTheta(f64),
}
