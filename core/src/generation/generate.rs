//! Token generation: prefill in chunks, then a decode loop that queues the
//! next forward pass (MLX async eval) before the current token is handed
//! out; logits processors and a sampler ([`GenerationConfig`]); EOS ids,
//! `max_new_tokens` and stop strings end it; a streaming detokenizer turns
//! tokens into text.
//!
//! Three levels: [`TokenGenerator`] (tokens and log-probabilities),
//! [`stream_generate`] (text pieces with statistics and a finish reason),
//! [`generate`] (the whole text).

use std::time::{Duration, Instant};

use mlx_rs::{ops, transforms, Array, Dtype};

use crate::cache::KvCache;
use crate::error::{Error, Result};
use crate::generation::detokenizer::{StopStrings, StreamingDetokenizer};
use crate::generation::generation_config::GenerationConfig;
use crate::generation::logits_processors::LogitsProcessor;
use crate::generation::prompt_cache::{cache_for, quantize_for};
use crate::generation::sampler::TokenSampler;
use crate::model::{ForwardOptions, Model, ModelInput};
use crate::tokenizer::Tokenizer;

/// Runs `tokens` (one sequence) through the model in chunks of at most
/// `chunk` positions, filling `cache`, and returns the logits of every
/// position, `[1, T, vocab]`.
pub fn prefill(
    model: &dyn Model,
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
    chunk: usize,
) -> Result<Array> {
    non_empty(tokens)?;
    let mut pieces = Vec::new();
    let mut done = 0;
    for piece in tokens.chunks(chunk.max(1)) {
        let (logits, restarted) = forward_after(model, &tokens[..done], piece, cache)?;
        logits.eval()?;
        if restarted {
            // The pass covered every position so far.
            pieces.clear();
        }
        pieces.push(logits);
        done += piece.len();
    }
    Ok(ops::concatenate(&pieces, 1)?)
}

fn non_empty(tokens: &[u32]) -> Result<()> {
    if tokens.is_empty() {
        return Err(empty_prompt());
    }
    Ok(())
}

fn empty_prompt() -> Error {
    Error::InvalidInput {
        expected: "a prompt of at least one token".into(),
        found: "an empty prompt".into(),
    }
}

/// One forward pass over `tokens` through the cache: `[1, T, vocab]` logits.
/// For loops that cannot run the sequence again, a model that asks for a
/// restart here ([`Model::restart_before`]) is refused.
pub(crate) fn forward_logits(
    model: &dyn Model,
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
) -> Result<Array> {
    let cached = cache.first().map_or(0, |c| c.offset());
    refuse_restart(model, cached, tokens.len())?;
    run_forward(model, tokens, cache)
}

/// An error when the model would recompute its sequence before `new`
/// positions after `cached` ([`Model::restart_before`]), for loops (batch,
/// beam, speculative) that cannot do that yet.
pub(crate) fn refuse_restart(model: &dyn Model, cached: usize, new: usize) -> Result<()> {
    if model.restart_before(cached, new) {
        return Err(Error::InvalidInput {
            expected: "a model that keeps its cache (batch, beam and speculative generation \
                       cannot recompute the sequence)"
                .into(),
            found: format!(
                "a model that recomputes every key at this step ({cached} cached, {new} new \
                 positions: Phi-3's LongRoPE switching to its long factors, as HF's generate \
                 does); use single-sequence generation"
            ),
        });
    }
    Ok(())
}

fn run_forward(model: &dyn Model, tokens: &[u32], cache: &mut [Box<dyn KvCache>]) -> Result<Array> {
    check_context(model, cache, tokens.len())?;
    let out = model.forward(
        &ModelInput::Tokens(token_array(tokens)),
        Some(cache),
        &ForwardOptions::default(),
    )?;
    out.logits.ok_or_else(|| Error::InvalidInput {
        expected: "a causal LM (logits)".into(),
        found: "a model without logits".into(),
    })
}

/// One forward pass over `tokens`, which follow `history` (already in the
/// cache). When the model asks for a restart ([`Model::restart_before`]),
/// the cache is emptied and `history` and `tokens` run in one pass, as HF's
/// generate recomputes them. Returns the logits of the positions computed,
/// `[1, n, vocab]`, and whether it restarted.
pub(crate) fn forward_after(
    model: &dyn Model,
    history: &[u32],
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
) -> Result<(Array, bool)> {
    let cached = cache.first().map_or(0, |c| c.offset());
    if !model.restart_before(cached, tokens.len()) {
        return Ok((run_forward(model, tokens, cache)?, false));
    }
    if history.len() != cached {
        return Err(Error::InvalidInput {
            expected: format!(
                "the {cached} tokens already in the cache, to run them again (the model \
                 recomputes its keys once the sequence passes that length)"
            ),
            found: format!("{} known tokens (a cache made elsewhere)", history.len()),
        });
    }
    for (entry, fresh) in cache.iter_mut().zip(model.new_cache()) {
        *entry = fresh;
    }
    let all = [history, tokens].concat();
    Ok((run_forward(model, &all, cache)?, true))
}

/// Greedy decoding: exactly `max_new_tokens` new tokens after `prompt`
/// (end-of-sequence tokens do not stop it), through the cache.
pub fn greedy(
    model: &dyn Model,
    prompt: &[u32],
    max_new_tokens: usize,
    prefill_chunk: usize,
) -> Result<Vec<u32>> {
    let mut cache = model.new_cache();
    let logits = prefill(model, prompt, &mut cache, prefill_chunk)?;
    let mut next = last_argmax(&logits)?;
    let mut seen = prompt.to_vec();
    let mut out = Vec::with_capacity(max_new_tokens);
    for step in 0..max_new_tokens {
        out.push(next);
        if step + 1 == max_new_tokens {
            break;
        }
        let (logits, _) = forward_after(model, &seen, &[next], &mut cache)?;
        seen.push(next);
        next = last_argmax(&logits)?;
    }
    Ok(out)
}

/// `[1, len]` int32 token ids.
pub fn token_array(tokens: &[u32]) -> Array {
    let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    Array::from_slice(&ids, &[1, ids.len() as i32])
}

/// The argmax of the last position of `[1, T, vocab]` logits.
fn last_argmax(logits: &Array) -> Result<u32> {
    let id = ops::indexing::argmax_axis(last_row(logits)?, -1, false)?;
    id.eval()?;
    Ok(id.as_slice::<u32>().first().copied().unwrap_or(0))
}

pub(crate) fn check_context(
    model: &dyn Model,
    cache: &[Box<dyn KvCache>],
    new: usize,
) -> Result<()> {
    let used = cache.first().map_or(0, |c| c.offset());
    if let Some(max) = model.max_context() {
        if used + new > max {
            return Err(Error::InvalidInput {
                expected: format!("at most {max} positions (the model's context)"),
                found: format!("{} positions ({used} cached + {new} new)", used + new),
            });
        }
    }
    Ok(())
}

/// Runs `tokens` through the model in chunks of at most `chunk` positions,
/// filling `cache`, and returns the logits of the last position, `[vocab]`
/// (not yet evaluated).
pub(crate) fn prefill_last(
    model: &dyn Model,
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
    chunk: usize,
) -> Result<Array> {
    let config = GenerationConfig {
        prefill_step_size: chunk,
        ..Default::default()
    };
    prefill_quantized(model, tokens, cache, &config)
}

/// [`prefill_last`] in chunks of `config.prefill_step_size`, quantizing the
/// KV cache as `config` asks after each pass (mlx-lm's
/// `maybe_quantize_kv_cache`).
fn prefill_quantized(
    model: &dyn Model,
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
    config: &GenerationConfig,
) -> Result<Array> {
    let pieces: Vec<&[u32]> = tokens.chunks(config.prefill_step_size.max(1)).collect();
    let Some((last, rest)) = pieces.split_last() else {
        return Err(empty_prompt());
    };
    let mut done = 0;
    for piece in rest {
        forward_after(model, &tokens[..done], piece, cache)?;
        done += piece.len();
        quantize_for(cache, config)?;
        // Evaluating the cache frees each chunk's activations before the next.
        let state: Vec<Array> = cache.iter().flat_map(|c| c.state()).collect();
        transforms::eval(&state)?;
    }
    let (logits, _) = forward_after(model, &tokens[..done], last, cache)?;
    quantize_for(cache, config)?;
    last_row(&logits)
}

/// Runs prompt embeddings `[1, T, hidden]` through the model in chunks of
/// at most `chunk` positions, filling `cache`; the logits of the last
/// position, `[vocab]` (not yet evaluated).
fn prefill_embeddings(
    model: &dyn Model,
    embeddings: &Array,
    cache: &mut [Box<dyn KvCache>],
    chunk: usize,
) -> Result<Array> {
    let t = embeddings.dim(1);
    let step = chunk.max(1) as i32;
    let cuts: Vec<i32> = (step..t).step_by(step as usize).collect();
    let pieces = embeddings.split_at_indices(&cuts, 1)?;
    let mut last = None;
    for piece in &pieces {
        check_context(model, cache, piece.dim(1) as usize)?;
        let out = model.forward(
            &ModelInput::Embeddings(piece.clone()),
            Some(cache),
            &ForwardOptions::default(),
        )?;
        let state: Vec<Array> = cache.iter().flat_map(|c| c.state()).collect();
        transforms::eval(&state)?;
        last = out.logits;
    }
    let logits = last.ok_or_else(empty_prompt)?;
    last_row(&logits)
}

/// The last position of `[1, T, vocab]` logits, as `[vocab]`.
fn last_row(logits: &Array) -> Result<Array> {
    let t = logits.dim(1);
    let parts = logits.split_at_indices(&[t - 1], 1)?;
    let last = parts.last().ok_or_else(|| Error::InvalidInput {
        expected: "logits with at least one position".into(),
        found: format!("shape {:?}", logits.shape()),
    })?;
    Ok(last.reshape(&[-1])?)
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An EOS id or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

impl FinishReason {
    /// "stop" or "length", as mlx-lm and OpenAI spell them.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One generated token.
#[derive(Debug, Clone)]
pub struct GeneratedToken {
    /// The token id.
    pub token: u32,
    /// Log-probabilities over the vocabulary after the logits processors
    /// (before the warpers).
    pub logprobs: Vec<f32>,
    /// Set on the last token: an EOS id ("stop") or the length limit.
    pub finish_reason: Option<FinishReason>,
    /// True when a draft model proposed this token and the model accepted
    /// it (speculative decoding, see [`crate::generation::speculative`]).
    pub from_draft: bool,
}

/// Where a [`TextStream`] gets its tokens: [`TokenGenerator`], or
/// [`crate::generation::speculative::SpeculativeGenerator`] with a draft model.
pub trait TokenSource {
    /// The next token, or `None` once generation has finished.
    fn next_token(&mut self) -> Result<Option<GeneratedToken>>;

    /// Prompt then generated tokens.
    fn tokens(&self) -> &[u32];

    /// Number of prompt tokens.
    fn prompt_len(&self) -> usize;

    /// How long the prefill took.
    fn prompt_time(&self) -> Duration;

    /// Proposals a draft model made and the model accepted (`None`
    /// without a draft model).
    fn draft_stats(&self) -> Option<crate::generation::speculative::DraftStats> {
        None
    }
}

impl TokenSource for TokenGenerator<'_> {
    fn next_token(&mut self) -> Result<Option<GeneratedToken>> {
        TokenGenerator::next_token(self)
    }

    fn tokens(&self) -> &[u32] {
        TokenGenerator::tokens(self)
    }

    fn prompt_len(&self) -> usize {
        TokenGenerator::prompt_len(self)
    }

    fn prompt_time(&self) -> Duration {
        TokenGenerator::prompt_time(self)
    }
}

/// Generates tokens one at a time for one sequence. While the caller works
/// on a token, the forward pass for the next one is already running.
pub struct TokenGenerator<'m> {
    model: &'m dyn Model,
    cache: Vec<Box<dyn KvCache>>,
    processors: Vec<Box<dyn LogitsProcessor>>,
    sampler: TokenSampler,
    tokens: Vec<u32>,
    prompt_len: usize,
    max_new_tokens: usize,
    eos: Vec<u32>,
    pending: Option<Array>,
    prompt_time: Duration,
    config: GenerationConfig,
}

impl<'m> TokenGenerator<'m> {
    /// Prefills `prompt` (in chunks of `config.prefill_step_size`) and queues
    /// the first step. Invalid settings are refused before any work.
    pub fn new(model: &'m dyn Model, prompt: &[u32], config: &GenerationConfig) -> Result<Self> {
        let cache = cache_for(model, config)?;
        Self::with_cache(model, cache, prompt, config)
    }

    /// Like [`TokenGenerator::new`] with a cache that may already hold a
    /// prefix of the conversation; `prompt` holds only the new tokens.
    pub fn with_cache(
        model: &'m dyn Model,
        cache: Vec<Box<dyn KvCache>>,
        prompt: &[u32],
        config: &GenerationConfig,
    ) -> Result<Self> {
        Self::start(model, cache, prompt, None, config)
    }

    /// Like [`TokenGenerator::new`] for a vision-language model: the
    /// features of `pixel_values` replace the prompt's image placeholder
    /// tokens ([`Model::embed_with_images`]); the prefill runs over those
    /// embeddings, in chunks that never recompute the image features.
    pub fn with_images(
        model: &'m dyn Model,
        prompt: &[u32],
        pixel_values: &Array,
        config: &GenerationConfig,
    ) -> Result<Self> {
        let cache = cache_for(model, config)?;
        Self::start(model, cache, prompt, Some(pixel_values), config)
    }

    fn start(
        model: &'m dyn Model,
        mut cache: Vec<Box<dyn KvCache>>,
        prompt: &[u32],
        images: Option<&Array>,
        config: &GenerationConfig,
    ) -> Result<Self> {
        config.validate()?;
        if config.num_beams > 1 {
            return Err(Error::InvalidInput {
                expected: "num_beams 1 for token-by-token generation (beam search is \
                           forge_core::generation::beam::beam_search)"
                    .into(),
                found: format!("num_beams {}", config.num_beams),
            });
        }
        let vocab = model.vocab_size();
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidInput {
                expected: format!("prompt token ids below the vocabulary size {vocab}"),
                found: bad.to_string(),
            });
        }
        let processors = config.processors(prompt.len())?;
        let sampler = config.sampler()?;
        let start = Instant::now();
        let logits = match images {
            None => prefill_quantized(model, prompt, &mut cache, config)?,
            Some(pixels) => {
                let embeddings = model.embed_with_images(&token_array(prompt), pixels)?;
                let logits =
                    prefill_embeddings(model, &embeddings, &mut cache, config.prefill_step_size)?;
                quantize_for(&mut cache, config)?;
                logits
            }
        };
        logits.eval()?;
        Ok(TokenGenerator {
            model,
            cache,
            processors,
            sampler,
            tokens: prompt.to_vec(),
            prompt_len: prompt.len(),
            max_new_tokens: config.max_new_tokens,
            eos: config.eos_token_id.clone(),
            pending: (config.max_new_tokens > 0).then_some(logits),
            prompt_time: start.elapsed(),
            config: config.clone(),
        })
    }

    /// How long the prefill took.
    pub fn prompt_time(&self) -> Duration {
        self.prompt_time
    }

    /// Number of prompt tokens.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    /// Prompt then generated tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The cache (e.g. to save it as a prompt cache).
    pub fn cache(&self) -> &[Box<dyn KvCache>] {
        &self.cache
    }

    /// The next token, or `None` once generation has finished.
    pub fn next_token(&mut self) -> Result<Option<GeneratedToken>> {
        let Some(logits) = self.pending.take() else {
            return Ok(None);
        };
        let mut scores = to_host(&logits)?;
        for processor in &mut self.processors {
            processor.process(&self.tokens, &mut scores)?;
        }
        let logprobs = log_softmax(&scores);
        let token = self.sampler.pick(&self.tokens, &mut scores)?;
        self.tokens.push(token);
        let generated = self.tokens.len() - self.prompt_len;
        let finish_reason = if self.eos.contains(&token) {
            Some(FinishReason::Stop)
        } else if generated >= self.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        };
        if finish_reason.is_none() {
            // Queue the next step before handing this token out.
            let history = &self.tokens[..self.tokens.len() - 1];
            let (next, _) = forward_after(self.model, history, &[token], &mut self.cache)?;
            let next = last_row(&next)?;
            quantize_for(&mut self.cache, &self.config)?;
            transforms::async_eval([&next])?;
            self.pending = Some(next);
        }
        Ok(Some(GeneratedToken {
            token,
            logprobs,
            finish_reason,
            from_draft: false,
        }))
    }
}

impl Iterator for TokenGenerator<'_> {
    type Item = Result<GeneratedToken>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_token().transpose()
    }
}

/// Logits as f32 on the host, row-major.
pub(crate) fn to_host(logits: &Array) -> Result<Vec<f32>> {
    let row = logits.as_dtype(Dtype::Float32)?;
    row.eval()?;
    Ok(row.as_slice::<f32>().to_vec())
}

/// log(softmax(scores)), in f32 (−∞ stays −∞).
pub fn log_softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return scores.to_vec();
    }
    let total: f64 = scores.iter().map(|&s| ((s - max) as f64).exp()).sum();
    let log_total = total.ln() as f32 + max;
    scores.iter().map(|&s| s - log_total).collect()
}

/// One step of [`stream_generate`]: the new text and the running statistics.
#[derive(Debug, Clone)]
pub struct GenerationResponse {
    /// Text settled by this step (may be empty: half a character, or the
    /// possible start of a stop string, is held back).
    pub text: String,
    /// The token of this step.
    pub token: u32,
    /// Log-probabilities over the vocabulary for this step.
    pub logprobs: Vec<f32>,
    /// Number of prompt tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens per second (prefill).
    pub prompt_tps: f64,
    /// Tokens generated so far.
    pub generation_tokens: usize,
    /// Generated tokens per second since the prefill ended.
    pub generation_tps: f64,
    /// Peak memory MLX has used, in GB.
    pub peak_memory: f64,
    /// Set on the last response.
    pub finish_reason: Option<FinishReason>,
    /// True when the token came from the draft model (speculative decoding).
    pub from_draft: bool,
}

/// Streams text from a prompt of token ids: one [`GenerationResponse`] per
/// generated token. Stop strings end the stream and are never part of the
/// text; an EOS token ends it without adding text.
///
/// A stop string ends generation on the token that completes it, as HF's
/// `stop_strings` does; HF keeps that token's text in its output, the
/// stream hands out the text only up to where the stop string begins.
pub struct TextStream<'m, 't> {
    generator: Box<dyn TokenSource + 'm>,
    detokenizer: StreamingDetokenizer<'t>,
    stops: StopStrings,
    emitted: usize,
    started: Instant,
    finished: bool,
}

/// Starts streaming generation (see [`TextStream`]).
pub fn stream_generate<'m, 't>(
    model: &'m dyn Model,
    tokenizer: &'t Tokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<TextStream<'m, 't>> {
    let generator = TokenGenerator::new(model, prompt, config)?;
    Ok(TextStream::new(Box::new(generator), tokenizer, config))
}

/// [`stream_generate`] for a vision-language model, with the images of the
/// prompt (see [`TokenGenerator::with_images`]).
pub fn stream_generate_with_images<'m, 't>(
    model: &'m dyn Model,
    tokenizer: &'t Tokenizer,
    prompt: &[u32],
    pixel_values: &Array,
    config: &GenerationConfig,
) -> Result<TextStream<'m, 't>> {
    let generator = TokenGenerator::with_images(model, prompt, pixel_values, config)?;
    Ok(TextStream::new(Box::new(generator), tokenizer, config))
}

/// Generates the whole text for a prompt of token ids.
pub fn generate(
    model: &dyn Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<String> {
    let mut text = String::new();
    for response in stream_generate(model, tokenizer, prompt, config)? {
        text.push_str(&response?.text);
    }
    Ok(text)
}

impl<'m, 't> TextStream<'m, 't> {
    /// Streams the text of the tokens `generator` makes, with the stop
    /// strings of `config`.
    pub fn new(
        generator: Box<dyn TokenSource + 'm>,
        tokenizer: &'t Tokenizer,
        config: &GenerationConfig,
    ) -> Self {
        TextStream {
            generator,
            detokenizer: StreamingDetokenizer::new(tokenizer),
            stops: StopStrings::new(&config.stop_strings),
            emitted: 0,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Proposals the draft model made and the model accepted so far
    /// (`None` without a draft model).
    pub fn draft_stats(&self) -> Option<crate::generation::speculative::DraftStats> {
        self.generator.draft_stats()
    }

    /// The next response, or `None` when generation has finished.
    pub fn next_response(&mut self) -> Result<Option<GenerationResponse>> {
        if self.finished {
            return Ok(None);
        }
        let Some(step) = self.generator.next_token()? else {
            self.finished = true;
            return Ok(None);
        };
        let mut finish_reason = step.finish_reason;
        let is_eos = finish_reason == Some(FinishReason::Stop);
        if !is_eos {
            self.detokenizer.push(step.token)?;
        }
        let text = self.detokenizer.text();
        let end = if let Some(at) = self.stops.find(text) {
            finish_reason = Some(FinishReason::Stop);
            at
        } else if finish_reason.is_some() {
            text.len()
        } else {
            self.stops
                .safe_len(text)
                .min(self.detokenizer.settled_len())
        };
        let piece = text
            .get(self.emitted.min(end)..end)
            .unwrap_or_default()
            .to_string();
        self.emitted = self.emitted.max(end);
        self.finished = finish_reason.is_some();
        let generation_tokens = self.generator.tokens().len() - self.generator.prompt_len();
        let prompt_tokens = self.generator.prompt_len();
        Ok(Some(GenerationResponse {
            text: piece,
            token: step.token,
            logprobs: step.logprobs,
            prompt_tokens,
            prompt_tps: per_second(prompt_tokens, self.generator.prompt_time()),
            generation_tokens,
            generation_tps: per_second(generation_tokens, self.started.elapsed()),
            peak_memory: mlx_rs::memory::peak_memory().unwrap_or(0) as f64 / 1e9,
            finish_reason,
            from_draft: step.from_draft,
        }))
    }
}

impl Iterator for TextStream<'_, '_> {
    type Item = Result<GenerationResponse>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_response().transpose()
    }
}

pub(crate) fn per_second(count: usize, time: Duration) -> f64 {
    let seconds = time.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}
