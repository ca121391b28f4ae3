//! The one loading path: model id or folder → config → plugin → weights →
//! sanitize → strict load. The parity harness, the CLI and the generation
//! API all load through [`load_model`].

use std::path::{Path, PathBuf};

use mlx_rs::Dtype;

use crate::config::{ConfigKeyReport, ModelConfig};
use crate::error::{Error, Result};
use crate::gguf;
use crate::hub::{self, HubOptions};
use crate::model::Model;
use crate::registry::{self, Architecture};
use crate::tokenizer::Tokenizer;
use crate::weights::{load_safetensors_dir, Weights};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Unknown config keys are errors (the parity harness always sets this).
    pub strict: bool,
    /// Cast floating-point weights to this dtype (`None`: keep the stored dtype).
    pub dtype: Option<Dtype>,
    /// Where hub ids are looked up.
    pub hub: HubOptions,
    /// Turn quantized weights (e.g. a GGUF's Q4_1) into float32 at load
    /// instead of multiplying with quantized matmul.
    pub dequantize: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: false,
            dtype: None,
            hub: HubOptions::from_env(),
            dequantize: false,
        }
    }
}

impl LoadOptions {
    /// Strict loading: unknown config keys are errors.
    pub fn strict() -> Self {
        LoadOptions {
            strict: true,
            ..Default::default()
        }
    }
}

/// A loaded model and what was learned while loading it.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn Model>,
    /// The plugin that built it.
    pub architecture: &'static Architecture,
    /// The folder it was loaded from.
    pub dir: PathBuf,
    /// The config (normalized).
    pub config: ModelConfig,
    /// Config keys that were ignored or not understood.
    pub config_keys: ConfigKeyReport,
    /// Every checkpoint tensor's name, shape and dtype, after sanitize.
    pub tensors: Vec<(String, Vec<i32>, Dtype)>,
    /// The GGUF file, when the model came from one.
    pub gguf: Option<PathBuf>,
}

impl LoadedModel {
    /// The model's tokenizer: `tokenizer.json` beside the weights, or the
    /// one a GGUF's metadata describes.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        match &self.gguf {
            Some(path) => gguf::tokenizer_from_gguf(&gguf::GgufHeader::read(path)?),
            None => Tokenizer::from_dir(&self.dir),
        }
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("model_type", &self.architecture.model_type)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Loads a model from a folder, a `.gguf` file or a hub id.
pub fn load_model(model: &str, options: &LoadOptions) -> Result<LoadedModel> {
    let path = Path::new(model);
    if path.is_file() && is_gguf(path) {
        return load_gguf(path, options);
    }
    let dir = hub::resolve(model, &options.hub)?;
    load_model_dir(&dir, options)
}

/// Loads a model from a local folder holding `config.json` and safetensors,
/// or a single `.gguf` file and no `config.json`.
pub fn load_model_dir(dir: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    if !dir.is_dir() {
        return Err(Error::MissingFile {
            path: dir.to_path_buf(),
            what: "a model folder".into(),
        });
    }
    let config_path = dir.join("config.json");
    if !config_path.exists() {
        if let Some(gguf) = single_gguf(dir)? {
            return load_gguf(&gguf, options);
        }
    }
    let config = ModelConfig::from_file(config_path, options.strict)?;
    // An unknown model_type is reported before any weights are read.
    registry::for_config(&config)?;
    let tensors = load_safetensors_dir(dir)?;
    assemble(config, tensors, dir, None, options)
}

/// Loads a model from a GGUF file: its metadata stands in for
/// `config.json`, its tensors (renamed to HF names) for the safetensors.
pub fn load_gguf(path: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    let (_, config, tensors) = gguf::read_checkpoint(path, options.dequantize)?;
    let config = ModelConfig::from_json(config, path.to_path_buf(), options.strict)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    assemble(config, tensors, dir, Some(path), options)
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// The only `.gguf` file in `dir`, if there is exactly one.
fn single_gguf(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && is_gguf(&path) {
            found.push(path);
        }
    }
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// The shared tail of loading: plugin, sanitize, strict weight hand-over.
fn assemble(
    config: ModelConfig,
    tensors: crate::weights::TensorMap,
    dir: &Path,
    gguf: Option<&Path>,
    options: &LoadOptions,
) -> Result<LoadedModel> {
    let architecture = registry::for_config(&config)?;
    let tensors = (architecture.sanitize)(&config, tensors)?;
    let inventory = tensors
        .iter()
        .map(|(name, a)| (name.clone(), a.shape().to_vec(), a.dtype()))
        .collect();
    let source = gguf.unwrap_or(dir).display().to_string();
    let mut weights = Weights::new(tensors, source).with_dtype(options.dtype);
    let model = (architecture.build)(&config, &mut weights)?;
    weights.finish()?;
    let config_keys = config.key_report();
    Ok(LoadedModel {
        model,
        architecture,
        dir: dir.to_path_buf(),
        config,
        config_keys,
        tensors: inventory,
        gguf: gguf.map(Path::to_path_buf),
    })
}

/// The device MLX computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MLX's CPU backend (the Linux CPU wheel).
    Cpu,
    /// A GPU: Metal on Apple silicon, CUDA on Linux.
    Gpu,
}

impl Backend {
    /// The backend of MLX's default device.
    pub fn current() -> Backend {
        let kind = mlx_rs::Device::try_default().and_then(|d| d.get_type());
        match kind {
            Ok(mlx_rs::DeviceType::Gpu) => Backend::Gpu,
            _ => Backend::Cpu,
        }
    }
}

/// The weight dtype a compiled plan runs in, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightDtypeChoice {
    /// The dtype floating-point weights are cast to (`None`: as stored).
    pub dtype: Option<Dtype>,
    /// Why, in a few words (shown by `forge inspect`).
    pub reason: String,
}

/// The weight dtype that runs fastest on `backend`, for a checkpoint of
/// `stored_bytes` bytes of (mostly floating-point) weights on a machine with
/// `memory_bytes` of memory.
///
/// On MLX's CPU backend f32 matmuls run through BLAS while f16 and bf16 ones
/// take a slow fallback (about 5 GFLOP/s here against 160 for f32 with
/// OpenBLAS), so half-precision weights are widened to f32 unless f32
/// weights (at most twice the stored bytes) would take more than 3/4 of the
/// memory. On a GPU the stored dtype is kept.
pub fn fastest_weight_dtype(
    backend: Backend,
    stored_bytes: u64,
    memory_bytes: Option<u64>,
) -> WeightDtypeChoice {
    match backend {
        Backend::Gpu => WeightDtypeChoice {
            dtype: None,
            reason: "the stored dtype runs fastest on a GPU".into(),
        },
        Backend::Cpu => {
            let widened = stored_bytes.saturating_mul(2);
            match memory_bytes {
                Some(memory) if widened > memory / 4 * 3 => WeightDtypeChoice {
                    dtype: None,
                    reason: format!(
                        "f32 weights (up to {:.1} GiB) would not fit in 3/4 of memory \
                         ({:.1} GiB)",
                        gib(widened),
                        gib(memory)
                    ),
                },
                _ => WeightDtypeChoice {
                    dtype: Some(Dtype::Float32),
                    reason: "f32: fastest on MLX's CPU backend (f32 matmuls run through \
                             BLAS, f16/bf16 through a slow fallback)"
                        .into(),
                },
            }
        }
    }
}

/// The weight dtype a caller asks for (the CLI's `--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    /// The fastest on this backend ([`fastest_weight_dtype`]).
    Plan,
    /// As the checkpoint stores them (quantized stays quantized).
    Stored,
    /// Floating-point weights cast to this dtype; float32 also dequantizes
    /// quantized weights (MLX's CPU backend multiplies f32 far faster).
    Fixed(Dtype),
}

/// Loads a model folder, GGUF file or hub id (not strict: unknown config
/// keys are warnings) with its weights in the dtype `request` asks for;
/// returns the model and the choice made.
pub fn load_model_as(
    model: &str,
    request: WeightDtype,
) -> Result<(LoadedModel, WeightDtypeChoice)> {
    let options = LoadOptions::default();
    let path = Path::new(model);
    let resolved = if path.is_file() {
        path.to_path_buf()
    } else {
        hub::resolve(model, &options.hub)?
    };
    let choice = match request {
        WeightDtype::Plan => {
            let stored = if resolved.is_file() {
                std::fs::metadata(&resolved).map(|m| m.len()).unwrap_or(0)
            } else {
                weight_file_bytes(&resolved)
            };
            fastest_weight_dtype(Backend::current(), stored, system_memory_bytes())
        }
        WeightDtype::Stored => WeightDtypeChoice {
            dtype: None,
            reason: "as stored, asked for".into(),
        },
        WeightDtype::Fixed(dtype) => WeightDtypeChoice {
            dtype: Some(dtype),
            reason: format!("{} asked for", format!("{dtype:?}").to_lowercase()),
        },
    };
    let options = LoadOptions {
        dtype: choice.dtype,
        dequantize: choice.dtype == Some(Dtype::Float32),
        ..options
    };
    Ok((load_model(&resolved.to_string_lossy(), &options)?, choice))
}

/// Whether quantized weights should be dequantized on `backend`: on MLX's
/// CPU backend quantized matmuls are far slower than f32 BLAS (about 0.3
/// GFLOP/s for 4-bit here), so yes when `dequantized_bytes` fit in 3/4 of
/// the memory; on a GPU no.
pub fn prefer_dequantized(
    backend: Backend,
    dequantized_bytes: u64,
    memory_bytes: Option<u64>,
) -> bool {
    backend == Backend::Cpu && memory_bytes.is_none_or(|m| dequantized_bytes <= m / 4 * 3)
}

/// Total bytes of the weight files (`*.safetensors`, `*.gguf`) in a model folder.
pub fn weight_file_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "safetensors" || x == "gguf")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The machine's memory in bytes (Linux: `MemTotal` of /proc/meminfo;
/// elsewhere unknown).
pub fn system_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0)
}

#[cfg(test)]
mod dtype_choice_tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn cpu_widens_half_precision_to_f32_when_it_fits() {
        let c = fastest_weight_dtype(Backend::Cpu, 3 * GIB, Some(24 * GIB));
        assert_eq!(c.dtype, Some(Dtype::Float32));
        let c = fastest_weight_dtype(Backend::Cpu, 3 * GIB, None);
        assert_eq!(c.dtype, Some(Dtype::Float32));
    }

    #[test]
    fn cpu_keeps_the_stored_dtype_when_f32_would_not_fit() {
        let c = fastest_weight_dtype(Backend::Cpu, 10 * GIB, Some(24 * GIB));
        assert_eq!(c.dtype, None);
        assert!(c.reason.contains("would not fit"), "{}", c.reason);
    }

    #[test]
    fn gpu_keeps_the_stored_dtype() {
        let c = fastest_weight_dtype(Backend::Gpu, GIB, Some(64 * GIB));
        assert_eq!(c.dtype, None);
    }

    #[test]
    fn dequantize_on_cpu_only_when_it_fits() {
        assert!(prefer_dequantized(Backend::Cpu, 2 * GIB, Some(8 * GIB)));
        assert!(!prefer_dequantized(Backend::Cpu, 7 * GIB, Some(8 * GIB)));
        assert!(!prefer_dequantized(Backend::Gpu, GIB, Some(8 * GIB)));
    }
}
