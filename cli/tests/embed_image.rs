//! `forge embed-image` against HF's pooled output (or image_embeds), and its errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use forge_core::mlx_rs::Dtype;
use forge_core::weights::load_safetensors_file;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

fn embed(model: &Path, image: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forge"))
        .arg("embed-image")
        .arg("--model")
        .arg(model)
        .arg(image)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_hf_pooled_output_for_a_png() {
    // A checkpoint with CLIP's visual projection prints HF's image_embeds.
    for (case, key) in [
        ("clip-vision", "pooler_output"),
        ("siglip-vision", "pooler_output"),
        ("clip-vision-projection", "image_embeds"),
    ] {
        let dir = golden().join(case);
        let (ok, stdout, stderr) = embed(&dir.join("model"), &dir.join("image.png"));
        assert!(ok, "{case}: {stderr}");
        let got: Vec<f32> = serde_json::from_str(stdout.trim()).unwrap();
        let expected = load_safetensors_file(&dir.join("expected.safetensors")).unwrap();
        let pooled = expected[key].as_dtype(Dtype::Float32).unwrap();
        pooled.eval().unwrap();
        let want = &pooled.as_slice::<f32>()[..got.len()];
        assert_eq!(got.len() * 2, pooled.size(), "{case}: one image of the two");
        let max = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{case}: max abs error {max}");
    }
}

#[test]
fn a_corrupt_image_or_a_text_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let model = golden().join("clip-vision/model");
    let (ok, _, stderr) = embed(&model, &bad);
    assert!(!ok);
    assert!(
        stderr.contains("broken.jpg: cannot decode the image"),
        "{stderr}"
    );

    let (ok, _, stderr) = embed(
        &golden().join("llama-gqa/model"),
        &golden().join("clip-vision/image.png"),
    );
    assert!(!ok);
    assert!(stderr.contains("not a vision encoder"), "{stderr}");
}
