//! Generation settings, with Hugging Face GenerationConfig names, and the
//! processors and sampler they make.
//!
//! # The order rules apply in
//! For each new token, the scores of the last position go through, in HF's
//! order (`GenerationMixin._get_logits_processor`):
//! 1. `logit_bias` (HF's single-token `sequence_bias`)
//! 2. `repetition_penalty`
//! 3. `presence_penalty` / `frequency_penalty` (not in HF; mlx-lm's meaning)
//! 4. `no_repeat_ngram_size`
//! 5. `bad_words_ids`
//! 6. `min_new_tokens` (bans the EOS ids)
//! 7. `forced_bos_token_id`
//! 8. `forced_eos_token_id`
//! 9. `suppress_tokens`
//! 10. `begin_suppress_tokens`
//! 11. `forced_decoder_ids`
//!
//! The log-probabilities a response reports are taken here. Then greedy
//! decoding (`temperature` 0) takes the argmax; sampling applies the warpers
//! `temperature`, `top_k`, `top_p`, `min_p`, `typical_p`, `epsilon_cutoff`
//! (HF's order), then `xtc` (mlx-lm's), and draws with the seeded stream.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::generation::beam::EarlyStopping;
use crate::generation::logits_processors::{
    ForcedBos, ForcedEos, ForcedTokens, LogitsProcessor, MinNewTokens, NoRepeatNgram,
    PresenceFrequencyPenalty, RepetitionPenalty, SequenceBias, SuppressTokens,
    SuppressTokensAtBegin,
};
use crate::generation::sampler::{
    EpsilonCutoff, MinP, Temperature, TokenSampler, TopK, TopP, TypicalP, Xtc,
};

/// Everything that shapes generation. `Default` is greedy decoding of up to
/// 256 tokens with no processors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// At most this many new tokens (finish reason "length").
    pub max_new_tokens: usize,
    /// End-of-sequence ids are banned until this many new tokens exist.
    pub min_new_tokens: usize,
    /// 0 is greedy; above 0 samples from softmax(scores / temperature).
    pub temperature: f32,
    /// Keep the k best tokens (0: off).
    pub top_k: usize,
    /// Nucleus sampling mass in (0, 1] (1: off).
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the best one (0: off).
    pub min_p: f32,
    /// The fewest tokens top_k / top_p / min_p / typical_p / epsilon_cutoff keep.
    pub min_tokens_to_keep: usize,
    /// Locally typical sampling mass in (0, 1] (1: off).
    pub typical_p: f32,
    /// Drop tokens with probability below this (0: off).
    pub epsilon_cutoff: f32,
    /// XTC: the chance of removing the top choices at a step (0: off).
    pub xtc_probability: f32,
    /// XTC: tokens above this probability count as top choices.
    pub xtc_threshold: f32,
    /// CTRL repetition penalty (1: off).
    pub repetition_penalty: f32,
    /// Subtracted once from every token already present (0: off).
    pub presence_penalty: f32,
    /// Subtracted per occurrence from every token already present (0: off).
    pub frequency_penalty: f32,
    /// No n-gram of this size repeats (0: off).
    pub no_repeat_ngram_size: usize,
    /// Token sequences never to generate.
    pub bad_words_ids: Vec<Vec<u32>>,
    /// Token id → bias added to its score.
    pub logit_bias: BTreeMap<u32, f32>,
    /// Tokens never generated.
    pub suppress_tokens: Vec<u32>,
    /// Tokens that cannot be the first generated one.
    pub begin_suppress_tokens: Vec<u32>,
    /// Forced second token of the sequence (after a one-token prompt).
    pub forced_bos_token_id: Option<u32>,
    /// Forced last token when max_new_tokens is reached.
    pub forced_eos_token_id: Vec<u32>,
    /// (new-token index from 1, token) pairs to force.
    pub forced_decoder_ids: Vec<(usize, u32)>,
    /// Tokens that end generation (finish reason "stop"); several allowed.
    pub eos_token_id: Vec<u32>,
    /// Strings that end generation; matched across token boundaries and
    /// never part of the returned text.
    pub stop_strings: Vec<String>,
    /// Seed of the sampler's random stream.
    pub seed: u64,
    /// Prompt positions per forward pass while prefilling.
    pub prefill_step_size: usize,
    /// Bound every standard layer's cache to this many positions (a
    /// rotating cache keeping the first 4; mlx-lm's `max_kv_size`).
    pub max_kv_size: Option<usize>,
    /// Quantize the KV cache to this many bits (mlx-lm's `kv_bits`).
    pub kv_bits: Option<i32>,
    /// Elements per scale and bias of the quantized KV cache.
    pub kv_group_size: i32,
    /// Quantize the cache once it holds this many positions.
    pub quantized_kv_start: usize,
    /// Speculative decoding: tokens the draft model proposes per step
    /// (mlx-lm's name; only used with a draft model, see [`crate::generation::speculative`]).
    pub num_draft_tokens: usize,
    /// Beam search with this many beams (1: no beam search; see [`crate::generation::beam`]).
    pub num_beams: usize,
    /// Beam search: a finished hypothesis scores its summed log-probs divided
    /// by new_tokens ^ length_penalty (> 0 favours longer ones).
    pub length_penalty: f32,
    /// Beam search: when it may end before max length (`true`, `false`, `"never"`).
    pub early_stopping: EarlyStopping,
    /// Beam search: how many of the best hypotheses to return (≤ num_beams).
    pub num_return_sequences: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 256,
            min_new_tokens: 0,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            min_tokens_to_keep: 1,
            typical_p: 1.0,
            epsilon_cutoff: 0.0,
            xtc_probability: 0.0,
            xtc_threshold: 0.1,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            no_repeat_ngram_size: 0,
            bad_words_ids: Vec::new(),
            logit_bias: BTreeMap::new(),
            suppress_tokens: Vec::new(),
            begin_suppress_tokens: Vec::new(),
            forced_bos_token_id: None,
            forced_eos_token_id: Vec::new(),
            forced_decoder_ids: Vec::new(),
            eos_token_id: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
            prefill_step_size: 2048,
            max_kv_size: None,
            kv_bits: None,
            kv_group_size: 64,
            quantized_kv_start: 0,
            num_draft_tokens: 3,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::default(),
            num_return_sequences: 1,
        }
    }
}

fn bad(key: &str, expected: &str, found: impl ToString) -> Error {
    Error::InvalidInput {
        expected: format!("{key}: {expected}"),
        found: found.to_string(),
    }
}

impl GenerationConfig {
    /// Checks every setting; the error names the first bad one, what it
    /// accepts and what it holds.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(bad(
                "temperature",
                "a finite number ≥ 0 (0 is greedy)",
                self.temperature,
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", "a number in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad("min_p", "a number in [0, 1]", self.min_p));
        }
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return Err(bad("typical_p", "a number in (0, 1]", self.typical_p));
        }
        if !(0.0..1.0).contains(&self.epsilon_cutoff) {
            return Err(bad(
                "epsilon_cutoff",
                "a number in [0, 1)",
                self.epsilon_cutoff,
            ));
        }
        if self.min_tokens_to_keep == 0 {
            return Err(bad("min_tokens_to_keep", "at least 1", 0));
        }
        if !(0.0..=1.0).contains(&self.xtc_probability) {
            return Err(bad(
                "xtc_probability",
                "a number in [0, 1]",
                self.xtc_probability,
            ));
        }
        if !(0.0..=0.5).contains(&self.xtc_threshold) {
            return Err(bad(
                "xtc_threshold",
                "a number in [0, 0.5]",
                self.xtc_threshold,
            ));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(bad(
                "repetition_penalty",
                "a finite number > 0 (1 is off)",
                self.repetition_penalty,
            ));
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return Err(bad(
                "presence_penalty / frequency_penalty",
                "finite numbers",
                format!("{} / {}", self.presence_penalty, self.frequency_penalty),
            ));
        }
        if let Some(seq) = self.bad_words_ids.iter().find(|s| s.is_empty()) {
            return Err(bad(
                "bad_words_ids",
                "non-empty token sequences",
                format!("{seq:?}"),
            ));
        }
        if let Some((token, b)) = self.logit_bias.iter().find(|(_, b)| b.is_nan()) {
            return Err(bad("logit_bias", "numbers", format!("{token}: {b}")));
        }
        if self.stop_strings.iter().any(String::is_empty) {
            return Err(bad(
                "stop_strings",
                "non-empty strings",
                "an empty stop string",
            ));
        }
        if self.prefill_step_size == 0 {
            return Err(bad("prefill_step_size", "at least 1", 0));
        }
        if self.num_draft_tokens == 0 {
            return Err(bad("num_draft_tokens", "at least 1", 0));
        }
        ForcedTokens::new(0, &self.forced_decoder_ids)?;
        crate::generation::prompt_cache::check_cache_settings(self)?;
        self.validate_beams()
    }

    fn validate_beams(&self) -> Result<()> {
        if self.num_beams == 0 {
            return Err(bad("num_beams", "at least 1 (1 is no beam search)", 0));
        }
        if !(1..=self.num_beams).contains(&self.num_return_sequences) {
            return Err(bad(
                "num_return_sequences",
                &format!("between 1 and num_beams ({})", self.num_beams),
                self.num_return_sequences,
            ));
        }
        if !self.length_penalty.is_finite() {
            return Err(bad(
                "length_penalty",
                "a finite number",
                self.length_penalty,
            ));
        }
        if self.num_beams > 1 && !self.is_greedy() {
            return Err(bad(
                "temperature",
                "0 with num_beams > 1 (beam search does not sample)",
                self.temperature,
            ));
        }
        Ok(())
    }

    /// True when the next token is the argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// The logits processors for a prompt of `prompt_len` tokens, in the
    /// order the module documentation gives.
    pub fn processors(&self, prompt_len: usize) -> Result<Vec<Box<dyn LogitsProcessor>>> {
        self.validate()?;
        let mut list: Vec<Box<dyn LogitsProcessor>> = Vec::new();
        if !self.logit_bias.is_empty() {
            list.push(Box::new(SequenceBias::logit_bias(&self.logit_bias)?));
        }
        if self.repetition_penalty != 1.0 {
            list.push(Box::new(RepetitionPenalty::new(self.repetition_penalty)?));
        }
        if self.presence_penalty != 0.0 || self.frequency_penalty != 0.0 {
            list.push(Box::new(PresenceFrequencyPenalty::new(
                self.presence_penalty,
                self.frequency_penalty,
            )?));
        }
        if self.no_repeat_ngram_size > 0 {
            list.push(Box::new(NoRepeatNgram::new(self.no_repeat_ngram_size)?));
        }
        if !self.bad_words_ids.is_empty() {
            list.push(Box::new(SequenceBias::bad_words(
                &self.bad_words_ids,
                &self.eos_token_id,
            )?));
        }
        if self.min_new_tokens > 0 && !self.eos_token_id.is_empty() {
            list.push(Box::new(MinNewTokens::new(
                prompt_len,
                self.min_new_tokens,
                self.eos_token_id.clone(),
            )));
        }
        if let Some(bos) = self.forced_bos_token_id {
            list.push(Box::new(ForcedBos::new(bos)));
        }
        if !self.forced_eos_token_id.is_empty() {
            list.push(Box::new(ForcedEos::new(
                prompt_len + self.max_new_tokens,
                self.forced_eos_token_id.clone(),
            )));
        }
        if !self.suppress_tokens.is_empty() {
            list.push(Box::new(SuppressTokens::new(self.suppress_tokens.clone())));
        }
        if !self.begin_suppress_tokens.is_empty() {
            let forced_bos_shift =
                usize::from(prompt_len <= 1 && self.forced_bos_token_id.is_some());
            list.push(Box::new(SuppressTokensAtBegin::new(
                self.begin_suppress_tokens.clone(),
                prompt_len + forced_bos_shift,
            )));
        }
        if !self.forced_decoder_ids.is_empty() {
            list.push(Box::new(ForcedTokens::new(
                prompt_len,
                &self.forced_decoder_ids,
            )?));
        }
        Ok(list)
    }

    /// The warpers, in order (empty for greedy decoding).
    pub fn warpers(&self) -> Result<Vec<Box<dyn LogitsProcessor>>> {
        self.validate()?;
        let mut list: Vec<Box<dyn LogitsProcessor>> = Vec::new();
        if self.is_greedy() {
            return Ok(list);
        }
        let keep = self.min_tokens_to_keep;
        if self.temperature != 1.0 {
            list.push(Box::new(Temperature::new(self.temperature)?));
        }
        if self.top_k > 0 {
            list.push(Box::new(TopK::new(self.top_k, keep)?));
        }
        if self.top_p < 1.0 {
            list.push(Box::new(TopP::new(self.top_p, keep)?));
        }
        if self.min_p > 0.0 {
            list.push(Box::new(MinP::new(self.min_p, keep)?));
        }
        if self.typical_p < 1.0 {
            list.push(Box::new(TypicalP::new(self.typical_p, keep)?));
        }
        if self.epsilon_cutoff > 0.0 {
            list.push(Box::new(EpsilonCutoff::new(self.epsilon_cutoff, keep)?));
        }
        if self.xtc_probability > 0.0 {
            list.push(Box::new(Xtc::new(
                self.xtc_probability,
                self.xtc_threshold,
                self.eos_token_id.clone(),
                self.seed,
            )?));
        }
        Ok(list)
    }

    /// The sampler: greedy, or the warpers then a draw seeded with `seed`.
    pub fn sampler(&self) -> Result<TokenSampler> {
        if self.is_greedy() {
            self.validate()?;
            return Ok(TokenSampler::greedy());
        }
        Ok(TokenSampler::sampling(self.warpers()?, self.seed))
    }
}
