//! `batch_generate`: the golden batch cases (HF batched greedy on left-padded
//! prompts), text results against single-prompt `generate`, stop strings
//! ending one row while the others go on, result order under permutation
//! of the prompts, and clear errors for bad input.

mod common;

use forge_core::generation::batch::{batch_generate, BatchGenerator};
use forge_core::generation::generate::{stream_generate, FinishReason, TokenGenerator};
use forge_core::tokenizer::Tokenizer;
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};
use forge_parity::{render_table, run_case, RunOptions};
use proptest::prelude::*;

#[test]
fn golden_batch_cases_pass() {
    let cases = [
        "gen-batch-llama",
        "gen-batch-gpt-oss",
        "gen-batch-deepseek-v3",
    ];
    let reports: Vec<_> = cases
        .iter()
        .map(|c| run_case(&common::golden().join(c), &RunOptions::default()))
        .collect();
    let table = render_table(&reports);
    println!("{table}");
    for report in &reports {
        assert!(report.passed(), "case {} failed:\n{table}", report.case);
        for check in ["batch.0.tokens", "batch.1.logits", "batch.2.vs_single"] {
            assert!(
                report.rows.iter().any(|r| r.check == check),
                "no {check} row"
            );
        }
    }
}

fn model() -> LoadedModel {
    let dir = common::golden().join("gen-greedy-processors/model");
    load_model_dir(&dir, &LoadOptions::strict()).unwrap()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(&common::golden().join("gen-greedy-processors/model")).unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![11, 40, 7, 23, 60],
        vec![5],
        vec![30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42],
        vec![70, 3],
    ]
}

/// (text, finish reason) of one prompt generated alone.
fn alone(prompt: &[u32], config: &GenerationConfig) -> (String, FinishReason) {
    let model = model();
    let tokenizer = tokenizer();
    let mut text = String::new();
    let mut finish = None;
    for response in stream_generate(model.model.as_ref(), &tokenizer, prompt, config).unwrap() {
        let response = response.unwrap();
        text.push_str(&response.text);
        finish = response.finish_reason;
    }
    (text, finish.unwrap())
}

#[test]
fn batched_text_equals_single_prompt_text() {
    let (model, tokenizer) = (model(), tokenizer());
    let plain = GenerationConfig {
        max_new_tokens: 12,
        ..Default::default()
    };
    let first = batch_generate(model.model.as_ref(), &tokenizer, &prompts(), &plain).unwrap();
    // A stop string taken from row 2's text ends that row early; an EOS id
    // taken from row 0's tokens ends row 0.
    let stop: String = first.results[2].text.chars().skip(3).take(2).collect();
    let eos = first.results[0].tokens[4];
    let config = GenerationConfig {
        max_new_tokens: 12,
        stop_strings: vec![stop.clone()],
        eos_token_id: vec![eos],
        repetition_penalty: 1.2,
        prefill_step_size: 3,
        ..Default::default()
    };
    let response = batch_generate(model.model.as_ref(), &tokenizer, &prompts(), &config).unwrap();
    let mut reasons = Vec::new();
    for (prompt, result) in prompts().iter().zip(&response.results) {
        let (text, finish) = alone(prompt, &config);
        assert_eq!(result.text, text, "prompt {prompt:?}");
        assert_eq!(result.finish_reason, finish, "prompt {prompt:?}");
        assert_eq!(result.prompt_tokens, prompt.len());
        assert!(!result.text.contains(&stop));
        reasons.push(finish);
    }
    assert!(reasons.contains(&FinishReason::Stop), "{reasons:?}");
    assert!(reasons.contains(&FinishReason::Length), "{reasons:?}");
    let stats = response.stats;
    assert_eq!(
        stats.prompt_tokens,
        prompts().iter().map(Vec::len).sum::<usize>()
    );
    let generated: usize = response.results.iter().map(|r| r.tokens.len()).sum();
    assert_eq!(stats.generation_tokens, generated);
    assert!(stats.prompt_tps > 0.0 && stats.generation_tps > 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Results come back in prompt order: permuting the prompts permutes
    /// the results the same way.
    #[test]
    fn results_follow_prompt_order(order in Just((0..4).collect::<Vec<usize>>()).prop_shuffle()) {
        let (model, tokenizer) = (model(), tokenizer());
        let config = GenerationConfig { max_new_tokens: 5, ..Default::default() };
        let base = batch_generate(model.model.as_ref(), &tokenizer, &prompts(), &config).unwrap();
        let shuffled: Vec<Vec<u32>> = order.iter().map(|&i| prompts()[i].clone()).collect();
        let got = batch_generate(model.model.as_ref(), &tokenizer, &shuffled, &config).unwrap();
        for (k, &i) in order.iter().enumerate() {
            prop_assert_eq!(&got.results[k], &base.results[i]);
        }
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let (model, tokenizer) = (model(), tokenizer());
    let m = model.model.as_ref();
    let config = GenerationConfig::default();
    let err = |prompts: &[Vec<u32>], config: &GenerationConfig| {
        batch_generate(m, &tokenizer, prompts, config)
            .unwrap_err()
            .to_string()
    };
    assert!(err(&[], &config).contains("at least one prompt"));
    assert!(err(&[vec![3], vec![]], &config).contains("prompt 1 is empty"));
    assert!(err(&[vec![3, 500]], &config).contains("500 in prompt 0"));
    let bad_top_p = GenerationConfig {
        top_p: 0.0,
        ..Default::default()
    };
    assert!(err(&[vec![3]], &bad_top_p).contains("top_p"));
}

/// Every row's generated tokens, stepping `generator` to the end; after
/// `insert_after` steps, `later` joins the batch.
fn run_with_insert(
    generator: &mut BatchGenerator,
    insert_after: usize,
    later: &[Vec<u32>],
) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); generator.batch_size() + later.len()];
    for step in 0.. {
        if step == insert_after {
            let rows = generator.insert(later).unwrap();
            assert_eq!(
                rows,
                (out.len() - later.len()..out.len()).collect::<Vec<_>>()
            );
        }
        let tokens = generator.step().unwrap();
        if tokens.is_empty() && step >= insert_after {
            return out;
        }
        for t in tokens {
            out[t.row].push(t.token);
        }
    }
    unreachable!()
}

/// Continuous batching: prompts inserted while the batch runs (prefilled
/// left-padded to the batch's columns) give exactly the tokens they give
/// alone, and so do the rows already running; on every golden batch model.
#[test]
fn rows_inserted_mid_batch_equal_single_prompt_generation() {
    let first = vec![
        vec![11, 40, 7, 23, 60, 12, 13, 14, 15, 16, 17, 18, 19],
        vec![5, 6, 7, 8, 9],
    ];
    let later = vec![
        vec![20, 21, 22, 23],
        vec![30, 31, 32, 33, 34, 35, 36, 37, 38],
        vec![4],
    ];
    let config = GenerationConfig {
        max_new_tokens: 8,
        repetition_penalty: 1.3,
        prefill_step_size: 5,
        ..Default::default()
    };
    for case in [
        "gen-batch-llama",
        "gen-batch-gpt-oss",
        "gen-batch-deepseek-v3",
    ] {
        let loaded = load_model_dir(
            &common::golden().join(case).join("model"),
            &LoadOptions::strict(),
        )
        .unwrap();
        let model = loaded.model.as_ref();
        let mut generator = BatchGenerator::new(model, &first, &config).unwrap();
        let got = run_with_insert(&mut generator, 3, &later);
        for (prompt, tokens) in first.iter().chain(&later).zip(&got) {
            let alone: Vec<u32> = TokenGenerator::new(model, prompt, &config)
                .unwrap()
                .map(|t| t.unwrap().token)
                .collect();
            assert_eq!(tokens, &alone, "{case}: prompt {prompt:?}");
        }
        // Too long for the columns the batch holds (13 + 3).
        let mut generator = BatchGenerator::new(model, &first, &config).unwrap();
        generator.step().unwrap();
        let err = generator.insert(&[vec![3; 15]]).unwrap_err().to_string();
        assert!(
            err.contains("at most 14 tokens") && err.contains("15 tokens"),
            "{err}"
        );
    }
}
