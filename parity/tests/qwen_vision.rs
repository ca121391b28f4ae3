//! The Qwen2-VL / Qwen2.5-VL vision towers and their image processor:
//! golden cases against HF, what the checks catch, and the errors a user
//! gets for bad grids and bad images.

mod common;

use forge_core::mlx_rs::{Array, Dtype};
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, LoadOptions, LoadedModel};
use forge_parity::{run_case, CaseReport, RunOptions};
use forge_vision::resize::Filter;
use forge_vision::{ImageProcessor, RgbImage};

const CASES: [&str; 2] = ["qwen2-vl-vision", "qwen2.5-vl-vision"];

fn failing(report: &CaseReport) -> Vec<String> {
    report
        .rows
        .iter()
        .filter(|r| !r.pass)
        .map(|r| format!("{} {} {}", r.check, r.metric, r.note))
        .collect()
}

fn load(case: &str) -> LoadedModel {
    load_model_dir(
        &common::golden().join(case).join("model"),
        &LoadOptions::strict(),
    )
    .unwrap()
}

fn run(loaded: &LoadedModel, pixels: Array, grid: Option<Array>) -> forge_core::Result<Vec<f32>> {
    let out = loaded.model.forward(
        &ModelInput::Pixels(pixels),
        None,
        &ForwardOptions {
            image_grid_thw: grid,
            ..Default::default()
        },
    )?;
    let merged = out.pooler_output.unwrap().as_dtype(Dtype::Float32)?;
    merged.eval()?;
    Ok(merged.as_slice::<f32>().to_vec())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

#[test]
fn both_towers_match_hf_with_exact_png_patches_and_grids() {
    for case in CASES {
        let report = run_case(&common::golden().join(case), &RunOptions::default());
        assert!(report.passed(), "{case}: {:?}", failing(&report));
        for image in ["image.png", "small.png"] {
            let row = report
                .rows
                .iter()
                .find(|r| r.check == "pixel_values" && r.note.starts_with(image))
                .unwrap();
            assert_eq!(row.value, "0", "{case}: {image} patches are exact");
        }
        let grids = report
            .rows
            .iter()
            .filter(|r| r.check == "image_grid_thw")
            .count();
        assert_eq!(grids, 3, "{case}");
        for check in ["last_hidden_state", "pooler_output", "hidden_states"] {
            assert!(
                report.rows.iter().any(|r| r.check == check),
                "{case}: {check}"
            );
        }
    }
}

#[test]
fn windows_and_their_order_matter_to_the_check() {
    // Every block windowed (no full-attention block): the encoder rows fail, the pixels still pass.
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("qwen2.5-vl-vision", dir.path());
    common::edit_json(&case.join("model/config.json"), |c| {
        c.insert("fullatt_block_indexes".into(), serde_json::json!([]));
    });
    let report = run_case(&case, &RunOptions::default());
    let failed = failing(&report);
    assert!(
        failed.iter().any(|f| f.starts_with("last_hidden_state")),
        "{failed:?}"
    );
    assert!(
        failed.iter().all(|f| !f.starts_with("pixel_values")),
        "{failed:?}"
    );

    // Windows twice as large: hidden_states.0 (before any attention) still
    // matches only if the permutation is unchanged, which it is not.
    let case2 = dir.path().join("wide");
    std::fs::rename(&case, &case2).unwrap();
    common::edit_json(&case2.join("model/config.json"), |c| {
        c.insert("fullatt_block_indexes".into(), serde_json::json!([1]));
        c.insert("window_size".into(), 32.into());
    });
    let report = run_case(&case2, &RunOptions::default());
    assert!(!report.passed());
    assert!(failing(&report)
        .iter()
        .any(|f| f.starts_with("hidden_states")));

    // HF floors window_size to whole merged units: 23 px is 2 units of 8 px, like 16.
    common::edit_json(&case2.join("model/config.json"), |c| {
        c.insert("window_size".into(), 23.into());
    });
    let report = run_case(&case2, &RunOptions::default());
    assert!(report.passed(), "{:?}", failing(&report));
    common::edit_json(&case2.join("model/config.json"), |c| {
        c.insert("window_size".into(), 7.into());
    });
    let report = run_case(&case2, &RunOptions::default());
    assert!(
        report.rows.iter().any(|r| r.note.contains("window_size")),
        "{:?}",
        report.rows
    );
}

#[test]
fn images_in_one_call_do_not_see_each_other() {
    for case in CASES {
        let loaded = load(case);
        let dir = common::golden().join(case);
        let processor = ImageProcessor::from_dir(&dir.join("model")).unwrap();
        let images: Vec<RgbImage> = ["image.png", "small.png"]
            .iter()
            .map(|n| RgbImage::open(&dir.join(n)).unwrap())
            .collect();
        let both = processor.preprocess_patches(&images).unwrap();
        let alone = processor.preprocess_patches(&images[1..]).unwrap();
        let merged_both = run(
            &loaded,
            both.pixel_values.clone(),
            Some(both.grid_thw_array()),
        )
        .unwrap();
        let alone_grid = alone.grid_thw_array();
        let merged_alone = run(&loaded, alone.pixel_values, Some(alone_grid)).unwrap();
        // small.png's merged rows come last in the pair and match it run alone.
        let tail = &merged_both[merged_both.len() - merged_alone.len()..];
        let max = max_abs_diff(tail, &merged_alone);
        assert!(max < 1e-5, "{case}: {max}");
    }
}

#[test]
fn frames_of_one_grid_attend_like_separate_images() {
    // A two-frame grid (t = 2) attends per frame with the same positions:
    // its merged rows equal those of the two frames given as two images
    // (two images brought to the same 48x40 size).
    for case in CASES {
        let loaded = load(case);
        let dir = common::golden().join(case);
        let processor = ImageProcessor::from_dir(&dir.join("model")).unwrap();
        let frames: Vec<RgbImage> = ["image.png", "image.jpg"]
            .iter()
            .map(|n| RgbImage::open(&dir.join(n)).unwrap())
            .map(|img| img.resize(48, 40, Filter::Bicubic))
            .collect();
        let two = processor.preprocess_patches(&frames).unwrap();
        assert_eq!(two.grid_thw, vec![[1, 10, 12], [1, 10, 12]]);
        let as_images = run(
            &loaded,
            two.pixel_values.clone(),
            Some(two.grid_thw_array()),
        )
        .unwrap();
        let as_video = Array::from_slice(&[2i64, 10, 12], &[1, 3]);
        let as_frames = run(&loaded, two.pixel_values, Some(as_video)).unwrap();
        let max = max_abs_diff(&as_images, &as_frames);
        assert!(max < 1e-5, "{case}: {max}");
    }
}

#[test]
fn bf16_weights_run_close_to_f32() {
    // f32 pixels meet bf16 weights: the patch embedding casts them, rotary
    // runs in f32 and goes back to bf16, as HF does.
    let expected =
        load_safetensors_file(&common::golden().join("qwen2.5-vl-vision/expected.safetensors"))
            .unwrap();
    let options = LoadOptions {
        dtype: Some(Dtype::Bfloat16),
        ..LoadOptions::strict()
    };
    let dir = common::golden().join("qwen2.5-vl-vision/model");
    let half = load_model_dir(&dir, &options).unwrap();
    let grid = Some(expected["image_grid_thw"].clone());
    let got = run(&half, expected["pixel_values"].clone(), grid).unwrap();
    let want = expected["pooler_output"].as_dtype(Dtype::Float32).unwrap();
    want.eval().unwrap();
    let want = want.as_slice::<f32>();
    let (diff, norm) = got
        .iter()
        .zip(want)
        .fold((0.0f64, 0.0f64), |(d, n), (a, b)| {
            (d + f64::from(a - b).powi(2), n + f64::from(*b).powi(2))
        });
    let rel = (diff / norm).sqrt();
    assert!(rel < 3e-2, "bf16 relative error {rel}");
}

#[test]
fn released_vision_config_spellings_load() {
    // The released checkpoints' vision_config writes `in_chans` and
    // `spatial_patch_size` and leaves out keys at HF's defaults.
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("qwen2-vl-vision", dir.path());
    common::edit_json(&case.join("model/config.json"), |c| {
        let channels = c.remove("in_channels").unwrap();
        c.insert("in_chans".into(), channels);
        c.insert("spatial_patch_size".into(), 4.into());
        c.remove("hidden_act"); // quick_gelu, HF's default
        c.remove("rope_parameters"); // axial, theta 10000
    });
    let report = run_case(&case, &RunOptions::default());
    assert!(report.passed(), "{:?}", failing(&report));
}

#[test]
fn bad_grids_are_clear_errors() {
    let loaded = load("qwen2-vl-vision");
    let expected =
        load_safetensors_file(&common::golden().join("qwen2-vl-vision/expected.safetensors"))
            .unwrap();
    let pixels = expected["pixel_values"].clone();
    let err = run(&loaded, pixels.clone(), None).unwrap_err().to_string();
    assert!(
        err.contains("image_grid_thw") && err.contains("found none"),
        "{err}"
    );

    // 1x10x12 + 1x12x10 + 1x8x8 = 304 patches where pixel_values holds 320.
    let short = Array::from_slice(&[1i64, 10, 12, 1, 12, 10, 1, 8, 8], &[3, 3]);
    let err = run(&loaded, pixels.clone(), Some(short))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("304 patch rows") && err.contains("320 rows"),
        "{err}"
    );

    let odd = Array::from_slice(&[1i64, 5, 64], &[1, 3]);
    let err = run(&loaded, pixels.clone(), Some(odd))
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiples of spatial_merge_size 2"), "{err}");

    let wide = Array::zeros::<f32>(&[320, 48]).unwrap();
    let grid = expected["image_grid_thw"].clone();
    let err = run(&loaded, wide, Some(grid)).unwrap_err().to_string();
    assert!(
        err.contains("pixel_values [patches, 96]") && err.contains("[320, 48]"),
        "{err}"
    );

    let tokens = ModelInput::Tokens(Array::from_slice(&[1i32, 2], &[1, 2]));
    let err = loaded
        .model
        .forward(&tokens, None, &ForwardOptions::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("pixel values for a Qwen2-VL vision tower"),
        "{err}"
    );
}

#[test]
fn bad_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let processor =
        ImageProcessor::from_dir(&common::golden().join("qwen2-vl-vision/model")).unwrap();
    // A 1x300 strip: smart_resize refuses aspect ratios above 200, as HF does.
    let strip = RgbImage {
        width: 300,
        height: 1,
        data: vec![128; 900],
    };
    let err = processor
        .preprocess_patches(&[strip])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("300x1") && err.contains("aspect ratio of at most 200"),
        "{err}"
    );

    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let err = processor
        .preprocess_patch_files(&[bad])
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.png: cannot decode the image"), "{err}");

    // A processor without patching cannot make patches.
    let clip = ImageProcessor::from_dir(&common::golden().join("clip-vision/model")).unwrap();
    let img = RgbImage::open(&common::golden().join("clip-vision/image.png")).unwrap();
    let err = clip.preprocess_patches(&[img]).unwrap_err().to_string();
    assert!(err.contains("Qwen2VLImageProcessor"), "{err}");
}

#[test]
fn a_wrong_pixel_budget_fails_the_grid_check() {
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("qwen2-vl-vision", dir.path());
    // min_pixels (older configs' spelling) wins over size.shortest_edge, as in HF.
    common::edit_json(&case.join("model/preprocessor_config.json"), |c| {
        c.insert("min_pixels".into(), 1600.into());
    });
    let report = run_case(&case, &RunOptions::default());
    let failed = failing(&report);
    assert!(
        failed
            .iter()
            .any(|f| f.contains("image_grid_thw") && f.contains("small.png")),
        "{failed:?}"
    );
    assert!(
        failed.iter().all(|f| !f.contains("image.png")),
        "{failed:?}"
    );
    assert!(
        failed.iter().all(|f| !f.starts_with("last_hidden_state")),
        "{failed:?}"
    );
}
