//! Beam search bookkeeping and cache reordering, apart from any model:
//! property tests of the invariants HF's beam search keeps, the one-beam
//! search against greedy decoding, cache row selection round trips, and
//! the settings beam search refuses.

mod common;

use common::values_f32;
use forge_core::generation::beam::{select_cache_rows, BeamSearch, EarlyStopping};
use forge_core::generation::generate::FinishReason;
use forge_core::mlx_rs::Array;
use forge_core::{GenerationConfig, KvCache, StandardCache};
use proptest::prelude::*;

// ---------------------------------------------------------------- bookkeeping

/// A made-up log-probability of `token` after `tokens`, in [-8, 0]: a pure
/// function of the sequence, so any hypothesis' score can be recomputed.
fn lp(tokens: &[u32], token: u32) -> f32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &t in tokens.iter().chain([&token]) {
        h ^= t as u64 + 1;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    -((h >> 40) as f32 / (1u64 << 24) as f32) * 8.0
}

fn rows(search: &BeamSearch, vocab: u32) -> Vec<Vec<f32>> {
    search
        .running()
        .iter()
        .map(|b| (0..vocab).map(|v| lp(&b.tokens, v)).collect())
        .collect()
}

/// The f32 sum of the new tokens' log-probabilities, in order.
fn summed(tokens: &[u32], prompt_len: usize) -> f32 {
    (prompt_len..tokens.len()).fold(0.0f32, |s, k| lp(&tokens[..k], tokens[k]) + s)
}

fn early_stopping() -> impl Strategy<Value = EarlyStopping> {
    prop_oneof![
        Just(EarlyStopping::Heuristic),
        Just(EarlyStopping::WhenFull),
        Just(EarlyStopping::Never),
    ]
}

fn beam_config() -> impl Strategy<Value = (GenerationConfig, u32)> {
    (
        1usize..5,
        12u32..16,
        1usize..7,
        prop::sample::select(vec![-1.0f32, 0.0, 0.5, 1.0, 2.0]),
        early_stopping(),
        prop::collection::vec(0u32..6, 0..3),
    )
        .prop_map(|(beams, vocab, max_new, lp, es, eos)| {
            let config = GenerationConfig {
                num_beams: beams,
                num_return_sequences: beams,
                max_new_tokens: max_new,
                length_penalty: lp,
                early_stopping: es,
                eos_token_id: eos,
                ..Default::default()
            };
            (config, vocab)
        })
}

proptest! {
    #[test]
    fn beam_bookkeeping_keeps_its_invariants((config, vocab) in beam_config()) {
        let prompt = [1u32, 2, 3];
        let mut search = BeamSearch::new(&prompt, &config).unwrap();
        let n = config.num_beams;
        let mut steps = 0;
        while !search.is_done() {
            let before: Vec<_> = search.running().to_vec();
            let parents = search.step(&rows(&search, vocab)).unwrap();
            steps += 1;
            prop_assert!(steps <= config.max_new_tokens, "ran past max_new_tokens");
            prop_assert_eq!(parents.len(), n);
            let running = search.running();
            for (beam, &p) in running.iter().zip(&parents) {
                // Each new running beam extends its parent by one token...
                prop_assert!(p < n);
                prop_assert_eq!(&beam.tokens[..beam.tokens.len() - 1], &before[p].tokens[..]);
                let token = *beam.tokens.last().unwrap();
                // ...with the summed score, and never with an EOS while it runs on.
                if !search.is_done() {
                    prop_assert!(!config.eos_token_id.contains(&token));
                    prop_assert_eq!(beam.score, lp(&before[p].tokens, token) + before[p].score);
                }
            }
            prop_assert!(running.windows(2).all(|w| w[0].score >= w[1].score));
            let finished = search.finished();
            prop_assert_eq!(finished.len(), n);
            prop_assert!(finished.windows(2).all(|w| w[0].score >= w[1].score));
            for slot in finished.iter().filter(|s| s.done) {
                let new = slot.tokens.len() - prompt.len();
                let last = *slot.tokens.last().unwrap();
                prop_assert!(new >= 1 && new <= config.max_new_tokens);
                prop_assert!(new == config.max_new_tokens || config.eos_token_id.contains(&last));
                let denom = (new as f64).powf(config.length_penalty as f64) as f32;
                prop_assert_eq!(slot.score, summed(&slot.tokens, prompt.len()) / denom);
            }
        }
        // At the end every kept slot holds a finished hypothesis.
        prop_assert!(search.finished().iter().all(|s| s.done));
        let hyps = search.hypotheses(n);
        prop_assert_eq!(hyps.len(), n);
        for h in &hyps {
            let stopped = h.tokens.last().is_some_and(|t| config.eos_token_id.contains(t));
            prop_assert_eq!(h.finish_reason == FinishReason::Stop, stopped);
        }
    }

    #[test]
    fn one_beam_is_greedy_decoding(vocab in 4u32..12, max_new in 1usize..8, lp_pow in -1.0f32..2.0) {
        let prompt = [7u32];
        let config = GenerationConfig {
            max_new_tokens: max_new,
            length_penalty: lp_pow,
            ..Default::default()
        };
        let mut search = BeamSearch::new(&prompt, &config).unwrap();
        while !search.is_done() {
            search.step(&rows(&search, vocab)).unwrap();
        }
        // Greedy on the running f32 sums (adding the sum can round two
        // log-probs to a tie; the lower token wins it, as in the search).
        let mut greedy = prompt.to_vec();
        let mut sum = 0.0f32;
        for _ in 0..max_new {
            let score = |t: u32| lp(&greedy, t) + sum;
            let best = (0..vocab)
                .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
                .unwrap();
            sum = score(best);
            greedy.push(best);
        }
        let hyp = &search.hypotheses(1)[0];
        prop_assert_eq!(&hyp.tokens[..], &greedy[1..]);
        let denom = (max_new as f64).powf(lp_pow as f64) as f32;
        prop_assert_eq!(hyp.score, summed(&greedy, 1) / denom);
        prop_assert_eq!(hyp.finish_reason, FinishReason::Length);
    }
}

#[test]
fn early_stopping_true_ends_once_every_slot_is_finished() {
    // Every token but 0 is an EOS id: all kept continuations finish at once.
    let config = GenerationConfig {
        num_beams: 2,
        max_new_tokens: 5,
        early_stopping: EarlyStopping::WhenFull,
        eos_token_id: vec![1, 2, 3],
        ..Default::default()
    };
    let mut search = BeamSearch::new(&[9], &config).unwrap();
    let row = vec![-3.0, -0.1, -0.2, -0.3, -4.0, -5.0, -6.0, -7.0];
    let parents = search.step(&[row.clone(), row]).unwrap();
    assert!(search.is_done());
    assert_eq!(parents, vec![0, 0]);
    let hyps = search.hypotheses(2);
    assert_eq!(hyps[0].tokens, vec![1]);
    assert_eq!(hyps[1].tokens, vec![2]);
    assert!(hyps.iter().all(|h| h.finish_reason == FinishReason::Stop));
    assert_eq!(hyps[0].score, -0.1);
}

// ---------------------------------------------------------------- caches

fn filled_cache(batch: usize, len: usize) -> (StandardCache, Array, Array) {
    let n = (batch * 2 * len * 3) as i32;
    let shape = [batch as i32, 2, len as i32, 3];
    let keys = Array::from_iter((0..n).map(|v| v as f32), &shape);
    let values = Array::from_iter((0..n).map(|v| -(v as f32) * 0.5), &shape);
    let mut cache = StandardCache::new();
    cache.update_and_fetch(&keys, &values).unwrap();
    (cache, keys, values)
}

fn inverse(perm: &[u32]) -> Vec<u32> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p as usize] = i as u32;
    }
    inv
}

proptest! {
    #[test]
    fn reordering_by_a_permutation_then_its_inverse_restores_the_cache(
        perm in (1usize..6).prop_flat_map(|b| Just((0..b as u32).collect::<Vec<_>>()).prop_shuffle()),
        len in 1usize..5,
    ) {
        let (cache, keys, values) = filled_cache(perm.len(), len);
        let mut caches: Vec<Box<dyn KvCache>> = vec![Box::new(cache)];
        select_cache_rows(&mut caches, &perm).unwrap();
        // Row i now holds old row perm[i].
        let row = 2 * len * 3;
        let moved = values_f32(&caches[0].state()[0]);
        let original = values_f32(&keys);
        for (i, &p) in perm.iter().enumerate() {
            let p = p as usize;
            prop_assert_eq!(&moved[i * row..(i + 1) * row], &original[p * row..(p + 1) * row]);
        }
        prop_assert_eq!(caches[0].offset(), len);
        select_cache_rows(&mut caches, &inverse(&perm)).unwrap();
        let state = caches[0].state();
        prop_assert_eq!(values_f32(&state[0]), values_f32(&keys));
        prop_assert_eq!(values_f32(&state[1]), values_f32(&values));
    }
}

#[test]
fn repeating_a_row_copies_a_prompt_cache_to_every_beam() {
    let (cache, keys, _) = filled_cache(1, 3);
    let mut caches: Vec<Box<dyn KvCache>> = vec![Box::new(cache)];
    select_cache_rows(&mut caches, &[0, 0, 0]).unwrap();
    let state = caches[0].state();
    assert_eq!(state[0].shape(), &[3, 2, 3, 3]);
    let one = values_f32(&keys);
    assert_eq!(
        values_f32(&state[0]),
        [one.clone(), one.clone(), one].concat()
    );
}

#[test]
fn a_row_outside_the_batch_is_refused() {
    let (cache, _, _) = filled_cache(2, 2);
    let mut caches: Vec<Box<dyn KvCache>> = vec![Box::new(cache)];
    let err = select_cache_rows(&mut caches, &[0, 2])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("below the batch size 2") && err.contains('2'),
        "{err}"
    );
    // An empty cache has no rows to move.
    let mut empty: Vec<Box<dyn KvCache>> = vec![Box::new(StandardCache::new())];
    select_cache_rows(&mut empty, &[0, 0]).unwrap();
}

// ---------------------------------------------------------------- settings

fn refused(config: GenerationConfig, name: &str) {
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains(name), "{name}: {err}");
}

#[test]
fn malformed_beam_settings_get_clear_errors() {
    refused(
        GenerationConfig {
            num_beams: 0,
            ..Default::default()
        },
        "num_beams",
    );
    refused(
        GenerationConfig {
            num_beams: 2,
            num_return_sequences: 3,
            ..Default::default()
        },
        "num_return_sequences: between 1 and num_beams (2)",
    );
    refused(
        GenerationConfig {
            num_return_sequences: 0,
            ..Default::default()
        },
        "num_return_sequences",
    );
    refused(
        GenerationConfig {
            num_beams: 3,
            temperature: 0.7,
            ..Default::default()
        },
        "beam search does not sample",
    );
    refused(
        GenerationConfig {
            length_penalty: f32::NAN,
            ..Default::default()
        },
        "length_penalty",
    );
    let err = BeamSearch::new(
        &[1],
        &GenerationConfig {
            max_new_tokens: 0,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_new_tokens"), "{err}");
}

#[test]
fn early_stopping_reads_hf_values() {
    for (json, want) in [
        ("true", EarlyStopping::WhenFull),
        ("false", EarlyStopping::Heuristic),
        ("\"never\"", EarlyStopping::Never),
    ] {
        let text = format!("{{\"early_stopping\": {json}, \"num_beams\": 2}}");
        let config: GenerationConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(config.early_stopping, want, "{json}");
    }
    let err = serde_json::from_str::<GenerationConfig>("{\"early_stopping\": \"sometimes\"}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("early_stopping"), "{err}");
    assert!("sometimes".parse::<EarlyStopping>().is_err());
}
