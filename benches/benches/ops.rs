//! Single MLX operations at the shapes the models run them at, so that a
//! model-level change can be traced to an op (and the BLAS in use shows up:
//! the f32 matmul rows report FLOP/s as their throughput).
//!
//! Shapes: Llama-3.2-1B (hidden 2048, MLP 8192, 32 heads / 8 kv heads of
//! 64) at a 128-token prefill chunk and at one decode step over a 1024-token
//! context; gpt-oss-like experts (32 experts of 2880 × 2880, 4 per token).

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use forge_core::mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use forge_core::mlx_rs::{ops, random, Array, Dtype};

const HIDDEN: i32 = 2048;
const MLP: i32 = 8192;
const HEADS: i32 = 32;
const KV_HEADS: i32 = 8;
const HEAD_DIM: i32 = 64;
const PREFILL: i32 = 128;
const CONTEXT: i32 = 1024;

fn normal(shape: &[i32], seed: u64, dtype: Dtype) -> Array {
    let key = random::key(seed).and_then(|k| random::normal::<f32>(shape, None, 0.02, &k));
    let a = key
        .and_then(|a| a.as_dtype(dtype))
        .unwrap_or_else(|e| panic!("random input {shape:?}: {e}"));
    a.eval()
        .unwrap_or_else(|e| panic!("random input {shape:?}: {e}"));
    a
}

/// Times `f` (built lazily, then evaluated) per iteration.
fn bench(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, f: impl Fn() -> Array) {
    group.bench_function(name, |b| {
        b.iter(|| {
            let out = f();
            out.eval().unwrap_or_else(|e| panic!("{name}: {e}"));
            out
        })
    });
}

fn matmuls(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops/matmul");
    configure(&mut group);
    for dtype in [Dtype::Float32, Dtype::Bfloat16] {
        let tag = if dtype == Dtype::Float32 {
            "f32"
        } else {
            "bf16"
        };
        let w = normal(&[MLP, HIDDEN], 1, dtype);
        for tokens in [PREFILL, 1] {
            let x = normal(&[tokens, HIDDEN], 2, dtype);
            let flops = 2 * tokens as u64 * HIDDEN as u64 * MLP as u64;
            group.throughput(Throughput::Elements(flops));
            bench(
                &mut group,
                &format!("{tag}/{tokens}x{HIDDEN}x{MLP}"),
                || ops::matmul(&x, w.t()).unwrap_or_else(|e| panic!("matmul: {e}")),
            );
        }
    }
    group.finish();
}

fn quantized(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops/quantized_matmul");
    configure(&mut group);
    let w = normal(&[MLP, HIDDEN], 3, Dtype::Float32);
    let (wq, scales, biases) = ops::quantize(&w, 64, 4).unwrap_or_else(|e| panic!("quantize: {e}"));
    for tokens in [PREFILL, 1] {
        let x = normal(&[tokens, HIDDEN], 4, Dtype::Float32);
        let flops = 2 * tokens as u64 * HIDDEN as u64 * MLP as u64;
        group.throughput(Throughput::Elements(flops));
        bench(
            &mut group,
            &format!("q4g64/{tokens}x{HIDDEN}x{MLP}"),
            || {
                ops::quantized_matmul(&x, &wq, &scales, &biases, true, 64, 4)
                    .unwrap_or_else(|e| panic!("quantized_matmul: {e}"))
            },
        );
    }
    group.finish();
}

fn gather(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops/gather_mm");
    configure(&mut group);
    let (experts, dim, top_k) = (32, 2880, 4);
    let w = normal(&[experts, dim, dim], 5, Dtype::Float32);
    for tokens in [PREFILL / 4, 1] {
        let x = normal(&[tokens * top_k, 1, dim], 6, Dtype::Float32);
        let picks: Vec<u32> = (0..tokens * top_k)
            .map(|i| (i as u32 * 7) % experts as u32)
            .collect();
        let idx = Array::from_slice(&picks, &[tokens * top_k]);
        let flops = 2 * (tokens * top_k) as u64 * dim as u64 * dim as u64;
        group.throughput(Throughput::Elements(flops));
        bench(
            &mut group,
            &format!("f32/{tokens}tok-top{top_k}-of-{experts}x{dim}x{dim}"),
            || {
                ops::gather_mm(&x, &w, None, &idx, false)
                    .unwrap_or_else(|e| panic!("gather_mm: {e}"))
            },
        );
    }
    group.finish();
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops/attention");
    configure(&mut group);
    let x = normal(&[1, PREFILL, HIDDEN], 7, Dtype::Float32);
    let weight = normal(&[HIDDEN], 8, Dtype::Float32);
    bench(
        &mut group,
        &format!("rms_norm/1x{PREFILL}x{HIDDEN}"),
        || fast::rms_norm(&x, Some(&weight), 1e-5).unwrap_or_else(|e| panic!("rms_norm: {e}")),
    );
    let q = normal(&[1, HEADS, PREFILL, HEAD_DIM], 9, Dtype::Float32);
    bench(
        &mut group,
        &format!("rope/1x{HEADS}x{PREFILL}x{HEAD_DIM}"),
        || {
            fast::rope(&q, HEAD_DIM, false, 500000.0, 1.0, 0, None)
                .unwrap_or_else(|e| panic!("rope: {e}"))
        },
    );
    let k = normal(&[1, KV_HEADS, PREFILL, HEAD_DIM], 10, Dtype::Float32);
    let scale = (HEAD_DIM as f32).powf(-0.5);
    bench(
        &mut group,
        &format!("sdpa-causal/q{PREFILL}-kv{PREFILL}"),
        || {
            fast::scaled_dot_product_attention(
                &q,
                &k,
                &k,
                scale,
                ScaledDotProductAttentionMask::Causal,
                None,
            )
            .unwrap_or_else(|e| panic!("sdpa: {e}"))
        },
    );
    let q1 = normal(&[1, HEADS, 1, HEAD_DIM], 11, Dtype::Float32);
    let kc = normal(&[1, KV_HEADS, CONTEXT, HEAD_DIM], 12, Dtype::Float32);
    bench(&mut group, &format!("sdpa/q1-kv{CONTEXT}"), || {
        fast::scaled_dot_product_attention(&q1, &kc, &kc, scale, None, None)
            .unwrap_or_else(|e| panic!("sdpa: {e}"))
    });
    group.finish();
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
}

criterion_group!(benches, matmuls, quantized, gather, attention);
criterion_main!(benches);
