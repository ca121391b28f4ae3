//! LLaVA's `config.json` (HF `LlavaConfig`): the top-level keys, and the
//! nested `vision_config` / `text_config` as configs of their own.

use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;
use serde_json::Value;

/// Top-level keys that do not change numerics.
pub const IGNORED_CONFIG_KEYS: &[&str] = &["image_seq_length", "vision_config", "text_config"];

/// The top level of a LLaVA config (HF names and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct LlavaArgs {
    /// The placeholder token whose embeddings image features replace
    /// (`image_token_index` in older configs).
    #[serde(alias = "image_token_index", default = "default_image_token")]
    pub image_token_id: u32,
    /// The projector's activation.
    #[serde(default = "default_act")]
    pub projector_hidden_act: String,
    /// Which vision hidden states feed the projector.
    #[serde(default = "default_feature_layer")]
    pub vision_feature_layer: FeatureLayers,
    /// "default" drops the class token, "full" keeps it.
    #[serde(default = "default_strategy")]
    pub vision_feature_select_strategy: String,
    /// Biases on the projector's two linear layers.
    #[serde(default = "yes")]
    pub multimodal_projector_bias: bool,
    /// The output head reuses the embedding table (also when the text
    /// config says so).
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

/// `vision_feature_layer`: one index into the tower's hidden states, or a
/// list whose states are concatenated along the feature axis. Negative
/// indices count from the end (−1 is the last layer's output).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FeatureLayers {
    /// One hidden state.
    One(i64),
    /// Several, concatenated.
    Many(Vec<i64>),
}

impl FeatureLayers {
    /// The layers as indices into `count` hidden states (`num_layers + 1`).
    pub fn resolve(&self, count: usize, config: &ModelConfig) -> Result<Vec<usize>> {
        let list = match self {
            FeatureLayers::One(i) => vec![*i],
            FeatureLayers::Many(v) => v.clone(),
        };
        if list.is_empty() {
            return Err(bad(
                config,
                "vision_feature_layer",
                "at least one index",
                "[]",
            ));
        }
        list.iter()
            .map(|&i| {
                let at = if i < 0 { count as i64 + i } else { i };
                if (0..count as i64).contains(&at) {
                    Ok(at as usize)
                } else {
                    let expected = format!(
                        "an index into the vision tower's {count} hidden states (-{count}..{count})"
                    );
                    Err(bad(
                        config,
                        "vision_feature_layer",
                        &expected,
                        &i.to_string(),
                    ))
                }
            })
            .collect()
    }
}

fn default_image_token() -> u32 {
    32000
}
fn default_act() -> String {
    "gelu".into()
}
fn default_feature_layer() -> FeatureLayers {
    FeatureLayers::One(-2)
}
fn default_strategy() -> String {
    "default".into()
}
fn yes() -> bool {
    true
}

impl LlavaArgs {
    /// Whether the class token is kept ("full") or dropped ("default").
    pub fn keeps_class_token(&self, config: &ModelConfig) -> Result<bool> {
        match self.vision_feature_select_strategy.as_str() {
            "default" => Ok(false),
            "full" => Ok(true),
            other => Err(bad(
                config,
                "vision_feature_select_strategy",
                "\"default\" or \"full\"",
                &format!("{other:?}"),
            )),
        }
    }
}

/// The nested config under `key` (`vision_config`, `text_config`) as a
/// config of its own: same file, same strictness; a missing one is an error.
pub fn nested(config: &ModelConfig, key: &str, model_types: &[&str]) -> Result<ModelConfig> {
    let found = match config.json().get(key) {
        Some(Value::Object(map)) => map.clone(),
        Some(other) => return Err(bad(config, key, "an object", &other.to_string())),
        None => {
            return Err(bad(
                config,
                key,
                &format!("a {key} object (LLaVA needs its vision tower and language model)"),
                "no such key",
            ))
        }
    };
    let sub = ModelConfig::from_json(found, config.path().to_path_buf(), config.is_strict())?;
    let model_type = sub.model_type().unwrap_or("(none)");
    if !model_types.contains(&model_type) {
        let expected = format!("{key}.model_type {model_types:?}");
        return Err(bad(
            config,
            &format!("{key}.model_type"),
            &expected,
            model_type,
        ));
    }
    Ok(sub)
}

fn bad(config: &ModelConfig, key: &str, expected: &str, found: &str) -> Error {
    Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected: expected.into(),
        found: found.into(),
    }
}
