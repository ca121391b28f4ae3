//! Samplers: turn the last position's logits into the next token.

use mlx_rs::{ops, random, Array};

use crate::error::{Error, Result};

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
