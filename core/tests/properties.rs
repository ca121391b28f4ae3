//! Property tests: the standard KV cache against a Vec model, the samplers
//! against their definitions, and the config parser against arbitrary text.

mod common;

use common::values_f32;
use forge_core::generation::sampler::sampler_for;
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::rope::RopeParameters;
use forge_core::{
    ArgmaxSampler, Error, KvCache, ModelConfig, Sampler, StandardCache, TemperatureSampler,
};
use proptest::prelude::*;
use serde::Deserialize;

// ---------------------------------------------------------------- cache

const HEADS: usize = 2;
const KEY_DIM: usize = 3;
const VALUE_DIM: usize = 2;

#[derive(Debug, Clone)]
enum CacheOp {
    Update(usize),
    Trim(usize),
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        3 => (1usize..5).prop_map(CacheOp::Update),
        1 => (0usize..7).prop_map(CacheOp::Trim),
    ]
}

/// The model: one entry per position, each holding every head's key and
/// value, as plain numbers.
#[derive(Default)]
struct VecCache {
    keys: Vec<[f32; HEADS * KEY_DIM]>,
    values: Vec<[f32; HEADS * VALUE_DIM]>,
}

impl VecCache {
    /// The model's content laid out as MLX's `[1, heads, T, dim]`.
    fn layout<const N: usize>(rows: &[[f32; N]], dim: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for h in 0..HEADS {
            for row in rows {
                out.extend_from_slice(&row[h * dim..(h + 1) * dim]);
            }
        }
        out
    }
}

/// `n` new positions numbered from `next` (every number distinct), as
/// MLX arrays and as model rows.
#[allow(clippy::type_complexity)]
fn new_positions(
    n: usize,
    next: &mut f32,
) -> (
    Array,
    Array,
    Vec<[f32; HEADS * KEY_DIM]>,
    Vec<[f32; HEADS * VALUE_DIM]>,
) {
    let mut key_rows = vec![[0.0; HEADS * KEY_DIM]; n];
    let mut value_rows = vec![[0.0; HEADS * VALUE_DIM]; n];
    for t in 0..n {
        for v in key_rows[t].iter_mut().chain(value_rows[t].iter_mut()) {
            *v = *next;
            *next += 1.0;
        }
    }
    let keys = Array::from_slice(
        &VecCache::layout(&key_rows, KEY_DIM),
        &[1, HEADS as i32, n as i32, KEY_DIM as i32],
    );
    let values = Array::from_slice(
        &VecCache::layout(&value_rows, VALUE_DIM),
        &[1, HEADS as i32, n as i32, VALUE_DIM as i32],
    );
    (keys, values, key_rows, value_rows)
}

fn check_fetched(k: &Array, v: &Array, model: &VecCache) -> Result<(), TestCaseError> {
    let t = model.keys.len() as i32;
    prop_assert_eq!(k.shape(), &[1, HEADS as i32, t, KEY_DIM as i32]);
    prop_assert_eq!(v.shape(), &[1, HEADS as i32, t, VALUE_DIM as i32]);
    prop_assert_eq!(values_f32(k), VecCache::layout(&model.keys, KEY_DIM));
    prop_assert_eq!(values_f32(v), VecCache::layout(&model.values, VALUE_DIM));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn standard_cache_behaves_like_a_vec(ops in proptest::collection::vec(cache_op(), 1..12)) {
        let mut cache = StandardCache::new();
        let mut model = VecCache::default();
        let mut next = 0.0f32;
        prop_assert!(cache.is_trimmable());
        for op in &ops {
            match *op {
                CacheOp::Update(n) => {
                    let (keys, values, key_rows, value_rows) = new_positions(n, &mut next);
                    let (k, v) = cache.update_and_fetch(&keys, &values).unwrap();
                    model.keys.extend(key_rows);
                    model.values.extend(value_rows);
                    check_fetched(&k, &v, &model)?;
                }
                CacheOp::Trim(n) => {
                    let dropped = cache.trim(n);
                    let expected = n.min(model.keys.len());
                    prop_assert_eq!(dropped, expected);
                    let keep = model.keys.len() - expected;
                    model.keys.truncate(keep);
                    model.values.truncate(keep);
                }
            }
            prop_assert_eq!(cache.offset(), model.keys.len());
        }

        // state() / set_state() round trip into a fresh cache.
        let state = cache.state();
        if model.keys.is_empty() {
            prop_assert!(state.is_empty());
        } else {
            prop_assert_eq!(state.len(), 2);
            check_fetched(&state[0], &state[1], &model)?;
        }
        let mut restored = StandardCache::new();
        restored.set_state(state, cache.offset()).unwrap();
        prop_assert_eq!(restored.offset(), model.keys.len());
        // Both caches continue the same way.
        let (keys, values, key_rows, value_rows) = new_positions(2, &mut next);
        let (k1, v1) = cache.update_and_fetch(&keys, &values).unwrap();
        let (k2, v2) = restored.update_and_fetch(&keys, &values).unwrap();
        model.keys.extend(key_rows);
        model.values.extend(value_rows);
        check_fetched(&k1, &v1, &model)?;
        check_fetched(&k2, &v2, &model)?;
    }
}

#[test]
fn cache_rejects_mismatched_input_and_state() {
    let mut cache = StandardCache::new();
    let keys = Array::from_slice(&[0.0f32; 6], &[1, 1, 3, 2]);
    let values = Array::from_slice(&[0.0f32; 4], &[1, 1, 2, 2]);
    match cache.update_and_fetch(&keys, &values) {
        Err(Error::InvalidInput { expected, found }) => {
            assert!(expected.contains("3 positions"), "{expected}");
            assert!(found.contains('2'), "{found}");
        }
        other => panic!("expected Error::InvalidInput, got {other:?}"),
    }
    assert_eq!(cache.offset(), 0, "a rejected update changes nothing");

    let three = Array::from_slice(&[0.0f32; 6], &[1, 1, 3, 2]);
    assert!(matches!(
        cache.set_state(vec![three.clone(), three.clone()], 4),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        cache.set_state(vec![three.clone()], 3),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        cache.set_state(Vec::new(), 2),
        Err(Error::InvalidInput { .. })
    ));
    cache.set_state(vec![three.clone(), three], 3).unwrap();
    assert_eq!(cache.offset(), 3);
    cache.set_state(Vec::new(), 0).unwrap();
    assert_eq!(cache.offset(), 0);
    assert!(cache.state().is_empty());
}

// ---------------------------------------------------------------- samplers

fn tokens(a: &Array) -> Vec<i64> {
    let a = a.as_dtype(Dtype::Int64).unwrap();
    a.as_slice::<i64>().to_vec()
}

/// The index of the first maximum of each row.
fn first_argmax(rows: &[Vec<f32>]) -> Vec<i64> {
    rows.iter()
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best as i64
        })
        .collect()
}

fn logits_array(rows: &[Vec<f32>]) -> Array {
    let flat: Vec<f32> = rows.concat();
    Array::from_slice(&flat, &[rows.len() as i32, rows[0].len() as i32])
}

/// 1–3 rows of `vocab` logits drawn from a few values, so ties are common.
fn tied_logits() -> impl Strategy<Value = Vec<Vec<f32>>> {
    (1usize..40, 1usize..4).prop_flat_map(|(vocab, rows)| {
        proptest::collection::vec(
            proptest::collection::vec((-3i32..4).prop_map(|v| v as f32 * 0.5), vocab),
            rows,
        )
    })
}

/// 1–3 rows of `vocab` distinct logits (a shuffled ladder).
fn distinct_logits() -> impl Strategy<Value = Vec<Vec<f32>>> {
    (2usize..40, 1usize..4).prop_flat_map(|(vocab, rows)| {
        proptest::collection::vec(
            Just((0..vocab).collect::<Vec<_>>())
                .prop_shuffle()
                .prop_map(|order| order.into_iter().map(|i| i as f32 * 0.37 - 5.0).collect()),
            rows,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn argmax_picks_the_first_maximum(rows in tied_logits()) {
        let got = ArgmaxSampler.sample(&logits_array(&rows)).unwrap();
        prop_assert_eq!(tokens(&got), first_argmax(&rows));
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens(rows in distinct_logits(), seed in any::<u64>()) {
        let logits = logits_array(&rows);
        let mut a = TemperatureSampler::new(1.0, seed).unwrap();
        let mut b = TemperatureSampler::new(1.0, seed).unwrap();
        for _ in 0..4 {
            let ta = tokens(&a.sample(&logits).unwrap());
            let tb = tokens(&b.sample(&logits).unwrap());
            prop_assert_eq!(&ta, &tb);
            prop_assert!(ta.iter().all(|&t| t >= 0 && (t as usize) < rows[0].len()));
        }
    }

    #[test]
    fn a_very_low_temperature_is_argmax(rows in distinct_logits(), seed in any::<u64>()) {
        // Logits 0.37 apart at T = 1e-3: the runner-up has odds e^-370.
        let mut sampler = TemperatureSampler::new(1e-3, seed).unwrap();
        let got = sampler.sample(&logits_array(&rows)).unwrap();
        prop_assert_eq!(tokens(&got), first_argmax(&rows));
    }
}

#[test]
fn temperature_sampling_follows_the_tempered_softmax() {
    // Two tokens with logits 0 and ln 3: p(1) = 3/4 at T = 1 and
    // √3 / (1 + √3) at T = 2. 4000 draws in one batch; 5 standard errors.
    let n = 4000;
    let row = [0.0f32, 3f32.ln()];
    let logits = Array::from_slice(&row.repeat(n), &[n as i32, 2]);
    for (temperature, p) in [(1.0f32, 0.75f64), (2.0, 3f64.sqrt() / (1.0 + 3f64.sqrt()))] {
        let mut sampler = TemperatureSampler::new(temperature, 1234).unwrap();
        let draws = tokens(&sampler.sample(&logits).unwrap());
        assert_eq!(draws.len(), n);
        let ones = draws.iter().filter(|&&t| t == 1).count() as f64 / n as f64;
        let tolerance = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (ones - p).abs() < tolerance,
            "T = {temperature}: p(1) = {ones}, expected {p} ± {tolerance}"
        );
    }
}

#[test]
fn bad_temperatures_are_refused() {
    for t in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        match TemperatureSampler::new(t, 0) {
            Err(Error::InvalidInput { found, .. }) => assert_eq!(found, t.to_string()),
            other => panic!("temperature {t}: expected Error::InvalidInput, got {other:?}"),
        }
    }
    // Temperature 0 means greedy.
    let rows = vec![vec![0.5f32, 2.0, 2.0, -1.0]];
    let mut greedy = sampler_for(0.0, 7).unwrap();
    assert_eq!(
        tokens(&greedy.sample(&logits_array(&rows)).unwrap()),
        vec![1]
    );
    assert!(sampler_for(-0.5, 7).is_err());
}

// ---------------------------------------------------------------- config parser

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct AnyArgs {
    hidden_size: Option<usize>,
    #[serde(default)]
    rope_parameters: RopeParameters,
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("llama3"),
            Just("yarn"),
            Just("linear"),
            Just("dynamic"),
            Just("default")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("rope_type".to_string()),
                    Just("factor".to_string()),
                    Just("rope_theta".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Config-like objects whose rope keys hold anything at all.
fn config_like() -> impl Strategy<Value = String> {
    proptest::collection::btree_map(
        prop_oneof![
            Just("rope_theta".to_string()),
            Just("rope_scaling".to_string()),
            Just("rope_parameters".to_string()),
            Just("model_type".to_string()),
            Just("hidden_size".to_string()),
            "[a-z_]{1,10}",
        ],
        json_value(),
        0..6,
    )
    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_config_parser_never_panics_on_text(text in any::<String>()) {
        if let Ok(config) = ModelConfig::from_str(&text, "config.json", true) {
            let _ = config.model_type();
            let _ = config.parse_args::<AnyArgs>(&[]);
        }
    }

    #[test]
    fn the_config_parser_never_panics_on_json_ish_text(
        text in r#"\{ ?("[a-z_]{1,12}" ?: ?(-?[0-9]{1,4}(\.[0-9])?|"[a-z]{0,5}"|null|true|\[\]|\{\}|\{"type": ?"[a-z]{0,6}"\}),? ?){0,5}\}?"#
    ) {
        if let Ok(config) = ModelConfig::from_str(&text, "config.json", false) {
            let _ = config.parse_args::<AnyArgs>(&[]);
        }
    }

    #[test]
    fn rope_keys_of_any_shape_never_panic(text in config_like()) {
        // Valid JSON objects always parse as a config unless a rope key has
        // the wrong kind of value; parsing the args may fail, never panic.
        match ModelConfig::from_str(&text, "config.json", true) {
            Ok(config) => {
                let _ = config.parse_args::<AnyArgs>(&[]);
                let _ = config.key_report();
            }
            Err(Error::ConfigValue { key, .. }) => {
                prop_assert!(key == "rope_scaling" || key == "rope_parameters", "{}", key);
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }
}
