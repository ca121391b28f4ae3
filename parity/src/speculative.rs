//! Speculative decoding and stop-string conformance cases (manifest `kind`
//! `speculative` and `stop_strings`; golden/speculative_cases.py makes them).

use std::path::Path;

use forge_core::generation::generate::{stream_generate, FinishReason};
use forge_core::generation::speculative::SpeculativeGenerator;
use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem};
use forge_core::tokenizer::Tokenizer;
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, KvCache, LoadOptions};
use serde::Deserialize;

use crate::error::Result;
use crate::generation::{case_error, config, id_rows, items, tensor};
use crate::manifest::Manifest;
use crate::report::CaseReport;

/// One item of a `speculative` case.
#[derive(Debug, Deserialize)]
struct SpeculativeItem {
    /// `draft` (the case's draft/), `model` (the model itself) or `wrong`.
    draft: String,
    config: serde_json::Value,
    tokens: String,
    finish_reason: String,
}

/// One item of a `stop_strings` case.
#[derive(Debug, Deserialize)]
struct StopItem {
    config: serde_json::Value,
    tokens: String,
    finish_reason: String,
    /// The text Forge must hand out (HF's text cut before the stop string).
    text: String,
}

/// A model changed for speculative-decoding tests: its scores moved up
/// one id (so its greedy choice is never the original model's: an always
/// wrong draft), or its caches made untrimmable.
pub struct AlteredModel<'m> {
    model: &'m dyn Model,
    shift_scores: bool,
    trimmable: bool,
}

impl<'m> AlteredModel<'m> {
    /// `model` with every score moved up one id (the last wraps to 0).
    pub fn always_wrong(model: &'m dyn Model) -> Self {
        AlteredModel {
            model,
            shift_scores: true,
            trimmable: true,
        }
    }

    /// `model` with caches that refuse to be trimmed.
    pub fn untrimmable(model: &'m dyn Model) -> Self {
        AlteredModel {
            model,
            shift_scores: false,
            trimmable: false,
        }
    }
}

/// A cache that cannot be trimmed, around another.
struct FixedCache(Box<dyn KvCache>);

impl KvCache for FixedCache {
    fn update_and_fetch(
        &mut self,
        keys: &Array,
        values: &Array,
    ) -> forge_core::Result<(Array, Array)> {
        self.0.update_and_fetch(keys, values)
    }

    fn offset(&self) -> usize {
        self.0.offset()
    }

    fn is_trimmable(&self) -> bool {
        false
    }

    fn trim(&mut self, _n: usize) -> usize {
        0
    }

    fn state(&self) -> Vec<Array> {
        self.0.state()
    }

    fn set_state(&mut self, state: Vec<Array>, offset: usize) -> forge_core::Result<()> {
        self.0.set_state(state, offset)
    }
}

impl Model for AlteredModel<'_> {
    fn kind(&self) -> ModelKind {
        self.model.kind()
    }

    fn forward(
        &self,
        input: &ModelInput,
        cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> forge_core::Result<ModelOutput> {
        let mut out = self.model.forward(input, cache, options)?;
        if let (true, Some(logits)) = (self.shift_scores, &out.logits) {
            let vocab = logits.dim(-1);
            let parts = logits.split_at_indices(&[vocab - 1], -1)?;
            out.logits = Some(ops::concatenate(&[parts[1].clone(), parts[0].clone()], -1)?);
        }
        Ok(out)
    }

    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        let cache = self.model.new_cache();
        if self.trimmable {
            return cache;
        }
        cache
            .into_iter()
            .map(|c| Box::new(FixedCache(c)) as Box<dyn KvCache>)
            .collect()
    }

    fn num_layers(&self) -> usize {
        self.model.num_layers()
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn max_context(&self) -> Option<usize> {
        self.model.max_context()
    }

    fn kv_bytes_per_token(&self) -> usize {
        self.model.kv_bytes_per_token()
    }

    fn plan(&self) -> Vec<PlanItem> {
        self.model.plan()
    }
}

/// Every speculative item: Forge's speculative generator with the item's
/// draft must give HF's plain greedy tokens and finish reason exactly; the
/// model as its own draft must have every proposal accepted, the shifted
/// draft none.
pub(crate) fn run_speculative(
    dir: &Path,
    manifest: &Manifest,
    report: &mut CaseReport,
) -> Result<()> {
    let model = load_model_dir(&dir.join("model"), &LoadOptions::strict())?;
    let draft = load_model_dir(&dir.join("draft"), &LoadOptions::strict())?;
    let model = model.model.as_ref();
    let wrong = AlteredModel::always_wrong(model);
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let prompt = first_row(dir, &expected, "input_ids")?;
    for (i, item) in items::<SpeculativeItem>(dir, manifest)?.iter().enumerate() {
        let config = config(dir, i, &item.config)?;
        let want = first_row(dir, &expected, &item.tokens)?;
        let draft_model: &dyn Model = match item.draft.as_str() {
            "draft" => draft.model.as_ref(),
            "model" => model,
            "wrong" => &wrong,
            other => {
                return Err(case_error(
                    dir,
                    format!("item {i}: draft `{other}` (expected draft, model or wrong)"),
                ))
            }
        };
        let mut generator = SpeculativeGenerator::new(model, draft_model, &prompt, &config)?;
        let mut got = Vec::new();
        let mut finish = None;
        while let Some(step) = generator.next_token()? {
            got.push(step.token);
            finish = step.finish_reason;
        }
        let stats = generator.draft_stats();
        let finish = finish.map_or("none", FinishReason::as_str);
        let acceptance_ok = match item.draft.as_str() {
            "model" => stats.accepted == stats.proposed,
            "wrong" => stats.accepted == 0,
            _ => true,
        };
        let matching = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let pass = got == want && finish == item.finish_reason && acceptance_ok;
        let mut note = format!(
            "draft {}: {} -> {finish}; accepted {}/{} proposals",
            item.draft, item.config, stats.accepted, stats.proposed
        );
        if !pass {
            note = format!(
                "got {got:?} ({finish}), expected {want:?} ({}); {note}",
                item.finish_reason
            );
        }
        report.push_exact(
            &format!("speculative.{i}"),
            matching,
            want.len(),
            pass,
            note,
        );
    }
    Ok(())
}

/// Every stop-string item: Forge's text stream must stop at HF's token
/// (HF keeps the stop string's tokens; Forge stops on the same token but
/// hands out the text only up to the stop string) with HF's finish reason.
pub(crate) fn run_stop_strings(
    dir: &Path,
    manifest: &Manifest,
    report: &mut CaseReport,
) -> Result<()> {
    let model_dir = dir.join("model");
    let loaded = load_model_dir(&model_dir, &LoadOptions::strict())?;
    let tokenizer = Tokenizer::from_dir(&model_dir)?;
    let expected = load_safetensors_file(&dir.join("expected.safetensors"))?;
    let prompt = first_row(dir, &expected, "input_ids")?;
    for (i, item) in items::<StopItem>(dir, manifest)?.iter().enumerate() {
        let config = config(dir, i, &item.config)?;
        let want = first_row(dir, &expected, &item.tokens)?;
        let mut got = Vec::new();
        let mut text = String::new();
        let mut finish = None;
        for response in stream_generate(loaded.model.as_ref(), &tokenizer, &prompt, &config)? {
            let response = response?;
            got.push(response.token);
            text.push_str(&response.text);
            finish = response.finish_reason;
        }
        let finish = finish.map_or("none", FinishReason::as_str);
        let matching = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let pass = got == want && finish == item.finish_reason && text == item.text;
        let stops = &item.config["stop_strings"];
        let mut note = format!("stop {stops} -> {} tokens, {finish}, {text:?}", got.len());
        if !pass {
            note = format!(
                "expected {} tokens, {}, {:?}; got {note}",
                want.len(),
                item.finish_reason,
                item.text
            );
        }
        report.push_exact(
            &format!("stop_strings.{i}"),
            matching,
            want.len(),
            pass,
            note,
        );
    }
    Ok(())
}

fn first_row(dir: &Path, expected: &forge_core::TensorMap, name: &str) -> Result<Vec<u32>> {
    id_rows(tensor(dir, expected, name)?)?
        .into_iter()
        .next()
        .ok_or_else(|| case_error(dir, format!("`{name}` has no row")))
}
