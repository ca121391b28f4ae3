//! `forge generate --image`: the images of a vision-language model's prompt.
//! They go through the model's image processor (`preprocessor_config.json`
//! beside the weights); each image token in the prompt is repeated once per
//! image feature, as HF's LlavaProcessor does.

use std::path::PathBuf;

use anyhow::{bail, Context};
use forge_core::mlx_rs::Array;
use forge_vision::ImageProcessor;

use crate::textgen::TextModel;

/// The prompt ids with each image token expanded, and the pixel values of
/// `images` `[images, C, H, W]`.
pub fn prepare(
    model: &TextModel,
    ids: &[u32],
    images: &[PathBuf],
) -> anyhow::Result<(Vec<u32>, Array)> {
    let loaded = &model.model;
    let Some(tokens) = loaded.model.image_tokens() else {
        bail!(
            "--image: `{}` does not take images (a vision-language model such as llava does)",
            loaded.architecture.model_type
        );
    };
    let processor = ImageProcessor::from_dir(&loaded.dir)
        .with_context(|| format!("--image: the image processor of {}", loaded.dir.display()))?;
    let pixels = processor.preprocess_files(images)?;
    let name = model
        .tokenizer
        .inner()
        .id_to_token(tokens.token_id)
        .unwrap_or_else(|| format!("id {}", tokens.token_id));
    let ids = tokens
        .expand(ids, images.len())
        .with_context(|| format!("--image: the prompt must hold {name} once per image"))?;
    Ok((ids, pixels))
}
