//! A cache that keeps a bounded number of positions: the `keep` first ones
//! (never evicted) and the most recent `max_size − keep`.
//!
//! It serves sliding-window layers (`RotatingCache::new(window, 0)`: each
//! query sees exactly the `window` latest positions, itself included, as HF's
//! sliding-window attention) and `max_kv_size` (mlx-lm's
//! `RotatingKVCache(max_kv_size, keep=4)` on every layer).
//!
//! The keys are kept in temporal order. An update of `T` new positions
//! returns the kept positions, the latest `max_size − 1 − keep` stored ones
//! and the `T` new ones, so that every new query can see `max_size` keys;
//! afterwards at most `max_size` positions are stored. The mask that goes
//! with the returned keys comes from [`KvCache::key_layout`] (see
//! [`crate::mask`]).

use mlx_rs::{ops, Array};

use crate::cache::{check_new, positions, CacheKind, KeyLayout, KvCache, StandardCache};
use crate::error::{Error, Result};

/// A bounded cache: `keep` first positions plus a window of recent ones.
#[derive(Debug, Clone)]
pub struct RotatingCache {
    max_size: usize,
    keep: usize,
    /// The stored positions (its offset is their number).
    stored: StandardCache,
    offset: usize,
}

impl RotatingCache {
    /// A cache of at most `max_size` positions whose first `keep` are never
    /// evicted; `keep` must be below `max_size`.
    pub fn new(max_size: usize, keep: usize) -> Result<Self> {
        if max_size == 0 || keep >= max_size {
            return Err(Error::InvalidInput {
                expected: "a rotating cache with max_size ≥ 1 and keep < max_size".into(),
                found: format!("max_size {max_size}, keep {keep}"),
            });
        }
        Ok(RotatingCache {
            max_size,
            keep,
            stored: StandardCache::new(),
            offset: 0,
        })
    }

    /// The most positions kept.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The first positions that are never evicted.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Number of positions stored now (at most `max_size`).
    pub fn stored(&self) -> usize {
        self.offset.min(self.max_size)
    }

    /// The first `keep` and the last `n − keep` positions of `x` when it
    /// holds more than `n`.
    fn shrink(&self, x: &Array, n: usize) -> Result<Array> {
        let len = x.dim(2) as usize;
        if len <= n {
            return Ok(x.clone());
        }
        let tail = positions(x, len - (n - self.keep), len)?;
        if self.keep == 0 {
            return Ok(tail);
        }
        let head = positions(x, 0, self.keep)?;
        Ok(ops::concatenate(&[head, tail], 2)?)
    }
}

impl KvCache for RotatingCache {
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let new = check_new(keys, values)?;
        let (k, v) = match <[Array; 2]>::try_from(self.stored.state()) {
            Ok([k, v]) => {
                let room = self.max_size - 1;
                (
                    ops::concatenate(&[self.shrink(&k, room)?, keys.clone()], 2)?,
                    ops::concatenate(&[self.shrink(&v, room)?, values.clone()], 2)?,
                )
            }
            Err(_) => (keys.clone(), values.clone()),
        };
        let (sk, sv) = (
            self.shrink(&k, self.max_size)?,
            self.shrink(&v, self.max_size)?,
        );
        let stored = sk.dim(2) as usize;
        self.stored.set_state(vec![sk, sv], stored)?;
        self.offset += new;
        Ok((k, v))
    }

    fn offset(&self) -> usize {
        self.offset
    }

    /// Only while nothing has been evicted.
    fn is_trimmable(&self) -> bool {
        self.offset <= self.max_size
    }

    fn trim(&mut self, n: usize) -> usize {
        if !self.is_trimmable() {
            return 0;
        }
        let n = self.stored.trim(n);
        self.offset -= n;
        n
    }

    fn state(&self) -> Vec<Array> {
        self.stored.state()
    }

    /// `state` holds the `min(offset, max_size)` stored positions.
    fn set_state(&mut self, state: Vec<Array>, offset: usize) -> Result<()> {
        self.stored.set_state(state, offset.min(self.max_size))?;
        self.offset = offset;
        Ok(())
    }

    fn kind(&self) -> CacheKind {
        CacheKind::Rotating {
            max_size: self.max_size,
            keep: self.keep,
        }
    }

    fn key_layout(&self, new: usize) -> KeyLayout {
        let limit = Some((self.keep, self.max_size));
        if self.offset < self.max_size {
            // Nothing is evicted by this update: every position from 0.
            return KeyLayout {
                limit,
                ..KeyLayout::contiguous(self.offset + new)
            };
        }
        KeyLayout {
            sinks: self.keep,
            start: self.offset + 1 + self.keep - self.max_size,
            end: self.offset + new,
            limit,
        }
    }
}

/// One cache per layer for a model whose layer `i` attends within
/// `windows[i]` positions: a [`RotatingCache`] of that size (keeping
/// nothing) for sliding layers, a [`crate::cache::StandardCache`] for the
/// others.
pub fn window_caches(windows: &[Option<usize>]) -> Vec<Box<dyn KvCache>> {
    windows
        .iter()
        .map(|w| match w.and_then(|w| RotatingCache::new(w, 0).ok()) {
            Some(rotating) => Box::new(rotating) as Box<dyn KvCache>,
            None => Box::new(crate::cache::StandardCache::new()),
        })
        .collect()
}
