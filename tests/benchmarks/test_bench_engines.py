"""Engine throughput on synthetic traffic: in-memory (reference) vs streaming and Dask, same data, same run.

Run: PYTHONPATH=$PWD /work/venv/bin/python -m pytest tests/benchmarks/test_bench_engines.py --benchmark-only -q
Rows: TFYSIM_BENCH_ROWS (default 200,000); chunk: TFYSIM_BENCH_CHUNK (default 50,000, so the run has several
chunks). Scenario: downgrade, 90/10 A/B, per-team daily budget with fallback, per-user rate limit
(:func:`simulator.engines.bench.bench_scenario`). Dask runs on its own 2-worker local cluster (worker threads in
this process, started inside the measurement) over the Parquet row groups. ``test_bench_dask_over_local`` measures
both engines on the same file in one test and prints issue 16's ratio (target: Dask at most 1.3x local at 10 M
rows), wall and CPU (the workers' CPU included), with the load average: the machine may be shared. Peak RSS per
engine needs separate processes: see README "Sizing a run".
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


def test_bench_dask_over_local(benchmark, scenario):
    from simulator.engines.bench import measure

    local = measure("local", scenario)
    dask = benchmark.pedantic(lambda: measure("dask", scenario), rounds=1, iterations=1)
    ratio, cpu_ratio = dask["seconds"] / local["seconds"], dask["cpu_s"] / local["cpu_s"]
    benchmark.extra_info.update({"local": local, "dask": dask, "ratio": round(ratio, 2),
                                 "cpu_ratio": round(cpu_ratio, 2), "target_ratio": 1.3})
    print(f"\n{ROWS:,} rows: local {local['seconds']} s ({local['cpu_s']} s CPU, load {local['load_before']}-"
          f"{local['load_after']}); dask {dask['seconds']} s ({dask['cpu_s']} s CPU, load {dask['load_before']}-"
          f"{dask['load_after']}); ratio {ratio:.2f} wall, {cpu_ratio:.2f} CPU (target 1.3 wall)")
    assert dask["rows"] == local["rows"] == ROWS
