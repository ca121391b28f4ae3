//! Real MLX operations, through mlx-rs, checked against plain-Rust f64
//! arithmetic written out here: matmul, RMSNorm, RoPE (both layouts and
//! forge's rope variants), scaled-dot-product attention with GQA and
//! forge's masks, affine quantization, and half-precision rounding.

mod common;

use common::values_f32;
use forge_core::cache::KeyLayout;
use forge_core::mask::layer_mask;
use forge_core::mlx_rs::{fast, ops, Array, Dtype};
use forge_core::nn::{Linear, RmsNorm};
use forge_core::rope::{Rope, RopeParameters, RopeType};

/// A small deterministic generator (Knuth's MMIX LCG) for test inputs.
struct Lcg(u64);

impl Lcg {
    fn next_unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` values uniform in `[-1, 1)`, rounded to f32.
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.next_unit() * 2.0 - 1.0) as f32)
            .collect()
    }
}

fn array(values: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape)
}

fn as_f64(a: &Array) -> Vec<f64> {
    values_f32(a).into_iter().map(f64::from).collect()
}

/// Largest |got - want|, after checking that lengths agree and nothing is NaN.
fn max_abs_diff(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert!(!g.is_nan() && !w.is_nan(), "NaN: got {g}, want {w}");
            (g - w).abs()
        })
        .fold(0.0, f64::max)
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    let err = max_abs_diff(got, want);
    assert!(err <= tol, "{what}: max abs error {err} > {tol}");
}

// ---------------------------------------------------------------- matmul

/// `[m, k] × [k, n]` in f64.
fn matmul_ref(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                .sum();
        }
    }
    out
}

#[test]
fn matmul_matches_f64_loops() {
    let mut rng = Lcg(1);
    let (m, k, n) = (3, 7, 5);
    let a = rng.values(m * k);
    let b = rng.values(k * n);
    let got = ops::matmul(
        array(&a, &[m as i32, k as i32]),
        array(&b, &[k as i32, n as i32]),
    )
    .unwrap();
    assert_eq!(got.shape(), &[m as i32, n as i32]);
    assert_close(&as_f64(&got), &matmul_ref(&a, &b, m, k, n), 1e-5, "matmul");

    // A batch of left operands against one right operand (broadcast).
    let a2 = rng.values(2 * m * k);
    let got = ops::matmul(
        array(&a2, &[2, m as i32, k as i32]),
        array(&b, &[k as i32, n as i32]),
    )
    .unwrap();
    assert_eq!(got.shape(), &[2, m as i32, n as i32]);
    let want = [
        matmul_ref(&a2[..m * k], &b, m, k, n),
        matmul_ref(&a2[m * k..], &b, m, k, n),
    ]
    .concat();
    assert_close(&as_f64(&got), &want, 1e-5, "batched matmul");
}

#[test]
fn linear_is_x_w_transposed_plus_bias() {
    let mut rng = Lcg(2);
    let (rows, inp, out) = (4, 6, 3);
    let x = rng.values(rows * inp);
    let w = rng.values(out * inp);
    let b = rng.values(out);
    let mut want = vec![0.0; rows * out];
    for r in 0..rows {
        for o in 0..out {
            want[r * out + o] = f64::from(b[o])
                + (0..inp)
                    .map(|i| f64::from(x[r * inp + i]) * f64::from(w[o * inp + i]))
                    .sum::<f64>();
        }
    }
    let layer = Linear::new(
        array(&w, &[out as i32, inp as i32]),
        Some(array(&b, &[out as i32])),
    );
    let got = layer
        .forward(&array(&x, &[1, rows as i32, inp as i32]))
        .unwrap();
    assert_eq!(got.shape(), &[1, rows as i32, out as i32]);
    assert_close(&as_f64(&got), &want, 1e-5, "linear with bias");

    let no_bias = Linear {
        bias: None,
        ..layer
    };
    let got = no_bias
        .forward(&array(&x, &[rows as i32, inp as i32]))
        .unwrap();
    let want_no_bias: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(i, v)| v - f64::from(b[i % out]))
        .collect();
    assert_close(&as_f64(&got), &want_no_bias, 1e-5, "linear without bias");
}

// ---------------------------------------------------------------- RMSNorm

fn rms_norm_ref(x: &[f32], w: Option<&[f32]>, dim: usize, eps: f64) -> Vec<f64> {
    x.chunks(dim)
        .flat_map(|row| {
            let mean_sq = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (mean_sq + eps).sqrt();
            row.iter()
                .enumerate()
                .map(move |(i, v)| f64::from(*v) * inv * w.map_or(1.0, |w| f64::from(w[i])))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn rms_norm_matches_the_formula() {
    let mut rng = Lcg(3);
    let dim = 16;
    let mut x = rng.values(2 * 3 * dim);
    // One row of tiny values, where eps matters.
    for v in &mut x[..dim] {
        *v *= 1e-3;
    }
    let w: Vec<f32> = rng.values(dim).iter().map(|v| 1.0 + v).collect();
    let eps = 1e-5;
    let xa = array(&x, &[2, 3, dim as i32]);
    let wa = array(&w, &[dim as i32]);

    let got = fast::rms_norm(&xa, Some(&wa), eps as f32).unwrap();
    let want = rms_norm_ref(&x, Some(&w), dim, eps);
    assert_close(&as_f64(&got), &want, 1e-5, "fast::rms_norm");

    let got = fast::rms_norm(&xa, None, eps as f32).unwrap();
    assert_close(
        &as_f64(&got),
        &rms_norm_ref(&x, None, dim, eps),
        1e-5,
        "fast::rms_norm without weight",
    );

    let norm = RmsNorm {
        weight: wa,
        eps: eps as f32,
    };
    assert_close(
        &as_f64(&norm.forward(&xa).unwrap()),
        &want,
        1e-5,
        "nn::RmsNorm",
    );
}

// ---------------------------------------------------------------- RoPE

/// RoPE written out: `x` is `[B, H, T, D]` row-major; the first `dims`
/// of each head are rotated by angle `(offset + t) * scale * inv_freq[i]`,
/// pairs `(i, i + dims/2)` (rotate-half, HF) or `(2i, 2i + 1)` (traditional).
fn rope_ref(
    x: &[f32],
    shape: [usize; 4],
    dims: usize,
    traditional: bool,
    inv_freq: &[f64],
    scale: f64,
    offset: usize,
) -> Vec<f64> {
    let [_, _, t_len, d] = shape;
    let half = dims / 2;
    assert_eq!(inv_freq.len(), half);
    let mut out: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    for (row, chunk) in out.chunks_mut(d).enumerate() {
        let t = row % t_len;
        let position = (offset + t) as f64 * scale;
        let original = chunk.to_vec();
        for (i, inv) in inv_freq.iter().enumerate() {
            let (cos, sin) = ((position * inv).cos(), (position * inv).sin());
            let (a, b) = if traditional {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            chunk[a] = original[a] * cos - original[b] * sin;
            chunk[b] = original[b] * cos + original[a] * sin;
        }
    }
    out
}

/// `base^(-2i/dims)` for `i < dims/2`, in f64.
fn inv_freq(base: f64, dims: usize) -> Vec<f64> {
    (0..dims / 2)
        .map(|i| base.powf(-((2 * i) as f64) / dims as f64))
        .collect()
}

const ROPE_SHAPE: [usize; 4] = [1, 2, 5, 8];

fn rope_input(seed: u64) -> (Vec<f32>, Array) {
    let x = Lcg(seed).values(ROPE_SHAPE.iter().product());
    let shape: Vec<i32> = ROPE_SHAPE.iter().map(|&d| d as i32).collect();
    let a = array(&x, &shape);
    (x, a)
}

#[test]
fn fast_rope_rotate_half_and_interleaved() {
    let (x, xa) = rope_input(4);
    for traditional in [false, true] {
        for offset in [0usize, 3, 17] {
            let got = fast::rope(&xa, 8, traditional, 10000.0, 1.0, offset as i32, None).unwrap();
            let want = rope_ref(
                &x,
                ROPE_SHAPE,
                8,
                traditional,
                &inv_freq(10000.0, 8),
                1.0,
                offset,
            );
            assert_close(
                &as_f64(&got),
                &want,
                2e-5,
                &format!("rope traditional={traditional} offset={offset}"),
            );
        }
    }
    // The two layouts really differ (the test would not notice a swap otherwise).
    let a = fast::rope(&xa, 8, false, 10000.0, 1.0, 3, None).unwrap();
    let b = fast::rope(&xa, 8, true, 10000.0, 1.0, 3, None).unwrap();
    assert!(max_abs_diff(&as_f64(&a), &as_f64(&b)) > 1e-2);
}

#[test]
fn fast_rope_partial_scaled_and_explicit_frequencies() {
    let (x, xa) = rope_input(5);
    // Only the first 4 of 8 dimensions rotate; the rest pass through.
    let got = fast::rope(&xa, 4, false, 500.0, 1.0, 2, None).unwrap();
    let want = rope_ref(&x, ROPE_SHAPE, 4, false, &inv_freq(500.0, 4), 1.0, 2);
    assert_close(&as_f64(&got), &want, 2e-5, "partial rope");

    // Positions scaled by 0.25 (linear scaling).
    let got = fast::rope(&xa, 8, false, 10000.0, 0.25, 6, None).unwrap();
    let want = rope_ref(&x, ROPE_SHAPE, 8, false, &inv_freq(10000.0, 8), 0.25, 6);
    assert_close(&as_f64(&got), &want, 2e-5, "scaled rope");

    // Explicit frequencies are wavelengths: the angle is position / freq.
    let wavelengths = [1.5f32, 7.0, 40.0, 900.0];
    let inv: Vec<f64> = wavelengths.iter().map(|w| 1.0 / f64::from(*w)).collect();
    let freqs = array(&wavelengths, &[4]);
    let got = fast::rope(&xa, 8, false, None, 1.0, 4, &freqs).unwrap();
    let want = rope_ref(&x, ROPE_SHAPE, 8, false, &inv, 1.0, 4);
    assert_close(&as_f64(&got), &want, 2e-5, "rope with explicit freqs");
}

fn params(rope_type: RopeType) -> RopeParameters {
    RopeParameters {
        rope_type,
        ..Default::default()
    }
}

#[test]
fn forge_rope_default_and_linear() {
    let (x, xa) = rope_input(6);
    // No rope_theta in the config: the plugin's default θ applies.
    let rope = Rope::new(&params(RopeType::Default), 8, 10000.0, 4096, false).unwrap();
    assert_eq!(rope.dims(), 8);
    assert_eq!(rope.mscale(), 1.0);
    let want = rope_ref(&x, ROPE_SHAPE, 8, false, &inv_freq(10000.0, 8), 1.0, 5);
    assert_close(
        &as_f64(&rope.apply(&xa, 5).unwrap()),
        &want,
        2e-5,
        "default",
    );

    let linear = RopeParameters {
        rope_theta: Some(1000.0),
        factor: Some(4.0),
        ..params(RopeType::Linear)
    };
    let rope = Rope::new(&linear, 8, 10000.0, 4096, true).unwrap();
    let want = rope_ref(&x, ROPE_SHAPE, 8, true, &inv_freq(1000.0, 8), 0.25, 9);
    assert_close(&as_f64(&rope.apply(&xa, 9).unwrap()), &want, 2e-5, "linear");
}

#[test]
fn forge_rope_llama3_frequencies() {
    // Llama 3.1 (HF `_compute_llama3_parameters`): wavelengths beyond
    // original/low_freq_factor are divided by factor, those below
    // original/high_freq_factor kept, and the band between interpolated.
    let (base, factor, low, high, original) = (10000.0, 8.0, 1.0, 4.0, 64.0);
    let mut inv = inv_freq(base, 8);
    for f in &mut inv {
        let wavelength = 2.0 * std::f64::consts::PI / *f;
        if wavelength > original / low {
            *f /= factor;
        } else if wavelength >= original / high {
            let smooth = (original / wavelength - low) / (high - low);
            *f = (1.0 - smooth) * *f / factor + smooth * *f;
        }
    }
    // With dims 8: wavelengths 2π, 20π, 200π, 2000π; one of each kind.
    assert!(inv[0] == inv_freq(base, 8)[0]);
    assert!(inv[1] < inv_freq(base, 8)[1] && inv[1] > inv_freq(base, 8)[1] / factor);
    let p = RopeParameters {
        rope_theta: Some(base),
        factor: Some(factor),
        low_freq_factor: Some(low),
        high_freq_factor: Some(high),
        original_max_position_embeddings: Some(original as usize),
        ..params(RopeType::Llama3)
    };
    let rope = Rope::new(&p, 8, 1.0, 4096, false).unwrap();
    let (x, xa) = rope_input(7);
    let want = rope_ref(&x, ROPE_SHAPE, 8, false, &inv, 1.0, 11);
    assert_close(
        &as_f64(&rope.apply(&xa, 11).unwrap()),
        &want,
        2e-5,
        "llama3",
    );
}

#[test]
fn forge_rope_dynamic_grows_the_base_past_the_trained_length() {
    let (x, xa) = rope_input(8);
    let p = RopeParameters {
        rope_theta: Some(10000.0),
        factor: Some(2.0),
        ..params(RopeType::Dynamic)
    };
    let rope = Rope::new(&p, 8, 1.0, 16, false).unwrap();
    // offset 3 + 5 positions = 8 ≤ 16: the plain base.
    let want = rope_ref(&x, ROPE_SHAPE, 8, false, &inv_freq(10000.0, 8), 1.0, 3);
    assert_close(
        &as_f64(&rope.apply(&xa, 3).unwrap()),
        &want,
        2e-5,
        "dynamic, short",
    );
    // offset 27 + 5 = 32 > 16: base · (factor·32/16 − (factor − 1))^(d/(d−2)).
    let grown = 10000.0 * (2.0f64 * 32.0 / 16.0 - 1.0).powf(8.0 / 6.0);
    let want = rope_ref(&x, ROPE_SHAPE, 8, false, &inv_freq(grown, 8), 1.0, 27);
    assert_close(
        &as_f64(&rope.apply(&xa, 27).unwrap()),
        &want,
        1e-4,
        "dynamic, long",
    );
}

#[test]
fn forge_rope_yarn_attention_factor_scales_only_the_rotated_part() {
    let (x, xa) = rope_input(9);
    // factor 1 leaves the frequencies alone; the explicit attention factor
    // multiplies cos and sin, i.e. the rotated dimensions only.
    let p = RopeParameters {
        rope_theta: Some(10000.0),
        factor: Some(1.0),
        attention_factor: Some(2.0),
        ..params(RopeType::Yarn)
    };
    let rope = Rope::new(&p, 4, 1.0, 4096, false).unwrap();
    assert_eq!(rope.mscale(), 2.0);
    let mut want = rope_ref(&x, ROPE_SHAPE, 4, false, &inv_freq(10000.0, 4), 1.0, 1);
    for (i, v) in want.iter_mut().enumerate() {
        if i % 8 < 4 {
            *v *= 2.0;
        }
    }
    assert_close(&as_f64(&rope.apply(&xa, 1).unwrap()), &want, 2e-5, "yarn");

    // Without an attention factor, YaRN's default is 0.1·ln(factor) + 1.
    let p = RopeParameters {
        factor: Some(16.0),
        ..params(RopeType::Yarn)
    };
    let rope = Rope::new(&p, 8, 10000.0, 4096, false).unwrap();
    assert!((f64::from(rope.mscale()) - (0.1 * 16f64.ln() + 1.0)).abs() < 1e-6);
}

// ---------------------------------------------------------------- attention

/// Naive softmax attention in f64. `q` is `[B, Hq, T, D]`, `k`/`v` are
/// `[B, Hkv, S, D]`; query head `h` reads kv head `h / (Hq / Hkv)`.
/// `allowed(b, t, s)` says which keys a query sees; rows that see none
/// come back as `None`.
#[allow(clippy::too_many_arguments)]
fn attention_ref(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    [b_len, hq, t_len, d]: [usize; 4],
    hkv: usize,
    s_len: usize,
    scale: f64,
    allowed: &dyn Fn(usize, usize, usize) -> bool,
) -> Vec<Option<Vec<f64>>> {
    let group = hq / hkv;
    let mut rows = Vec::new();
    for b in 0..b_len {
        for h in 0..hq {
            let kv = h / group;
            for t in 0..t_len {
                let qrow = &q[((b * hq + h) * t_len + t) * d..][..d];
                let keys: Vec<usize> = (0..s_len).filter(|&s| allowed(b, t, s)).collect();
                if keys.is_empty() {
                    rows.push(None);
                    continue;
                }
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&s| {
                        let krow = &k[((b * hkv + kv) * s_len + s) * d..][..d];
                        scale
                            * qrow
                                .iter()
                                .zip(krow)
                                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                                .sum::<f64>()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                let mut out = vec![0.0; d];
                for (w, &s) in weights.iter().zip(&keys) {
                    let vrow = &v[((b * hkv + kv) * s_len + s) * d..][..d];
                    for (o, x) in out.iter_mut().zip(vrow) {
                        *o += w / total * f64::from(*x);
                    }
                }
                rows.push(Some(out));
            }
        }
    }
    rows
}

/// Compares MLX output rows with the reference rows that are defined.
fn assert_attention(got: &Array, want: &[Option<Vec<f64>>], d: usize, what: &str) {
    let got = as_f64(got);
    assert_eq!(got.len(), want.len() * d, "{what}: size");
    let mut compared = 0;
    for (row, expected) in got.chunks(d).zip(want) {
        if let Some(expected) = expected {
            assert_close(row, expected, 1e-5, what);
            compared += 1;
        }
    }
    assert!(compared > 0, "{what}: nothing compared");
}

struct Qkv {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    qa: Array,
    ka: Array,
    va: Array,
}

/// Random GQA inputs: `b` sequences, 4 query heads, 2 kv heads, head dim 8.
fn qkv(seed: u64, b: usize, t: usize, s: usize) -> Qkv {
    let mut rng = Lcg(seed);
    let q = rng.values(b * 4 * t * 8);
    let k = rng.values(b * 2 * s * 8);
    let v = rng.values(b * 2 * s * 8);
    let (b, t, s) = (b as i32, t as i32, s as i32);
    Qkv {
        qa: array(&q, &[b, 4, t, 8]),
        ka: array(&k, &[b, 2, s, 8]),
        va: array(&v, &[b, 2, s, 8]),
        q,
        k,
        v,
    }
}

const SCALE: f64 = 0.353_553_390_593_273_8; // 1/√8

#[test]
fn sdpa_with_grouped_query_heads() {
    let x = qkv(10, 2, 3, 6);
    let got =
        fast::scaled_dot_product_attention(&x.qa, &x.ka, &x.va, SCALE as f32, None, None).unwrap();
    assert_eq!(got.shape(), &[2, 4, 3, 8]);
    let want = attention_ref(&x.q, &x.k, &x.v, [2, 4, 3, 8], 2, 6, SCALE, &|_, _, _| true);
    assert_attention(&got, &want, 8, "GQA, no mask");

    // Query heads 0 and 1 share kv head 0: swapping the kv heads changes
    // the output (the grouping is not ignored).
    let swapped = ops::concatenate(
        &x.ka
            .split_equal(2, 1)
            .unwrap()
            .into_iter()
            .rev()
            .collect::<Vec<_>>(),
        1,
    )
    .unwrap();
    let other =
        fast::scaled_dot_product_attention(&x.qa, &swapped, &x.va, SCALE as f32, None, None)
            .unwrap();
    assert!(max_abs_diff(&as_f64(&got), &as_f64(&other)) > 1e-3);
}

/// What forge's mask should allow, written out: causal, a window of the
/// last `window` positions, and no padded keys.
fn allowed_by(
    offset: usize,
    window: Option<usize>,
    padding: Option<Vec<Vec<i32>>>,
) -> impl Fn(usize, usize, usize) -> bool {
    move |b, t, s| {
        let position = offset + t;
        s <= position
            && window.is_none_or(|w| s + w > position)
            && padding.as_ref().is_none_or(|p| p[b][s] != 0)
    }
}

fn check_mask_values(
    mask: &Array,
    b: usize,
    t: usize,
    s: usize,
    allowed: &dyn Fn(usize, usize, usize) -> bool,
) {
    let values = as_f64(mask);
    let rows = mask.dim(0) as usize;
    assert_eq!(mask.shape(), &[rows as i32, 1, t as i32, s as i32]);
    for bi in 0..b {
        let r = if rows == 1 { 0 } else { bi };
        for ti in 0..t {
            for si in 0..s {
                let m = values[(r * t + ti) * s + si];
                if allowed(bi, ti, si) {
                    assert_eq!(m, 0.0, "mask[{bi}, {ti}, {si}] should be open");
                } else {
                    assert!(m.is_finite() && m < -1e30, "mask[{bi}, {ti}, {si}] = {m}");
                }
            }
        }
    }
}

/// The additive mask of `t` new positions after `offset` cached ones
/// (standard cache), through the one mask path: [`layer_mask`], then
/// [`forge_core::mask::LayerMask::additive`].
fn attention_mask(
    t: usize,
    offset: usize,
    window: Option<usize>,
    padding: Option<&Array>,
    dtype: Dtype,
) -> forge_core::Result<Array> {
    let layout = KeyLayout::contiguous(offset + t);
    let mask = layer_mask(&layout, t, window, padding, dtype)?;
    Ok(mask
        .additive(t, offset + t, dtype)?
        .expect("more than one query: a mask"))
}

#[test]
fn sdpa_with_a_causal_mask_after_cached_positions() {
    // 3 new queries after 3 cached positions.
    let x = qkv(11, 2, 3, 6);
    let mask = attention_mask(3, 3, None, None, Dtype::Float32).unwrap();
    let allowed = allowed_by(3, None, None);
    check_mask_values(&mask, 2, 3, 6, &allowed);
    let got =
        fast::scaled_dot_product_attention(&x.qa, &x.ka, &x.va, SCALE as f32, &mask, None).unwrap();
    let want = attention_ref(&x.q, &x.k, &x.v, [2, 4, 3, 8], 2, 6, SCALE, &allowed);
    assert_attention(&got, &want, 8, "causal");
}

#[test]
fn sdpa_with_left_padding() {
    let x = qkv(12, 2, 6, 6);
    let pad = vec![vec![0, 0, 1, 1, 1, 1], vec![1, 1, 1, 1, 1, 1]];
    let flat: Vec<i32> = pad.concat();
    let padding = Array::from_slice(&flat, &[2, 6]);
    let mask = attention_mask(6, 0, None, Some(&padding), Dtype::Float32).unwrap();
    let allowed = allowed_by(0, None, Some(pad));
    check_mask_values(&mask, 2, 6, 6, &allowed);
    let got =
        fast::scaled_dot_product_attention(&x.qa, &x.ka, &x.va, SCALE as f32, &mask, None).unwrap();
    let want = attention_ref(&x.q, &x.k, &x.v, [2, 4, 6, 8], 2, 6, SCALE, &allowed);
    // The padded queries of sequence 0 see nothing: undefined, but finite.
    assert_eq!(want.iter().filter(|r| r.is_none()).count(), 2 * 4);
    assert!(as_f64(&got).iter().all(|v| v.is_finite()));
    assert_attention(&got, &want, 8, "padding");
}

#[test]
fn sdpa_with_a_sliding_window() {
    // 4 new queries after 2 cached positions, window 3; then with padding too.
    let x = qkv(13, 2, 4, 6);
    let mask = attention_mask(4, 2, Some(3), None, Dtype::Float32).unwrap();
    let allowed = allowed_by(2, Some(3), None);
    check_mask_values(&mask, 2, 4, 6, &allowed);
    let got =
        fast::scaled_dot_product_attention(&x.qa, &x.ka, &x.va, SCALE as f32, &mask, None).unwrap();
    let want = attention_ref(&x.q, &x.k, &x.v, [2, 4, 4, 8], 2, 6, SCALE, &allowed);
    assert_attention(&got, &want, 8, "sliding window");

    let pad = vec![vec![1, 1, 1, 1, 1, 1], vec![0, 0, 0, 1, 1, 1]];
    let flat: Vec<i32> = pad.concat();
    let padding = Array::from_slice(&flat, &[2, 6]);
    let mask = attention_mask(4, 2, Some(3), Some(&padding), Dtype::Float32).unwrap();
    let allowed = allowed_by(2, Some(3), Some(pad));
    check_mask_values(&mask, 2, 4, 6, &allowed);
    let got =
        fast::scaled_dot_product_attention(&x.qa, &x.ka, &x.va, SCALE as f32, &mask, None).unwrap();
    let want = attention_ref(&x.q, &x.k, &x.v, [2, 4, 4, 8], 2, 6, SCALE, &allowed);
    assert_attention(&got, &want, 8, "sliding window with padding");
}

#[test]
fn half_precision_masks_stay_finite() {
    // A blocked position must be a large finite negative number in the
    // mask's own dtype: -inf turns a fully padded row into NaN, and the NaN
    // then reaches real tokens through the next layer's values.
    let padding = Array::from_slice(&[0i32, 1, 1], &[1, 3]);
    for dtype in [Dtype::Float16, Dtype::Bfloat16] {
        let mask = attention_mask(3, 0, None, Some(&padding), dtype).unwrap();
        assert_eq!(mask.dtype(), dtype);
        let values = as_f64(&mask);
        let min = dtype.finfo_min().unwrap();
        for (i, m) in values.iter().enumerate() {
            assert!(m.is_finite(), "{dtype:?} mask[{i}] = {m}");
            assert!(*m == 0.0 || *m <= min / 2.0, "{dtype:?} mask[{i}] = {m}");
        }
        let x = qkv(14, 1, 3, 3);
        let cast = |a: &Array| a.as_dtype(dtype).unwrap();
        let out = fast::scaled_dot_product_attention(
            cast(&x.qa),
            cast(&x.ka),
            cast(&x.va),
            SCALE as f32,
            &mask,
            None,
        )
        .unwrap();
        assert!(
            as_f64(&out).iter().all(|v| v.is_finite()),
            "{dtype:?}: attention output has non-finite values"
        );
        let want = attention_ref(
            &x.q,
            &x.k,
            &x.v,
            [1, 4, 3, 8],
            2,
            3,
            SCALE,
            &allowed_by(0, None, Some(vec![vec![0, 1, 1]])),
        );
        // Half-precision inputs: compare loosely on the defined rows.
        let got = as_f64(&out);
        for (row, expected) in got.chunks(8).zip(&want) {
            if let Some(expected) = expected {
                assert_close(row, expected, 2e-2, &format!("{dtype:?} attention"));
            }
        }
    }
}

// ---------------------------------------------------------------- quantization

#[test]
fn affine_quantization_and_quantized_matmul() {
    let mut rng = Lcg(15);
    let (out, inp, rows, group) = (16usize, 64usize, 3usize, 32usize);
    let w = rng.values(out * inp);
    let x = rng.values(rows * inp);
    let wa = array(&w, &[out as i32, inp as i32]);
    let xa = array(&x, &[rows as i32, inp as i32]);
    let exact: Vec<f64> = (0..rows * out)
        .map(|i| {
            let (r, o) = (i / out, i % out);
            (0..inp)
                .map(|k| f64::from(x[r * inp + k]) * f64::from(w[o * inp + k]))
                .sum()
        })
        .collect();

    let mut worst_error = Vec::new();
    for bits in [4, 8] {
        let levels = (1u32 << bits) - 1;
        let (wq, scales, biases) = ops::quantize(&wa, group as i32, bits).unwrap();
        assert_eq!(wq.dtype(), Dtype::Uint32);
        assert_eq!(wq.shape(), &[out as i32, (inp * bits as usize / 32) as i32]);
        assert_eq!(scales.shape(), &[out as i32, (inp / group) as i32]);
        assert_eq!(biases.shape(), scales.shape());
        let s = as_f64(&scales);
        let bias = as_f64(&biases);

        let deq = ops::dequantize(&wq, &scales, &biases, group as i32, bits).unwrap();
        let wd = as_f64(&deq);
        let mut worst = 0.0f64;
        for (i, (&got, &orig)) in wd.iter().zip(&w).enumerate() {
            let g = (i / inp) * (inp / group) + (i % inp) / group;
            // Every dequantized value is on its group's grid bias + q·scale ...
            let q = (got - bias[g]) / s[g];
            assert!(
                (q - q.round()).abs() < 1e-3
                    && q.round() >= -1e-3
                    && q.round() <= f64::from(levels) + 1e-3,
                "{bits} bits: w[{i}] = {got} is not on the grid (q = {q})"
            );
            // ... and within one step of the original.
            let err = (got - f64::from(orig)).abs();
            assert!(
                err <= s[g].abs() * 1.001,
                "{bits} bits: w[{i}] error {err} > step {}",
                s[g]
            );
            worst = worst.max(err);
        }
        worst_error.push(worst);

        let got =
            ops::quantized_matmul(&xa, &wq, &scales, &biases, true, group as i32, bits).unwrap();
        assert_eq!(got.shape(), &[rows as i32, out as i32]);
        let got = as_f64(&got);
        // Against the dequantized weights: the same numbers, up to f32 sums.
        let with_deq: Vec<f64> = (0..rows * out)
            .map(|i| {
                let (r, o) = (i / out, i % out);
                (0..inp)
                    .map(|k| f64::from(x[r * inp + k]) * wd[o * inp + k])
                    .sum()
            })
            .collect();
        assert_close(
            &got,
            &with_deq,
            1e-4,
            &format!("{bits}-bit qmm vs dequantized"),
        );
        let mlx_deq = as_f64(&ops::matmul(&xa, deq.t()).unwrap());
        assert_close(
            &got,
            &mlx_deq,
            1e-4,
            &format!("{bits}-bit qmm vs MLX matmul"),
        );
        // Against the exact product: within Σ|x|·step of each weight's group.
        for i in 0..rows * out {
            let (r, o) = (i / out, i % out);
            let bound: f64 = (0..inp)
                .map(|k| f64::from(x[r * inp + k]).abs() * s[o * (inp / group) + k / group].abs())
                .sum();
            let err = (got[i] - exact[i]).abs();
            assert!(
                err <= bound * 1.001 + 1e-5,
                "{bits} bits: y[{i}] error {err} > {bound}"
            );
        }
    }
    // More bits, smaller error.
    assert!(worst_error[1] < worst_error[0] / 4.0, "{worst_error:?}");
}

// ---------------------------------------------------------------- half types

#[test]
fn f16_round_trip_matches_the_half_crate() {
    let exact = [
        0.0f32,
        -0.0,
        1.0,
        -2.5,
        1000.5,
        65504.0,
        6.103_515_6e-5,
        5.960_464_5e-8,
        0.333_251_95,
        f32::INFINITY,
    ];
    let inexact = [
        0.1f32,
        1.0 / 3.0,
        std::f32::consts::PI,
        1e-8,
        7e-8,
        70000.0,
        65520.0,
        -1e6,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
    ];
    let all: Vec<f32> = exact.iter().chain(&inexact).copied().collect();
    let halves = array(&all, &[all.len() as i32])
        .as_dtype(Dtype::Float16)
        .unwrap();
    let got = halves.as_slice::<half::f16>();
    for (v, h) in all.iter().zip(got) {
        let want = half::f16::from_f32(*v);
        assert_eq!(
            h.to_bits(),
            want.to_bits(),
            "f16 of {v}: MLX {h}, half {want}"
        );
    }
    let back = values_f32(&halves);
    for (v, b) in exact.iter().zip(&back) {
        assert_eq!(v.to_bits(), b.to_bits(), "{v} is exact in f16");
    }
    for (v, b) in inexact.iter().zip(&back[exact.len()..]) {
        assert_ne!(v, b, "{v} is not exact in f16");
    }
    // Half values in, the same values out.
    let direct: Vec<half::f16> = all.iter().map(|v| half::f16::from_f32(*v)).collect();
    let a = Array::from_slice(&direct, &[direct.len() as i32]);
    assert_eq!(a.dtype(), Dtype::Float16);
    assert_eq!(a.as_slice::<half::f16>(), &direct[..]);
}

#[test]
fn bf16_round_trip_matches_the_half_crate() {
    let exact = [
        0.0f32,
        -0.0,
        1.0,
        -2.5,
        0.333_984_38,
        3.389_531_4e38,
        1.175_494_4e-38,
        256.0,
    ];
    let inexact = [
        0.1f32,
        1.0 / 3.0,
        std::f32::consts::PI,
        257.0,
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
        f32::MAX,
        1e-40,
    ];
    let all: Vec<f32> = exact.iter().chain(&inexact).copied().collect();
    let halves = array(&all, &[all.len() as i32])
        .as_dtype(Dtype::Bfloat16)
        .unwrap();
    let got = halves.as_slice::<half::bf16>();
    for (v, h) in all.iter().zip(got) {
        let want = half::bf16::from_f32(*v);
        assert_eq!(
            h.to_bits(),
            want.to_bits(),
            "bf16 of {v}: MLX {h}, half {want}"
        );
    }
    let back = values_f32(&halves);
    for (v, b) in exact.iter().zip(&back) {
        assert_eq!(v.to_bits(), b.to_bits(), "{v} is exact in bf16");
    }
    for (v, b) in inexact.iter().zip(&back[exact.len()..]) {
        assert_ne!(v, b, "{v} is not exact in bf16");
    }
    let nan = array(&[f32::NAN], &[1]).as_dtype(Dtype::Bfloat16).unwrap();
    assert!(nan.as_slice::<half::bf16>()[0].is_nan());
}
