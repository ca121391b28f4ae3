//! Rope settings in config.json: the transformers-4 layout (`rope_theta` +
//! `rope_scaling` with `type` or `rope_type`) and the transformers-5 layout
//! (`rope_parameters`) parse into the same `RopeParameters`, and keys the
//! parser does not understand are reported under their normalized name.

use forge_core::rope::{RopeParameters, RopeType};
use forge_core::{Error, ModelConfig};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
struct Args {
    hidden_size: usize,
    #[serde(default)]
    rope_parameters: RopeParameters,
}

fn parse(text: &str, strict: bool) -> forge_core::Result<Args> {
    ModelConfig::from_str(text, "config.json", strict)?.parse_args(&[])
}

const LLAMA3_V4_TYPE: &str = r#"{
    "model_type": "llama", "hidden_size": 64, "rope_theta": 500000.0,
    "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
}"#;

const LLAMA3_V4_ROPE_TYPE: &str = r#"{
    "model_type": "llama", "hidden_size": 64, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
}"#;

const LLAMA3_V5: &str = r#"{
    "model_type": "llama", "hidden_size": 64,
    "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192}
}"#;

#[test]
fn three_spellings_of_llama3_rope_are_one_value() {
    let expected = RopeParameters {
        rope_type: RopeType::Llama3,
        rope_theta: Some(500000.0),
        factor: Some(8.0),
        original_max_position_embeddings: Some(8192),
        low_freq_factor: Some(1.0),
        high_freq_factor: Some(4.0),
        ..Default::default()
    };
    for text in [LLAMA3_V4_TYPE, LLAMA3_V4_ROPE_TYPE, LLAMA3_V5] {
        let args = parse(text, true).unwrap();
        assert_eq!(args.hidden_size, 64);
        assert_eq!(args.rope_parameters, expected, "{text}");
    }
}

#[test]
fn yarn_in_both_layouts() {
    let v4 = r#"{"hidden_size": 8, "rope_theta": 1e6,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 32, "beta_slow": 1,
                         "mscale": 0.707, "mscale_all_dim": 0.707, "truncate": false,
                         "original_max_position_embeddings": 4096}}"#;
    let v5 = r#"{"hidden_size": 8,
        "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
                            "beta_fast": 32, "beta_slow": 1, "mscale": 0.707,
                            "mscale_all_dim": 0.707, "truncate": false,
                            "original_max_position_embeddings": 4096}}"#;
    let a = parse(v4, true).unwrap().rope_parameters;
    let b = parse(v5, true).unwrap().rope_parameters;
    assert_eq!(a, b);
    assert_eq!(a.rope_type, RopeType::Yarn);
    assert_eq!(a.rope_theta, Some(1e6));
    assert_eq!(a.beta_fast, Some(32.0));
    assert_eq!(a.truncate, Some(false));
    assert_eq!(a.mscale_all_dim, Some(0.707));
}

#[test]
fn plain_theta_and_null_scaling_are_default_rope() {
    let v4 = parse(
        r#"{"hidden_size": 8, "rope_theta": 10000.0, "rope_scaling": null}"#,
        true,
    )
    .unwrap();
    let v5 = parse(
        r#"{"hidden_size": 8, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}"#,
        true,
    )
    .unwrap();
    assert_eq!(v4, v5);
    assert_eq!(v4.rope_parameters.rope_type, RopeType::Default);
    assert_eq!(v4.rope_parameters.rope_theta, Some(10000.0));

    // No rope keys at all: the plugin's default, and nothing reported.
    let config = ModelConfig::from_str(r#"{"hidden_size": 8}"#, "config.json", true).unwrap();
    let args: Args = config.parse_args(&[]).unwrap();
    assert_eq!(args.rope_parameters, RopeParameters::default());
    assert!(config.key_report().unknown.is_empty());
}

#[test]
fn rope_parameters_win_over_the_old_keys() {
    // A config carrying both layouts (as transformers 5 may write when it
    // upgrades an old file): the transformers-5 values are the ones used.
    let args = parse(
        r#"{"hidden_size": 8, "rope_theta": 1.0, "rope_scaling": {"type": "linear", "factor": 2.0},
            "rope_parameters": {"rope_type": "linear", "rope_theta": 5.0, "factor": 3.0}}"#,
        true,
    )
    .unwrap();
    assert_eq!(args.rope_parameters.rope_theta, Some(5.0));
    assert_eq!(args.rope_parameters.factor, Some(3.0));
    assert_eq!(args.rope_parameters.rope_type, RopeType::Linear);
}

#[test]
fn unknown_key_inside_rope_scaling_is_reported_by_its_new_name() {
    let text = r#"{"model_type": "llama", "hidden_size": 8, "rope_theta": 10000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0, "mystery_knob": 3}}"#;
    match parse(text, true).unwrap_err() {
        Error::UnknownConfigKeys {
            keys, model_type, ..
        } => {
            assert_eq!(keys, vec!["rope_parameters.mystery_knob".to_string()]);
            assert_eq!(model_type, "llama");
        }
        other => panic!("expected Error::UnknownConfigKeys, got {other:?}"),
    }
    // Lenient: parsed, and the key is on the report.
    let config = ModelConfig::from_str(text, "config.json", false).unwrap();
    let args: Args = config.parse_args(&[]).unwrap();
    assert_eq!(args.rope_parameters.factor, Some(2.0));
    assert_eq!(
        config.key_report().unknown,
        vec!["rope_parameters.mystery_knob".to_string()]
    );
    // A plugin may declare the dotted key harmless.
    let config = ModelConfig::from_str(text, "config.json", true).unwrap();
    let args: Args = config
        .parse_args(&["rope_parameters.mystery_knob"])
        .unwrap();
    assert_eq!(args.rope_parameters.rope_type, RopeType::Linear);
    let report = config.key_report();
    assert!(report.unknown.is_empty(), "{report:?}");
    assert!(
        report
            .ignored
            .contains(&"rope_parameters.mystery_knob".to_string()),
        "{report:?}"
    );
}

#[test]
fn bad_rope_values_name_their_key() {
    let cases = [
        (
            r#"{"hidden_size": 8, "rope_scaling": {"type": "bogus"}}"#,
            "rope_parameters.rope_type",
        ),
        (
            r#"{"hidden_size": 8, "rope_theta": "ten thousand"}"#,
            "rope_parameters.rope_theta",
        ),
        (
            r#"{"hidden_size": 8, "rope_parameters": {"factor": [1]}}"#,
            "rope_parameters.factor",
        ),
        (r#"{"hidden_size": 8, "rope_scaling": 2.0}"#, "rope_scaling"),
        (
            r#"{"hidden_size": 8, "rope_parameters": "yarn"}"#,
            "rope_parameters",
        ),
    ];
    for (text, expected_key) in cases {
        match parse(text, false) {
            Err(Error::ConfigValue { key, .. }) => assert_eq!(key, expected_key, "{text}"),
            other => panic!("{text}: expected Error::ConfigValue, got {other:?}"),
        }
    }
}

#[test]
fn a_scaled_rope_without_its_factor_says_which_value_is_missing() {
    let args = parse(
        r#"{"hidden_size": 8, "rope_scaling": {"type": "linear"}}"#,
        true,
    )
    .unwrap();
    let err =
        forge_core::rope::Rope::new(&args.rope_parameters, 8, 10000.0, 2048, false).unwrap_err();
    match err {
        Error::InvalidInput { expected, .. } => {
            assert!(expected.contains("rope_parameters.factor"), "{expected}")
        }
        other => panic!("expected Error::InvalidInput, got {other:?}"),
    }
}

#[test]
fn the_key_report_describes_the_last_parse() {
    #[derive(Deserialize)]
    struct Narrow {
        #[allow(dead_code)]
        hidden_size: usize,
    }
    let config = ModelConfig::from_str(
        r#"{"hidden_size": 8, "extra_a": 1, "rope_theta": 10000.0}"#,
        "config.json",
        false,
    )
    .unwrap();
    let _: Narrow = config.parse_args(&[]).unwrap();
    assert_eq!(
        config.key_report().unknown,
        vec!["extra_a".to_string(), "rope_parameters".to_string()]
    );
    // Parsing again with a type that reads the rope keys reports only what
    // that parse left unread, not the first parse's keys a second time.
    let _: Args = config.parse_args(&[]).unwrap();
    assert_eq!(config.key_report().unknown, vec!["extra_a".to_string()]);
}
