//! Generation conformance cases (manifest `kind`): HF's logits processors
//! and warpers on saved scores, and HF `generate()` token sequences with
//! processors switched on (golden/generation_cases.py makes both).

use std::path::Path;

use forge_core::generation::generate::{FinishReason, TokenGenerator};
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::weights::{load_safetensors_file, TensorMap};
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, LoadedModel};
use serde::Deserialize;

use crate::compare::{compare, to_f64};
use crate::error::{ParityError, Result};
use crate::manifest::Manifest;
use crate::report::{sci, CaseReport};

/// One item of a `logits_processors` case.
#[derive(Debug, Deserialize)]
struct ProcessorItem {
    config: serde_json::Value,
    prompt_length: usize,
    input_ids: String,
    output: String,
}

/// One item of a `generate` case.
#[derive(Debug, Deserialize)]
struct GenerateItem {
    config: serde_json::Value,
    tokens: String,
    finish_reason: String,
}

pub(crate) fn case_error(dir: &Path, message: String) -> ParityError {
    ParityError::Case {
        path: dir.to_path_buf(),
        message,
    }
}

pub(crate) fn items<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    manifest: &Manifest,
) -> Result<Vec<T>> {
    manifest
        .items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v.clone())
                .map_err(|e| case_error(dir, format!("manifest item {i}: {e}")))
        })
        .collect()
}

pub(crate) fn config(dir: &Path, i: usize, value: &serde_json::Value) -> Result<GenerationConfig> {
    serde_json::from_value(value.clone())
        .map_err(|e| case_error(dir, format!("manifest item {i}: generation config: {e}")))
}

pub(crate) fn tensor<'a>(dir: &Path, tensors: &'a TensorMap, name: &str) -> Result<&'a Array> {
    tensors
        .get(name)
        .ok_or_else(|| case_error(dir, format!("expected.safetensors has no tensor `{name}`")))
}

/// `[B, T]` integer ids as rows.
pub(crate) fn id_rows(ids: &Array) -> Result<Vec<Vec<u32>>> {
    let ids = ids.as_dtype(Dtype::Int32)?;
    ids.eval()?;
    let t = ids.dim(ids.ndim() as i32 - 1).max(1) as usize;
    Ok(ids
        .as_slice::<i32>()
        .chunks(t)
        .map(|row| row.iter().map(|&v| v as u32).collect())
        .collect())
}

/// A short label for an item: its config without defaults.
fn label(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Every processor item: Forge's processors then warpers, row by row, on the
/// saved scores, against HF's output. Removed tokens (−∞) must match
/// exactly; the remaining scores within the tolerance.
pub(crate) fn run_processors(
    dir: &Path,
    manifest: &Manifest,
    report: &mut CaseReport,
) -> Result<()> {
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let scores = to_f64(tensor(dir, &expected, "scores")?)?;
    let scores_array = tensor(dir, &expected, "scores")?;
    let vocab = scores_array.dim(-1) as usize;
    let tol = manifest.tolerance_for("logits_processors");
    for (i, item) in items::<ProcessorItem>(dir, manifest)?.iter().enumerate() {
        let config = config(dir, i, &item.config)?;
        let rows = id_rows(tensor(dir, &expected, &item.input_ids)?)?;
        let want = to_f64(tensor(dir, &expected, &item.output)?)?;
        let mut got = Vec::with_capacity(want.len());
        for (r, tokens) in rows.iter().enumerate() {
            let mut row: Vec<f32> = scores[r * vocab..(r + 1) * vocab]
                .iter()
                .map(|&v| v as f32)
                .collect();
            for mut p in config.processors(item.prompt_length)? {
                p.process(tokens, &mut row)?;
            }
            for mut w in config.warpers()? {
                w.process(tokens, &mut row)?;
            }
            got.extend(row.iter().map(|&v| v as f64));
        }
        let removed_differs = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| (**a == f64::NEG_INFINITY) != (**b == f64::NEG_INFINITY))
            .count();
        let (finite_got, finite_want): (Vec<f64>, Vec<f64>) = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| (*a, *b))
            .unzip();
        let e = compare(&finite_got, &finite_want, 1, None);
        let pass = removed_differs == 0 && got.len() == want.len() && e.within(&tol);
        let removed = want.iter().filter(|v| **v == f64::NEG_INFINITY).count();
        let mut note = format!("{}; removed {removed}", label(&item.config));
        if removed_differs > 0 {
            note = format!("{removed_differs} tokens removed on one side only; {note}");
        }
        report.push(
            &format!("processors.{i}"),
            "max_abs",
            sci(e.max_abs),
            sci(tol.max_abs),
            pass,
            note,
        );
    }
    Ok(())
}

/// The case's model, its expected tensors and the first row of `input_ids`.
fn model_and_prompt(dir: &Path) -> Result<(LoadedModel, TensorMap, Vec<u32>)> {
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict())?;
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let prompt = id_rows(tensor(dir, &expected, "input_ids")?)?
        .into_iter()
        .next()
        .ok_or_else(|| case_error(dir, "input_ids has no row".into()))?;
    Ok((loaded, expected, prompt))
}

/// Every generate item: Forge's token generator with the item's settings on
/// the case's model must give HF's tokens and finish reason exactly.
pub(crate) fn run_generate(dir: &Path, manifest: &Manifest, report: &mut CaseReport) -> Result<()> {
    let (loaded, expected, prompt) = model_and_prompt(dir)?;
    let (model, prompt) = (loaded.model.as_ref(), prompt.as_slice());
    for (i, item) in items::<GenerateItem>(dir, manifest)?.iter().enumerate() {
        let config = config(dir, i, &item.config)?;
        let want = id_rows(tensor(dir, &expected, &item.tokens)?)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut got = Vec::new();
        let mut finish = None;
        for step in TokenGenerator::new(model, prompt, &config)? {
            let step = step?;
            got.push(step.token);
            finish = step.finish_reason;
        }
        let finish = finish.map_or("none", FinishReason::as_str);
        let matching = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let pass = got == want && finish == item.finish_reason;
        let mut note = format!("{} -> {finish}", label(&item.config));
        if !pass {
            note = format!(
                "got {got:?} ({finish}), expected {want:?} ({}); {note}",
                item.finish_reason
            );
        }
        report.push_exact(&format!("generate.{i}"), matching, want.len(), pass, note);
    }
    Ok(())
}

/// One item of a `cache_generate` case.
#[derive(Debug, Deserialize)]
struct CacheGenerateItem {
    config: serde_json::Value,
    tokens: String,
    logits: String,
}

/// Every cache_generate item: Forge's token generator (the model's own
/// caches, e.g. rotating ones for sliding layers, and the item's prefill
/// chunk) must give HF's tokens exactly and, at every step, the
/// log-softmax of HF's logits within the tolerance; a failure names the
/// first step that differs.
pub(crate) fn run_cache_generate(
    dir: &Path,
    manifest: &Manifest,
    report: &mut CaseReport,
) -> Result<()> {
    let (loaded, expected, prompt) = model_and_prompt(dir)?;
    let (model, prompt) = (loaded.model.as_ref(), prompt.as_slice());
    let tol = manifest.tolerance_for("cache_generate");
    for (i, item) in items::<CacheGenerateItem>(dir, manifest)?
        .iter()
        .enumerate()
    {
        let config = config(dir, i, &item.config)?;
        let want = id_rows(tensor(dir, &expected, &item.tokens)?)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let logits = to_f64(tensor(dir, &expected, &item.logits)?)?;
        let vocab = logits.len() / want.len().max(1);
        let mut got = Vec::new();
        let mut worst = (0.0f64, 0.0f64);
        let mut first_bad = None;
        for (step, generated) in TokenGenerator::new(model, prompt, &config)?.enumerate() {
            let generated = generated?;
            got.push(generated.token);
            let Some(row) = logits.get(step * vocab..(step + 1) * vocab) else {
                break;
            };
            let reference: Vec<f64> = log_softmax_f64(row);
            let mine: Vec<f64> = generated.logprobs.iter().map(|&v| v as f64).collect();
            let e = compare(&mine, &reference, 1, None);
            if !e.within(&tol) && first_bad.is_none() {
                first_bad = Some(step);
            }
            worst = (worst.0.max(e.max_abs), worst.1.max(e.rel));
        }
        let matching = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let mut note = label(&item.config);
        if got != want {
            note = format!("got {got:?}, expected {want:?}; {note}");
        }
        report.push_exact(
            &format!("cache_generate.{i}.tokens"),
            matching,
            want.len(),
            got == want,
            note,
        );
        let mut note = format!("per-step log-probabilities, {} steps", want.len());
        if let Some(step) = first_bad {
            note = format!("first differs at step {step}; {note}");
        }
        report.push(
            &format!("cache_generate.{i}.logprobs"),
            "max_abs",
            sci(worst.0),
            sci(tol.max_abs),
            worst.0 <= tol.max_abs && first_bad.is_none(),
            note.clone(),
        );
        report.push(
            &format!("cache_generate.{i}.logprobs"),
            "rel",
            sci(worst.1),
            sci(tol.rel),
            worst.1 <= tol.rel,
            note,
        );
    }
    Ok(())
}

/// log(softmax(row)) in f64.
fn log_softmax_f64(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = row.iter().map(|v| (v - max).exp()).sum();
    let log_total = total.ln() + max;
    row.iter().map(|v| v - log_total).collect()
}
