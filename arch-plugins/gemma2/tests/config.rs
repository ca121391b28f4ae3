//! How the Gemma 2 config is read: HF's defaults, the derived sliding
//! layers, and the errors that name the key.

use forge_core::ModelConfig;
use forge_gemma2::Gemma2Args;

const BASE: &str = r#""model_type": "gemma2", "vocab_size": 32, "hidden_size": 16,
  "intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
  "num_key_value_heads": 1, "head_dim": 8"#;

fn config(extra: &str) -> ModelConfig {
    let text = format!("{{{BASE}{extra}}}");
    ModelConfig::from_str(&text, "config.json", true).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn hf_defaults_apply_and_even_layers_slide() {
    let c = config("");
    let a = Gemma2Args::parse(&c).unwrap();
    assert_eq!(a.final_logit_softcapping, Some(30.0));
    assert_eq!(a.attn_logit_softcapping, Some(50.0));
    assert_eq!(a.query_pre_attn_scalar, 256.0);
    assert!(a.tie_word_embeddings);
    assert_eq!(a.windows(&c).unwrap(), vec![Some(4096), None, Some(4096)]);
}

#[test]
fn null_soft_caps_are_off() {
    let c = config(r#", "final_logit_softcapping": null, "attn_logit_softcapping": null"#);
    let a = Gemma2Args::parse(&c).unwrap();
    assert_eq!(
        (a.final_logit_softcapping, a.attn_logit_softcapping),
        (None, None)
    );
}

#[test]
fn bad_values_name_their_key() {
    for (extra, key) in [
        (r#", "hidden_activation": "relu""#, "hidden_activation"),
        (r#", "num_key_value_heads": 3"#, "num_key_value_heads"),
        (
            r#", "attn_logit_softcapping": -1.0"#,
            "attn_logit_softcapping",
        ),
        (
            r#", "use_bidirectional_attention": true"#,
            "use_bidirectional_attention",
        ),
        (r#", "some_new_key": 1"#, "some_new_key"),
    ] {
        let err = Gemma2Args::parse(&config(extra)).unwrap_err().to_string();
        assert!(err.contains(key), "{extra}: {err}");
    }
}
