//! A tiny gemma3_text with synthetic weights, built by the plugin's own
//! `build`: the output shapes, one hidden state per layer plus one, finite
//! logits, decoding with the cache equal to the one-shot forward, and KV
//! bytes that match the cache. The numbers are checked against Hugging Face
//! by the golden cases (tests/parity.rs).

/// Links the plugin so it registers.
extern crate forge_gemma3_text;

/// The tiny config (the same sizes as the golden case's).
const TINY_CONFIG: &str = r#"{
  "model_type": "gemma3_text",
  "vocab_size": 256,
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "head_dim": 32,
  "query_pre_attn_scalar": 24,
  "max_position_embeddings": 512,
  "num_key_value_heads": 2,
  "sliding_window": 4,
  "layer_types": ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
  "final_logit_softcapping": 4.0,
  "rope_parameters": {
    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 200000.0}
  }
}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.model_type, "gemma3_text");
}
