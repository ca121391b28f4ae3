//! `forge generate --image`: the images of a vision-language model's prompt.
//! They go through the model's image processor (`preprocessor_config.json`
//! beside the weights); each image token in the prompt is repeated once per
//! image feature, as HF's LlavaProcessor does.

use std::path::PathBuf;

use anyhow::{bail, Context};
use forge_core::mlx_rs::Array;
use forge_core::model::ImageTokens;
use forge_vision::ImageProcessor;

use crate::textgen::TextModel;

/// The prompt ids with each image token expanded, and the pixel values of
/// `images` `[images, C, H, W]`.
pub fn prepare(
    model: &TextModel,
    ids: &[u32],
    images: &[PathBuf],
) -> anyhow::Result<(Vec<u32>, Array)> {
    let loaded = &model.loaded;
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
    let ids = expand_image_tokens(ids, tokens, images.len())
        .with_context(|| format!("--image: the prompt must hold {name} once per image"))?;
    Ok((ids, pixels))
}

/// Repeats each image token `tokens.per_image` times; the prompt must hold
/// exactly `images` of them.
pub fn expand_image_tokens(
    ids: &[u32],
    tokens: ImageTokens,
    images: usize,
) -> anyhow::Result<Vec<u32>> {
    let found = ids.iter().filter(|&&t| t == tokens.token_id).count();
    if found != images {
        bail!("{images} image(s) given, the prompt has {found} image token(s)");
    }
    Ok(ids
        .iter()
        .flat_map(|&t| {
            let n = if t == tokens.token_id {
                tokens.per_image
            } else {
                1
            };
            std::iter::repeat_n(t, n)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENS: ImageTokens = ImageTokens {
        token_id: 7,
        per_image: 3,
    };

    #[test]
    fn each_image_token_becomes_one_per_feature() {
        let ids = expand_image_tokens(&[1, 7, 4, 7, 5], TOKENS, 2).unwrap();
        assert_eq!(ids, [1, 7, 7, 7, 4, 7, 7, 7, 5]);
    }

    #[test]
    fn a_count_mismatch_names_both_counts() {
        let err = expand_image_tokens(&[1, 4], TOKENS, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 image(s) given, the prompt has 0 image token(s)"
        );
        assert!(expand_image_tokens(&[7, 7], TOKENS, 1).is_err());
    }
}
