//! The towers' configs as transformers 5.23 saves them (`Qwen2VLVisionConfig`,
//! model_type `qwen2_vl_vision`; `Qwen2_5_VLVisionConfig`, `qwen2_5_vl_vision`),
//! and the sizes both towers share once checked.

use forge_core::{Error, ModelConfig, Result};
use serde::Deserialize;

/// `rope_parameters` of a vision tower: axial 2-D rotary.
#[derive(Debug, Clone, Deserialize)]
pub struct RopeArgs {
    /// Base of the inverse frequencies.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Must be "axial" (HF accepts nothing else for these towers).
    #[serde(default)]
    pub rope_type: Option<String>,
}

fn default_theta() -> f64 {
    10000.0
}

/// HF `Qwen2VLVisionConfig`; keys left out take HF's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Qwen2VisionArgs {
    /// Number of blocks.
    pub depth: usize,
    /// Width of the blocks.
    pub embed_dim: usize,
    /// Width of the merged output (the language model's width).
    pub hidden_size: usize,
    /// Activation of the blocks' MLP.
    pub hidden_act: String,
    /// MLP width over `embed_dim`.
    pub mlp_ratio: f64,
    /// Attention heads.
    pub num_heads: usize,
    /// Image channels (`in_chans` in the released checkpoints' `vision_config`).
    #[serde(alias = "in_chans")]
    pub in_channels: usize,
    /// Side of a patch in pixels.
    pub patch_size: usize,
    /// Patches merged per side by the merger.
    pub spatial_merge_size: usize,
    /// Frames per patch.
    pub temporal_patch_size: usize,
    /// Rotary settings.
    pub rope_parameters: Option<RopeArgs>,
}

/// HF `Qwen2_5_VLVisionConfig`; keys left out take HF's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Qwen25VisionArgs {
    /// Number of blocks.
    pub depth: usize,
    /// Width of the blocks.
    pub hidden_size: usize,
    /// Width of the merged output.
    pub out_hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Activation of the gated MLP.
    pub hidden_act: String,
    /// Attention heads.
    pub num_heads: usize,
    /// Image channels (`in_chans` in the released checkpoints' `vision_config`).
    #[serde(alias = "in_chans")]
    pub in_channels: usize,
    /// Side of a patch in pixels.
    pub patch_size: usize,
    /// Patches merged per side by the merger.
    pub spatial_merge_size: usize,
    /// Frames per patch.
    pub temporal_patch_size: usize,
    /// Side of an attention window in pixels.
    pub window_size: usize,
    /// Blocks that attend over the whole image instead of windows.
    pub fullatt_block_indexes: Vec<usize>,
    /// Rotary settings.
    pub rope_parameters: Option<RopeArgs>,
}

impl Default for Qwen2VisionArgs {
    fn default() -> Self {
        Qwen2VisionArgs {
            depth: 32,
            embed_dim: 1280,
            hidden_size: 3584,
            hidden_act: "quick_gelu".into(),
            mlp_ratio: 4.0,
            num_heads: 16,
            in_channels: 3,
            patch_size: 14,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            rope_parameters: None,
        }
    }
}

impl Default for Qwen25VisionArgs {
    fn default() -> Self {
        Qwen25VisionArgs {
            depth: 32,
            hidden_size: 3584,
            out_hidden_size: 3584,
            intermediate_size: 3420,
            hidden_act: "silu".into(),
            num_heads: 16,
            in_channels: 3,
            patch_size: 14,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            window_size: 112,
            fullatt_block_indexes: vec![7, 15, 23, 31],
            rope_parameters: None,
        }
    }
}

/// Config keys that do not change a still image's numerics:
/// `tokens_per_second` (video timing) and `spatial_patch_size` (the released
/// checkpoints' copy of `patch_size`, which HF does not read).
pub const IGNORED_KEYS: &[&str] = &["tokens_per_second", "spatial_patch_size"];

/// What both towers need, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TowerDims {
    /// Width of the blocks.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Image channels.
    pub channels: usize,
    /// Side of a patch.
    pub patch: usize,
    /// Frames per patch.
    pub temporal: usize,
    /// Patches merged per side.
    pub merge: usize,
    /// Width of the merged output.
    pub out_dim: usize,
    /// Rotary base.
    pub theta: f64,
}

impl TowerDims {
    /// Values per input patch row: `C·T·P·P`.
    pub fn patch_values(&self) -> usize {
        self.channels * self.temporal * self.patch * self.patch
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Checks the sizes; `dim_key` names the width's config key in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        config: &ModelConfig,
        dim: usize,
        dim_key: &str,
        heads: usize,
        sizes: [usize; 4],
        out_dim: usize,
        rope: Option<&RopeArgs>,
    ) -> Result<Self> {
        let [channels, patch, temporal, merge] = sizes;
        let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected,
            found,
        };
        if heads == 0 || !dim.is_multiple_of(heads) || !(dim / heads).is_multiple_of(4) {
            return Err(bad(
                "num_heads",
                format!("a divisor of {dim_key} ({dim}) leaving a head width divisible by 4 (2-D rotary)"),
                heads.to_string(),
            ));
        }
        for (key, v) in [
            ("in_channels", channels),
            ("patch_size", patch),
            ("temporal_patch_size", temporal),
            ("spatial_merge_size", merge),
        ] {
            if v == 0 {
                return Err(bad(key, "a value above 0".into(), "0".into()));
            }
        }
        let theta = match rope {
            None => default_theta(),
            Some(r) => {
                if let Some(t) = r.rope_type.as_deref().filter(|t| *t != "axial") {
                    return Err(bad(
                        "rope_parameters.rope_type",
                        "\"axial\"".into(),
                        format!("{t:?}"),
                    ));
                }
                r.rope_theta
            }
        };
        Ok(TowerDims {
            dim,
            heads,
            channels,
            patch,
            temporal,
            merge,
            out_dim,
            theta,
        })
    }
}
