//! Beam search on the tiny golden llama: a left-padded batch gives each
//! prompt the same hypotheses and scores as searching it alone (processors
//! included, which see each prompt without its padding), and token-by-token
//! generation refuses beam settings.

mod common;

use forge_core::generation::beam::{beam_search, beam_search_batch, EarlyStopping};
use forge_core::generation::generate::TokenGenerator;
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};

fn model() -> LoadedModel {
    let dir = common::golden().join("gen-beam-search/model");
    load_model_dir(&dir, &LoadOptions::strict()).unwrap()
}

fn settings() -> Vec<GenerationConfig> {
    let base = GenerationConfig {
        max_new_tokens: 7,
        num_beams: 3,
        num_return_sequences: 3,
        eos_token_id: vec![14],
        ..Default::default()
    };
    vec![
        base.clone(),
        GenerationConfig {
            length_penalty: 2.0,
            early_stopping: EarlyStopping::Never,
            eos_token_id: vec![86, 32],
            ..base.clone()
        },
        GenerationConfig {
            repetition_penalty: 1.4,
            no_repeat_ngram_size: 2,
            min_new_tokens: 2,
            early_stopping: EarlyStopping::WhenFull,
            ..base
        },
    ]
}

#[test]
fn a_padded_batch_gives_each_prompt_its_own_search() {
    let model = model();
    let net = model.model.as_ref();
    let prompts = vec![
        vec![88, 18, 86, 50, 26, 70, 4, 35],
        vec![9, 61, 40],
        vec![17, 5, 77, 30, 52],
    ];
    for config in settings() {
        let batch = beam_search_batch(net, &prompts, &config).unwrap();
        assert_eq!(batch.len(), prompts.len());
        for (prompt, got) in prompts.iter().zip(&batch) {
            let alone = beam_search(net, prompt, &config).unwrap();
            assert_eq!(got.prompt_tokens, prompt.len());
            assert_eq!(got.hypotheses.len(), alone.hypotheses.len());
            for (g, a) in got.hypotheses.iter().zip(&alone.hypotheses) {
                assert_eq!(g.tokens, a.tokens, "{prompt:?} {config:?}");
                assert_eq!(g.finish_reason, a.finish_reason);
                assert!(
                    (g.score - a.score).abs() < 1e-5,
                    "{} vs {}",
                    g.score,
                    a.score
                );
            }
        }
    }
}

#[test]
fn token_by_token_generation_refuses_beams_and_bad_prompts_are_refused() {
    let model = model();
    let net = model.model.as_ref();
    let config = GenerationConfig {
        num_beams: 2,
        ..Default::default()
    };
    let err = TokenGenerator::new(net, &[1, 2], &config)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("beam_search"), "{err}");
    let err = beam_search(net, &[1, 500], &config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vocabulary size 96") && err.contains("500"),
        "{err}"
    );
    let err = beam_search_batch(net, &[], &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one prompt"), "{err}");
    assert!(beam_search(net, &[], &config).is_err());
}
