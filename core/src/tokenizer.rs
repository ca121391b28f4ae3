//! Tokenizers from `tokenizer.json`, with the special tokens and chat
//! template of `tokenizer_config.json` / `chat_template.jinja`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chat_template::ChatTemplate;
use crate::error::{Error, Result};

/// A tokenizer plus what HF keeps beside it.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    /// The beginning-of-sequence token, if any.
    pub bos_token: Option<String>,
    /// The end-of-sequence token, if any.
    pub eos_token: Option<String>,
    /// The padding token, if any.
    pub pad_token: Option<String>,
    /// The chat template, if the model has one.
    pub chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` (required), `tokenizer_config.json` and
    /// `chat_template.jinja` (optional) from a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::MissingFile {
                path,
                what: "the tokenizer".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.exists() {
            read_json(&config_path)?
        } else {
            Value::Null
        };
        let token = |key: &str| special_token(config.get(key));
        let template_file = dir.join("chat_template.jinja");
        let template_source = if template_file.exists() {
            Some(
                std::fs::read_to_string(&template_file)
                    .map_err(|e| Error::io(&template_file, e))?,
            )
        } else {
            inline_template(config.get("chat_template"))
        };
        let bos_token = token("bos_token");
        let eos_token = token("eos_token");
        let chat_template = template_source
            .map(|source| ChatTemplate::new(source, bos_token.clone(), eos_token.clone()))
            .transpose()?;
        Ok(Tokenizer {
            inner,
            path,
            pad_token: token("pad_token"),
            bos_token,
            eos_token,
            chat_template,
        })
    }

    /// Wraps a tokenizer built elsewhere (e.g. from GGUF metadata).
    pub fn from_parts(inner: tokenizers::Tokenizer, path: PathBuf) -> Self {
        Tokenizer {
            inner,
            path,
            bos_token: None,
            eos_token: None,
            pad_token: None,
            chat_template: None,
        }
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's
    /// post-processor (e.g. a BOS token).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.error(e))
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.error(e))
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// HF writes special tokens either as a string or as `{"content": ...}`.
fn special_token(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `chat_template` is a string, or a list of `{name, template}` where the
/// one named "default" is used.
fn inline_template(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| list.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}
