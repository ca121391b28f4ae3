//! Checks that need no reference: any split of the prompt between prefill
//! and incremental decoding gives the logits of the one-shot forward.

mod common;

use forge_core::generation::generate::prefill;
use forge_core::mlx_rs::Dtype;
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, LoadOptions};
use forge_parity::compare::{compare, to_f64};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[test]
fn any_prompt_split_matches_the_full_forward() {
    let dir = common::golden().join("llama3-rope-long");
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict()).unwrap();
    let model = loaded.model.as_ref();
    let expected = load_safetensors_file(&dir.join("expected.safetensors")).unwrap();
    let ids = expected["input_ids"].as_dtype(Dtype::Int32).unwrap();
    ids.eval().unwrap();
    let prompt: Vec<u32> = ids.as_slice::<i32>().iter().map(|&v| v as u32).collect();
    let t = prompt.len();
    let full = model
        .forward(
            &ModelInput::Tokens(ids.clone()),
            None,
            &ForwardOptions::default(),
        )
        .unwrap();
    let full = to_f64(full.logits.as_ref().unwrap()).unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let strategy = (1..t, 1usize..8);
    runner
        .run(&strategy, |(split, chunk)| {
            // Prefill `split` tokens in chunks of `chunk`, then decode the rest one by one.
            let mut cache = model.new_cache();
            let head =
                to_f64(&prefill(model, &prompt[..split], &mut cache, chunk).unwrap()).unwrap();
            let tail = to_f64(&prefill(model, &prompt[split..], &mut cache, 1).unwrap()).unwrap();
            let incremental: Vec<f64> = head.into_iter().chain(tail).collect();
            prop_assert_eq!(cache[0].offset(), t);
            let e = compare(&incremental, &full, t, None);
            prop_assert!(
                e.max_abs < 1e-4 && e.rel < 1e-5,
                "split {split} chunk {chunk}: {e:?}"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_prompt_longer_than_the_context_is_an_error() {
    let dir = common::golden().join("llama-gqa");
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict()).unwrap();
    let model = loaded.model.as_ref();
    let max = model.max_context().unwrap();
    let prompt = vec![3u32; max + 1];
    let mut cache = model.new_cache();
    let err = prefill(model, &prompt, &mut cache, 64)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("at most {max} positions")), "{err}");
    assert!(err.contains(&format!("{} positions", max + 1)), "{err}");
}
