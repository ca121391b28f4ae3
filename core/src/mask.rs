//! Attention masks built from what each layer's cache hands to attention.
//!
//! A standard cache returns every position from 0; a rotating cache returns
//! its `keep` first positions and then a window of recent ones. Before a
//! forward pass each cache describes the keys it will return
//! ([`KeyLayout`], from [`KvCache::key_layout`]) and
//! [`layer_masks`] turns that, the layer's own sliding window and the
//! padding into the mask of each layer.
//!
//! Key position `k` is visible to query position `q` when `k ≤ q`, the
//! layer's window allows it (`q − window < k`, HF's sliding window: the
//! window counts the query itself), the cache's limit allows it (`k < keep`
//! or `q − (max_size − keep) < k`: each query sees the kept first positions
//! and its `max_size − keep` latest ones) and `k` is not padding.

use mlx_rs::fast::ScaledDotProductAttentionMask;
use mlx_rs::{ops, Array, Dtype};

use crate::cache::{KeyLayout, KvCache};
use crate::error::{Error, Result};

/// The mask of one layer's attention.
#[derive(Debug, Clone)]
pub enum LayerMask {
    /// Every key is visible to every query (one new token).
    None,
    /// Plain causal attention with the queries at the end (MLX's own mode).
    Causal,
    /// Additive mask `[B or 1, 1, T, keys]`.
    Array(Array),
}

impl LayerMask {
    /// The mask as MLX's fused attention takes it.
    pub fn sdpa(&self) -> Option<ScaledDotProductAttentionMask<'_>> {
        match self {
            LayerMask::None => None,
            LayerMask::Causal => Some(ScaledDotProductAttentionMask::Causal),
            LayerMask::Array(a) => Some(ScaledDotProductAttentionMask::Array(a)),
        }
    }

    /// The mask as an additive array `[B or 1, 1, queries, keys]` in
    /// `dtype` (0 where visible, the dtype's minimum where not), for an
    /// attention that computes its own scores (soft-capping, absorbed
    /// latents); `None` when every key is visible.
    pub fn additive(&self, queries: usize, keys: usize, dtype: Dtype) -> Result<Option<Array>> {
        match self {
            LayerMask::None => Ok(None),
            LayerMask::Array(a) => Ok(Some(a.as_dtype(dtype)?)),
            LayerMask::Causal => {
                let layout = KeyLayout::contiguous(keys);
                let positions = layout.positions();
                mask_array(&layout, &positions, queries, None, None, dtype).map(Some)
            }
        }
    }
}

/// The mask of each layer for `t` new positions: `windows[i]` is layer
/// `i`'s sliding window (`None`: full attention), `cache` the layers'
/// caches (`None`: no cache, the positions are `0..t`), `padding`
/// `[B, past + t]` with 0 at padding. Layers with the same window and key
/// layout share one mask.
pub fn layer_masks(
    cache: Option<&[Box<dyn KvCache>]>,
    windows: &[Option<usize>],
    t: usize,
    padding: Option<&Array>,
    dtype: Dtype,
) -> Result<Vec<LayerMask>> {
    let mut made: Vec<(KeyLayout, Option<usize>, LayerMask)> = Vec::new();
    let mut masks = Vec::with_capacity(windows.len());
    for (i, &window) in windows.iter().enumerate() {
        let layout = match cache.and_then(|c| c.get(i)) {
            Some(c) => c.key_layout(t),
            None => KeyLayout::contiguous(t),
        };
        let found = made
            .iter()
            .find(|(l, w, _)| *l == layout && *w == window)
            .map(|(_, _, m)| m.clone());
        let mask = match found {
            Some(m) => m,
            None => {
                let m = layer_mask(&layout, t, window, padding, dtype)?;
                made.push((layout, window, m.clone()));
                m
            }
        };
        masks.push(mask);
    }
    Ok(masks)
}

/// The mask for `t` new positions (the last `t` of `layout`) under a
/// layer `window`, with `padding` `[B, layout.end]` (0 = padding).
pub fn layer_mask(
    layout: &KeyLayout,
    t: usize,
    window: Option<usize>,
    padding: Option<&Array>,
    dtype: Dtype,
) -> Result<LayerMask> {
    if t == 0 || t > layout.end {
        return Err(Error::InvalidInput {
            expected: format!("between 1 and {} new positions", layout.end),
            found: t.to_string(),
        });
    }
    let positions = layout.positions();
    let last = layout.end - 1;
    // Keys in one ascending run and no rule that hides any of them from the
    // last query (the one that sees least): plain causal attention.
    let one_run = layout.sinks == 0 || layout.sinks == layout.start;
    let all_allowed = positions
        .iter()
        .all(|&k| layout.allows(last, k as usize, window));
    if padding.is_none() && one_run && all_allowed {
        return Ok(if t == 1 {
            LayerMask::None
        } else {
            LayerMask::Causal
        });
    }
    mask_array(layout, &positions, t, window, padding, dtype).map(LayerMask::Array)
}

fn mask_array(
    layout: &KeyLayout,
    positions: &[i32],
    t: usize,
    window: Option<usize>,
    padding: Option<&Array>,
    dtype: Dtype,
) -> Result<Array> {
    let (end, k) = (layout.end as i32, positions.len() as i32);
    let queries = ops::arange::<_, i32>(end - t as i32, end, None)?.reshape(&[t as i32, 1])?;
    let keys = Array::from_slice(positions, &[1, k]);
    let mut allowed = keys.le(&queries)?;
    if let Some(w) = window {
        let lower = ops::subtract(&queries, Array::from_int(w as i32))?;
        allowed = ops::logical_and(&allowed, keys.gt(&lower)?)?;
    }
    if let Some((keep, max)) = layout.limit {
        let recent = max.saturating_sub(keep) as i32;
        let lower = ops::subtract(&queries, Array::from_int(recent))?;
        let kept = keys.lt(Array::from_int(keep as i32))?;
        allowed = ops::logical_and(&allowed, ops::logical_or(&kept, keys.gt(&lower)?)?)?;
    }
    let mut allowed = allowed.reshape(&[1, 1, t as i32, k])?;
    if let Some(padding) = padding {
        if padding.ndim() != 2 || padding.dim(1) != end {
            return Err(Error::InvalidInput {
                expected: format!("an attention mask [B, {end}] (cached + new positions)"),
                found: format!("shape {:?}", padding.shape()),
            });
        }
        let b = padding.dim(0);
        let index = Array::from_slice(positions, &[k]);
        let real = padding
            .take_axis(&index, 1)?
            .reshape(&[b, 1, 1, k])?
            .gt(Array::from_int(0))?;
        allowed = ops::logical_and(&allowed, &real)?;
    }
    let zero = Array::from_f32(0.0).as_dtype(dtype)?;
    // The dtype's own finite minimum (HF's `torch.finfo(dtype).min`):
    // f32::MIN cast to f16 or bf16 is -inf, which makes a fully padded row NaN.
    let min = dtype.finfo_min().unwrap_or(f32::MIN as f64);
    let blocked = Array::from_f64(min).as_dtype(dtype)?;
    Ok(ops::select(&allowed, &zero, &blocked)?)
}
