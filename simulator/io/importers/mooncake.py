"""Import Mooncake-format JSONL traces (kvcache-ai/Mooncake ``FAST25-release/traces``) into the canonical table.

Each line: ``{"timestamp": ms since trace start, "input_length": int, "output_length": int, "hash_ids": [int, ...]}``
where ``hash_ids`` name consecutive 512-token prefix blocks (``len(hash_ids) == ceil(input_length / 512)``).
Mapping: ``timestamp = start + ms`` (default start :data:`DEFAULT_START`), ``request_id = "<file stem>:<line>"``,
``prefix_blocks = hash_ids``, ``block_tokens = 512``, ``model = requested_model = model``. Rows are sorted by
timestamp with file order as the tie-breaker. Blank lines are skipped; malformed lines are rejected with a reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError

DEFAULT_START = "2024-01-01T00:00:00Z"
BLOCK_TOKENS = 512
_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(record) -> str | None:
    """Why a parsed line is invalid, or None."""
    if not isinstance(record, dict):
        return f"must be a JSON object. Got {type(record).__name__} instead"
    missing = [f for f in _FIELDS if f not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for name in ("timestamp", "input_length", "output_length"):
        if not _is_int(record[name]) or record[name] < 0:
            return f"{name} must be an integer >= 0. Got {record[name]!r} instead"
    ids = record["hash_ids"]
    if not isinstance(ids, list) or not all(_is_int(v) for v in ids):
        return "hash_ids must be a list of integers"
    expected = math.ceil(record["input_length"] / BLOCK_TOKENS)
    if len(ids) != expected:
        return f"hash_ids has {len(ids)} blocks; input_length {record['input_length']} needs ceil(n/512) = {expected}"
    return None


def import_mooncake(path, model: str, start=None) -> tuple[pd.DataFrame, list[dict]]:
    """Read a Mooncake JSONL trace. Returns ``(table, rejects)``; rejects are ``{source, line, reason}`` dicts.

    ``model`` is the gateway model id to assign (the trace has none), e.g. ``"openai/gpt-4o"``.
    ``start`` is the wall-clock time of trace offset 0 (ISO 8601; naive means UTC), default ``2024-01-01T00:00:00Z``.
    """
    path = Path(path)
    if not model or "/" not in str(model):
        raise InputError(f"mooncake import: --model must be a gateway id like 'openai/gpt-4o'. Got {model!r} instead.")
    try:
        origin = pd.Timestamp(start if start is not None else DEFAULT_START)
    except (ValueError, TypeError):
        raise InputError(f"mooncake import: --start must be an ISO 8601 time like {DEFAULT_START}. Got {start!r} instead.") from None
    origin = origin.tz_localize("UTC") if origin.tzinfo is None else origin.tz_convert("UTC")
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"`{path}`: cannot open ({exc.strerror}). Check the path.") from None
    rows, lines, rejects = [], [], []
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                rejects.append({"source": str(path), "line": lineno, "reason": f"not valid JSON ({exc.msg})"})
                continue
            reason = _check(record)
            if reason:
                rejects.append({"source": str(path), "line": lineno, "reason": reason})
                continue
            rows.append(record)
            lines.append(lineno)
    n = len(rows)
    offset_ms = np.fromiter((r["timestamp"] for r in rows), np.int64, count=n)
    order = np.argsort(offset_ms, kind="stable")  # stable: file order breaks timestamp ties
    take = order.tolist()
    ts = pd.DatetimeIndex(origin.as_unit("ns") + pd.to_timedelta(offset_ms[order], unit="ms"))
    stem = path.stem
    table = pd.DataFrame(
        {
            "request_id": [f"{stem}:{lines[k]}" for k in take],
            "timestamp": ts.as_unit("ns"),
            "model": str(model),
            "requested_model": str(model),
            "input_tokens": np.fromiter((rows[k]["input_length"] for k in take), np.int64, count=n),
            "output_tokens": np.fromiter((rows[k]["output_length"] for k in take), np.int64, count=n),
            "cache_read_tokens": np.zeros(n, np.int64),
            "cache_write_tokens": np.zeros(n, np.int64),
            "cache_write_1h_tokens": np.zeros(n, np.int64),
            "cost_usd": np.full(n, np.nan),
            "latency_ms": np.full(n, np.nan),
            "status_code": np.full(n, 200, np.int64),
            "user_id": None,
            "team": None,
            "project": None,
            "workflow_tag": None,
            "session_id": None,
            "metadata": "{}",
            "prompt": None,
            "prefix_hash": None,
            "prefix_tokens": np.zeros(n, np.int64),
            "prefix_blocks": pd.Series([rows[k]["hash_ids"] for k in take], dtype=object),
            "block_tokens": np.full(n, BLOCK_TOKENS, np.int64),
        }
    )
    return table, rejects
