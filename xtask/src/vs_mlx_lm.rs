//! `cargo xtask bench --vs mlx-lm`: the same workloads (forge_benches::measure
//! and benches/mlx_lm_bench.py) on the same random checkpoints, run by Forge
//! and by mlx-lm 0.32.2 (pinned to the same MLX 0.32.2, in its own venv
//! .forge/mlx-lm-venv), in one run; prints Forge/mlx-lm ratios.
//!
//! Two kinds of rows:
//! - apples to apples: the same weight dtype on both sides and the same BLAS
//!   (mlx-lm's process gets Debian's OpenBLAS ahead of the wheel's reference
//!   BLAS, as Forge's binaries link it);
//! - defaults against defaults: Forge's plan (f32 with OpenBLAS on the CPU
//!   backend) against mlx-lm as pip installs it (the checkpoint's bf16, the
//!   wheel's bundled BLAS).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bench::{self, Options};
use crate::say;
use crate::util::{self, repo_root, Error, Result};

const TAG: &str = "bench --vs mlx-lm";
const MLX_VERSION: &str = "0.32.2";
const MLX_LM_VERSION: &str = "0.32.2";
const DEFAULT_SHAPES: &str = "llama-135m,qwen3-small,gemma2-small";
const PROMPTS: &str = "128,1024";
const DECODE: &str = "16";
const REPEATS: &str = "3";
/// The workload flags both bench programs take.
const WORKLOAD_ARGS: [&str; 6] = [
    "--prompts",
    PROMPTS,
    "--decode",
    DECODE,
    "--repeats",
    REPEATS,
];

/// One comparison: how each side runs.
struct Pairing {
    name: &'static str,
    label: &'static str,
    forge_dtype: &'static str,
    mlx_lm_dtype: &'static str,
    same_blas: bool,
}

const PAIRINGS: &[Pairing] = &[
    Pairing {
        name: "f32",
        label: "f32, same BLAS",
        forge_dtype: "f32",
        mlx_lm_dtype: "f32",
        same_blas: true,
    },
    Pairing {
        name: "bf16",
        label: "bf16, same BLAS",
        forge_dtype: "bf16",
        mlx_lm_dtype: "bf16",
        same_blas: true,
    },
    Pairing {
        name: "defaults",
        label: "defaults",
        forge_dtype: "plan",
        mlx_lm_dtype: "stored",
        same_blas: false,
    },
];

/// The venv holding mlx-lm.
fn venv() -> PathBuf {
    repo_root().join(".forge/mlx-lm-venv")
}

/// Makes the mlx-lm venv unless it already imports the pinned versions.
fn ensure_venv() -> Result<PathBuf> {
    let python = venv().join("bin/python");
    let check = format!(
        "import mlx.core as mx, importlib.metadata as m; \
         assert mx.__version__ == '{MLX_VERSION}', mx.__version__; \
         assert m.version('mlx-lm') == '{MLX_LM_VERSION}'"
    );
    if util::probe(&python, &["-c", &check]).is_some() {
        return Ok(python);
    }
    say!(
        TAG,
        "making {} (mlx-lm {MLX_LM_VERSION}, mlx {MLX_VERSION})",
        util::shown(&venv())
    );
    util::run(
        TAG,
        &mut bench::command("python3", &["-m", "venv", &venv().display().to_string()]),
    )?;
    let constraints = venv().join("constraints.txt");
    let pins = format!("mlx=={MLX_VERSION}\nmlx-cpu=={MLX_VERSION}\nmlx-metal=={MLX_VERSION}\n");
    fs::write(&constraints, pins)
        .map_err(|e| Error::new(format!("{}: {e}", constraints.display())))?;
    let mlx = if cfg!(target_os = "linux") {
        format!("mlx[cpu]=={MLX_VERSION}")
    } else {
        format!("mlx=={MLX_VERSION}")
    };
    util::run(
        TAG,
        &mut bench::command(
            &python,
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                &mlx,
                &format!("mlx-lm=={MLX_LM_VERSION}"),
                "-c",
                &constraints.display().to_string(),
            ],
        ),
    )?;
    match util::probe(&python, &["-c", &check]) {
        Some(_) => Ok(python),
        None => Err(Error::new(format!(
            "{} does not import mlx {MLX_VERSION} and mlx-lm {MLX_LM_VERSION} after pip install",
            util::shown(&venv())
        ))),
    }
}

/// Runs both sides for every pairing and prints the table.
pub fn run(options: &Options) -> Result<u8> {
    let python = ensure_venv()?;
    let shapes = options
        .shapes
        .clone()
        .unwrap_or_else(|| DEFAULT_SHAPES.to_string());
    let out = bench::out_dir().join("vs-mlx-lm");
    let wanted = |p: &Pairing| match &options.pairings {
        Some(list) => list.split(',').any(|n| n.trim() == p.name),
        None => true,
    };
    let mut rows = Vec::new();
    for pairing in PAIRINGS.iter().filter(|p| wanted(p)) {
        let forge_json = out.join(format!("forge-{}.json", pairing.forge_dtype));
        let mut cmd = util::cargo();
        cmd.current_dir(repo_root())
            .args([
                "run",
                "--quiet",
                "-p",
                "forge-benches",
                "--bin",
                "forge-bench",
            ])
            .args(bench::profile_args(options))
            .args(["--", "--shapes", &shapes, "--dtype", pairing.forge_dtype])
            .args(WORKLOAD_ARGS)
            .arg("--json")
            .arg(&forge_json);
        fs::create_dir_all(&out).map_err(|e| Error::new(format!("{}: {e}", out.display())))?;
        util::run(TAG, &mut cmd)?;
        let forge = bench::read_json(&forge_json)?;
        for model in forge["models"].as_array().into_iter().flatten() {
            let shape = model["shape"].as_str().unwrap_or_default();
            let dir = PathBuf::from(model["dir"].as_str().unwrap_or_default());
            let mlx_json = out.join(format!("mlx-lm-{shape}-{}.json", pairing.mlx_lm_dtype));
            run_mlx_lm(&python, shape, &dir, pairing, &mlx_json)?;
            let mlx = bench::read_json(&mlx_json)?;
            rows.extend(join(pairing.label, shape, &forge, &mlx));
        }
    }
    let table = render(&rows);
    let machine = bench::machine();
    let text = format!(
        "Machine: {}, {} cores, {} GiB, MLX {MLX_VERSION} CPU backend; Forge links {}.\n\
         Workloads: random bf16 checkpoints (seed {}), prefill of 128 and 1024 prompt tokens, \
         {DECODE} decode tokens after a 128-token prompt; median of up to {REPEATS} runs.\n\n{table}",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["memory_gib"],
        machine["blas"].as_str().unwrap_or("?"),
        2024,
    );
    print!("{text}");
    let path = out.join("table.md");
    fs::write(&path, &text).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    say!(TAG, "wrote {}", util::shown(&path));
    Ok(0)
}

fn run_mlx_lm(
    python: &Path,
    shape: &str,
    dir: &Path,
    pairing: &Pairing,
    json: &Path,
) -> Result<()> {
    let config = bench::read_json(&dir.join("config.json"))?;
    let vocab = config["vocab_size"].as_u64().unwrap_or(0).to_string();
    let script = repo_root().join("benches/mlx_lm_bench.py");
    let mut cmd = bench::command(python, &[]);
    cmd.arg(script)
        .args(["--model", &dir.display().to_string(), "--shape", shape])
        .args(["--vocab", &vocab, "--dtype", pairing.mlx_lm_dtype])
        .args(WORKLOAD_ARGS)
        .arg("--json")
        .arg(json);
    if pairing.same_blas {
        match bench::openblas() {
            Some(lib) => {
                cmd.env("LD_PRELOAD", lib);
            }
            None => say!(
                TAG,
                "no OpenBLAS installed: both sides use the wheel's BLAS"
            ),
        }
    }
    util::run(TAG, &mut cmd)
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// "f32, same BLAS" or "defaults".
    pub pairing: String,
    /// The model shape.
    pub shape: String,
    /// "prefill 128", "decode 16".
    pub workload: String,
    /// Forge tokens per second.
    pub forge: f64,
    /// mlx-lm tokens per second.
    pub mlx_lm: f64,
    /// Peak memory, bytes: Forge, mlx-lm.
    pub peaks: (f64, f64),
}

/// Matches the runs of both sides by shape and workload.
pub fn join(pairing: &str, shape: &str, forge: &Value, mlx: &Value) -> Vec<Row> {
    let runs = |v: &Value| -> Vec<Value> {
        v["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["shape"] == shape)
            .cloned()
            .collect()
    };
    let theirs = runs(mlx);
    runs(forge)
        .iter()
        .filter_map(|f| {
            let m = theirs
                .iter()
                .find(|m| m["workload"] == f["workload"] && m["tokens"] == f["tokens"])?;
            Some(Row {
                pairing: pairing.to_string(),
                shape: shape.to_string(),
                workload: format!("{} {}", f["workload"].as_str()?, f["tokens"]),
                forge: f["tok_per_s"].as_f64()?,
                mlx_lm: m["tok_per_s"].as_f64()?,
                peaks: (f["peak_bytes"].as_f64()?, m["peak_bytes"].as_f64()?),
            })
        })
        .collect()
}

/// The rows as a markdown table.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| model | dtypes | workload | Forge tok/s | mlx-lm tok/s | Forge/mlx-lm | Forge peak | mlx-lm peak | peak ratio |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2}× | {} | {} | {:.2} |\n",
            r.shape,
            r.pairing,
            r.workload,
            r.forge,
            r.mlx_lm,
            r.forge / r.mlx_lm,
            mib(r.peaks.0),
            mib(r.peaks.1),
            r.peaks.0 / r.peaks.1
        ));
    }
    out
}

fn mib(bytes: f64) -> String {
    format!("{:.0} MiB", bytes / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_are_matched_by_shape_and_workload() {
        let run = |w: &str, t: u64, rate: f64, peak: u64| json!({"shape": "s", "workload": w, "tokens": t, "tok_per_s": rate, "peak_bytes": peak});
        let forge = json!({"runs": [run("prefill", 128, 200.0, 1 << 30), run("decode", 16, 20.0, 1 << 30)]});
        let mlx =
            json!({"runs": [run("decode", 16, 10.0, 1 << 29), run("prefill", 128, 20.0, 1 << 29)]});
        let rows = join("defaults", "s", &forge, &mlx);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].workload, "prefill 128");
        assert_eq!((rows[0].forge, rows[0].mlx_lm), (200.0, 20.0));
        let table = render(&rows);
        assert!(table.contains("| s | defaults | prefill 128 | 200.0 | 20.0 | 10.00× | 1024 MiB | 512 MiB | 2.00 |"), "{table}");
        assert!(
            table.contains("| decode 16 | 20.0 | 10.0 | 2.00× |"),
            "{table}"
        );
    }
}
