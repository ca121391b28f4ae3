//! Qwen2.5-VL's windows: merged units (`merge × merge` patches) are grouped
//! into square windows of `window_size / (merge · patch)` units per side,
//! windows row-major over each frame, partial at the bottom and right edges.
//! The tower runs on the patches in window order (HF's `window_index`) so a
//! window is a contiguous block; full-attention blocks still see whole
//! frames, since windows never cross a frame.

use crate::grid::Grid;

/// The window order and the window boundaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    /// For each merged unit in window order, its index in original order.
    pub unit_order: Vec<usize>,
    /// Boundaries of the windows in patches (HF's `cu_window_seqlens`).
    pub bounds: Vec<usize>,
}

impl Windows {
    /// The windows of `grids` with `side` merged units per window side.
    pub fn new(grids: &[Grid], merge: usize, side: usize) -> Self {
        let unit = merge * merge;
        let (mut unit_order, mut bounds, mut base) = (Vec::new(), vec![0], 0);
        for &[t, h, w] in grids {
            let (uh, uw) = (h / merge, w / merge);
            for frame in 0..t {
                let first = base + frame * uh * uw;
                for wy in (0..uh).step_by(side) {
                    for wx in (0..uw).step_by(side) {
                        for y in wy..(wy + side).min(uh) {
                            for x in wx..(wx + side).min(uw) {
                                unit_order.push(first + y * uw + x);
                            }
                        }
                        bounds.push(unit_order.len() * unit);
                    }
                }
            }
            base += t * uh * uw;
        }
        Windows { unit_order, bounds }
    }

    /// The permutation of patches (`unit` of them per merged unit) into window order.
    pub fn patch_order(&self, unit: usize) -> Vec<i32> {
        self.unit_order
            .iter()
            .flat_map(|&u| (u * unit..(u + 1) * unit).map(|p| p as i32))
            .collect()
    }

    /// For each merged unit in original order, its row in window order.
    pub fn inverse(&self) -> Vec<i32> {
        let mut inv = vec![0i32; self.unit_order.len()];
        for (i, &u) in self.unit_order.iter().enumerate() {
            inv[u] = i as i32;
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_windows_at_the_edges() {
        // 3x3 merged units (6x6 patches, merge 2), windows of 2x2 units.
        let w = Windows::new(&[[1, 6, 6]], 2, 2);
        assert_eq!(w.unit_order, vec![0, 1, 3, 4, 2, 5, 6, 7, 8]);
        assert_eq!(w.bounds, vec![0, 16, 24, 32, 36]);
        let inv = w.inverse();
        for (i, &u) in w.unit_order.iter().enumerate() {
            assert_eq!(inv[u], i as i32);
        }
        assert_eq!(&w.patch_order(4)[..8], &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(&w.patch_order(4)[8..12], &[12, 13, 14, 15]);
    }

    #[test]
    fn images_and_frames_are_windowed_separately() {
        let w = Windows::new(&[[2, 2, 2], [1, 2, 4]], 2, 1);
        assert_eq!(w.unit_order, vec![0, 1, 2, 3]);
        assert_eq!(w.bounds, vec![0, 4, 8, 12, 16]);
    }
}
