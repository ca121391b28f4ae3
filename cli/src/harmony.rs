//! gpt-oss speaks Harmony: `forge generate` renders the prompt as a user
//! turn (with `--system` as developer instructions) and reads the output's
//! channels, printing the final answer and, with `--verbose`, the reasoning
//! and any tool calls on stderr. `forge chat` keeps the conversation as
//! Harmony messages, each reply's final answer carried to the next turn.

use std::io::BufRead;

use forge_gpt_oss::harmony::{
    render_conversation, today_utc, ChatMessage, HarmonyOutput, HarmonyParser, RenderOptions,
};

use crate::chat::{next_input, Input};
use forge_core::GenerationConfig;

use crate::textgen::{self, TextModel};

/// True for architectures whose prompts and outputs are Harmony.
pub fn speaks_harmony(model_type: &str) -> bool {
    model_type == "gpt_oss"
}

/// The rendered prompt for one user message, ready for the model to answer.
pub fn prompt(text: &str, instructions: Option<&str>) -> anyhow::Result<String> {
    let mut messages = Vec::new();
    if let Some(instructions) = instructions {
        messages.push(ChatMessage::Developer(instructions.to_string()));
    }
    messages.push(ChatMessage::User(text.to_string()));
    render(&messages)
}

fn render(messages: &[ChatMessage]) -> anyhow::Result<String> {
    let options = RenderOptions {
        current_date: today_utc(),
        add_generation_prompt: true,
        ..Default::default()
    };
    Ok(render_conversation(messages, &options)?)
}

fn parse(decoded: &str) -> HarmonyOutput {
    let mut parser = HarmonyParser::new();
    parser.push(decoded);
    parser.finish()
}

/// `forge chat` for a Harmony model: `/reset` starts over, `/exit` or end
/// of input leaves.
pub fn chat(
    model: &TextModel,
    system: Option<&str>,
    config: &GenerationConfig,
) -> anyhow::Result<()> {
    let start: Vec<ChatMessage> = system
        .map(|s| vec![ChatMessage::Developer(s.to_string())])
        .unwrap_or_default();
    let mut messages = start.clone();
    eprintln!("[forge] chat (Harmony): type a message; /reset starts over, /exit leaves");
    let mut lines = std::io::stdin().lock().lines();
    loop {
        let line = match next_input(&mut lines)? {
            Input::Exit => break,
            Input::Reset => {
                messages = start.clone();
                continue;
            }
            Input::Message(line) => line,
        };
        messages.push(ChatMessage::User(line));
        let ids = model.tokenizer.encode(&render(&messages)?, false)?;
        let reply = textgen::generate(model, &ids, config, |_| {})?;
        let output = parse(&model.tokenizer.decode(&reply.tokens, false)?);
        let answer = output.final_text();
        println!("{answer}");
        messages.push(ChatMessage::Assistant {
            content: answer,
            thinking: None,
            tool_call: None,
        });
    }
    Ok(())
}

/// Prints what the model wrote (decoded with its special tokens).
pub fn print_output(decoded: &str, verbose: bool) {
    let output = parse(decoded);
    if verbose {
        eprintln!("[reasoning]\n{}", output.reasoning());
        for call in output.tool_calls() {
            eprintln!("[tool call] {}({})", call.name, call.arguments);
        }
        if let Some(header) = &output.unfinished_header {
            eprintln!("[unparsed] {header}");
        }
        eprintln!("[final]");
    }
    println!("{}", output.final_text());
}
