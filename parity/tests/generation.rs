//! The generation loop on a real (tiny) model: text streaming through a
//! byte-level BPE tokenizer, stop strings across token
//! boundaries, UTF-8 characters split over tokens, EOS ids, finish reasons,
//! the queued-ahead decode loop against plain greedy decoding, and seeded
//! sampling. `forced_decoder_ids` pins the generated tokens where the test
//! needs exact text.

mod common;

use forge_core::generation::generate::{
    generate, greedy, stream_generate, FinishReason, GenerationResponse, TokenGenerator,
};
use forge_core::tokenizer::Tokenizer;
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};

const PROMPT: [u32; 5] = [11, 40, 7, 23, 60];

fn model() -> LoadedModel {
    let dir = common::golden().join("gen-greedy-processors/model");
    load_model_dir(&dir, &LoadOptions::strict()).unwrap()
}

/// The case's tokenizer: byte-level BPE, one token per byte (made by
/// golden/generation_cases.py with HF tokenizers).
fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(&common::golden().join("gen-greedy-processors/model")).unwrap()
}

/// The id of a byte-level symbol (`Ġ` is a space; `Ã` `©` are the bytes of `é`).
fn id(symbol: &str) -> u32 {
    tokenizer().token_id(symbol).unwrap()
}

/// Settings that force `symbols` as the generated tokens, one per step.
fn forcing(symbols: &[&str]) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: symbols.len(),
        forced_decoder_ids: symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (i + 1, id(s)))
            .collect(),
        ..Default::default()
    }
}

fn stream(config: &GenerationConfig) -> Vec<GenerationResponse> {
    let model = model();
    let tokenizer = tokenizer();
    stream_generate(model.model.as_ref(), &tokenizer, &PROMPT, config)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn texts(responses: &[GenerationResponse]) -> Vec<&str> {
    responses.iter().map(|r| r.text.as_str()).collect()
}

#[test]
fn the_tokenizer_round_trips_bytes() {
    let t = tokenizer();
    let ids = t.encode("hé, 42!", false).unwrap();
    assert_eq!(t.decode(&ids, false).unwrap(), "hé, 42!");
    assert_eq!(ids[1..3], [id("Ã"), id("©")]);
}

#[test]
fn a_character_split_over_two_tokens_is_handed_out_whole() {
    let responses = stream(&forcing(&["h", "Ã", "©", "Ġ", "x"]));
    assert_eq!(texts(&responses), ["h", "", "é", " ", "x"]);
    let last = responses.last().unwrap();
    assert_eq!(last.finish_reason, Some(FinishReason::Length));
    assert!(responses[..4].iter().all(|r| r.finish_reason.is_none()));
    assert_eq!(last.generation_tokens, 5);
    assert_eq!(last.prompt_tokens, PROMPT.len());
    assert!(last.prompt_tps > 0.0 && last.generation_tps > 0.0 && last.peak_memory > 0.0);
    assert_eq!(last.logprobs.len(), 96);
}

#[test]
fn a_stop_string_across_tokens_ends_generation_and_is_never_emitted() {
    let config = GenerationConfig {
        stop_strings: vec!["bc".into(), "zz".into()],
        ..forcing(&["a", "b", "c", "d", "e"])
    };
    let responses = stream(&config);
    assert_eq!(texts(&responses), ["a", "", ""]);
    assert_eq!(
        responses.last().unwrap().finish_reason,
        Some(FinishReason::Stop)
    );
    // A stop string inside one token cuts that token's text.
    let config = GenerationConfig {
        stop_strings: vec!["é".into()],
        ..forcing(&["a", "Ã", "©", "b"])
    };
    let responses = stream(&config);
    assert_eq!(texts(&responses).concat(), "a");
    assert_eq!(responses.len(), 3);
}

#[test]
fn a_held_back_prefix_that_never_completes_is_flushed() {
    let config = GenerationConfig {
        stop_strings: vec!["bx".into()],
        ..forcing(&["a", "b", "c"])
    };
    let responses = stream(&config);
    assert_eq!(texts(&responses), ["a", "", "bc"]);
    assert_eq!(
        responses.last().unwrap().finish_reason,
        Some(FinishReason::Length)
    );
    // At the length limit the held-back text comes out too.
    let config = GenerationConfig {
        stop_strings: vec!["bx".into()],
        ..forcing(&["a", "b"])
    };
    assert_eq!(texts(&stream(&config)), ["a", "b"]);
}

#[test]
fn any_of_several_eos_ids_stops_without_adding_text() {
    let config = GenerationConfig {
        eos_token_id: vec![id("z"), id("q")],
        max_new_tokens: 8,
        ..forcing(&["a", "b", "q", "c"])
    };
    let responses = stream(&config);
    assert_eq!(texts(&responses), ["a", "b", ""]);
    let last = responses.last().unwrap();
    assert_eq!(
        (last.token, last.finish_reason),
        (id("q"), Some(FinishReason::Stop))
    );
    let model = model();
    let text = generate(model.model.as_ref(), &tokenizer(), &PROMPT, &config).unwrap();
    assert_eq!(text, "ab");
}

#[test]
fn the_queued_ahead_loop_gives_plain_greedy_tokens() {
    let model = model();
    let want = greedy(model.model.as_ref(), &PROMPT, 12, 512).unwrap();
    for prefill_step_size in [1, 2, 512] {
        let config = GenerationConfig {
            max_new_tokens: 12,
            prefill_step_size,
            ..Default::default()
        };
        let got: Vec<u32> = TokenGenerator::new(model.model.as_ref(), &PROMPT, &config)
            .unwrap()
            .map(|s| s.unwrap().token)
            .collect();
        assert_eq!(got, want, "prefill_step_size {prefill_step_size}");
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_seeds_differ() {
    let model = model();
    let run = |seed| -> Vec<u32> {
        let config = GenerationConfig {
            max_new_tokens: 16,
            temperature: 1.5,
            top_p: 0.98,
            seed,
            ..Default::default()
        };
        TokenGenerator::new(model.model.as_ref(), &PROMPT, &config)
            .unwrap()
            .map(|s| s.unwrap().token)
            .collect()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn bad_prompts_and_settings_are_refused_before_any_work() {
    let model = model();
    let bad = GenerationConfig {
        top_p: 1.5,
        ..Default::default()
    };
    let err = TokenGenerator::new(model.model.as_ref(), &PROMPT, &bad)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("top_p"), "{err}");
    let err = TokenGenerator::new(model.model.as_ref(), &[3, 96], &GenerationConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("vocabulary size 96") && err.contains("96"),
        "{err}"
    );
    let err = TokenGenerator::new(model.model.as_ref(), &[], &GenerationConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty prompt"), "{err}");
}

#[test]
fn zero_max_new_tokens_generates_nothing() {
    let config = GenerationConfig {
        max_new_tokens: 0,
        ..Default::default()
    };
    assert!(stream(&config).is_empty());
}
