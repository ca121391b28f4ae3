//! The tower as a [`VisionTower`] (a `Model` of kind `Encoder` through
//! `forge_vision::tower::Encoder`): patches and
//! `image_grid_thw` in; `last_hidden_state`, the merged output (as
//! `pooler_output`) and every block's input plus the last output out.
//!
//! Input: `ModelInput::Pixels` with `pixel_values` `[N, C·T·P·P]` (what
//! Qwen2-VL's image processor makes, see `forge_vision::patches`) and
//! `ForwardOptions::image_grid_thw` `[images, 3]`. Several images of
//! different grids go in one call; each attends only to itself.
//!
//! Output, exactly as HF 5.23 returns it: `last_hidden_state` and
//! `hidden_states` are `[N, D]` (no batch axis); `pooler_output` is the
//! merger's output `[N / merge², out]`. For Qwen2.5-VL the patches run in
//! window order, so `last_hidden_state` and `hidden_states` come out in that
//! window-permuted order, and only `pooler_output` is put back in the
//! original (processor) order.

use forge_core::mlx_rs::Array;
use forge_core::model::{ForwardOptions, PlanItem};
use forge_core::{Error, Result};
use forge_vision::tower::{TowerOutput, VisionTower};

use crate::block::Block;
use crate::config::TowerDims;
use crate::grid::{frame_bounds, parse_grids, positions};
use crate::merger::PatchMerger;
use crate::patch_embed::PatchEmbed;
use crate::rotary::VisionRotary;
use crate::window::Windows;

/// Qwen2.5-VL's windowed attention.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// Merged units per window side (`window_size / (merge · patch)`).
    pub side: usize,
    /// Blocks that attend over whole frames.
    pub full_blocks: Vec<usize>,
}

/// A Qwen2-VL or Qwen2.5-VL vision tower.
#[derive(Debug)]
pub struct QwenVisionTower {
    /// "a Qwen2-VL vision tower", for messages.
    pub name: &'static str,
    /// Sizes.
    pub dims: TowerDims,
    /// The Conv3d patch embedding.
    pub patch_embed: PatchEmbed,
    /// 2-D rotary.
    pub rotary: VisionRotary,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// The merger.
    pub merger: PatchMerger,
    /// Windows (Qwen2.5-VL only).
    pub windows: Option<WindowSpec>,
    /// Plan lines particular to the tower (norm, MLP, attention pattern).
    pub plan_lines: Vec<PlanItem>,
}

impl QwenVisionTower {
    /// Runs the tower on patches `[N, C·T·P·P]` of the images in `grid_thw`.
    pub fn run(&self, pixels: &Array, grid_thw: &Array, keep: bool) -> Result<TowerOutput> {
        let h = self.patch_embed.forward(pixels)?;
        let grids = parse_grids(grid_thw, self.dims.merge, h.dim(0) as usize)?;
        let mut pos = positions(&grids, self.dims.merge);
        let frames = frame_bounds(&grids);
        let unit = self.dims.merge * self.dims.merge;
        let windows = self
            .windows
            .as_ref()
            .map(|spec| Windows::new(&grids, self.dims.merge, spec.side));
        let mut h = h;
        if let Some(w) = &windows {
            let order = w.patch_order(unit);
            pos = order.iter().map(|&i| pos[i as usize]).collect();
            let n = order.len() as i32;
            h = h.take_axis(Array::from_slice(&order, &[n]), 0)?;
        }
        let angles = self.rotary.angles(&pos)?;
        let mut hidden_states = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            if keep {
                hidden_states.push(h.clone());
            }
            let bounds = match (&windows, &self.windows) {
                (Some(w), Some(spec)) if !spec.full_blocks.contains(&i) => &w.bounds,
                _ => &frames,
            };
            h = block.forward(&h, &angles, bounds)?;
        }
        if keep {
            hidden_states.push(h.clone());
        }
        let mut merged = self.merger.forward(&h)?;
        if let Some(w) = &windows {
            let inverse = w.inverse();
            let n = inverse.len() as i32;
            merged = merged.take_axis(Array::from_slice(&inverse, &[n]), 0)?;
        }
        Ok(TowerOutput {
            last_hidden_state: h,
            pooler_output: Some(merged),
            hidden_states,
        })
    }
}

impl VisionTower for QwenVisionTower {
    fn name(&self) -> &'static str {
        self.name
    }

    /// Without `image_grid_thw` the patches cannot be placed: an error.
    fn encode(&self, _pixels: &Array, _keep_hidden: bool) -> Result<TowerOutput> {
        Err(Error::InvalidInput {
            expected: format!(
                "image_grid_thw [images, 3] with the patches for {} (ForwardOptions::image_grid_thw)",
                self.name
            ),
            found: "none".into(),
        })
    }

    fn encode_with(&self, pixels: &Array, options: &ForwardOptions) -> Result<TowerOutput> {
        match &options.image_grid_thw {
            Some(grid_thw) => self.run(pixels, grid_thw, options.output_hidden_states),
            None => self.encode(pixels, options.output_hidden_states),
        }
    }

    fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    fn plan(&self) -> Vec<PlanItem> {
        let d = &self.dims;
        let mut plan = vec![
            PlanItem::new("layers", self.blocks.len()),
            PlanItem::new("hidden size", d.dim),
            PlanItem::new(
                "patches",
                format!(
                    "Conv3d {}x{}x{} over [N, {}] rows with image_grid_thw",
                    d.temporal,
                    d.patch,
                    d.patch,
                    d.patch_values()
                ),
            ),
            PlanItem::new(
                "rope",
                format!("axial 2-D (row, column), theta {}", d.theta),
            ),
        ];
        plan.extend(self.plan_lines.iter().cloned());
        plan.push(PlanItem::new(
            "pooler",
            format!(
                "patch merger {0}x{0} -> {1} (pooler_output)",
                d.merge, d.out_dim
            ),
        ));
        plan
    }
}
