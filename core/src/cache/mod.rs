//! Key/value caches.
//!
//! One [`KvCache`] per attention layer. Keys and values are
//! `[B, kv_heads, T, dim]`; keys and values may have different widths (MLA
//! keeps a compressed latent and a rope key), and a cache may keep only a
//! window (rotating) or quantize what it stores.

pub mod quantized;
pub mod rotating;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{ops, Array};
use serde::{Deserialize, Serialize};

use crate::cache::quantized::QuantizedKvCache;
use crate::error::{Error, Result};

/// What kind of cache a layer has, with the settings that shape its state
/// (saved with a prompt cache and checked when one is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// Every position, full precision ([`StandardCache`]).
    Standard,
    /// A window of recent positions plus `keep` first ones
    /// ([`crate::cache::rotating::RotatingCache`]).
    Rotating {
        /// Positions kept at most.
        max_size: usize,
        /// The first positions, never evicted.
        keep: usize,
    },
    /// Every position, quantized ([`QuantizedKvCache`]).
    Quantized {
        /// Bits per element.
        bits: i32,
        /// Elements per scale and bias.
        group_size: i32,
    },
    /// A cache of a plugin's own (e.g. an MLA latent cache), by name.
    Other(String),
}

impl std::fmt::Display for CacheKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheKind::Standard => f.write_str("standard"),
            CacheKind::Rotating { max_size, keep } => {
                write!(f, "rotating(max_size={max_size}, keep={keep})")
            }
            CacheKind::Quantized { bits, group_size } => {
                write!(f, "quantized(bits={bits}, group_size={group_size})")
            }
            CacheKind::Other(name) => f.write_str(name),
        }
    }
}

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

    /// The kind of cache and its settings.
    fn kind(&self) -> CacheKind {
        CacheKind::Other(std::any::type_name::<Self>().to_string())
    }

    /// Which positions the keys returned by the next
    /// [`KvCache::update_and_fetch`] of `new` positions stand for, so the
    /// attention mask can be built before the update (see [`crate::mask`]).
    /// The default: every position from 0, in order.
    fn key_layout(&self, new: usize) -> KeyLayout {
        KeyLayout::contiguous(self.offset() + new)
    }

    /// The same content as a quantized cache (mlx-lm's `to_quantized`), or
    /// `None` when this kind does not convert (then it stays as it is).
    fn to_quantized(&self, _bits: i32, _group_size: i32) -> Result<Option<Box<dyn KvCache>>> {
        Ok(None)
    }

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
        let new = check_new(keys, values)?;
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
        let keep = self.offset - n;
        self.keys = first_positions(self.keys.as_ref(), keep);
        self.values = first_positions(self.values.as_ref(), keep);
        self.offset = keep;
        n
    }

    fn state(&self) -> Vec<Array> {
        match (&self.keys, &self.values) {
            (Some(k), Some(v)) => vec![k.clone(), v.clone()],
            _ => Vec::new(),
        }
    }

    fn kind(&self) -> CacheKind {
        CacheKind::Standard
    }

    fn to_quantized(&self, bits: i32, group_size: i32) -> Result<Option<Box<dyn KvCache>>> {
        let mut quantized = QuantizedKvCache::new(bits, group_size)?;
        if let (Some(k), Some(v)) = (&self.keys, &self.values) {
            quantized.update_and_fetch(k, v)?;
        }
        Ok(Some(Box::new(quantized)))
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

/// Positions `start..end` (axis 2) of a `[B, heads, T, dim]` array.
pub(crate) fn positions(x: &Array, start: usize, end: usize) -> Result<Array> {
    Ok(x.try_index((.., .., start as i32..end as i32))?)
}

/// The first `n` positions of a stored tensor (`None` for none).
pub(crate) fn first_positions(x: Option<&Array>, n: usize) -> Option<Array> {
    x.filter(|_| n > 0).and_then(|a| positions(a, 0, n).ok())
}

/// Checks that `keys` and `values` hold the same number of new positions.
pub(crate) fn check_new(keys: &Array, values: &Array) -> Result<usize> {
    let new = keys.dim(2) as usize;
    if values.dim(2) as usize != new {
        return Err(Error::InvalidInput {
            expected: format!("values with {new} positions like the keys"),
            found: format!("{} positions", values.dim(2)),
        });
    }
    Ok(new)
}

/// Which sequence positions the keys a cache returns stand for: `0..sinks`,
/// then `start..end`, in that order; and the cache's own visibility limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLayout {
    /// The first positions kept in front (`0..sinks`).
    pub sinks: usize,
    /// First position of the recent run.
    pub start: usize,
    /// One past the last position: the number of positions seen so far,
    /// the new ones included.
    pub end: usize,
    /// `(keep, max_size)` of a rotating cache: each query sees positions
    /// below `keep` and its `max_size − keep` latest ones. `None`: no limit.
    pub limit: Option<(usize, usize)>,
}

impl KeyLayout {
    /// Every position `0..end`, no limit (a standard cache).
    pub fn contiguous(end: usize) -> Self {
        KeyLayout {
            sinks: 0,
            start: 0,
            end,
            limit: None,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.sinks + self.end - self.start
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of every key, in the order the cache returns them.
    pub fn positions(&self) -> Vec<i32> {
        (0..self.sinks)
            .chain(self.start..self.end)
            .map(|p| p as i32)
            .collect()
    }

    /// Whether the layer window and the cache limit let query `q` see key
    /// `k` (causality and padding aside).
    pub(crate) fn allows(&self, q: usize, k: usize, window: Option<usize>) -> bool {
        let in_window = window.is_none_or(|w| k + w > q);
        let in_limit = self
            .limit
            .is_none_or(|(keep, max)| k < keep || k + max.saturating_sub(keep) > q);
        in_window && in_limit
    }
}
