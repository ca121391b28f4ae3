//! Qwen2-VL's image processor (`Qwen2VLImageProcessor`): "smart resize" to a
//! multiple of `patch_size · merge_size` within a pixel budget, then the
//! normalized image cut into patches and flattened, in the order the
//! tower's patch merger expects.
//!
//! The output is what HF returns: `pixel_values` `[N, C·T·P·P]` with the
//! patches of all images one after the other, and `image_grid_thw`, one
//! `(t, h, w)` patch grid per image. A still image is one frame repeated
//! `temporal_patch_size` times (`t = 1`). Rows go merge window by merge
//! window (`merge_size × merge_size` patches each, row-major inside), the
//! windows themselves row-major; each row holds channel, then frame, then
//! the patch's pixels row-major.

use forge_core::mlx_rs::Array;
use serde::Deserialize;

use crate::error::{Result, VisionError};

/// The keys of `preprocessor_config.json` that only Qwen2-VL's processor has.
#[derive(Debug, Clone, Deserialize)]
pub struct PatchingConfig {
    /// Side of a patch in pixels (HF default 14).
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    /// Frames per patch (HF default 2).
    #[serde(default = "default_two")]
    pub temporal_patch_size: usize,
    /// Patches merged per side by the tower's merger (HF default 2).
    #[serde(default = "default_two")]
    pub merge_size: usize,
    /// Older configs' spelling of `size.shortest_edge` (the least number of pixels).
    #[serde(default)]
    pub min_pixels: Option<usize>,
    /// Older configs' spelling of `size.longest_edge` (the most pixels).
    #[serde(default)]
    pub max_pixels: Option<usize>,
}

fn default_patch() -> usize {
    14
}
fn default_two() -> usize {
    2
}

/// HF's defaults: `size.shortest_edge` 56·56 and `size.longest_edge` 28·28·1280 pixels.
pub const DEFAULT_MIN_PIXELS: usize = 56 * 56;
/// See [`DEFAULT_MIN_PIXELS`].
pub const DEFAULT_MAX_PIXELS: usize = 28 * 28 * 1280;

/// How images are resized and cut into patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patching {
    /// Side of a patch in pixels.
    pub patch_size: usize,
    /// Frames per patch.
    pub temporal_patch_size: usize,
    /// Patches merged per side.
    pub merge_size: usize,
    /// The least number of pixels after resizing.
    pub min_pixels: usize,
    /// The most pixels after resizing.
    pub max_pixels: usize,
}

/// Patches of several images, as HF's processor returns them.
#[derive(Debug, Clone)]
pub struct PatchBatch {
    /// `[N, C·T·P·P]` f32, the patches of every image in turn.
    pub pixel_values: Array,
    /// `(t, h, w)` patch grid of each image; `t·h·w` rows of `pixel_values` each.
    pub grid_thw: Vec<[usize; 3]>,
}

impl PatchBatch {
    /// `image_grid_thw` as an int32 array `[images, 3]`.
    pub fn grid_thw_array(&self) -> Array {
        let flat: Vec<i32> = self
            .grid_thw
            .iter()
            .flat_map(|g| g.iter().map(|&v| v as i32))
            .collect();
        Array::from_slice(&flat, &[self.grid_thw.len() as i32, 3])
    }
}

impl Patching {
    /// Pixels per side of the resized image must be a multiple of this.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// The `(height, width)` HF's `smart_resize` gives a `height × width`
    /// image: each side rounded to a multiple of [`Patching::factor`]
    /// (Python's round, ties to even), then scaled down to at most
    /// `max_pixels` or up to at least `min_pixels`, keeping the aspect ratio
    /// as well as the multiples allow. `what` names the image in errors.
    pub fn smart_resize(&self, height: usize, width: usize, what: &str) -> Result<(usize, usize)> {
        let bad = |expected: &str, found: String| VisionError::BadImage {
            what: what.into(),
            expected: expected.into(),
            found,
        };
        if height == 0 || width == 0 {
            return Err(bad(
                "an image of at least 1x1 pixels",
                format!("{width}x{height}"),
            ));
        }
        let (h, w) = (height as f64, width as f64);
        if h.max(w) / h.min(w) > 200.0 {
            return Err(bad(
                "an aspect ratio of at most 200 (Qwen2-VL's smart_resize)",
                format!("{width}x{height}"),
            ));
        }
        let f = self.factor() as f64;
        let mut h_bar = (h / f).round_ties_even() * f;
        let mut w_bar = (w / f).round_ties_even() * f;
        if h_bar * w_bar > self.max_pixels as f64 {
            let beta = (h * w / self.max_pixels as f64).sqrt();
            h_bar = f.max((h / beta / f).floor() * f);
            w_bar = f.max((w / beta / f).floor() * f);
        } else if h_bar * w_bar < self.min_pixels as f64 {
            let beta = (self.min_pixels as f64 / (h * w)).sqrt();
            h_bar = (h * beta / f).ceil() * f;
            w_bar = (w * beta / f).ceil() * f;
        }
        Ok((h_bar as usize, w_bar as usize))
    }

    /// Cuts a normalized channel-planar image (`channels × height × width`
    /// values) into `[h·w, C·T·P·P]` rows in merge order; returns the rows
    /// and the `(1, h, w)` grid.
    pub fn flatten(
        &self,
        values: &[f32],
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<(Vec<f32>, [usize; 3])> {
        let (p, m, t) = (self.patch_size, self.merge_size, self.temporal_patch_size);
        if !height.is_multiple_of(p * m) || !width.is_multiple_of(p * m) {
            return Err(VisionError::BadImage {
                what: "resized image".into(),
                expected: format!(
                    "sides that are multiples of patch_size·merge_size = {}",
                    p * m
                ),
                found: format!("{width}x{height}"),
            });
        }
        let (gh, gw) = (height / p, width / p);
        let mut rows = Vec::with_capacity(values.len() * t);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (y0, x0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                        for c in 0..channels {
                            let plane = &values[c * height * width..(c + 1) * height * width];
                            for _ in 0..t {
                                for y in y0..y0 + p {
                                    rows.extend_from_slice(
                                        &plane[y * width + x0..y * width + x0 + p],
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok((rows, [1, gh, gw]))
    }
}

impl PatchingConfig {
    /// Resolves the pixel budget: `min_pixels` / `max_pixels` when given
    /// (they win, as in HF), else `size.shortest_edge` / `size.longest_edge`.
    pub fn resolve(&self, shortest_edge: Option<usize>, longest_edge: Option<usize>) -> Patching {
        Patching {
            patch_size: self.patch_size,
            temporal_patch_size: self.temporal_patch_size,
            merge_size: self.merge_size,
            min_pixels: self
                .min_pixels
                .or(shortest_edge)
                .unwrap_or(DEFAULT_MIN_PIXELS),
            max_pixels: self
                .max_pixels
                .or(longest_edge)
                .unwrap_or(DEFAULT_MAX_PIXELS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen(min_pixels: usize, max_pixels: usize) -> Patching {
        Patching {
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            min_pixels,
            max_pixels,
        }
    }

    #[test]
    fn smart_resize_takes_each_branch_like_hf() {
        // Values printed by transformers 5.23's smart_resize (factor 28).
        let p = qwen(DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS);
        assert_eq!(p.smart_resize(480, 640, "x").unwrap(), (476, 644));
        // 42 / 28 = 1.5 rounds to even (2); 70 / 28 = 2.5 rounds to 2.
        assert_eq!(p.smart_resize(42, 70, "x").unwrap(), (56, 56));
        let small = qwen(112 * 112, DEFAULT_MAX_PIXELS);
        assert_eq!(small.smart_resize(10, 20, "x").unwrap(), (84, 168));
        let big = qwen(DEFAULT_MIN_PIXELS, 256 * 256);
        assert_eq!(big.smart_resize(1000, 2000, "x").unwrap(), (168, 336));
    }

    #[test]
    fn smart_resize_refuses_extreme_shapes() {
        let p = qwen(DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS);
        let err = p.smart_resize(1, 201, "thin.png").unwrap_err().to_string();
        assert!(
            err.contains("thin.png") && err.contains("aspect ratio"),
            "{err}"
        );
        let err = p.smart_resize(0, 5, "empty.png").unwrap_err().to_string();
        assert!(err.contains("at least 1x1"), "{err}");
    }

    #[test]
    fn flatten_orders_rows_by_merge_window() {
        // 1 channel, 4x4 image, 1-px patches, 2x2 merge, 1 frame: value = y*4 + x.
        let p = Patching {
            patch_size: 1,
            temporal_patch_size: 1,
            merge_size: 2,
            min_pixels: 1,
            max_pixels: 100,
        };
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let (rows, grid) = p.flatten(&values, 1, 4, 4).unwrap();
        assert_eq!(grid, [1, 4, 4]);
        let want = [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15];
        assert_eq!(rows, want.map(|v| v as f32));
        assert!(p.flatten(&values[..12], 1, 3, 4).is_err());
    }
}
