//! The same Llama weights through both doors: the HF folder of the
//! `llama-gqa` golden case, and a GGUF written from it in llama.cpp's
//! layout (llama.cpp names, q/k rows permuted for its rope, metadata for
//! the config). Loading the GGUF must undo all of it: the logits agree.

use std::path::Path;

use forge_core::gguf::writer::{write_gguf, WriteTensor, WriteValue};
use forge_core::mlx_rs::{ops, Array};
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model, load_model_dir, ForwardOptions, LoadOptions, ModelInput};
use serde_json::Value;

// Link the plugin so it registers.
use forge_llama as _;

/// HF name → llama.cpp name.
fn gguf_name(hf: &str) -> String {
    let (base, suffix) = hf.rsplit_once('.').unwrap();
    let base = match base {
        "model.embed_tokens" => "token_embd".to_string(),
        "model.norm" => "output_norm".to_string(),
        "lm_head" => "output".to_string(),
        _ => {
            let rest = base.strip_prefix("model.layers.").unwrap();
            let (layer, part) = rest.split_once('.').unwrap();
            let part = match part {
                "input_layernorm" => "attn_norm",
                "post_attention_layernorm" => "ffn_norm",
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.o_proj" => "attn_output",
                "mlp.gate_proj" => "ffn_gate",
                "mlp.up_proj" => "ffn_up",
                "mlp.down_proj" => "ffn_down",
                other => panic!("unmapped {other}"),
            };
            format!("blk.{layer}.{part}")
        }
    };
    format!("{base}.{suffix}")
}

/// llama.cpp's converter permutation of q/k rows: per head, halves interleaved.
fn permute_rows(w: &Array, heads: i32) -> Array {
    let shape = w.shape().to_vec();
    let half = shape[0] / heads / 2;
    w.reshape(&[heads, 2, half, shape[1]])
        .unwrap()
        .swap_axes(1, 2)
        .unwrap()
        .reshape(&shape)
        .unwrap()
}

fn values(a: &Array) -> Vec<f32> {
    let a = a.as_dtype(forge_core::mlx_rs::Dtype::Float32).unwrap();
    a.eval().unwrap();
    a.as_slice::<f32>().to_vec()
}

#[test]
fn a_gguf_in_llama_cpp_layout_gives_the_same_logits_as_the_hf_folder() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden/llama-gqa/model");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("config.json")).unwrap()).unwrap();
    let u = |k: &str| config[k].as_u64().unwrap() as u32;
    let (heads, kv_heads) = (u("num_attention_heads"), u("num_key_value_heads"));

    let mut tensors = Vec::new();
    let mut names: Vec<_> = load_safetensors_file(&case.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (hf, array) in names {
        let array = if hf.contains("q_proj") {
            permute_rows(&array, heads as i32)
        } else if hf.contains("k_proj") {
            permute_rows(&array, kv_heads as i32)
        } else {
            array
        };
        let shape: Vec<u64> = array.shape().iter().map(|&d| d as u64).collect();
        tensors.push(WriteTensor::f32(&gguf_name(&hf), &shape, &values(&array)));
    }
    let metadata = vec![
        ("general.architecture", WriteValue::Str("llama".into())),
        ("llama.block_count", WriteValue::U32(u("num_hidden_layers"))),
        (
            "llama.context_length",
            WriteValue::U32(u("max_position_embeddings")),
        ),
        ("llama.embedding_length", WriteValue::U32(u("hidden_size"))),
        (
            "llama.feed_forward_length",
            WriteValue::U32(u("intermediate_size")),
        ),
        ("llama.attention.head_count", WriteValue::U32(heads)),
        ("llama.attention.head_count_kv", WriteValue::U32(kv_heads)),
        ("llama.attention.key_length", WriteValue::U32(u("head_dim"))),
        (
            "llama.attention.layer_norm_rms_epsilon",
            WriteValue::F32(config["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        (
            "llama.rope.freq_base",
            WriteValue::F32(config["rope_theta"].as_f64().unwrap() as f32),
        ),
        ("llama.vocab_size", WriteValue::U32(u("vocab_size"))),
    ];
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    write_gguf(&gguf, &metadata, &tensors).unwrap();

    let from_gguf = load_model(gguf.to_str().unwrap(), &LoadOptions::strict()).unwrap();
    assert_eq!(from_gguf.gguf.as_deref(), Some(gguf.as_path()));
    let from_hf = load_model_dir(&case, &LoadOptions::strict()).unwrap();
    let ids = Array::from_slice(&[3i32, 17, 90, 5, 64, 127, 1, 42], &[1, 8]);
    let run = |m: &forge_core::LoadedModel| {
        let out = m
            .model
            .forward(
                &ModelInput::Tokens(ids.clone()),
                None,
                &ForwardOptions::default(),
            )
            .unwrap();
        out.logits.unwrap()
    };
    let (a, b) = (run(&from_gguf), run(&from_hf));
    let diff = ops::abs(ops::subtract(&a, &b).unwrap())
        .unwrap()
        .max(None)
        .unwrap();
    diff.eval().unwrap();
    let diff = diff.as_slice::<f32>()[0];
    assert!(diff < 1e-5, "GGUF and HF folder differ by {diff}");

    // Without the un-permutation the two would differ: check the test can fail.
    let scrambled = permute_rows(&Array::from_slice(&[0f32, 1., 2., 3.], &[4, 1]), 1);
    assert_eq!(values(&scrambled), vec![0., 2., 1., 3.]);
}
