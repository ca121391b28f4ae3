//! Model throughput per shape (see forge_benches::shapes and ::workloads):
//! prefill tok/s at 128 and 1024 prompt tokens, decode tok/s, and MLX's peak
//! memory (written to target/forge-bench/peak_memory.json).
//!
//! Then the real checkpoints that are present (the SmolLM2 Q4_1 GGUF).
//!
//! `cargo xtask bench` runs this; `FORGE_BENCH_QUICK=1` keeps to the tiny
//! shapes; `FORGE_BENCH_SHAPES=llama-135m,smollm2-135m-q4_1-gguf` picks
//! shapes and real checkpoints by name.

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use forge_benches::measure::{decode, peak_memory, prefill, prompt, reset_peak_memory};
use forge_benches::workloads::{selected_shapes, DECODE_PROMPT, DECODE_TOKENS, PREFILL_TOKENS};
use forge_benches::{DtypeMode, PeakLog};
use forge_core::Model;

fn models(c: &mut Criterion) {
    let quick = std::env::var_os("FORGE_BENCH_QUICK").is_some();
    let mut peaks = PeakLog::default();
    for shape in selected_shapes(quick) {
        let loaded = forge_benches::load(&shape, DtypeMode::from_env())
            .unwrap_or_else(|e| panic!("cannot load the {} bench model: {e}", shape.name));
        bench_model(c, shape.name, loaded.model.as_ref(), &mut peaks);
    }
    let shapes = std::env::var("FORGE_BENCH_SHAPES").ok();
    let wanted = |name: &str| match &shapes {
        Some(list) => list.split(',').any(|n| n.trim() == name),
        None => !quick,
    };
    let real = forge_benches::real_checkpoints();
    for (name, path) in real.into_iter().filter(|(name, _)| wanted(name)) {
        let loaded = forge_benches::load_file(&path, DtypeMode::from_env())
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        bench_model(c, name, loaded.model.as_ref(), &mut peaks);
    }
    if let Err(e) = peaks.save() {
        eprintln!("warning: peak memory not saved: {e}");
    }
}

/// Prefill at each prompt length and decode, for one model.
fn bench_model(c: &mut Criterion, name: &str, model: &dyn Model, peaks: &mut PeakLog) {
    let vocab = model.vocab_size();
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));

    for &t in PREFILL_TOKENS {
        let tokens = prompt(t, vocab);
        group.throughput(Throughput::Elements(t as u64));
        reset_peak_memory();
        group.bench_function(BenchmarkId::new("prefill", t), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| match prefill(model, &tokens) {
                        Ok(p) => p.time,
                        Err(e) => panic!("prefill failed: {e}"),
                    })
                    .sum()
            })
        });
        peaks.record(&format!("{name}/prefill/{t}"), peak_memory());
    }

    let tokens = prompt(DECODE_PROMPT, vocab);
    group.throughput(Throughput::Elements(DECODE_TOKENS as u64));
    reset_peak_memory();
    group.bench_function(BenchmarkId::new("decode", DECODE_TOKENS), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let run = prefill(model, &tokens)
                        .and_then(|mut p| decode(model, &mut p.cache, p.next, DECODE_TOKENS));
                    match run {
                        Ok(time) => time,
                        Err(e) => panic!("decode failed: {e}"),
                    }
                })
                .sum()
        })
    });
    peaks.record(&format!("{name}/decode/{DECODE_TOKENS}"), peak_memory());
    group.finish();
}

criterion_group!(benches, models);
criterion_main!(benches);
