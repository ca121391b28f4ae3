//! Conversations and tools in the OpenAI chat format (what HF's
//! `apply_chat_template` takes) converted to Harmony's types.

use serde_json::Value;

use super::{ChatMessage, HarmonyError, ToolCallRequest, ToolSpec};

/// `[{"role": "user", "content": "..."}, ...]` → messages. Assistant
/// messages may carry `thinking` and `tool_calls` (the first call is used,
/// as the template does).
pub fn messages_from_openai(messages: &[Value]) -> Result<Vec<ChatMessage>, HarmonyError> {
    messages
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let bad = |expected: &str, found: String| HarmonyError::InvalidMessage {
                index,
                expected: expected.into(),
                found,
            };
            let text = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_string);
            let content = text("content").unwrap_or_default();
            match m.get("role").and_then(Value::as_str) {
                Some("user") => Ok(ChatMessage::User(content)),
                Some("developer") | Some("system") => Ok(ChatMessage::Developer(content)),
                Some("tool") => Ok(ChatMessage::Tool(content)),
                Some("assistant") => {
                    let tool_call = match m.get("tool_calls").and_then(Value::as_array) {
                        Some(calls) => {
                            let call = calls
                                .first()
                                .ok_or_else(|| bad("at least one tool call", "[]".into()))?;
                            let call = call.get("function").unwrap_or(call);
                            let name = call
                                .get("name")
                                .and_then(Value::as_str)
                                .ok_or_else(|| bad("a tool call with a name", call.to_string()))?;
                            Some(ToolCallRequest {
                                name: name.to_string(),
                                arguments: call.get("arguments").cloned().unwrap_or(Value::Null),
                            })
                        }
                        None => None,
                    };
                    Ok(ChatMessage::Assistant {
                        content,
                        thinking: text("thinking"),
                        tool_call,
                    })
                }
                other => Err(bad(
                    "role user, assistant, tool, developer or system",
                    format!("{other:?}"),
                )),
            }
        })
        .collect()
}

/// `[{"type": "function", "function": {"name", "description", "parameters"}}]` → tools.
pub fn tools_from_openai(tools: &[Value]) -> Result<Vec<ToolSpec>, HarmonyError> {
    tools
        .iter()
        .map(|t| {
            let f = t.get("function").unwrap_or(t);
            let name =
                f.get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| HarmonyError::InvalidTool {
                        tool: "?".into(),
                        expected: "a function with a name".into(),
                        found: f.to_string(),
                    })?;
            Ok(ToolSpec {
                name: name.to_string(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                parameters: f.get("parameters").cloned(),
            })
        })
        .collect()
}
