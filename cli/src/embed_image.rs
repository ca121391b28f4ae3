//! `forge embed-image`: an image through a vision encoder's preprocessing
//! and tower, printing the pooled embedding: `pooler_output` for CLIP and
//! SigLIP; for the Qwen2-VL / Qwen2.5-VL towers the mean over the image's
//! merged features (their `pooler_output` has one row per merged unit).
//! Checkpoints with a projection (CLIP's visual_projection) print HF's
//! `image_embeds` instead.

use std::path::Path;

use anyhow::Context;
use forge_core::mlx_rs::Dtype;
use forge_core::model::{ForwardOptions, ModelInput, ModelKind};
use forge_vision::ImageProcessor;

/// Loads the encoder in `model`, embeds `image` and prints the pooled
/// output (or `image_embeds` where the model has them) as a JSON array on stdout.
pub fn run(model: &str, image: &Path) -> anyhow::Result<()> {
    let loaded = forge_core::load_model(model, &forge_core::LoadOptions::default())?;
    if loaded.model.kind() != ModelKind::Encoder {
        anyhow::bail!(
            "{}: `{}` is not a vision encoder (embed-image needs one, e.g. clip_vision_model)",
            loaded.dir.display(),
            loaded.architecture.model_type
        );
    }
    let processor = ImageProcessor::from_dir(&loaded.dir)?;
    let patched = processor.patching().is_some();
    let (pixels, image_grid_thw) = if patched {
        // Qwen2-VL: patches of any image size plus their grid.
        let batch = processor.preprocess_patch_files(&[image.to_path_buf()])?;
        let grid = batch.grid_thw_array();
        (batch.pixel_values, Some(grid))
    } else {
        (processor.preprocess_files(&[image.to_path_buf()])?, None)
    };
    let output = loaded.model.forward(
        &ModelInput::Pixels(pixels),
        None,
        &ForwardOptions {
            image_grid_thw,
            ..Default::default()
        },
    )?;
    // The projected embedding (CLIP's image_embeds) when the checkpoint has one.
    let pooled = output
        .image_embeds
        .or(output.pooler_output)
        .with_context(|| format!("{}: the model has no pooled output", loaded.dir.display()))?;
    // Qwen2-VL's merged features are one row per merged unit: their mean is the embedding.
    let pooled = if patched {
        pooled.mean_axis(0, None)?
    } else {
        pooled
    }
    .as_dtype(Dtype::Float32)?;
    pooled.eval()?;
    println!("{}", serde_json::to_string(pooled.as_slice::<f32>())?);
    Ok(())
}
