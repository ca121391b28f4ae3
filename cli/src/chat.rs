//! `forge chat`: a conversation in the terminal through the model's chat
//! template. Each turn renders the whole conversation, generates the reply
//! (streamed) and keeps it for the next turn. `/reset` starts over,
//! `/exit` or end of input leaves.

use std::io::{BufRead, Write};

use anyhow::Context;
use forge_core::chat_template::Message;

use forge_core::GenerationConfig;

use crate::textgen::{self, print_flush};

/// Runs the chat loop on stdin / stdout.
pub fn run(
    model: Option<&str>,
    dtype: &str,
    system: Option<&str>,
    config: &GenerationConfig,
) -> anyhow::Result<()> {
    let model = textgen::model_or_default(model)?;
    let text_model = textgen::load(&model, dtype)?;
    let template = text_model
        .tokenizer
        .chat_template
        .as_ref()
        .context("this model has no chat template; use `forge generate`")?;
    let start: Vec<Message> = system
        .map(|s| vec![Message::new("system", s)])
        .unwrap_or_default();
    let mut messages = start.clone();
    eprintln!("[forge] chat: type a message; /reset starts over, /exit leaves");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!(">> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages = start.clone();
                continue;
            }
            _ => {}
        }
        messages.push(Message::new("user", line));
        let prompt = template.render(&messages, true, &serde_json::Map::new())?;
        let ids = text_model.tokenizer.encode(&prompt, false)?;
        let reply = textgen::generate(&text_model, &ids, config, print_flush)?;
        println!();
        messages.push(Message::new("assistant", reply.text.trim()));
    }
    Ok(())
}
