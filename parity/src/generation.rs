//! Generation conformance cases (manifest `kind`): HF's logits processors
//! and warpers on saved scores, and HF `generate()` token sequences with
//! processors switched on (golden/generation_cases.py makes both).

use std::path::Path;

use forge_core::generate::{FinishReason, TokenGenerator};
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::weights::{load_safetensors_file, TensorMap};
use forge_core::{load_model_dir, GenerationConfig, LoadOptions};
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

/// Every generate item: Forge's token generator with the item's settings on
/// the case's model must give HF's tokens and finish reason exactly.
pub(crate) fn run_generate(dir: &Path, manifest: &Manifest, report: &mut CaseReport) -> Result<()> {
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict())?;
    let model = loaded.model.as_ref();
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let prompts = id_rows(tensor(dir, &expected, "input_ids")?)?;
    let prompt = prompts
        .first()
        .ok_or_else(|| case_error(dir, "input_ids has no row".into()))?;
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
