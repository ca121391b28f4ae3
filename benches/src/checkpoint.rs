//! Random checkpoints for the benches: config.json plus model.safetensors
//! in bf16, made once per shape with a fixed seed and kept under
//! `.forge/bench-models/` so that Forge and mlx-lm read the same files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use forge_core::mlx_rs::{random, Array, Dtype};
use forge_core::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::shapes::ModelShape;

/// The seed every bench checkpoint is made with.
pub const SEED: u64 = 2024;

/// Standard deviation of the random matrices (HF's initializer_range).
const WEIGHT_STD: f32 = 0.02;

/// Where bench checkpoints live: `$FORGE_BENCH_MODELS`, else
/// `.forge/bench-models` in the repository.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("FORGE_BENCH_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.forge/bench-models"),
    }
}

/// The folder of `shape`'s checkpoint, written first if it is not there.
pub fn ensure(shape: &ModelShape) -> Result<PathBuf> {
    let dir = models_dir().join(format!("{}-seed{SEED}", shape.name));
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir);
    }
    write(shape, &dir)?;
    std::fs::write(&done, "").map_err(|e| Error::io(&done, e))?;
    Ok(dir)
}

/// Writes config.json and a bf16 model.safetensors of seeded random weights:
/// normal(0, 0.02) matrices, norms at 1.
pub fn write(shape: &ModelShape, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = dir.join("config.json");
    let text = serde_json::to_string_pretty(&shape.config).unwrap_or_default();
    std::fs::write(&config, text).map_err(|e| Error::io(&config, e))?;

    let tensors = shape.tensors();
    let bar = ProgressBar::new(tensors.len() as u64).with_message(format!(
        "random bf16 weights for {} (seed {SEED})",
        shape.name
    ));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tensors, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut arrays: HashMap<String, Array> = HashMap::new();
    for (i, (name, dims)) in tensors.iter().enumerate() {
        let array = if dims.len() == 1 {
            Array::ones::<f32>(dims)?
        } else {
            let key = random::key(SEED.wrapping_mul(1_000_003).wrapping_add(i as u64))?;
            random::normal::<f32>(&dims[..], None, WEIGHT_STD, &key)?
        }
        .as_dtype(Dtype::Bfloat16)?;
        array.eval()?;
        arrays.insert(name.clone(), array);
        bar.inc(1);
    }
    bar.finish();
    let file = dir.join("model.safetensors");
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    Array::save_safetensors(arrays, &metadata, &file).map_err(|e| Error::InvalidInput {
        expected: format!("to write {}", file.display()),
        found: e.to_string(),
    })
}
