//! `forge inspect`: the compiled plan of a checkpoint.

use std::collections::BTreeMap;

use forge_core::{load_model, LoadOptions};

/// Loads `model` (not strict, so unknown keys are shown rather than fatal)
/// and prints its plan.
pub fn run(model: &str, context: usize) -> anyhow::Result<()> {
    let loaded = load_model(model, &LoadOptions::default())?;
    print!("{}", render(&loaded, context));
    Ok(())
}

/// The plan as text.
pub fn render(loaded: &forge_core::LoadedModel, context: usize) -> String {
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
    let params: usize = loaded
        .tensors
        .iter()
        .map(|(_, shape, _)| shape.iter().map(|&d| d as usize).product::<usize>())
        .sum();
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
    out
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
