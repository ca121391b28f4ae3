//! gpt-oss config parsing: defaults as HF sets them, and clear errors.

use forge_core::ModelConfig;
use forge_gpt_oss::GptOssArgs;

const BASE: &str = r#""model_type": "gpt_oss", "vocab_size": 10, "hidden_size": 32,
    "intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
    "sliding_window": 8"#;

fn parse(extra: &str) -> forge_core::Result<GptOssArgs> {
    let text = format!("{{{BASE}{extra}}}");
    let config = ModelConfig::from_str(&text, "config.json", true).unwrap();
    GptOssArgs::parse(&config)
}

#[test]
fn defaults_follow_hugging_face() {
    let text = format!("{{{BASE}}}");
    let config = ModelConfig::from_str(&text, "config.json", true).unwrap();
    let args = GptOssArgs::parse(&config).unwrap();
    assert_eq!(args.swiglu_limit, 7.0);
    assert_eq!(args.swiglu_alpha, 1.702);
    assert!(args.attention_bias);
    assert_eq!(args.head_dim(), 8);
    // layer_types default: sliding first, alternating.
    assert_eq!(
        args.windows(&config).unwrap(),
        vec![Some(8), None, Some(8), None]
    );
    // No rope in the config: the released YaRN with HF's default theta and attention factor.
    let rope = args.rope().unwrap();
    assert!((rope.mscale() as f64 - (0.1 * 32f64.ln() + 1.0)).abs() < 1e-6);
}

#[test]
fn bad_values_are_named() {
    let err = parse(r#", "num_experts_per_tok": 5"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("num_experts_per_tok") && err.contains('5'),
        "{err}"
    );
    let err = parse(r#", "layer_types": ["full_attention"]"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer_types") && err.contains("4 entries"),
        "{err}"
    );
    let err = parse(r#", "quantization_config": {"quant_method": "gptq"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mxfp4") && err.contains("gptq"), "{err}");
    let err = parse(r#", "some_new_knob": 1"#).unwrap_err().to_string();
    assert!(err.contains("some_new_knob"), "{err}");
}
