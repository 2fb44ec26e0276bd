"""Cache kernel throughput: 1 M requests x 20 prefix blocks, numba pass vs a bare-numpy vectorised reference.

Run: PYTHONPATH=$PWD /work/venv/bin/python -m pytest tests/benchmarks/test_bench_caching.py --benchmark-only -q
Workload: 1,000 prompt families (16 shared blocks each, 3 models) + 4 unique blocks per request, uniform arrivals
over one day, automatic mode, 5 min TTL. The numpy reference computes the same answer (automatic mode, one TTL,
refresh on every use: a block is live iff its previous use is within the TTL) with sorts instead of a hash table.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.state.caching.kernel import simulate_cache

N, K, TTL = 1_000_000, 20, 300_000


@pytest.fixture(scope="module")
def workload():
    rng = np.random.default_rng(42)
    family = rng.integers(0, 1000, N)
    ids = np.repeat(family * 100, K) + np.tile(np.arange(K), N)
    tail = np.tile(np.arange(K) >= K - 4, N)
    ids[tail] = rng.integers(1 << 40, 1 << 50, int(tail.sum()))
    return {
        "ts_ms": np.sort(rng.integers(0, 86_400_000, N)),
        "model_code": (family % 3).astype(np.int32),
        "block_offsets": np.arange(N + 1, dtype=np.int64) * K,
        "block_ids": ids.astype(np.int64),
        "block_tokens": np.full(N * K, 128, np.int64),
        "input_tokens": np.full(N, 4000, np.int64),
    }


def kernel(w):
    return simulate_cache(w["ts_ms"], w["model_code"], w["block_offsets"], w["block_ids"], w["block_tokens"],
                          w["input_tokens"], True, 0, TTL, 1024, 128, True).cache_read_tokens


def numpy_reference(w):
    ids = w["block_ids"].reshape(N, K).astype(np.uint64)
    keys = np.empty((N, K), np.uint64)
    h = w["model_code"].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for j in range(K):  # chained keys: block j's key depends on the model and blocks 0..j
        h = (h ^ ids[:, j]) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
        keys[:, j] = h
    flat = keys.ravel()
    ts = np.repeat(w["ts_ms"], K)
    order = np.argsort(flat, kind="stable")  # stable: time order within a key
    same = flat[order][1:] == flat[order][:-1]
    live_sorted = np.zeros(N * K, bool)
    live_sorted[1:] = same & (ts[order][1:] - ts[order][:-1] <= TTL)
    live = np.empty(N * K, bool)
    live[order] = live_sorted
    run = np.cumprod(live.reshape(N, K), axis=1).sum(axis=1)
    c = np.minimum(run * 128, w["input_tokens"])
    return np.where(c >= 1024, 1024 + (c - 1024) // 128 * 128, 0)


def test_kernel_matches_numpy_reference(workload):
    assert np.array_equal(kernel(workload), numpy_reference(workload))


def test_bench_kernel(benchmark, workload):
    kernel(workload)  # compile outside the timing
    benchmark.group = "cache 1M x 20 blocks"
    result = benchmark.pedantic(kernel, args=(workload,), rounds=3, iterations=1)
    benchmark.extra_info["requests_per_s"] = N / benchmark.stats.stats.min
    assert result.shape == (N,)


def test_bench_numpy_reference(benchmark, workload):
    benchmark.group = "cache 1M x 20 blocks"
    result = benchmark.pedantic(numpy_reference, args=(workload,), rounds=3, iterations=1)
    benchmark.extra_info["requests_per_s"] = N / benchmark.stats.stats.min
    assert result.shape == (N,)
