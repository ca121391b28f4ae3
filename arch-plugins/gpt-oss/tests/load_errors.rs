//! Loading gpt-oss checkpoints that are not what the config says: every
//! problem named in one error.

use std::path::Path;

use forge_core::weights::load_safetensors_dir;
use forge_core::{ModelConfig, TensorMap, Weights};

fn golden_model(case: &str) -> (ModelConfig, TensorMap) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../golden")
        .join(case)
        .join("model");
    let config = ModelConfig::from_file(dir.join("config.json"), true).unwrap();
    (config, load_safetensors_dir(&dir).unwrap())
}

/// Builds the model and returns the strict loader's verdict.
fn load(config: &ModelConfig, tensors: TensorMap) -> Result<(), String> {
    let mut weights = Weights::new(tensors, "test");
    let built = forge_gpt_oss::build(config, &mut weights).map(|_| ());
    built
        .and_then(|()| weights.finish())
        .map_err(|e| e.to_string())
}

#[test]
fn the_golden_checkpoints_load() {
    for case in ["gpt-oss-long-window", "gpt-oss-mxfp4"] {
        let (config, tensors) = golden_model(case);
        load(&config, tensors).unwrap();
    }
}

#[test]
fn missing_and_misshaped_mxfp4_tensors_are_named() {
    let (config, mut tensors) = golden_model("gpt-oss-mxfp4");
    tensors.remove("model.layers.1.mlp.experts.down_proj_scales");
    let blocks = "model.layers.2.mlp.experts.gate_up_proj_blocks";
    let wrong = tensors[blocks].reshape(&[4, 32, 2, 16]).unwrap();
    tensors.insert(blocks.into(), wrong);
    let err = load(&config, tensors).unwrap_err();
    assert!(
        err.contains("model.layers.1.mlp.experts.down_proj_scales"),
        "{err}"
    );
    assert!(err.contains(blocks), "{err}");
}

#[test]
fn mxfp4_tensors_under_a_dense_config_are_refused() {
    let (stored, tensors) = golden_model("gpt-oss-mxfp4");
    let mut json = stored.json().clone();
    json.remove("quantization_config");
    let config = ModelConfig::from_json(json, "config.json".into(), true).unwrap();
    let err = load(&config, tensors).unwrap_err();
    // The dense expert matrices are missing and the blocks are unexpected.
    assert!(
        err.contains("model.layers.0.mlp.experts.gate_up_proj"),
        "{err}"
    );
    assert!(err.contains("gate_up_proj_blocks"), "{err}");
}
