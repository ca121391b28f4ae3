//! Harmony as gpt-oss's registered prompt format: what `forge generate`
//! and `forge chat` use instead of a chat template for model_type
//! `gpt_oss`. A "system" message becomes the developer instructions; each
//! reply is read back into its final answer (carried to the next turn)
//! and its reasoning and tool calls (shown with `--verbose`).

use forge_core::chat_template::Message;
use forge_core::registry::{ParsedReply, PromptFormat};
use forge_core::{Error, Result};

use super::{render_conversation, today_utc, ChatMessage, HarmonyParser, RenderOptions};

inventory::submit! {
    PromptFormat {
        model_type: "gpt_oss",
        name: "Harmony",
        render,
        parse,
    }
}

/// The conversation as Harmony, dated today, ready for the reply.
pub fn render(messages: &[Message]) -> Result<String> {
    let messages = messages
        .iter()
        .map(to_harmony)
        .collect::<Result<Vec<_>>>()?;
    let options = RenderOptions {
        current_date: today_utc(),
        add_generation_prompt: true,
        ..Default::default()
    };
    render_conversation(&messages, &options).map_err(|e| Error::InvalidInput {
        expected: "a conversation Harmony can render".into(),
        found: e.to_string(),
    })
}

fn to_harmony(message: &Message) -> Result<ChatMessage> {
    let text = message.content.clone();
    Ok(match message.role.as_str() {
        "system" | "developer" => ChatMessage::Developer(text),
        "user" => ChatMessage::User(text),
        "assistant" => ChatMessage::Assistant {
            content: text,
            thinking: None,
            tool_call: None,
        },
        "tool" => ChatMessage::Tool(text),
        other => {
            return Err(Error::InvalidInput {
                expected: "a message role system, developer, user, assistant or tool".into(),
                found: format!("{other:?}"),
            })
        }
    })
}

/// The final answer, plus the reasoning, tool calls and any unfinished
/// header as details.
pub fn parse(decoded: &str) -> ParsedReply {
    let mut parser = HarmonyParser::new();
    parser.push(decoded);
    let output = parser.finish();
    let mut details = vec![format!("[reasoning]\n{}", output.reasoning())];
    for call in output.tool_calls() {
        details.push(format!("[tool call] {}({})", call.name, call.arguments));
    }
    if let Some(header) = &output.unfinished_header {
        details.push(format!("[unparsed] {header}"));
    }
    ParsedReply {
        answer: output.final_text(),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_oss_registers_harmony() {
        let format = forge_core::registry::prompt_format("gpt_oss").expect("registered");
        assert_eq!(format.name, "Harmony");
        assert!(forge_core::registry::prompt_format("llama").is_none());
    }

    #[test]
    fn a_system_message_becomes_developer_instructions() {
        let text = render(&[
            Message::new("system", "Answer briefly."),
            Message::new("user", "Hi"),
        ])
        .unwrap();
        assert!(text.contains("<|start|>developer<|message|># Instructions\n\nAnswer briefly."));
        assert!(text.contains("<|start|>user<|message|>Hi<|end|>"));
        assert!(text.ends_with("<|start|>assistant"));
    }

    #[test]
    fn an_unknown_role_is_named() {
        let err = render(&[Message::new("narrator", "x")]).unwrap_err();
        assert!(err.to_string().contains("\"narrator\""), "{err}");
    }

    #[test]
    fn the_final_channel_is_the_answer_and_reasoning_a_detail() {
        let reply = parse(
            "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>Paris<|return|>",
        );
        assert_eq!(reply.answer, "Paris");
        assert_eq!(reply.details, vec!["[reasoning]\nthink".to_string()]);
    }
}
