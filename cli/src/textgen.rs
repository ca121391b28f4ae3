//! Text in, streamed text out: what `forge generate` and `forge chat` share.
//! Loading with a progress indicator, the default model, a small decode
//! loop (prefill, sample, stop at an end-of-sequence token or the token
//! budget) and a streaming detokenizer that never prints half a UTF-8
//! character.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use forge_core::generate::prefill;
use forge_core::mlx_rs::ops::indexing::TryIndexOp;
use forge_core::mlx_rs::{ops, Dtype};
use forge_core::models::DEFAULT_MODEL;
use forge_core::sampler::sampler_for;
use forge_core::tokenizer::Tokenizer;
use forge_core::LoadedModel;

/// Prompt tokens run through the model per forward pass.
const PREFILL_STEP: usize = 512;

/// A loaded model with its tokenizer.
pub struct TextModel {
    /// The model and what was learned loading it.
    pub loaded: LoadedModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Token ids that end a reply.
    pub eos_ids: Vec<u32>,
}

/// The model path `--model` names, or the default model when it is absent.
pub fn model_or_default(model: Option<&str>) -> anyhow::Result<String> {
    match model {
        Some(m) => Ok(m.to_string()),
        None => {
            let path = DEFAULT_MODEL
                .locate()
                .context("no --model given and the default model is not fetched")?;
            Ok(path.to_string_lossy().into_owned())
        }
    }
}

/// Loads a model (weights in `dtype`, see `forge inspect --dtype`) and its
/// tokenizer, showing progress on stderr.
pub fn load(model: &str, dtype: &str) -> anyhow::Result<TextModel> {
    let started = Instant::now();
    let spinner = Spinner::start(format!("loading {model}"));
    let loaded = crate::inspect::load_with_dtype(model, dtype).map(|(loaded, _)| loaded);
    spinner.stop();
    let loaded = loaded.with_context(|| format!("loading {model}"))?;
    let tokenizer = loaded.tokenizer()?;
    let mut eos_ids: Vec<u32> = tokenizer
        .eos_token
        .iter()
        .filter_map(|t| tokenizer.token_id(t))
        .collect();
    if let Some(ids) = loaded.config.json().get("eos_token_id") {
        let more: Vec<u32> = match ids {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            v => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        };
        for id in more {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
    }
    eprintln!(
        "[forge] loaded {} ({}, {} layers) in {:.2}s",
        model,
        loaded.architecture.model_type,
        loaded.model.num_layers(),
        started.elapsed().as_secs_f64()
    );
    Ok(TextModel {
        loaded,
        tokenizer,
        eos_ids,
    })
}

/// How to sample.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Most new tokens.
    pub max_tokens: usize,
    /// 0 is greedy.
    pub temperature: f32,
    /// Random seed for sampling.
    pub seed: u64,
}

/// What a generation produced.
pub struct Generated {
    /// The new tokens.
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    /// "stop" (an end-of-sequence token) or "length" (the budget ran out).
    pub finish_reason: &'static str,
    /// Prompt tokens per second.
    pub prompt_tps: f64,
    /// Generated tokens per second.
    pub generation_tps: f64,
}

/// Generates after `prompt` (token ids), calling `on_text` with each new
/// piece of text as soon as it is whole.
pub fn generate(
    model: &TextModel,
    prompt: &[u32],
    sampling: Sampling,
    mut on_text: impl FnMut(&str),
) -> anyhow::Result<Generated> {
    let net = model.loaded.model.as_ref();
    let mut sampler = sampler_for(sampling.temperature, sampling.seed)?;
    let mut cache = net.new_cache();
    let started = Instant::now();
    let mut logits = prefill(net, prompt, &mut cache, PREFILL_STEP)?;
    let prompt_time = started.elapsed().as_secs_f64();
    let decode_started = Instant::now();
    let mut detok = StreamingText::default();
    let mut tokens = Vec::new();
    let mut finish_reason = "length";
    while tokens.len() < sampling.max_tokens {
        let last = logits.try_index((.., -1, ..))?;
        let next = ops::reshape(sampler.sample(&last)?, &[-1])?.as_dtype(Dtype::Int32)?;
        next.eval()?;
        let token = next.as_slice::<i32>().first().copied().unwrap_or(0) as u32;
        if model.eos_ids.contains(&token) {
            finish_reason = "stop";
            break;
        }
        tokens.push(token);
        let piece = detok.push(&model.tokenizer, &tokens)?;
        if !piece.is_empty() {
            on_text(&piece);
        }
        if tokens.len() < sampling.max_tokens {
            logits = prefill(net, &[token], &mut cache, 1)?;
        }
    }
    let rest = detok.finish(&model.tokenizer, &tokens)?;
    if !rest.is_empty() {
        on_text(&rest);
    }
    let decode_time = decode_started.elapsed().as_secs_f64();
    Ok(Generated {
        text: model.tokenizer.decode(&tokens, true)?,
        tokens,
        finish_reason,
        prompt_tps: prompt.len() as f64 / prompt_time.max(1e-9),
        generation_tps: detok.count as f64 / decode_time.max(1e-9),
    })
}

/// Turns a growing token list into text increments: decodes everything so
/// far and hands out what was not handed out yet, holding back a trailing
/// U+FFFD (a UTF-8 character whose bytes have not all arrived).
#[derive(Default)]
pub struct StreamingText {
    printed: usize,
    count: usize,
}

impl StreamingText {
    /// The new text after `tokens` grew by one.
    pub fn push(&mut self, tokenizer: &Tokenizer, tokens: &[u32]) -> anyhow::Result<String> {
        self.count = tokens.len();
        let text = tokenizer.decode(tokens, true)?;
        if text.ends_with('\u{fffd}') {
            return Ok(String::new());
        }
        Ok(self.take(text))
    }

    /// Whatever is left at the end (a held-back character included).
    pub fn finish(&mut self, tokenizer: &Tokenizer, tokens: &[u32]) -> anyhow::Result<String> {
        let text = tokenizer.decode(tokens, true)?;
        Ok(self.take(text))
    }

    fn take(&mut self, text: String) -> String {
        let new = text.get(self.printed..).unwrap_or("").to_string();
        self.printed = text.len().max(self.printed);
        new
    }
}

/// Prints a piece of text at once.
pub fn print_flush(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// A spinner on stderr while something slow runs (only on a terminal).
struct Spinner {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start(label: String) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        if !std::io::stderr().is_terminal() {
            eprintln!("[forge] {label} ...");
            return Spinner {
                running,
                thread: None,
            };
        }
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            let frames = ['|', '/', '-', '\\'];
            let started = Instant::now();
            let mut i = 0;
            while flag.load(Ordering::Relaxed) {
                eprint!(
                    "\r[forge] {label} {} {:.1}s",
                    frames[i % frames.len()],
                    started.elapsed().as_secs_f64()
                );
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
        });
        Spinner {
            running,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
