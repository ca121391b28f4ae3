//! Checks of vision cases: image preprocessing (image files in,
//! `pixel_values` out) and encoders (`pixel_values` in; `last_hidden_state`,
//! `pooler_output`, `image_embeds` and every hidden state out).
//!
//! Towers that take pre-flattened patches (Qwen2-VL) have `pixel_values`
//! `[N, C·T·P·P]` plus `image_grid_thw` `[images, 3]` in the case: each
//! image's rows are checked on their own, its grid exactly, and the encoder
//! gets the grids with the patches.

use std::path::Path;

use forge_core::mlx_rs::{Array, Dtype};
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::Model;
use forge_vision::ImageProcessor;

use crate::error::{ParityError, Result};
use crate::manifest::Manifest;
use crate::report::CaseReport;
use crate::run::{check_hidden_states, compare_arrays, push_numeric, Expected};

/// Preprocesses the case's image files with `model/preprocessor_config.json`
/// and compares the result with the expected `pixel_values`.
pub(crate) fn check_pixel_values(
    report: &mut CaseReport,
    manifest: &Manifest,
    dir: &Path,
    expected: &Expected,
) -> Result<()> {
    if manifest.images.is_empty() {
        return Err(ParityError::Case {
            path: dir.join("manifest.json"),
            message: "the pixel_values check needs `images` (image files of the case)".into(),
        });
    }
    let processor = ImageProcessor::from_dir(&dir.join("model"))?;
    if processor.patching().is_some() {
        return check_patches(report, manifest, dir, expected, &processor);
    }
    let want = expected.get("pixel_values")?;
    if want.dim(0) as usize != manifest.images.len() {
        return Err(ParityError::Case {
            path: expected.path.clone(),
            message: format!(
                "pixel_values has {} images, the manifest lists {}",
                want.dim(0),
                manifest.images.len()
            ),
        });
    }
    // One row per image: decoders of lossy formats may get their own tolerance.
    for (i, name) in manifest.images.iter().enumerate() {
        let actual = processor.preprocess_files(&[dir.join(name)])?;
        let want_i = want.take_axis(Array::from_slice(&[i as i32], &[1]), 0)?;
        push_pixel_row(report, manifest, name, &actual, &want_i)?;
    }
    Ok(())
}

/// One image's `pixel_values` against the expected ones, with the image's own tolerance.
fn push_pixel_row(
    report: &mut CaseReport,
    manifest: &Manifest,
    name: &str,
    actual: &Array,
    want: &Array,
) -> Result<()> {
    let errors = compare_arrays(actual, want, 1, None)?;
    let tol = manifest
        .check_tolerances
        .get(&format!("pixel_values:{name}"))
        .copied()
        .unwrap_or_else(|| manifest.tolerance_for("pixel_values"));
    let note = format!("{name} -> {}", shape_text(want.shape()));
    push_numeric(report, "pixel_values", &note, errors, &tol);
    Ok(())
}

/// Patch rows and grids (Qwen2-VL's processor): each image on its own,
/// against its rows of the expected `pixel_values` and its row of `image_grid_thw`.
fn check_patches(
    report: &mut CaseReport,
    manifest: &Manifest,
    dir: &Path,
    expected: &Expected,
    processor: &ImageProcessor,
) -> Result<()> {
    let want = expected.get("pixel_values")?;
    let grids = expected_grids(expected)?;
    if grids.len() != manifest.images.len() {
        return Err(ParityError::Case {
            path: expected.path.clone(),
            message: format!(
                "image_grid_thw has {} images, the manifest lists {}",
                grids.len(),
                manifest.images.len()
            ),
        });
    }
    let mut start = 0i32;
    for (name, grid) in manifest.images.iter().zip(&grids) {
        let actual = processor.preprocess_patch_files(&[dir.join(name)])?;
        let found = actual.grid_thw[0].map(|v| v as i64);
        report.push(
            "image_grid_thw",
            "exact",
            format!("{found:?}"),
            format!("{grid:?}"),
            found == *grid,
            name.clone(),
        );
        let rows = (grid[0] * grid[1] * grid[2]) as i32;
        if found != *grid || start + rows > want.dim(0) {
            start += rows;
            continue;
        }
        let index: Vec<i32> = (start..start + rows).collect();
        let want_i = want.take_axis(Array::from_slice(&index, &[rows]), 0)?;
        push_pixel_row(report, manifest, name, &actual.pixel_values, &want_i)?;
        start += rows;
    }
    Ok(())
}

/// The expected `image_grid_thw`, one `[t, h, w]` per image.
fn expected_grids(expected: &Expected) -> Result<Vec<[i64; 3]>> {
    let grid = expected.get("image_grid_thw")?.as_dtype(Dtype::Int64)?;
    grid.eval()?;
    Ok(grid
        .as_slice::<i64>()
        .chunks_exact(3)
        .map(|r| [r[0], r[1], r[2]])
        .collect())
}

/// Runs an encoder on the expected `pixel_values` and checks its outputs.
pub(crate) fn check_encoder(
    report: &mut CaseReport,
    manifest: &Manifest,
    model: &dyn Model,
    expected: &Expected,
) -> Result<()> {
    let pixels = expected.get("pixel_values")?.clone();
    let output = model.forward(
        &ModelInput::Pixels(pixels),
        None,
        &ForwardOptions {
            output_hidden_states: true,
            image_grid_thw: expected.tensors.get("image_grid_thw").cloned(),
            ..Default::default()
        },
    )?;
    let mut last_ok = true;
    for (check, actual) in [
        ("last_hidden_state", &output.last_hidden_state),
        ("pooler_output", &output.pooler_output),
        ("image_embeds", &output.image_embeds),
    ] {
        if !manifest.has_check(check) {
            continue;
        }
        let Some(actual) = actual else {
            report.push(
                check,
                "present",
                "no".into(),
                "yes".into(),
                false,
                "the model returned none".into(),
            );
            last_ok &= check != "last_hidden_state";
            continue;
        };
        let want = expected.get(check)?;
        let errors = compare_arrays(actual, want, 1, None)?;
        let ok = push_numeric(
            report,
            check,
            &shape_text(want.shape()),
            errors,
            &manifest.tolerance_for(check),
        );
        if check == "last_hidden_state" {
            last_ok = ok;
        }
    }
    if manifest.has_check("hidden_states") {
        check_hidden_states(
            report,
            manifest,
            expected,
            &output.hidden_states,
            1,
            None,
            last_ok,
            false,
        )?;
    }
    Ok(())
}

fn shape_text(shape: &[i32]) -> String {
    let dims: Vec<String> = shape.iter().map(i32::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// For a vision-language case with a `prompt`: Forge's token ids for it
/// (`model/`'s tokenizer, special tokens added, each image token repeated
/// once per image feature) must be the expected `input_ids`, which HF's
/// processor made.
pub(crate) fn check_prompt_ids(
    report: &mut CaseReport,
    manifest: &Manifest,
    dir: &Path,
    model: &dyn Model,
    expected: &Expected,
) -> Result<()> {
    let (Some(prompt), Some(tokens)) = (&manifest.prompt, model.image_tokens()) else {
        return Ok(());
    };
    let tokenizer = forge_core::tokenizer::Tokenizer::from_dir(&dir.join("model"))?;
    let got = tokens.expand(&tokenizer.encode(prompt, true)?, manifest.images.len())?;
    let want = expected.get("input_ids")?.as_dtype(Dtype::Int32)?;
    want.eval()?;
    let want: Vec<u32> = want.as_slice::<i32>().iter().map(|&t| t as u32).collect();
    let matching = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let pass = got == want;
    let note = if pass {
        format!(
            "prompt with {} image token(s) expanded",
            manifest.images.len()
        )
    } else {
        format!("first difference at {matching}: got {got:?}, expected {want:?}")
    };
    report.push_exact("input_ids", matching, want.len(), pass, note);
    Ok(())
}
