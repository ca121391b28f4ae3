//! A tiny qwen3_moe with synthetic weights, built by the plugin's own
//! `build`: the output shapes, one hidden state per layer plus one, finite
//! logits, decoding with the cache equal to the one-shot forward, and KV
//! bytes that match the cache. The numbers are checked against Hugging Face
//! by the golden cases (tests/parity.rs).

/// Links the plugin so it registers.
extern crate forge_qwen3_moe;

/// The tiny config (the golden cases' features: a dense layer, q/k norms, a window).
const TINY_CONFIG: &str = r#"{
  "model_type": "qwen3_moe",
  "vocab_size": 160,
  "hidden_size": 48,
  "intermediate_size": 96,
  "moe_intermediate_size": 32,
  "num_hidden_layers": 3,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "head_dim": 16,
  "num_experts": 8,
  "num_experts_per_tok": 2,
  "norm_topk_prob": true,
  "decoder_sparse_step": 1,
  "mlp_only_layers": [1],
  "attention_bias": true,
  "use_sliding_window": true,
  "sliding_window": 4,
  "max_window_layers": 28,
  "max_position_embeddings": 256,
  "router_aux_loss_coef": 0.001,
  "output_router_logits": false
}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.model_type, "qwen3_moe");
}
