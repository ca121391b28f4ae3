//! `batch_generate` conformance cases (manifest `kind` "batch_generate",
//! made by golden/batch_cases.py): prompts of different lengths decoded
//! together by [`BatchGenerator`] must give HF's batched `generate()`
//! tokens and finish reasons exactly and its per-step logits within the
//! tolerance, and the same tokens (and log-probabilities within the
//! tolerance) as Forge's own single-prompt [`TokenGenerator`].

use std::path::Path;

use forge_core::generation::batch::{BatchGenerator, BatchToken};
use forge_core::generation::generate::{FinishReason, TokenGenerator};
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, LoadOptions, Model};
use serde::Deserialize;

use crate::compare::{compare, to_f64, Errors};
use crate::error::Result;
use crate::generation::{case_error, config, id_rows, items, tensor};
use crate::manifest::{Manifest, Tolerance};
use crate::report::CaseReport;
use crate::run::push_numeric;

/// One item: a generation config and, per row, HF's tensors.
#[derive(Debug, Deserialize)]
struct BatchItem {
    config: serde_json::Value,
    tokens: Vec<String>,
    logits: Vec<String>,
    finish_reasons: Vec<String>,
}

/// What one row produced.
#[derive(Debug, Default)]
struct RowOutput {
    tokens: Vec<u32>,
    logits: Vec<f64>,
    logprobs: Vec<f64>,
    finish: Option<FinishReason>,
}

impl RowOutput {
    fn finish(&self) -> &'static str {
        self.finish.map_or("none", FinishReason::as_str)
    }
}

/// Every item of a batch case.
pub(crate) fn run_batch(dir: &Path, manifest: &Manifest, report: &mut CaseReport) -> Result<()> {
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict())?;
    let model = loaded.model.as_ref();
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let ids = id_rows(tensor(dir, &expected, "input_ids")?)?;
    let mask = id_rows(tensor(dir, &expected, "attention_mask")?)?;
    let prompts: Vec<Vec<u32>> = ids
        .iter()
        .zip(&mask)
        .map(|(row, m)| {
            row.iter()
                .zip(m)
                .filter(|(_, &keep)| keep == 1)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect();
    let tol = manifest.tolerance_for("batch_generate");
    for (i, item) in items::<BatchItem>(dir, manifest)?.iter().enumerate() {
        if item.tokens.len() != prompts.len() || item.logits.len() != prompts.len() {
            let message = format!("manifest item {i}: one tokens and logits tensor per prompt");
            return Err(case_error(dir, message));
        }
        let config = config(dir, i, &item.config)?;
        let batched = run_batched(model, &prompts, &config)?;
        let mut want_tokens = Vec::new();
        let mut want_logits = Vec::new();
        for (t, l) in item.tokens.iter().zip(&item.logits) {
            want_tokens.push(id_rows(tensor(dir, &expected, t)?)?.concat());
            want_logits.push(to_f64(tensor(dir, &expected, l)?)?);
        }
        check_tokens(report, i, &batched, &want_tokens, &item.finish_reasons);
        let (e, at) = logits_errors(&batched, &want_tokens, &want_logits, model.vocab_size());
        let note = format!(
            "{}; raw logits of every row and step vs HF; {at}",
            item.config
        );
        push_numeric(report, &format!("batch.{i}.logits"), &note, e, &tol);
        check_single(report, i, model, &prompts, &config, &batched, &tol)?;
    }
    Ok(())
}

/// Runs the whole batch; one output per row.
fn run_batched(
    model: &dyn Model,
    prompts: &[Vec<u32>],
    config: &forge_core::GenerationConfig,
) -> Result<Vec<RowOutput>> {
    let mut rows: Vec<RowOutput> = prompts.iter().map(|_| RowOutput::default()).collect();
    let mut generator = BatchGenerator::new(model, prompts, config)?;
    loop {
        let step: Vec<BatchToken> = generator.step()?;
        if step.is_empty() {
            return Ok(rows);
        }
        for t in step {
            let row = &mut rows[t.row];
            row.tokens.push(t.token);
            row.logits.extend(t.logits.iter().map(|&v| v as f64));
            row.logprobs.extend(t.logprobs.iter().map(|&v| v as f64));
            row.finish = t.finish_reason;
        }
    }
}

/// Tokens and finish reasons of every row must equal HF's exactly.
fn check_tokens(
    report: &mut CaseReport,
    i: usize,
    got: &[RowOutput],
    want: &[Vec<u32>],
    finish: &[String],
) {
    let total: usize = want.iter().map(Vec::len).sum();
    let matching: usize = got
        .iter()
        .zip(want)
        .map(|(g, w)| g.tokens.iter().zip(w).take_while(|(a, b)| a == b).count())
        .sum();
    let bad = got
        .iter()
        .zip(want)
        .zip(finish)
        .position(|((g, w), f)| g.tokens != *w || g.finish() != f);
    let note = match bad {
        None => format!("{} rows, finish reasons {finish:?}", want.len()),
        Some(r) => format!(
            "row {r}: got {:?} ({}), expected {:?} ({})",
            got[r].tokens,
            got[r].finish(),
            want[r],
            finish[r]
        ),
    };
    report.push_exact(
        &format!("batch.{i}.tokens"),
        matching,
        total,
        bad.is_none(),
        note,
    );
}

/// Compares each row's logits with HF's over the steps whose inputs agree
/// (up to and including the first differing token); also says at which
/// row and step the largest difference is.
fn logits_errors(
    got: &[RowOutput],
    want_tokens: &[Vec<u32>],
    want_logits: &[Vec<f64>],
    vocab: usize,
) -> (Errors, String) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut worst, mut at) = (0.0f64, String::new());
    for (r, ((g, wt), wl)) in got.iter().zip(want_tokens).zip(want_logits).enumerate() {
        let same = g.tokens.iter().zip(wt).take_while(|(x, y)| x == y).count();
        let steps = (same + 1).min(g.tokens.len()).min(wt.len());
        for s in 0..steps {
            let range = s * vocab..(s + 1) * vocab;
            let (Some(x), Some(y)) = (g.logits.get(range.clone()), wl.get(range)) else {
                continue;
            };
            let e = compare(x, y, 1, None);
            if e.max_abs.is_nan() || e.max_abs > worst {
                worst = e.max_abs;
                at = format!("largest at row {r}, step {s}");
            }
            a.extend_from_slice(x);
            b.extend_from_slice(y);
        }
    }
    let positions = a.len() / vocab.max(1);
    (compare(&a, &b, positions, None), at)
}

/// Each row alone through [`TokenGenerator`] must give the batched row's
/// tokens exactly and its log-probabilities within the tolerance.
fn check_single(
    report: &mut CaseReport,
    i: usize,
    model: &dyn Model,
    prompts: &[Vec<u32>],
    config: &forge_core::GenerationConfig,
    batched: &[RowOutput],
    tol: &Tolerance,
) -> Result<()> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut first_bad = None;
    for (r, prompt) in prompts.iter().enumerate() {
        let mut alone = RowOutput::default();
        for step in TokenGenerator::new(model, prompt, config)? {
            let step = step?;
            alone.tokens.push(step.token);
            alone
                .logprobs
                .extend(step.logprobs.iter().map(|&v| v as f64));
            alone.finish = step.finish_reason;
        }
        let row = &batched[r];
        if (alone.tokens != row.tokens || alone.finish != row.finish) && first_bad.is_none() {
            first_bad = Some(format!(
                "row {r}: batched {:?} ({}), alone {:?} ({})",
                row.tokens,
                row.finish(),
                alone.tokens,
                alone.finish()
            ));
        }
        let n = alone.logprobs.len().min(row.logprobs.len());
        a.extend_from_slice(&row.logprobs[..n]);
        b.extend_from_slice(&alone.logprobs[..n]);
    }
    let total: usize = batched.iter().map(|r| r.tokens.len()).sum();
    let pass = first_bad.is_none();
    let note = first_bad.unwrap_or_else(|| "batched rows equal single-prompt generation".into());
    let matching = if pass { total } else { 0 };
    report.push_exact(&format!("batch.{i}.vs_single"), matching, total, pass, note);
    // −∞ (processed-away tokens) on both sides compare as equal.
    let (a, b): (Vec<f64>, Vec<f64>) = a
        .into_iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() || y.is_finite())
        .unzip();
    let e = compare(&a, &b, 1, None);
    push_numeric(
        report,
        &format!("batch.{i}.vs_single_logprobs"),
        "batched vs single-prompt log-probabilities (Forge)",
        e,
        tol,
    );
    Ok(())
}
