#!/usr/bin/env python3
"""The workloads of forge_benches::measure, run by mlx-lm on the same checkpoints.

Same prompts (the same generator as Forge's), same definitions:
prefill of T tokens = one forward over the first T-1 tokens into an empty
cache with only the cache evaluated, then the last token with its logits
evaluated; decode of N tokens = N one-token forwards, each next token the
argmax, each step evaluated. Writes the JSON that forge-bench writes.

Usage: mlx_lm_bench.py --model DIR --shape NAME --vocab V --dtype stored|f32|bf16
                       --prompts 128,1024 --decode 16 --repeats 3 --json OUT
"""

import argparse
import json
import sys
import time
from pathlib import Path

import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load_model

DECODE_PROMPT = 128


def prompt(length: int, vocab: int) -> list[int]:
    """forge_benches::measure::prompt: a 64-bit LCG, ids 3..vocab."""
    state = 0x9E3779B97F4A7C15
    out = []
    mask = (1 << 64) - 1
    for _ in range(length):
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        out.append(3 + (state >> 33) % max(vocab - 3, 1))
    return out


def prefill(model, tokens):
    cache = make_prompt_cache(model)
    ids = mx.array(tokens)
    start = time.perf_counter()
    if len(tokens) > 1:
        model(ids[None, :-1], cache=cache)
        mx.eval([c.state for c in cache])
    logits = model(ids[None, -1:], cache=cache)
    first = mx.argmax(logits[0, -1], axis=-1)
    mx.eval(first)
    return time.perf_counter() - start, cache, first.item()


def decode(model, cache, first, n):
    start = time.perf_counter()
    token = first
    for _ in range(n):
        logits = model(mx.array([[token]]), cache=cache)
        nxt = mx.argmax(logits[0, -1], axis=-1)
        mx.eval(nxt)
        token = nxt.item()
    return time.perf_counter() - start


def repeat(repeats, f):
    times = []
    for _ in range(repeats):
        t = f()
        times.append(t)
        if t > 20.0:
            break
    return times


def median(times):
    return sorted(times)[len(times) // 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--shape", required=True)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--dtype", default="stored", choices=["stored", "f32", "bf16"])
    p.add_argument("--prompts", default="128,1024")
    p.add_argument("--decode", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    a = p.parse_args()

    model, _ = load_model(Path(a.model))
    if a.dtype != "stored":
        model.set_dtype(mx.float32 if a.dtype == "f32" else mx.bfloat16)
    mx.eval(model.parameters())
    prefill(model, prompt(4, a.vocab))  # warm up, as forge_benches::load does

    runs = []

    def row(workload, tokens, times):
        rate = tokens / median(times)
        print(f"[mlx-lm] {a.shape} {a.dtype} {workload} {tokens}: {rate:.1f} tok/s", file=sys.stderr)
        runs.append(dict(shape=a.shape, dtype=a.dtype, workload=workload, tokens=tokens,
                         seconds=times, tok_per_s=rate, peak_bytes=mx.get_peak_memory()))

    for t in [int(x) for x in a.prompts.split(",")]:
        tokens = prompt(t, a.vocab)
        mx.reset_peak_memory()
        row("prefill", t, repeat(a.repeats, lambda: prefill(model, tokens)[0]))
    tokens = prompt(DECODE_PROMPT, a.vocab)
    mx.reset_peak_memory()

    def one_decode():
        _, cache, first = prefill(model, tokens)
        return decode(model, cache, first, a.decode)

    row("decode", a.decode, repeat(a.repeats, one_decode))
    out = dict(engine="mlx-lm", models=[dict(shape=a.shape, dir=a.model, dtype=a.dtype)], runs=runs)
    text = json.dumps(out, indent=2)
    if a.json:
        Path(a.json).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
