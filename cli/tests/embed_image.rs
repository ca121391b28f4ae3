//! `forge embed-image` against HF's pooled output (or image_embeds), and
//! `forge generate --image` with a LLaVA model against HF's greedy tokens;
//! their errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use forge_core::mlx_rs::Dtype;
use forge_core::tokenizer::Tokenizer;
use forge_core::weights::load_safetensors_file;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

fn forge(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn embed(model: &Path, image: &Path) -> (bool, String, String) {
    forge(&[
        "embed-image",
        "--model",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
    ])
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

#[test]
fn qwen_towers_print_the_mean_of_hf_merged_features() {
    // image.png is the first image of the case: its 10x12 patch grid gives
    // the first 30 merged rows of HF's pooler_output.
    for case in ["qwen2-vl-vision", "qwen2.5-vl-vision"] {
        let dir = golden().join(case);
        let (ok, stdout, stderr) = embed(&dir.join("model"), &dir.join("image.png"));
        assert!(ok, "{case}: {stderr}");
        let got: Vec<f32> = serde_json::from_str(stdout.trim()).unwrap();
        let expected = load_safetensors_file(&dir.join("expected.safetensors")).unwrap();
        let merged = expected["pooler_output"].as_dtype(Dtype::Float32).unwrap();
        merged.eval().unwrap();
        let width = merged.dim(1) as usize;
        assert_eq!(got.len(), width, "{case}");
        let rows = &merged.as_slice::<f32>()[..30 * width];
        let max = (0..width)
            .map(|j| {
                let mean = (0..30).map(|r| rows[r * width + j]).sum::<f32>() / 30.0;
                (got[j] - mean).abs()
            })
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{case}: max abs error {max}");
    }
}

// `forge generate --image` with a LLaVA model.

/// The case's prompt text (before the image token is expanded).
fn prompt(case: &Path) -> String {
    let text = std::fs::read_to_string(case.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["prompt"].as_str().unwrap().to_string()
}

fn generate(case: &Path, image: &Path, prompt: &str) -> (bool, String, String) {
    let model = case.join("model");
    forge(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        prompt,
        "--max-tokens",
        "8",
        "--temp",
        "0",
    ])
}

#[test]
fn greedy_text_with_an_image_is_hf_greedy() {
    for name in ["llava-clip", "llava-multilayer-full"] {
        let case = golden().join(name);
        let (ok, stdout, stderr) = generate(&case, &case.join("image.png"), &prompt(&case));
        assert!(ok, "{name}: {stderr}");
        let expected = load_safetensors_file(&case.join("expected.safetensors")).unwrap();
        let want = expected["greedy_tokens"].as_dtype(Dtype::Int32).unwrap();
        want.eval().unwrap();
        let want: Vec<u32> = want.as_slice::<i32>().iter().map(|&t| t as u32).collect();
        let tokenizer = Tokenizer::from_dir(&case.join("model")).unwrap();
        let text = tokenizer.decode(&want, false).unwrap();
        assert_eq!(stdout.strip_suffix('\n').unwrap_or(&stdout), text, "{name}");
    }
}

#[test]
fn a_prompt_without_the_image_token_or_a_corrupt_image_is_a_clear_error() {
    let case = golden().join("llava-clip");
    let image = case.join("image.png");
    let (ok, _, stderr) = generate(&case, &image, "no image token here");
    assert!(!ok);
    assert!(
        stderr.contains("the prompt must hold <image> once per image")
            && stderr.contains("0 image token(s) in the prompt"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let (ok, _, stderr) = generate(&case, &bad, &prompt(&case));
    assert!(!ok);
    assert!(
        stderr.contains("broken.png: cannot decode the image"),
        "{stderr}"
    );

    // A text-only model refuses images by name.
    let llama = golden().join("gen-greedy-processors");
    let (ok, _, stderr) = generate(&llama, &image, "<image> hello");
    assert!(!ok);
    assert!(
        stderr.contains("--image: `llama` does not take images"),
        "{stderr}"
    );
}
