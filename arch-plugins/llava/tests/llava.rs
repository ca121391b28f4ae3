//! LLaVA through the normal loader: both weight layouts, generation with
//! images in chunks, and the errors for a wrong prompt or config.

use std::path::{Path, PathBuf};

/// Links the plugin so it registers.
extern crate forge_llava;

use forge_core::generation::generate::TokenGenerator;
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};

fn case() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden/llava-clip")
}

/// A copy of the case's model folder, to edit.
fn model_copy(to: &Path) -> PathBuf {
    let dest = to.join("model");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(case().join("model")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    dest
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("config.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

fn load(dir: &Path) -> forge_core::Result<LoadedModel> {
    load_model_dir(dir, &LoadOptions::strict())
}

fn expected(name: &str) -> Array {
    load_safetensors_file(&case().join("expected.safetensors")).unwrap()[name].clone()
}

fn ids_vec(a: &Array) -> Vec<u32> {
    let a = a.as_dtype(Dtype::Int32).unwrap();
    a.eval().unwrap();
    a.as_slice::<i32>().iter().map(|&t| t as u32).collect()
}

fn forward_logits(loaded: &LoadedModel, ids: &Array) -> forge_core::Result<Vec<f32>> {
    let out = loaded.model.forward(
        &ModelInput::Tokens(ids.as_dtype(Dtype::Int32)?),
        None,
        &ForwardOptions {
            pixel_values: Some(expected("pixel_values")),
            ..Default::default()
        },
    )?;
    let logits = out.logits.unwrap();
    logits.eval()?;
    Ok(logits.as_slice::<f32>().to_vec())
}

#[test]
fn the_new_weight_layout_loads_to_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_copy(dir.path());
    let file = model.join("model.safetensors");
    let renamed: Vec<(String, Array)> = load_safetensors_file(&file)
        .unwrap()
        .into_iter()
        .map(|(name, a)| {
            let name = if let Some(rest) = name.strip_prefix("vision_tower.") {
                format!("model.vision_tower.vision_model.{rest}")
            } else if let Some(rest) = name.strip_prefix("language_model.model.") {
                format!("model.language_model.{rest}")
            } else if let Some(rest) = name.strip_prefix("language_model.") {
                rest.to_string()
            } else {
                format!("model.{name}")
            };
            (name, a)
        })
        .collect();
    assert!(renamed.iter().any(|(n, _)| n == "lm_head.weight"));
    Array::save_safetensors(renamed, None, &file).unwrap();
    let ids = expected("input_ids");
    let new = forward_logits(&load(&model).unwrap(), &ids).unwrap();
    let old = forward_logits(&load(&case().join("model")).unwrap(), &ids).unwrap();
    assert_eq!(new, old);
}

#[test]
fn generation_with_an_image_gives_hf_greedy_whatever_the_prefill_chunk() {
    let loaded = load(&case().join("model")).unwrap();
    let prompt = ids_vec(&expected("input_ids"));
    let want = ids_vec(&expected("greedy_tokens"));
    let pixels = expected("pixel_values");
    let mut first_logprobs: Option<Vec<f32>> = None;
    for chunk in [1, 4, 7, 4096] {
        let config = GenerationConfig {
            max_new_tokens: want.len(),
            prefill_step_size: chunk,
            ..Default::default()
        };
        let steps: Vec<_> =
            TokenGenerator::with_images(loaded.model.as_ref(), &prompt, &pixels, &config)
                .unwrap()
                .map(|s| s.unwrap())
                .collect();
        let tokens: Vec<u32> = steps.iter().map(|s| s.token).collect();
        assert_eq!(tokens, want, "prefill chunk {chunk}");
        let logprobs = &steps[0].logprobs;
        match &first_logprobs {
            None => first_logprobs = Some(logprobs.clone()),
            Some(reference) => {
                let max = reference
                    .iter()
                    .zip(logprobs)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    max < 1e-4,
                    "chunk {chunk}: first-step logprobs differ by {max}"
                );
            }
        }
    }
}

#[test]
fn image_tokens_that_do_not_match_the_features_are_a_clear_error() {
    let loaded = load(&case().join("model")).unwrap();
    let mut ids = ids_vec(&expected("input_ids"));
    let first = ids.iter().position(|&t| t == 3).unwrap();
    ids.remove(first);
    let ids: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
    let ids = Array::from_slice(&ids, &[1, ids.len() as i32]);
    let err = forward_logits(&loaded, &ids).unwrap_err().to_string();
    assert!(
        err.contains("9 image tokens (id 3) in the prompt: 1 image(s) × 9 features")
            && err.contains("8 image tokens"),
        "{err}"
    );

    // A wrong image size is refused by the tower, naming the expected shape.
    let out = loaded.model.embed_with_images(
        &ids,
        &forge_core::mlx_rs::ops::zeros::<f32>(&[1, 3, 40, 40]).unwrap(),
    );
    let err = out.unwrap_err().to_string();
    assert!(err.contains("pixel_values [batch, 3, 42, 42]"), "{err}");
}

#[test]
fn a_missing_vision_config_or_an_unknown_projector_activation_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_copy(dir.path());
    edit_config(&model, |c| {
        c.remove("vision_config");
    });
    let err = load(&model).unwrap_err().to_string();
    assert!(
        err.contains("vision_config") && err.contains("no such key"),
        "{err}"
    );

    let model = model_copy(dir.path());
    edit_config(&model, |c| {
        c.insert("projector_hidden_act".into(), "swishy".into());
    });
    let err = load(&model).unwrap_err().to_string();
    assert!(
        err.contains("projector_hidden_act") && err.contains("\"swishy\"") && err.contains("gelu"),
        "{err}"
    );

    let model = model_copy(dir.path());
    edit_config(&model, |c| {
        c["vision_config"]["model_type"] = "siglip_vision_model".into();
    });
    let err = load(&model).unwrap_err().to_string();
    assert!(err.contains("vision_config.model_type"), "{err}");
}
