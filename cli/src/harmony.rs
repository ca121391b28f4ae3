//! gpt-oss speaks Harmony: `forge generate` renders the prompt as a user
//! turn and reads the output's channels, printing the final answer (and,
//! with `--verbose`, the reasoning and any tool calls on stderr).

use forge_gpt_oss::harmony::{user_prompt, HarmonyParser, ReasoningEffort};

/// True for architectures whose prompts and outputs are Harmony.
pub fn speaks_harmony(model_type: &str) -> bool {
    model_type == "gpt_oss"
}

/// The rendered prompt for one user message.
pub fn prompt(text: &str) -> String {
    user_prompt(text, ReasoningEffort::default())
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
