//! `grid_thw`: the `(t, h, w)` patch grid of each image, checked against
//! the patches given, and what follows from it: each patch's `(row,
//! column)` in merge order, and the per-frame attention blocks.

use forge_core::mlx_rs::{Array, Dtype};
use forge_core::{Error, Result};

/// One image's patch grid: frames, rows, columns.
pub type Grid = [usize; 3];

/// Reads `image_grid_thw` `[images, 3]` and checks that every grid is
/// made of whole `merge × merge` blocks and that they add up to `patches`.
pub fn parse_grids(grid_thw: &Array, merge: usize, patches: usize) -> Result<Vec<Grid>> {
    let shape = grid_thw.shape();
    if shape.len() != 2 || shape[1] != 3 {
        return Err(Error::InvalidInput {
            expected: "image_grid_thw [images, 3] (t, h, w per image)".into(),
            found: format!("shape {shape:?}"),
        });
    }
    let ints = grid_thw.as_dtype(Dtype::Int64)?;
    ints.eval()?;
    let mut grids = Vec::new();
    for (i, row) in ints.as_slice::<i64>().chunks(3).enumerate() {
        let ok = row.iter().all(|&v| v > 0)
            && (row[1] as usize).is_multiple_of(merge)
            && (row[2] as usize).is_multiple_of(merge);
        if !ok {
            return Err(Error::InvalidInput {
                expected: format!(
                    "image_grid_thw row {i}: t, h, w above 0 with h and w multiples of spatial_merge_size {merge}"
                ),
                found: format!("{row:?}"),
            });
        }
        grids.push([row[0] as usize, row[1] as usize, row[2] as usize]);
    }
    let total: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
    if total != patches {
        return Err(Error::InvalidInput {
            expected: format!("{total} patch rows in pixel_values (the sum of t·h·w over image_grid_thw {grids:?})"),
            found: format!("{patches} rows"),
        });
    }
    Ok(grids)
}

/// Each patch's `(row, column)`, in the order the processor lays patches
/// out: `merge × merge` blocks row-major, row-major inside a block; every
/// frame repeats its image's positions.
pub fn positions(grids: &[Grid], merge: usize) -> Vec<[i32; 2]> {
    let mut out = Vec::new();
    for &[t, h, w] in grids {
        let mut frame = Vec::with_capacity(h * w);
        for bh in 0..h / merge {
            for bw in 0..w / merge {
                for mh in 0..merge {
                    for mw in 0..merge {
                        frame.push([(bh * merge + mh) as i32, (bw * merge + mw) as i32]);
                    }
                }
            }
        }
        for _ in 0..t {
            out.extend_from_slice(&frame);
        }
    }
    out
}

/// Boundaries of the attention blocks when every frame of every image
/// attends only to itself: `[0, h·w, 2·h·w, ...]` (HF's `cu_seqlens`).
pub fn frame_bounds(grids: &[Grid]) -> Vec<usize> {
    let mut bounds = vec![0];
    for &[t, h, w] in grids {
        for _ in 0..t {
            bounds.push(bounds[bounds.len() - 1] + h * w);
        }
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_merge_blocks() {
        let p = positions(&[[1, 2, 4]], 2);
        let want = [
            [0, 0],
            [0, 1],
            [1, 0],
            [1, 1],
            [0, 2],
            [0, 3],
            [1, 2],
            [1, 3],
        ];
        assert_eq!(p, want);
        assert_eq!(frame_bounds(&[[2, 2, 2], [1, 4, 2]]), vec![0, 4, 8, 16]);
    }

    #[test]
    fn grids_must_add_up() {
        let g = Array::from_slice(&[1i64, 4, 6, 1, 2, 2], &[2, 3]);
        assert_eq!(parse_grids(&g, 2, 28).unwrap(), vec![[1, 4, 6], [1, 2, 2]]);
        let err = parse_grids(&g, 2, 30).unwrap_err().to_string();
        assert!(
            err.contains("28 patch rows") && err.contains("30 rows"),
            "{err}"
        );
        let odd = Array::from_slice(&[1i64, 3, 6], &[1, 3]);
        let err = parse_grids(&odd, 2, 18).unwrap_err().to_string();
        assert!(err.contains("multiples of spatial_merge_size 2"), "{err}");
        let flat = Array::from_slice(&[1i64, 4, 6], &[3]);
        assert!(parse_grids(&flat, 2, 24).is_err());
    }
}
