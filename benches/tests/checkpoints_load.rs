//! Every bench shape's random checkpoint is what its plugin loads: written
//! by forge_benches::checkpoint, loaded strictly through the normal path
//! (no missing, unexpected or mis-shaped tensor; every config key known),
//! and run. The tiny shapes stand for the realistic ones, which share their
//! tensor lists and config keys.

use forge_benches::{checkpoint, measure, shapes};
use forge_core::mlx_rs::Dtype;
use forge_core::{load_model_dir, LoadOptions};

#[test]
fn tiny_shapes_load_strictly_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let tiny: Vec<_> = shapes::all().into_iter().filter(|s| !s.realistic).collect();
    assert!(tiny.len() >= 2, "a tiny shape per architecture");
    for shape in tiny {
        let model_dir = dir.path().join(shape.name);
        checkpoint::write(&shape, &model_dir).unwrap();
        // f32 as the benches run on this backend (MLX's CPU gather_mm, which
        // the deepseek experts use, takes float32 only).
        let options = LoadOptions {
            dtype: Some(Dtype::Float32),
            ..LoadOptions::strict()
        };
        let loaded =
            load_model_dir(&model_dir, &options).unwrap_or_else(|e| panic!("{}: {e}", shape.name));
        assert_eq!(
            loaded.architecture.model_type,
            shape.config["model_type"].as_str().unwrap()
        );
        let tokens = measure::prompt(8, shape.vocab_size());
        let mut p = measure::prefill(loaded.model.as_ref(), &tokens).unwrap();
        measure::decode(loaded.model.as_ref(), &mut p.cache, p.next, 2).unwrap();
        assert_eq!(
            p.cache[0].offset(),
            10,
            "{}: 8 prompt tokens, 2 decoded",
            shape.name
        );
    }
}

#[test]
fn realistic_shapes_use_the_same_config_keys_as_a_tiny_one() {
    let all = shapes::all();
    for shape in all.iter().filter(|s| s.realistic) {
        let model_type = &shape.config["model_type"];
        let tiny = all
            .iter()
            .find(|s| !s.realistic && &s.config["model_type"] == model_type)
            .unwrap_or_else(|| panic!("no tiny shape for {}", shape.name));
        let keys = |s: &shapes::ModelShape| {
            let mut k: Vec<String> = s.config.as_object().unwrap().keys().cloned().collect();
            k.retain(|k| k != "rope_scaling" && k != "max_position_embeddings");
            k.sort();
            k
        };
        assert_eq!(keys(shape), keys(tiny), "{} vs {}", shape.name, tiny.name);
    }
}
