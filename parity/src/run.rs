//! Running one golden case through the normal loading path.

use std::path::Path;

use forge_core::generation::generate::{greedy, prefill, TokenGenerator};
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::model::{Fault, ForwardOptions, ModelInput};
use forge_core::weights::{load_safetensors_file, TensorMap};
use forge_core::{load_model_dir, GenerationConfig, LoadOptions, Model};

use crate::compare::{compare, to_f64, Errors};
use crate::error::{ParityError, Result};
use crate::generation;
use crate::manifest::{Manifest, Tolerance};
use crate::report::{sci, CaseReport};
use crate::speculative;
use crate::vision;

/// Options of a parity run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plant this fault in the model before checking (tests of the harness).
    pub fault: Option<Fault>,
}

/// Prefill chunk used by the cache consistency check.
const CONSISTENCY_CHUNK: usize = 5;

/// Runs every check of the case in `dir`. Problems that stop the case
/// (unloadable model, malformed files) become a failing "load" row.
pub fn run_case(dir: &Path, options: &RunOptions) -> CaseReport {
    let (mut report, result) = match Manifest::from_case_dir(dir) {
        Ok(manifest) => {
            let mut report = CaseReport {
                case: manifest.case.clone(),
                arch: manifest.arch.clone(),
                ..Default::default()
            };
            let result = run_checks(dir, &manifest, options, &mut report);
            (report, result)
        }
        Err(e) => {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let report = CaseReport {
                case: name.unwrap_or_default(),
                arch: "?".into(),
                ..Default::default()
            };
            (report, Err(e))
        }
    };
    if let Err(e) = result {
        report.push(
            "load",
            "error",
            "-".into(),
            "-".into(),
            false,
            e.to_string(),
        );
    }
    report
}

/// The tensors of `expected.safetensors`.
pub(crate) struct Expected {
    pub(crate) tensors: TensorMap,
    pub(crate) path: std::path::PathBuf,
}

impl Expected {
    pub(crate) fn get(&self, name: &str) -> Result<&Array> {
        self.tensors.get(name).ok_or_else(|| ParityError::Case {
            path: self.path.clone(),
            message: format!("no tensor `{name}`"),
        })
    }
}

fn run_checks(
    dir: &Path,
    manifest: &Manifest,
    options: &RunOptions,
    report: &mut CaseReport,
) -> Result<()> {
    match manifest.kind.as_deref() {
        None | Some("model") => {}
        Some("logits_processors") => return generation::run_processors(dir, manifest, report),
        Some("generate") => return generation::run_generate(dir, manifest, report),
        Some("cache_generate") => return generation::run_cache_generate(dir, manifest, report),
        Some("batch_generate") => return crate::batch::run_batch(dir, manifest, report),
        Some("speculative") => return speculative::run_speculative(dir, manifest, report),
        Some("stop_strings") => return speculative::run_stop_strings(dir, manifest, report),
        Some("beam_search") => return crate::beam::run_beam_search(dir, manifest, report),
        Some(other) => {
            return Err(ParityError::Case {
                path: dir.join("manifest.json"),
                message: format!(
                    "unknown case kind `{other}` (expected model, logits_processors, generate, batch_generate, beam_search, speculative, stop_strings or cache_generate)"
                ),
            })
        }
    }
    let model_dir = dir.join("model");
    let mut loaded = match &manifest.model_source {
        _ if model_dir.is_dir() => load_model_dir(&model_dir, &LoadOptions::strict())?,
        Some(source) => {
            let path = forge_core::models::find_fetched(source.file_name(), &source.sha256)?;
            forge_core::load_model(&path.to_string_lossy(), &LoadOptions::strict())?
        }
        None => {
            return Err(ParityError::Case {
                path: model_dir,
                message: "no model/ folder and no model_source in the manifest".into(),
            })
        }
    };
    if let Some(fault) = &options.fault {
        loaded.model.plant_fault(fault);
    }
    let model = loaded.model.as_ref();
    let expected_path = dir.join("expected.safetensors");
    let expected = Expected {
        tensors: load_safetensors_file(&expected_path)?,
        path: expected_path,
    };
    if manifest.has_check("pixel_values") {
        vision::check_pixel_values(report, manifest, dir, &expected)?;
    }
    let pixel_values = expected.tensors.get("pixel_values").cloned();
    if !expected.tensors.contains_key("input_ids") {
        return vision::check_encoder(report, manifest, model, &expected);
    }
    vision::check_prompt_ids(report, manifest, dir, model, &expected)?;
    let input_ids = expected.get("input_ids")?.as_dtype(Dtype::Int32)?;
    let (b, t) = (input_ids.dim(0) as usize, input_ids.dim(1) as usize);
    let mask = expected
        .tensors
        .get("attention_mask")
        .map(|m| m.as_dtype(Dtype::Int32))
        .transpose()?;
    let keep: Option<Vec<bool>> = match &mask {
        Some(m) => {
            m.eval()?;
            Some(m.as_slice::<i32>().iter().map(|&v| v != 0).collect())
        }
        None => None,
    };
    let output = model.forward(
        &ModelInput::Tokens(input_ids.clone()),
        None,
        &ForwardOptions {
            attention_mask: mask.clone(),
            output_hidden_states: true,
            pixel_values: pixel_values.clone(),
            ..Default::default()
        },
    )?;
    let positions = b * t;
    let mut logits_ok = true;
    if manifest.has_check("logits") {
        let logits = output.logits.as_ref().ok_or_else(|| ParityError::Case {
            path: dir.to_path_buf(),
            message: "the model returned no logits".into(),
        })?;
        let errors = compare_arrays(logits, expected.get("logits")?, positions, keep.as_deref())?;
        logits_ok = push_numeric(
            report,
            "logits",
            "",
            errors,
            &manifest.tolerance_for("logits"),
        );
    }
    if manifest.has_check("hidden_states") {
        check_hidden_states(
            report,
            manifest,
            &expected,
            &output.hidden_states,
            positions,
            keep.as_deref(),
            logits_ok,
            true,
        )?;
    }
    if manifest.has_check("greedy_tokens") {
        check_greedy(
            report,
            manifest,
            model,
            &expected,
            &input_ids,
            keep.as_deref(),
            pixel_values.as_ref(),
        )?;
    }
    if let Some(logits) = &output.logits {
        let images = pixel_values.as_ref();
        check_cache_consistency(
            report,
            manifest,
            model,
            &input_ids,
            keep.as_deref(),
            logits,
            images,
        )?;
    }
    Ok(())
}

pub(crate) fn compare_arrays(
    actual: &Array,
    expected: &Array,
    positions: usize,
    keep: Option<&[bool]>,
) -> Result<Errors> {
    if actual.shape() != expected.shape() {
        return Ok(Errors {
            max_abs: f64::INFINITY,
            rel: f64::INFINITY,
        });
    }
    Ok(compare(
        &to_f64(actual)?,
        &to_f64(expected)?,
        positions,
        keep,
    ))
}

pub(crate) fn push_numeric(
    report: &mut CaseReport,
    check: &str,
    note: &str,
    e: Errors,
    tol: &Tolerance,
) -> bool {
    let pass = e.within(tol);
    report.push(
        check,
        "max_abs",
        sci(e.max_abs),
        sci(tol.max_abs),
        e.max_abs <= tol.max_abs,
        note.into(),
    );
    report.push(
        check,
        "rel",
        sci(e.rel),
        sci(tol.rel),
        e.rel <= tol.rel,
        note.into(),
    );
    pass
}

/// One summary pair of rows over all layers; names the worst layer, and the
/// first failing one when logits failed. `final_norm`: the last hidden
/// state is taken after a final norm (causal LMs), not plainly a layer's output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_hidden_states(
    report: &mut CaseReport,
    manifest: &Manifest,
    expected: &Expected,
    actual: &[Array],
    positions: usize,
    keep: Option<&[bool]>,
    logits_ok: bool,
    final_norm: bool,
) -> Result<()> {
    let tol = manifest.tolerance_for("hidden_states");
    let count = (0..)
        .take_while(|i| expected.tensors.contains_key(&format!("hidden_states.{i}")))
        .count();
    if count != actual.len() {
        report.push(
            "hidden_states",
            "count",
            actual.len().to_string(),
            count.to_string(),
            false,
            "the model returned a different number of hidden states".into(),
        );
        return Ok(());
    }
    let mut worst = Errors {
        max_abs: 0.0,
        rel: 0.0,
    };
    let mut worst_layer = 0;
    let mut first_failure = None;
    for (i, a) in actual.iter().enumerate() {
        let e = compare_arrays(
            a,
            expected.get(&format!("hidden_states.{i}"))?,
            positions,
            keep,
        )?;
        if first_failure.is_none() && !e.within(&tol) {
            first_failure = Some(i);
        }
        if e.rel.is_nan() || e.rel > worst.rel {
            worst_layer = i;
        }
        worst = Errors {
            max_abs: nan_max(worst.max_abs, e.max_abs),
            rel: nan_max(worst.rel, e.rel),
        };
    }
    let note = match first_failure {
        Some(i) => format!(
            "first failing: hidden_states.{i}, {}",
            layer_name(i, count, final_norm)
        ),
        None => format!("{count} tensors, worst hidden_states.{worst_layer}"),
    };
    push_numeric(report, "hidden_states", &note, worst, &tol);
    if !logits_ok {
        if let Some(i) = first_failure {
            report.first_divergence = Some(format!(
                "hidden_states.{i} ({})",
                layer_name(i, count, final_norm)
            ));
        }
    }
    Ok(())
}

/// The larger of two errors; NaN wins.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// What HF's hidden state `i` of `count` is.
fn layer_name(i: usize, count: usize, final_norm: bool) -> String {
    if i == 0 {
        "embeddings".into()
    } else if i + 1 == count && final_norm {
        format!("output of layer {} after the final norm", i - 1)
    } else {
        format!("output of layer {}", i - 1)
    }
}

/// The real (unpadded) tokens of each row.
fn rows(input_ids: &Array, keep: Option<&[bool]>) -> Result<Vec<Vec<u32>>> {
    let ids = input_ids.as_dtype(Dtype::Int32)?;
    ids.eval()?;
    let t = ids.dim(1) as usize;
    let flat = ids.as_slice::<i32>();
    Ok(flat
        .chunks(t.max(1))
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .filter(|(j, _)| keep.is_none_or(|k| k[r * t + j]))
                .map(|(_, &v)| v as u32)
                .collect()
        })
        .collect())
}

fn check_greedy(
    report: &mut CaseReport,
    manifest: &Manifest,
    model: &dyn Model,
    expected: &Expected,
    input_ids: &Array,
    keep: Option<&[bool]>,
    pixel_values: Option<&Array>,
) -> Result<()> {
    let want = expected.get("greedy_tokens")?.as_dtype(Dtype::Int32)?;
    want.eval()?;
    let n = manifest
        .greedy
        .as_ref()
        .map_or(want.dim(1) as usize, |g| g.max_new_tokens);
    let want: Vec<u32> = want.as_slice::<i32>().iter().map(|&v| v as u32).collect();
    let mut got = Vec::new();
    let prompts = rows(input_ids, keep)?;
    match (pixel_values, prompts.as_slice()) {
        (None, _) => {
            for row in &prompts {
                got.extend(greedy(model, row, n, 512)?);
            }
        }
        // With images: generation's own path (embeddings with the image
        // features, prefilled in chunks), greedy, exactly n tokens.
        (Some(pixels), [row]) => {
            let config = GenerationConfig {
                max_new_tokens: n,
                prefill_step_size: CONSISTENCY_CHUNK,
                ..Default::default()
            };
            for step in TokenGenerator::with_images(model, row, pixels, &config)? {
                got.push(step?.token);
            }
        }
        (Some(_), _) => {
            return Err(ParityError::Case {
                path: expected.path.clone(),
                message: "greedy_tokens with pixel_values needs a batch of one prompt".into(),
            })
        }
    }
    let matching = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let pass = got == want;
    let note = if pass {
        String::new()
    } else {
        format!("first difference at token {matching}: got {got:?}, expected {want:?}")
    };
    report.push_exact("greedy_tokens", matching, want.len(), pass, note);
    Ok(())
}

/// Checks that need no reference: logits from incremental decoding through
/// the cache, and from prefill in chunks, equal the one-shot forward. With
/// images, the chunks run over the prompt's embeddings with the image
/// features spliced in (as generation does).
fn check_cache_consistency(
    report: &mut CaseReport,
    manifest: &Manifest,
    model: &dyn Model,
    input_ids: &Array,
    keep: Option<&[bool]>,
    full_logits: &Array,
    pixel_values: Option<&Array>,
) -> Result<()> {
    let tol = manifest.tolerance_for("logits");
    let t = input_ids.dim(1) as usize;
    let full = to_f64(full_logits)?;
    let vocab = full.len() / (input_ids.dim(0) as usize * t).max(1);
    let prompts = rows(input_ids, keep)?;
    let embeddings = match pixel_values {
        None => None,
        Some(pixels) if prompts.len() == 1 => Some(model.embed_with_images(input_ids, pixels)?),
        Some(_) => {
            return Err(ParityError::Case {
                path: manifest.case.clone().into(),
                message: "pixel_values with a batch of more than one prompt".into(),
            })
        }
    };
    for (check, chunk) in [
        ("incremental_decode", 1),
        ("chunked_prefill", CONSISTENCY_CHUNK),
    ] {
        let mut worst = Errors {
            max_abs: 0.0,
            rel: 0.0,
        };
        for (r, row) in prompts.iter().enumerate() {
            let mut cache = model.new_cache();
            let logits = match &embeddings {
                None => prefill(model, row, &mut cache, chunk)?,
                Some(e) => prefill_embeddings(model, e, &mut cache, chunk)?,
            };
            let logits = to_f64(&logits)?;
            // The row's real positions are its last row.len() positions.
            let start = (r * t + (t - row.len())) * vocab;
            let reference = &full[start..start + row.len() * vocab];
            let e = compare(&logits, reference, row.len(), None);
            worst = Errors {
                max_abs: nan_max(worst.max_abs, e.max_abs),
                rel: nan_max(worst.rel, e.rel),
            };
        }
        let note = format!("chunk {chunk} vs one-shot");
        push_numeric(report, check, &note, worst, &tol);
    }
    Ok(())
}

/// Runs input embeddings `[1, T, hidden]` through the cache in chunks of
/// `chunk` positions; the logits of every position.
fn prefill_embeddings(
    model: &dyn Model,
    embeddings: &Array,
    cache: &mut [Box<dyn forge_core::KvCache>],
    chunk: usize,
) -> Result<Array> {
    let t = embeddings.dim(1);
    let cuts: Vec<i32> = (chunk as i32..t).step_by(chunk).collect();
    let mut pieces = Vec::new();
    for piece in embeddings.split_at_indices(&cuts, 1)? {
        let out = model.forward(
            &ModelInput::Embeddings(piece),
            Some(&mut *cache),
            &ForwardOptions::default(),
        )?;
        let logits = out.logits.ok_or_else(|| ParityError::Case {
            path: "model".into(),
            message: "the model returned no logits".into(),
        })?;
        logits.eval()?;
        pieces.push(logits);
    }
    Ok(forge_core::mlx_rs::ops::concatenate(&pieces, 1)?)
}
