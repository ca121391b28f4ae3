//! Bad input never panics: each kind of broken model folder gets its own
//! error variant, and the message names the file, key or tensor involved.
//! Also the good paths next to them: sharded checkpoints and every dtype.

mod common;

use std::path::Path;

use common::*;
use forge_core::mlx_rs::Dtype;
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::weights::{load_safetensors_dir, load_safetensors_file};
use forge_core::{load_model_dir, registry, Error, LoadedModel, ModelConfig, Result};
use safetensors::tensor::Dtype as StDtype;

fn load(dir: &Path, strict: bool) -> Result<LoadedModel> {
    load_model_dir(dir, &options(strict, None, dir))
}

fn load_err(dir: &Path, strict: bool) -> Error {
    match load(dir, strict) {
        Ok(loaded) => panic!("expected an error, loaded {loaded:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_good_folder_loads_and_computes() {
    let dir = good_model_dir();
    let loaded = load(dir.path(), true).unwrap();
    assert_eq!(loaded.architecture.model_type, TEST_TYPE);
    assert_eq!(loaded.dir, dir.path());
    assert_eq!(
        loaded.tensors,
        vec![("w".to_string(), vec![2, 3], Dtype::Float32)]
    );
    // x = [[1, 0, 0], [0, 1, 1]] → x wᵀ = [[1, 4], [5, 11]]
    let x = forge_core::mlx_rs::Array::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1.0, 1.0], &[2, 3]);
    let out = loaded
        .model
        .forward(&ModelInput::Embeddings(x), None, &ForwardOptions::default())
        .unwrap();
    assert_eq!(
        values_f32(out.last_hidden_state.as_ref().unwrap()),
        vec![1.0, 4.0, 5.0, 11.0]
    );
    // `architectures` is generic, not unknown.
    assert!(loaded.config_keys.unknown.is_empty());
    assert!(loaded
        .config_keys
        .ignored
        .contains(&"architectures".to_string()));
}

#[test]
fn invalid_json_reports_line_and_column() {
    let dir = good_model_dir();
    // The second comma on line 3 is at column 20.
    let text = "{\n  \"model_type\": \"forge-test-linear\",\n  \"hidden_size\": 3,,\n  \"out_size\": 2\n}\n";
    let path = write(dir.path(), "config.json", text);
    match load_err(dir.path(), false) {
        Error::Json {
            path: p,
            line,
            column,
            message,
        } => {
            assert_eq!(p, path);
            assert_eq!((line, column), (3, 20), "{message}");
            let shown = Error::Json {
                path: p,
                line,
                column,
                message,
            }
            .to_string();
            assert!(shown.contains("config.json"), "{shown}");
            assert!(shown.contains("line 3, column 20"), "{shown}");
        }
        other => panic!("expected Error::Json, got {other:?}"),
    }
}

#[test]
fn truncated_json_is_a_json_error_too() {
    let err = ModelConfig::from_str("{\"model_type\": \"x\"", "cfg.json", false).unwrap_err();
    assert!(
        matches!(err, Error::Json { line: 1, .. }),
        "expected Error::Json on line 1, got {err:?}"
    );
    let err = ModelConfig::from_str("", "cfg.json", false).unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
}

#[test]
fn missing_config_and_missing_folder() {
    let dir = good_model_dir();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    match load_err(dir.path(), false) {
        Error::MissingFile { path, what } => {
            assert_eq!(path, dir.path().join("config.json"));
            assert!(what.contains("config"), "{what}");
        }
        other => panic!("expected Error::MissingFile, got {other:?}"),
    }

    let gone = dir.path().join("no-such-model");
    match load_err(&gone, false) {
        Error::MissingFile { path, what } => {
            assert_eq!(path, gone);
            assert!(what.contains("folder"), "{what}");
        }
        other => panic!("expected Error::MissingFile, got {other:?}"),
    }
}

#[test]
fn config_that_is_not_an_object() {
    for (text, kind) in [
        ("[1, 2]", "an array"),
        ("\"llama\"", "a string"),
        ("42", "a number"),
        ("null", "null"),
    ] {
        match ModelConfig::from_str(text, "config.json", false).unwrap_err() {
            Error::ConfigValue {
                key,
                expected,
                found,
                ..
            } => {
                assert_eq!(key, "(top level)");
                assert!(expected.contains("object"), "{expected}");
                assert_eq!(found, kind);
            }
            other => panic!("{text}: expected Error::ConfigValue, got {other:?}"),
        }
    }
}

#[test]
fn model_type_missing_or_not_a_string() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", "{\"hidden_size\": 3}");
    match load_err(dir.path(), false) {
        Error::ConfigValue { key, found, .. } => {
            assert_eq!(key, "model_type");
            assert_eq!(found, "no such key");
        }
        other => panic!("expected Error::ConfigValue, got {other:?}"),
    }
    write(dir.path(), "config.json", "{\"model_type\": 7}");
    match load_err(dir.path(), false) {
        Error::ConfigValue { key, found, .. } => {
            assert_eq!(key, "model_type");
            assert_eq!(found, "7");
        }
        other => panic!("expected Error::ConfigValue, got {other:?}"),
    }
}

#[test]
fn unknown_model_type_lists_what_is_registered() {
    let dir = good_model_dir();
    write(
        dir.path(),
        "config.json",
        "{\"model_type\": \"no-such-arch\", \"hidden_size\": 3, \"out_size\": 2}",
    );
    let err = load_err(dir.path(), false);
    let shown = err.to_string();
    match err {
        Error::UnknownModelType { path, found, known } => {
            assert_eq!(path, dir.path().join("config.json"));
            assert_eq!(found, "no-such-arch");
            assert!(known.contains(&TEST_TYPE.to_string()), "{known:?}");
            assert!(known.contains(&TEST_ALIAS.to_string()), "{known:?}");
        }
        other => panic!("expected Error::UnknownModelType, got {other:?}"),
    }
    assert!(shown.contains("`no-such-arch`"), "{shown}");
    assert!(shown.contains(TEST_TYPE), "{shown}");
}

#[test]
fn an_alias_finds_the_same_architecture() {
    let by_alias = registry::find(TEST_ALIAS).expect("the alias is registered");
    assert_eq!(by_alias.model_type, TEST_TYPE);
    assert!(registry::find("forge-test").is_none());
    let dir = good_model_dir();
    write(
        dir.path(),
        "config.json",
        &test_config("").replace(TEST_TYPE, TEST_ALIAS),
    );
    let loaded = load(dir.path(), true).unwrap();
    assert_eq!(loaded.architecture.model_type, TEST_TYPE);
}

fn expect_safetensors_error(path: &Path, what: &str) -> String {
    match load_safetensors_file(path) {
        Err(Error::Safetensors { path: p, message }) => {
            assert_eq!(p, path, "{what}");
            let shown = Error::Safetensors {
                path: p,
                message: message.clone(),
            }
            .to_string();
            assert!(shown.contains("not a valid safetensors file"), "{shown}");
            message
        }
        Err(other) => panic!("{what}: expected Error::Safetensors, got {other:?}"),
        Ok(map) => panic!("{what}: expected an error, read {} tensors", map.len()),
    }
}

#[test]
fn corrupt_safetensors_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");

    std::fs::write(&path, b"this is not a safetensors file at all").unwrap();
    expect_safetensors_error(&path, "garbage bytes");

    std::fs::write(&path, b"abc").unwrap();
    expect_safetensors_error(&path, "shorter than the length prefix");

    // A header length far beyond the end of the file.
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, &bytes).unwrap();
    expect_safetensors_error(&path, "header longer than the file");

    // A header of the right length that is not JSON.
    let header = b"{not json!";
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(&path, &bytes).unwrap();
    expect_safetensors_error(&path, "header that is not JSON");

    // A header whose offsets do not fit the tensor's shape.
    let header = br#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&path, &bytes).unwrap();
    expect_safetensors_error(&path, "offsets that disagree with the shape");

    // Through the loader the same file is the same error.
    write(dir.path(), "config.json", &test_config(""));
    assert!(matches!(
        load_err(dir.path(), false),
        Error::Safetensors { .. }
    ));
}

#[test]
fn truncated_safetensors_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut bytes = safetensors_bytes(&[RawTensor::f32("w", &[2, 3], &W_VALUES)]);
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&path, &bytes).unwrap();
    expect_safetensors_error(&path, "truncated data");
}

#[test]
fn unsupported_dtype_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_safetensors(
        &path,
        &[RawTensor {
            // F8_E4M3 is read (decoded to bf16, see tests/fp8.rs); E5M2 is not.
            name: "fp8.weight".into(),
            dtype: StDtype::F8_E5M2,
            shape: vec![4],
            bytes: vec![0x38; 4],
        }],
    );
    let message = expect_safetensors_error(&path, "an fp8 tensor");
    assert!(message.contains("fp8.weight"), "{message}");
    assert!(message.contains("F8_E5M2"), "{message}");
}

#[test]
fn a_dimension_too_large_for_mlx_is_refused() {
    // An empty tensor whose first dimension does not fit MLX's i32 shapes
    // is a valid safetensors file, but must not reach MLX.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_safetensors(
        &path,
        &[RawTensor {
            name: "huge".into(),
            dtype: StDtype::F32,
            shape: vec![1usize << 31, 0],
            bytes: Vec::new(),
        }],
    );
    let message = expect_safetensors_error(&path, "a dimension of 2^31");
    assert!(message.contains("huge"), "{message}");
}

#[test]
fn all_weight_problems_in_one_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.json",
        &test_config("\"use_bias\": true"),
    );
    // w transposed, b absent, one tensor nobody asked for.
    write_safetensors(
        &dir.path().join("model.safetensors"),
        &[
            RawTensor::f32("w", &[3, 2], &W_VALUES),
            RawTensor::f32("extra.weight", &[1], &[0.5]),
        ],
    );
    let err = load_err(dir.path(), true);
    let shown = err.to_string();
    match err {
        Error::WeightMismatch(m) => {
            assert_eq!(m.source, dir.path().display().to_string());
            assert_eq!(m.missing, vec!["b".to_string()]);
            assert_eq!(m.unexpected, vec!["extra.weight".to_string()]);
            assert_eq!(
                m.mis_shaped,
                vec![("w".to_string(), vec![2, 3], vec![3, 2])]
            );
        }
        other => panic!("expected Error::WeightMismatch, got {other:?}"),
    }
    assert!(shown.contains("missing tensors: b"), "{shown}");
    assert!(
        shown.contains("unexpected tensors: extra.weight"),
        "{shown}"
    );
    assert!(
        shown.contains("tensor w: expected shape [2, 3], found [3, 2]"),
        "{shown}"
    );
}

#[test]
fn a_missing_tensor_alone() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &test_config(""));
    write_safetensors(
        &dir.path().join("model.safetensors"),
        &[RawTensor::f32("v", &[2, 3], &W_VALUES)],
    );
    match load_err(dir.path(), false) {
        Error::WeightMismatch(m) => {
            assert_eq!(m.missing, vec!["w".to_string()]);
            assert_eq!(m.unexpected, vec!["v".to_string()]);
            assert!(m.mis_shaped.is_empty());
        }
        other => panic!("expected Error::WeightMismatch, got {other:?}"),
    }
}

#[test]
fn unknown_config_key_strict_and_lenient() {
    let dir = good_model_dir();
    write(
        dir.path(),
        "config.json",
        &test_config("\"mystery_scale\": 2.0, \"forge_test_note\": \"hi\""),
    );
    let err = load_err(dir.path(), true);
    let shown = err.to_string();
    match err {
        Error::UnknownConfigKeys {
            path,
            model_type,
            keys,
        } => {
            assert_eq!(path, dir.path().join("config.json"));
            assert_eq!(model_type, TEST_TYPE);
            // The plugin's own ignore list covers forge_test_note.
            assert_eq!(keys, vec!["mystery_scale".to_string()]);
        }
        other => panic!("expected Error::UnknownConfigKeys, got {other:?}"),
    }
    assert!(shown.contains("mystery_scale"), "{shown}");
    assert!(shown.contains("strict"), "{shown}");

    let loaded = load(dir.path(), false).unwrap();
    assert_eq!(
        loaded.config_keys.unknown,
        vec!["mystery_scale".to_string()]
    );
    assert!(loaded
        .config_keys
        .ignored
        .contains(&"forge_test_note".to_string()));
    assert!(!loaded
        .config_keys
        .ignored
        .contains(&"mystery_scale".to_string()));
}

#[test]
fn a_wrong_typed_value_names_the_key() {
    let dir = good_model_dir();
    let text = test_config("").replace("\"hidden_size\": 3", "\"hidden_size\": \"big\"");
    write(dir.path(), "config.json", &text);
    let err = load_err(dir.path(), false);
    let shown = err.to_string();
    match err {
        Error::ConfigValue {
            path, key, found, ..
        } => {
            assert_eq!(path, dir.path().join("config.json"));
            assert_eq!(key, "hidden_size");
            assert!(found.contains("\"big\""), "{found}");
        }
        other => panic!("expected Error::ConfigValue, got {other:?}"),
    }
    assert!(shown.contains("`hidden_size`"), "{shown}");

    // A missing required key names it too.
    let text = test_config("").replace(",\n  \"out_size\": 2", "");
    write(dir.path(), "config.json", &text);
    match load_err(dir.path(), false) {
        Error::ConfigValue { found, .. } => assert!(found.contains("out_size"), "{found}"),
        other => panic!("expected Error::ConfigValue, got {other:?}"),
    }
}

#[test]
fn sharded_checkpoint_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.json",
        &test_config("\"use_bias\": true"),
    );
    write_safetensors(
        &dir.path().join("model-00001-of-00002.safetensors"),
        &[RawTensor::f32("w", &[2, 3], &W_VALUES)],
    );
    write_safetensors(
        &dir.path().join("model-00002-of-00002.safetensors"),
        &[RawTensor::f32("b", &[2], &[10.0, 20.0])],
    );
    // A stray file that the index does not name is not read.
    write_safetensors(
        &dir.path().join("stray.safetensors"),
        &[RawTensor::f32("stray", &[1], &[1.0])],
    );
    write(
        dir.path(),
        "model.safetensors.index.json",
        r#"{"metadata": {"total_size": 32},
            "weight_map": {"w": "model-00001-of-00002.safetensors",
                           "b": "model-00002-of-00002.safetensors"}}"#,
    );
    let loaded = load(dir.path(), true).unwrap();
    let names: Vec<&str> = loaded.tensors.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, vec!["b", "w"]);
    let x = forge_core::mlx_rs::Array::from_slice(&[1.0f32, 1.0, 1.0], &[1, 3]);
    let out = loaded
        .model
        .forward(&ModelInput::Embeddings(x), None, &ForwardOptions::default())
        .unwrap();
    // [1, 1, 1] wᵀ + b = [6, 15] + [10, 20]
    assert_eq!(
        values_f32(out.last_hidden_state.as_ref().unwrap()),
        vec![16.0, 35.0]
    );
}

#[test]
fn broken_shard_indexes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "model.safetensors.index.json",
        "{\"weight_map\": ",
    );
    assert!(matches!(
        load_safetensors_dir(dir.path()),
        Err(Error::Json { .. })
    ));

    write(
        dir.path(),
        "model.safetensors.index.json",
        "{\"metadata\": {}}",
    );
    match load_safetensors_dir(dir.path()) {
        Err(Error::ConfigValue { path, key, .. }) => {
            assert_eq!(path, dir.path().join("model.safetensors.index.json"));
            assert_eq!(key, "weight_map");
        }
        other => panic!("expected Error::ConfigValue, got {other:?}"),
    }

    write(
        dir.path(),
        "model.safetensors.index.json",
        "{\"weight_map\": {\"w\": 3}}",
    );
    match load_safetensors_dir(dir.path()) {
        Err(Error::ConfigValue { key, .. }) => assert_eq!(key, "weight_map.w"),
        other => panic!("expected Error::ConfigValue, got {other:?}"),
    }

    write(
        dir.path(),
        "model.safetensors.index.json",
        "{\"weight_map\": {\"w\": \"gone.safetensors\"}}",
    );
    match load_safetensors_dir(dir.path()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, dir.path().join("gone.safetensors")),
        other => panic!("expected Error::Io naming the shard, got {other:?}"),
    }
}

#[test]
fn no_weights_at_all() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &test_config(""));
    match load_err(dir.path(), false) {
        Error::MissingFile { path, what } => {
            assert_eq!(path, dir.path().join("model.safetensors"));
            assert!(what.contains("weights"), "{what}");
        }
        other => panic!("expected Error::MissingFile, got {other:?}"),
    }
}

#[test]
fn unindexed_shards_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.json",
        &test_config("\"use_bias\": true"),
    );
    write_safetensors(
        &dir.path().join("a.safetensors"),
        &[RawTensor::f32("w", &[2, 3], &W_VALUES)],
    );
    write_safetensors(
        &dir.path().join("b.safetensors"),
        &[RawTensor::f32("b", &[2], &[0.0, 0.0])],
    );
    let loaded = load(dir.path(), true).unwrap();
    assert_eq!(loaded.tensors.len(), 2);
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|v| to(*v)).collect()
}

#[test]
fn every_dtype_loads_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let raw = |name: &str, dtype: StDtype, bytes: Vec<u8>| RawTensor {
        name: name.into(),
        dtype,
        shape: vec![2, 2],
        bytes,
    };
    let f = [1.5f32, -2.25, 0.0, 1024.0];
    write_safetensors(
        &path,
        &[
            raw("f32", StDtype::F32, le_bytes(&f, f32::to_le_bytes)),
            raw(
                "f64",
                StDtype::F64,
                le_bytes(&[1.5f64, -2.25, 0.0, 1e300], f64::to_le_bytes),
            ),
            raw(
                "f16",
                StDtype::F16,
                f.iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            raw(
                "bf16",
                StDtype::BF16,
                f.iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            raw(
                "i64",
                StDtype::I64,
                le_bytes(&[i64::MIN, -1, 0, i64::MAX], i64::to_le_bytes),
            ),
            raw(
                "i32",
                StDtype::I32,
                le_bytes(&[i32::MIN, -1, 7, i32::MAX], i32::to_le_bytes),
            ),
            raw(
                "i16",
                StDtype::I16,
                le_bytes(&[i16::MIN, -1, 7, i16::MAX], i16::to_le_bytes),
            ),
            raw("i8", StDtype::I8, vec![0x80, 0xff, 7, 0x7f]),
            raw("u8", StDtype::U8, vec![0, 1, 128, 255]),
            raw(
                "u16",
                StDtype::U16,
                le_bytes(&[0u16, 1, 40000, u16::MAX], u16::to_le_bytes),
            ),
            raw(
                "u32",
                StDtype::U32,
                le_bytes(&[0u32, 1, 3_000_000_000, u32::MAX], u32::to_le_bytes),
            ),
            raw(
                "u64",
                StDtype::U64,
                le_bytes(&[0u64, 1, 1 << 40, u64::MAX], u64::to_le_bytes),
            ),
            raw("bool", StDtype::BOOL, vec![1, 0, 0, 1]),
        ],
    );
    let t = load_safetensors_file(&path).unwrap();
    assert_eq!(t.len(), 13);
    for (name, a) in &t {
        assert_eq!(a.shape(), &[2, 2], "{name}");
    }
    let dtype = |name: &str| t[name].dtype();
    assert_eq!(dtype("f32"), Dtype::Float32);
    assert_eq!(dtype("f64"), Dtype::Float64);
    assert_eq!(dtype("f16"), Dtype::Float16);
    assert_eq!(dtype("bf16"), Dtype::Bfloat16);
    assert_eq!(dtype("i64"), Dtype::Int64);
    assert_eq!(dtype("i32"), Dtype::Int32);
    assert_eq!(dtype("i16"), Dtype::Int16);
    assert_eq!(dtype("i8"), Dtype::Int8);
    assert_eq!(dtype("u8"), Dtype::Uint8);
    assert_eq!(dtype("u16"), Dtype::Uint16);
    assert_eq!(dtype("u32"), Dtype::Uint32);
    assert_eq!(dtype("u64"), Dtype::Uint64);
    assert_eq!(dtype("bool"), Dtype::Bool);

    assert_eq!(t["f32"].as_slice::<f32>(), &f);
    assert_eq!(t["f64"].as_slice::<f64>(), &[1.5, -2.25, 0.0, 1e300]);
    let f16: Vec<f32> = t["f16"]
        .as_slice::<half::f16>()
        .iter()
        .map(|v| v.to_f32())
        .collect();
    assert_eq!(f16, f);
    let bf16: Vec<f32> = t["bf16"]
        .as_slice::<half::bf16>()
        .iter()
        .map(|v| v.to_f32())
        .collect();
    assert_eq!(bf16, f);
    assert_eq!(t["i64"].as_slice::<i64>(), &[i64::MIN, -1, 0, i64::MAX]);
    assert_eq!(t["i32"].as_slice::<i32>(), &[i32::MIN, -1, 7, i32::MAX]);
    assert_eq!(t["i16"].as_slice::<i16>(), &[i16::MIN, -1, 7, i16::MAX]);
    assert_eq!(t["i8"].as_slice::<i8>(), &[i8::MIN, -1, 7, i8::MAX]);
    assert_eq!(t["u8"].as_slice::<u8>(), &[0, 1, 128, 255]);
    assert_eq!(t["u16"].as_slice::<u16>(), &[0, 1, 40000, u16::MAX]);
    assert_eq!(t["u32"].as_slice::<u32>(), &[0, 1, 3_000_000_000, u32::MAX]);
    assert_eq!(t["u64"].as_slice::<u64>(), &[0, 1, 1 << 40, u64::MAX]);
    assert_eq!(t["bool"].as_slice::<bool>(), &[true, false, false, true]);
}

#[test]
fn load_options_dtype_casts_float_weights() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &test_config(""));
    write_safetensors(
        &dir.path().join("model.safetensors"),
        &[RawTensor::bf16("w", &[2, 3], &W_VALUES)],
    );
    let kept = load(dir.path(), true).unwrap();
    assert_eq!(kept.tensors[0].2, Dtype::Bfloat16);
    assert_eq!(planned_w_dtype(kept.model.as_ref()), "Bfloat16");

    let cast =
        load_model_dir(dir.path(), &options(true, Some(Dtype::Float32), dir.path())).unwrap();
    // The inventory reports the checkpoint; the model holds the cast.
    assert_eq!(cast.tensors[0].2, Dtype::Bfloat16);
    assert_eq!(planned_w_dtype(cast.model.as_ref()), "Float32");
    let x = forge_core::mlx_rs::Array::from_slice(&[0.0f32, 0.0, 1.0], &[1, 3]);
    let out = cast
        .model
        .forward(&ModelInput::Embeddings(x), None, &ForwardOptions::default())
        .unwrap();
    assert_eq!(
        values_f32(out.last_hidden_state.as_ref().unwrap()),
        vec![3.0, 6.0]
    );
}
