//! A tiny Granite (all four multipliers, attention and MLP biases) with
//! synthetic weights, built by the plugin's own `build`: the output shapes,
//! one hidden state per layer plus one, finite logits, decoding with the
//! cache equal to the one-shot forward, and KV bytes that match the cache.
//! The numbers are checked against Hugging Face by the golden cases
//! (tests/parity.rs).

/// Links the plugin so it registers.
extern crate forge_granite;

/// The tiny config (the same sizes as the golden case's).
const TINY_CONFIG: &str = r#"{
  "model_type": "granite",
  "vocab_size": 160,
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_hidden_layers": 3,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 256,
  "rms_norm_eps": 1e-6,
  "attention_bias": true,
  "mlp_bias": true,
  "tie_word_embeddings": false,
  "embedding_multiplier": 3.0,
  "attention_multiplier": 0.1,
  "residual_multiplier": 0.5,
  "logits_scaling": 4.0,
  "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}
}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.model_type, "granite");
}
