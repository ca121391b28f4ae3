//! gpt-oss speaks Harmony: `forge generate` renders the prompt as a user
//! turn (with `--system` as developer instructions) and reads the output's
//! channels, printing the final answer and, with `--verbose`, the reasoning
//! and any tool calls on stderr.

use forge_gpt_oss::harmony::{
    render_conversation, today_utc, ChatMessage, HarmonyParser, RenderOptions,
};

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
    let options = RenderOptions {
        current_date: today_utc(),
        add_generation_prompt: true,
        ..Default::default()
    };
    Ok(render_conversation(&messages, &options)?)
}

/// Prints what the model wrote (decoded with its special tokens).
pub fn print_output(decoded: &str, verbose: bool) {
    let mut parser = HarmonyParser::new();
    parser.push(decoded);
    let output = parser.finish();
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
