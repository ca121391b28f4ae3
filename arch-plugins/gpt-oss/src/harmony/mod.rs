//! Harmony, the chat format gpt-oss speaks.
//!
//! A conversation is a run of messages `<|start|>{header}<|message|>{content}{end}`.
//! The header names the author (`system`, `developer`, `user`, `assistant`,
//! or a tool such as `functions.get_weather`), optionally a channel
//! (`<|channel|>analysis` for reasoning, `commentary` for tool calls and
//! preambles, `final` for the answer), a recipient (`to=functions.NAME`)
//! and a content type (`json`, or `<|constrain|>json`). A message ends with
//! `<|end|>`, `<|call|>` (a tool call) or `<|return|>` (the end of the
//! assistant's turn).
//!
//! [`render`] writes conversations exactly as gpt-oss's chat template does
//! (checked against Hugging Face's rendering); [`parse`] reads the model's
//! output back, incrementally, into reasoning, final text, commentary and
//! tool calls.

pub mod format;
pub mod messages;
pub mod parse;
pub mod render;

pub use forge_core::chat_template::today_utc;
pub use messages::{messages_from_openai, tools_from_openai};
pub use parse::{HarmonyOutput, HarmonyParser, ParsedMessage, StreamDelta};
pub use render::{render_assistant_messages, render_conversation, user_prompt, RenderOptions};

/// The special tokens of the format.
pub mod tokens {
    /// Starts a message.
    pub const START: &str = "<|start|>";
    /// Separates the header from the content.
    pub const MESSAGE: &str = "<|message|>";
    /// Introduces the channel in a header.
    pub const CHANNEL: &str = "<|channel|>";
    /// Introduces a content-type constraint in a header.
    pub const CONSTRAIN: &str = "<|constrain|>";
    /// Ends a message.
    pub const END: &str = "<|end|>";
    /// Ends a tool-call message.
    pub const CALL: &str = "<|call|>";
    /// Ends the assistant's turn.
    pub const RETURN: &str = "<|return|>";
    /// Every special token of the format.
    pub const ALL: [&str; 7] = [START, MESSAGE, CHANNEL, CONSTRAIN, END, CALL, RETURN];
}

/// How much the model should reason (the system message's `Reasoning:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningEffort {
    /// "low".
    Low,
    /// "medium" (the template's default).
    #[default]
    Medium,
    /// "high".
    High,
}

impl ReasoningEffort {
    /// The word the template writes.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// A function the model may call: OpenAI's tool format (`{"type": "function",
/// "function": {...}}`), of which Harmony uses the inner object.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The function's name.
    pub name: String,
    /// What it does (rendered as a `//` comment).
    pub description: String,
    /// A JSON schema of the arguments (`{"type": "object", "properties": ...}`), if any.
    pub parameters: Option<serde_json::Value>,
}

/// A tool call made by the assistant.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The function name, without the `functions.` namespace.
    pub name: String,
    /// The arguments as the model wrote them (JSON text).
    pub arguments: String,
}

/// One message of a conversation to render.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    /// The developer's instructions (the template also accepts role
    /// "system" here); only as the first message.
    Developer(String),
    /// What the user says.
    User(String),
    /// An assistant turn: its answer, its reasoning, or a tool call.
    Assistant {
        /// The final answer (or, with a tool call, a reasoning text).
        content: String,
        /// The reasoning (analysis channel), when given.
        thinking: Option<String>,
        /// A call to one of the tools.
        tool_call: Option<ToolCallRequest>,
    },
    /// The result of the last tool call.
    Tool(String),
}

/// A tool call inside a rendered conversation (arguments as JSON values).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRequest {
    /// The function name.
    pub name: String,
    /// The arguments.
    pub arguments: serde_json::Value,
}

/// Errors of rendering a conversation.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HarmonyError {
    /// A message the template refuses.
    #[error("message {index}: expected {expected}, found {found}")]
    InvalidMessage {
        /// Index in the conversation.
        index: usize,
        /// What the template wants.
        expected: String,
        /// What was given.
        found: String,
    },
    /// A tool's parameter schema the renderer does not cover.
    #[error("tool {tool}: expected {expected}, found {found}")]
    InvalidTool {
        /// The tool.
        tool: String,
        /// What the renderer covers.
        expected: String,
        /// What was given.
        found: String,
    },
}
