//! Logits processors: rules that change the next-token scores of one
//! sequence before a token is chosen, with Hugging Face GenerationConfig
//! names and meaning.
//!
//! Each processor sees the whole sequence so far (prompt, then generated
//! tokens: HF's `input_ids` row) and one row of scores (logits over the
//! vocabulary), and edits the scores in place. They run on the host, in f32,
//! in the order [`crate::generation::generation_config::GenerationConfig::processors`]
//! documents (HF's order).

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};

/// Changes the next-token scores of one sequence.
pub trait LogitsProcessor: Send {
    /// Edits `scores` (one value per vocabulary entry) given `tokens`, the
    /// sequence so far (prompt then generated tokens).
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()>;

    /// The HF GenerationConfig name of the rule (for reports and errors).
    fn name(&self) -> &'static str;
}

/// Fails when a configured token id lies outside the vocabulary.
pub(crate) fn check_ids<'a>(
    what: &str,
    ids: impl IntoIterator<Item = &'a u32>,
    vocab: usize,
) -> Result<()> {
    let bad: Vec<u32> = ids
        .into_iter()
        .copied()
        .filter(|&t| t as usize >= vocab)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            expected: format!("{what}: token ids below the vocabulary size {vocab}"),
            found: format!("{bad:?}"),
        })
    }
}

fn invalid(expected: String, found: impl ToString) -> Error {
    Error::InvalidInput {
        expected,
        found: found.to_string(),
    }
}

/// `repetition_penalty` (CTRL): the score of every token already in the
/// sequence is divided by the penalty when positive, multiplied when
/// negative. 1.0 does nothing; above 1 discourages repeats.
#[derive(Debug, Clone)]
pub struct RepetitionPenalty {
    penalty: f32,
}

impl RepetitionPenalty {
    /// A penalty > 0.
    pub fn new(penalty: f32) -> Result<Self> {
        if !(penalty > 0.0 && penalty.is_finite()) {
            return Err(invalid("repetition_penalty > 0".into(), penalty));
        }
        Ok(RepetitionPenalty { penalty })
    }
}

impl LogitsProcessor for RepetitionPenalty {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let seen: HashSet<usize> = tokens.iter().map(|&t| t as usize).collect();
        for t in seen {
            if let Some(s) = scores.get_mut(t) {
                *s = if *s < 0.0 {
                    *s * self.penalty
                } else {
                    *s / self.penalty
                };
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "repetition_penalty"
    }
}

/// `presence_penalty` and `frequency_penalty` (OpenAI's meaning, as in
/// mlx-lm): each token already in the sequence loses `presence` once plus
/// `frequency` for every time it occurs. HF has no such processor.
#[derive(Debug, Clone)]
pub struct PresenceFrequencyPenalty {
    presence: f32,
    frequency: f32,
}

impl PresenceFrequencyPenalty {
    /// Finite penalties (negative ones encourage repeats).
    pub fn new(presence: f32, frequency: f32) -> Result<Self> {
        if !presence.is_finite() || !frequency.is_finite() {
            return Err(invalid(
                "finite presence_penalty and frequency_penalty".into(),
                format!("{presence}, {frequency}"),
            ));
        }
        Ok(PresenceFrequencyPenalty {
            presence,
            frequency,
        })
    }
}

impl LogitsProcessor for PresenceFrequencyPenalty {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let mut counts: BTreeMap<usize, u32> = BTreeMap::new();
        for &t in tokens {
            *counts.entry(t as usize).or_default() += 1;
        }
        for (t, n) in counts {
            if let Some(s) = scores.get_mut(t) {
                *s -= self.presence + self.frequency * n as f32;
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "presence_penalty/frequency_penalty"
    }
}

/// `no_repeat_ngram_size`: no n-gram may occur twice. A token that would
/// complete an n-gram already in the sequence (prompt included) is banned.
#[derive(Debug, Clone)]
pub struct NoRepeatNgram {
    n: usize,
}

impl NoRepeatNgram {
    /// An n-gram size ≥ 1.
    pub fn new(n: usize) -> Result<Self> {
        if n == 0 {
            return Err(invalid("no_repeat_ngram_size ≥ 1".into(), n));
        }
        Ok(NoRepeatNgram { n })
    }
}

impl LogitsProcessor for NoRepeatNgram {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let n = self.n;
        if tokens.len() < n {
            return Ok(());
        }
        // The next token completes an n-gram whose first n-1 tokens are the
        // current suffix; every earlier window with that prefix bans its last token.
        let suffix = &tokens[tokens.len() + 1 - n..];
        for window in tokens.windows(n) {
            if &window[..n - 1] == suffix {
                if let Some(s) = scores.get_mut(window[n - 1] as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "no_repeat_ngram_size"
    }
}

/// HF's `sequence_bias`: a bias added to the score of a sequence's last
/// token whenever the sequence so far ends with the rest of it. Single
/// tokens are `logit_bias`; a bias of −∞ is `bad_words_ids`.
#[derive(Debug, Clone)]
pub struct SequenceBias {
    biases: Vec<(Vec<u32>, f32)>,
    name: &'static str,
}

impl SequenceBias {
    /// Biases per token sequence (each non-empty).
    pub fn new(biases: Vec<(Vec<u32>, f32)>) -> Result<Self> {
        if let Some((seq, _)) = biases.iter().find(|(seq, _)| seq.is_empty()) {
            return Err(invalid(
                "sequence_bias: non-empty token sequences".into(),
                format!("{seq:?}"),
            ));
        }
        if let Some((_, bias)) = biases.iter().find(|(_, b)| b.is_nan()) {
            return Err(invalid(
                "sequence_bias: biases that are numbers".into(),
                bias,
            ));
        }
        Ok(SequenceBias {
            biases,
            name: "sequence_bias",
        })
    }

    /// `logit_bias`: token id → bias.
    pub fn logit_bias(bias: &BTreeMap<u32, f32>) -> Result<Self> {
        let mut me = Self::new(bias.iter().map(|(&t, &b)| (vec![t], b)).collect())?;
        me.name = "logit_bias";
        Ok(me)
    }

    /// `bad_words_ids`: sequences that must never be generated. As in HF, a
    /// single-token entry equal to an EOS id is dropped.
    pub fn bad_words(bad_words_ids: &[Vec<u32>], eos_token_ids: &[u32]) -> Result<Self> {
        if bad_words_ids.is_empty() {
            return Err(invalid("bad_words_ids: a non-empty list".into(), "[]"));
        }
        let kept = bad_words_ids
            .iter()
            .filter(|seq| !(seq.len() == 1 && eos_token_ids.contains(&seq[0])))
            .map(|seq| (seq.clone(), f32::NEG_INFINITY))
            .collect();
        let mut me = Self::new(kept).map_err(|_| {
            invalid(
                "bad_words_ids: non-empty token sequences".into(),
                format!("{bad_words_ids:?}"),
            )
        })?;
        me.name = "bad_words_ids";
        Ok(me)
    }
}

impl LogitsProcessor for SequenceBias {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        check_ids(
            self.name,
            self.biases.iter().flat_map(|(seq, _)| seq.iter()),
            scores.len(),
        )?;
        let mut bias = vec![0f32; scores.len()];
        for (seq, b) in &self.biases {
            let Some((last, prefix)) = seq.split_last() else {
                continue;
            };
            if prefix.len() <= tokens.len() && tokens.ends_with(prefix) {
                bias[*last as usize] += b;
            }
        }
        for (s, b) in scores.iter_mut().zip(bias) {
            *s += b;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// Sets the scores of `tokens` to −∞.
fn ban(scores: &mut [f32], tokens: &[u32]) {
    for &t in tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Leaves only `tokens` possible (score 0), everything else −∞.
fn force(scores: &mut [f32], tokens: &[u32]) {
    scores.fill(f32::NEG_INFINITY);
    for &t in tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = 0.0;
        }
    }
}

/// `min_new_tokens`: end-of-sequence tokens are banned until this many new
/// tokens exist.
#[derive(Debug, Clone)]
pub struct MinNewTokens {
    prompt_len: usize,
    min_new_tokens: usize,
    eos_token_ids: Vec<u32>,
}

impl MinNewTokens {
    /// For a prompt of `prompt_len` tokens.
    pub fn new(prompt_len: usize, min_new_tokens: usize, eos_token_ids: Vec<u32>) -> Self {
        MinNewTokens {
            prompt_len,
            min_new_tokens,
            eos_token_ids,
        }
    }
}

impl LogitsProcessor for MinNewTokens {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        if tokens.len().saturating_sub(self.prompt_len) < self.min_new_tokens {
            ban(scores, &self.eos_token_ids);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "min_new_tokens"
    }
}

/// `suppress_tokens`: these tokens are never generated.
#[derive(Debug, Clone)]
pub struct SuppressTokens {
    tokens: Vec<u32>,
}

impl SuppressTokens {
    /// Suppresses `tokens`.
    pub fn new(tokens: Vec<u32>) -> Self {
        SuppressTokens { tokens }
    }
}

impl LogitsProcessor for SuppressTokens {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        ban(scores, &self.tokens);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "suppress_tokens"
    }
}

/// `begin_suppress_tokens`: these tokens cannot be the first generated one
/// (HF: when the sequence length equals `begin_index`).
#[derive(Debug, Clone)]
pub struct SuppressTokensAtBegin {
    tokens: Vec<u32>,
    begin_index: usize,
}

impl SuppressTokensAtBegin {
    /// Suppresses `tokens` when the sequence has `begin_index` tokens (HF sets
    /// it to the prompt length, plus one when a BOS is forced after a
    /// one-token prompt).
    pub fn new(tokens: Vec<u32>, begin_index: usize) -> Self {
        SuppressTokensAtBegin {
            tokens,
            begin_index,
        }
    }
}

impl LogitsProcessor for SuppressTokensAtBegin {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        if tokens.len() == self.begin_index {
            ban(scores, &self.tokens);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "begin_suppress_tokens"
    }
}

/// `forced_bos_token_id`: after a one-token sequence the next token is this one.
#[derive(Debug, Clone)]
pub struct ForcedBos {
    token: u32,
}

impl ForcedBos {
    /// Forces `token` as the second token.
    pub fn new(token: u32) -> Self {
        ForcedBos { token }
    }
}

impl LogitsProcessor for ForcedBos {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        check_ids("forced_bos_token_id", [&self.token], scores.len())?;
        if tokens.len() == 1 {
            force(scores, &[self.token]);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "forced_bos_token_id"
    }
}

/// `forced_eos_token_id`: the token generated when the sequence reaches
/// `max_length` is one of these (the others get score 0 too, as in HF).
#[derive(Debug, Clone)]
pub struct ForcedEos {
    max_length: usize,
    tokens: Vec<u32>,
}

impl ForcedEos {
    /// `max_length`: prompt length plus max new tokens.
    pub fn new(max_length: usize, tokens: Vec<u32>) -> Self {
        ForcedEos { max_length, tokens }
    }
}

impl LogitsProcessor for ForcedEos {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        check_ids("forced_eos_token_id", &self.tokens, scores.len())?;
        if tokens.len() + 1 == self.max_length {
            force(scores, &self.tokens);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "forced_eos_token_id"
    }
}

/// `forced_decoder_ids`: `(index, token)` pairs; the new token number
/// `index` (1 is the first generated token, as in HF where index 0 is the
/// decoder's start token) is forced to `token`.
#[derive(Debug, Clone)]
pub struct ForcedTokens {
    prompt_len: usize,
    by_index: BTreeMap<usize, u32>,
}

impl ForcedTokens {
    /// For a prompt of `prompt_len` tokens; indices must be ≥ 1 and distinct.
    pub fn new(prompt_len: usize, forced: &[(usize, u32)]) -> Result<Self> {
        let mut by_index = BTreeMap::new();
        for &(index, token) in forced {
            if index == 0 || by_index.insert(index, token).is_some() {
                return Err(invalid(
                    "forced_decoder_ids: distinct indices ≥ 1".into(),
                    format!("{forced:?}"),
                ));
            }
        }
        Ok(ForcedTokens {
            prompt_len,
            by_index,
        })
    }
}

impl LogitsProcessor for ForcedTokens {
    fn process(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        check_ids("forced_decoder_ids", self.by_index.values(), scores.len())?;
        let index = tokens.len().saturating_sub(self.prompt_len) + 1;
        if let Some(&token) = self.by_index.get(&index) {
            force(scores, &[token]);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "forced_decoder_ids"
    }
}
