//! The latent cache of multi-head latent attention.
//!
//! Per position and layer it keeps what `kv_a_proj_with_mqa` made of the
//! token, not per-head keys and values: the normalized latent
//! `[B, 1, T, kv_lora_rank]` and the rotated rope key `[B, 1, T,
//! qk_rope_head_dim]`, shared by every head. Both are expanded (or absorbed
//! into the queries) at attention time. For DeepSeek-V3 that is 576 numbers
//! per token and layer instead of 128 heads × (192 + 128).

use forge_core::cache::{KvCache, StandardCache};
use forge_core::mlx_rs::Array;
use forge_core::{Error, Result};

/// A per-layer latent cache: the [`KvCache`] "keys" are the latents and the
/// "values" are the rope keys; widths are checked on every update.
#[derive(Debug, Clone)]
pub struct LatentCache {
    latent_dim: i32,
    rope_dim: i32,
    inner: StandardCache,
}

impl LatentCache {
    /// An empty cache for latents of `latent_dim` and rope keys of `rope_dim`.
    pub fn new(latent_dim: usize, rope_dim: usize) -> Self {
        LatentCache {
            latent_dim: latent_dim as i32,
            rope_dim: rope_dim as i32,
            inner: StandardCache::new(),
        }
    }

    fn check(&self, what: &str, a: &Array, width: i32) -> Result<()> {
        let shape = a.shape();
        if shape.len() != 4 || shape[1] != 1 || shape[3] != width {
            return Err(Error::InvalidInput {
                expected: format!("{what} of shape [B, 1, T, {width}]"),
                found: format!("{shape:?}"),
            });
        }
        Ok(())
    }
}

impl KvCache for LatentCache {
    /// `keys`: the latents `[B, 1, T, kv_lora_rank]`; `values`: the rotated
    /// rope keys `[B, 1, T, qk_rope_head_dim]`.
    fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        self.check("latents", keys, self.latent_dim)?;
        self.check("rope keys", values, self.rope_dim)?;
        self.inner.update_and_fetch(keys, values)
    }

    fn offset(&self) -> usize {
        self.inner.offset()
    }

    fn is_trimmable(&self) -> bool {
        true
    }

    fn trim(&mut self, n: usize) -> usize {
        self.inner.trim(n)
    }

    fn state(&self) -> Vec<Array> {
        self.inner.state()
    }

    fn set_state(&mut self, state: Vec<Array>, offset: usize) -> Result<()> {
        if let [latent, rope] = state.as_slice() {
            self.check("latents", latent, self.latent_dim)?;
            self.check("rope keys", rope, self.rope_dim)?;
        }
        self.inner.set_state(state, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forge_core::mlx_rs::ops;
    use proptest::prelude::*;

    fn positions(start: i32, n: i32, width: i32) -> Array {
        let a = ops::arange::<_, f32>(start as f32, (start + n) as f32, None).unwrap();
        ops::broadcast_to(a.reshape(&[1, 1, n, 1]).unwrap(), &[1, 1, n, width]).unwrap()
    }

    proptest! {
        /// Appending chunks and trimming keeps exactly the positions a
        /// one-shot cache of the same length would hold, in both tensors.
        #[test]
        fn chunks_and_trims_keep_positions(chunks in prop::collection::vec(1i32..5, 1..6), cut in 0usize..12) {
            let mut cache = LatentCache::new(3, 2);
            let mut total = 0;
            for n in &chunks {
                let (l, r) = cache
                    .update_and_fetch(&positions(total, *n, 3), &positions(total, *n, 2))
                    .unwrap();
                total += n;
                prop_assert_eq!(l.shape(), &[1, 1, total, 3]);
                prop_assert_eq!(r.shape(), &[1, 1, total, 2]);
            }
            let dropped = cache.trim(cut);
            prop_assert_eq!(dropped, cut.min(total as usize));
            let kept = total - dropped as i32;
            prop_assert_eq!(cache.offset(), kept as usize);
            let (l, r) = cache.update_and_fetch(&positions(kept, 1, 3), &positions(kept, 1, 2)).unwrap();
            let want: Vec<f32> = (0..=kept).map(|p| p as f32).collect();
            let col = |a: &Array| -> Vec<f32> {
                let first = a.split_at_indices(&[1], -1).unwrap().swap_remove(0);
                first.flatten(None, None).unwrap().contiguous().unwrap().as_slice::<f32>().to_vec()
            };
            prop_assert_eq!(col(&l), want.clone());
            prop_assert_eq!(col(&r), want);
        }
    }

    #[test]
    fn wrong_widths_are_refused() {
        let mut cache = LatentCache::new(3, 2);
        let err = cache
            .update_and_fetch(&positions(0, 2, 4), &positions(0, 2, 2))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[B, 1, T, 3]") && err.contains("[1, 1, 2, 4]"),
            "{err}"
        );
        let err = cache
            .update_and_fetch(&positions(0, 2, 3), &positions(0, 2, 5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rope keys"), "{err}");
        assert_eq!(cache.offset(), 0);
    }
}
