"""Synthetic traffic at any size for sizing runs: vectorised numpy, no prompt text (seconds per 10 M rows).

``fast_traffic(n, seed)`` returns a canonical table; ``write_fast_traffic`` writes it as Parquet in row groups of
``chunk_rows`` (time-ordered, so every engine can read it); ``bench_scenario`` writes a scenario with a downgrade,
an A/B split, a budget and a rate limit over it. Measure with ``measure(engine, scenario, chunk_rows)``.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

MODELS = ("anthropic-main/claude-opus-4-7", "anthropic-main/claude-sonnet-4-6", "anthropic-main/claude-haiku-4-5",
          "openai-main/gpt-5", "openai-main/gpt-5-mini")
TEAMS = ("support", "platform", "search", "data", "marketing")
START_NS = pd.Timestamp("2026-11-16T00:00:00Z").value
WEEK_NS = 7 * 86_400 * 10**9


def fast_traffic(n: int, seed: int = 0, offset: int = 0) -> pd.DataFrame:
    """``n`` requests over one week, sorted by time; ids ``r<offset + i>``."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, WEEK_NS, n)) + START_NS
    model = rng.choice(len(MODELS), n, p=[0.3, 0.3, 0.15, 0.1, 0.15])
    team = rng.choice(len(TEAMS), n)
    out_tokens = rng.integers(10, 1500, n)
    return pd.DataFrame({
        "request_id": np.char.add("r", np.arange(offset, offset + n).astype(str)).astype(object),
        "timestamp": pd.to_datetime(ts, utc=True),
        "model": np.array(MODELS, dtype=object)[model],
        "input_tokens": rng.integers(100, 20_000, n),
        "output_tokens": out_tokens,
        "latency_ms": np.round(300 + out_tokens * rng.uniform(5, 25, n), 1),
        "status_code": np.where(rng.random(n) < 0.01, 529, 200),
        "user_id": np.char.add("u", rng.integers(0, 500, n).astype(str)).astype(object),
        "team": np.array(TEAMS, dtype=object)[team],
        "workflow_tag": np.array(["chat", "classify", "summarise"], dtype=object)[rng.integers(0, 3, n)],
    })


def write_fast_traffic(path: str | Path, rows: int, chunk_rows: int = 1_000_000, seed: int = 0) -> Path:
    """Write ``rows`` synthetic requests to one Parquet file, a week split into ``rows / chunk_rows`` time slices."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    parts = max(1, -(-rows // chunk_rows))
    writer = None
    for k in range(parts):
        n = min(chunk_rows, rows - k * chunk_rows)
        frame = fast_traffic(n, seed + k, offset=k * chunk_rows)
        # slice k of the week, so the file is globally time-ordered
        ts = frame["timestamp"].array.asi8
        frame["timestamp"] = pd.to_datetime(START_NS + (ts - START_NS) // parts + k * (WEEK_NS // parts), utc=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


def bench_scenario(folder: str | Path, traffic: str | Path, candidates: int = 4) -> Path:
    """A scenario with 4 candidates (downgrade, A/B, per-team daily budget, per-user rate limit); ``candidates=5``
    adds a per-team weekly budget with a per-team token rate limit (the README's 100 M sizing row)."""
    opus, sonnet, haiku = MODELS[:3]
    data = {
        "schema_version": 1, "name": "bench", "traffic": str(traffic), "seed": 1,
        "bootstrap": {"unit": "hour", "draws": 200},
        "candidates": [
            {"name": "downgrade", "rules": [{"id": "d", "when": {"models": [opus]}, "type": "weight-based-routing",
                                             "load_balance_targets": [{"target": haiku}]}]},
            {"name": "ab", "rules": [{"id": "ab", "when": {"models": [sonnet]}, "type": "weight-based-routing",
                                      "load_balance_targets": [{"target": sonnet, "weight": 90},
                                                               {"target": haiku, "weight": 10}]}]},
            {"name": "budget", "budgets": [{"id": "team", "limit_to": 500.0, "unit": "cost_per_day",
                                            "budget_applies_per": ["team"], "on_exceed": {"fallback": haiku}}]},
            {"name": "rate", "rate_limits": [{"id": "user", "limit_to": 5, "unit": "requests_per_minute",
                                              "rate_limit_applies_per": ["user"]}]},
        ],
    }
    if candidates == 5:
        data["candidates"].append(
            {"name": "budget-tokens",
             "budgets": [{"id": "team-week", "limit_to": 5000.0, "unit": "cost_per_week",
                          "budget_applies_per": ["team"], "on_exceed": {"fallback": haiku}}],
             "rate_limits": [{"id": "team-tokens", "limit_to": 2_000_000, "unit": "tokens_per_minute",
                              "rate_limit_applies_per": ["team"]}]})
    elif candidates != 4:
        raise ValueError(f"candidates must be 4 or 5. Got {candidates} instead.")
    path = Path(folder) / ("bench.yaml" if candidates == 4 else "bench5.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cpu_seconds() -> float:
    """User + system CPU of this process and its ended children (a local cluster's workers, once closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(engine: str, scenario: str | Path, chunk_rows: int = 1_000_000) -> dict:
    """Run one engine; returns seconds, CPU seconds (``dask``: the workers' included), rows per second, this
    process's peak RSS in MB (``dask``: the workers' included, the engine's own cluster runs them as threads here)
    and the 1-minute load average before and after (the machine may be shared: compare engines measured in the same
    session)."""
    load_before = os.getloadavg()[0]
    cpu = _cpu_seconds()
    start = time.perf_counter()
    if engine == "streaming":
        from simulator.engines.streaming import run_streaming

        summary = run_streaming(scenario, chunk_rows=chunk_rows).summary
    elif engine == "dask":  # a 2-worker local cluster, started and closed inside the measurement
        from simulator.engines.dask_engine import run_dask

        summary = run_dask(scenario).summary
    else:
        from simulator.api import run

        summary = run(scenario).summary
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    rows = summary["traffic"]["rows_replayed"]
    return {"engine": engine, "rows": rows, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
            "rows_per_s": round(rows / seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
