//! `forge inspect`: the compiled plan of a checkpoint.

use std::collections::BTreeMap;

use forge_core::loader::{load_model_as, WeightDtype};
use forge_core::mlx_rs::Dtype;

/// Loads `model` (not strict, so unknown keys are shown rather than fatal)
/// and prints its plan.
pub fn run(model: &str, context: usize, dtype: DtypeFlag) -> anyhow::Result<()> {
    let (loaded, mut choice) = load_model_as(model, dtype.request())?;
    if dtype != DtypeFlag::Plan {
        choice.reason = format!("--dtype {dtype}");
    }
    print!("{}", render(&loaded, context)?);
    let run = match choice.dtype {
        Some(dtype) => format!("{dtype:?}").to_lowercase(),
        None => "as stored".to_string(),
    };
    println!("{:<20} {run} ({})", "run dtype", choice.reason);
    Ok(())
}

/// `--dtype`: the weight dtype to run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeFlag {
    /// The fastest on this backend (see `forge_core::loader::fastest_weight_dtype`).
    Plan,
    /// As the checkpoint stores them (quantized stays quantized).
    Stored,
    /// float32 (quantized weights dequantized).
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

impl std::fmt::Display for DtypeFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DtypeFlag::Plan => "plan",
            DtypeFlag::Stored => "stored",
            DtypeFlag::F32 => "f32",
            DtypeFlag::Bf16 => "bf16",
            DtypeFlag::F16 => "f16",
        })
    }
}

impl DtypeFlag {
    /// The request it stands for.
    pub fn request(self) -> WeightDtype {
        match self {
            DtypeFlag::Plan => WeightDtype::Plan,
            DtypeFlag::Stored => WeightDtype::Stored,
            DtypeFlag::F32 => WeightDtype::Fixed(Dtype::Float32),
            DtypeFlag::Bf16 => WeightDtype::Fixed(Dtype::Bfloat16),
            DtypeFlag::F16 => WeightDtype::Fixed(Dtype::Float16),
        }
    }
}

/// The plan as text.
pub fn render(loaded: &forge_core::LoadedModel, context: usize) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<20} {value}\n"));
    line("model", loaded.dir.display().to_string());
    line(
        "plugin",
        format!(
            "{} ({})",
            loaded.architecture.model_type, loaded.architecture.description
        ),
    );
    for item in loaded.model.plan() {
        line(&item.label, item.value);
    }
    // A GGUF's header knows each tensor's logical size and storage type;
    // packed quantized arrays would undercount the parameters.
    let header = match &loaded.gguf {
        Some(path) => Some(forge_core::gguf::GgufHeader::read(path)?),
        None => None,
    };
    let params: usize = match &header {
        Some(h) => h.tensors.iter().map(|t| t.elements() as usize).sum(),
        None => loaded
            .tensors
            .iter()
            .map(|(_, shape, _)| shape.iter().map(|&d| d as usize).product::<usize>())
            .sum(),
    };
    let bytes: usize = loaded
        .tensors
        .iter()
        .map(|(_, shape, dtype)| {
            shape.iter().map(|&d| d as usize).product::<usize>() * dtype_bytes(*dtype)
        })
        .sum();
    let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, dtype) in &loaded.tensors {
        *dtypes
            .entry(format!("{dtype:?}").to_lowercase())
            .or_default() += 1;
    }
    let dtypes: Vec<String> = dtypes
        .iter()
        .map(|(d, n)| format!("{d} ({n} tensors)"))
        .collect();
    line(
        "parameters",
        format!("{params} ({})", human(params as f64, "")),
    );
    line("weight dtypes", dtypes.join(", "));
    if let Some(h) = &header {
        line(
            "gguf tensor types",
            forge_core::gguf::describe_quantization(h),
        );
    }
    line("weight memory", human_bytes(bytes));
    let kv = loaded.model.kv_bytes_per_token() * context;
    line(
        &format!("kv cache @{context}"),
        format!("{} (batch 1)", human_bytes(kv)),
    );
    let keys = &loaded.config_keys;
    line(
        "config ignored",
        if keys.ignored.is_empty() {
            "none".into()
        } else {
            keys.ignored.join(", ")
        },
    );
    line(
        "config UNKNOWN",
        if keys.unknown.is_empty() {
            "none".into()
        } else {
            format!("{} (may change numerics!)", keys.unknown.join(", "))
        },
    );
    Ok(out)
}

fn dtype_bytes(dtype: forge_core::mlx_rs::Dtype) -> usize {
    use forge_core::mlx_rs::Dtype::*;
    match dtype {
        Bool | Uint8 | Int8 => 1,
        Uint16 | Int16 | Float16 | Bfloat16 => 2,
        Uint32 | Int32 | Float32 => 4,
        _ => 8,
    }
}

fn human(v: f64, unit: &str) -> String {
    let (v, suffix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "K")
    } else {
        (v, "")
    };
    format!("{v:.2}{suffix}{unit}")
}

fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.2} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}
