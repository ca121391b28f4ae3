//! forge-benches: Forge's throughput benches and the pieces they share.
//!
//! - `benches/models.rs` (criterion): per model shape, prefill tok/s at 128
//!   and 1024 prompt tokens, decode tok/s, and MLX's peak memory.
//! - `benches/ops.rs` (criterion): rms_norm, rope, sdpa, matmul (f32, bf16),
//!   quantized matmul and gather_mm at model shapes.
//! - `src/bin/forge-bench.rs`: the same model workloads as plain timed runs
//!   with JSON output, for `cargo xtask bench --vs mlx-lm`.
//!
//! `cargo xtask bench` runs them, writes JSON and compares with the
//! committed baseline of the machine kind (benches/baselines/).

/// Links the plugins whose shapes are benchmarked, so they register.
extern crate forge_deepseek_v3;
extern crate forge_gemma2;
extern crate forge_gpt_oss;
extern crate forge_llama;
extern crate forge_qwen3;
extern crate forge_qwen3_moe;

pub mod checkpoint;
pub mod measure;
pub mod shapes;
pub mod workloads;

use std::path::{Path, PathBuf};

use forge_core::loader::{fastest_weight_dtype, system_memory_bytes, weight_file_bytes, Backend};
use forge_core::mlx_rs::Dtype;
use forge_core::{load_model, load_model_dir, LoadOptions, LoadedModel, Result};

/// How a bench picks the weight dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DtypeMode {
    /// What Forge's plan picks for this backend (the default).
    Plan,
    /// As stored in the checkpoint (bf16).
    Stored,
    /// Cast to this dtype.
    Cast(Dtype),
}

impl DtypeMode {
    /// `plan`, `stored`, `f32`, `bf16` or `f16`.
    pub fn parse(text: &str) -> Option<DtypeMode> {
        Some(match text {
            "plan" => DtypeMode::Plan,
            "stored" => DtypeMode::Stored,
            "f32" => DtypeMode::Cast(Dtype::Float32),
            "bf16" => DtypeMode::Cast(Dtype::Bfloat16),
            "f16" => DtypeMode::Cast(Dtype::Float16),
            _ => return None,
        })
    }

    /// `FORGE_BENCH_DTYPE`, else [`DtypeMode::Plan`].
    pub fn from_env() -> DtypeMode {
        std::env::var("FORGE_BENCH_DTYPE")
            .ok()
            .and_then(|t| DtypeMode::parse(&t))
            .unwrap_or(DtypeMode::Plan)
    }

    /// The cast to apply to the checkpoint in `dir`.
    pub fn resolve(self, dir: &Path) -> Option<Dtype> {
        match self {
            DtypeMode::Plan => {
                fastest_weight_dtype(
                    Backend::current(),
                    weight_file_bytes(dir),
                    system_memory_bytes(),
                )
                .dtype
            }
            DtypeMode::Stored => None,
            DtypeMode::Cast(dtype) => Some(dtype),
        }
    }
}

/// Loads a bench checkpoint (written first if needed) with its weights in
/// the dtype `mode` gives, and runs it once so that the weights (and their
/// cast) are evaluated before anything is timed, as mlx-lm does on load.
pub fn load(shape: &shapes::ModelShape, mode: DtypeMode) -> Result<LoadedModel> {
    let dir = checkpoint::ensure(shape)?;
    let options = LoadOptions {
        dtype: mode.resolve(&dir),
        ..LoadOptions::default()
    };
    let loaded = load_model_dir(&dir, &options)?;
    let warm = measure::prompt(4, shape.vocab_size());
    measure::prefill(loaded.model.as_ref(), &warm)?;
    Ok(loaded)
}

/// The real checkpoints benchmarked when they are present: SmolLM2-135M-
/// Instruct as a Q4_1 GGUF (the default model `cargo xtask setup` fetches
/// into `.forge/models/`).
pub fn real_checkpoints() -> Vec<(&'static str, PathBuf)> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.forge/models");
    vec![(
        "smollm2-135m-q4_1-gguf",
        models.join("smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )]
    .into_iter()
    .filter(|(_, path)| path.is_file())
    .collect()
}

/// Loads a real checkpoint file (a `.gguf`) in the dtype `mode` gives;
/// quantized weights are dequantized when that dtype is f32, as the CLI
/// does, since MLX's CPU backend multiplies f32 far faster.
pub fn load_file(path: &Path, mode: DtypeMode) -> Result<LoadedModel> {
    let dtype = mode.resolve(path.parent().unwrap_or(Path::new(".")));
    let options = LoadOptions {
        dtype,
        dequantize: dtype == Some(Dtype::Float32),
        ..LoadOptions::default()
    };
    let loaded = load_model(&path.to_string_lossy(), &options)?;
    let warm = measure::prompt(4, loaded.model.vocab_size());
    measure::prefill(loaded.model.as_ref(), &warm)?;
    Ok(loaded)
}

/// Where bench programs write their side outputs (peak memory):
/// `$FORGE_BENCH_OUT`, else `target/forge-bench`.
pub fn out_dir() -> PathBuf {
    match std::env::var_os("FORGE_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/forge-bench"),
    }
}

/// Peak memory per bench id, merged into `peak_memory.json` in [`out_dir`].
#[derive(Debug, Default)]
pub struct PeakLog {
    entries: Vec<(String, usize)>,
}

impl PeakLog {
    /// Notes the peak of one bench.
    pub fn record(&mut self, id: &str, bytes: usize) {
        self.entries.push((id.to_string(), bytes));
    }

    /// Merges the notes into the file (other bench runs' entries are kept).
    pub fn save(&self) -> std::io::Result<()> {
        let dir = out_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("peak_memory.json");
        let mut all: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        for (id, bytes) in &self.entries {
            all.insert(id.clone(), (*bytes).into());
        }
        let text = serde_json::to_string_pretty(&all).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }
}
