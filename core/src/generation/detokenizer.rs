//! Turning a growing list of tokens into text that can be handed out piece
//! by piece: never half a UTF-8 character, never part of a stop string.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// Decodes the tokens generated so far and tells which text is settled.
///
/// The whole sequence is decoded at each step (tokenizers' decoders strip
/// or merge at token boundaries, so decoding token by token and joining is
/// not the same text); a trailing U+FFFD, the mark of a UTF-8 character
/// whose bytes have not all arrived, is held back until they do.
pub struct StreamingDetokenizer<'t> {
    tokenizer: &'t Tokenizer,
    tokens: Vec<u32>,
    text: String,
}

impl<'t> StreamingDetokenizer<'t> {
    /// An empty stream.
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        StreamingDetokenizer {
            tokenizer,
            tokens: Vec::new(),
            text: String::new(),
        }
    }

    /// Adds a token and decodes again.
    pub fn push(&mut self, token: u32) -> Result<()> {
        self.tokens.push(token);
        self.text = self.tokenizer.decode(&self.tokens, true)?;
        Ok(())
    }

    /// All the text so far, including an incomplete last character.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The length in bytes of the text that will not change: everything but
    /// trailing replacement characters.
    pub fn settled_len(&self) -> usize {
        self.text.trim_end_matches('\u{FFFD}').len()
    }
}

/// Stop strings: generation ends when the text contains one; the text from
/// its start on is never handed out.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
}

impl StopStrings {
    /// The stop strings (each non-empty; [`crate::GenerationConfig::validate`] checks).
    pub fn new(stops: &[String]) -> Self {
        StopStrings {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
        }
    }

    /// The byte offset where the earliest stop string begins in `text`, if any.
    pub fn find(&self, text: &str) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
    }

    /// How much of `text` (bytes, on a character boundary) can be handed out
    /// without giving away the start of a stop string that more tokens may
    /// complete: the text minus its longest suffix that begins a stop string.
    pub fn safe_len(&self, text: &str) -> usize {
        let mut keep = text.len();
        for stop in &self.stops {
            for (i, _) in text.char_indices().rev().take(stop.chars().count()) {
                let suffix = &text[i..];
                if suffix.len() < stop.len() && stop.starts_with(suffix) {
                    keep = keep.min(i);
                }
            }
        }
        keep
    }
}
