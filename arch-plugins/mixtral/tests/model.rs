//! A tiny Mixtral with synthetic weights, built by the plugin's own
//! `build`: the output shapes, one hidden state per layer plus one, finite
//! logits, decoding with the cache equal to the one-shot forward, and KV
//! bytes that match the cache. Also: `sanitize` brings each expert layout
//! to the same stacked tensors. The numbers are checked against Hugging
//! Face by the golden cases (tests/parity.rs).

use forge_core::mlx_rs::{ops, Array};
use forge_core::{ModelConfig, TensorMap};

/// Links the plugin so it registers.
extern crate forge_mixtral;

/// The tiny config (the golden cases' features: experts, top-2, a window).
const TINY_CONFIG: &str = r#"{
  "model_type": "mixtral",
  "vocab_size": 160,
  "hidden_size": 48,
  "intermediate_size": 64,
  "num_hidden_layers": 2,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "head_dim": 16,
  "num_local_experts": 6,
  "num_experts_per_tok": 2,
  "sliding_window": 4,
  "max_position_embeddings": 256,
  "router_aux_loss_coef": 0.001,
  "output_router_logits": false,
  "router_jitter_noise": 0.0
}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.model_type, "mixtral");
}

fn config() -> ModelConfig {
    ModelConfig::from_str(
        r#"{"model_type": "mixtral", "num_hidden_layers": 1, "num_local_experts": 2}"#,
        "config.json",
        true,
    )
    .unwrap()
}

fn filled(value: f32, shape: &[i32]) -> Array {
    ops::full::<f32>(shape, Array::from_f32(value)).unwrap()
}

fn first_values(t: &Array, stride: usize) -> Vec<f32> {
    // A copy: a split is a strided view.
    let t = ops::multiply(t, Array::from_f32(1.0)).unwrap();
    t.eval().unwrap();
    t.as_slice::<f32>()
        .iter()
        .step_by(stride)
        .copied()
        .collect()
}

const STACKED: [&str; 3] = [
    "model.layers.0.mlp.experts.down_proj.weight",
    "model.layers.0.mlp.experts.gate_proj.weight",
    "model.layers.0.mlp.experts.up_proj.weight",
];

#[test]
fn hub_per_expert_weights_are_stacked_as_gate_up_down() {
    let mut tensors = TensorMap::new();
    for e in 0..2 {
        for (name, base) in [("w1", 10.0), ("w3", 20.0), ("w2", 30.0)] {
            tensors.insert(
                format!("model.layers.0.block_sparse_moe.experts.{e}.{name}.weight"),
                filled(base + e as f32, &[3, 2]),
            );
        }
    }
    tensors.insert(
        "model.layers.0.block_sparse_moe.gate.weight".into(),
        filled(0.0, &[2, 2]),
    );
    let out = forge_mixtral::sanitize(&config(), tensors).unwrap();
    let names: Vec<&str> = out.keys().map(String::as_str).collect();
    let mut want = STACKED.to_vec();
    want.push("model.layers.0.mlp.gate.weight");
    assert_eq!(names, want);
    let gate = &out["model.layers.0.mlp.experts.gate_proj.weight"];
    assert_eq!(gate.shape(), &[2, 3, 2]);
    assert_eq!(first_values(gate, 6), [10.0, 11.0]);
    assert_eq!(first_values(&out[STACKED[2]], 6), [20.0, 21.0]);
    assert_eq!(first_values(&out[STACKED[0]], 6), [30.0, 31.0]);
}

#[test]
fn fused_gate_up_is_split_into_halves() {
    // [E=2, 2·inter=4, hidden=1]: rows 0-1 gate, rows 2-3 up.
    let fused = Array::from_slice(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 4, 1]);
    let mut tensors = TensorMap::new();
    tensors.insert("model.layers.0.mlp.experts.gate_up_proj".into(), fused);
    tensors.insert(
        "model.layers.0.mlp.experts.down_proj".into(),
        filled(1.0, &[2, 1, 2]),
    );
    let out = forge_mixtral::sanitize(&config(), tensors).unwrap();
    let names: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(names, STACKED);
    assert_eq!(first_values(&out[STACKED[1]], 1), [1.0, 2.0, 5.0, 6.0]);
    assert_eq!(first_values(&out[STACKED[2]], 1), [3.0, 4.0, 7.0, 8.0]);
}

#[test]
fn mlx_lm_switch_mlp_is_renamed() {
    let mut tensors = TensorMap::new();
    for proj in ["gate_proj", "up_proj", "down_proj"] {
        tensors.insert(
            format!("model.layers.0.block_sparse_moe.switch_mlp.{proj}.weight"),
            filled(1.0, &[2, 2, 2]),
        );
    }
    let out = forge_mixtral::sanitize(&config(), tensors).unwrap();
    let names: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(names, STACKED);
}
