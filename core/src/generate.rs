//! Token generation. For now: greedy decoding through the cache, with
//! prefill in chunks; the full generation runtime builds on this.

use mlx_rs::{ops, Array};

use crate::cache::KvCache;
use crate::error::{Error, Result};
use crate::model::{ForwardOptions, Model, ModelInput};

/// Runs `tokens` (one sequence) through the model in chunks of at most
/// `chunk` positions, filling `cache`, and returns the logits of every
/// position, `[1, T, vocab]`.
pub fn prefill(
    model: &dyn Model,
    tokens: &[u32],
    cache: &mut [Box<dyn KvCache>],
    chunk: usize,
) -> Result<Array> {
    if tokens.is_empty() {
        return Err(Error::InvalidInput {
            expected: "a prompt of at least one token".into(),
            found: "an empty prompt".into(),
        });
    }
    check_context(model, cache, tokens.len())?;
    let mut pieces = Vec::new();
    for piece in tokens.chunks(chunk.max(1)) {
        let ids = token_array(piece);
        let out = model.forward(
            &ModelInput::Tokens(ids),
            Some(cache),
            &ForwardOptions::default(),
        )?;
        let logits = out.logits.ok_or_else(|| Error::InvalidInput {
            expected: "a causal LM (logits)".into(),
            found: "a model without logits".into(),
        })?;
        logits.eval()?;
        pieces.push(logits);
    }
    Ok(ops::concatenate(&pieces, 1)?)
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
    let mut out = Vec::with_capacity(max_new_tokens);
    for step in 0..max_new_tokens {
        out.push(next);
        if step + 1 == max_new_tokens {
            break;
        }
        let logits = prefill(model, &[next], &mut cache, 1)?;
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
    let t = logits.dim(1);
    let parts = logits.split_at_indices(&[t - 1], 1)?;
    let last = parts.last().ok_or_else(|| Error::InvalidInput {
        expected: "logits with at least one position".into(),
        found: format!("shape {:?}", logits.shape()),
    })?;
    let id = ops::indexing::argmax_axis(last.reshape(&[-1])?, -1, false)?;
    id.eval()?;
    Ok(id.as_slice::<u32>().first().copied().unwrap_or(0))
}

fn check_context(model: &dyn Model, cache: &[Box<dyn KvCache>], new: usize) -> Result<()> {
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
