//! Antialiased image resizing as torch's `interpolate(..., antialias=True)`
//! does it on `uint8` images, which is what HF's torchvision-backed image
//! processors call (and what Pillow's `Image.resize` does too).
//!
//! Separable: rows are resampled first, then columns, each pass writing
//! `uint8`. Each output pixel is a weighted sum of the input pixels under a
//! filter stretched by the scale when shrinking (that stretching is the
//! antialiasing). Weights are normalized to sum to one and then turned into
//! 16-bit fixed point with as many fractional bits as the largest weight
//! allows; sums are rounded half up and clamped to 0..=255.

/// The interpolation filter (PIL's resample codes: 2 bilinear, 3 bicubic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Triangle filter, support 1.
    Bilinear,
    /// Keys cubic with a = -0.5, support 2.
    Bicubic,
}

impl Filter {
    /// The filter for a PIL resample code, if supported.
    pub fn from_pil_code(code: u32) -> Option<Filter> {
        match code {
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The input pixels and fixed-point weights of every output position along one axis.
struct Taps {
    /// First input index of each output position.
    start: Vec<usize>,
    /// Weights of each output position, from `start` on.
    weights: Vec<Vec<i32>>,
    /// Fractional bits of the weights.
    precision: u32,
}

fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let stretch = scale.max(1.0);
    let support = filter.support() * stretch;
    let mut start = Vec::with_capacity(out_size);
    let mut float_weights = Vec::with_capacity(out_size);
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        // Truncation toward zero, as the reference's integer casts do.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let mut w: Vec<f64> = (lo..hi)
            .map(|j| filter.weight((j as f64 - center + 0.5) / stretch))
            .collect();
        let total: f64 = w.iter().sum();
        if total != 0.0 {
            w.iter_mut().for_each(|v| *v /= total);
        }
        start.push(lo);
        float_weights.push(w);
    }
    let max = float_weights
        .iter()
        .flatten()
        .fold(0.0f64, |m, &w| m.max(w));
    let mut precision = 0;
    while precision < 22 && ((0.5 + max * f64::from(1u32 << (precision + 1))) as i64) < (1 << 15) {
        precision += 1;
    }
    let unit = f64::from(1u32 << precision);
    let weights = float_weights
        .iter()
        .map(|w| w.iter().map(|&v| (v * unit).round() as i32).collect())
        .collect();
    Taps {
        start,
        weights,
        precision,
    }
}

/// Resizes one `uint8` plane of `width × height` (row-major) to `new_width × new_height`.
pub fn resize_plane(
    plane: &[u8],
    (width, height): (usize, usize),
    (new_width, new_height): (usize, usize),
    filter: Filter,
) -> Vec<u8> {
    let mut data = plane.to_vec();
    if new_width != width {
        data = resample_rows(&data, width, height, new_width, filter);
    }
    if new_height != height {
        // Columns are the rows of the transposed plane.
        let columns = transpose(&data, new_width, height);
        let resized = resample_rows(&columns, height, new_width, new_height, filter);
        data = transpose(&resized, new_height, new_width);
    }
    data
}

/// Resamples each of the `rows` rows of `width` pixels to `new_width`.
fn resample_rows(
    data: &[u8],
    width: usize,
    rows: usize,
    new_width: usize,
    filter: Filter,
) -> Vec<u8> {
    let t = taps(width, new_width, filter);
    let half = if t.precision > 0 {
        1 << (t.precision - 1)
    } else {
        0
    };
    let mut out = Vec::with_capacity(new_width * rows);
    for row in data.chunks(width).take(rows) {
        for x in 0..new_width {
            let inputs = &row[t.start[x]..];
            let sum = t.weights[x]
                .iter()
                .zip(inputs)
                .fold(half, |s, (&w, &v)| s + i32::from(v) * w);
            out.push((sum >> t.precision).clamp(0, 255) as u8);
        }
    }
    out
}

/// `width × height` row-major → `height × width` row-major.
fn transpose(data: &[u8], width: usize, height: usize) -> Vec<u8> {
    (0..width)
        .flat_map(|x| (0..height).map(move |y| data[y * width + x]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weights_of_each_output_sum_to_one_in_fixed_point() {
        for (from, to) in [(45, 30), (30, 45), (37, 32), (7, 3), (3, 7)] {
            for filter in [Filter::Bilinear, Filter::Bicubic] {
                let t = taps(from, to, filter);
                for w in &t.weights {
                    let sum: i32 = w.iter().sum();
                    let unit = 1i32 << t.precision;
                    assert!(
                        (sum - unit).abs() <= w.len() as i32,
                        "{from}->{to} {filter:?}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn a_flat_plane_stays_flat(value in 0u8..=255, w in 1usize..40, h in 1usize..40,
                                   nw in 1usize..40, nh in 1usize..40, cubic in any::<bool>()) {
            let filter = if cubic { Filter::Bicubic } else { Filter::Bilinear };
            let out = resize_plane(&vec![value; w * h], (w, h), (nw, nh), filter);
            prop_assert_eq!(out.len(), nw * nh);
            prop_assert!(out.iter().all(|&v| v == value));
        }
    }
}
