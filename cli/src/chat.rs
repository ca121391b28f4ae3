//! `forge chat`: a conversation in the terminal through the model's chat
//! template. Each turn renders the whole conversation, generates the reply
//! (streamed) and keeps it for the next turn. `/reset` starts over,
//! `/exit` or end of input leaves.

use std::io::{BufRead, Write};

use anyhow::Context;
use forge_core::chat_template::{ChatTemplate, Message};
use forge_core::registry::PromptFormat;

use forge_core::GenerationConfig;

use crate::textgen::{self, print_flush};
use crate::{draft, Models};

/// Runs the chat loop on stdin / stdout: prompts rendered by the
/// architecture's registered prompt format (gpt-oss: Harmony, each reply
/// read back to its final answer) or else by the tokenizer's chat
/// template (each reply streamed).
pub fn run(models: Models, system: Option<&str>, config: &GenerationConfig) -> anyhow::Result<()> {
    let model = textgen::model_or_default(models.model)?;
    let text_model = textgen::load(&model, models.dtype)?;
    let draft_model = draft::load(models.draft, models.dtype)?;
    let draft_net = draft_model.as_ref().map(|d| d.model.as_ref());
    let prompting = match textgen::prompt_format(&text_model) {
        Some(format) => Prompting::Format(format),
        None => Prompting::Template(
            text_model
                .tokenizer
                .chat_template
                .as_ref()
                .context("this model has no chat template; use `forge generate`")?,
        ),
    };
    let format = prompting.format();
    let start: Vec<Message> = system
        .map(|s| vec![Message::new("system", s)])
        .unwrap_or_default();
    let mut messages = start.clone();
    let through = format.map_or(String::new(), |f| format!(" ({})", f.name));
    eprintln!("[forge] chat{through}: type a message; /reset starts over, /exit leaves");
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
        messages.push(Message::new("user", line));
        let prompt = match prompting {
            Prompting::Format(format) => (format.render)(&messages)?,
            Prompting::Template(template) => {
                template.render(&messages, true, &serde_json::Map::new())?
            }
        };
        let ids = text_model.tokenizer.encode(&prompt, false)?;
        let stream = |text: &str| {
            if format.is_none() {
                print_flush(text)
            }
        };
        let reply = textgen::generate_with_draft(&text_model, draft_net, &ids, config, stream)?;
        let answer = match format {
            Some(format) => {
                let decoded = text_model.tokenizer.decode(&reply.tokens, false)?;
                let answer = (format.parse)(&decoded).answer;
                println!("{answer}");
                answer
            }
            None => {
                // The reply was streamed as it came.
                println!();
                reply.text.trim().to_string()
            }
        };
        messages.push(Message::new("assistant", answer));
    }
    Ok(())
}

/// How a conversation becomes a prompt.
#[derive(Clone, Copy)]
enum Prompting<'a> {
    /// The architecture's registered format (gpt-oss: Harmony).
    Format(&'static PromptFormat),
    /// The tokenizer's chat template.
    Template(&'a ChatTemplate),
}

impl Prompting<'_> {
    /// The registered format, when there is one.
    fn format(self) -> Option<&'static PromptFormat> {
        match self {
            Prompting::Format(format) => Some(format),
            Prompting::Template(_) => None,
        }
    }
}

/// What the user typed at the chat prompt.
pub enum Input {
    /// A message for the model.
    Message(String),
    /// `/reset`: start the conversation over.
    Reset,
    /// `/exit`, `/quit` or the end of input.
    Exit,
}

/// Prints the prompt and reads lines until one is not blank.
pub fn next_input(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<Input> {
    loop {
        print!(">> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next() else {
            return Ok(Input::Exit);
        };
        let line = line?;
        return Ok(match line.trim() {
            "" => continue,
            "/exit" | "/quit" => Input::Exit,
            "/reset" => Input::Reset,
            _ => Input::Message(line),
        });
    }
}
