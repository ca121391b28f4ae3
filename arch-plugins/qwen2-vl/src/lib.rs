//! The Qwen2-VL and Qwen2.5-VL vision towers for Forge.
//!
//! Registered under the model_types transformers 5.23's `save_pretrained`
//! writes for the towers saved alone: `qwen2_vl_vision`
//! (`Qwen2VisionTransformerPretrainedModel`) and `qwen2_5_vl_vision`
//! (`Qwen2_5_VisionTransformerPretrainedModel`). A full Qwen2-VL checkpoint
//! (`qwen2_vl`, tower and language model) is not served here; its tower
//! loads from a folder holding its `vision_config` as `config.json` (with
//! that model_type) and its tower tensors: the `visual.` / `model.visual.`
//! prefix of a full checkpoint is stripped.
//!
//! Modules, one per concept: [`patch_embed`] (Conv3d over pre-flattened
//! patches), [`rotary`] (2-D rotary), [`grid`] (`grid_thw`, positions in
//! merge order, per-frame blocks), [`window`] (Qwen2.5's windows and their
//! permutation), [`attention`] (block-diagonal attention), [`block`],
//! [`merger`], and [`tower`] (the whole tower as a `Model`).

pub mod attention;
pub mod block;
pub mod config;
pub mod grid;
pub mod merger;
pub mod patch_embed;
pub mod rotary;
pub mod tower;
pub mod window;

use forge_core::model::{Model, PlanItem};
use forge_core::registry::Architecture;
use forge_core::{Error, ModelConfig, Result, TensorMap, Weights};
use forge_vision::tower::Encoder;
use forge_vision::vit::Mlp;

use crate::attention::VisionAttention;
use crate::block::{Block, BlockMlp, Norm, NORM_EPS};
use crate::config::{Qwen25VisionArgs, Qwen2VisionArgs, TowerDims, IGNORED_KEYS};
use crate::merger::PatchMerger;
use crate::patch_embed::PatchEmbed;
use crate::rotary::VisionRotary;
use crate::tower::{QwenVisionTower, WindowSpec};
use forge_core::nn::{Activation, GatedMlp};

inventory::submit! {
    Architecture {
        model_type: "qwen2_vl_vision",
        aliases: &[],
        description: "Qwen2-VL vision tower: Conv3d patches with grid_thw, 2-D rotary, LayerNorm blocks, patch merger",
        ignored_config_keys: IGNORED_KEYS,
        sanitize: strip_visual_prefix,
        build: build_qwen2,
    }
}

inventory::submit! {
    Architecture {
        model_type: "qwen2_5_vl_vision",
        aliases: &[],
        description: "Qwen2.5-VL vision tower: windowed + full attention, RMSNorm, SwiGLU, patch merger",
        ignored_config_keys: IGNORED_KEYS,
        sanitize: strip_visual_prefix,
        build: build_qwen2_5,
    }
}

/// Tensors of a tower taken out of a full checkpoint carry `visual.` or
/// `model.visual.`; both load under the bare names.
pub fn strip_visual_prefix(_config: &ModelConfig, weights: TensorMap) -> Result<TensorMap> {
    Ok(weights
        .into_iter()
        .map(|(name, a)| {
            let bare = name
                .strip_prefix("model.visual.")
                .or_else(|| name.strip_prefix("visual."))
                .map(str::to_string);
            (bare.unwrap_or(name), a)
        })
        .collect())
}

/// Builds a Qwen2-VL tower.
pub fn build_qwen2(config: &ModelConfig, w: &mut Weights) -> Result<Box<dyn Model>> {
    let args: Qwen2VisionArgs = config.parse_args(IGNORED_KEYS)?;
    let dims = TowerDims::check(
        config,
        args.embed_dim,
        "embed_dim",
        args.num_heads,
        [
            args.in_channels,
            args.patch_size,
            args.temporal_patch_size,
            args.spatial_merge_size,
        ],
        args.hidden_size,
        args.rope_parameters.as_ref(),
    )?;
    let act = Activation::parse(&args.hidden_act, config, "hidden_act")?;
    let inner = (args.embed_dim as f64 * args.mlp_ratio) as usize;
    let blocks = (0..args.depth)
        .map(|i| {
            let p = format!("blocks.{i}");
            Block {
                norm1: Norm::load(w, &format!("{p}.norm1"), dims.dim, false),
                attn: VisionAttention::load(w, &format!("{p}.attn"), dims.dim, dims.heads),
                norm2: Norm::load(w, &format!("{p}.norm2"), dims.dim, false),
                mlp: BlockMlp::Plain(Mlp::load(w, &format!("{p}.mlp"), dims.dim, inner, act)),
            }
        })
        .collect();
    let plan_lines = vec![
        PlanItem::new("attention", format!("{} heads, per image", dims.heads)),
        PlanItem::new("mlp", format!("{act:?}, intermediate {inner}")),
        PlanItem::new("norm", format!("LayerNorm, eps {NORM_EPS}")),
    ];
    Ok(Box::new(Encoder(tower(
        "a Qwen2-VL vision tower",
        dims,
        w,
        blocks,
        false,
        None,
        plan_lines,
    ))))
}

/// Builds a Qwen2.5-VL tower.
pub fn build_qwen2_5(config: &ModelConfig, w: &mut Weights) -> Result<Box<dyn Model>> {
    let args: Qwen25VisionArgs = config.parse_args(IGNORED_KEYS)?;
    let dims = TowerDims::check(
        config,
        args.hidden_size,
        "hidden_size",
        args.num_heads,
        [
            args.in_channels,
            args.patch_size,
            args.temporal_patch_size,
            args.spatial_merge_size,
        ],
        args.out_hidden_size,
        args.rope_parameters.as_ref(),
    )?;
    let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected,
        found,
    };
    let unit_px = dims.merge * dims.patch;
    // HF floors: window_size // spatial_merge_size // patch_size merged units per side.
    if args.window_size < unit_px {
        return Err(bad(
            "window_size",
            format!("at least spatial_merge_size · patch_size ({unit_px}) pixels"),
            args.window_size.to_string(),
        ));
    }
    if let Some(i) = args
        .fullatt_block_indexes
        .iter()
        .find(|&&i| i >= args.depth)
    {
        return Err(bad(
            "fullatt_block_indexes",
            format!("block indexes below depth ({})", args.depth),
            i.to_string(),
        ));
    }
    let act = Activation::parse(&args.hidden_act, config, "hidden_act")?;
    let blocks = (0..args.depth)
        .map(|i| {
            let p = format!("blocks.{i}");
            Block {
                norm1: Norm::load(w, &format!("{p}.norm1"), dims.dim, true),
                attn: VisionAttention::load(w, &format!("{p}.attn"), dims.dim, dims.heads),
                norm2: Norm::load(w, &format!("{p}.norm2"), dims.dim, true),
                mlp: BlockMlp::Gated(GatedMlp::load(
                    w,
                    &format!("{p}.mlp"),
                    dims.dim,
                    args.intermediate_size,
                    true,
                    act,
                )),
            }
        })
        .collect();
    let side = args.window_size / unit_px;
    let plan_lines = vec![
        PlanItem::new(
            "attention",
            format!(
                "{} heads; windows of {ws}x{ws} px ({side}x{side} merged units), full attention in blocks {:?}",
                dims.heads,
                args.fullatt_block_indexes,
                ws = args.window_size
            ),
        ),
        PlanItem::new(
            "mlp",
            format!("gated {act:?}, intermediate {}", args.intermediate_size),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {NORM_EPS}")),
        PlanItem::new(
            "output order",
            "last_hidden_state / hidden_states window-permuted; pooler_output original",
        ),
    ];
    let windows = WindowSpec {
        side,
        full_blocks: args.fullatt_block_indexes.clone(),
    };
    Ok(Box::new(Encoder(tower(
        "a Qwen2.5-VL vision tower",
        dims,
        w,
        blocks,
        true,
        Some(windows),
        plan_lines,
    ))))
}

fn tower(
    name: &'static str,
    dims: TowerDims,
    w: &mut Weights,
    blocks: Vec<Block>,
    rms: bool,
    windows: Option<WindowSpec>,
    plan_lines: Vec<PlanItem>,
) -> QwenVisionTower {
    QwenVisionTower {
        name,
        patch_embed: PatchEmbed::load(w, "patch_embed", &dims),
        rotary: VisionRotary::new(dims.head_dim(), dims.theta),
        merger: PatchMerger::load(w, "merger", dims.dim, dims.merge, dims.out_dim, rms),
        blocks,
        windows,
        plan_lines,
        dims,
    }
}
