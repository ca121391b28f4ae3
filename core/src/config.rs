//! `config.json`: reading it, and parsing it into a plugin's typed args.
//!
//! Every key of a config is either understood by the plugin's args type, on
//! the plugin's list of keys known not to change numerics, or on the short
//! [`GENERIC_IGNORED_KEYS`] list. Any other key is reported: a warning that
//! names it, or in strict mode (which the parity harness always uses) an
//! error. A model that silently ignores a rope or norm setting gives wrong
//! logits with no sign of it; Forge refuses to.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::rope::normalize_rope_keys;

/// Keys that never change a model's numerics, whatever the architecture.
pub const GENERIC_IGNORED_KEYS: &[&str] = &[
    "_name_or_path",
    "architectures",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "model_type",
    "use_cache",
    "initializer_range",
    "attention_dropout",
    "hidden_dropout",
    "embd_pdrop",
    "resid_pdrop",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_encoder_decoder",
];

/// What happened to the keys of a config that the args type did not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigKeyReport {
    /// Keys skipped because they are known not to change numerics.
    pub ignored: Vec<String>,
    /// Keys nobody understands (a warning, or an error in strict mode).
    pub unknown: Vec<String>,
}

/// A parsed `config.json`: the raw JSON (rope keys normalized) plus the
/// bookkeeping of which keys the plugin did not use.
#[derive(Debug)]
pub struct ModelConfig {
    path: PathBuf,
    json: Map<String, Value>,
    strict: bool,
    report: RefCell<ConfigKeyReport>,
}

impl ModelConfig {
    /// Reads `config.json` from a file.
    pub fn from_file(path: impl AsRef<Path>, strict: bool) -> Result<Self> {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingFile {
                    path: path.to_path_buf(),
                    what: "the model config".into(),
                })
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        Self::from_str(&text, path, strict)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn from_str(text: &str, path: impl Into<PathBuf>, strict: bool) -> Result<Self> {
        let path = path.into();
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let Value::Object(json) = value else {
            return Err(Error::ConfigValue {
                path,
                key: "(top level)".into(),
                expected: "a JSON object".into(),
                found: json_kind(&value).into(),
            });
        };
        Self::from_json(json, path, strict)
    }

    /// Wraps an already parsed JSON object (GGUF metadata converts to this).
    pub fn from_json(mut json: Map<String, Value>, path: PathBuf, strict: bool) -> Result<Self> {
        normalize_rope_keys(&mut json).map_err(|(key, expected, found)| Error::ConfigValue {
            path: path.clone(),
            key,
            expected,
            found,
        })?;
        Ok(ModelConfig {
            path,
            json,
            strict,
            report: RefCell::new(ConfigKeyReport::default()),
        })
    }

    /// The config file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True in strict mode: unknown keys are errors.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The normalized JSON object.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// The `model_type` key.
    pub fn model_type(&self) -> Result<&str> {
        match self.json.get("model_type") {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.value_error("model_type", "a string", other)),
            None => Err(Error::ConfigValue {
                path: self.path.clone(),
                key: "model_type".into(),
                expected: "a model_type string (e.g. \"llama\")".into(),
                found: "no such key".into(),
            }),
        }
    }

    /// Parses the whole config into the plugin's args type `T`.
    ///
    /// `plugin_ignored` lists the keys this architecture knows not to change
    /// numerics. Keys that neither `T` nor the ignore lists cover are
    /// recorded in [`ModelConfig::key_report`]; in strict mode they are an
    /// [`Error::UnknownConfigKeys`], otherwise a warning on stderr.
    pub fn parse_args<T: DeserializeOwned>(&self, plugin_ignored: &[&str]) -> Result<T> {
        let mut not_read = Vec::new();
        let value = Value::Object(self.json.clone());
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
        let parsed: std::result::Result<T, _> =
            serde_ignored::deserialize(tracked, |path| not_read.push(path.to_string()));
        let args = parsed.map_err(|e| Error::ConfigValue {
            path: self.path.clone(),
            key: track.path().to_string(),
            expected: "a value the architecture accepts".into(),
            found: e.to_string(),
        })?;
        let model_type = self.model_type().unwrap_or("?").to_string();
        let mut report = self.report.borrow_mut();
        *report = ConfigKeyReport::default();
        for key in not_read {
            let top = key.split('.').next().unwrap_or(&key);
            if GENERIC_IGNORED_KEYS.contains(&top)
                || plugin_ignored.contains(&top)
                || plugin_ignored.contains(&key.as_str())
            {
                report.ignored.push(key);
            } else {
                report.unknown.push(key);
            }
        }
        if !report.unknown.is_empty() {
            if self.strict {
                return Err(Error::UnknownConfigKeys {
                    path: self.path.clone(),
                    model_type,
                    keys: report.unknown.clone(),
                });
            }
            eprintln!(
                "warning: {}: config keys not understood by the `{model_type}` plugin \
                 (they may change the numerics): {}",
                self.path.display(),
                report.unknown.join(", ")
            );
        }
        Ok(args)
    }

    /// Which keys were ignored or unknown in the last [`parse_args`](Self::parse_args).
    pub fn key_report(&self) -> ConfigKeyReport {
        self.report.borrow().clone()
    }

    fn value_error(&self, key: &str, expected: &str, found: &Value) -> Error {
        Error::ConfigValue {
            path: self.path.clone(),
            key: key.into(),
            expected: expected.into(),
            found: short_json(found),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn short_json(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 80 {
        format!(
            "{}…",
            &text[..text.char_indices().nth(77).map_or(text.len(), |c| c.0)]
        )
    } else {
        text
    }
}
