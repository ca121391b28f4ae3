//! A tiny Phi-3 with synthetic weights, built by the plugin's own `build`
//! (under the split names: the self-check does not run `sanitize`): the
//! output shapes, one hidden state per layer plus one, finite logits,
//! decoding with the cache equal to the one-shot forward, and KV bytes that
//! match the cache. The numbers are checked against Hugging Face by the
//! golden cases (tests/parity.rs).

/// Links the plugin so it registers.
extern crate forge_phi3;

/// Longrope with partial rotary (12 of 16 dims, 6 factor pairs).
///
/// The self-check prefills 6 of its 8 tokens and decodes the last two. With
/// HF's longrope a cached decode and the one-shot forward legitimately
/// differ when the switch to the long factors happens inside the sequence
/// (the cached keys keep their short rotation), so
/// original_max_position_embeddings is 4: the prefill (6 positions) and
/// both decode steps already use the long factors, as does the one-shot
/// forward, and the comparison stays exact while exercising the long
/// factors and the attention factor (max 32 / original 4).
const TINY_CONFIG: &str = r#"{
  "model_type": "phi3",
  "vocab_size": 160,
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 32,
  "original_max_position_embeddings": 4,
  "partial_rotary_factor": 0.75,
  "sliding_window": 5,
  "rope_parameters": {
    "rope_type": "longrope",
    "rope_theta": 10000.0,
    "short_factor": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5],
    "long_factor": [2.0, 2.4, 2.8, 3.2, 3.6, 4.0],
    "partial_rotary_factor": 0.75
  }
}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.model_type, "phi3");
}

/// `sanitize` splits fused projections by rows, an MLX-quantized matrix's
/// `scales` and `biases` with its packed `weight`, and names a bad shape.
#[test]
fn sanitize_splits_fused_and_quantized_projections() {
    use forge_core::mlx_rs::Array;
    use forge_core::{ModelConfig, TensorMap};

    let config = ModelConfig::from_str(TINY_CONFIG, "tiny config.json", true).unwrap();
    let rows = |n: i32, cols: i32| Array::from_slice(&vec![0f32; (n * cols) as usize], &[n, cols]);
    let attn = "model.layers.0.self_attn";
    let mlp = "model.layers.0.mlp";
    let mut tensors = TensorMap::new();
    // (4 heads + 2·2 kv heads) · 16 = 128 rows; gate_up 2 · 128 rows.
    tensors.insert(format!("{attn}.qkv_proj.weight"), rows(128, 8));
    tensors.insert(format!("{attn}.qkv_proj.scales"), rows(128, 2));
    tensors.insert(format!("{attn}.qkv_proj.biases"), rows(128, 2));
    tensors.insert(format!("{mlp}.gate_up_proj.weight"), rows(256, 64));
    tensors.insert("model.norm.weight".into(), rows(1, 64));
    let out = forge_phi3::sanitize(&config, tensors).unwrap();
    let shape = |name: &str| out[name].shape().to_vec();
    for suffix in ["weight", "scales", "biases"] {
        assert_eq!(shape(&format!("{attn}.q_proj.{suffix}"))[0], 64);
        assert_eq!(shape(&format!("{attn}.k_proj.{suffix}"))[0], 32);
        assert_eq!(shape(&format!("{attn}.v_proj.{suffix}"))[0], 32);
    }
    assert_eq!(shape(&format!("{mlp}.gate_proj.weight")), [128, 64]);
    assert_eq!(shape(&format!("{mlp}.up_proj.weight")), [128, 64]);
    assert_eq!(out.len(), 3 * 3 + 2 + 1);

    let mut bad = TensorMap::new();
    bad.insert(format!("{attn}.qkv_proj.weight"), rows(100, 8));
    let err = forge_phi3::sanitize(&config, bad).unwrap_err().to_string();
    assert!(
        err.contains("qkv_proj.weight") && err.contains("100 rows"),
        "{err}"
    );
}
