//! The small API for applications that just want an LLM: load once (a
//! model folder, a GGUF file or a hub id, weights in the planned dtype),
//! then `generate(prompt) -> String`, with the chat template on request.
//! The `forge` CLI loads its models through it.
//!
//! ```no_run
//! # fn main() -> forge_core::Result<()> {
//! let llm = forge_core::llm::Llm::load("path/to/model")?;
//! let answer = llm.chat("What is the capital of France?")?;
//! # Ok(()) }
//! ```

use serde_json::{Map, Value};

use crate::chat_template::Message;
use crate::error::{Error, Result};
use crate::generation::generate::{generate, stream_generate, TextStream};
use crate::generation::generation_config::GenerationConfig;
use crate::loader::{load_model_as, LoadedModel, WeightDtype, WeightDtypeChoice};
use crate::tokenizer::{read_json, Tokenizer};

/// A loaded model with its tokenizer and default generation settings.
pub struct Llm {
    /// The model.
    pub model: LoadedModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Settings used by [`Llm::generate`] and [`Llm::chat`]; EOS ids come
    /// from the model's config, generation_config.json and the tokenizer.
    pub config: GenerationConfig,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("model", &self.model)
            .field("config", &self.config)
            .finish()
    }
}

impl Llm {
    /// Loads a model folder, GGUF file or hub id with its tokenizer, the
    /// weights in the fastest dtype for this backend.
    pub fn load(model: &str) -> Result<Self> {
        Ok(Self::load_as(model, WeightDtype::Plan)?.0)
    }

    /// [`Llm::load`] with the weight dtype `dtype` asks for; also returns
    /// the dtype chosen and why.
    pub fn load_as(model: &str, dtype: WeightDtype) -> Result<(Self, WeightDtypeChoice)> {
        let (model, choice) = load_model_as(model, dtype)?;
        let tokenizer = model.tokenizer()?;
        Ok((Self::from_parts(model, tokenizer), choice))
    }

    /// Wraps a model and tokenizer loaded elsewhere.
    pub fn from_parts(model: LoadedModel, tokenizer: Tokenizer) -> Self {
        let config = GenerationConfig {
            eos_token_id: eos_token_ids(&model, &tokenizer),
            ..GenerationConfig::default()
        };
        Llm {
            model,
            tokenizer,
            config,
        }
    }

    /// The token ids of `prompt`, as is or through the chat template (with
    /// an optional system message and extra template variables).
    pub fn prompt_tokens(
        &self,
        prompt: &str,
        chat: bool,
        system: Option<&str>,
        template_args: &Map<String, Value>,
    ) -> Result<Vec<u32>> {
        if !chat {
            return self.tokenizer.encode(prompt, true);
        }
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", prompt));
        self.chat_tokens(&messages, template_args)
    }

    /// The token ids of a conversation rendered by the chat template, ready
    /// for the assistant's reply.
    pub fn chat_tokens(
        &self,
        messages: &[Message],
        template_args: &Map<String, Value>,
    ) -> Result<Vec<u32>> {
        let template = self.tokenizer.chat_template.as_ref().ok_or_else(|| {
            Error::ChatTemplate(format!(
                "{}: the tokenizer has no chat template (tokenizer_config.json `chat_template` or chat_template.jinja)",
                self.model.dir.display()
            ))
        })?;
        let text = template.render(messages, true, template_args)?;
        // The template writes the special tokens itself.
        self.tokenizer.encode(&text, false)
    }

    /// The text the model writes after `prompt` (no chat template).
    pub fn generate(&self, prompt: &str) -> Result<String> {
        let ids = self.tokenizer.encode(prompt, true)?;
        generate(
            self.model.model.as_ref(),
            &self.tokenizer,
            &ids,
            &self.config,
        )
    }

    /// The assistant's reply to one user message, through the chat template.
    pub fn chat(&self, message: &str) -> Result<String> {
        let ids = self.prompt_tokens(message, true, None, &Map::new())?;
        generate(
            self.model.model.as_ref(),
            &self.tokenizer,
            &ids,
            &self.config,
        )
    }

    /// Streams the text for prompt token ids with `config`.
    pub fn stream<'a>(
        &'a self,
        prompt: &[u32],
        config: &GenerationConfig,
    ) -> Result<TextStream<'a, 'a>> {
        stream_generate(self.model.model.as_ref(), &self.tokenizer, prompt, config)
    }
}

/// EOS ids of a model: config.json's and generation_config.json's
/// `eos_token_id` (a number or a list) and the tokenizer's EOS token.
pub fn eos_token_ids(model: &LoadedModel, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut add = |value: Option<&Value>| match value {
        Some(Value::Number(n)) => ids.extend(n.as_u64().map(|v| v as u32)),
        Some(Value::Array(list)) => {
            ids.extend(list.iter().filter_map(Value::as_u64).map(|v| v as u32))
        }
        _ => {}
    };
    add(model.config.json().get("eos_token_id"));
    let generation_config = model.dir.join("generation_config.json");
    if let Ok(json) = read_json(&generation_config) {
        add(json.get("eos_token_id"));
    }
    if let Some(id) = tokenizer
        .eos_token
        .as_deref()
        .and_then(|t| tokenizer.token_id(t))
    {
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}
