//! A `tokenizers` tokenizer rebuilt from GGUF metadata.
//!
//! A GGUF carries no `tokenizer.json`, only llama.cpp's description of the
//! tokenizer: the token strings, their types, the BPE merges, the name of
//! the pre-tokenizer and the special token ids. For byte-level BPE
//! vocabularies (`tokenizer.ggml.model = "gpt2"`, which covers Llama 3,
//! Qwen, SmolLM and most BPE models) this module writes the equivalent
//! `tokenizer.json` and loads it, choosing the pieces the way Hugging Face
//! transformers does when it opens the same GGUF, so both give the same ids:
//!
//! - model: BPE over the vocabulary (tokens outside the byte-level alphabet
//!   respelled through it) with the file's merges;
//! - pre-tokenizer: the pre-tokenizer's split regex when the file names one
//!   that needs its own (llama3 family, qwen2), else GPT-2's byte-level
//!   split; digits then split as the merges allow (SmolLM's have no
//!   multi-digit merges, so numbers come out one digit per token);
//! - added tokens: control tokens (type 3) as special tokens, user-defined
//!   tokens (type 4) as plain added tokens, both matched whole;
//! - a BOS token prepended only when `tokenizer.ggml.add_bos_token` says so.

use serde_json::{json, Map, Value};

use super::header::GgufHeader;
use crate::chat_template::ChatTemplate;
use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// Token type ids llama.cpp writes in `tokenizer.ggml.token_type`.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// The Llama 3 split (tiktoken's cl100k pattern): numbers in runs of up to three digits.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The Qwen2 split: like Llama 3's, but one digit per piece.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex a pre-tokenizer name calls for; `None` means GPT-2's.
fn split_regex(pre: &str) -> Option<&'static str> {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "falcon3" | "dbrx" => {
            Some(LLAMA3_SPLIT)
        }
        "qwen2" | "deepseek-r1-qwen" => Some(QWEN2_SPLIT),
        _ => None,
    }
}

/// Builds the tokenizer (with its special tokens and chat template) that
/// the GGUF's metadata describes.
pub fn tokenizer_from_gguf(header: &GgufHeader) -> Result<Tokenizer> {
    let model = header.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(header.error(format!(
            "tokenizer.ggml.model: expected \"gpt2\" (byte-level BPE), found {model:?}; \
             SentencePiece and other GGUF tokenizers are not supported yet"
        )));
    }
    let tokens = header
        .strings("tokenizer.ggml.tokens")?
        .ok_or_else(|| header.error("metadata key `tokenizer.ggml.tokens` is missing"))?;
    let merges = header
        .strings("tokenizer.ggml.merges")?
        .ok_or_else(|| header.error("metadata key `tokenizer.ggml.merges` is missing"))?;
    let types = header
        .ints("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    let pre = header
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.as_str())
        .unwrap_or("default");

    let alphabet = ByteAlphabet::new();
    let mut vocab = Map::new();
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(alphabet.spell(token), json!(id));
    }
    let mut merge_pairs = Vec::with_capacity(merges.len());
    for merge in &merges {
        let (a, b) = merge
            .split_once(' ')
            .ok_or_else(|| header.error(format!("merge {merge:?} is not two tokens")))?;
        merge_pairs.push(json!([a, b]));
    }

    let mut added = Vec::new();
    for (id, (token, kind)) in tokens.iter().zip(&types).enumerate() {
        let special = match *kind {
            TOKEN_TYPE_CONTROL if alphabet.spells(token) => true,
            TOKEN_TYPE_USER_DEFINED => false,
            _ => continue,
        };
        added.push(json!({
            "id": id, "content": token, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": special,
        }));
    }

    let token_at = |key: &str| -> Option<String> {
        let id = header.get(key)?.as_u64()?;
        tokens.get(id as usize).map(|t| t.to_string())
    };
    let bos_token = token_at("tokenizer.ggml.bos_token_id");
    let add_bos = matches!(
        header.get("tokenizer.ggml.add_bos_token"),
        Some(super::header::MetaValue::Bool(true))
    );

    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre),
        "post_processor": post_processor(add_bos, bos_token.as_deref(), header)?,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": Value::Object(vocab), "merges": merge_pairs,
        },
    });
    let inner: tokenizers::Tokenizer = json
        .to_string()
        .parse()
        .map_err(|e| header.error(format!("the tokenizer it describes does not build: {e}")))?;

    let mut tokenizer = Tokenizer::from_parts(inner, header.path.clone());
    tokenizer.eos_token = token_at("tokenizer.ggml.eos_token_id");
    tokenizer.pad_token = token_at("tokenizer.ggml.padding_token_id");
    tokenizer.bos_token = bos_token;
    if let Some(source) = header
        .get("tokenizer.chat_template")
        .and_then(|v| v.as_str())
    {
        tokenizer.chat_template = Some(ChatTemplate::new(
            source.to_string(),
            tokenizer.bos_token.clone(),
            tokenizer.eos_token.clone(),
        )?);
    }
    Ok(tokenizer)
}

fn pre_tokenizer(pre: &str) -> Value {
    match split_regex(pre) {
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
        Some(regex) => json!({
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
            ],
        }),
    }
}

fn post_processor(add_bos: bool, bos: Option<&str>, header: &GgufHeader) -> Result<Value> {
    if !add_bos {
        return Ok(Value::Null);
    }
    let bos = bos.ok_or_else(|| {
        header.error("tokenizer.ggml.add_bos_token is true but no bos_token_id is given")
    })?;
    let id = header.uint("tokenizer.ggml.bos_token_id")?;
    Ok(json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [id], "tokens": [bos]}},
    }))
}

/// GPT-2's byte-level alphabet: one printable character per byte value.
struct ByteAlphabet {
    chars: [char; 256],
}

impl ByteAlphabet {
    fn new() -> Self {
        let mut chars = ['\0'; 256];
        let mut next = 256u32;
        for (byte, slot) in chars.iter_mut().enumerate() {
            let printable = matches!(byte, 33..=126 | 161..=172 | 174..=255);
            let code = if printable {
                byte as u32
            } else {
                next += 1;
                next - 1
            };
            *slot = char::from_u32(code).unwrap_or('\u{fffd}');
        }
        ByteAlphabet { chars }
    }

    /// True when every character of `token` is in the alphabet: the 188
    /// printable bytes as themselves, the other 68 as U+0100..=U+0143.
    fn spells(&self, token: &str) -> bool {
        token
            .chars()
            .all(|c| matches!(c as u32, 33..=126 | 161..=172 | 174..=0x143))
    }

    /// `token` as the vocabulary must hold it: unchanged when already in
    /// the alphabet, else its UTF-8 bytes spelled through it.
    fn spell(&self, token: &str) -> String {
        if self.spells(token) {
            token.to_string()
        } else {
            token.bytes().map(|b| self.chars[b as usize]).collect()
        }
    }
}
