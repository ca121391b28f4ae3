//! Speculative decoding with a draft model.
//!
//! Each step the small draft model proposes up to `num_draft_tokens` tokens
//! greedily (its argmax after the same logits processors); the model then
//! runs once over the last settled token and every proposal, which gives its
//! scores at each proposed position. Going left to right, the model's own
//! choice (the same processors and sampler as plain generation) is taken at
//! each position: while it equals the proposal, the proposal is accepted and
//! the next position is looked at; at the first difference, the model's
//! choice is kept (a "bonus" token) and the rest is thrown away. Both caches
//! are then trimmed back to the accepted tokens ([`KvCache::trim`]).
//!
//! Every token is the model's own choice given the tokens before it, and a
//! sampled draw is made once per token as in plain generation, so greedy
//! output (and seeded sampling) is the same as without a draft; the draft
//! only changes how many tokens one forward pass of the model settles.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mlx_rs::transforms;

use crate::cache::KvCache;
use crate::error::{Error, Result};
use crate::generation::generate::{
    forward_logits, log_softmax, prefill_last, to_host, FinishReason, GeneratedToken, TextStream,
    TokenSource,
};
use crate::generation::generation_config::GenerationConfig;
use crate::generation::logits_processors::LogitsProcessor;
use crate::generation::sampler::{argmax, TokenSampler};
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// How often the model accepted the draft's proposals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DraftStats {
    /// Tokens the draft proposed.
    pub proposed: usize,
    /// Proposals the model accepted.
    pub accepted: usize,
}

impl DraftStats {
    /// accepted / proposed (0 when nothing was proposed).
    pub fn acceptance_rate(&self) -> f64 {
        if self.proposed == 0 {
            0.0
        } else {
            self.accepted as f64 / self.proposed as f64
        }
    }
}

/// Generates tokens for one sequence with a draft model proposing them
/// (see the module documentation).
pub struct SpeculativeGenerator<'m> {
    model: &'m dyn Model,
    draft: &'m dyn Model,
    cache: Vec<Box<dyn KvCache>>,
    draft_cache: Vec<Box<dyn KvCache>>,
    processors: Vec<Box<dyn LogitsProcessor>>,
    draft_processors: Vec<Box<dyn LogitsProcessor>>,
    sampler: TokenSampler,
    tokens: Vec<u32>,
    prompt_len: usize,
    max_new_tokens: usize,
    num_draft_tokens: usize,
    eos: Vec<u32>,
    /// Settled tokens the model has not run yet.
    model_feed: Vec<u32>,
    /// Settled tokens the draft has not run yet.
    draft_feed: Vec<u32>,
    ready: VecDeque<GeneratedToken>,
    finished: bool,
    stats: DraftStats,
    prompt_time: Duration,
}

impl<'m> SpeculativeGenerator<'m> {
    /// Prefills both models with `prompt` (all but its last token, which
    /// the first step runs). The draft must share the model's vocabulary
    /// and both caches must be trimmable; invalid settings are refused
    /// before any work.
    pub fn new(
        model: &'m dyn Model,
        draft: &'m dyn Model,
        prompt: &[u32],
        config: &GenerationConfig,
    ) -> Result<Self> {
        config.validate()?;
        let vocab = model.vocab_size();
        if draft.vocab_size() != vocab {
            return Err(Error::InvalidInput {
                expected: format!("a draft model with the model's vocabulary size {vocab}"),
                found: format!("a draft vocabulary of {}", draft.vocab_size()),
            });
        }
        let Some((&last, head)) = prompt.split_last() else {
            return Err(Error::InvalidInput {
                expected: "a prompt of at least one token".into(),
                found: "an empty prompt".into(),
            });
        };
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidInput {
                expected: format!("prompt token ids below the vocabulary size {vocab}"),
                found: bad.to_string(),
            });
        }
        let mut cache = model.new_cache();
        let mut draft_cache = draft.new_cache();
        check_trimmable(&cache, "model")?;
        check_trimmable(&draft_cache, "draft model")?;
        let start = Instant::now();
        fill(model, head, &mut cache, config.prefill_step_size)?;
        fill(draft, head, &mut draft_cache, config.prefill_step_size)?;
        Ok(SpeculativeGenerator {
            model,
            draft,
            cache,
            draft_cache,
            processors: config.processors(prompt.len())?,
            draft_processors: config.processors(prompt.len())?,
            sampler: config.sampler()?,
            tokens: prompt.to_vec(),
            prompt_len: prompt.len(),
            max_new_tokens: config.max_new_tokens,
            num_draft_tokens: config.num_draft_tokens,
            eos: config.eos_token_id.clone(),
            model_feed: vec![last],
            draft_feed: vec![last],
            ready: VecDeque::new(),
            finished: config.max_new_tokens == 0,
            stats: DraftStats::default(),
            prompt_time: start.elapsed(),
        })
    }

    /// Proposals made and accepted so far.
    pub fn draft_stats(&self) -> DraftStats {
        self.stats
    }

    /// The next token, or `None` once generation has finished.
    pub fn next_token(&mut self) -> Result<Option<GeneratedToken>> {
        if self.ready.is_empty() && !self.finished {
            self.step()?;
        }
        Ok(self.ready.pop_front())
    }

    /// One draft-and-verify step: settles between one and
    /// `num_draft_tokens + 1` tokens into `ready`.
    fn step(&mut self) -> Result<()> {
        let generated = self.tokens.len() - self.prompt_len;
        let remaining = self.max_new_tokens.saturating_sub(generated);
        // The last token of a step always comes from the model, so propose
        // at most one fewer than what is left.
        let k = self.num_draft_tokens.min(remaining.saturating_sub(1));
        let proposals = self.propose(k)?;
        let rows = self.verify(&proposals)?;
        let mut accepted = 0;
        for (i, mut scores) in rows.into_iter().enumerate() {
            for processor in &mut self.processors {
                processor.process(&self.tokens, &mut scores)?;
            }
            let logprobs = log_softmax(&scores);
            let token = self.sampler.pick(&self.tokens, &mut scores)?;
            self.tokens.push(token);
            let from_draft = proposals.get(i) == Some(&token);
            let finish_reason = self.finish_reason(token);
            self.ready.push_back(GeneratedToken {
                token,
                logprobs,
                finish_reason,
                from_draft,
            });
            if finish_reason.is_some() {
                self.finished = true;
                break;
            }
            if !from_draft {
                break;
            }
            accepted += 1;
        }
        self.stats.proposed += k;
        self.stats.accepted += accepted;
        if !self.finished {
            self.rewind(&proposals, accepted)?;
        }
        Ok(())
    }

    fn finish_reason(&self, token: u32) -> Option<FinishReason> {
        if self.eos.contains(&token) {
            Some(FinishReason::Stop)
        } else if self.tokens.len() - self.prompt_len >= self.max_new_tokens {
            Some(FinishReason::Length)
        } else {
            None
        }
    }

    /// `k` greedy proposals of the draft model (the last one is not run
    /// through the draft).
    fn propose(&mut self, k: usize) -> Result<Vec<u32>> {
        let mut proposals = Vec::with_capacity(k);
        let mut history = self.tokens.clone();
        let mut input = self.draft_feed.clone();
        for _ in 0..k {
            let logits = forward_logits(self.draft, &input, &mut self.draft_cache)?;
            let mut scores = to_host(&last_rows(&logits, 1)?)?;
            for processor in &mut self.draft_processors {
                processor.process(&history, &mut scores)?;
            }
            let token = argmax(&scores)?;
            proposals.push(token);
            history.push(token);
            input = vec![token];
        }
        if k > 0 {
            self.draft_feed.clear();
        }
        Ok(proposals)
    }

    /// One forward pass of the model over the unrun settled tokens and the
    /// proposals: the scores of the next token at each of the
    /// `proposals.len() + 1` positions, as host rows.
    fn verify(&mut self, proposals: &[u32]) -> Result<Vec<Vec<f32>>> {
        let mut input = std::mem::take(&mut self.model_feed);
        input.extend_from_slice(proposals);
        let logits = forward_logits(self.model, &input, &mut self.cache)?;
        let vocab = logits.dim(-1).max(1) as usize;
        let rows = to_host(&last_rows(&logits, proposals.len() + 1)?)?;
        Ok(rows.chunks(vocab).map(<[f32]>::to_vec).collect())
    }

    /// Trims both caches back to the settled tokens after `accepted` of
    /// `proposals` were taken, and sets what each model runs next.
    fn rewind(&mut self, proposals: &[u32], accepted: usize) -> Result<()> {
        let k = proposals.len();
        let bonus = *self.tokens.last().ok_or_else(|| Error::InvalidInput {
            expected: "a settled token after a speculative step".into(),
            found: "no tokens".into(),
        })?;
        trim(&mut self.cache, k - accepted, "model")?;
        if k == 0 {
            // The draft did not run this step.
            self.draft_feed.push(bonus);
        } else if accepted == k {
            // The draft never ran its last proposal.
            self.draft_feed = vec![proposals[k - 1], bonus];
        } else {
            trim(&mut self.draft_cache, k - 1 - accepted, "draft model")?;
            self.draft_feed = vec![bonus];
        }
        self.model_feed = vec![bonus];
        Ok(())
    }
}

impl TokenSource for SpeculativeGenerator<'_> {
    fn next_token(&mut self) -> Result<Option<GeneratedToken>> {
        SpeculativeGenerator::next_token(self)
    }

    fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    fn prompt_time(&self) -> Duration {
        self.prompt_time
    }

    fn draft_stats(&self) -> Option<DraftStats> {
        Some(self.stats)
    }
}

impl Iterator for SpeculativeGenerator<'_> {
    type Item = Result<GeneratedToken>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_token().transpose()
    }
}

/// Streams text like [`crate::generation::generate::stream_generate`], with `draft`
/// proposing `config.num_draft_tokens` tokens per step; each response says
/// whether its token came from the draft.
pub fn stream_generate_with_draft<'m, 't>(
    model: &'m dyn Model,
    draft: &'m dyn Model,
    tokenizer: &'t Tokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<TextStream<'m, 't>> {
    let generator = SpeculativeGenerator::new(model, draft, prompt, config)?;
    Ok(TextStream::new(Box::new(generator), tokenizer, config))
}

fn check_trimmable(cache: &[Box<dyn KvCache>], which: &str) -> Result<()> {
    match cache.iter().position(|c| !c.is_trimmable()) {
        Some(layer) => Err(Error::InvalidInput {
            expected: format!(
                "trimmable caches for speculative decoding (the {which}'s cache is cut back \
                 when proposals are rejected)"
            ),
            found: format!("layer {layer} of the {which} has a cache that cannot be trimmed"),
        }),
        None => Ok(()),
    }
}

fn trim(cache: &mut [Box<dyn KvCache>], n: usize, which: &str) -> Result<()> {
    for (layer, c) in cache.iter_mut().enumerate() {
        let dropped = c.trim(n);
        if dropped != n {
            return Err(Error::InvalidInput {
                expected: format!("the {which}'s cache to drop {n} rejected positions"),
                found: format!("layer {layer} dropped {dropped}"),
            });
        }
    }
    Ok(())
}

/// Runs `tokens` (possibly none) through `model`, filling `cache`.
fn fill(
    model: &dyn Model,
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
    chunk: usize,
) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    prefill_last(model, tokens, cache, chunk)?;
    let state: Vec<_> = cache.iter().flat_map(|c| c.state()).collect();
    transforms::eval(&state)?;
    Ok(())
}

/// The last `n` positions of `[1, T, vocab]` logits, as `[n, vocab]`.
fn last_rows(logits: &mlx_rs::Array, n: usize) -> Result<mlx_rs::Array> {
    let t = logits.dim(1);
    let n = n as i32;
    if n > t {
        return Err(Error::InvalidInput {
            expected: format!("logits with at least {n} positions"),
            found: format!("shape {:?}", logits.shape()),
        });
    }
    let parts = logits.split_at_indices(&[t - n], 1)?;
    let last = parts.last().ok_or_else(|| Error::InvalidInput {
        expected: "logits with at least one position".into(),
        found: format!("shape {:?}", logits.shape()),
    })?;
    Ok(last.reshape(&[n, -1])?)
}
