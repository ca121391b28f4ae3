//! Beam search with Hugging Face `generate(num_beams=...)` rules.
//!
//! The search keeps `num_beams` running beams. At each step every running
//! beam's next-token log-probabilities (log-softmax of the logits, then the
//! logits processors of [`GenerationConfig::processors`], as HF applies them
//! in beam search) are added to the beam's running score, and the best
//! `K = max(2, 1 + number of EOS ids) × num_beams` continuations over all
//! beams are taken, best first. Then, as in transformers 5.23's
//! `_beam_search`:
//! - a continuation "hits a stop" when its last token is an EOS id or the
//!   sequence reaches `prompt + max_new_tokens` tokens;
//! - the next running beams are the best `num_beams` continuations that do
//!   not hit a stop;
//! - a continuation that hits a stop and is among the first `num_beams` of
//!   the K becomes a finished hypothesis with score
//!   `sum of log-probs / new_tokens ^ length_penalty` (new tokens count the
//!   EOS), and the `num_beams` best hypotheses are kept;
//! - the search ends when every continuation hits a stop (max length), when
//!   `early_stopping` is `true` and `num_beams` hypotheses are finished, or
//!   when no running beam can still beat the worst kept hypothesis: its
//!   score divided by `length ^ length_penalty`, where `length` is the new
//!   tokens so far (`early_stopping` false, or "never" with
//!   `length_penalty` ≤ 0) or `max_new_tokens` ("never" with
//!   `length_penalty` > 0), is not above it.
//!
//! Scores and the −1e9 "impossible" marks are f32, as in HF, so the same
//! sequences come out. The returned hypotheses are HF's `sequences` and
//! `sequences_scores`.

use mlx_rs::{transforms, Array};
use serde::Deserialize;

use crate::cache::KvCache;
use crate::error::{Error, Result};
use crate::generation::generate::{check_context, log_softmax, to_host, FinishReason};
use crate::generation::generation_config::GenerationConfig;
use crate::generation::logits_processors::LogitsProcessor;
use crate::model::{ForwardOptions, Model, ModelInput};

/// HF's mark for "cannot be chosen": added to scores, in f32.
const IMPOSSIBLE: f32 = -1.0e9;

/// HF's `early_stopping`: when beam search may end before max length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "EarlyStoppingValue")]
pub enum EarlyStopping {
    /// `false` (HF's default): stop when no running beam, scored at its
    /// current length, can beat the worst finished hypothesis.
    #[default]
    Heuristic,
    /// `true`: stop as soon as `num_beams` hypotheses are finished.
    WhenFull,
    /// `"never"`: like `false`, but with `length_penalty` > 0 a running beam
    /// is scored at the longest possible length.
    Never,
}

/// The JSON forms of [`EarlyStopping`]: `true`, `false` or `"never"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum EarlyStoppingValue {
    Flag(bool),
    Word(String),
}

impl TryFrom<EarlyStoppingValue> for EarlyStopping {
    type Error = String;

    fn try_from(value: EarlyStoppingValue) -> std::result::Result<Self, String> {
        match value {
            EarlyStoppingValue::Flag(true) => Ok(EarlyStopping::WhenFull),
            EarlyStoppingValue::Flag(false) => Ok(EarlyStopping::Heuristic),
            EarlyStoppingValue::Word(w) if w == "never" => Ok(EarlyStopping::Never),
            EarlyStoppingValue::Word(w) => Err(format!(
                "early_stopping: expected true, false or \"never\", found \"{w}\""
            )),
        }
    }
}

impl std::str::FromStr for EarlyStopping {
    type Err = Error;

    /// `true`, `false` or `never` (as on the command line).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "true" => Ok(EarlyStopping::WhenFull),
            "false" => Ok(EarlyStopping::Heuristic),
            "never" => Ok(EarlyStopping::Never),
            other => Err(Error::InvalidInput {
                expected: "early_stopping: true, false or never".into(),
                found: other.into(),
            }),
        }
    }
}

/// A running beam: the whole sequence (prompt, then new tokens) and its
/// summed log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Beam {
    /// Prompt then generated tokens.
    pub tokens: Vec<u32>,
    /// Sum of the new tokens' (processed) log-probabilities.
    pub score: f32,
}

/// A kept slot of the finished list: HF's `sequences` / `beam_scores` /
/// `is_sent_finished` row.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSlot {
    /// Prompt then generated tokens.
    pub tokens: Vec<u32>,
    /// Length-normalised score (−1e9 while the slot is empty).
    pub score: f32,
    /// True once the slot holds a finished hypothesis.
    pub done: bool,
}

/// One returned hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamHypothesis {
    /// The generated tokens (the EOS included when it ended on one).
    pub tokens: Vec<u32>,
    /// HF's `sequences_scores`: sum of log-probs / new_tokens ^ length_penalty.
    pub score: f32,
    /// "stop" when the last token is an EOS id, else "length".
    pub finish_reason: FinishReason,
}

/// The bookkeeping of one beam search, apart from any model: feed it the
/// processed log-probabilities of every running beam with [`BeamSearch::step`].
#[derive(Debug, Clone)]
pub struct BeamSearch {
    num_beams: usize,
    keep: usize,
    length_penalty: f32,
    early_stopping: EarlyStopping,
    eos: Vec<u32>,
    prompt_len: usize,
    max_length: usize,
    running: Vec<Beam>,
    finished: Vec<FinishedSlot>,
    improvable: bool,
    done: bool,
}

/// One continuation of a running beam.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    parent: usize,
    token: u32,
}

fn bad_config(expected: &str, found: impl ToString) -> Error {
    Error::InvalidInput {
        expected: expected.into(),
        found: found.to_string(),
    }
}

impl BeamSearch {
    /// A search after `prompt` with `config`'s beam settings, EOS ids and
    /// `max_new_tokens` (≥ 1).
    pub fn new(prompt: &[u32], config: &GenerationConfig) -> Result<Self> {
        config.validate()?;
        if prompt.is_empty() {
            return Err(bad_config(
                "a prompt of at least one token",
                "an empty prompt",
            ));
        }
        if config.max_new_tokens == 0 {
            return Err(bad_config("beam search: max_new_tokens ≥ 1", 0));
        }
        let n = config.num_beams;
        let mut running = vec![
            Beam {
                tokens: prompt.to_vec(),
                score: IMPOSSIBLE,
            };
            n
        ];
        running[0].score = 0.0;
        let finished = vec![
            FinishedSlot {
                tokens: prompt.to_vec(),
                score: IMPOSSIBLE,
                done: false,
            };
            n
        ];
        Ok(BeamSearch {
            num_beams: n,
            keep: 2.max(1 + config.eos_token_id.len()) * n,
            length_penalty: config.length_penalty,
            early_stopping: config.early_stopping,
            eos: config.eos_token_id.clone(),
            prompt_len: prompt.len(),
            max_length: prompt.len() + config.max_new_tokens,
            running,
            finished,
            improvable: true,
            done: false,
        })
    }

    /// The running beams, best first (before the first step: the prompt
    /// `num_beams` times, only the first with score 0).
    pub fn running(&self) -> &[Beam] {
        &self.running
    }

    /// The finished slots, best first.
    pub fn finished(&self) -> &[FinishedSlot] {
        &self.finished
    }

    /// True once the search has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// How many continuations each step keeps (HF's `beams_to_keep`).
    pub fn candidates_per_step(&self) -> usize {
        self.keep
    }

    /// One step: `log_probs[b]` are running beam `b`'s processed
    /// log-probabilities over the vocabulary. Returns, for each new running
    /// beam, the index of the old running beam it extends (reorder the
    /// caches' batch rows by it).
    pub fn step(&mut self, log_probs: &[Vec<f32>]) -> Result<Vec<usize>> {
        if self.done {
            return Err(bad_config(
                "a beam search that has not ended",
                "a finished one",
            ));
        }
        let vocab = log_probs.first().map_or(0, Vec::len);
        if log_probs.len() != self.num_beams || log_probs.iter().any(|r| r.len() != vocab) {
            return Err(bad_config(
                &format!(
                    "{} rows of log-probabilities of equal length",
                    self.num_beams
                ),
                format!("{} rows", log_probs.len()),
            ));
        }
        if vocab * self.num_beams < self.keep {
            return Err(bad_config(
                &format!(
                    "a vocabulary of at least {} tokens",
                    self.keep / self.num_beams
                ),
                vocab,
            ));
        }
        let top = self.top_candidates(log_probs, vocab);
        let cur_len = self.running[0].tokens.len();
        let hits: Vec<bool> = top
            .iter()
            .map(|c| cur_len + 1 >= self.max_length || self.eos.contains(&c.token))
            .collect();
        let extend = |c: &Candidate| -> Vec<u32> {
            let mut tokens = self.running[c.parent].tokens.clone();
            tokens.push(c.token);
            tokens
        };
        // The next running beams: the best continuations that go on.
        let mut order: Vec<usize> = (0..top.len()).collect();
        let running_score = |i: usize| top[i].score + if hits[i] { IMPOSSIBLE } else { 0.0 };
        order.sort_by(|&a, &b| running_score(b).total_cmp(&running_score(a)));
        order.truncate(self.num_beams);
        let next: Vec<Beam> = order
            .iter()
            .map(|&i| Beam {
                tokens: extend(&top[i]),
                score: running_score(i),
            })
            .collect();
        let parents = order.iter().map(|&i| top[i].parent).collect();
        // The finished list: the best of the kept slots and the new hypotheses.
        let denom =
            ((cur_len + 1 - self.prompt_len) as f64).powf(self.length_penalty as f64) as f32;
        let full = self.early_stopping == EarlyStopping::WhenFull && self.all_done();
        let mut merged = std::mem::take(&mut self.finished);
        for (i, c) in top.iter().enumerate() {
            let just_finished = hits[i] && i < self.num_beams;
            let mut score = c.score / denom;
            if full {
                score += IMPOSSIBLE;
            }
            if !self.improvable {
                score += IMPOSSIBLE;
            }
            if !just_finished {
                score += IMPOSSIBLE;
            }
            merged.push(FinishedSlot {
                tokens: extend(c),
                score,
                done: just_finished,
            });
        }
        merged.sort_by(|a, b| b.score.total_cmp(&a.score));
        merged.truncate(self.num_beams);
        self.finished = merged;
        self.running = next;
        self.improvable &= self.can_improve();
        let stop_when_full = self.early_stopping == EarlyStopping::WhenFull && self.all_done();
        self.done = !self.improvable || stop_when_full || hits.iter().all(|&h| h);
        Ok(parents)
    }

    /// The best `keep` continuations over all beams, best first (ties: the
    /// lower beam, then the lower token).
    fn top_candidates(&self, log_probs: &[Vec<f32>], vocab: usize) -> Vec<Candidate> {
        let mut all: Vec<Candidate> = log_probs
            .iter()
            .zip(&self.running)
            .enumerate()
            .flat_map(|(parent, (row, beam))| {
                row.iter().enumerate().map(move |(token, &lp)| Candidate {
                    score: lp + beam.score,
                    parent,
                    token: token as u32,
                })
            })
            .collect();
        let key = |c: &Candidate| c.parent * vocab + c.token as usize;
        let cmp = |a: &Candidate, b: &Candidate| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| key(a).cmp(&key(b)))
        };
        if all.len() > self.keep {
            all.select_nth_unstable_by(self.keep - 1, cmp);
            all.truncate(self.keep);
        }
        all.sort_by(cmp);
        all
    }

    fn all_done(&self) -> bool {
        self.finished.iter().all(|s| s.done)
    }

    /// HF's early-stop heuristic: can the best running beam still beat a
    /// kept hypothesis?
    fn can_improve(&self) -> bool {
        let generated = self.running[0].tokens.len() - self.prompt_len;
        let length = if self.early_stopping == EarlyStopping::Never && self.length_penalty > 0.0 {
            self.max_length - self.prompt_len
        } else {
            generated
        };
        let best = self.running[0].score / (length as f64).powf(self.length_penalty as f64) as f32;
        let worst = self
            .finished
            .iter()
            .map(|s| s.score)
            .fold(f32::INFINITY, f32::min);
        self.finished
            .iter()
            .any(|s| best > if s.done { worst } else { IMPOSSIBLE })
    }

    /// The `n` best kept hypotheses (HF's `sequences[:n]`, `sequences_scores[:n]`).
    pub fn hypotheses(&self, n: usize) -> Vec<BeamHypothesis> {
        self.finished
            .iter()
            .take(n)
            .map(|slot| {
                let tokens = slot.tokens[self.prompt_len.min(slot.tokens.len())..].to_vec();
                let stopped = tokens.last().is_some_and(|t| self.eos.contains(t));
                BeamHypothesis {
                    tokens,
                    score: slot.score,
                    finish_reason: if stopped {
                        FinishReason::Stop
                    } else {
                        FinishReason::Length
                    },
                }
            })
            .collect()
    }
}

/// What [`beam_search`] returns.
#[derive(Debug, Clone)]
pub struct BeamSearchOutput {
    /// `num_return_sequences` hypotheses, best first.
    pub hypotheses: Vec<BeamHypothesis>,
    /// Number of prompt tokens.
    pub prompt_tokens: usize,
    /// Number of decoding steps run.
    pub steps: usize,
}

/// Keeps batch rows `rows` (in that order; a row may repeat) of every
/// layer's cache: beam search moves each beam's keys and values along with
/// the beam.
pub fn select_cache_rows(cache: &mut [Box<dyn KvCache>], rows: &[u32]) -> Result<()> {
    let index = Array::from_slice(rows, &[rows.len() as i32]);
    for layer in cache.iter_mut() {
        layer.select_rows(&index)?;
    }
    Ok(())
}

/// Beam search after `prompt` with `config` (num_beams, length_penalty,
/// early_stopping, num_return_sequences, max_new_tokens, EOS ids and the
/// logits processors). The prompt is prefilled once; its cache is copied to
/// every beam.
pub fn beam_search(
    model: &dyn Model,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<BeamSearchOutput> {
    let mut outputs = beam_search_batch(model, &[prompt.to_vec()], config)?;
    outputs
        .pop()
        .ok_or_else(|| bad_config("one beam search result", "none"))
}

/// Beam search after each of `prompts` at once: the prompts are left-padded
/// into one batch (an attention mask hides the padding), each gets
/// `num_beams` rows, and each prompt's search runs as [`beam_search`] would
/// run it alone (its processors see the prompt without padding). Results
/// come in the order of `prompts`.
pub fn beam_search_batch(
    model: &dyn Model,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> Result<Vec<BeamSearchOutput>> {
    if prompts.is_empty() {
        return Err(bad_config("at least one prompt", "none"));
    }
    let vocab = model.vocab_size();
    let mut searches = Vec::with_capacity(prompts.len());
    let mut processors = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(bad_config(
                &format!("prompt token ids below the vocabulary size {vocab}"),
                bad,
            ));
        }
        searches.push(BeamSearch::new(prompt, config)?);
        processors.push(config.processors(prompt.len())?);
    }
    let n = config.num_beams;
    let mut batch = PaddedBatch::new(prompts);
    let mut cache = model.new_cache();
    let first = batch.prefill(model, &mut cache, config.prefill_step_size)?;
    // Every prompt's cache row and logits go to each of its beams.
    let rows: Vec<u32> = (0..prompts.len() as u32)
        .flat_map(|i| std::iter::repeat_n(i, n))
        .collect();
    select_cache_rows(&mut cache, &rows)?;
    batch.select_rows(&rows);
    let mut logits: Vec<Vec<f32>> = rows.iter().map(|&r| first[r as usize].clone()).collect();
    let mut steps = 0;
    loop {
        let mut moved = Vec::with_capacity(rows.len());
        for (i, (search, procs)) in searches.iter_mut().zip(&mut processors).enumerate() {
            let base = (i * n) as u32;
            if search.is_done() {
                moved.extend(base..base + n as u32);
                continue;
            }
            let own = &logits[i * n..(i + 1) * n];
            let parents = search.step(&processed(own, search.running(), procs)?)?;
            moved.extend(parents.iter().map(|&p| base + p as u32));
        }
        steps += 1;
        if searches.iter().all(BeamSearch::is_done) {
            break;
        }
        if moved.iter().enumerate().any(|(i, &r)| r as usize != i) {
            select_cache_rows(&mut cache, &moved)?;
            batch.select_rows(&moved);
        }
        let last: Vec<u32> = searches
            .iter()
            .flat_map(|s| s.running().iter())
            .map(|b| b.tokens.last().copied().unwrap_or(0))
            .collect();
        logits = batch.decode_step(model, &last, &mut cache)?;
    }
    Ok(searches
        .iter()
        .zip(prompts)
        .map(|(search, prompt)| BeamSearchOutput {
            hypotheses: search.hypotheses(config.num_return_sequences),
            prompt_tokens: prompt.len(),
            steps,
        })
        .collect())
}

/// Each running beam's log-softmax scores after the logits processors.
fn processed(
    logits: &[Vec<f32>],
    beams: &[Beam],
    processors: &mut [Box<dyn LogitsProcessor>],
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(beams.len());
    for (row, beam) in logits.iter().zip(beams) {
        let mut lp = log_softmax(row);
        for p in processors.iter_mut() {
            p.process(&beam.tokens, &mut lp)?;
        }
        out.push(lp);
    }
    Ok(out)
}

/// The rows of a left-padded batch: which positions are real (the
/// attention mask), kept in step with the cache's rows.
struct PaddedBatch {
    prompts: Vec<Vec<u32>>,
    width: usize,
    /// Per row, 1 for a real position and 0 for padding; `None` when no row
    /// has padding (every mask would be all ones).
    mask: Option<Vec<Vec<i32>>>,
}

impl PaddedBatch {
    fn new(prompts: &[Vec<u32>]) -> Self {
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let padded = prompts.iter().any(|p| p.len() < width);
        let mask = padded.then(|| {
            prompts
                .iter()
                .map(|p| {
                    let mut row = vec![0; width - p.len()];
                    row.resize(width, 1);
                    row
                })
                .collect()
        });
        PaddedBatch {
            prompts: prompts.to_vec(),
            width,
            mask,
        }
    }

    /// The mask of the first `len` positions, `[rows, len]`.
    fn mask_array(&self, len: usize) -> Option<Array> {
        self.mask.as_ref().map(|rows| {
            let flat: Vec<i32> = rows.iter().flat_map(|r| r[..len].iter().copied()).collect();
            Array::from_slice(&flat, &[rows.len() as i32, len as i32])
        })
    }

    /// Runs the left-padded prompts in chunks of `chunk` positions and
    /// returns each prompt's last-position logits.
    fn prefill(
        &self,
        model: &dyn Model,
        cache: &mut [Box<dyn KvCache>],
        chunk: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let chunk = chunk.max(1);
        let rows = self.prompts.len();
        let mut tail = None;
        for start in (0..self.width).step_by(chunk) {
            let end = (start + chunk).min(self.width);
            let ids: Vec<i32> = self
                .prompts
                .iter()
                .flat_map(|p| {
                    let pad = self.width - p.len();
                    (start..end).map(move |k| if k < pad { 0 } else { p[k - pad] as i32 })
                })
                .collect();
            let ids = Array::from_slice(&ids, &[rows as i32, (end - start) as i32]);
            let logits = forward(model, ids, self.mask_array(end), cache)?;
            // The last position, `[rows, vocab]` (a gather: contiguous for the host).
            tail = Some(logits.take_axis(Array::from_int(logits.dim(1) - 1), 1)?);
            let state: Vec<Array> = cache.iter().flat_map(|c| c.state()).collect();
            transforms::eval(&state)?;
        }
        let tail =
            tail.ok_or_else(|| bad_config("a prompt of at least one token", "an empty prompt"))?;
        let vocab = (tail.dim(-1) as usize).max(1);
        Ok(to_host(&tail)?.chunks(vocab).map(<[f32]>::to_vec).collect())
    }

    /// Keeps rows `rows` of the mask (as the cache's rows were).
    fn select_rows(&mut self, rows: &[u32]) {
        if let Some(mask) = &mut self.mask {
            *mask = rows.iter().map(|&r| mask[r as usize].clone()).collect();
        }
    }

    /// One new token per row: each row's logits.
    fn decode_step(
        &mut self,
        model: &dyn Model,
        tokens: &[u32],
        cache: &mut [Box<dyn KvCache>],
    ) -> Result<Vec<Vec<f32>>> {
        if let Some(mask) = &mut self.mask {
            mask.iter_mut().for_each(|row| row.push(1));
        }
        let total = cache.first().map_or(0, |c| c.offset()) + 1;
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let ids = Array::from_slice(&ids, &[ids.len() as i32, 1]);
        let logits = forward(model, ids, self.mask_array(total), cache)?;
        let all = to_host(&logits)?;
        let vocab = (logits.dim(-1) as usize).max(1);
        Ok(all.chunks(vocab).map(<[f32]>::to_vec).collect())
    }
}

/// One forward pass of `ids` (`[rows, T]`) through the cache: `[rows, T, vocab]`.
fn forward(
    model: &dyn Model,
    ids: Array,
    mask: Option<Array>,
    cache: &mut [Box<dyn KvCache>],
) -> Result<Array> {
    check_context(model, cache, ids.dim(1) as usize)?;
    let cached = cache.first().map_or(0, |c| c.offset());
    crate::generation::generate::refuse_restart(model, cached, ids.dim(1) as usize)?;
    let options = ForwardOptions {
        attention_mask: mask,
        ..ForwardOptions::default()
    };
    let out = model.forward(&ModelInput::Tokens(ids), Some(cache), &options)?;
    out.logits
        .ok_or_else(|| bad_config("a causal LM (logits)", "a model without logits"))
}
