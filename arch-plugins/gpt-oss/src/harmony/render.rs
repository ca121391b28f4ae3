//! Rendering conversations as gpt-oss's chat template does.
//!
//! The layout: a system message (model identity, knowledge cutoff, date,
//! reasoning effort, valid channels), a developer message with the
//! instructions and the tools as a TypeScript-like `functions` namespace,
//! then the turns. Reasoning of earlier turns is dropped, except the
//! reasoning that led to a tool call not yet answered by a final message.

use forge_core::chat_template::{python_json, today_utc};
use serde_json::Value;

use super::tokens::{CALL, CHANNEL, END, MESSAGE, RETURN, START};
use super::{ChatMessage, HarmonyError, ReasoningEffort, ToolSpec};

/// The template's identity line when none is given.
pub const DEFAULT_MODEL_IDENTITY: &str =
    "You are ChatGPT, a large language model trained by OpenAI.";

/// The knowledge cutoff the template writes.
pub const KNOWLEDGE_CUTOFF: &str = "2024-06";

/// What goes around the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Replaces [`DEFAULT_MODEL_IDENTITY`].
    pub model_identity: Option<String>,
    /// The `Reasoning:` line.
    pub reasoning_effort: ReasoningEffort,
    /// `YYYY-MM-DD` for the `Current date:` line (the template uses today).
    pub current_date: String,
    /// Functions the model may call.
    pub tools: Vec<ToolSpec>,
    /// End with `<|start|>assistant`, ready for the model to answer.
    pub add_generation_prompt: bool,
}

/// The whole prompt for `messages`.
pub fn render_conversation(
    messages: &[ChatMessage],
    options: &RenderOptions,
) -> Result<String, HarmonyError> {
    let mut out = String::new();
    out.push_str(START);
    out.push_str("system");
    out.push_str(MESSAGE);
    out.push_str(&system_text(options));
    out.push_str(END);

    let (developer, turns) = match messages.split_first() {
        Some((ChatMessage::Developer(text), rest)) => (text.as_str(), rest),
        _ => ("", messages),
    };
    if !developer.is_empty() || !options.tools.is_empty() {
        out.push_str(START);
        out.push_str("developer");
        out.push_str(MESSAGE);
        if !developer.is_empty() {
            out.push_str("# Instructions\n\n");
            out.push_str(developer);
            out.push_str("\n\n");
        }
        if !options.tools.is_empty() {
            out.push_str("# Tools\n\n");
            out.push_str(&tool_namespace("functions", &options.tools)?);
        }
        out.push_str(END);
    }

    let mut last_tool_call: Option<&str> = None;
    for (i, message) in turns.iter().enumerate() {
        let index = i + messages.len() - turns.len();
        let is_last = i + 1 == turns.len();
        match message {
            ChatMessage::User(text) => {
                push_message(&mut out, "user", None, text, END);
            }
            ChatMessage::Developer(_) => {
                // The template only reads the first message as instructions.
            }
            ChatMessage::Tool(text) => {
                let Some(name) = last_tool_call else {
                    return Err(HarmonyError::InvalidMessage {
                        index,
                        expected: "a tool result after an assistant tool call".into(),
                        found: "a tool message with no tool call before it".into(),
                    });
                };
                out.push_str(START);
                out.push_str("functions.");
                out.push_str(name);
                out.push_str(" to=assistant");
                out.push_str(CHANNEL);
                out.push_str("commentary");
                out.push_str(MESSAGE);
                out.push_str(&template_json(&Value::String(text.clone())));
                out.push_str(END);
            }
            ChatMessage::Assistant {
                content,
                thinking,
                tool_call,
            } => {
                check_no_channel_tags(index, content, thinking.as_deref())?;
                if let Some(call) = tool_call {
                    let answered = turns[i + 1..].iter().any(|m| {
                        matches!(
                            m,
                            ChatMessage::Assistant {
                                tool_call: None,
                                ..
                            }
                        )
                    });
                    let thinking = thinking.as_deref().unwrap_or("");
                    if !content.is_empty() && !thinking.is_empty() {
                        return Err(HarmonyError::InvalidMessage {
                            index,
                            expected: "content or thinking in an assistant tool call, not both"
                                .into(),
                            found: "both".into(),
                        });
                    }
                    let reasoning = if content.is_empty() {
                        thinking
                    } else {
                        content
                    };
                    if !reasoning.is_empty() && !answered {
                        push_message(&mut out, "assistant", Some("analysis"), reasoning, END);
                    }
                    out.push_str(START);
                    out.push_str("assistant to=functions.");
                    out.push_str(&call.name);
                    out.push_str(CHANNEL);
                    out.push_str("commentary json");
                    out.push_str(MESSAGE);
                    out.push_str(&template_json(&call.arguments));
                    out.push_str(CALL);
                    last_tool_call = Some(&call.name);
                } else if is_last && !options.add_generation_prompt {
                    if let Some(thinking) = thinking {
                        push_message(&mut out, "assistant", Some("analysis"), thinking, END);
                    }
                    push_message(&mut out, "assistant", Some("final"), content, RETURN);
                } else {
                    push_message(&mut out, "assistant", Some("final"), content, END);
                    last_tool_call = None;
                }
            }
        }
    }
    if options.add_generation_prompt {
        out.push_str(START);
        out.push_str("assistant");
    }
    Ok(out)
}

/// Assistant messages as the model writes them after `<|start|>assistant`
/// (each one a full message, tool calls ending in `<|call|>`, the last
/// final answer in `<|return|>`): what [`super::HarmonyParser`] reads back.
pub fn render_assistant_messages(messages: &[super::ParsedMessage]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(START);
        out.push_str("assistant");
        if let Some(recipient) = &m.recipient {
            out.push_str(" to=");
            out.push_str(recipient);
        }
        if let Some(channel) = &m.channel {
            out.push_str(CHANNEL);
            out.push_str(channel);
        }
        if let Some(content_type) = &m.content_type {
            out.push(' ');
            out.push_str(content_type);
        }
        out.push_str(MESSAGE);
        out.push_str(&m.content);
        out.push_str(match m.end.as_deref() {
            Some(end) => end,
            None => END,
        });
    }
    out
}

fn push_message(out: &mut String, role: &str, channel: Option<&str>, content: &str, end: &str) {
    out.push_str(START);
    out.push_str(role);
    if let Some(channel) = channel {
        out.push_str(CHANNEL);
        out.push_str(channel);
    }
    out.push_str(MESSAGE);
    out.push_str(content);
    out.push_str(end);
}

fn check_no_channel_tags(
    index: usize,
    content: &str,
    thinking: Option<&str>,
) -> Result<(), HarmonyError> {
    let tagged = |text: &str| {
        ["analysis", "final"]
            .iter()
            .any(|c| text.contains(&format!("{CHANNEL}{c}{MESSAGE}")))
    };
    if tagged(content) || thinking.is_some_and(tagged) {
        return Err(HarmonyError::InvalidMessage {
            index,
            expected: "plain text in content and thinking (reasoning goes in thinking)".into(),
            found: "a <|channel|> tag inside the text".into(),
        });
    }
    Ok(())
}

fn system_text(options: &RenderOptions) -> String {
    let identity = options
        .model_identity
        .as_deref()
        .unwrap_or(DEFAULT_MODEL_IDENTITY);
    let mut text = format!(
        "{identity}\nKnowledge cutoff: {KNOWLEDGE_CUTOFF}\nCurrent date: {}\n\nReasoning: {}\n\n\
         # Valid channels: analysis, commentary, final. Channel must be included for every message.",
        options.current_date,
        options.reasoning_effort.as_str()
    );
    if !options.tools.is_empty() {
        text.push_str("\nCalls to these tools must go to the commentary channel: 'functions'.");
    }
    text
}

/// `## functions\n\nnamespace functions {\n\n// description\ntype name = (_: {...}) => any;\n\n} // namespace functions`
fn tool_namespace(namespace: &str, tools: &[ToolSpec]) -> Result<String, HarmonyError> {
    let mut out = format!("## {namespace}\n\nnamespace {namespace} {{\n\n");
    for tool in tools {
        out.push_str(&format!("// {}\ntype {} = ", tool.description, tool.name));
        let properties = tool
            .parameters
            .as_ref()
            .and_then(|p| p.get("properties"))
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty());
        let Some(properties) = properties else {
            out.push_str("() => any;\n\n");
            continue;
        };
        let required = required_names(tool.parameters.as_ref());
        out.push_str("(_: {\n");
        for (name, spec) in properties {
            if let Some(description) = spec.get("description").and_then(Value::as_str) {
                out.push_str(&format!("// {description}\n"));
            }
            out.push_str(name);
            if !required.contains(&name.as_str()) {
                out.push('?');
            }
            out.push_str(": ");
            out.push_str(&typescript_type(&tool.name, spec)?);
            if let Some(default) = spec.get("default") {
                match (spec.get("enum"), default) {
                    (Some(_), Value::String(text)) => {
                        out.push_str(&format!(", // default: {text}"))
                    }
                    (Some(_), other) => {
                        return Err(HarmonyError::InvalidTool {
                            tool: tool.name.clone(),
                            expected: format!("a string default for the enum parameter {name}"),
                            found: other.to_string(),
                        })
                    }
                    (None, value) => {
                        out.push_str(&format!(", // default: {}", template_json(value)))
                    }
                }
            }
            out.push_str(",\n");
        }
        out.push_str("}) => any;\n\n");
    }
    out.push_str(&format!("}} // namespace {namespace}"));
    Ok(out)
}

fn required_names(parameters: Option<&Value>) -> Vec<&str> {
    parameters
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A parameter's type as the template writes it. Covers the JSON schema
/// types, enums, arrays, type lists and `nullable`; `oneOf` and objects
/// with properties (which the template renders with stray whitespace) are
/// refused.
fn typescript_type(tool: &str, spec: &Value) -> Result<String, HarmonyError> {
    let unsupported = |what: &str| {
        HarmonyError::InvalidTool {
        tool: tool.to_string(),
        expected: "parameters of type string, number, integer, boolean, array or object without properties"
            .into(),
        found: what.to_string(),
    }
    };
    if spec.get("oneOf").is_some() {
        return Err(unsupported("a oneOf schema"));
    }
    let nullable = spec
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let null_suffix = if nullable { " | null" } else { "" };
    let text = match spec.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| t.to_string())
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Some(Value::String(t)) => match t.as_str() {
            "string" => match spec.get("enum").and_then(Value::as_array) {
                Some(values) if !values.is_empty() => {
                    let words: Vec<String> = values
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect();
                    format!("\"{}\"", words.join("\" | \""))
                }
                _ => format!("string{null_suffix}"),
            },
            "number" | "integer" => "number".into(),
            "boolean" => "boolean".into(),
            "array" => {
                let inner = match spec.get("items") {
                    None => "any".to_string(),
                    Some(items) => match items.get("type").and_then(Value::as_str) {
                        Some("string") => "string".into(),
                        Some("number") | Some("integer") => "number".into(),
                        Some("boolean") => "boolean".into(),
                        _ => {
                            let inner = typescript_type(tool, items)?;
                            if inner == "object | object" || inner.len() > 50 {
                                "any".into()
                            } else {
                                inner
                            }
                        }
                    },
                };
                format!("{inner}[]{null_suffix}")
            }
            "object" => {
                if spec
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|p| !p.is_empty())
                {
                    return Err(unsupported("an object parameter with properties"));
                }
                "object".into()
            }
            _ => "any".into(),
        },
        _ => "any".into(),
    };
    Ok(text)
}

/// `value` as the template's `tojson` writes it (Python's `json.dumps`).
fn template_json(value: &Value) -> String {
    let mut out = String::new();
    python_json(value, None, 0, &mut out);
    out
}

/// The prompt for a single user message, ready for the model to answer
/// (today's date, no instructions, no tools).
pub fn user_prompt(text: &str, reasoning_effort: ReasoningEffort) -> String {
    let options = RenderOptions {
        reasoning_effort,
        current_date: today_utc(),
        add_generation_prompt: true,
        ..Default::default()
    };
    // A lone user message has nothing the template can refuse.
    render_conversation(&[ChatMessage::User(text.to_string())], &options).unwrap_or_default()
}
