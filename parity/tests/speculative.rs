//! Speculative decoding on the tiny models of golden/gen-speculative and
//! gen-stop-strings: seeded sampling with a draft draws the same tokens as
//! without one, stop strings and the text stream behave the same, and
//! drafts that cannot work are refused with clear errors; greedy with any
//! draft is plain greedy (proptest).

mod common;

use forge_core::generation::generate::{stream_generate, GeneratedToken, TokenGenerator};
use forge_core::generation::speculative::{stream_generate_with_draft, SpeculativeGenerator};
use forge_core::model::Model;
use forge_core::tokenizer::Tokenizer;
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};
use forge_parity::AlteredModel;
use proptest::prelude::*;

const PROMPT: [u32; 6] = [57, 63, 35, 38, 20, 32];

fn load(case: &str, folder: &str) -> LoadedModel {
    let dir = common::golden().join(case).join(folder);
    load_model_dir(&dir, &LoadOptions::strict()).unwrap()
}

fn plain_tokens(model: &dyn Model, config: &GenerationConfig) -> Vec<u32> {
    TokenGenerator::new(model, &PROMPT, config)
        .unwrap()
        .map(|s| s.unwrap().token)
        .collect()
}

fn draft_tokens(model: &dyn Model, draft: &dyn Model, config: &GenerationConfig) -> Vec<u32> {
    SpeculativeGenerator::new(model, draft, &PROMPT, config)
        .unwrap()
        .map(|s| s.unwrap().token)
        .collect()
}

#[test]
fn seeded_sampling_with_a_draft_draws_the_same_tokens_as_without() {
    let model = load("gen-speculative", "model");
    let draft = load("gen-speculative", "draft");
    let (model, draft) = (model.model.as_ref(), draft.model.as_ref());
    for (seed, k) in [(1, 2), (7, 4), (42, 1)] {
        let config = GenerationConfig {
            max_new_tokens: 24,
            temperature: 1.3,
            top_k: 20,
            seed,
            num_draft_tokens: k,
            ..Default::default()
        };
        let plain = plain_tokens(model, &config);
        assert_eq!(
            draft_tokens(model, draft, &config),
            plain,
            "seed {seed}, k {k}"
        );
        assert_eq!(
            draft_tokens(model, model, &config),
            plain,
            "seed {seed}, k {k}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Greedy with any draft (the case's draft, the model itself, an always
    /// wrong one), any number of proposals, length limit and EOS id gives
    /// the plain greedy tokens and finish reason.
    #[test]
    fn greedy_with_any_draft_is_plain_greedy(
        k in 1usize..7,
        max_new_tokens in 1usize..14,
        eos_at in proptest::option::of(0usize..14),
        repetition_penalty in prop_oneof![Just(1.0f32), Just(1.4)],
    ) {
        let model = load("gen-speculative", "model");
        let draft = load("gen-speculative", "draft");
        let model = model.model.as_ref();
        let wrong = AlteredModel::always_wrong(model);
        let mut config = GenerationConfig {
            max_new_tokens,
            num_draft_tokens: k,
            repetition_penalty,
            ..Default::default()
        };
        let plain = plain_tokens(model, &config);
        if let Some(&eos) = eos_at.and_then(|i| plain.get(i)) {
            config.eos_token_id = vec![eos];
        }
        let finished = |g: &mut dyn Iterator<Item = forge_core::Result<GeneratedToken>>| {
            let steps: Vec<_> = g.map(|s| s.unwrap()).collect();
            let reason = steps.last().and_then(|s| s.finish_reason);
            (steps.into_iter().map(|s| s.token).collect::<Vec<_>>(), reason)
        };
        let want = finished(&mut TokenGenerator::new(model, &PROMPT, &config).unwrap());
        for d in [draft.model.as_ref(), model, &wrong as &dyn Model] {
            let got = finished(&mut SpeculativeGenerator::new(model, d, &PROMPT, &config).unwrap());
            prop_assert_eq!(&got, &want);
        }
    }
}

#[test]
fn responses_say_which_tokens_came_from_the_draft() {
    let model = load("gen-speculative", "model");
    let model = model.model.as_ref();
    let config = GenerationConfig {
        max_new_tokens: 9,
        num_draft_tokens: 3,
        ..Default::default()
    };
    let mut generator = SpeculativeGenerator::new(model, model, &PROMPT, &config).unwrap();
    let mut from_draft = Vec::new();
    while let Some(step) = generator.next_token().unwrap() {
        from_draft.push(step.from_draft);
    }
    // The model as its own draft: three accepted proposals then the model's
    // own token, each step; the last step proposes only what is left minus one.
    let want = [true, true, true, false, true, true, true, false, false];
    assert_eq!(from_draft, want);
    let stats = generator.draft_stats();
    assert_eq!((stats.accepted, stats.proposed), (6, 6));
    assert_eq!(stats.acceptance_rate(), 1.0);
}

#[test]
fn stop_strings_end_a_drafted_stream_where_they_end_a_plain_one() {
    let dir = common::golden().join("gen-stop-strings/model");
    let loaded = load("gen-stop-strings", "model");
    let model = loaded.model.as_ref();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();
    let prompt = tokenizer.encode("the cat sat", false).unwrap();
    let plain_config = GenerationConfig {
        max_new_tokens: 16,
        ..Default::default()
    };
    let whole: String = stream_generate(model, &tokenizer, &prompt, &plain_config)
        .unwrap()
        .map(|r| r.unwrap().text)
        .collect();
    let chars: Vec<char> = whole.chars().collect();
    assert!(chars.len() > 6, "{whole:?}");
    let stop: String = chars[4..6].iter().collect();
    let config = GenerationConfig {
        stop_strings: vec![stop.clone()],
        num_draft_tokens: 4,
        ..plain_config
    };
    let collect = |stream: forge_core::generation::generate::TextStream| {
        let responses: Vec<_> = stream.map(|r| r.unwrap()).collect();
        let text: String = responses.iter().map(|r| r.text.as_str()).collect();
        let last = responses
            .last()
            .map(|r| (r.finish_reason, r.generation_tokens));
        (text, last)
    };
    let plain = collect(stream_generate(model, &tokenizer, &prompt, &config).unwrap());
    let drafted =
        collect(stream_generate_with_draft(model, model, &tokenizer, &prompt, &config).unwrap());
    assert_eq!(drafted, plain);
    assert_eq!(
        plain.0,
        whole[..whole.find(&stop).unwrap()],
        "stop {stop:?}"
    );
}

fn refusal(model: &dyn Model, draft: &dyn Model, config: &GenerationConfig) -> String {
    match SpeculativeGenerator::new(model, draft, &PROMPT, config) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn drafts_that_cannot_work_are_refused_clearly() {
    let model = load("gen-speculative", "model");
    let other_vocab = load("gen-stop-strings", "model");
    let model = model.model.as_ref();
    let ok = GenerationConfig::default();
    let e = refusal(model, other_vocab.model.as_ref(), &ok);
    assert!(
        e.contains("a draft model with the model's vocabulary size 96")
            && e.contains("a draft vocabulary of 128"),
        "{e}"
    );
    let zero = GenerationConfig {
        num_draft_tokens: 0,
        ..Default::default()
    };
    let e = refusal(model, model, &zero);
    assert!(
        e.contains("num_draft_tokens: at least 1") && e.contains('0'),
        "{e}"
    );
    let fixed = AlteredModel::untrimmable(model);
    for (m, d, which) in [
        (&fixed as &dyn Model, model, "model"),
        (model, &fixed, "draft model"),
    ] {
        let e = refusal(m, d, &ok);
        assert!(
            e.contains("trimmable caches for speculative decoding")
                && e.contains(&format!(
                    "layer 0 of the {which} has a cache that cannot be trimmed"
                )),
            "{e}"
        );
    }
    let e = match SpeculativeGenerator::new(model, model, &[], &ok) {
        Ok(_) => panic!("an empty prompt was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("an empty prompt"), "{e}");
}
