//! The measured workloads, defined so that the mlx-lm driver
//! (benches/mlx_lm_bench.py) does exactly the same work:
//!
//! - prefill of T tokens: one forward pass over the first T − 1 prompt
//!   tokens into an empty cache (only the cache is evaluated: no logits are
//!   computed for positions nobody samples from), then the last token, whose
//!   logits are evaluated. Throughput is T / time.
//! - decode of N tokens after a prompt: N forward passes of one token each,
//!   the next token the argmax of the last logits, each step evaluated
//!   before the next. Throughput is N / time.
//!
//! Peak memory is MLX's peak allocation over the workload (weights included).

use std::time::{Duration, Instant};

use forge_core::mlx_rs::ops::indexing::IndexOp;
use forge_core::mlx_rs::{memory, ops, Array};
use forge_core::model::{ForwardOptions, Model, ModelInput};
use forge_core::{Error, KvCache, Result};

/// A deterministic prompt of `len` token ids below `vocab` (ids 0..2 are
/// left out: special tokens in most vocabularies).
pub fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            3 + ((state >> 33) as usize % vocab.saturating_sub(3).max(1)) as u32
        })
        .collect()
}

fn ids(tokens: &[u32]) -> Array {
    forge_core::generation::generate::token_array(tokens)
}

fn forward(model: &dyn Model, tokens: &[u32], cache: &mut [Box<dyn KvCache>]) -> Result<Array> {
    let out = model.forward(
        &ModelInput::Tokens(ids(tokens)),
        Some(cache),
        &ForwardOptions::default(),
    )?;
    out.logits.ok_or_else(|| Error::InvalidInput {
        expected: "a causal LM (logits)".into(),
        found: "a model without logits".into(),
    })
}

fn eval_cache(cache: &[Box<dyn KvCache>]) -> Result<()> {
    let state: Vec<Array> = cache.iter().flat_map(|c| c.state()).collect();
    forge_core::mlx_rs::transforms::eval(state.iter())?;
    Ok(())
}

fn last_argmax(logits: &Array) -> Result<u32> {
    let t = logits.dim(1);
    let last = logits.index((.., t - 1, ..));
    let id = ops::indexing::argmax_axis(&last, -1, false)?;
    id.eval()?;
    Ok(id.as_slice::<u32>().first().copied().unwrap_or(0))
}

/// What a prefill leaves: its time, the filled cache and the first
/// generated token.
pub struct Prefilled {
    /// Time of the prefill.
    pub time: Duration,
    /// The cache holding the prompt.
    pub cache: Vec<Box<dyn KvCache>>,
    /// The argmax after the last prompt token.
    pub next: u32,
}

/// Prefill of `tokens` into a fresh cache.
pub fn prefill(model: &dyn Model, tokens: &[u32]) -> Result<Prefilled> {
    let (head, last) = tokens.split_at(tokens.len().saturating_sub(1));
    let mut cache = model.new_cache();
    let start = Instant::now();
    if !head.is_empty() {
        drop(forward(model, head, &mut cache)?);
        eval_cache(&cache)?;
    }
    let logits = forward(model, last, &mut cache)?;
    let next = last_argmax(&logits)?;
    Ok(Prefilled {
        time: start.elapsed(),
        cache,
        next,
    })
}

/// `n` greedy decode steps after a prefilled cache; returns their time.
pub fn decode(
    model: &dyn Model,
    cache: &mut [Box<dyn KvCache>],
    first: u32,
    n: usize,
) -> Result<Duration> {
    let start = Instant::now();
    let mut next = first;
    for _ in 0..n {
        let logits = forward(model, &[next], cache)?;
        next = last_argmax(&logits)?;
    }
    Ok(start.elapsed())
}

/// Clears MLX's peak-memory counter.
pub fn reset_peak_memory() {
    // Only the figure is lost if this fails; the workload is unaffected.
    let _ = memory::reset_peak_memory();
}

/// MLX's peak allocation since the last reset, in bytes.
pub fn peak_memory() -> usize {
    memory::peak_memory().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_deterministic_and_in_range() {
        let a = prompt(1000, 50);
        assert_eq!(a, prompt(1000, 50));
        assert!(a.iter().all(|&t| (3..50).contains(&t)));
        // Every id in range shows up: the generator is not stuck.
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 47);
    }
}
