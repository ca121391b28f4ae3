//! The first test of a port, before it has golden fixtures: a tiny model
//! built through the plugin's own `build` from a config, with synthetic
//! weights ([`forge_core::Weights::synthetic`]), checked for what must hold
//! whatever the weights: the output shapes, one hidden state per layer plus
//! one, finite logits, a cache that gives the same logits as the one-shot
//! forward, and a KV-bytes figure that matches what the cache holds per
//! position.
//!
//! It proves the plumbing, not the numerics: only a golden case made by
//! Hugging Face does that.

use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{ForwardOptions, ModelInput};
use forge_core::{registry, ModelConfig, Weights};

use crate::compare::{compare, to_f64};
use crate::error::{ParityError, Result};

/// Incremental decode may differ from the one-shot forward by rounding only.
const CACHE_TOLERANCE: f64 = 1e-4;

/// What [`self_check`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfCheck {
    /// The model_type the config named.
    pub model_type: String,
    /// Layers of the built model.
    pub layers: usize,
    /// Max abs difference of the logits decoded one token at a time after
    /// a prefill, against the one-shot forward.
    pub cache_max_abs: f64,
}

fn failed(config: &ModelConfig, message: String) -> ParityError {
    ParityError::Case {
        path: config.path().to_path_buf(),
        message,
    }
}

/// Builds the model `config_json` describes (its `model_type` must be
/// registered) with synthetic weights and runs the checks on a prompt of
/// `prompt_len` tokens; the error says which check failed.
pub fn self_check(config_json: &str, prompt_len: usize) -> Result<SelfCheck> {
    let config = ModelConfig::from_str(config_json, "tiny config.json", true)?;
    let arch = registry::for_config(&config)?;
    let mut weights = Weights::synthetic(0);
    let model = (arch.build)(&config, &mut weights)?;
    weights.finish()?;
    let model = model.as_ref();
    let vocab = model.vocab_size();
    let t = prompt_len.max(2);
    let ids: Vec<i32> = (0..t)
        .map(|i| ((i * 7 + 3) % vocab.max(1)) as i32)
        .collect();
    let ids = Array::from_slice(&ids, &[1, t as i32]);

    let options = ForwardOptions {
        output_hidden_states: true,
        ..Default::default()
    };
    let full = model.forward(&ModelInput::Tokens(ids.clone()), None, &options)?;
    let logits = full
        .logits
        .ok_or_else(|| failed(&config, "a causal LM returned no logits".into()))?;
    let want = [1, t as i32, vocab as i32];
    if logits.shape() != want {
        return Err(failed(
            &config,
            format!(
                "logits of shape {want:?} expected, found {:?}",
                logits.shape()
            ),
        ));
    }
    let full_values = to_f64(&logits)?;
    if !full_values.iter().all(|v| v.is_finite()) {
        return Err(failed(&config, "the logits are not all finite".into()));
    }
    if full.hidden_states.len() != model.num_layers() + 1 {
        return Err(failed(
            &config,
            format!(
                "{} hidden states expected (embeddings, then one per layer), found {}",
                model.num_layers() + 1,
                full.hidden_states.len()
            ),
        ));
    }

    // Prefill all but the last two tokens, then decode them one at a time.
    let mut cache = model.new_cache();
    let split = t as i32 - 2;
    let mut steps = Vec::new();
    let parts = ids.split_at_indices(&[split, split + 1], 1)?;
    for part in &parts {
        let out = model.forward(
            &ModelInput::Tokens(part.clone()),
            Some(&mut cache),
            &ForwardOptions::default(),
        )?;
        steps.push(
            out.logits
                .ok_or_else(|| failed(&config, "no logits".into()))?,
        );
    }
    let stepped = to_f64(&ops::concatenate(&steps, 1)?)?;
    let errors = compare(&stepped, &full_values, t, None);
    if errors.max_abs.is_nan() || errors.max_abs > CACHE_TOLERANCE {
        return Err(failed(
            &config,
            format!(
                "decoding with the cache differs from the one-shot forward: max abs {:e} \
                 (allowed {CACHE_TOLERANCE:e})",
                errors.max_abs
            ),
        ));
    }
    // Bytes per cached position, layer by layer (a sliding layer's
    // rotating cache holds only its window).
    let mut per_token = 0;
    for layer in &cache {
        let state = layer.state();
        let Some(first) = state.first() else { continue };
        let positions = first.dim(2).max(1) as usize;
        per_token += state.iter().map(|a| a.nbytes()).sum::<usize>() / positions;
    }
    if per_token != model.kv_bytes_per_token() {
        return Err(failed(
            &config,
            format!(
                "the cache holds {per_token} bytes per position, but kv_bytes_per_token says {}",
                model.kv_bytes_per_token()
            ),
        ));
    }
    Ok(SelfCheck {
        model_type: arch.model_type.to_string(),
        layers: model.num_layers(),
        cache_max_abs: errors.max_abs,
    })
}
