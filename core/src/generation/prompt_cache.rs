//! Making, bounding, quantizing, trimming, saving and loading the per-layer
//! caches of a conversation (mlx-lm's `make_prompt_cache`,
//! `maybe_quantize_kv_cache`, `trim_prompt_cache`, `save_prompt_cache` and
//! `load_prompt_cache`).
//!
//! A saved prompt cache is one safetensors file: the tensors of layer `i`
//! are `cache.{i}.{j}` (`j` in [`KvCache::state`] order) and the metadata
//! holds `forge.layers` (JSON: each layer's [`CacheKind`] and offset) next
//! to the caller's own keys (the CLI writes `model` and `tokens`).

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::Array;
use serde::{Deserialize, Serialize};

use crate::cache::quantized::QuantizedKvCache;
use crate::cache::rotating::RotatingCache;
use crate::cache::{CacheKind, KvCache};
use crate::error::{Error, Result};
use crate::generation::generate::token_array;
use crate::generation::generation_config::GenerationConfig;
use crate::model::{ForwardOptions, Model, ModelInput};
use crate::weights::load_safetensors_file;

/// Positions a `max_kv_size` cache never evicts (mlx-lm's `keep=4`).
pub const MAX_KV_KEEP: usize = 4;

/// The metadata key that describes the layers.
const LAYERS_KEY: &str = "forge.layers";

/// One layer as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedLayer {
    kind: CacheKind,
    offset: usize,
    tensors: usize,
}

/// The model's caches, with every standard layer bounded to `max_kv_size`
/// positions (a [`RotatingCache`] keeping the first [`MAX_KV_KEEP`]) when
/// it is given. Layers with a cache of their own kind (a sliding window, an
/// MLA latent cache) keep it.
pub fn make_prompt_cache(
    model: &dyn Model,
    max_kv_size: Option<usize>,
) -> Result<Vec<Box<dyn KvCache>>> {
    let mut cache = model.new_cache();
    if let Some(max) = max_kv_size {
        for layer in cache.iter_mut() {
            if layer.kind() == CacheKind::Standard {
                *layer = Box::new(RotatingCache::new(max, MAX_KV_KEEP)?);
            }
        }
    }
    Ok(cache)
}

/// Checks `max_kv_size`, `kv_bits` and `kv_group_size` of a config.
pub fn check_cache_settings(config: &GenerationConfig) -> Result<()> {
    if let Some(max) = config.max_kv_size {
        if max <= MAX_KV_KEEP {
            return Err(Error::InvalidInput {
                expected: format!(
                    "max_kv_size: more than the {MAX_KV_KEEP} positions a bounded cache always keeps"
                ),
                found: max.to_string(),
            });
        }
    }
    if let Some(bits) = config.kv_bits {
        crate::cache::quantized::check_settings(bits, config.kv_group_size)?;
        if config.max_kv_size.is_some() {
            return Err(Error::InvalidInput {
                expected: "kv_bits or max_kv_size (a bounded cache is not quantized)".into(),
                found: "both".into(),
            });
        }
    }
    Ok(())
}

/// The cache `config` asks for ([`make_prompt_cache`] with its `max_kv_size`).
pub fn cache_for(model: &dyn Model, config: &GenerationConfig) -> Result<Vec<Box<dyn KvCache>>> {
    config.validate()?;
    make_prompt_cache(model, config.max_kv_size)
}

/// [`maybe_quantize`] with the settings of `config`.
pub fn quantize_for(cache: &mut [Box<dyn KvCache>], config: &GenerationConfig) -> Result<()> {
    maybe_quantize(
        cache,
        config.kv_bits,
        config.kv_group_size,
        config.quantized_kv_start,
    )
}

/// Switches every layer that converts (standard caches) to a
/// [`QuantizedKvCache`] once it holds `start` positions, when `bits` is
/// given (mlx-lm's `maybe_quantize_kv_cache`).
pub fn maybe_quantize(
    cache: &mut [Box<dyn KvCache>],
    bits: Option<i32>,
    group_size: i32,
    start: usize,
) -> Result<()> {
    let Some(bits) = bits else {
        return Ok(());
    };
    for layer in cache.iter_mut() {
        if layer.offset() >= start {
            if let Some(quantized) = layer.to_quantized(bits, group_size)? {
                *layer = quantized;
            }
        }
    }
    Ok(())
}

/// True when every layer can drop positions.
pub fn can_trim_prompt_cache(cache: &[Box<dyn KvCache>]) -> bool {
    cache.iter().all(|c| c.is_trimmable())
}

/// Drops the `n` most recent positions of every layer; returns how many were
/// dropped (0 when some layer cannot be trimmed; then nothing changes).
pub fn trim_prompt_cache(cache: &mut [Box<dyn KvCache>], n: usize) -> usize {
    if !can_trim_prompt_cache(cache) {
        return 0;
    }
    cache.iter_mut().map(|c| c.trim(n)).max().unwrap_or(0)
}

/// Runs `prompt` through `model` into `cache` (in chunks of `chunk`
/// tokens), so that the cache can be saved and generation continued from it
/// later (mlx-lm's `cache_prompt`).
pub fn fill_prompt_cache(
    model: &dyn Model,
    cache: &mut [Box<dyn KvCache>],
    prompt: &[u32],
    chunk: usize,
) -> Result<()> {
    let last = crate::generation::generate::prefill_last(model, prompt, cache, chunk)?;
    last.eval()?;
    Ok(())
}

/// Saves `cache` to `path` (safetensors) with the caller's `metadata`.
pub fn save_prompt_cache(
    path: &Path,
    cache: &[Box<dyn KvCache>],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let mut tensors: Vec<(String, Array)> = Vec::new();
    let mut layers = Vec::with_capacity(cache.len());
    for (i, layer) in cache.iter().enumerate() {
        let state = layer.state();
        layers.push(SavedLayer {
            kind: layer.kind(),
            offset: layer.offset(),
            tensors: state.len(),
        });
        for (j, array) in state.into_iter().enumerate() {
            tensors.push((format!("cache.{i}.{j}"), array));
        }
    }
    let mut metadata = metadata.clone();
    let layers = serde_json::to_string(&layers).map_err(|e| prompt_error(path, e.to_string()))?;
    metadata.insert(LAYERS_KEY.into(), layers);
    metadata.insert("format".into(), "mlx".into());
    let refs: Vec<(&str, &Array)> = tensors.iter().map(|(n, a)| (n.as_str(), a)).collect();
    Array::save_safetensors(refs, &metadata, path)?;
    Ok(())
}

fn prompt_error(path: &Path, message: String) -> Error {
    Error::PromptCache {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads the metadata of a safetensors file.
fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// A prompt cache read from a file.
pub struct LoadedPromptCache {
    /// One cache per layer, ready to continue from.
    pub cache: Vec<Box<dyn KvCache>>,
    /// The file's metadata (the caller's keys and `forge.layers`).
    pub metadata: HashMap<String, String>,
}

/// Loads a prompt cache saved by [`save_prompt_cache`] for `model` (with
/// the same `max_kv_size` it was made with) and returns it with the saved
/// metadata. A file made for another model or with other cache settings
/// (layer count, cache kinds, tensor shapes or dtypes) is an error naming
/// the first layer that differs.
pub fn load_prompt_cache(
    path: &Path,
    model: &dyn Model,
    max_kv_size: Option<usize>,
) -> Result<LoadedPromptCache> {
    let metadata = read_metadata(path)?;
    let layers: Vec<SavedLayer> = match metadata.get(LAYERS_KEY) {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| prompt_error(path, format!("metadata `{LAYERS_KEY}`: {e}")))?,
        None => return Err(prompt_error(path, format!("no `{LAYERS_KEY}` metadata"))),
    };
    let mut tensors = load_safetensors_file(path)?;
    let mut cache = make_prompt_cache(model, max_kv_size)?;
    if layers.len() != cache.len() {
        return Err(prompt_error(
            path,
            format!(
                "the model has {} layers, the file {}",
                cache.len(),
                layers.len()
            ),
        ));
    }
    let offsets: Vec<usize> = layers.iter().map(|l| l.offset).collect();
    for (i, (saved, layer)) in layers.iter().zip(cache.iter_mut()).enumerate() {
        if let Some(converted) = same_kind(path, i, saved, layer.as_ref())? {
            *layer = converted;
        }
        let state = (0..saved.tensors)
            .map(|j| {
                let name = format!("cache.{i}.{j}");
                tensors
                    .remove(&name)
                    .ok_or_else(|| prompt_error(path, format!("tensor `{name}` is missing")))
            })
            .collect::<Result<Vec<Array>>>()?;
        layer
            .set_state(state, saved.offset)
            .map_err(|e| prompt_error(path, format!("layer {i}: {e}")))?;
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(prompt_error(path, format!("unexpected tensor `{extra}`")));
    }
    check_shapes(path, model, &cache, &offsets)?;
    Ok(LoadedPromptCache { cache, metadata })
}

/// `Ok(None)` when the saved layer is of `layer`'s kind; a quantized cache
/// in place of a standard one (quantized during generation) when that is
/// what was saved; an error otherwise.
fn same_kind(
    path: &Path,
    i: usize,
    saved: &SavedLayer,
    layer: &dyn KvCache,
) -> Result<Option<Box<dyn KvCache>>> {
    let kind = layer.kind();
    match (&saved.kind, &kind) {
        (a, b) if a == b => Ok(None),
        (CacheKind::Quantized { bits, group_size }, CacheKind::Standard) => {
            Ok(Some(Box::new(QuantizedKvCache::new(*bits, *group_size)?)))
        }
        (found, expected) => Err(prompt_error(
            path,
            format!("layer {i}: the model makes a {expected} cache with these settings, the file holds a {found} cache"),
        )),
    }
}

/// Runs one token through caches of the same kinds and compares the shapes
/// and dtypes of their tensors with the loaded ones (all axes but time).
fn check_shapes(
    path: &Path,
    model: &dyn Model,
    cache: &[Box<dyn KvCache>],
    offsets: &[usize],
) -> Result<()> {
    let mut probe = model.new_cache();
    for (p, c) in probe.iter_mut().zip(cache) {
        if let CacheKind::Quantized { bits, group_size } = c.kind() {
            *p = Box::new(QuantizedKvCache::new(bits, group_size)?);
        }
    }
    model.forward(
        &ModelInput::Tokens(token_array(&[0])),
        Some(&mut probe),
        &ForwardOptions::default(),
    )?;
    for (i, (p, c)) in probe.iter().zip(cache).enumerate() {
        if offsets[i] == 0 {
            continue;
        }
        let (want, got) = (p.state(), c.state());
        for (j, (w, g)) in want.iter().zip(&got).enumerate() {
            let differs = w.ndim() != g.ndim()
                || w.dtype() != g.dtype()
                || (0..w.ndim()).any(|a| a != 2 && w.shape()[a] != g.shape()[a]);
            if differs {
                return Err(prompt_error(
                    path,
                    format!(
                        "layer {i} tensor {j}: the model's cache has shape {:?} {:?} (any length on axis 2), the file {:?} {:?}",
                        w.shape(),
                        w.dtype(),
                        g.shape(),
                        g.dtype()
                    ),
                ));
            }
        }
        if want.len() != got.len() {
            return Err(prompt_error(
                path,
                format!(
                    "layer {i}: the model's cache has {} tensors, the file {}",
                    want.len(),
                    got.len()
                ),
            ));
        }
    }
    Ok(())
}
