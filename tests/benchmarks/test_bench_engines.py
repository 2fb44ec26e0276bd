"""Engine throughput on synthetic traffic: in-memory (reference) vs streaming and Dask, same data, same run.

Run: PYTHONPATH=$PWD /work/venv/bin/python -m pytest tests/benchmarks/test_bench_engines.py --benchmark-only -q
Rows: TFYSIM_BENCH_ROWS (default 200,000); chunk: TFYSIM_BENCH_CHUNK (default 50,000, so the run has several
chunks). Scenario: downgrade, 90/10 A/B, per-team daily budget with fallback, per-user rate limit
(:func:`simulator.engines.bench.bench_scenario`). Dask runs on a 2-worker local cluster (started inside the
measurement) over the Parquet row groups. Peak RSS per engine needs separate processes: see docs/engines.md.
"""

from __future__ import annotations

import os

import pytest

from simulator.engines.bench import bench_scenario, write_fast_traffic

ROWS = int(os.environ.get("TFYSIM_BENCH_ROWS", "200000"))
CHUNK = int(os.environ.get("TFYSIM_BENCH_CHUNK", "50000"))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-engines")
    traffic = write_fast_traffic(folder / "traffic.parquet", ROWS, CHUNK)
    return bench_scenario(folder, traffic)


def test_bench_local(benchmark, scenario):
    from simulator.api import run

    summary = benchmark.pedantic(lambda: run(scenario).summary, rounds=1, iterations=1)
    assert summary["traffic"]["rows_replayed"] == ROWS


def test_bench_streaming(benchmark, scenario):
    from simulator.engines.streaming import run_streaming

    summary = benchmark.pedantic(lambda: run_streaming(scenario, chunk_rows=CHUNK).summary, rounds=1, iterations=1)
    assert summary["traffic"]["rows_replayed"] == ROWS


@pytest.fixture
def no_network():
    """The Dask benchmark's local cluster talks over 127.0.0.1 sockets; tfysim never reaches the network."""
    yield


def test_bench_dask(benchmark, scenario):
    from simulator.engines.dask_engine import run_dask

    summary = benchmark.pedantic(lambda: run_dask(scenario).summary, rounds=1, iterations=1)
    assert summary["traffic"]["rows_replayed"] == ROWS
