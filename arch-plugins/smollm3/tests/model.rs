//! A tiny SmolLM3 with synthetic weights, built by the plugin's own
//! `build`: the output shapes, one hidden state per layer plus one, finite
//! logits, decoding with the cache equal to the one-shot forward, and KV
//! bytes that match the cache. Its config leaves `no_rope_layers` and
//! `layer_types` out, so the plugin derives them as HF's config does
//! (checked here too). The numbers are checked against Hugging Face by the
//! golden cases (tests/parity.rs).

use forge_core::ModelConfig;
use forge_smollm3::SmolLm3Args;

/// The tiny config: 4 layers, NoPE on every 2nd, a window on the NoPE layers.
const TINY_CONFIG: &str = r#"{
  "model_type": "smollm3",
  "vocab_size": 160,
  "hidden_size": 64,
  "intermediate_size": 128,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 256,
  "rms_norm_eps": 1e-6,
  "no_rope_layer_interval": 2,
  "use_sliding_window": true,
  "sliding_window": 4,
  "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}
}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.model_type, "smollm3");
}

fn parse(json: &str) -> (SmolLm3Args, ModelConfig) {
    let config = ModelConfig::from_str(json, "tiny config.json", true).unwrap();
    (SmolLm3Args::parse(&config).unwrap(), config)
}

#[test]
fn nope_layers_and_windows_are_derived_as_hf_derives_them() {
    let (args, config) = parse(TINY_CONFIG);
    // HF: no_rope_layers[i] = int((i + 1) % interval != 0).
    assert_eq!(args.uses_rope(), vec![true, false, true, false]);
    // HF: sliding where use_sliding_window, sliding_window and NoPE.
    let windows = args.windows(&config).unwrap();
    assert_eq!(windows, vec![None, Some(4), None, Some(4)]);

    // The defaults: interval 4, no window, 4 kv heads, tied head.
    let plain = TINY_CONFIG
        .replace("\"no_rope_layer_interval\": 2,", "")
        .replace("\"use_sliding_window\": true,", "")
        .replace("\"num_key_value_heads\": 2,", "");
    let (args, config) = parse(&plain);
    assert_eq!(args.uses_rope(), vec![true, true, true, false]);
    assert_eq!(args.windows(&config).unwrap(), vec![None; 4]);
    assert_eq!(args.kv_heads(), 4);
    assert!(args.tie_word_embeddings);
}

#[test]
fn bad_nope_lists_name_the_key() {
    let short = TINY_CONFIG.replace(
        "\"no_rope_layer_interval\": 2,",
        "\"no_rope_layers\": [1, 0, 1],",
    );
    let config = ModelConfig::from_str(&short, "tiny config.json", true).unwrap();
    let err = SmolLm3Args::parse(&config).unwrap_err().to_string();
    assert!(err.contains("no_rope_layers"), "{err}");
}
