//! Samplers, warpers and generation settings: properties (top-p keeps at
//! least p of the mass, the min-p threshold, a filtered token is never
//! drawn, the same seed draws the same tokens, XTC against its definition),
//! stop-string hold-back, and clear errors for malformed settings.

use forge_core::generation::detokenizer::StopStrings;
use forge_core::generation::logits_processors::LogitsProcessor;
use forge_core::generation::sampler::{draw, softmax, MinP, Rng, TopK, TopP, Xtc};
use forge_core::{Error, GenerationConfig};
use proptest::prelude::*;

/// A row of 2–60 scores in [-8, 8] (some −∞ when `holes`).
fn scores(holes: bool) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        prop_oneof![
            10 => (-8.0f32..8.0).prop_map(|v| v),
            if holes { 1 } else { 0 } => Just(f32::NEG_INFINITY),
        ],
        2..60,
    )
    .prop_filter("at least one finite score", |row| {
        row.iter().any(|v| v.is_finite())
    })
}

fn kept(row: &[f32]) -> Vec<usize> {
    (0..row.len()).filter(|&i| row[i].is_finite()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn top_p_keeps_at_least_p_of_the_mass(row in scores(true), p in 0.01f32..=1.0, keep in 1usize..4) {
        let probs = softmax(&row);
        let mut out = row.clone();
        TopP::new(p, keep).unwrap().process(&[], &mut out).unwrap();
        let mass: f64 = kept(&out).iter().map(|&i| probs[i]).sum();
        prop_assert!(mass >= p as f64 - 1e-9, "kept mass {mass} < p {p}");
        prop_assert!(kept(&out).len() >= keep.min(kept(&row).len()));
        // Every kept token is at least as likely as every removed one.
        let least_kept = kept(&out).iter().map(|&i| row[i]).fold(f32::INFINITY, f32::min);
        for i in 0..row.len() {
            if !out[i].is_finite() {
                prop_assert!(row[i] <= least_kept);
            }
        }
    }

    #[test]
    fn min_p_removes_exactly_the_tokens_below_the_threshold(row in scores(true), min_p in 0.0f32..=1.0) {
        let probs = softmax(&row);
        let top = probs.iter().copied().fold(0.0, f64::max);
        let best = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a))).unwrap();
        let mut out = row.clone();
        MinP::new(min_p, 1).unwrap().process(&[], &mut out).unwrap();
        for i in 0..row.len() {
            let below = probs[i] < min_p as f64 * top;
            if i == best {
                prop_assert!(out[i].is_finite());
            } else {
                prop_assert_eq!(out[i].is_finite(), !below && row[i].is_finite(), "token {}", i);
            }
        }
    }

    #[test]
    fn top_k_keeps_the_k_best_distinct_scores(n in 2usize..50, k in 1usize..60, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let row: Vec<f32> = order.iter().map(|&i| i as f32 * 0.5).collect();
        let mut out = row.clone();
        TopK::new(k, 1).unwrap().process(&[], &mut out).unwrap();
        prop_assert_eq!(kept(&out).len(), k.min(n));
        for i in 0..n {
            prop_assert_eq!(out[i].is_finite(), order[i] >= n.saturating_sub(k));
        }
    }

    #[test]
    fn a_filtered_token_is_never_drawn(row in scores(true), seed in any::<u64>(), p in 0.05f32..1.0, k in 1usize..8) {
        let config = GenerationConfig { temperature: 0.9, top_p: p, top_k: k, min_p: 0.05, seed, ..Default::default() };
        config.validate().unwrap();
        let mut sampler = config.sampler().unwrap();
        for _ in 0..16 {
            let mut filtered = row.clone();
            for mut w in config.warpers().unwrap() {
                w.process(&[], &mut filtered).unwrap();
            }
            let mut work = row.clone();
            let token = sampler.pick(&[], &mut work).unwrap() as usize;
            prop_assert!(filtered[token].is_finite(), "drew filtered token {}", token);
            prop_assert_eq!(&work, &filtered);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens(row in scores(false), seed in any::<u64>()) {
        let config = GenerationConfig { temperature: 1.3, top_p: 0.95, seed, ..Default::default() };
        let draws = |config: &GenerationConfig| {
            let mut sampler = config.sampler().unwrap();
            (0..24).map(|_| sampler.pick(&[], &mut row.clone()).unwrap()).collect::<Vec<_>>()
        };
        prop_assert_eq!(draws(&config), draws(&config));
    }

    #[test]
    fn stop_string_hold_back_never_gives_away_a_stop_or_splits_a_character(
        text in "[abé ]{0,12}", stop in "[abé]{1,4}"
    ) {
        let stops = StopStrings::new(std::slice::from_ref(&stop));
        let safe = stops.safe_len(&text);
        prop_assert!(text.is_char_boundary(safe));
        if stops.find(&text).is_none() {
            // What is held back could still become the stop string.
            let held = &text[safe..];
            prop_assert!(held.is_empty() || stop.starts_with(held));
            // Whatever follows, the text handed out holds no stop string.
            prop_assert!(!text[..safe].contains(stop.as_str()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// XTC when it fires (probability 1): of the tokens more likely than the
    /// threshold, all but the least likely are removed; special tokens and
    /// tokens at or below the threshold are never touched.
    #[test]
    fn xtc_removes_the_top_choices_but_the_least_likely_of_them(
        row in scores(true),
        threshold in 0.0f32..=0.5,
        special in proptest::collection::vec(0u32..60, 0..3),
        seed in any::<u64>(),
    ) {
        let mut out = row.clone();
        Xtc::new(1.0, threshold, special.clone(), seed).unwrap().process(&[], &mut out).unwrap();
        let probs = softmax(&row);
        let above: Vec<usize> = (0..row.len()).filter(|&i| probs[i] > threshold as f64).collect();
        let least = above.iter().map(|&i| probs[i]).fold(f64::INFINITY, f64::min);
        for i in 0..row.len() {
            let removed = probs[i] > least && !special.contains(&(i as u32));
            if removed {
                prop_assert_eq!(out[i], f32::NEG_INFINITY, "token {} (p {}) kept", i, probs[i]);
            } else {
                prop_assert_eq!(out[i].to_bits(), row[i].to_bits(), "token {} changed", i);
            }
        }
        // The least likely top choice always survives, so something is left.
        if let Some(&keep) = above.iter().find(|&&i| probs[i] == least) {
            prop_assert!(out[keep].is_finite());
        }
        prop_assert!(out.iter().any(|v| v.is_finite()));
    }

    /// XTC with probability 0 never fires; the same seed makes the same
    /// decisions.
    #[test]
    fn xtc_never_fires_at_probability_0_and_is_seeded(row in scores(false), seed in any::<u64>()) {
        let mut out = row.clone();
        let mut never = Xtc::new(0.0, 0.0, Vec::new(), seed).unwrap();
        for _ in 0..16 {
            never.process(&[], &mut out).unwrap();
        }
        prop_assert_eq!(&out, &row);
        let decisions = || {
            let mut xtc = Xtc::new(0.5, 0.0, Vec::new(), seed).unwrap();
            (0..16)
                .map(|_| {
                    let mut r = row.clone();
                    xtc.process(&[], &mut r).unwrap();
                    r
                })
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(decisions(), decisions());
    }
}

#[test]
fn xtc_fires_at_its_probability() {
    // Two tokens above the threshold: each firing removes the likelier one.
    let row = [2.0f32, 1.5, -3.0, -3.0];
    let mut xtc = Xtc::new(0.3, 0.1, Vec::new(), 11).unwrap();
    let trials = 20000;
    let fired = (0..trials)
        .filter(|_| {
            let mut r = row;
            xtc.process(&[], &mut r).unwrap();
            r[0] == f32::NEG_INFINITY
        })
        .count();
    let rate = fired as f64 / trials as f64;
    // Within 5 standard errors of 0.3.
    let se = (0.3f64 * 0.7 / trials as f64).sqrt();
    assert!((rate - 0.3).abs() < 5.0 * se, "fired at rate {rate}");
}

#[test]
fn draws_follow_the_distribution() {
    // p = (0.1, 0.2, 0.7): 20000 draws, each frequency within 5 standard errors.
    let row: Vec<f32> = [0.1f32, 0.2, 0.7].iter().map(|p| p.ln()).collect();
    let mut rng = Rng::new(42);
    let n = 20000;
    let mut counts = [0usize; 3];
    for _ in 0..n {
        counts[draw(&row, &mut rng).unwrap() as usize] += 1;
    }
    for (i, p) in [0.1f64, 0.2, 0.7].iter().enumerate() {
        let freq = counts[i] as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!((freq - p).abs() < 5.0 * se, "token {i}: {freq} vs {p}");
    }
}

#[test]
fn every_token_filtered_is_an_error() {
    let mut rng = Rng::new(1);
    let row = [f32::NEG_INFINITY; 4];
    let err = draw(&row, &mut rng).unwrap_err().to_string();
    assert!(err.contains("filtered out"), "{err}");
    assert!(forge_core::generation::sampler::argmax(&row).is_err());
}

fn refused(config: GenerationConfig, key: &str, found: &str) {
    match config.validate() {
        Err(Error::InvalidInput { expected, found: f }) => {
            assert!(
                expected.starts_with(key),
                "expected names {key}: {expected}"
            );
            assert_eq!(f, found);
        }
        other => panic!("{key}: expected an InvalidInput error, got {other:?}"),
    }
}

#[test]
fn malformed_settings_get_clear_errors() {
    let d = GenerationConfig::default;
    refused(GenerationConfig { top_p: 0.0, ..d() }, "top_p", "0");
    refused(GenerationConfig { top_p: 1.5, ..d() }, "top_p", "1.5");
    refused(
        GenerationConfig {
            top_p: f32::NAN,
            ..d()
        },
        "top_p",
        "NaN",
    );
    refused(
        GenerationConfig {
            temperature: -0.5,
            ..d()
        },
        "temperature",
        "-0.5",
    );
    refused(GenerationConfig { min_p: 2.0, ..d() }, "min_p", "2");
    refused(
        GenerationConfig {
            typical_p: 0.0,
            ..d()
        },
        "typical_p",
        "0",
    );
    refused(
        GenerationConfig {
            epsilon_cutoff: 1.0,
            ..d()
        },
        "epsilon_cutoff",
        "1",
    );
    refused(
        GenerationConfig {
            min_tokens_to_keep: 0,
            ..d()
        },
        "min_tokens_to_keep",
        "0",
    );
    refused(
        GenerationConfig {
            repetition_penalty: 0.0,
            ..d()
        },
        "repetition_penalty",
        "0",
    );
    refused(
        GenerationConfig {
            stop_strings: vec!["end".into(), String::new()],
            ..d()
        },
        "stop_strings",
        "an empty stop string",
    );
    refused(
        GenerationConfig {
            bad_words_ids: vec![vec![]],
            ..d()
        },
        "bad_words_ids",
        "[]",
    );
    refused(
        GenerationConfig {
            prefill_step_size: 0,
            ..d()
        },
        "prefill_step_size",
        "0",
    );
    refused(
        GenerationConfig {
            num_draft_tokens: 0,
            ..d()
        },
        "num_draft_tokens",
        "0",
    );
    assert!(GenerationConfig {
        forced_decoder_ids: vec![(0, 3)],
        ..d()
    }
    .validate()
    .is_err());
    assert!(d().validate().is_ok());
}

#[test]
fn settings_read_hf_names_and_refuse_unknown_keys() {
    let config: GenerationConfig = serde_json::from_str(
        r#"{"temperature": 0.7, "top_p": 0.9, "eos_token_id": [2, 5], "logit_bias": {"3": -1.5}}"#,
    )
    .unwrap();
    assert_eq!(config.eos_token_id, vec![2, 5]);
    assert_eq!(config.logit_bias.get(&3), Some(&-1.5));
    let err = serde_json::from_str::<GenerationConfig>(r#"{"top_pp": 0.9}"#).unwrap_err();
    assert!(err.to_string().contains("top_pp"), "{err}");
}

#[test]
fn token_ids_outside_the_vocabulary_are_refused_when_applied() {
    let config = GenerationConfig {
        logit_bias: [(10, 1.0)].into(),
        ..Default::default()
    };
    let mut row = vec![0.0f32; 4];
    let err = config
        .processors(1)
        .unwrap()
        .remove(0)
        .process(&[0], &mut row)
        .unwrap_err();
    assert!(
        err.to_string().contains("below the vocabulary size 4"),
        "{err}"
    );
}
