//! Samplers: turn the last position's logits into the next token.
//!
//! [`ArgmaxSampler`] and [`TemperatureSampler`] work on MLX arrays; the
//! generation loop uses [`TokenSampler`]: HF's warpers ([`Temperature`],
//! [`TopK`], [`TopP`], [`MinP`], [`TypicalP`], [`EpsilonCutoff`]) and
//! mlx-lm's [`Xtc`] on the host, then a seeded draw ([`Rng`]).

use mlx_rs::{ops, random, Array};

use crate::error::{Error, Result};
use crate::generation::logits_processors::LogitsProcessor;

/// Picks the next token of each sequence from logits `[B, vocab]`,
/// returning `[B]` token ids (uint32 or int32).
pub trait Sampler {
    /// Samples one token per row.
    fn sample(&mut self, logits: &Array) -> Result<Array>;
}

/// Greedy decoding: the most likely token (ties go to the lowest id, as in
/// `torch.argmax`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ArgmaxSampler;

impl Sampler for ArgmaxSampler {
    fn sample(&mut self, logits: &Array) -> Result<Array> {
        Ok(ops::indexing::argmax_axis(logits, -1, false)?)
    }
}

/// Samples from `softmax(logits / temperature)` with its own seeded random
/// stream: the same seed and logits give the same tokens.
#[derive(Debug, Clone)]
pub struct TemperatureSampler {
    temperature: f32,
    key: Array,
}

impl TemperatureSampler {
    /// A sampler at `temperature` (> 0) seeded with `seed`.
    pub fn new(temperature: f32, seed: u64) -> Result<Self> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::InvalidInput {
                expected: "a temperature > 0 (use ArgmaxSampler for 0)".into(),
                found: temperature.to_string(),
            });
        }
        Ok(TemperatureSampler {
            temperature,
            key: random::key(seed)?,
        })
    }
}

impl Sampler for TemperatureSampler {
    fn sample(&mut self, logits: &Array) -> Result<Array> {
        let (next, now) = random::split(&self.key, 2)?;
        self.key = next;
        let scaled = ops::multiply(logits, Array::from_f32(1.0 / self.temperature))?;
        Ok(random::categorical(&scaled, -1, None, &now)?)
    }
}

/// The sampler for a temperature: greedy at 0, else [`TemperatureSampler`].
pub fn sampler_for(temperature: f32, seed: u64) -> Result<Box<dyn Sampler>> {
    if temperature == 0.0 {
        Ok(Box::new(ArgmaxSampler))
    } else {
        Ok(Box::new(TemperatureSampler::new(temperature, seed)?))
    }
}

// ------------------------------------------------------------------ warpers
//
// HF's "logits warpers": they reshape the distribution a token is drawn
// from, and only apply when sampling. They work on one row of scores on the
// host, like the logits processors, and implement the same trait.

/// Probabilities of `scores` (softmax, in f64; −∞ gives 0).
pub fn softmax(scores: &[f32]) -> Vec<f64> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if max == f64::NEG_INFINITY {
        return vec![0.0; scores.len()];
    }
    let exp: Vec<f64> = scores.iter().map(|&s| (s as f64 - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// Token indices sorted by score, highest first (ties: lower index first).
fn by_score_descending(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// The `k`-th largest score (k ≥ 1, clamped to the vocabulary).
fn kth_largest(scores: &[f32], k: usize) -> f32 {
    let order = by_score_descending(scores);
    let k = k.clamp(1, scores.len().max(1));
    order.get(k - 1).map_or(f32::NEG_INFINITY, |&i| scores[i])
}

fn remove(scores: &mut [f32], drop: impl Fn(usize) -> bool) {
    for (i, s) in scores.iter_mut().enumerate() {
        if drop(i) {
            *s = f32::NEG_INFINITY;
        }
    }
}

fn check_keep(min_tokens_to_keep: usize) -> Result<()> {
    if min_tokens_to_keep == 0 {
        return Err(Error::InvalidInput {
            expected: "min_tokens_to_keep ≥ 1".into(),
            found: "0".into(),
        });
    }
    Ok(())
}

/// `temperature`: scores divided by it (HF's TemperatureLogitsWarper).
#[derive(Debug, Clone)]
pub struct Temperature {
    temperature: f32,
}

impl Temperature {
    /// A temperature > 0 (0 means greedy, which is not a warper).
    pub fn new(temperature: f32) -> Result<Self> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::InvalidInput {
                expected: "temperature > 0 for sampling (0 means greedy)".into(),
                found: temperature.to_string(),
            });
        }
        Ok(Temperature { temperature })
    }
}

impl LogitsProcessor for Temperature {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        for s in scores.iter_mut() {
            *s /= self.temperature;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "temperature"
    }
}

/// `top_k`: keeps the tokens scoring at least the k-th best score.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
}

impl TopK {
    /// Keeps max(`k`, `min_tokens_to_keep`) tokens (k ≥ 1).
    pub fn new(k: usize, min_tokens_to_keep: usize) -> Result<Self> {
        check_keep(min_tokens_to_keep)?;
        if k == 0 {
            return Err(Error::InvalidInput {
                expected: "top_k ≥ 1 (0 switches it off)".into(),
                found: "0".into(),
            });
        }
        Ok(TopK {
            k: k.max(min_tokens_to_keep),
        })
    }
}

impl LogitsProcessor for TopK {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let threshold = kth_largest(scores, self.k);
        for s in scores.iter_mut() {
            if *s < threshold {
                *s = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "top_k"
    }
}

/// `top_p` (nucleus): keeps the smallest set of best tokens whose
/// probability reaches `p`; from the least likely up, a token goes while the
/// mass up to and including it is at most 1 − p.
#[derive(Debug, Clone)]
pub struct TopP {
    p: f32,
    min_tokens_to_keep: usize,
}

impl TopP {
    /// `p` in (0, 1].
    pub fn new(p: f32, min_tokens_to_keep: usize) -> Result<Self> {
        check_keep(min_tokens_to_keep)?;
        if !(p > 0.0 && p <= 1.0) {
            return Err(Error::InvalidInput {
                expected: "top_p in (0, 1]".into(),
                found: p.to_string(),
            });
        }
        Ok(TopP {
            p,
            min_tokens_to_keep,
        })
    }
}

impl LogitsProcessor for TopP {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let probs = softmax(scores);
        let order = by_score_descending(scores);
        let keep_at_least = self.min_tokens_to_keep.min(order.len());
        let cut = 1.0 - self.p as f64;
        let mut cumulative = 0.0;
        // Walk from the least likely token up.
        for (rank_from_top, &i) in order.iter().enumerate().rev() {
            cumulative += probs[i];
            if cumulative > cut || rank_from_top < keep_at_least {
                break;
            }
            scores[i] = f32::NEG_INFINITY;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "top_p"
    }
}

/// `min_p`: drops tokens less likely than `min_p` times the top token.
#[derive(Debug, Clone)]
pub struct MinP {
    min_p: f32,
    min_tokens_to_keep: usize,
}

impl MinP {
    /// `min_p` in [0, 1].
    pub fn new(min_p: f32, min_tokens_to_keep: usize) -> Result<Self> {
        check_keep(min_tokens_to_keep)?;
        if !(0.0..=1.0).contains(&min_p) {
            return Err(Error::InvalidInput {
                expected: "min_p in [0, 1]".into(),
                found: min_p.to_string(),
            });
        }
        Ok(MinP {
            min_p,
            min_tokens_to_keep,
        })
    }
}

impl LogitsProcessor for MinP {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let probs = softmax(scores);
        let top = probs.iter().copied().fold(0.0, f64::max);
        let threshold = self.min_p as f64 * top;
        let order = by_score_descending(scores);
        let mut kept = vec![false; scores.len()];
        for &i in order.iter().take(self.min_tokens_to_keep) {
            kept[i] = true;
        }
        remove(scores, |i| probs[i] < threshold && !kept[i]);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "min_p"
    }
}

/// `typical_p` (locally typical sampling): keeps the tokens whose surprise
/// is closest to the entropy, until their mass reaches `mass`.
#[derive(Debug, Clone)]
pub struct TypicalP {
    mass: f32,
    min_tokens_to_keep: usize,
}

impl TypicalP {
    /// `mass` in (0, 1].
    pub fn new(mass: f32, min_tokens_to_keep: usize) -> Result<Self> {
        check_keep(min_tokens_to_keep)?;
        if !(mass > 0.0 && mass <= 1.0) {
            return Err(Error::InvalidInput {
                expected: "typical_p in (0, 1]".into(),
                found: mass.to_string(),
            });
        }
        Ok(TypicalP {
            mass,
            min_tokens_to_keep,
        })
    }
}

impl LogitsProcessor for TypicalP {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let probs = softmax(scores);
        let entropy: f64 = probs
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| -p * p.ln())
            .sum();
        // |−log p − H|; impossible tokens are infinitely atypical.
        let distance: Vec<f64> = probs
            .iter()
            .map(|&p| {
                if p > 0.0 {
                    (-p.ln() - entropy).abs()
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| distance[a].total_cmp(&distance[b]).then(a.cmp(&b)));
        // The last kept rank is the first whose cumulative mass reaches `mass`.
        let mut cumulative = 0.0;
        let mut last = order.len().saturating_sub(1);
        for (rank, &i) in order.iter().enumerate() {
            cumulative += probs[i];
            if cumulative >= self.mass as f64 {
                last = rank;
                break;
            }
        }
        let limit = order.get(last).map_or(f64::INFINITY, |&i| distance[i]);
        for (rank, &i) in order.iter().enumerate() {
            if rank >= self.min_tokens_to_keep && distance[i] > limit {
                scores[i] = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "typical_p"
    }
}

/// `epsilon_cutoff`: drops tokens with probability below ε, keeping the
/// `min_tokens_to_keep` best.
#[derive(Debug, Clone)]
pub struct EpsilonCutoff {
    epsilon: f32,
    min_tokens_to_keep: usize,
}

impl EpsilonCutoff {
    /// ε in (0, 1).
    pub fn new(epsilon: f32, min_tokens_to_keep: usize) -> Result<Self> {
        check_keep(min_tokens_to_keep)?;
        if !(epsilon > 0.0 && epsilon < 1.0) {
            return Err(Error::InvalidInput {
                expected: "epsilon_cutoff in (0, 1)".into(),
                found: epsilon.to_string(),
            });
        }
        Ok(EpsilonCutoff {
            epsilon,
            min_tokens_to_keep,
        })
    }
}

impl LogitsProcessor for EpsilonCutoff {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        let probs = softmax(scores);
        let threshold = kth_largest(scores, self.min_tokens_to_keep);
        let original = scores.to_vec();
        remove(scores, |i| {
            probs[i] < self.epsilon as f64 && original[i] < threshold
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "epsilon_cutoff"
    }
}

/// XTC ("exclude top choices", as in mlx-lm): with probability
/// `probability`, every token above `threshold` except the least likely of
/// them is removed, so the model picks a less obvious continuation.
/// `special_tokens` (e.g. EOS, newline) are never removed.
#[derive(Debug, Clone)]
pub struct Xtc {
    probability: f32,
    threshold: f32,
    special_tokens: Vec<u32>,
    rng: Rng,
}

impl Xtc {
    /// `probability` in [0, 1], `threshold` in [0, 0.5]; seeded.
    pub fn new(
        probability: f32,
        threshold: f32,
        special_tokens: Vec<u32>,
        seed: u64,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&probability) || !(0.0..=0.5).contains(&threshold) {
            return Err(Error::InvalidInput {
                expected: "xtc_probability in [0, 1] and xtc_threshold in [0, 0.5]".into(),
                found: format!("{probability}, {threshold}"),
            });
        }
        Ok(Xtc {
            probability,
            threshold,
            special_tokens,
            rng: Rng::new(seed ^ 0x7874_6300),
        })
    }
}

impl LogitsProcessor for Xtc {
    fn process(&mut self, _tokens: &[u32], scores: &mut [f32]) -> Result<()> {
        if self.rng.next_f64() >= self.probability as f64 {
            return Ok(());
        }
        let probs = softmax(scores);
        let above = |p: f64| p > self.threshold as f64;
        let least_above = probs
            .iter()
            .copied()
            .filter(|&p| above(p))
            .fold(f64::INFINITY, f64::min);
        remove(scores, |i| {
            probs[i] > least_above && !self.special_tokens.contains(&(i as u32))
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "xtc"
    }
}

// ------------------------------------------------------------------ drawing

/// A small seeded random stream (SplitMix64): the same seed gives the same
/// draws on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The index of the first maximum of `scores`; an error when every score is −∞ or NaN.
pub fn argmax(scores: &[f32]) -> Result<u32> {
    let mut best: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() || s == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|b| s > scores[b]) {
            best = Some(i);
        }
    }
    best.map(|b| b as u32).ok_or_else(no_token_left)
}

fn no_token_left() -> Error {
    Error::InvalidInput {
        expected: "at least one token with a finite score after the logits processors".into(),
        found: "every token filtered out (score −∞ or NaN)".into(),
    }
}

/// Draws a token from `softmax(scores)`; tokens at −∞ are never drawn.
pub fn draw(scores: &[f32], rng: &mut Rng) -> Result<u32> {
    let probs = softmax(scores);
    if !probs.iter().any(|p| *p > 0.0) {
        return Err(no_token_left());
    }
    let u = rng.next_f64();
    let mut cumulative = 0.0;
    let mut last_possible = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cumulative += p;
            last_possible = i;
            if u < cumulative {
                return Ok(i as u32);
            }
        }
    }
    Ok(last_possible as u32)
}

/// Chooses each next token: greedy (argmax of the processed scores), or a
/// seeded draw after the warpers.
pub struct TokenSampler {
    warpers: Vec<Box<dyn LogitsProcessor>>,
    rng: Rng,
    greedy: bool,
}

impl std::fmt::Debug for TokenSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.warpers.iter().map(|w| w.name()).collect();
        f.debug_struct("TokenSampler")
            .field("greedy", &self.greedy)
            .field("warpers", &names)
            .finish()
    }
}

impl TokenSampler {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        TokenSampler {
            warpers: Vec::new(),
            rng: Rng::new(0),
            greedy: true,
        }
    }

    /// Sampling after `warpers` (applied in the given order), seeded.
    pub fn sampling(warpers: Vec<Box<dyn LogitsProcessor>>, seed: u64) -> Self {
        TokenSampler {
            warpers,
            rng: Rng::new(seed),
            greedy: false,
        }
    }

    /// True for greedy decoding.
    pub fn is_greedy(&self) -> bool {
        self.greedy
    }

    /// Picks the next token of a sequence `tokens` from its processed
    /// `scores` (which the warpers change in place).
    pub fn pick(&mut self, tokens: &[u32], scores: &mut [f32]) -> Result<u32> {
        if self.greedy {
            return argmax(scores);
        }
        for warper in &mut self.warpers {
            warper.process(tokens, scores)?;
        }
        draw(scores, &mut self.rng)
    }
}
