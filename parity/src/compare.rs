//! Numeric comparison of a tensor against its reference.

use forge_core::mlx_rs::{Array, Dtype};

use crate::error::Result;
use crate::manifest::Tolerance;

/// Errors of one comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Errors {
    /// max |a − b| over the compared positions.
    pub max_abs: f64,
    /// ‖a − b‖ / ‖b‖ over the compared positions.
    pub rel: f64,
}

impl Errors {
    /// Both bounds hold (NaN never passes).
    pub fn within(&self, tol: &Tolerance) -> bool {
        self.max_abs <= tol.max_abs && self.rel <= tol.rel
    }
}

/// Reads an array as f64 values (row-major).
pub fn to_f64(a: &Array) -> Result<Vec<f64>> {
    let a = a.as_dtype(Dtype::Float32)?;
    a.eval()?;
    Ok(a.as_slice::<f32>().iter().map(|&v| v as f64).collect())
}

/// Compares `actual` with `expected`, both `[B, T, ...]`, at the positions
/// where `keep[b * T + t]` is true (all positions when `keep` is `None`).
pub fn compare(
    actual: &[f64],
    expected: &[f64],
    positions: usize,
    keep: Option<&[bool]>,
) -> Errors {
    let width = expected.len().checked_div(positions).unwrap_or(0);
    let mut max_abs: f64 = 0.0;
    let (mut diff2, mut ref2) = (0.0f64, 0.0f64);
    for p in 0..positions {
        if keep.is_some_and(|k| !k[p]) {
            continue;
        }
        for i in p * width..(p + 1) * width {
            let (a, b) = (actual[i], expected[i]);
            let d = a - b;
            if d.is_nan() {
                max_abs = f64::NAN;
            } else if !max_abs.is_nan() {
                max_abs = max_abs.max(d.abs());
            }
            diff2 += d * d;
            ref2 += b * b;
        }
    }
    let rel = if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else if diff2 == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    Errors { max_abs, rel }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_positions_are_skipped() {
        let expected = [1.0, 2.0, 3.0, 4.0];
        let actual = [1.0, 2.0, 100.0, 4.5];
        let all = compare(&actual, &expected, 2, None);
        assert_eq!(all.max_abs, 97.0);
        let first = compare(&actual, &expected, 2, Some(&[true, false]));
        assert_eq!(
            first,
            Errors {
                max_abs: 0.0,
                rel: 0.0
            }
        );
    }

    #[test]
    fn relative_error_is_a_norm_ratio() {
        let e = compare(&[3.0, 4.0], &[0.0, 0.0], 1, None);
        assert!(e.rel.is_infinite());
        let e = compare(&[1.0, 1.0], &[2.0, 0.0], 1, None);
        assert!((e.rel - (2.0f64).sqrt() / 2.0).abs() < 1e-12);
    }

    #[test]
    fn nan_never_passes() {
        let e = compare(&[f64::NAN], &[1.0], 1, None);
        assert!(!e.within(&Tolerance {
            max_abs: 1.0,
            rel: 1.0
        }));
    }
}
