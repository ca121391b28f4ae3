//! How the Gemma 3 config is read: the rope of each layer type from either
//! layout, the sliding pattern, and the errors that name the key.

use forge_core::rope::RopeType;
use forge_core::ModelConfig;
use forge_gemma3_text::Gemma3TextArgs;

const BASE: &str = r#""model_type": "gemma3_text", "vocab_size": 32, "hidden_size": 16,
  "intermediate_size": 32, "num_hidden_layers": 6, "num_attention_heads": 2,
  "num_key_value_heads": 1, "head_dim": 8"#;

fn config(extra: &str) -> ModelConfig {
    let text = format!("{{{BASE}{extra}}}");
    ModelConfig::from_str(&text, "config.json", true).unwrap_or_else(|e| panic!("{e}"))
}

fn args(extra: &str) -> (ModelConfig, Gemma3TextArgs) {
    let c = config(extra);
    let a = Gemma3TextArgs::parse(&c).unwrap_or_else(|e| panic!("{e}"));
    (c, a)
}

#[test]
fn transformers_4_keys_give_the_full_and_sliding_ropes() {
    let (c, a) = args(
        r#", "rope_theta": 1000000.0, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "rope_local_base_freq": 10000.0, "sliding_window_pattern": 3"#,
    );
    let (sliding, full) = a.rope_parameters(&c).unwrap();
    assert_eq!(sliding.rope_type, RopeType::Default);
    assert_eq!(sliding.rope_theta, Some(10000.0));
    assert_eq!(full.rope_type, RopeType::Linear);
    assert_eq!((full.rope_theta, full.factor), (Some(1e6), Some(8.0)));
    let windows = a.windows(&c).unwrap();
    let full_layers: Vec<usize> = (0..6).filter(|&i| windows[i].is_none()).collect();
    assert_eq!(full_layers, vec![2, 5]);
}

#[test]
fn without_rope_keys_hf_defaults_apply() {
    let (c, a) = args("");
    let (sliding, full) = a.rope_parameters(&c).unwrap();
    assert_eq!(
        (sliding.rope_theta, full.rope_theta),
        (Some(1e4), Some(1e6))
    );
    // sliding_window_pattern 6: only the last of six layers is full.
    let windows = a.windows(&c).unwrap();
    assert_eq!(windows.iter().filter(|w| w.is_none()).count(), 1);
    assert_eq!(windows[5], None);
}

#[test]
fn nested_ropes_are_read_per_layer_type() {
    let (c, a) = args(
        r#", "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 5000.0},
        "full_attention": {"rope_type": "linear", "factor": 2.0}}"#,
    );
    let (sliding, full) = a.rope_parameters(&c).unwrap();
    assert_eq!(sliding.rope_theta, Some(5000.0));
    assert_eq!(
        (full.rope_type, full.rope_theta),
        (RopeType::Linear, Some(1e6))
    );
}

#[test]
fn unknown_nested_rope_keys_are_reported() {
    let c =
        config(r#", "rope_parameters": {"full_attention": {"rope_type": "default", "bogus": 1}}"#);
    let err = Gemma3TextArgs::parse(&c).unwrap_err().to_string();
    assert!(
        err.contains("rope_parameters.full_attention") && err.contains("bogus"),
        "{err}"
    );
    let c = config(r#", "rope_parameters": {"sliding": {"rope_type": "default"}}"#);
    let err = Gemma3TextArgs::parse(&c).unwrap_err().to_string();
    assert!(err.contains("rope_parameters.sliding"), "{err}");
}

#[test]
fn both_rope_layouts_at_once_are_refused() {
    let c = config(
        r#", "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "rope_parameters": {"full_attention": {"rope_type": "default"}}"#,
    );
    let err = Gemma3TextArgs::parse(&c).unwrap_err().to_string();
    assert!(err.contains("one layout"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    for (extra, key) in [
        (r#", "hidden_activation": "relu""#, "hidden_activation"),
        (r#", "sliding_window_pattern": 0"#, "sliding_window_pattern"),
        (
            r#", "use_bidirectional_attention": true"#,
            "use_bidirectional_attention",
        ),
        (
            r#", "final_logit_softcapping": 0.0"#,
            "final_logit_softcapping",
        ),
        (r#", "layer_types": ["full_attention"]"#, "layer_types"),
    ] {
        let c = config(extra);
        let err = Gemma3TextArgs::parse(&c)
            .and_then(|a| a.windows(&c).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{extra}: {err}");
    }
}
