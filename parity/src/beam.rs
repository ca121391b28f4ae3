//! Beam search conformance cases (manifest `kind` `beam_search`, made by
//! golden/beam_cases.py): HF `generate(num_beams=...)` hypotheses, scores
//! and finish reasons against [`forge_core::generation::beam::beam_search`].

use std::path::Path;

use forge_core::generation::beam::{beam_search_batch, BeamHypothesis};
use forge_core::weights::{load_safetensors_file, TensorMap};
use forge_core::{load_model_dir, LoadOptions};
use serde::Deserialize;

use crate::compare::{compare, to_f64, Errors};
use crate::error::Result;
use crate::generation::{case_error, config, id_rows, items, tensor};
use crate::manifest::Manifest;
use crate::report::{sci, CaseReport};

/// One setting of a `beam_search` case.
#[derive(Debug, Deserialize)]
struct BeamItem {
    config: serde_json::Value,
    /// Tensor names of the returned hypotheses' new tokens, best first.
    tokens: Vec<String>,
    /// Tensor name of HF's `sequences_scores`.
    scores: String,
    finish_reasons: Vec<String>,
    /// A left-padded batch of prompts (each prompt's hypotheses in turn);
    /// absent: the case's `input_ids`.
    #[serde(default)]
    prompts: Option<String>,
    /// The batch's attention mask (0 on padding).
    #[serde(default)]
    attention_mask: Option<String>,
}

/// The prompts of an item: the batch's rows without their padding, or the
/// case's single prompt.
fn item_prompts(
    dir: &Path,
    expected: &TensorMap,
    item: &BeamItem,
    single: &[u32],
) -> Result<Vec<Vec<u32>>> {
    let Some(name) = &item.prompts else {
        return Ok(vec![single.to_vec()]);
    };
    let rows = id_rows(tensor(dir, expected, name)?)?;
    let masks = match &item.attention_mask {
        Some(mask) => id_rows(tensor(dir, expected, mask)?)?,
        None => rows.iter().map(|r| vec![1; r.len()]).collect(),
    };
    Ok(rows
        .iter()
        .zip(&masks)
        .map(|(row, mask)| {
            row.iter()
                .zip(mask)
                .filter(|(_, &m)| m != 0)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect())
}

/// Where Forge's hypotheses first leave HF's: (hypothesis, new-token step).
fn first_divergence(got: &[BeamHypothesis], want: &[Vec<u32>]) -> Option<(usize, usize)> {
    for (j, expected) in want.iter().enumerate() {
        let Some(hyp) = got.get(j) else {
            return Some((j, 0));
        };
        if hyp.tokens != *expected {
            let step = hyp
                .tokens
                .iter()
                .zip(expected)
                .take_while(|(a, b)| a == b)
                .count();
            return Some((j, step));
        }
    }
    (got.len() != want.len()).then_some((want.len(), 0))
}

/// Every setting: the same hypotheses in the same order with the same
/// finish reasons (exact), and `sequences_scores` within the tolerance.
pub(crate) fn run_beam_search(
    dir: &Path,
    manifest: &Manifest,
    report: &mut CaseReport,
) -> Result<()> {
    let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict())?;
    let model = loaded.model.as_ref();
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let prompt = id_rows(tensor(dir, &expected, "input_ids")?)?
        .into_iter()
        .next()
        .ok_or_else(|| case_error(dir, "input_ids has no row".into()))?;
    let tol = manifest.tolerance_for("beam_search");
    for (i, item) in items::<BeamItem>(dir, manifest)?.iter().enumerate() {
        let config = config(dir, i, &item.config)?;
        let mut want = Vec::with_capacity(item.tokens.len());
        for name in &item.tokens {
            want.push(
                id_rows(tensor(dir, &expected, name)?)?
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
            );
        }
        let want_scores = to_f64(tensor(dir, &expected, &item.scores)?)?;
        let prompts = item_prompts(dir, &expected, item, &prompt)?;
        let got: Vec<BeamHypothesis> = beam_search_batch(model, &prompts, &config)?
            .into_iter()
            .flat_map(|out| out.hypotheses)
            .collect();
        let got = &got;
        let finishes: Vec<&str> = got.iter().map(|h| h.finish_reason.as_str()).collect();
        let divergence = first_divergence(got, &want);
        let same_finish = finishes == item.finish_reasons;
        let matching = got
            .iter()
            .zip(&want)
            .filter(|(h, w)| h.tokens == **w)
            .count();
        let label = match prompts.len() {
            1 => item.config.to_string(),
            b => format!("batch of {b}, hypotheses prompt by prompt: {}", item.config),
        };
        let note = match divergence {
            None if same_finish => format!("{label} -> {finishes:?}"),
            None => format!(
                "finish reasons {finishes:?}, expected {:?}; {label}",
                item.finish_reasons
            ),
            Some((j, step)) => format!(
                "hypothesis {j} diverges at new token {step}: got {:?}, expected {:?}; {label}",
                got.get(j).map(|h| &h.tokens),
                want.get(j)
            ),
        };
        let pass = divergence.is_none() && same_finish;
        report.push_exact(
            &format!("beam.{i}.sequences"),
            matching,
            want.len(),
            pass,
            note,
        );
        let got_scores: Vec<f64> = got.iter().map(|h| h.score as f64).collect();
        let e = if got_scores.len() == want_scores.len() {
            compare(&got_scores, &want_scores, 1, None)
        } else {
            Errors {
                max_abs: f64::INFINITY,
                rel: f64::INFINITY,
            }
        };
        let pass = e.within(&tol);
        report.push(
            &format!("beam.{i}.scores"),
            "max_abs",
            sci(e.max_abs),
            sci(tol.max_abs),
            pass,
            if pass {
                String::new()
            } else {
                format!("got {got_scores:.5?}, expected {want_scores:.5?}")
            },
        );
    }
    Ok(())
}
