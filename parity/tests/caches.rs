//! KV caches through real models (the golden cases' checkpoints):
//! `max_kv_size` inside its window equals the full cache and bounds every
//! layer beyond it; a quantized KV cache stays close to full precision;
//! a prompt cache saved to a file and loaded again continues exactly like
//! the cache never left memory (every cache kind), trimming then refilling
//! equals never having gone so far, and a file that does not fit the model
//! is refused with an error naming what differs.

mod common;

use std::collections::HashMap;

use forge_core::cache::{CacheKind, KvCache};
use forge_core::generation::generate::{prefill, GeneratedToken, TokenGenerator};
use forge_core::generation::prompt_cache::{
    cache_for, load_prompt_cache, save_prompt_cache, trim_prompt_cache,
};
use forge_core::mlx_rs::Dtype;
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};

fn load(case: &str) -> (LoadedModel, Vec<u32>) {
    let dir = common::golden().join(case);
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict()).unwrap();
    let expected = load_safetensors_file(&dir.join("expected.safetensors")).unwrap();
    let ids = expected["input_ids"].as_dtype(Dtype::Int32).unwrap();
    ids.eval().unwrap();
    let t = ids.dim(1) as usize;
    let prompt = ids.as_slice::<i32>()[..t]
        .iter()
        .map(|&v| v as u32)
        .collect();
    (loaded, prompt)
}

fn config(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens,
        prefill_step_size: 5,
        ..Default::default()
    }
}

fn run(generator: TokenGenerator<'_>) -> Vec<GeneratedToken> {
    generator.map(|s| s.unwrap()).collect()
}

/// The largest |difference| of the log-probabilities, step by step.
fn max_logprob_diff(a: &[GeneratedToken], b: &[GeneratedToken]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.logprobs.iter().zip(&y.logprobs))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// [`max_logprob_diff`] over the steps with the same history: up to the
/// first step whose token differs, that one included.
fn max_logprob_diff_same_history(a: &[GeneratedToken], b: &[GeneratedToken]) -> f32 {
    let same = a
        .iter()
        .zip(b)
        .take_while(|(x, y)| x.token == y.token)
        .count();
    let n = (same + 1).min(a.len()).min(b.len());
    max_logprob_diff(&a[..n], &b[..n])
}

fn tokens(steps: &[GeneratedToken]) -> Vec<u32> {
    steps.iter().map(|s| s.token).collect()
}

#[test]
fn max_kv_size_inside_its_window_equals_the_full_cache() {
    let (loaded, prompt) = load("llama-gqa");
    let model = loaded.model.as_ref();
    let n = 10;
    let full = run(TokenGenerator::new(model, &prompt, &config(n)).unwrap());
    let bounded_config = GenerationConfig {
        max_kv_size: Some(prompt.len() + n),
        ..config(n)
    };
    let generator = TokenGenerator::new(model, &prompt, &bounded_config).unwrap();
    assert!(generator.cache().iter().all(|c| c.kind()
        == CacheKind::Rotating {
            max_size: prompt.len() + n,
            keep: 4
        }));
    let bounded = run(generator);
    assert_eq!(tokens(&bounded), tokens(&full));
    assert_eq!(max_logprob_diff(&bounded, &full), 0.0);
}

#[test]
fn max_kv_size_bounds_every_layer_beyond_its_window() {
    let (loaded, prompt) = load("llama-gqa");
    let model = loaded.model.as_ref();
    let bounded_config = GenerationConfig {
        max_kv_size: Some(8),
        ..config(12)
    };
    let full = run(TokenGenerator::new(model, &prompt, &config(12)).unwrap());
    let mut generator = TokenGenerator::new(model, &prompt, &bounded_config).unwrap();
    let mut steps = Vec::new();
    while let Some(step) = generator.next_token().unwrap() {
        steps.push(step);
        for c in generator.cache() {
            assert!(
                c.state()[0].dim(2) <= 8,
                "a layer holds more than 8 positions"
            );
        }
    }
    assert_eq!(steps.len(), 12);
    assert_eq!(generator.cache()[0].offset(), prompt.len() + 11);
    // Beyond the window the outputs do change: the bound is real.
    assert!(max_logprob_diff(&steps, &full) > 1e-3);
}

#[test]
fn a_quantized_kv_cache_stays_close_to_full_precision() {
    // head_dim 32: groups of 32.
    let (loaded, prompt) = load("llama-bias-headdim-tied");
    let model = loaded.model.as_ref();
    let n = 8;
    let full = run(TokenGenerator::new(model, &prompt, &config(n)).unwrap());
    for (bits, tolerance) in [(8, 3e-2), (4, 5e-1)] {
        let quantized_config = GenerationConfig {
            kv_bits: Some(bits),
            kv_group_size: 32,
            ..config(n)
        };
        let generator = TokenGenerator::new(model, &prompt, &quantized_config).unwrap();
        assert!(generator.cache().iter().all(|c| c.kind()
            == CacheKind::Quantized {
                bits,
                group_size: 32
            }));
        let quantized = run(generator);
        let diff = max_logprob_diff_same_history(&quantized, &full);
        let same = tokens(&quantized)
            .iter()
            .zip(tokens(&full))
            .take_while(|(a, b)| **a == *b)
            .count();
        println!(
            "kv_bits {bits}: max |Δ logprob| {diff:.3e}; {same} of {n} tokens as full precision"
        );
        assert!(diff > 0.0 && diff < tolerance, "{bits} bits: {diff}");
        if bits == 8 {
            assert_eq!(tokens(&quantized), tokens(&full));
        }
    }
    // quantized_kv_start: full precision until the cache holds that many positions.
    let start = prompt.len() + 3;
    let late = GenerationConfig {
        kv_bits: Some(4),
        kv_group_size: 32,
        quantized_kv_start: start,
        ..config(n)
    };
    let mut generator = TokenGenerator::new(model, &prompt, &late).unwrap();
    let mut steps = Vec::new();
    while let Some(step) = generator.next_token().unwrap() {
        let quantized = generator.cache()[0].kind() != CacheKind::Standard;
        assert_eq!(quantized, generator.cache()[0].offset() >= start);
        steps.push(step);
    }
    // The steps computed before the switch are the full-precision ones.
    assert_eq!(max_logprob_diff(&steps[..4], &full[..4]), 0.0);
}

/// Prefills `head` into the cache `config` asks for, saves it, loads it,
/// and checks the loaded cache continues with `rest` exactly like the one in
/// memory does.
fn round_trip(case: &str, config: &GenerationConfig, split: usize) {
    let (loaded, prompt) = load(case);
    let model = loaded.model.as_ref();
    let (head, rest) = prompt.split_at(split);
    let mut cache = cache_for(model, config).unwrap();
    prefill(model, head, &mut cache, 4).unwrap();
    forge_core::generation::prompt_cache::quantize_for(&mut cache, config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.safetensors");
    let metadata = HashMap::from([("model".to_string(), case.to_string())]);
    save_prompt_cache(&file, &cache, &metadata).unwrap();
    let loaded_cache = load_prompt_cache(&file, model, config.max_kv_size).unwrap();
    let (restored, meta) = (loaded_cache.cache, loaded_cache.metadata);
    assert_eq!(meta.get("model").map(String::as_str), Some(case));
    let kinds = |c: &[Box<dyn KvCache>]| c.iter().map(|c| c.kind()).collect::<Vec<_>>();
    assert_eq!(kinds(&restored), kinds(&cache));
    let in_memory = run(TokenGenerator::with_cache(model, cache, rest, config).unwrap());
    let from_file = run(TokenGenerator::with_cache(model, restored, rest, config).unwrap());
    assert_eq!(tokens(&from_file), tokens(&in_memory));
    assert_eq!(max_logprob_diff(&from_file, &in_memory), 0.0);
}

#[test]
fn a_saved_prompt_cache_continues_exactly_for_every_kind() {
    // standard
    round_trip("llama-gqa", &config(6), 9);
    // rotating: mistral's sliding window (6) is already full when saved
    round_trip("mistral-sliding-window", &config(6), 15);
    // rotating: max_kv_size
    let bounded = GenerationConfig {
        max_kv_size: Some(10),
        ..config(6)
    };
    round_trip("llama-gqa", &bounded, 12);
    // quantized
    let quantized = GenerationConfig {
        kv_bits: Some(4),
        kv_group_size: 32,
        ..config(6)
    };
    round_trip("llama-bias-headdim-tied", &quantized, 7);
}

#[test]
fn a_prompt_cache_continues_like_the_whole_prompt_and_trims() {
    let (loaded, prompt) = load("llama-gqa");
    let model = loaded.model.as_ref();
    let whole = run(TokenGenerator::new(model, &prompt, &config(6)).unwrap());
    let (head, rest) = prompt.split_at(10);
    // Prefill the head plus three tokens that do not belong, then trim them.
    let mut cache = cache_for(model, &config(6)).unwrap();
    let detour: Vec<u32> = head.iter().chain(&[5, 6, 7]).copied().collect();
    prefill(model, &detour, &mut cache, 4).unwrap();
    assert_eq!(trim_prompt_cache(&mut cache, 3), 3);
    assert!(cache.iter().all(|c| c.offset() == head.len()));
    let continued = run(TokenGenerator::with_cache(model, cache, rest, &config(6)).unwrap());
    assert_eq!(tokens(&continued), tokens(&whole));
    assert!(max_logprob_diff(&continued, &whole) < 1e-5);
}

#[test]
fn a_rotating_cache_past_its_window_is_not_trimmed() {
    let (loaded, prompt) = load("mistral-sliding-window");
    let model = loaded.model.as_ref();
    let mut cache = cache_for(model, &config(1)).unwrap();
    prefill(model, &prompt, &mut cache, 4).unwrap();
    let before: Vec<usize> = cache.iter().map(|c| c.offset()).collect();
    assert_eq!(trim_prompt_cache(&mut cache, 2), 0);
    assert_eq!(cache.iter().map(|c| c.offset()).collect::<Vec<_>>(), before);
}

fn saved(case: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (loaded, prompt) = load(case);
    let model = loaded.model.as_ref();
    let mut cache = cache_for(model, &config(1)).unwrap();
    prefill(model, &prompt[..8], &mut cache, 8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.safetensors");
    save_prompt_cache(&file, &cache, &HashMap::new()).unwrap();
    (dir, file)
}

fn load_error(file: &std::path::Path, case: &str) -> String {
    let (loaded, _) = load(case);
    match load_prompt_cache(file, loaded.model.as_ref(), None) {
        Ok(_) => panic!("{case} accepted a cache that does not fit it"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_prompt_cache_that_does_not_fit_the_model_is_refused() {
    // 3 layers into 2.
    let (_dir, file) = saved("llama-gqa");
    let err = load_error(&file, "llama-rope-linear");
    assert!(err.contains("the model has 2 layers, the file 3"), "{err}");
    // A sliding-window (rotating) cache into a model with full attention.
    let (_dir, file) = saved("mistral-sliding-window");
    let err = load_error(&file, "llama-rope-linear");
    assert!(
        err.contains("layer 0") && err.contains("standard") && err.contains("rotating"),
        "{err}"
    );
    // Same layers and kinds, other head_dim (16 vs 32).
    let (_dir, file) = saved("llama-rope-linear");
    let err = load_error(&file, "llama-bias-headdim-tied");
    assert!(
        err.contains("layer 0 tensor 0") && err.contains("shape"),
        "{err}"
    );
    // Not a safetensors file at all.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a cache").unwrap();
    let err = load_error(&junk, "llama-gqa");
    assert!(err.contains("junk.safetensors"), "{err}");
    // A safetensors file without Forge's layer metadata.
    let plain = common::golden().join("llama-gqa/expected.safetensors");
    let err = load_error(&plain, "llama-gqa");
    assert!(err.contains("no `forge.layers` metadata"), "{err}");
}

#[test]
fn malformed_cache_settings_get_clear_errors() {
    let (loaded, prompt) = load("llama-gqa");
    let model = loaded.model.as_ref();
    let bad = [
        (
            GenerationConfig {
                max_kv_size: Some(4),
                ..config(1)
            },
            "max_kv_size",
        ),
        (
            GenerationConfig {
                kv_bits: Some(7),
                ..config(1)
            },
            "kv_bits one of",
        ),
        (
            GenerationConfig {
                kv_bits: Some(4),
                kv_group_size: 10,
                ..config(1)
            },
            "kv_group_size one of",
        ),
        (
            GenerationConfig {
                kv_bits: Some(4),
                max_kv_size: Some(64),
                ..config(1)
            },
            "kv_bits or max_kv_size",
        ),
        (
            // head_dim 16 cannot be quantized in groups of 64.
            GenerationConfig {
                kv_bits: Some(4),
                ..config(1)
            },
            "divisible by kv_group_size 64",
        ),
    ];
    for (config, needle) in bad {
        let err = match TokenGenerator::new(model, &prompt, &config) {
            Ok(_) => panic!("{config:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
