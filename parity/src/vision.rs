//! Checks of vision cases: image preprocessing (image files in,
//! `pixel_values` out) and encoders (`pixel_values` in; `last_hidden_state`,
//! `pooler_output`, `image_embeds` and every hidden state out).

use std::path::Path;

use forge_core::mlx_rs::Array;
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
        let errors = compare_arrays(&actual, &want_i, 1, None)?;
        let tol = manifest
            .check_tolerances
            .get(&format!("pixel_values:{name}"))
            .copied()
            .unwrap_or_else(|| manifest.tolerance_for("pixel_values"));
        let note = format!("{name} -> {}", shape_text(want_i.shape()));
        push_numeric(report, "pixel_values", &note, errors, &tol);
    }
    Ok(())
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
