//! Vision cases: preprocessing and encoders against HF, and the errors a
//! user gets for a corrupt image or a wrong image size.

mod common;

use forge_core::mlx_rs::Array;
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::{load_model_dir, LoadOptions};
use forge_parity::{run_case, RunOptions};
use forge_vision::{ImageProcessor, RgbImage, VisionError};

fn row<'a>(report: &'a forge_parity::CaseReport, check: &str, note: &str) -> &'a forge_parity::Row {
    report
        .rows
        .iter()
        .find(|r| r.check == check && r.note.contains(note))
        .unwrap_or_else(|| panic!("no {check} row for {note}: {:?}", report.rows))
}

#[test]
fn png_pixels_match_hf_exactly_and_encoders_pass() {
    for case in ["clip-vision", "siglip-vision"] {
        let report = run_case(&common::golden().join(case), &RunOptions::default());
        assert!(report.passed(), "{case}: {:?}", report.rows);
        let png = row(&report, "pixel_values", "image.png");
        assert_eq!(
            png.value, "0",
            "{case}: PNG pixels are decoded and resized exactly"
        );
        assert!(report.rows.iter().any(|r| r.check == "pooler_output"));
    }
}

#[test]
fn a_wrong_resize_filter_fails_the_pixel_check_only() {
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("clip-vision", dir.path());
    // Bilinear where HF used bicubic: a plausible porting bug.
    common::edit_json(&case.join("model/preprocessor_config.json"), |c| {
        c.insert("resample".into(), 2.into());
    });
    let report = run_case(&case, &RunOptions::default());
    assert!(!row(&report, "pixel_values", "image.png").pass);
    assert!(report
        .rows
        .iter()
        .filter(|r| r.check == "last_hidden_state")
        .all(|r| r.pass));
}

#[test]
fn a_corrupt_image_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("siglip-vision", dir.path());
    let png = case.join("image.png");
    let mut bytes = std::fs::read(&png).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&png, &bytes).unwrap();
    let processor = ImageProcessor::from_dir(&case.join("model")).unwrap();
    let err = processor
        .preprocess_files(std::slice::from_ref(&png))
        .unwrap_err();
    assert!(matches!(err, VisionError::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("image.png") && text.contains("cannot decode"),
        "{text}"
    );

    let err = RgbImage::decode(b"not an image at all", std::path::Path::new("x.jpg")).unwrap_err();
    assert!(
        err.to_string().contains("x.jpg: cannot decode the image"),
        "{err}"
    );

    // The harness turns it into a failing load row, not a panic.
    let report = run_case(&case, &RunOptions::default());
    assert!(!report.passed());
    assert!(
        report
            .rows
            .iter()
            .any(|r| r.check == "load" && r.note.contains("image.png: cannot decode")),
        "{:?}",
        report.rows
    );
}

#[test]
fn a_wrong_image_size_is_a_clear_error() {
    for (case, size) in [("clip-vision", 30), ("siglip-vision", 32)] {
        let loaded = load_model_dir(
            &common::golden().join(case).join("model"),
            &LoadOptions::strict(),
        )
        .unwrap();
        let pixels = Array::zeros::<f32>(&[1, 3, size + 8, size]).unwrap();
        let err = loaded
            .model
            .forward(
                &ModelInput::Pixels(pixels),
                None,
                &ForwardOptions::default(),
            )
            .unwrap_err()
            .to_string();
        let want = format!("[batch, 3, {size}, {size}]");
        assert!(
            err.contains(&want) && err.contains(&format!("{}, {size}]", size + 8)),
            "{err}"
        );
        let tokens = ModelInput::Tokens(Array::from_slice(&[1i32, 2], &[1, 2]));
        let err = loaded
            .model
            .forward(&tokens, None, &ForwardOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("pixel values"), "{err}");
    }
}

#[test]
fn unsupported_processor_settings_are_refused() {
    let path = std::path::Path::new("preprocessor_config.json");
    let err = ImageProcessor::from_json_str(
        r#"{"resample": 1, "image_mean": [0,0,0], "image_std": [1,1,1]}"#,
        path,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resample") && err.contains("bicubic"), "{err}");
    let err =
        ImageProcessor::from_json_str(r#"{"image_mean": [0.5, 0.5], "image_std": [1,1,1]}"#, path)
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("image_mean") && err.contains("3 values"),
        "{err}"
    );
}
