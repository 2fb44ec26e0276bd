"""The control-room article's stacked example as traffic: classify-intent on Claude Opus 4.7 at ~$3,200 a month.

The article: routing classify-intent from Opus 4.7 to Haiku 4.5 is a 5x token-cost cut, and caching the system
prompt "turns a $3,200/mo workflow into roughly $50/mo". This builds one week of that workflow so the claim can be
replayed: a 5,000-token system prompt (counted in Opus 4.7 tokens) shared by every request, 150-350 user tokens,
5-20 output tokens, office-hours arrivals. Recorded cost_usd is the catalog price. Deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.pricing.catalog import Catalog

MODEL = "anthropic-main/claude-opus-4-7"
SYSTEM_PROMPT_TOKENS = 5_000
START = "2026-11-16T00:00:00Z"  # a Monday


def generate(requests: int = 28_000, days: int = 7, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(START).value
    # Arrival intensity: weekdays 1.0, weekends 0.3; within a day a bump around 14:00 UTC.
    hours = np.arange(days * 24)
    weekday = ((hours // 24) % 7) < 5
    hour_of_day = hours % 24
    weight = np.where(weekday, 1.0, 0.3) * (0.15 + np.exp(-0.5 * ((hour_of_day - 14) / 4.0) ** 2))
    hour = rng.choice(hours, size=requests, p=weight / weight.sum())
    offset_ns = hour * 3600 * 10**9 + rng.integers(0, 3600 * 10**9, size=requests)
    ts = np.sort(start + offset_ns)
    user = rng.integers(150, 351, size=requests)
    out = rng.integers(5, 21, size=requests)
    inp = SYSTEM_PROMPT_TOKENS + user
    frame = pd.DataFrame({
        "request_id": [f"ci-{i:06d}" for i in range(requests)],
        "timestamp": pd.to_datetime(ts, unit="ns", utc=True),
        "model": MODEL,
        "requested_model": "support-routing/classify-intent",
        "input_tokens": inp.astype(np.int64),
        "output_tokens": out.astype(np.int64),
        "latency_ms": np.round(400 + 35.0 * out + rng.lognormal(5.0, 0.4, size=requests), 1),
        "status_code": 200,
        "team": "support",
        "project": "helpdesk",
        "workflow_tag": "classify-intent",
        "prefix_hash": "sys-classify-intent-v3",
        "prefix_tokens": SYSTEM_PROMPT_TOKENS,
    })
    frame["cost_usd"] = np.round(Catalog().cost_usd(frame["model"], ts, inp, out), 9)
    return frame


def write(path: str | Path, **kwargs) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(generate(**kwargs), preserve_index=False).replace_schema_metadata(None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=10_000)
    return path
