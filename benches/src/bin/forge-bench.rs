//! `forge-bench`: the model workloads of forge_benches::measure as plain
//! timed runs with JSON output (the same JSON benches/mlx_lm_bench.py
//! writes), for `cargo xtask bench --vs mlx-lm`.
//!
//! ```text
//! forge-bench --shapes llama-135m --dtype plan --prompts 128,1024 --decode 16 --repeats 3 --json out.json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use forge_benches::measure::{decode, peak_memory, prefill, prompt, reset_peak_memory};
use forge_benches::{checkpoint, shapes, DtypeMode};
use serde_json::{json, Value};

struct Args {
    shapes: Vec<String>,
    dtype: String,
    prompts: Vec<usize>,
    decode: usize,
    repeats: usize,
    json: Option<PathBuf>,
    write_only: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        shapes: vec!["llama-135m".into()],
        dtype: "plan".into(),
        prompts: vec![128, 1024],
        decode: 16,
        repeats: 3,
        json: None,
        write_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--write-checkpoints" {
            args.write_only = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--shapes" => args.shapes = value.split(',').map(str::to_string).collect(),
            "--dtype" => args.dtype = value,
            "--prompts" => args.prompts = value.split(',').map(number).collect::<Result<_, _>>()?,
            "--decode" => args.decode = number(&value)?,
            "--repeats" => args.repeats = number(&value)?.max(1),
            "--json" => args.json = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// Runs `f` up to `repeats` times (once when a run takes over 20 s) and
/// returns every time.
fn repeat(
    repeats: usize,
    mut f: impl FnMut() -> forge_core::Result<Duration>,
) -> forge_core::Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = f()?.as_secs_f64();
        times.push(t);
        if t > 20.0 {
            break;
        }
    }
    Ok(times)
}

fn median(times: &[f64]) -> f64 {
    let mut v = times.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn row(
    shape: &str,
    dtype: &str,
    workload: &str,
    tokens: usize,
    times: &[f64],
    peak: usize,
) -> Value {
    json!({
        "shape": shape, "dtype": dtype, "workload": workload, "tokens": tokens,
        "seconds": times, "tok_per_s": tokens as f64 / median(times), "peak_bytes": peak,
    })
}

fn run(args: &Args) -> Result<Value, String> {
    let mode = DtypeMode::parse(&args.dtype).ok_or(format!(
        "--dtype {}: expected plan, stored, f32, bf16 or f16",
        args.dtype
    ))?;
    let mut rows = Vec::new();
    let mut models = Vec::new();
    for name in &args.shapes {
        let shape = shapes::by_name(name).ok_or(format!("no bench shape `{name}`"))?;
        if args.write_only {
            let dir = checkpoint::ensure(&shape).map_err(|e| e.to_string())?;
            models.push(json!({"shape": name, "dir": dir}));
            continue;
        }
        let loaded = forge_benches::load(&shape, mode).map_err(|e| e.to_string())?;
        let model = loaded.model.as_ref();
        let dtype = format!("{:?}", mode.resolve(&loaded.dir)).to_lowercase();
        models.push(json!({"shape": name, "dir": loaded.dir, "dtype": dtype}));
        let err = |e: forge_core::Error| e.to_string();
        for &t in &args.prompts {
            let tokens = prompt(t, shape.vocab_size());
            reset_peak_memory();
            let times =
                repeat(args.repeats, || prefill(model, &tokens).map(|r| r.time)).map_err(err)?;
            eprintln!(
                "[forge-bench] {name} {} prefill {t}: {:.1} tok/s",
                args.dtype,
                t as f64 / median(&times)
            );
            rows.push(row(name, &args.dtype, "prefill", t, &times, peak_memory()));
        }
        let tokens = prompt(forge_benches::workloads::DECODE_PROMPT, shape.vocab_size());
        reset_peak_memory();
        let times = repeat(args.repeats, || {
            let mut p = prefill(model, &tokens)?;
            decode(model, &mut p.cache, p.next, args.decode)
        })
        .map_err(err)?;
        eprintln!(
            "[forge-bench] {name} {} decode {}: {:.1} tok/s",
            args.dtype,
            args.decode,
            args.decode as f64 / median(&times)
        );
        rows.push(row(
            name,
            &args.dtype,
            "decode",
            args.decode,
            &times,
            peak_memory(),
        ));
    }
    Ok(json!({"engine": "forge", "models": models, "runs": rows}))
}

fn main() -> ExitCode {
    let result = parse().and_then(|args| {
        let out = run(&args)?;
        let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
        match &args.json {
            Some(path) => {
                std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
            }
            None => {
                println!("{text}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
