//! forge-vision: what vision models share.
//!
//! - [`processor`]: image preprocessing as HF's image processors do it, from
//!   `preprocessor_config.json` (decode, resize, crop, rescale, normalize).
//! - [`patches`]: Qwen2-VL's smart resize and patch flattening.
//! - [`resize`]: the antialiased bilinear / bicubic resize behind it.
//! - [`vit`]: LayerNorm, activations, attention, the encoder layer and the
//!   patch embedding of ViT-style vision towers (CLIP, SigLIP).

pub mod error;
pub mod patches;
pub mod processor;
pub mod resize;
pub mod tower;
pub mod vit;

pub use error::{Result, VisionError};
pub use patches::{PatchBatch, Patching};
pub use processor::{ImageProcessor, RgbImage};
