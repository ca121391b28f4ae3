//! Batched generation: many prompts decoded together.
//!
//! The prompts are left-padded into one batch ([`BatchCache`]), prefilled
//! in chunks of `prefill_step_size` columns, then decoded one column per
//! step for every unfinished row. Each row keeps its own state as if it ran
//! alone: its token history (for the repetition penalty and the other
//! processors), its own sampler seeded with `config.seed` (so a row samples
//! exactly what [`crate::generation::generate::generate`] would on that prompt), its own
//! EOS / `max_new_tokens` / stop-string end. A finished row is dropped from
//! the batch before the next step.
//!
//! Two levels: [`BatchGenerator`] (tokens, logits and log-probabilities per
//! row and step) and [`batch_generate`] (text per prompt, in prompt order,
//! with aggregate statistics).

use std::time::{Duration, Instant};

use mlx_rs::{ops, transforms, Array};

use crate::error::{Error, Result};
use crate::generation::batch_cache::{left_pad, left_pad_to, BatchCache};
use crate::generation::detokenizer::{StopStrings, StreamingDetokenizer};
use crate::generation::generate::{log_softmax, per_second, to_host, FinishReason};
use crate::generation::generation_config::GenerationConfig;
use crate::generation::logits_processors::LogitsProcessor;
use crate::generation::sampler::TokenSampler;
use crate::model::{ForwardOptions, Model, ModelInput};
use crate::tokenizer::Tokenizer;

/// The token id put in padding columns (never attended to).
const PAD: u32 = 0;

/// One row's token of one step.
#[derive(Debug, Clone)]
pub struct BatchToken {
    /// The row (prompt index).
    pub row: usize,
    /// The token id.
    pub token: u32,
    /// The model's logits for this step (before any processor).
    pub logits: Vec<f32>,
    /// Log-probabilities after the logits processors (before the warpers).
    pub logprobs: Vec<f32>,
    /// Set on the row's last token: an EOS id ("stop") or the length limit.
    pub finish_reason: Option<FinishReason>,
}

/// Per-row state: history, processors, sampler, end.
struct Row {
    tokens: Vec<u32>,
    prompt_len: usize,
    processors: Vec<Box<dyn LogitsProcessor>>,
    sampler: TokenSampler,
    finished: bool,
}

impl Row {
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
}

/// Generates tokens for a batch of prompts, one step (a token for every
/// unfinished row) at a time; the forward pass of the next step is queued
/// before a step is handed out.
pub struct BatchGenerator<'m> {
    model: &'m dyn Model,
    cache: BatchCache,
    rows: Vec<Row>,
    /// The unfinished rows, in the order of the cache's rows.
    active: Vec<usize>,
    /// `[active, vocab]` logits of the next step.
    pending: Option<Array>,
    config: GenerationConfig,
    prompt_time: Duration,
}

impl<'m> BatchGenerator<'m> {
    /// Left-pads `prompts`, prefills them together and queues the first
    /// step. Invalid settings, an empty prompt or an id outside the
    /// vocabulary are refused before any work.
    pub fn new(
        model: &'m dyn Model,
        prompts: &[Vec<u32>],
        config: &GenerationConfig,
    ) -> Result<Self> {
        config.validate()?;
        let mut generator = BatchGenerator {
            model,
            cache: BatchCache::new(model.new_cache(), Vec::new()),
            rows: Vec::new(),
            active: Vec::new(),
            pending: None,
            config: config.clone(),
            prompt_time: Duration::ZERO,
        };
        generator.insert(prompts)?;
        Ok(generator)
    }

    /// Adds prompts to the batch while it runs (continuous batching) and
    /// returns their row numbers. They are prefilled left-padded to the
    /// columns the batch already holds, so no new prompt may be longer than
    /// that (an empty batch takes any lengths).
    pub fn insert(&mut self, prompts: &[Vec<u32>]) -> Result<Vec<usize>> {
        check_prompts(self.model, prompts)?;
        let first = self.rows.len();
        for p in prompts {
            self.rows.push(Row {
                tokens: p.clone(),
                prompt_len: p.len(),
                processors: self.config.processors(p.len())?,
                sampler: self.config.sampler()?,
                finished: self.config.max_new_tokens == 0,
            });
        }
        let new_rows: Vec<usize> = (first..self.rows.len()).collect();
        if self.config.max_new_tokens == 0 {
            return Ok(new_rows);
        }
        let start = Instant::now();
        let logits = if self.active.is_empty() {
            let (ids, padding) = left_pad(prompts, PAD);
            self.cache = BatchCache::new(self.model.new_cache(), padding);
            let chunk = self.config.prefill_step_size;
            let logits = prefill(self.model, &ids, prompts.len(), &mut self.cache, chunk)?;
            logits.eval()?;
            logits
        } else {
            let logits = self.prefill_aligned(prompts)?;
            let pending = self.pending.take().into_iter().chain([logits]);
            ops::concatenate(&pending.collect::<Vec<_>>(), 0)?
        };
        self.prompt_time += start.elapsed();
        self.active.extend(&new_rows);
        self.pending = Some(logits);
        Ok(new_rows)
    }

    /// Prefills `prompts` left-padded to the cache's columns in a cache of
    /// their own, joins it to the batch's, and returns their logits.
    fn prefill_aligned(&mut self, prompts: &[Vec<u32>]) -> Result<Array> {
        let width = self.cache.offset();
        if let Some((i, p)) = prompts.iter().enumerate().find(|(_, p)| p.len() > width) {
            return Err(Error::InvalidInput {
                expected: format!(
                    "prompts of at most {width} tokens (the columns the batch holds)"
                ),
                found: format!("prompt {i} of {} tokens", p.len()),
            });
        }
        let (ids, padding) = left_pad_to(prompts, width, PAD);
        let mut cache = BatchCache::new(self.model.new_cache(), padding);
        let chunk = self.config.prefill_step_size;
        let logits = prefill(self.model, &ids, prompts.len(), &mut cache, chunk)?;
        logits.eval()?;
        self.cache.extend(cache)?;
        Ok(logits)
    }

    /// How long the prefill took.
    pub fn prompt_time(&self) -> Duration {
        self.prompt_time
    }

    /// Number of rows (prompts).
    pub fn batch_size(&self) -> usize {
        self.rows.len()
    }

    /// Row `row`'s prompt then generated tokens.
    pub fn tokens(&self, row: usize) -> &[u32] {
        self.rows.get(row).map_or(&[], |r| &r.tokens)
    }

    /// Ends row `row` from outside (e.g. a stop string in its text): it
    /// gets no more tokens and leaves the batch before the next step.
    pub fn finish(&mut self, row: usize) {
        if let Some(r) = self.rows.get_mut(row) {
            r.finished = true;
        }
    }

    /// One token for every unfinished row, in the order of the rows; empty
    /// once every row has finished.
    pub fn step(&mut self) -> Result<Vec<BatchToken>> {
        let Some(logits) = self.pending.take() else {
            return Ok(Vec::new());
        };
        let host = to_host(&logits)?;
        let vocab = host.len() / self.active.len().max(1);
        let mut out = Vec::with_capacity(self.active.len());
        for (i, r) in self.active.clone().into_iter().enumerate() {
            if self.rows[r].finished {
                continue;
            }
            let raw = host[i * vocab..(i + 1) * vocab].to_vec();
            out.push(self.pick(r, raw)?);
        }
        self.advance(&out)?;
        Ok(out)
    }

    /// Runs row `r`'s processors and sampler over its logits.
    fn pick(&mut self, r: usize, logits: Vec<f32>) -> Result<BatchToken> {
        let row = &mut self.rows[r];
        let mut scores = logits.clone();
        for processor in &mut row.processors {
            processor.process(&row.tokens, &mut scores)?;
        }
        let logprobs = log_softmax(&scores);
        let token = row.sampler.pick(&row.tokens, &mut scores)?;
        row.tokens.push(token);
        let finish_reason = if self.config.eos_token_id.contains(&token) {
            Some(FinishReason::Stop)
        } else if row.generated() >= self.config.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        };
        row.finished = finish_reason.is_some();
        Ok(BatchToken {
            row: r,
            token,
            logits,
            logprobs,
            finish_reason,
        })
    }

    /// Drops the finished rows from the cache and queues the next step for
    /// the others.
    fn advance(&mut self, step: &[BatchToken]) -> Result<()> {
        let keep: Vec<usize> = (0..self.active.len())
            .filter(|&i| !self.rows[self.active[i]].finished)
            .collect();
        if keep.is_empty() {
            self.active.clear();
            self.cache.filter(&[])?;
            return Ok(());
        }
        if keep.len() < self.active.len() {
            self.cache.filter(&keep)?;
            self.active = keep.iter().map(|&i| self.active[i]).collect();
        }
        let next: Vec<u32> = self
            .active
            .iter()
            .map(|&r| step.iter().find(|t| t.row == r).map_or(PAD, |t| t.token))
            .collect();
        let logits = forward_last(self.model, &next, self.active.len(), &mut self.cache)?;
        transforms::async_eval([&logits])?;
        self.pending = Some(logits);
        Ok(())
    }
}

fn check_prompts(model: &dyn Model, prompts: &[Vec<u32>]) -> Result<()> {
    if prompts.is_empty() {
        return Err(Error::InvalidInput {
            expected: "at least one prompt".into(),
            found: "no prompts".into(),
        });
    }
    let vocab = model.vocab_size();
    for (i, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            return Err(Error::InvalidInput {
                expected: "prompts of at least one token".into(),
                found: format!("prompt {i} is empty"),
            });
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidInput {
                expected: format!("prompt token ids below the vocabulary size {vocab}"),
                found: format!("{bad} in prompt {i}"),
            });
        }
    }
    Ok(())
}

/// Runs the padded ids (`[batch, W]` row-major) through the model in chunks
/// of at most `chunk` columns; the last column's logits, `[batch, vocab]`.
fn prefill(
    model: &dyn Model,
    ids: &[u32],
    batch: usize,
    cache: &mut BatchCache,
    chunk: usize,
) -> Result<Array> {
    let width = ids.len() / batch.max(1);
    let chunk = chunk.max(1);
    let mut start = 0;
    loop {
        let end = (start + chunk).min(width);
        let piece: Vec<u32> = (0..batch)
            .flat_map(|r| ids[r * width + start..r * width + end].iter().copied())
            .collect();
        let logits = forward_last(model, &piece, batch, cache)?;
        if end == width {
            return Ok(logits);
        }
        // Evaluating the cache frees each chunk's activations before the next.
        let state: Vec<Array> = cache.layers_mut().iter().flat_map(|c| c.state()).collect();
        transforms::eval(&state)?;
        start = end;
    }
}

/// One forward pass over `tokens` (`[batch, T]` row-major) with the
/// cache's padding mask; the last column's logits, `[batch, vocab]`.
fn forward_last(
    model: &dyn Model,
    tokens: &[u32],
    batch: usize,
    cache: &mut BatchCache,
) -> Result<Array> {
    let t = tokens.len() / batch.max(1);
    if let Some(max) = model.max_context() {
        let used = cache.offset();
        if used + t > max {
            return Err(Error::InvalidInput {
                expected: format!("at most {max} positions (the model's context)"),
                found: format!(
                    "{} positions ({used} cached + {t} new, padding included)",
                    used + t
                ),
            });
        }
    }
    let ids: Vec<i32> = tokens.iter().map(|&x| x as i32).collect();
    let input = ModelInput::Tokens(Array::from_slice(&ids, &[batch as i32, t as i32]));
    let options = ForwardOptions {
        attention_mask: cache.mask(t),
        ..Default::default()
    };
    crate::generation::generate::refuse_restart(model, cache.offset(), t)?;
    let out = model.forward(&input, Some(cache.layers_mut()), &options)?;
    let logits = out.logits.ok_or_else(|| Error::InvalidInput {
        expected: "a causal LM (logits)".into(),
        found: "a model without logits".into(),
    })?;
    let last = Array::from_slice(&[t as i32 - 1], &[1]);
    let vocab = logits.dim(-1);
    Ok(logits
        .take_axis(&last, 1)?
        .reshape(&[batch as i32, vocab])?)
}

/// One prompt's result.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    /// The generated text (without a stop string or EOS token).
    pub text: String,
    /// The generated tokens (the EOS token or the one completing a stop
    /// string included).
    pub tokens: Vec<u32>,
    /// Why this row ended.
    pub finish_reason: FinishReason,
    /// Number of prompt tokens.
    pub prompt_tokens: usize,
}

/// Statistics of a whole batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    /// Prompt tokens of every row (padding not counted).
    pub prompt_tokens: usize,
    /// Prompt tokens per second (prefill).
    pub prompt_tps: f64,
    /// Tokens generated over every row.
    pub generation_tokens: usize,
    /// Generated tokens per second since the prefill ended.
    pub generation_tps: f64,
    /// Peak memory MLX has used, in GB.
    pub peak_memory: f64,
}

/// What [`batch_generate`] returns: one result per prompt, in prompt order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResponse {
    /// The results, in the order of the prompts.
    pub results: Vec<BatchResult>,
    /// Aggregate statistics.
    pub stats: BatchStats,
}

/// A row's text so far and where it ends.
struct RowText<'t> {
    detokenizer: StreamingDetokenizer<'t>,
    tokens: Vec<u32>,
    end: Option<(usize, FinishReason)>,
}

/// Generates text for every prompt (token ids) in one batch: results in
/// prompt order, each with its text, tokens and finish reason, and the
/// statistics of the whole batch.
pub fn batch_generate(
    model: &dyn Model,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> Result<BatchResponse> {
    let mut generator = BatchGenerator::new(model, prompts, config)?;
    let stops = StopStrings::new(&config.stop_strings);
    let mut texts: Vec<RowText> = prompts
        .iter()
        .map(|_| RowText {
            detokenizer: StreamingDetokenizer::new(tokenizer),
            tokens: Vec::new(),
            end: None,
        })
        .collect();
    let started = Instant::now();
    loop {
        let step = generator.step()?;
        if step.is_empty() {
            break;
        }
        for t in step {
            let text = &mut texts[t.row];
            text.tokens.push(t.token);
            if t.finish_reason != Some(FinishReason::Stop) {
                text.detokenizer.push(t.token)?;
            }
            if let Some(at) = stops.find(text.detokenizer.text()) {
                text.end = Some((at, FinishReason::Stop));
                generator.finish(t.row);
            } else if let Some(reason) = t.finish_reason {
                text.end = Some((text.detokenizer.text().len(), reason));
            }
        }
    }
    let generation_time = started.elapsed();
    let results: Vec<BatchResult> = texts
        .into_iter()
        .zip(prompts)
        .map(|(t, prompt)| {
            let full = t.detokenizer.text();
            let (end, finish_reason) = t.end.unwrap_or((full.len(), FinishReason::Length));
            BatchResult {
                text: full.get(..end).unwrap_or(full).to_string(),
                tokens: t.tokens,
                finish_reason,
                prompt_tokens: prompt.len(),
            }
        })
        .collect();
    let prompt_tokens = prompts.iter().map(Vec::len).sum();
    let generation_tokens = results.iter().map(|r| r.tokens.len()).sum();
    let stats = BatchStats {
        prompt_tokens,
        prompt_tps: per_second(prompt_tokens, generator.prompt_time()),
        generation_tokens,
        generation_tps: per_second(generation_tokens, generation_time),
        peak_memory: mlx_rs::memory::peak_memory().unwrap_or(0) as f64 / 1e9,
    };
    Ok(BatchResponse { results, stats })
}
