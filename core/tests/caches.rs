//! KV caches on their own: the rotating cache's invariants (never more than
//! `max_size` stored, the `keep` first positions kept, keys where its layout
//! says, every query sees `max_size` keys), and for every cache kind the
//! round trips: state → set_state, and trim then refill, give the same
//! outputs as never having left.

use forge_core::cache::quantized::QuantizedKvCache;
use forge_core::cache::rotating::RotatingCache;
use forge_core::cache::{CacheKind, KvCache, StandardCache};
use forge_core::mask::{layer_mask, LayerMask};
use forge_core::mlx_rs::{random, Array, Dtype};
use proptest::prelude::*;

/// Keys `[1, 1, n, 2]` holding their own position, values its negative.
fn numbered(start: usize, n: usize) -> (Array, Array) {
    let k: Vec<f32> = (start..start + n).flat_map(|p| [p as f32; 2]).collect();
    let v: Vec<f32> = k.iter().map(|x| -x).collect();
    let shape = [1, 1, n as i32, 2];
    (Array::from_slice(&k, &shape), Array::from_slice(&v, &shape))
}

/// The position each key of `[1, 1, T, 2]` holds.
fn key_positions(keys: &Array) -> Vec<i32> {
    keys.eval().unwrap();
    keys.as_slice::<f32>()
        .chunks(2)
        .map(|c| c[0] as i32)
        .collect()
}

fn values(a: &Array) -> Vec<f32> {
    let a = a.as_dtype(Dtype::Float32).unwrap();
    a.eval().unwrap();
    a.as_slice::<f32>().to_vec()
}

/// How many keys each of the `t` new queries sees under `mask`.
fn visible_counts(mask: &LayerMask, t: usize, keys: usize) -> Vec<usize> {
    match mask {
        LayerMask::None => vec![keys; t],
        LayerMask::Causal => (0..t).map(|i| keys - t + i + 1).collect(),
        LayerMask::Array(m) => values(m)
            .chunks(keys)
            .map(|row| row.iter().filter(|&&x| x == 0.0).count())
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rotating_cache_invariants(
        max in 2usize..10,
        keep_seed in 0usize..10,
        chunks in prop::collection::vec(1usize..9, 1..10),
    ) {
        let keep = keep_seed % max;
        let mut cache = RotatingCache::new(max, keep).unwrap();
        let mut offset = 0;
        for t in chunks {
            let layout = cache.key_layout(t);
            let (k, v) = numbered(offset, t);
            let (keys, vals) = cache.update_and_fetch(&k, &v).unwrap();
            let got = key_positions(&keys);
            // The keys are where the layout says, values with them.
            prop_assert_eq!(&got, &layout.positions());
            prop_assert_eq!(values(&vals), values(&keys).iter().map(|x| -x).collect::<Vec<_>>());
            // Every new query sees min(max, q + 1) keys: the kept ones and its latest.
            let mask = layer_mask(&layout, t, None, None, Dtype::Float32).unwrap();
            let counts = visible_counts(&mask, t, got.len());
            let want: Vec<usize> = (offset..offset + t).map(|q| max.min(q + 1)).collect();
            prop_assert_eq!(counts, want);
            offset += t;
            prop_assert_eq!(cache.offset(), offset);
            // At most max stored: the first `keep` positions, then the latest ones.
            let stored = key_positions(&cache.state()[0]);
            prop_assert!(stored.len() <= max);
            prop_assert_eq!(stored.len(), offset.min(max));
            let head = keep.min(stored.len());
            prop_assert_eq!(&stored[..head], &(0..head as i32).collect::<Vec<_>>()[..]);
            let tail: Vec<i32> = ((offset - (stored.len() - head)) as i32..offset as i32).collect();
            prop_assert_eq!(&stored[head..], &tail[..]);
        }
    }

    #[test]
    fn a_sliding_window_cache_is_hf_sliding_attention(
        window in 1usize..8,
        chunks in prop::collection::vec(1usize..9, 1..8),
    ) {
        // keep = 0: query q sees exactly the keys q - window < k <= q.
        let mut cache = RotatingCache::new(window, 0).unwrap();
        let mut offset = 0;
        for t in chunks {
            let layout = cache.key_layout(t);
            let mask = layer_mask(&layout, t, Some(window), None, Dtype::Float32).unwrap();
            let (k, v) = numbered(offset, t);
            let (keys, _) = cache.update_and_fetch(&k, &v).unwrap();
            let positions = key_positions(&keys);
            let seen: Vec<Vec<i32>> = match &mask {
                LayerMask::Array(m) => values(m)
                    .chunks(positions.len())
                    .map(|row| positions.iter().zip(row).filter(|(_, &x)| x == 0.0).map(|(p, _)| *p).collect())
                    .collect(),
                _ => (0..t).map(|i| positions[..positions.len() - t + i + 1].to_vec()).collect(),
            };
            for (i, keys) in seen.iter().enumerate() {
                let q = (offset + i) as i32;
                let want: Vec<i32> = ((q + 1 - window as i32).max(0)..=q).collect();
                prop_assert_eq!(keys, &want);
            }
            offset += t;
        }
    }

    #[test]
    fn state_round_trip_and_trim_then_refill(
        kind in 0usize..4,
        chunks in prop::collection::vec(1usize..6, 1..5),
        extra in 1usize..5,
        next in 1usize..5,
        seed in 0u64..1000,
    ) {
        let make = || -> Box<dyn KvCache> {
            match kind {
                0 => Box::new(StandardCache::new()),
                1 => Box::new(RotatingCache::new(64, 4).unwrap()),
                2 => Box::new(RotatingCache::new(5, 2).unwrap()),
                _ => Box::new(QuantizedKvCache::new(8, 32).unwrap()),
            }
        };
        let mut draws = 0;
        let mut draw = |t: usize| -> (Array, Array) {
            draws += 2;
            let k1 = random::key(seed * 100 + draws).unwrap();
            let k2 = random::key(seed * 100 + draws + 1).unwrap();
            let shape = [1, 2, t as i32, 32];
            (
                random::normal::<f32>(&shape[..], None, None, &k1).unwrap(),
                random::normal::<f32>(&shape[..], None, None, &k2).unwrap(),
            )
        };
        let mut a = make();
        let mut b = make();
        for &t in &chunks {
            let (k, v) = draw(t);
            a.update_and_fetch(&k, &v).unwrap();
            b.update_and_fetch(&k, &v).unwrap();
        }
        // Trim then refill equals never having gone so far.
        let (xk, xv) = draw(extra);
        a.update_and_fetch(&xk, &xv).unwrap();
        let trimmable = a.is_trimmable();
        let dropped = a.trim(extra);
        if trimmable {
            prop_assert_eq!(dropped, extra);
        } else {
            prop_assert_eq!(dropped, 0);
            prop_assert_eq!(a.offset(), b.offset() + extra);
            b.update_and_fetch(&xk, &xv).unwrap();
        }
        prop_assert_eq!(a.offset(), b.offset());
        // A restored copy of `a` behaves like `a`.
        let mut restored = make();
        restored.set_state(a.state(), a.offset()).unwrap();
        prop_assert_eq!(restored.kind(), a.kind());
        let (nk, nv) = draw(next);
        let (ka, va) = a.update_and_fetch(&nk, &nv).unwrap();
        let (kb, vb) = b.update_and_fetch(&nk, &nv).unwrap();
        let (kr, vr) = restored.update_and_fetch(&nk, &nv).unwrap();
        prop_assert_eq!(values(&ka), values(&kb));
        prop_assert_eq!(values(&va), values(&vb));
        prop_assert_eq!(values(&kr), values(&ka));
        prop_assert_eq!(values(&vr), values(&va));
    }
}

#[test]
fn quantized_cache_is_close_to_full_precision() {
    let key = random::key(7).unwrap();
    let k = random::normal::<f32>(&[1, 2, 12, 64][..], None, None, &key).unwrap();
    let v = ops_neg(&k);
    let mut full = StandardCache::new();
    let (fk, _) = full.update_and_fetch(&k, &v).unwrap();
    let data = values(&k);
    let range =
        data.iter().fold(f32::MIN, |m, &x| m.max(x)) - data.iter().fold(f32::MAX, |m, &x| m.min(x));
    for bits in [8, 4] {
        // Affine quantization: 2^bits levels over a group's range, the grid
        // anchored at the group's largest-magnitude end; off by under a step.
        let bound = range / ((1 << bits) - 1) as f32;
        let mut q = QuantizedKvCache::new(bits, 64).unwrap();
        let (qk, qv) = q.update_and_fetch(&k, &v).unwrap();
        assert_eq!(qk.shape(), fk.shape());
        assert_eq!(qv.dtype(), Dtype::Float32);
        let worst = values(&qk)
            .iter()
            .zip(values(&fk))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst > 0.0 && worst < bound,
            "{bits} bits: max error {worst}"
        );
        assert_eq!(
            q.kind(),
            CacheKind::Quantized {
                bits,
                group_size: 64
            }
        );
        assert_eq!(q.state().len(), 6);
    }
}

fn ops_neg(a: &Array) -> Array {
    forge_core::mlx_rs::ops::negative(a).unwrap()
}

#[test]
fn a_standard_cache_converts_to_a_quantized_one_with_its_positions() {
    let (k, v) = numbered(0, 3);
    let mut full = StandardCache::new();
    full.update_and_fetch(&k, &v).unwrap();
    // A head dim of 2 is not a multiple of any group size: a clear error.
    let Err(err) = full.to_quantized(8, 32) else {
        panic!("a head dim of 2 cannot be quantized in groups of 32");
    };
    let err = err.to_string();
    assert!(err.contains("divisible by kv_group_size 32"), "{err}");
    let wide = Array::from_slice(&[0.5f32; 3 * 32], &[1, 1, 3, 32]);
    let mut full = StandardCache::new();
    full.update_and_fetch(&wide, &wide).unwrap();
    let q = full
        .to_quantized(4, 32)
        .unwrap()
        .expect("standard caches convert");
    assert_eq!(q.offset(), 3);
    assert!(RotatingCache::new(8, 0)
        .unwrap()
        .to_quantized(4, 32)
        .unwrap()
        .is_none());
}

#[test]
fn bad_cache_settings_are_refused() {
    let err = RotatingCache::new(4, 4).unwrap_err().to_string();
    assert!(
        err.contains("keep < max_size") && err.contains("keep 4"),
        "{err}"
    );
    assert!(RotatingCache::new(0, 0).is_err());
    let err = QuantizedKvCache::new(7, 64).unwrap_err().to_string();
    assert!(err.contains("kv_bits one of") && err.contains('7'), "{err}");
    let err = QuantizedKvCache::new(4, 48).unwrap_err().to_string();
    assert!(err.contains("kv_group_size one of"), "{err}");
    let mut r = RotatingCache::new(4, 0).unwrap();
    let (k, v) = numbered(0, 3);
    let err = r.set_state(vec![k, v], 5).unwrap_err().to_string();
    assert!(err.contains("4 positions"), "{err}");
    let mut q = QuantizedKvCache::new(4, 32).unwrap();
    let err = q
        .set_state(vec![numbered(0, 1).0], 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("six quantized cache tensors"), "{err}");
}
