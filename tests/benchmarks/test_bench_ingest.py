"""load_traffic against DuckDB (and polars when installed) reading the same file into Arrow, in the same run.

Run: PYTHONPATH=$PWD python -m pytest tests/benchmarks/test_bench_ingest.py --benchmark-only -q -s
Rows: TFYSIM_BENCH_INGEST_ROWS (comma-separated, default "1000000,5000000"). Files come from
:func:`simulator.engines.bench.write_fast_traffic` (Parquet) and the same table written as CSV by pyarrow. Each test
prints and stores (``extra_info``) seconds for tfysim, DuckDB and polars and the ratio tfysim / DuckDB. DuckDB only
reads (no validation), so the ratio is the price of validation, line numbers and the reject discipline.
"""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

ROWS = [int(r) for r in os.environ.get("TFYSIM_BENCH_INGEST_ROWS", "1000000,5000000").split(",")]
NOW = pd.Timestamp("2026-12-01T00:00:00Z")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from simulator.engines.bench import write_fast_traffic

    folder = tmp_path_factory.mktemp("bench-ingest")
    out = {}
    for rows in ROWS:
        parquet = write_fast_traffic(folder / f"t{rows}.parquet", rows, 1_000_000)
        csv = folder / f"t{rows}.csv"
        pcsv.write_csv(pq.read_table(parquet), csv)
        out[rows] = {"parquet": parquet, "csv": csv}
    return out


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _duckdb(path, kind: str):
    import duckdb

    reader = "read_parquet" if kind == "parquet" else "read_csv_auto"
    return duckdb.sql(f"select * from {reader}('{path}')").arrow()


def _polars(path, kind: str):
    import polars as pl

    return pl.read_parquet(path) if kind == "parquet" else pl.read_csv(path)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("rows", ROWS)
def test_bench_load_traffic(benchmark, files, rows, kind):
    from simulator.io.traffic import load_traffic

    path = files[rows][kind]
    duck = _seconds(lambda: _duckdb(path, kind))
    try:
        polars = round(_seconds(lambda: _polars(path, kind)), 3)
    except ImportError:
        polars = None
    loaded = benchmark.pedantic(lambda: load_traffic([path], now=NOW), rounds=1, iterations=1)
    assert loaded.rows_replayed == rows
    ours = benchmark.stats.stats.max
    info = {"rows": rows, "format": kind, "tfysim_s": round(ours, 3), "duckdb_s": round(duck, 3),
            "polars_s": polars, "ratio_to_duckdb": round(ours / duck, 2)}
    benchmark.extra_info.update(info)
    print(info)
