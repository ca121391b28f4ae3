//! Reading gpt-oss's output stream back into messages.
//!
//! The parser takes decoded text (special tokens included, as
//! `<|channel|>` etc.) in pieces of any size and reports the content of
//! each message as it arrives. It accepts what the model writes after the
//! prompt's `<|start|>assistant` (a header straight away) as well as whole
//! `<|start|>…` messages; the recipient (`to=functions.NAME`) may come
//! before or after `<|channel|>`, the content type as ` json` or
//! `<|constrain|>json`. A message ends at `<|end|>`, `<|call|>`,
//! `<|return|>` or a new `<|start|>`. Output cut off anywhere still parses:
//! the last message is reported as incomplete.

use super::tokens::{ALL, CALL, CHANNEL, CONSTRAIN, END, MESSAGE, RETURN, START};
use super::ToolCall;

/// One message read from the stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedMessage {
    /// `analysis`, `commentary`, `final`, or none given.
    pub channel: Option<String>,
    /// `functions.NAME` (or another tool) when the message is addressed to one.
    pub recipient: Option<String>,
    /// `json` and the like, from ` json` or `<|constrain|>json`.
    pub content_type: Option<String>,
    /// The text between `<|message|>` and the end.
    pub content: String,
    /// The end token (`<|end|>`, `<|call|>`, `<|return|>`); `None` when the
    /// message was cut off or ended by a new `<|start|>`.
    pub end: Option<String>,
}

impl ParsedMessage {
    /// The tool call this message makes, if it is addressed to a tool
    /// (the `functions.` namespace is removed from the name).
    pub fn tool_call(&self) -> Option<ToolCall> {
        let recipient = self.recipient.as_deref()?;
        let name = recipient.strip_prefix("functions.").unwrap_or(recipient);
        Some(ToolCall {
            name: name.to_string(),
            arguments: self.content.clone(),
        })
    }
}

/// A piece of content as it streams in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamDelta {
    /// Reasoning (the analysis channel).
    Reasoning(String),
    /// The answer (the final channel, or a message with no channel).
    Final(String),
    /// Commentary to the user that is not a tool call (e.g. a preamble).
    Commentary(String),
    /// Arguments of a call to the tool `name`.
    ToolArguments {
        /// The tool, without `functions.`.
        name: String,
        /// The new text of the arguments.
        text: String,
    },
}

/// Everything read from a stream, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HarmonyOutput {
    /// Every message, in order.
    pub messages: Vec<ParsedMessage>,
    /// Header text at the end of the stream that never reached `<|message|>`.
    pub unfinished_header: Option<String>,
}

impl HarmonyOutput {
    /// The analysis-channel texts, joined by blank lines.
    pub fn reasoning(&self) -> String {
        self.join(|m| m.channel.as_deref() == Some("analysis") && m.recipient.is_none())
    }

    /// The final answer: final-channel messages (and channel-less ones).
    pub fn final_text(&self) -> String {
        self.join(|m| m.recipient.is_none() && matches!(m.channel.as_deref(), Some("final") | None))
    }

    /// Commentary that is not a tool call.
    pub fn commentary(&self) -> String {
        self.join(|m| m.channel.as_deref() == Some("commentary") && m.recipient.is_none())
    }

    /// Every tool call, in order.
    pub fn tool_calls(&self) -> Vec<ToolCall> {
        self.messages
            .iter()
            .filter_map(ParsedMessage::tool_call)
            .collect()
    }

    fn join(&self, keep: impl Fn(&ParsedMessage) -> bool) -> String {
        let parts: Vec<&str> = self
            .messages
            .iter()
            .filter(|m| keep(m))
            .map(|m| m.content.as_str())
            .collect();
        parts.join("\n\n")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a header (its raw text so far).
    Header(String),
    /// Reading the content of the last message.
    Content,
    /// Between messages, after an end token.
    Between,
}

/// The incremental parser.
#[derive(Debug, Clone)]
pub struct HarmonyParser {
    state: State,
    /// Text not yet consumed: a possible special token cut in half.
    pending: String,
    output: HarmonyOutput,
}

impl Default for HarmonyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl HarmonyParser {
    /// A parser for what follows the prompt's `<|start|>assistant`.
    pub fn new() -> Self {
        HarmonyParser {
            state: State::Header(String::new()),
            pending: String::new(),
            output: HarmonyOutput::default(),
        }
    }

    /// Feeds more text; returns the content that became known.
    pub fn push(&mut self, text: &str) -> Vec<StreamDelta> {
        self.pending.push_str(text);
        let mut deltas = Vec::new();
        loop {
            match self.pending.find("<|") {
                None => {
                    // A trailing "<" may begin a special token: keep it back.
                    let keep = usize::from(self.pending.ends_with('<'));
                    let cut = self.pending.len() - keep;
                    let text = self.pending[..cut].to_string();
                    self.pending = self.pending[cut..].to_string();
                    self.take_text(&text, &mut deltas);
                    break;
                }
                Some(at) => {
                    let before = self.pending[..at].to_string();
                    self.take_text(&before, &mut deltas);
                    let rest = self.pending[at..].to_string();
                    match ALL.iter().find(|t| rest.starts_with(*t)) {
                        Some(token) => {
                            self.pending = rest[token.len()..].to_string();
                            self.take_token(token, &mut deltas);
                        }
                        None if ALL.iter().any(|t| t.starts_with(rest.as_str())) => {
                            // Maybe a special token cut in half: wait for more.
                            self.pending = rest;
                            break;
                        }
                        None => {
                            // "<|" that starts no special token: plain text.
                            self.take_text("<|", &mut deltas);
                            self.pending = rest[2..].to_string();
                        }
                    }
                }
            }
        }
        merge_deltas(deltas)
    }

    /// Ends the stream and returns everything read. A special token cut in
    /// half at the very end is dropped; any other leftover text is kept.
    pub fn finish(mut self) -> HarmonyOutput {
        let rest = std::mem::take(&mut self.pending);
        if !ALL.iter().any(|t| t.starts_with(rest.as_str())) {
            let mut ignored = Vec::new();
            self.take_text(&rest, &mut ignored);
        }
        if let State::Header(header) = &self.state {
            if !header.trim().is_empty() {
                self.output.unfinished_header = Some(header.clone());
            }
        }
        self.output
    }

    /// Everything read so far.
    pub fn output(&self) -> &HarmonyOutput {
        &self.output
    }

    fn take_text(&mut self, text: &str, deltas: &mut Vec<StreamDelta>) {
        if text.is_empty() {
            return;
        }
        match &mut self.state {
            State::Header(header) => header.push_str(text),
            State::Between => {
                // Text after an end token with no <|start|>: a header without it.
                self.state = State::Header(text.to_string());
            }
            State::Content => {
                if let Some(message) = self.output.messages.last_mut() {
                    message.content.push_str(text);
                    deltas.push(delta_for(message, text));
                }
            }
        }
    }

    fn take_token(&mut self, token: &str, deltas: &mut Vec<StreamDelta>) {
        match (&mut self.state, token) {
            (State::Header(header), MESSAGE) => {
                let message = parse_header(header);
                self.output.messages.push(message);
                self.state = State::Content;
            }
            (State::Header(header), CHANNEL | CONSTRAIN) => header.push_str(token),
            (State::Header(_), START) => self.state = State::Header(String::new()),
            (State::Header(header), _) => {
                // An end token inside a header: the header is malformed; keep
                // it readable in the header text and start over after it.
                header.push_str(token);
            }
            (State::Content, END | CALL | RETURN) => {
                if let Some(message) = self.output.messages.last_mut() {
                    message.end = Some(token.to_string());
                }
                self.state = State::Between;
            }
            (State::Content, START) => self.state = State::Header(String::new()),
            (State::Content, _) => self.take_text(token, deltas),
            (State::Between, START) => self.state = State::Header(String::new()),
            (State::Between, CHANNEL | CONSTRAIN) => self.state = State::Header(token.to_string()),
            (State::Between, MESSAGE) => {
                self.output.messages.push(ParsedMessage::default());
                self.state = State::Content;
            }
            (State::Between, _) => {}
        }
    }
}

/// Reads `assistant to=functions.f<|channel|>commentary <|constrain|>json`.
fn parse_header(header: &str) -> ParsedMessage {
    let mut message = ParsedMessage::default();
    let mut segment = "role";
    let mut rest = header;
    loop {
        let next = [CHANNEL, CONSTRAIN]
            .iter()
            .filter_map(|t| rest.find(t).map(|at| (at, *t)))
            .min_by_key(|(at, _)| *at);
        let (text, following) = match next {
            Some((at, token)) => (&rest[..at], Some((at, token))),
            None => (rest, None),
        };
        let mut words = text.split_whitespace();
        if segment == "channel" {
            if let Some(channel) = words.next() {
                message.channel = Some(channel.to_string());
            }
        } else if segment == "constrain" {
            if let Some(content_type) = words.next() {
                message.content_type = Some(content_type.to_string());
            }
        }
        for word in words {
            match word.strip_prefix("to=") {
                Some(recipient) => message.recipient = Some(recipient.to_string()),
                // The author ("assistant") in the first segment; a content type after the channel.
                None if segment == "role" => {}
                None => message.content_type = Some(word.to_string()),
            }
        }
        match following {
            Some((at, token)) => {
                segment = if token == CHANNEL {
                    "channel"
                } else {
                    "constrain"
                };
                rest = &rest[at + token.len()..];
            }
            None => break,
        }
    }
    // A tool's own message ("functions.f to=assistant") is not addressed to a tool.
    if message.recipient.as_deref() == Some("assistant") {
        message.recipient = None;
    }
    message
}

fn delta_for(message: &ParsedMessage, text: &str) -> StreamDelta {
    let text = text.to_string();
    if let Some(call) = message.tool_call() {
        return StreamDelta::ToolArguments {
            name: call.name,
            text,
        };
    }
    match message.channel.as_deref() {
        Some("analysis") => StreamDelta::Reasoning(text),
        Some("commentary") => StreamDelta::Commentary(text),
        _ => StreamDelta::Final(text),
    }
}

/// Joins neighbouring deltas of the same kind.
fn merge_deltas(deltas: Vec<StreamDelta>) -> Vec<StreamDelta> {
    let mut out: Vec<StreamDelta> = Vec::new();
    for delta in deltas {
        let merged = match (out.last_mut(), &delta) {
            (Some(StreamDelta::Reasoning(a)), StreamDelta::Reasoning(b))
            | (Some(StreamDelta::Final(a)), StreamDelta::Final(b))
            | (Some(StreamDelta::Commentary(a)), StreamDelta::Commentary(b)) => {
                a.push_str(b);
                true
            }
            (
                Some(StreamDelta::ToolArguments { name: n1, text: a }),
                StreamDelta::ToolArguments { name: n2, text: b },
            ) if n1 == n2 => {
                a.push_str(b);
                true
            }
            _ => false,
        };
        if !merged {
            out.push(delta);
        }
    }
    out
}
