"""Azure LLM inference trace 2023 (CC-BY-4.0; Patel et al., "Splitwise", ISCA 2024) -> canonical traffic table.

The trace has only ``TIMESTAMP``, ``ContextTokens`` and ``GeneratedTokens``. Rules for everything else
(also in datasets/README.md):

- ``timestamp``: the first 26 characters of TIMESTAMP (7 fractional digits; ``%f`` takes 6) parsed as UTC.
  The trace states no zone; UTC is an assumption. ``start`` re-bases the trace so its first request is at ``start``.
- ``input_tokens`` = ContextTokens, ``output_tokens`` = GeneratedTokens; cache sub-counts 0.
- ``request_id`` = ``azure-<file stem without AzureLLMInferenceTrace_>-<data row number, 1-based, 6 digits>``.
- ``model`` and ``requested_model`` = the ``model`` argument (the trace withholds model names).
- ``status_code`` 200 (the trace holds served requests only); ``cost_usd`` and ``latency_ms`` NaN;
  ``user_id``, ``team``, ``project``, ``workflow_tag``, ``session_id``, ``prompt`` None; ``metadata`` ``"{}"``.
- Rows with an unparseable time or a token count that is not an integer >= 0 are rejected (line number and reason),
  never silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _parse_start(start: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(start)
    except ValueError:
        raise InputError(f"azure import: start must be an ISO 8601 time like 2026-11-16T09:00:00Z. Got {start!r} instead.") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def import_azure(path: str | Path, model: str, start: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read an ``AzureLLMInferenceTrace_*.csv`` into the canonical table.

    Returns ``(traffic, rejects)``; ``rejects`` has columns ``line`` (1-based file line) and ``reason``.
    Example: ``traffic, rejects = import_azure("AzureLLMInferenceTrace_code.csv", "openai-main/gpt-4o-mini")``.
    """
    path = Path(path)
    if not model or not isinstance(model, str):
        raise InputError(f"azure import: model must be a gateway model id like openai-main/gpt-4o-mini. Got {model!r} instead.")
    if not path.is_file():
        raise InputError(f"`{path}`: file not found. Give the path to AzureLLMInferenceTrace_code.csv or _conv.csv.")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"`{path}`: not a readable CSV ({type(exc).__name__}). Expected columns {', '.join(AZURE_COLUMNS)}.") from None
    if tuple(raw.columns) != AZURE_COLUMNS:
        raise InputError(
            f"`{path}` line 1: columns must be {', '.join(AZURE_COLUMNS)}. Got {', '.join(map(str, raw.columns))} instead."
        )
    ts = pd.to_datetime(raw["TIMESTAMP"].str.slice(0, 26), format=_TS_FORMAT, errors="coerce", utc=True)
    tokens = {}
    bad_tokens = np.zeros(len(raw), dtype=bool)
    for col in ("ContextTokens", "GeneratedTokens"):
        text = raw[col].str.strip()
        ok = text.str.fullmatch(r"\d+").fillna(False).to_numpy(dtype=bool)
        tokens[col] = np.where(ok, pd.to_numeric(text.where(ok, "0")), 0).astype(np.int64)
        bad_tokens |= ~ok
    bad_ts = ts.isna().to_numpy()
    bad = bad_ts | bad_tokens
    line = np.arange(len(raw)) + 2  # header is line 1
    rejects = pd.DataFrame(
        {
            "line": line[bad].astype(np.int64),
            "reason": np.where(
                bad_ts[bad],
                "TIMESTAMP must look like 2023-11-16 18:17:03.9799600",
                "ContextTokens and GeneratedTokens must be integers >= 0",
            ),
        }
    )
    keep = ~bad
    ts = ts[keep].reset_index(drop=True)
    if start is not None and len(ts):
        ts = _parse_start(start) + (ts - ts.iloc[0])
    n = int(keep.sum())
    stem = path.stem.removeprefix("AzureLLMInferenceTrace_").lower()
    rows = np.arange(1, len(raw) + 1)[keep]
    none = np.full(n, None, dtype=object)
    traffic = pd.DataFrame(
        {
            "request_id": [f"azure-{stem}-{r:06d}" for r in rows],
            "timestamp": ts.astype("datetime64[ns, UTC]"),
            "model": model,
            "requested_model": model,
            "input_tokens": tokens["ContextTokens"][keep],
            "output_tokens": tokens["GeneratedTokens"][keep],
            "cache_read_tokens": np.zeros(n, dtype=np.int64),
            "cache_write_tokens": np.zeros(n, dtype=np.int64),
            "cache_write_1h_tokens": np.zeros(n, dtype=np.int64),
            "cost_usd": np.full(n, np.nan),
            "latency_ms": np.full(n, np.nan),
            "status_code": np.full(n, 200, dtype=np.int64),
            "user_id": none,
            "team": none,
            "project": none,
            "workflow_tag": none,
            "session_id": none,
            "metadata": "{}",
            "prompt": none,
        }
    )
    return traffic, rejects
