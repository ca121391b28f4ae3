//! The batched cache with left padding: the per-layer caches of a batch of
//! sequences of different lengths, right-aligned so that every row's last
//! token sits in the same column, and the left padding of each row.
//!
//! A row with `p` positions of left padding holds its real tokens in
//! columns `p..`; the attention mask `[B, offset + new]` (see
//! [`BatchCache::mask`]) is 0 on the padding, which the models leave out of
//! attention. Positions count from the first column, padding included:
//! rotary embeddings depend only on the distance between query and key, so
//! a row sees the same logits as it would alone (up to rounding).
//!
//! Finished rows can be dropped ([`BatchCache::filter`]) so the rest of the
//! batch no longer computes them, and new rows added ([`BatchCache::extend`])
//! once they have been prefilled up to the same column (left-padded to the
//! batch's offset: see [`left_pad_to`]). Padding already-cached rows later
//! would be wrong: their keys were rotated at their old columns.

use mlx_rs::{ops, Array};

use crate::cache::KvCache;
use crate::error::{Error, Result};

/// Left-pads `prompts` to the longest one with `pad`: the ids `[B, W]`
/// row-major, and each row's padding.
pub fn left_pad(prompts: &[Vec<u32>], pad: u32) -> (Vec<u32>, Vec<usize>) {
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    left_pad_to(prompts, width, pad)
}

/// Left-pads `prompts` (none longer than `width`) to `width` columns.
pub fn left_pad_to(prompts: &[Vec<u32>], width: usize, pad: u32) -> (Vec<u32>, Vec<usize>) {
    let mut ids = Vec::with_capacity(prompts.len() * width);
    let mut padding = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        let p = width.saturating_sub(prompt.len());
        ids.extend(std::iter::repeat_n(pad, p));
        ids.extend_from_slice(prompt);
        padding.push(p);
    }
    (ids, padding)
}

/// The attention mask of rows with `left_padding` over `total` columns,
/// row-major `[B, total]`: 0 on each row's first `padding` columns, 1 after.
pub fn padding_mask(left_padding: &[usize], total: usize) -> Vec<i32> {
    left_padding
        .iter()
        .flat_map(|&p| (0..total).map(move |j| i32::from(j >= p)))
        .collect()
}

/// Per-layer caches of a left-padded batch and each row's padding.
pub struct BatchCache {
    layers: Vec<Box<dyn KvCache>>,
    left_padding: Vec<usize>,
}

impl BatchCache {
    /// Wraps fresh (empty) per-layer caches, e.g. `model.new_cache()`, for
    /// rows with the given left padding (the prompts not yet run).
    pub fn new(layers: Vec<Box<dyn KvCache>>, left_padding: Vec<usize>) -> Self {
        BatchCache {
            layers,
            left_padding,
        }
    }

    /// Number of rows.
    pub fn batch_size(&self) -> usize {
        self.left_padding.len()
    }

    /// Each row's left padding, in columns.
    pub fn left_padding(&self) -> &[usize] {
        &self.left_padding
    }

    /// Columns held so far (padding included): the next column's index.
    pub fn offset(&self) -> usize {
        self.layers.first().map_or(0, |c| c.offset())
    }

    /// The per-layer caches, to hand to [`crate::Model::forward`].
    pub fn layers_mut(&mut self) -> &mut [Box<dyn KvCache>] {
        &mut self.layers
    }

    /// The attention mask for `new` more columns, `[B, offset + new]` (1 on
    /// real tokens, 0 on padding), or `None` when no row is padded.
    pub fn mask(&self, new: usize) -> Option<Array> {
        if self.left_padding.iter().all(|&p| p == 0) {
            return None;
        }
        let total = self.offset() + new;
        let mask = padding_mask(&self.left_padding, total);
        Some(Array::from_slice(
            &mask,
            &[self.batch_size() as i32, total as i32],
        ))
    }

    /// Keeps only the rows `keep` (indices into the current rows, in the
    /// order given) in every layer. Keeping no row empties the cache.
    pub fn filter(&mut self, keep: &[usize]) -> Result<()> {
        if let Some(&bad) = keep.iter().find(|&&r| r >= self.batch_size()) {
            return Err(Error::InvalidInput {
                expected: format!("row indices below the batch size {}", self.batch_size()),
                found: bad.to_string(),
            });
        }
        if keep.is_empty() {
            for layer in &mut self.layers {
                layer.set_state(Vec::new(), 0)?;
            }
            self.left_padding.clear();
            return Ok(());
        }
        let rows: Vec<i32> = keep.iter().map(|&r| r as i32).collect();
        let rows = Array::from_slice(&rows, &[rows.len() as i32]);
        for layer in &mut self.layers {
            layer.select_rows(&rows)?;
        }
        self.left_padding = keep.iter().map(|&r| self.left_padding[r]).collect();
        Ok(())
    }

    /// Appends the rows of `other`, which must hold as many columns (the
    /// same offset): positions are columns, so rows can only be joined
    /// where their columns line up.
    pub fn extend(&mut self, other: BatchCache) -> Result<()> {
        if other.layers.len() != self.layers.len() || other.offset() != self.offset() {
            return Err(Error::InvalidInput {
                expected: format!(
                    "a batch cache with {} layers and {} columns",
                    self.layers.len(),
                    self.offset()
                ),
                found: format!(
                    "{} layers and {} columns",
                    other.layers.len(),
                    other.offset()
                ),
            });
        }
        for (layer, other_layer) in self.layers.iter_mut().zip(&other.layers) {
            let (a, b) = (layer.state(), other_layer.state());
            if a.len() != b.len() {
                return Err(Error::InvalidInput {
                    expected: format!("cache layers holding {} tensors", a.len()),
                    found: format!("{} tensors", b.len()),
                });
            }
            let joined = a
                .iter()
                .zip(&b)
                .map(|(x, y)| Ok(ops::concatenate(&[x.clone(), y.clone()], 0)?))
                .collect::<Result<Vec<_>>>()?;
            layer.set_state(joined, other.offset())?;
        }
        self.left_padding.extend(other.left_padding);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::StandardCache;
    use proptest::prelude::*;

    fn layers(n: usize) -> Vec<Box<dyn KvCache>> {
        (0..n)
            .map(|_| Box::new(StandardCache::new()) as Box<dyn KvCache>)
            .collect()
    }

    /// Keys `[B, 1, T, 1]` whose value at row r, column j is `100 r + j`.
    fn numbered(rows: &[i32], t: i32) -> Array {
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|&r| (0..t).map(move |j| (100 * r + j) as f32))
            .collect();
        Array::from_slice(&values, &[rows.len() as i32, 1, t, 1])
    }

    fn host(a: &Array) -> Vec<f32> {
        a.eval().unwrap();
        a.as_slice::<f32>().to_vec()
    }

    proptest! {
        /// Each row of the padded ids ends with its prompt, and the padding
        /// mask is 0 exactly on the added columns.
        #[test]
        fn left_padding_right_aligns_prompts(lengths in prop::collection::vec(1usize..12, 1..6)) {
            let prompts: Vec<Vec<u32>> = lengths
                .iter()
                .enumerate()
                .map(|(r, &n)| (0..n as u32).map(|j| 1 + 100 * r as u32 + j).collect())
                .collect();
            let (ids, padding) = left_pad(&prompts, 0);
            let width = *lengths.iter().max().unwrap();
            prop_assert_eq!(ids.len(), prompts.len() * width);
            let mask = padding_mask(&padding, width);
            for (r, prompt) in prompts.iter().enumerate() {
                let row = &ids[r * width..(r + 1) * width];
                prop_assert_eq!(padding[r], width - prompt.len());
                prop_assert_eq!(&row[padding[r]..], prompt.as_slice());
                let real: Vec<u32> = row
                    .iter()
                    .zip(&mask[r * width..(r + 1) * width])
                    .filter(|(_, &m)| m == 1)
                    .map(|(&t, _)| t)
                    .collect();
                prop_assert_eq!(&real, prompt);
            }
        }

        /// Filtering keeps exactly the chosen rows, in the order given, with
        /// their padding; the mask then covers the new token too.
        #[test]
        fn filter_keeps_chosen_rows(
            padding in prop::collection::vec(0usize..4, 1..6),
            picks in prop::collection::vec(0usize..6, 0..6),
        ) {
            let b = padding.len();
            let keep: Vec<usize> = picks.into_iter().filter(|&r| r < b).collect();
            let mut cache = BatchCache::new(layers(2), padding.clone());
            let rows: Vec<i32> = (0..b as i32).collect();
            for layer in cache.layers_mut() {
                layer.update_and_fetch(&numbered(&rows, 5), &numbered(&rows, 5)).unwrap();
            }
            cache.filter(&keep).unwrap();
            prop_assert_eq!(cache.batch_size(), keep.len());
            prop_assert_eq!(cache.offset(), if keep.is_empty() { 0 } else { 5 });
            let want_padding: Vec<usize> = keep.iter().map(|&r| padding[r]).collect();
            prop_assert_eq!(cache.left_padding(), want_padding.as_slice());
            let kept: Vec<i32> = keep.iter().map(|&r| r as i32).collect();
            if !keep.is_empty() {
                let (k, _) = cache.layers_mut()[1]
                    .update_and_fetch(&numbered(&kept, 1), &numbered(&kept, 1))
                    .unwrap();
                let want: Vec<f32> = kept
                    .iter()
                    .flat_map(|&r| (0..5).chain(0..1).map(move |j| (100 * r + j) as f32))
                    .collect();
                prop_assert_eq!(host(&k), want);
            }
        }

        /// Extending joins rows of equal offset: every row keeps its
        /// values and its padding, in order.
        #[test]
        fn extend_joins_rows(len in 1i32..6, a_rows in 1usize..3, b_rows in 1usize..3, pad in 0usize..3) {
            let a_ids: Vec<i32> = (0..a_rows as i32).collect();
            let b_ids: Vec<i32> = (0..b_rows as i32).map(|r| r + 10).collect();
            let mut a = BatchCache::new(layers(1), vec![0; a_rows]);
            a.layers_mut()[0].update_and_fetch(&numbered(&a_ids, len), &numbered(&a_ids, len)).unwrap();
            let mut b = BatchCache::new(layers(1), vec![pad; b_rows]);
            b.layers_mut()[0].update_and_fetch(&numbered(&b_ids, len), &numbered(&b_ids, len)).unwrap();
            a.extend(b).unwrap();
            prop_assert_eq!(a.offset(), len as usize);
            let mut want_padding = vec![0; a_rows];
            want_padding.extend(vec![pad; b_rows]);
            prop_assert_eq!(a.left_padding(), want_padding.as_slice());
            let want: Vec<f32> = a_ids
                .iter()
                .chain(&b_ids)
                .flat_map(|&id| (0..len).map(move |j| (100 * id + j) as f32))
                .collect();
            prop_assert_eq!(host(&a.layers_mut()[0].state()[0]), want);
        }
    }

    #[test]
    fn extend_refuses_other_offsets() {
        let mut a = BatchCache::new(layers(1), vec![0]);
        a.layers_mut()[0]
            .update_and_fetch(&numbered(&[0], 3), &numbered(&[0], 3))
            .unwrap();
        let mut b = BatchCache::new(layers(1), vec![0]);
        b.layers_mut()[0]
            .update_and_fetch(&numbered(&[1], 2), &numbered(&[1], 2))
            .unwrap();
        let err = a.extend(b).unwrap_err().to_string();
        assert!(
            err.contains("3 columns") && err.contains("2 columns"),
            "{err}"
        );
    }

    #[test]
    fn mask_is_none_without_padding_and_zero_on_padding() {
        let cache = BatchCache::new(layers(1), vec![0, 0]);
        assert!(cache.mask(3).is_none());
        let cache = BatchCache::new(layers(1), vec![2, 0]);
        let mask = cache.mask(3).unwrap();
        assert_eq!(mask.shape(), &[2, 3]);
        assert_eq!(mask.as_slice::<i32>(), &[0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn filter_names_a_bad_row() {
        let mut cache = BatchCache::new(layers(1), vec![0, 1]);
        let err = cache.filter(&[2]).unwrap_err().to_string();
        assert!(err.contains("below the batch size 2"), "{err}");
    }
}
