//! `cargo xtask bench`: runs the criterion benches of forge-benches, writes
//! their results as JSON, and compares them with the committed baseline of
//! this kind of machine; `--vs mlx-lm` runs mlx-lm on the same checkpoints
//! and prints Forge/mlx-lm ratios.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::say;
use crate::setup::{self, Options as SetupOptions};
use crate::util::{self, repo_root, Error, Result};

const TAG: &str = "bench";

/// The smallest change ever called a regression, whatever the noise.
const MIN_THRESHOLD: f64 = 0.05;
/// A change is a regression beyond this many times the measured noise.
const NOISE_MULTIPLE: f64 = 3.0;

/// What `cargo xtask bench` was asked for.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    /// Only the tiny shapes (seconds).
    pub quick: bool,
    /// Build the benches with the dev profile (quick to build, slower Rust
    /// side) instead of release.
    pub dev: bool,
    /// Shapes to run (comma-separated names), instead of the default set.
    pub shapes: Option<String>,
    /// Store the results as this baseline of the machine kind.
    pub save_baseline: Option<String>,
    /// Compare with this baseline (default: `default`, when committed).
    pub compare: Option<String>,
    /// Run mlx-lm on the same checkpoints instead (`mlx-lm`).
    pub vs: Option<String>,
    /// With `--vs`: only these comparisons (`f32`, `bf16`, `defaults`).
    pub pairings: Option<String>,
}

impl Options {
    /// Parses the command's arguments.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| Error::new(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--quick" => o.quick = true,
                "--dev" => o.dev = true,
                "--shapes" => o.shapes = Some(value("--shapes")?),
                "--save-baseline" => o.save_baseline = Some(value("--save-baseline")?),
                "--compare" => o.compare = Some(value("--compare")?),
                "--vs" => o.vs = Some(value("--vs")?),
                "--pairings" => o.pairings = Some(value("--pairings")?),
                other => {
                    return Err(Error::new(format!(
                        "unexpected argument `{other}` (usage: cargo xtask bench [--quick] \
                         [--dev] [--shapes A,B] [--save-baseline NAME] [--compare NAME] \
                         [--vs mlx-lm [--pairings f32,bf16,defaults]])"
                    )))
                }
            }
        }
        if let Some(vs) = &o.vs {
            if vs != "mlx-lm" {
                return Err(Error::new(format!(
                    "--vs {vs}: only mlx-lm can be compared with"
                )));
            }
        }
        Ok(o)
    }
}

/// The command.
pub fn bench(args: &[String]) -> Result<u8> {
    let options = Options::parse(args)?;
    setup::setup(SetupOptions::default())?;
    if options.vs.is_some() {
        return crate::vs_mlx_lm::run(&options);
    }
    let out = out_dir();
    run_criterion(&options, &out)?;
    let results = results_json(&collect(&target_dir().join("criterion"), &out)?, &options);
    let path = out.join("results.json");
    write_json(&path, &results)?;
    say!(TAG, "wrote {}", util::shown(&path));

    let kind = machine_kind();
    let baselines = repo_root().join("benches/baselines").join(&kind);
    if let Some(name) = &options.save_baseline {
        let file = baselines.join(format!("{name}.json"));
        write_json(&file, &results)?;
        say!(TAG, "saved baseline {}", util::shown(&file));
    }
    let compare = options.compare.clone().or_else(|| {
        let default = baselines.join("default.json");
        (options.save_baseline.is_none() && default.exists()).then(|| "default".to_string())
    });
    let Some(name) = compare else {
        return Ok(0);
    };
    let file = baselines.join(format!("{name}.json"));
    let baseline = read_json(&file).map_err(|e| {
        Error::new(format!(
            "{e}\n(no baseline `{name}` for machine kind `{kind}`: make one with \
             `cargo xtask bench --save-baseline {name}`)"
        ))
    })?;
    let changes = compare_results(&baseline, &results);
    print!("{}", render_changes(&name, &changes));
    let regressions = changes.iter().filter(|c| c.regression).count();
    if regressions > 0 {
        say!(
            TAG,
            "{regressions} regression(s) beyond the noise threshold"
        );
        return Ok(1);
    }
    Ok(0)
}

/// Where cargo builds: `$CARGO_TARGET_DIR`, else `target/` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where bench outputs go.
pub fn out_dir() -> PathBuf {
    target_dir().join("forge-bench")
}

/// The cargo profile flags of a bench build.
pub fn profile_args(options: &Options) -> [&'static str; 2] {
    if options.dev {
        ["--profile", "dev"]
    } else {
        ["--profile", "release"]
    }
}

fn run_criterion(options: &Options, out: &Path) -> Result<()> {
    // Old results of benches that are no longer run must not be reported.
    let criterion = target_dir().join("criterion");
    if criterion.exists() {
        fs::remove_dir_all(&criterion)
            .map_err(|e| Error::new(format!("{}: {e}", criterion.display())))?;
    }
    let _ = fs::remove_file(out.join("peak_memory.json"));
    let mut cmd = util::cargo();
    cmd.current_dir(repo_root())
        .args(["bench", "-p", "forge-benches"])
        .args(profile_args(options))
        .env("FORGE_BENCH_OUT", out);
    if options.quick {
        cmd.env("FORGE_BENCH_QUICK", "1");
    }
    if let Some(shapes) = &options.shapes {
        cmd.env("FORGE_BENCH_SHAPES", shapes);
    }
    util::run(TAG, &mut cmd)
}

/// One bench's result.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Criterion's id ("llama-135m/prefill/128").
    pub id: String,
    /// Mean time per iteration, seconds.
    pub mean_s: f64,
    /// Relative spread of the per-iteration times over the samples
    /// (standard deviation / mean): the noise of this bench on this machine.
    pub noise: f64,
    /// Elements (tokens, FLOPs) per iteration, when the bench states them.
    pub elements: Option<u64>,
    /// MLX's peak memory over the bench, when recorded.
    pub peak_bytes: Option<u64>,
}

/// Reads every bench result under criterion's output folder, with the peak
/// memory the model benches recorded in `out`.
pub fn collect(criterion: &Path, out: &Path) -> Result<Vec<BenchResult>> {
    let peaks = read_json(&out.join("peak_memory.json")).unwrap_or(Value::Null);
    let mut dirs = Vec::new();
    find_new_dirs(criterion, &mut dirs);
    let mut results = Vec::new();
    for dir in dirs {
        let benchmark = read_json(&dir.join("benchmark.json"))?;
        let sample = read_json(&dir.join("sample.json"))?;
        let id = benchmark["full_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let per_iter: Vec<f64> = sample["times"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(sample["iters"].as_array().into_iter().flatten())
            .filter_map(|(t, n)| Some(t.as_f64()? / n.as_f64()? / 1e9))
            .collect();
        if per_iter.is_empty() {
            return Err(Error::new(format!("{}: no samples", dir.display())));
        }
        let (mean, noise) = mean_and_noise(&per_iter);
        results.push(BenchResult {
            elements: benchmark["throughput"]["Elements"].as_u64(),
            peak_bytes: peaks[&id].as_u64(),
            id,
            mean_s: mean,
            noise,
        });
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(results)
}

fn find_new_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") && path.join("benchmark.json").exists() {
            out.push(path);
        } else {
            find_new_dirs(&path, out);
        }
    }
}

/// Mean and relative standard deviation.
pub fn mean_and_noise(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let noise = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    (mean, noise)
}

fn results_json(results: &[BenchResult], options: &Options) -> Value {
    let benches: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "mean_s": r.mean_s,
                "noise": r.noise,
                "elements": r.elements,
                "per_s": r.elements.map(|e| e as f64 / r.mean_s),
                "peak_bytes": r.peak_bytes,
            })
        })
        .collect();
    json!({
        "format": 1,
        "machine": machine(),
        "profile": profile_args(options)[1],
        "benches": benches,
    })
}

/// One bench compared with its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The bench.
    pub id: String,
    /// Baseline mean time, seconds.
    pub before_s: f64,
    /// New mean time, seconds.
    pub after_s: f64,
    /// Relative change of the time (+0.10 = 10% slower).
    pub change: f64,
    /// The change allowed by the noise of both runs.
    pub threshold: f64,
    /// Slower beyond the threshold.
    pub regression: bool,
}

/// Compares two results files bench by bench (benches in only one of them
/// are skipped). The threshold of a bench is 3× the larger of its two
/// measured noises, and at least 5%.
pub fn compare_results(baseline: &Value, new: &Value) -> Vec<Change> {
    let index = |v: &Value| -> BTreeMap<String, (f64, f64)> {
        v["benches"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                Some((
                    b["id"].as_str()?.to_string(),
                    (b["mean_s"].as_f64()?, b["noise"].as_f64().unwrap_or(0.0)),
                ))
            })
            .collect()
    };
    let before = index(baseline);
    index(new)
        .into_iter()
        .filter_map(|(id, (after_s, after_noise))| {
            let (before_s, before_noise) = *before.get(&id)?;
            let change = after_s / before_s - 1.0;
            let threshold = (NOISE_MULTIPLE * before_noise.max(after_noise)).max(MIN_THRESHOLD);
            Some(Change {
                id,
                before_s,
                after_s,
                change,
                threshold,
                regression: change > threshold,
            })
        })
        .collect()
}

/// The comparison as a table.
pub fn render_changes(name: &str, changes: &[Change]) -> String {
    let width = changes.iter().map(|c| c.id.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "compared with baseline `{name}`\n{:<width$}  {:>10}  {:>10}  {:>8}  {:>9}  verdict\n",
        "bench", "before", "after", "change", "threshold"
    );
    for c in changes {
        let verdict = if c.regression {
            "REGRESSION"
        } else if c.change < -c.threshold {
            "faster"
        } else {
            "same"
        };
        out.push_str(&format!(
            "{:<width$}  {:>10}  {:>10}  {:>+7.1}%  {:>8.1}%  {verdict}\n",
            c.id,
            seconds(c.before_s),
            seconds(c.after_s),
            c.change * 100.0,
            c.threshold * 100.0
        ));
    }
    out
}

fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The kind of machine baselines are kept per: OS, CPU architecture, core
/// count and MLX backend ("linux-x86_64-2cores-mlx-cpu").
pub fn machine_kind() -> String {
    format!(
        "{}-{}-{}cores-{}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        cores(),
        backend()
    )
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn backend() -> &'static str {
    if cfg!(target_os = "macos") {
        return "metal";
    }
    let mlx = repo_root().join(".forge/mlx");
    let has = |name: &str| {
        fs::read_dir(&mlx)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(name))
    };
    if has("mlx_cuda") {
        "mlx-cuda"
    } else {
        "mlx-cpu"
    }
}

/// The machine, described for the results file and the README.
pub fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| (k / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    json!({
        "kind": machine_kind(),
        "cpu": cpu,
        "cores": cores(),
        "memory_gib": memory_gib,
        "backend": backend(),
        "blas": blas(),
    })
}

/// The BLAS the binaries link (see build-support/rustc-wrapper.sh).
pub fn blas() -> &'static str {
    if openblas().is_some() && std::env::var_os("FORGE_NO_OPENBLAS").is_none() {
        "OpenBLAS (Debian)"
    } else if cfg!(target_os = "macos") {
        "Accelerate"
    } else {
        "reference BLAS bundled in the MLX wheel"
    }
}

/// Debian's OpenBLAS library, when installed.
pub fn openblas() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

/// Writes a JSON file (pretty), making its folder.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    fs::write(path, text).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

/// A command that runs `program` with `args` from the repository root.
pub fn command(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(repo_root());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(benches: &[(&str, f64, f64)]) -> Value {
        json!({"benches": benches.iter().map(|(id, mean, noise)| {
            json!({"id": id, "mean_s": mean, "noise": noise})
        }).collect::<Vec<_>>()})
    }

    #[test]
    fn a_slowdown_beyond_the_noise_is_a_regression() {
        let before = results(&[
            ("a", 1.0, 0.01),
            ("b", 1.0, 0.10),
            ("c", 1.0, 0.01),
            ("gone", 1.0, 0.0),
        ]);
        let after = results(&[
            ("a", 1.2, 0.01),
            ("b", 1.2, 0.02),
            ("c", 0.5, 0.01),
            ("new", 1.0, 0.0),
        ]);
        let changes = compare_results(&before, &after);
        let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        // a: +20% against a 5% floor (noise 1% × 3 is below it).
        assert!(changes[0].regression);
        assert!((changes[0].threshold - MIN_THRESHOLD).abs() < 1e-12);
        // b: +20% is within 3 × 10% noise.
        assert!(!changes[1].regression);
        assert!((changes[1].threshold - 0.30).abs() < 1e-12);
        // c: twice as fast.
        assert!(!changes[2].regression);
        let table = render_changes("default", &changes);
        assert!(
            table.contains("REGRESSION") && table.contains("faster"),
            "{table}"
        );
    }

    #[test]
    fn noise_is_the_relative_spread() {
        let (mean, noise) = mean_and_noise(&[1.0, 1.0, 1.0]);
        assert_eq!((mean, noise), (1.0, 0.0));
        let (mean, noise) = mean_and_noise(&[1.0, 3.0]);
        assert_eq!(mean, 2.0);
        assert!((noise - 2f64.sqrt() / 2.0).abs() < 1e-12);
    }

    #[test]
    fn criterion_output_is_collected_with_peak_memory() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("criterion/llama-tiny/prefill/128/new");
        fs::create_dir_all(&new).unwrap();
        let write = |p: PathBuf, v: Value| fs::write(p, v.to_string()).unwrap();
        write(
            new.join("benchmark.json"),
            json!({"full_id": "llama-tiny/prefill/128", "throughput": {"Elements": 128}}),
        );
        write(
            new.join("sample.json"),
            json!({"iters": [1.0, 2.0], "times": [1.0e9, 2.0e9]}),
        );
        write(
            dir.path().join("peak_memory.json"),
            json!({"llama-tiny/prefill/128": 1000}),
        );
        let results = collect(&dir.path().join("criterion"), dir.path()).unwrap();
        assert_eq!(
            results,
            vec![BenchResult {
                id: "llama-tiny/prefill/128".into(),
                mean_s: 1.0,
                noise: 0.0,
                elements: Some(128),
                peak_bytes: Some(1000),
            }]
        );
    }

    #[test]
    fn options() {
        let o = Options::parse(&["--save-baseline".into(), "x".into(), "--quick".into()]).unwrap();
        assert_eq!(o.save_baseline.as_deref(), Some("x"));
        assert!(o.quick);
        assert!(Options::parse(&["--vs".into(), "llama.cpp".into()]).is_err());
        assert!(Options::parse(&["--compare".into()]).is_err());
    }
}
