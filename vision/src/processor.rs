//! Image preprocessing as HF's image processors do it, driven by the
//! model's `preprocessor_config.json`: decode (the `image` crate), convert
//! to RGB, resize (antialiased, [`crate::resize`]), center crop, then
//! rescale and normalize in `f32`, giving `pixel_values` `[B, 3, H, W]`.
//!
//! The reference is the default (torchvision) backend of transformers 5:
//! resizing and cropping act on `uint8` pixels; rescale and normalize are
//! fused as `(x - mean / factor) / (std / factor)` in `f32`.

use std::path::{Path, PathBuf};

use forge_core::mlx_rs::Array;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, VisionError};
use crate::patches::{PatchBatch, Patching, PatchingConfig};
use crate::resize::{resize_plane, Filter};

/// A decoded RGB image, channel-planar: `data[c * height * width + y * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `3 × height × width` bytes, one plane per channel.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Decodes PNG or JPEG bytes; `name` is used in messages.
    pub fn decode(bytes: &[u8], name: &Path) -> Result<Self> {
        let decoded = image::load_from_memory(bytes).map_err(|e| VisionError::Decode {
            path: name.to_path_buf(),
            message: e.to_string(),
        })?;
        // PIL's convert("RGB"): grey is replicated, alpha dropped.
        let rgb = decoded.to_rgb8();
        let (width, height) = (rgb.width() as usize, rgb.height() as usize);
        let mut data = vec![0u8; 3 * width * height];
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                data[c * width * height + i] = px.0[c];
            }
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// Reads and decodes an image file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&bytes, path)
    }

    fn plane(&self, c: usize) -> &[u8] {
        let n = self.width * self.height;
        &self.data[c * n..(c + 1) * n]
    }

    /// Resizes every channel to `width × height`.
    pub fn resize(&self, width: usize, height: usize, filter: Filter) -> RgbImage {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let data = (0..3)
            .flat_map(|c| {
                resize_plane(
                    self.plane(c),
                    (self.width, self.height),
                    (width, height),
                    filter,
                )
            })
            .collect();
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// The centered `width × height` window (zero-padded where the image is smaller).
    pub fn center_crop(&self, width: usize, height: usize) -> RgbImage {
        // HF pads to at least the crop size first (extra row/column on the bottom/right).
        let (pad_left, pad_top) = (
            width.saturating_sub(self.width) / 2,
            height.saturating_sub(self.height) / 2,
        );
        let (full_w, full_h) = (self.width.max(width), self.height.max(height));
        let top = (full_h - height) / 2;
        let left = (full_w - width) / 2;
        let mut data = vec![0u8; 3 * width * height];
        for c in 0..3 {
            for y in 0..height {
                for x in 0..width {
                    let (sy, sx) = (y + top, x + left);
                    let inside = sy >= pad_top
                        && sx >= pad_left
                        && sy - pad_top < self.height
                        && sx - pad_left < self.width;
                    if inside {
                        data[c * width * height + y * width + x] =
                            self.plane(c)[(sy - pad_top) * self.width + (sx - pad_left)];
                    }
                }
            }
        }
        RgbImage {
            width,
            height,
            data,
        }
    }
}

/// `size` and `crop_size` of a preprocessor config.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SizeSpec {
    /// Resize so the shorter edge has this length (aspect ratio kept).
    pub shortest_edge: Option<usize>,
    /// Used with `shortest_edge` by some processors (not supported here).
    pub longest_edge: Option<usize>,
    /// Exact height.
    pub height: Option<usize>,
    /// Exact width.
    pub width: Option<usize>,
}

/// The keys of `preprocessor_config.json` that change pixel values.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessorConfig {
    /// The HF class, e.g. "CLIPImageProcessor".
    #[serde(default)]
    pub image_processor_type: Option<String>,
    /// Resize at all.
    #[serde(default = "yes")]
    pub do_resize: bool,
    /// Target size of the resize.
    #[serde(default)]
    pub size: SizeSpec,
    /// PIL resample code (2 bilinear, 3 bicubic).
    #[serde(default = "bicubic")]
    pub resample: u32,
    /// Center crop after resizing.
    #[serde(default)]
    pub do_center_crop: bool,
    /// Size of the center crop.
    #[serde(default)]
    pub crop_size: SizeSpec,
    /// Multiply by `rescale_factor`.
    #[serde(default = "yes")]
    pub do_rescale: bool,
    /// Usually 1/255.
    #[serde(default = "one_255th")]
    pub rescale_factor: f64,
    /// Subtract the mean and divide by the std, per channel.
    #[serde(default = "yes")]
    pub do_normalize: bool,
    /// Per-channel mean.
    #[serde(default)]
    pub image_mean: Option<Vec<f64>>,
    /// Per-channel std.
    #[serde(default)]
    pub image_std: Option<Vec<f64>>,
    /// Pad to a square or a size (not supported here).
    #[serde(default)]
    pub do_pad: bool,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}
fn one_255th() -> f64 {
    1.0 / 255.0
}

/// An image processor built from `preprocessor_config.json`.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: ProcessorConfig,
    filter: Filter,
    /// Qwen2-VL's smart resize and patch flattening, for its processor.
    patching: Option<Patching>,
    mean: [f32; 3],
    std: [f32; 3],
    path: PathBuf,
}

impl ImageProcessor {
    /// Reads `preprocessor_config.json` from a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("preprocessor_config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| VisionError::Io {
            path: path.clone(),
            source,
        })?;
        Self::from_json_str(&text, &path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let bad = |key: &str, expected: &str, found: String| VisionError::Config {
            path: path.to_path_buf(),
            key: key.into(),
            expected: expected.into(),
            found,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad("(file)", "valid JSON", e.to_string()))?;
        let config: ProcessorConfig = serde_json::from_value(value.clone())
            .map_err(|e| bad("(file)", "an image processor config", e.to_string()))?;
        let filter = Filter::from_pil_code(config.resample).ok_or_else(|| {
            bad(
                "resample",
                "2 (bilinear) or 3 (bicubic)",
                config.resample.to_string(),
            )
        })?;
        if config.do_pad {
            return Err(bad(
                "do_pad",
                "false (padding is not supported)",
                "true".into(),
            ));
        }
        let channels = |key: &str, v: &Option<Vec<f64>>| -> Result<[f32; 3]> {
            match v.as_deref() {
                Some([a, b, c]) => Ok([*a as f32, *b as f32, *c as f32]),
                Some(other) => Err(bad(key, "3 values (R, G, B)", format!("{other:?}"))),
                None if config.do_normalize => {
                    Err(bad(key, "3 values (R, G, B)", "no such key".into()))
                }
                None => Ok([0.0; 3]),
            }
        };
        let mean = channels("image_mean", &config.image_mean)?;
        let std = channels("image_std", &config.image_std)?;
        let patching = match config.image_processor_type.as_deref() {
            Some(t) if t.starts_with("Qwen2VLImageProcessor") => {
                let keys: PatchingConfig = serde_json::from_value(value).map_err(|e| {
                    bad("(file)", "a Qwen2-VL image processor config", e.to_string())
                })?;
                let p = keys.resolve(config.size.shortest_edge, config.size.longest_edge);
                if p.patch_size == 0 || p.merge_size == 0 || p.temporal_patch_size == 0 {
                    return Err(bad(
                        "patch_size",
                        "patch_size, merge_size and temporal_patch_size above 0",
                        format!("{p:?}"),
                    ));
                }
                Some(p)
            }
            _ => None,
        };
        Ok(ImageProcessor {
            filter,
            patching,
            mean,
            std,
            path: path.to_path_buf(),
            config,
        })
    }

    /// The parsed config.
    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// Qwen2-VL's patching settings, when this is its processor.
    pub fn patching(&self) -> Option<&Patching> {
        self.patching.as_ref()
    }

    /// The (width, height) a `width × height` image is resized to.
    pub fn resized_size(&self, width: usize, height: usize) -> Result<(usize, usize)> {
        if let Some(p) = &self.patching {
            let (h, w) = p.smart_resize(height, width, &format!("a {width}x{height} image"))?;
            return Ok((w, h));
        }
        let s = &self.config.size;
        match (s.shortest_edge, s.longest_edge, s.height, s.width) {
            (_, _, Some(h), Some(w)) => Ok((w, h)),
            (Some(short), None, _, _) => {
                // HF: the long edge is int(short * long / short_in), truncated.
                let (short_in, long_in) = (width.min(height), width.max(height));
                let long = (short as f64 * long_in as f64 / short_in as f64) as usize;
                Ok(if width <= height {
                    (short, long)
                } else {
                    (long, short)
                })
            }
            _ => Err(VisionError::Config {
                path: self.path.clone(),
                key: "size".into(),
                expected: "{\"height\", \"width\"} or {\"shortest_edge\"}".into(),
                found: format!("{s:?}"),
            }),
        }
    }

    /// Resize and crop as configured: the `uint8` image the model sees.
    pub fn transform(&self, image: &RgbImage) -> Result<RgbImage> {
        let mut image = image.clone();
        if self.config.do_resize {
            let (w, h) = self.resized_size(image.width, image.height)?;
            image = image.resize(w, h, self.filter);
        }
        if self.config.do_center_crop {
            let c = &self.config.crop_size;
            let (Some(w), Some(h)) = (c.width, c.height) else {
                return Err(VisionError::Config {
                    path: self.path.clone(),
                    key: "crop_size".into(),
                    expected: "{\"height\", \"width\"}".into(),
                    found: format!("{c:?}"),
                });
            };
            image = image.center_crop(w, h);
        }
        Ok(image)
    }

    /// Rescale and normalize, channel-planar `f32` values.
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let plane = image.width * image.height;
        let factor = self.config.rescale_factor as f32;
        let (rescale, normalize) = (self.config.do_rescale, self.config.do_normalize);
        image
            .data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i / plane;
                let x = f32::from(v);
                match (rescale, normalize) {
                    // HF fuses the two: mean and std are divided by the factor first.
                    (true, true) => {
                        let inv = (1.0 / self.config.rescale_factor) as f32;
                        (x - self.mean[c] * inv) / (self.std[c] * inv)
                    }
                    (false, true) => (x - self.mean[c]) / self.std[c],
                    (true, false) => x * factor,
                    (false, false) => x,
                }
            })
            .collect()
    }

    /// `pixel_values` `[B, 3, H, W]` for images that end up the same size.
    pub fn preprocess(&self, images: &[RgbImage]) -> Result<Array> {
        let mut values = Vec::new();
        let mut size = None;
        for (i, image) in images.iter().enumerate() {
            let out = self.transform(image)?;
            match size {
                None => size = Some((out.width, out.height)),
                Some(s) if s != (out.width, out.height) => {
                    return Err(VisionError::BadImage {
                        what: format!("image {i}"),
                        expected: format!("{}x{} after resizing, like image 0", s.0, s.1),
                        found: format!("{}x{}", out.width, out.height),
                    })
                }
                Some(_) => {}
            }
            values.extend(self.normalize(&out));
        }
        let Some((w, h)) = size else {
            return Err(VisionError::BadImage {
                what: "images".into(),
                expected: "at least one image".into(),
                found: "none".into(),
            });
        };
        let shape = [images.len() as i32, 3, h as i32, w as i32];
        Ok(Array::from_slice(&values, &shape))
    }

    /// Qwen2-VL's `pixel_values` `[N, C·T·P·P]` and `image_grid_thw` for
    /// images of any sizes (an error for a processor without patching).
    pub fn preprocess_patches(&self, images: &[RgbImage]) -> Result<PatchBatch> {
        let Some(p) = &self.patching else {
            return Err(VisionError::Config {
                path: self.path.clone(),
                key: "image_processor_type".into(),
                expected: "Qwen2VLImageProcessor (a processor that cuts images into patches)"
                    .into(),
                found: format!("{:?}", self.config.image_processor_type),
            });
        };
        if images.is_empty() {
            return Err(VisionError::BadImage {
                what: "images".into(),
                expected: "at least one image".into(),
                found: "none".into(),
            });
        }
        let (mut rows, mut grid_thw) = (Vec::new(), Vec::new());
        for image in images {
            let out = self.transform(image)?;
            let values = self.normalize(&out);
            let (patches, grid) = p.flatten(&values, 3, out.height, out.width)?;
            rows.extend(patches);
            grid_thw.push(grid);
        }
        let dim = 3 * p.temporal_patch_size * p.patch_size * p.patch_size;
        let n = rows.len() / dim;
        Ok(PatchBatch {
            pixel_values: Array::from_slice(&rows, &[n as i32, dim as i32]),
            grid_thw,
        })
    }

    /// Reads and decodes image files, then [`ImageProcessor::preprocess_patches`].
    pub fn preprocess_patch_files(&self, paths: &[PathBuf]) -> Result<PatchBatch> {
        let images = paths
            .iter()
            .map(|p| RgbImage::open(p))
            .collect::<Result<Vec<_>>>()?;
        self.preprocess_patches(&images)
    }

    /// Reads, decodes and preprocesses image files.
    pub fn preprocess_files(&self, paths: &[PathBuf]) -> Result<Array> {
        let images = paths
            .iter()
            .map(|p| RgbImage::open(p))
            .collect::<Result<Vec<_>>>()?;
        self.preprocess(&images)
    }
}
