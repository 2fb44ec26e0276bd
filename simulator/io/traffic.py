"""The canonical traffic table: loading, validation, and the reject discipline.

Every input row is either normalised into the table or listed in ``rejects`` with its source file, line/row number
and reason, so ``rows_read == rows_replayed + rows_rejected`` always holds. The table is sorted by
(timestamp, request_id), which makes every result independent of input row order.

Token convention (written down once): ``input_tokens`` counts ALL input tokens, cache reads and writes included
(OpenAI, OpenTelemetry GenAI and genai-prices); ``cache_read_tokens`` and ``cache_write_tokens`` are parts of it;
``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written with a one-hour TTL.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.io.adapters import ATTRIBUTION_KEYS, apply_adapter
from simulator.errors import InputError
from simulator.io.readers import expand_paths, read_any

#: name -> (kind, required, default, meaning). The table's contract; README and JSON Schema are checked against it.
COLUMNS: dict[str, tuple[str, bool, Any, str]] = {
    "request_id": ("str", True, None, "unique id of the request attempt"),
    "timestamp": ("datetime", True, None, "request start, UTC; ISO-8601 with offset or epoch ms"),
    "model": ("str", True, None, "model that served the request, gateway id provider_account/model"),
    "requested_model": ("str", False, None, "what the client asked for (virtual model or model); default: model"),
    "input_tokens": ("int", True, None, "ALL input tokens, cache reads and writes included"),
    "output_tokens": ("int", True, None, "output tokens, reasoning included"),
    "cache_read_tokens": ("int", False, 0, "part of input_tokens read from the prompt cache"),
    "cache_write_tokens": ("int", False, 0, "part of input_tokens written to the prompt cache"),
    "cache_write_1h_tokens": ("int", False, 0, "part of cache_write_tokens written with a 1 h TTL"),
    "cost_usd": ("float", False, math.nan, "cost as recorded by the gateway"),
    "latency_ms": ("float", False, math.nan, "end-to-end latency"),
    "status_code": ("int", False, 200, "HTTP status of the attempt"),
    "user_id": ("str", False, None, "caller (hashed before any output; never ranked)"),
    "team": ("str", False, None, "attribution: team"),
    "project": ("str", False, None, "attribution: project (missing = UNTAGGED)"),
    "workflow_tag": ("str", False, None, "attribution: workflow"),
    "session_id": ("str", False, None, "conversation / agent session"),
    "metadata": ("json", False, None, "other X-TFY-METADATA keys as a JSON object"),
    "prompt": ("str", False, None, "prompt text (re-tokenisation, cache simulation); never printed"),
    "prefix_hash": ("str", False, None, "hash of one cacheable prefix, e.g. the system prompt"),
    "prefix_tokens": ("int", False, 0, "tokens in that prefix"),
    "prefix_blocks": ("list", False, None, "hashes of fixed-size prompt-prefix blocks"),
    "block_tokens": ("int", False, 0, "tokens per prefix block"),
}
REJECT_COLUMNS = ("source", "row", "request_id", "reason")
_ZONE = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_FUTURE_SLACK = pd.Timedelta(days=1)
# Timestamps are int64 nanoseconds; outside this window they cannot be represented and are rejected, not wrapped.
_TS_LOW, _TS_HIGH = pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2261-12-31", tz="UTC")
_TS_RANGE = "timestamp is outside the supported range (years 1678 to 2261)"


@dataclasses.dataclass
class Traffic:
    """Normalised traffic plus what was rejected and why."""

    frame: pd.DataFrame
    rejects: pd.DataFrame
    rows_read: int
    sources: list[str]

    @property
    def rows_replayed(self) -> int:
        return len(self.frame)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)

    def counts(self) -> dict[str, int]:
        return {"rows_read": self.rows_read, "rows_replayed": self.rows_replayed, "rows_rejected": self.rows_rejected}


def load_traffic(
    paths: Sequence[str | Path],
    *,
    adapter: str | None = None,
    mapping: dict[str, str] | None = None,
    timezone: str | None = None,
    now: pd.Timestamp | None = None,
) -> Traffic:
    """Read, adapt and validate traffic files into one table (see the module docstring)."""
    if not paths:
        raise InputError("no traffic given: name files in the scenario's traffic: or with --traffic PATH.")
    files = expand_paths(list(paths))
    frames, rejects, rows_read = [], [], 0
    for path in files:
        raw = read_any(path)
        rows_read += raw.rows_read
        rejects.extend({"source": str(path), "row": r["row"], "request_id": None, "reason": r["reason"]}
                       for r in raw.rejects)
        if len(raw.frame) == 0:
            if not raw.rejects:
                raise InputError(f"{path}: no data rows (header only?).")
            continue
        frames.append(apply_adapter(raw.frame, adapter, mapping, str(path)))
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"_source": [], "_row": []})
    good, bad = normalize(combined, timezone=timezone, now=now)
    reject_frame = pd.DataFrame(rejects + bad, columns=list(REJECT_COLUMNS))
    ids = reject_frame["request_id"].astype(object)
    reject_frame["request_id"] = ids.where(ids.notna(), None)  # None, not NaN, for rows without an id
    reject_frame = reject_frame.sort_values(["source", "row"], kind="stable").reset_index(drop=True)
    if len(good) == 0:
        top = reject_frame["reason"].value_counts().index[0] if len(reject_frame) else "no rows"
        raise InputError(f"{', '.join(map(str, files))}: no valid rows ({len(reject_frame)} rejected; e.g. {top}).")
    return Traffic(good, reject_frame, rows_read, [str(f) for f in files])


# -- validation -----------------------------------------------------------------------------------------------
class _Rejector:
    """Collects the first reason each row is rejected for."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)
        self._bad = np.zeros(n, dtype=bool)

    def add(self, mask: Any, reason: str | np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool) & ~self._bad
        if not mask.any():
            return
        if isinstance(reason, np.ndarray):
            mask &= ~pd.isna(reason)
            self.reason[mask] = reason[mask]
        else:
            self.reason[mask] = reason
        self._bad |= mask

    @property
    def bad(self) -> np.ndarray:
        return self._bad.copy()


def _typed_number(values: pd.Series) -> bool:
    """A numeric (not boolean) typed column, e.g. from Parquet: no per-element work needed."""
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def _missing(values: pd.Series) -> np.ndarray:
    if values.dtype == object and values.isna().all():  # an absent column
        return np.ones(len(values), dtype=bool)
    if _typed_number(values):
        return values.isna().to_numpy(dtype=bool)
    if isinstance(values.dtype, pd.StringDtype):
        return (values.isna() | values.str.strip().eq("")).to_numpy(dtype=bool, na_value=True)
    obj = values.astype(object)
    return (obj.isna() | (obj.map(lambda v: isinstance(v, str) and v.strip() == ""))).to_numpy(dtype=bool)


def _numbers(values: pd.Series, missing: np.ndarray) -> np.ndarray:
    """float64 values; text that is not a number (and booleans) become NaN."""
    if _typed_number(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if missing.all():
        return np.full(len(values), np.nan)
    is_bool = values.astype(object).map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    num = pd.to_numeric(values.astype(object).where(~missing, None).where(~is_bool, "x"), errors="coerce")
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def _ints(values: pd.Series, name: str, required: bool, default: int, rej: _Rejector) -> np.ndarray:
    missing = _missing(values)
    num = _numbers(values, missing)
    if required:
        rej.add(missing, f"{name} is missing")
    rej.add(~missing & np.isnan(num), f"{name} must be an integer >= 0")
    with np.errstate(invalid="ignore"):
        rej.add(~missing & ~np.isfinite(num) & ~np.isnan(num), f"{name} must be finite")
        rej.add(~missing & (num < 0), f"{name} must be >= 0")
        rej.add(~missing & np.isfinite(num) & (np.floor(num) != num), f"{name} must be a whole number of tokens")
        rej.add(~missing & (num > 2**53), f"{name} is implausibly large")
    fill = 0 if default is None else default  # required columns: the row is rejected, the value is a placeholder
    with np.errstate(invalid="ignore"):
        out = np.where(missing | ~np.isfinite(num) | (np.abs(num) > 2**53), fill, num)
    return out.astype(np.int64)


def _floats(values: pd.Series, name: str, rej: _Rejector, low: float = 0.0) -> np.ndarray:
    missing = _missing(values)
    num = _numbers(values, missing)
    # NaN given explicitly ("NaN" text, JSON NaN, a float NaN in a typed column) is rejected; absent is allowed.
    explicit_nan = ~missing & np.isnan(num)
    rej.add(explicit_nan, f"{name} must be a finite number")
    with np.errstate(invalid="ignore"):
        rej.add(~missing & np.isinf(num), f"{name} must be finite")
        rej.add(~missing & (num < low), f"{name} must be >= {low:g}")
    return np.where(missing, np.nan, num)


def _strings(values: pd.Series) -> np.ndarray:
    if values.dtype == object and values.isna().all():
        return np.full(len(values), None, dtype=object)
    if isinstance(values.dtype, pd.StringDtype):
        out = values.to_numpy(dtype=object, na_value=None)
        out[values.str.strip().eq("").to_numpy(dtype=bool, na_value=False)] = None
        return out
    obj = values.astype(object)
    out = obj.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) or
                  (isinstance(v, str) and v.strip() == "") else (v if isinstance(v, str) else _scalar_str(v)))
    return out.to_numpy(dtype=object)


def _scalar_str(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _timestamps(values: pd.Series, timezone: str | None, rej: _Rejector) -> np.ndarray:
    """UTC nanoseconds since the epoch; rows that cannot be placed in time are rejected."""
    n = len(values)
    out = np.zeros(n, dtype=np.int64)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        missing = values.isna().to_numpy()
        rej.add(missing, "timestamp is missing")
        return _ns_checked(values, ~missing, rej)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        if timezone is None:
            rej.add(np.ones(n, bool),
                    "timestamp has no time zone; add an offset (Z, +02:00) or set timezone: in the scenario")
            return out
        missing = values.isna().to_numpy()
        rej.add(missing, "timestamp is missing")
        in_range = ~missing & (values >= _TS_LOW.tz_localize(None)).to_numpy() & \
            (values <= _TS_HIGH.tz_localize(None)).to_numpy()
        rej.add(~missing & ~in_range, _TS_RANGE)
        local = values.where(in_range).dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        bad = local.isna().to_numpy()
        rej.add(bad, "timestamp does not exist or is ambiguous in the scenario time zone")
        return _ns_checked(local, ~bad, rej)
    obj = values.astype(object)
    missing = _missing(obj)
    rej.add(missing, "timestamp is missing")
    is_num = obj.map(lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
    is_num = is_num.to_numpy(dtype=bool) & ~missing
    text = obj.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)).str.strip()
    digits = text.str.fullmatch(r"-?\d{9,}").fillna(False).to_numpy(dtype=bool) & ~missing
    epoch = is_num | digits
    if epoch.any():
        ms = pd.to_numeric(obj[epoch].astype(str), errors="coerce").to_numpy(dtype=np.float64)
        idx = np.flatnonzero(epoch)
        # Below 1e11 ms (before March 1973) the value is almost surely epoch seconds; reject instead of landing in 1970.
        seconds = np.isfinite(ms) & (ms >= 0) & (ms < 1e11)
        rej.add(np.isin(np.arange(n), idx[seconds]),
                "epoch timestamp looks like seconds; expected milliseconds since 1970")
        ok = np.isfinite(ms) & (ms >= 1e11) & (ms < 1e14)
        rej.add(np.isin(np.arange(n), idx[~ok]), "epoch timestamp must be milliseconds since 1970")
        # ms * 1e6 in float64 would be off by up to ~128 ns at today's epochs; scale the whole part as integers.
        whole = np.floor(ms[ok])
        out[idx[ok]] = whole.astype(np.int64) * 1_000_000 + np.round((ms[ok] - whole) * 1e6).astype(np.int64)
    strings = ~missing & ~epoch
    if strings.any():
        s = text[strings]
        zoned = s.str.contains(_ZONE).fillna(False).to_numpy(dtype=bool)
        idx = np.flatnonzero(strings)
        if zoned.any():
            parsed = pd.to_datetime(s[zoned], utc=True, errors="coerce", format="ISO8601")
            ok = parsed.notna().to_numpy()
            rej.add(np.isin(np.arange(n), idx[zoned][~ok]), "timestamp is not ISO-8601 with an offset or epoch ms")
            out[idx[zoned][ok]] = _ns_checked(parsed[ok], None, rej, idx[zoned][ok], n)
        naive = ~zoned
        if naive.any():
            if timezone is None:
                rej.add(np.isin(np.arange(n), idx[naive]),
                        "timestamp has no time zone; add an offset (Z, +02:00) or set timezone: in the scenario")
            else:
                parsed = pd.to_datetime(s[naive], errors="coerce", format="ISO8601")
                local = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
                parsed_ok = parsed.notna().to_numpy()
                ok = local.notna().to_numpy()
                rej.add(np.isin(np.arange(n), idx[naive][~parsed_ok]), "timestamp is not a valid ISO-8601 date-time")
                rej.add(np.isin(np.arange(n), idx[naive][parsed_ok & ~ok]),
                        f"timestamp does not exist or is ambiguous in time zone {timezone} (DST change)")
                out[idx[naive][ok]] = _ns_checked(local[ok], None, rej, idx[naive][ok], n)
    return out


def _ns_checked(values: pd.Series, valid: np.ndarray | None, rej: _Rejector, positions: np.ndarray | None = None,
                n: int | None = None) -> np.ndarray:
    """UTC nanoseconds of tz-aware ``values``; NaT (where ``valid``) and out-of-range values become 0 and are
    rejected (``positions`` maps ``values`` to table rows when it is a subset)."""
    valid = values.notna().to_numpy() if valid is None else valid & values.notna().to_numpy()
    in_range = valid & (values >= _TS_LOW).to_numpy(dtype=bool, na_value=False) & \
        (values <= _TS_HIGH).to_numpy(dtype=bool, na_value=False)
    bad = valid & ~in_range
    if positions is None:
        rej.add(bad, _TS_RANGE)
    else:
        mask = np.zeros(n, dtype=bool)
        mask[positions[bad]] = True
        rej.add(mask, _TS_RANGE)
    out = np.zeros(len(values), dtype=np.int64)
    if in_range.any():
        out[in_range] = _ns(values[in_range])
    return out


def _ns(values: pd.Series) -> np.ndarray:
    """UTC nanoseconds of a tz-aware datetime series."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8.copy()


def _metadata(values: pd.Series, rej: _Rejector) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
    if values.dtype == object and values.isna().all():  # no metadata column
        return np.full(len(values), None, dtype=object), [None] * len(values)
    objs: list[dict[str, Any] | None] = []
    bad = np.zeros(len(values), dtype=bool)
    parsed: dict[str, Any] = {}  # metadata text repeats a lot; parse each distinct text once
    for i, v in enumerate(values.astype(object)):
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
            objs.append(None)
            continue
        if isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in v):
            v = dict(v)
        if isinstance(v, str):
            if v not in parsed:
                try:
                    parsed[v] = json.loads(v)
                except json.JSONDecodeError:
                    parsed[v] = None
            v = parsed[v]
        if isinstance(v, dict):
            objs.append(v)
        else:
            objs.append(None)
            bad[i] = True
    rej.add(bad, "metadata must be a JSON object")
    dumped: dict[int, str] = {}  # the same parsed object (repeated text) is dumped once

    def dump(o: dict[str, Any]) -> str:
        key = id(o)
        if key not in dumped:
            dumped[key] = json.dumps({k: o[k] for k in o if k not in ATTRIBUTION_KEYS}, sort_keys=True, default=str)
        return dumped[key]

    text = np.array([dump(o) if o else None for o in objs], dtype=object)
    return text, objs


def _blocks(values: pd.Series, rej: _Rejector) -> np.ndarray:
    out = np.full(len(values), None, dtype=object)
    if values.dtype == object and values.isna().all():
        return out
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.astype(object)):
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                bad[i] = True
                continue
        if isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(x, (str, int, np.integer)) for x in v):
            out[i] = [x if isinstance(x, str) else int(x) for x in v]
        else:
            bad[i] = True
    rej.add(bad, "prefix_blocks must be a list of block hashes (strings or integers)")
    return out


def normalize(raw: pd.DataFrame, *, timezone: str | None = None, now: pd.Timestamp | None = None
              ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Validate canonical-named raw columns; returns the table and the rejected rows."""
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InputError(f"timezone '{timezone}' is not an IANA time zone name such as UTC or Europe/Berlin.") from None
    raw = raw.reset_index(drop=True)
    n = len(raw)
    rej = _Rejector(n)
    if "_reject" in raw.columns:
        adapter_reason = raw["_reject"].astype(object).to_numpy()
        rej.add(~pd.isna(adapter_reason), adapter_reason)
    col = lambda name: raw[name] if name in raw.columns else pd.Series([None] * n, dtype=object)  # noqa: E731
    for name, (kind, *_rest) in COLUMNS.items():
        # A JSON object or array where a scalar belongs would otherwise be stringified and misreported.
        if kind not in ("json", "list") and name in raw.columns and raw[name].dtype == object:
            nested = raw[name].map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).to_numpy(dtype=bool)
            rej.add(nested, f"{name} must be a single value, not a JSON object or array")
    out: dict[str, Any] = {}
    request_id = _strings(col("request_id"))
    rej.add(pd.isna(request_id), "request_id is missing")
    out["request_id"] = request_id
    ts = _timestamps(col("timestamp"), timezone, rej)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    rej.add(~rej.bad & (ts > (now + _FUTURE_SLACK).value), "timestamp is in the future")
    out["timestamp"] = ts
    model = _strings(col("model"))
    rej.add(pd.isna(model), "model is missing")
    out["model"] = model
    requested = _strings(col("requested_model"))
    out["requested_model"] = np.where(pd.isna(requested), model, requested)
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                 "prefix_tokens", "block_tokens"):
        _, required, default, _ = COLUMNS[name]
        out[name] = _ints(col(name), name, required, default, rej)
    rej.add(out["cache_read_tokens"] + out["cache_write_tokens"] > out["input_tokens"],
            "cache_read_tokens + cache_write_tokens exceed input_tokens (input_tokens must include cached tokens)")
    rej.add(out["cache_write_1h_tokens"] > out["cache_write_tokens"], "cache_write_1h_tokens exceed cache_write_tokens")
    out["cost_usd"] = _floats(col("cost_usd"), "cost_usd", rej)
    out["latency_ms"] = _floats(col("latency_ms"), "latency_ms", rej)
    status = _ints(col("status_code"), "status_code", False, 200, rej)
    rej.add((status < 100) | (status > 599), "status_code must be an HTTP status between 100 and 599")
    out["status_code"] = status
    metadata, objs = _metadata(col("metadata"), rej)
    for key in ATTRIBUTION_KEYS:
        values = _strings(col(key))
        from_meta = np.array([_scalar_str(o[key]) if o and o.get(key) not in (None, "") else None for o in objs],
                             dtype=object)
        out[key] = np.where(pd.isna(values), from_meta, values)
    out["metadata"] = metadata
    out["prompt"] = _strings(col("prompt"))
    out["prefix_hash"] = _strings(col("prefix_hash"))
    out["prefix_blocks"] = _blocks(col("prefix_blocks"), rej)
    has_blocks = np.array([b is not None and len(b) > 0 for b in out["prefix_blocks"]], dtype=bool)
    rej.add(has_blocks & (out["block_tokens"] <= 0), "prefix_blocks needs block_tokens > 0")
    source = col("_source").astype(object).to_numpy()
    row = pd.to_numeric(col("_row"), errors="coerce").fillna(0).to_numpy(dtype=np.int64)

    # Duplicates: the first in (timestamp, request_id, content, source, row) order is kept, later copies are
    # rejected. Ordering by content before position makes the kept row independent of input row order and of how
    # the rows are split across files.
    content = np.zeros(n, dtype=np.uint64)
    ok_rows = np.flatnonzero(~rej.bad)
    repeated = ok_rows[pd.Series(request_id[ok_rows]).duplicated(keep=False).to_numpy()]
    if len(repeated):
        parts = pd.DataFrame({name: [repr(v) for v in out[name][repeated]] if name == "prefix_blocks"
                              else out[name][repeated] for name in COLUMNS})
        content[repeated] = pd.util.hash_pandas_object(parts, index=False).to_numpy()
    order = np.lexsort((row, source.astype(str), content, request_id.astype(str), ts))
    ok_sorted = order[~rej.bad[order]]
    ids = pd.Series(request_id[ok_sorted])
    dup = ids.duplicated(keep="first").to_numpy()
    dup_mask = np.zeros(n, dtype=bool)
    dup_mask[ok_sorted[dup]] = True
    rej.add(dup_mask, "duplicate request_id (an earlier row has the same id)")

    good_rows = np.flatnonzero(~rej.bad)
    good_rows = good_rows[np.lexsort((request_id[good_rows].astype(str), ts[good_rows]))]
    frame = pd.DataFrame({
        name: pd.Series(out[name][good_rows], dtype=object if COLUMNS[name][0] in ("str", "json", "list") else None)
        for name in COLUMNS
    })
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].to_numpy(dtype=np.int64), unit="ns", utc=True)
    bad_rows = np.flatnonzero(rej.bad)
    rejects = [{"source": str(source[i]), "row": int(row[i]), "request_id": request_id[i], "reason": rej.reason[i]}
               for i in bad_rows]
    return frame, rejects
