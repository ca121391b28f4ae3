//! The registry of architectures.
//!
//! Each plugin crate registers itself with `inventory::submit!`:
//!
//! ```ignore
//! inventory::submit! {
//!     forge_core::Architecture {
//!         model_type: "llama",
//!         aliases: &[],
//!         description: "Llama: RMSNorm, GQA attention with RoPE, SwiGLU MLP",
//!         ignored_config_keys: &["pretraining_tp"],
//!         sanitize: forge_core::registry::keep_weights,
//!         build: build_llama,
//!     }
//! }
//! ```
//!
//! Nothing in forge-core names a plugin; a plugin crate registers only when
//! it is linked, which the `forge` CLI does for every plugin.

use crate::chat_template::Message;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::weights::{TensorMap, Weights};

/// An architecture plugin: how to turn a config and weights into a [`Model`].
#[derive(Debug)]
pub struct Architecture {
    /// The HF `model_type` it serves.
    pub model_type: &'static str,
    /// Other model_types served by the same code.
    pub aliases: &'static [&'static str],
    /// One line about the architecture.
    pub description: &'static str,
    /// Config keys known not to change numerics for this architecture.
    pub ignored_config_keys: &'static [&'static str],
    /// Renames, drops or reshapes checkpoint tensors into the names `build` takes.
    pub sanitize: fn(&ModelConfig, TensorMap) -> Result<TensorMap>,
    /// Builds the model: parses the args from the config and takes its
    /// tensors from `weights` (the loader checks nothing is left over).
    pub build: fn(&ModelConfig, &mut Weights) -> Result<Box<dyn Model>>,
}

inventory::collect!(Architecture);

/// A `sanitize` that keeps the checkpoint as it is.
pub fn keep_weights(_config: &ModelConfig, weights: TensorMap) -> Result<TensorMap> {
    Ok(weights)
}

/// Every registered architecture, sorted by model_type.
pub fn list() -> Vec<&'static Architecture> {
    let mut all: Vec<&'static Architecture> = inventory::iter::<Architecture>.into_iter().collect();
    all.sort_by_key(|a| a.model_type);
    all
}

/// The architecture serving `model_type` (or one of its aliases).
pub fn find(model_type: &str) -> Option<&'static Architecture> {
    inventory::iter::<Architecture>
        .into_iter()
        .find(|a| a.model_type == model_type || a.aliases.contains(&model_type))
}

/// The architecture for a config, or an error that lists what is registered.
pub fn for_config(config: &ModelConfig) -> Result<&'static Architecture> {
    let model_type = config.model_type()?;
    find(model_type).ok_or_else(|| Error::UnknownModelType {
        path: config.path().to_path_buf(),
        found: model_type.to_string(),
        known: list()
            .iter()
            .flat_map(|a| std::iter::once(a.model_type).chain(a.aliases.iter().copied()))
            .map(str::to_string)
            .collect(),
    })
}

/// A prompt format an architecture speaks instead of its tokenizer's chat
/// template (gpt-oss registers Harmony). The CLI's generate and chat
/// render prompts and read replies through it when one is registered for
/// the model's model_type.
#[derive(Debug)]
pub struct PromptFormat {
    /// The model_type (or alias) it serves.
    pub model_type: &'static str,
    /// Its name, for messages ("Harmony").
    pub name: &'static str,
    /// Renders a conversation (roles "system", "user", "assistant") ready
    /// for the model's next reply.
    pub render: fn(&[Message]) -> Result<String>,
    /// Reads a reply decoded with its special tokens.
    pub parse: fn(&str) -> ParsedReply,
}

inventory::collect!(PromptFormat);

/// A reply read through a [`PromptFormat`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedReply {
    /// The answer for the user (and for the next turn of a chat).
    pub answer: String,
    /// What else the model wrote (reasoning, tool calls), one labelled
    /// line or block each, for verbose output.
    pub details: Vec<String>,
}

/// The prompt format registered for `model_type`, if any.
pub fn prompt_format(model_type: &str) -> Option<&'static PromptFormat> {
    inventory::iter::<PromptFormat>
        .into_iter()
        .find(|f| f.model_type == model_type)
}
