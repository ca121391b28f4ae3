//! Key/value caches.
//!
//! One [`KvCache`] per attention layer. Keys and values are
//! `[B, kv_heads, T, dim]`; keys and values may have different widths (MLA
//! keeps a compressed latent and a rope key), and a cache may keep only a
//! window (rotating) or quantize what it stores.

use mlx_rs::{ops, Array};

use crate::error::{Error, Result};

/// A per-layer attention cache.
pub trait KvCache {
    /// Appends `keys` / `values` for new positions and returns everything the
    /// attention should see.
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)>;

    /// Number of positions processed so far (the next position's index).
    fn offset(&self) -> usize;

    /// True when [`KvCache::trim`] can drop positions.
    fn is_trimmable(&self) -> bool;

    /// Drops up to `n` of the most recent positions; returns how many were dropped.
    fn trim(&mut self, n: usize) -> usize;

    /// The stored tensors (for saving a prompt cache).
    fn state(&self) -> Vec<Array>;

    /// Restores tensors saved by [`KvCache::state`] with `offset` positions.
    fn set_state(&mut self, state: Vec<Array>, offset: usize) -> Result<()>;

    /// Keeps the batch rows `rows` (int32 or uint32 indices, in that order; a
    /// row may repeat) of every stored tensor: beam search moves each beam's
    /// history with it. The default takes rows of [`KvCache::state`] along
    /// axis 0; caches whose state is not batch-first override it.
    fn select_rows(&mut self, rows: &Array) -> Result<()> {
        let state = self.state();
        if state.is_empty() {
            return Ok(());
        }
        let offset = self.offset();
        let picked = state
            .iter()
            .map(|a| take_rows(a, rows))
            .collect::<Result<Vec<_>>>()?;
        self.set_state(picked, offset)
    }
}

/// Rows `rows` of `a` along axis 0, after checking every index is in range.
pub fn take_rows(a: &Array, rows: &Array) -> Result<Array> {
    let batch = a.dim(0).max(0) as u32;
    let index = rows.as_dtype(mlx_rs::Dtype::Uint32)?;
    index.eval()?;
    if let Some(&bad) = index.as_slice::<u32>().iter().find(|&&r| r >= batch) {
        return Err(Error::InvalidInput {
            expected: format!("cache rows below the batch size {batch}"),
            found: bad.to_string(),
        });
    }
    Ok(a.take_axis(&index, 0)?)
}

/// The standard cache: keeps every position, growing along the time axis.
#[derive(Debug, Default, Clone)]
pub struct StandardCache {
    keys: Option<Array>,
    values: Option<Array>,
    offset: usize,
}

impl StandardCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvCache for StandardCache {
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let new = keys.dim(2) as usize;
        if values.dim(2) as usize != new {
            return Err(Error::InvalidInput {
                expected: format!("values with {new} positions like the keys"),
                found: format!("{} positions", values.dim(2)),
            });
        }
        let (k, v) = match (&self.keys, &self.values) {
            (Some(k), Some(v)) => (
                ops::concatenate(&[k.clone(), keys.clone()], 2)?,
                ops::concatenate(&[v.clone(), values.clone()], 2)?,
            ),
            _ => (keys.clone(), values.clone()),
        };
        self.keys = Some(k.clone());
        self.values = Some(v.clone());
        self.offset += new;
        Ok((k, v))
    }

    fn offset(&self) -> usize {
        self.offset
    }

    fn is_trimmable(&self) -> bool {
        true
    }

    fn trim(&mut self, n: usize) -> usize {
        let n = n.min(self.offset);
        if n == 0 {
            return 0;
        }
        let keep = (self.offset - n) as i32;
        let cut = |a: &Array| -> Option<Array> {
            a.split_at_indices(&[keep], 2).ok().and_then(|mut parts| {
                if parts.is_empty() {
                    None
                } else {
                    Some(parts.swap_remove(0))
                }
            })
        };
        if keep == 0 {
            self.keys = None;
            self.values = None;
        } else {
            self.keys = self.keys.as_ref().and_then(cut);
            self.values = self.values.as_ref().and_then(cut);
        }
        self.offset -= n;
        n
    }

    fn state(&self) -> Vec<Array> {
        match (&self.keys, &self.values) {
            (Some(k), Some(v)) => vec![k.clone(), v.clone()],
            _ => Vec::new(),
        }
    }

    fn set_state(&mut self, state: Vec<Array>, offset: usize) -> Result<()> {
        match <[Array; 2]>::try_from(state) {
            Ok([k, v]) => {
                if k.dim(2) as usize != offset || v.dim(2) as usize != offset {
                    return Err(Error::InvalidInput {
                        expected: format!("cache tensors with {offset} positions"),
                        found: format!("keys {:?}, values {:?}", k.shape(), v.shape()),
                    });
                }
                self.keys = Some(k);
                self.values = Some(v);
                self.offset = offset;
                Ok(())
            }
            Err(state) if state.is_empty() && offset == 0 => {
                *self = Self::default();
                Ok(())
            }
            Err(state) => Err(Error::InvalidInput {
                expected: "two cache tensors (keys, values)".into(),
                found: format!("{} tensors", state.len()),
            }),
        }
    }
}
