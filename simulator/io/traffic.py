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
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simulator.errors import InputError
from simulator.io import columns as C
from simulator.io.adapters import ATTRIBUTION_KEYS, REQUIRED, AdapterOptions, apply_adapter, detect_adapter
from simulator.io.limits import Limits
from simulator.io.readers import RawTable, expand_paths, read_any
from simulator.memory import release_memory

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
_FUTURE_SLACK = pd.Timedelta(days=1)
# Timestamps are int64 nanoseconds; outside this window they cannot be represented and are rejected, not wrapped.
_TS_RANGE = "timestamp is outside the supported range (years 1678 to 2261)"
_INT_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                "prefix_tokens", "block_tokens")
_CATEGORY_COLUMNS = ("model", "requested_model", "user_id", "team", "project", "workflow_tag", "session_id",
                     "metadata", "prefix_hash")
#: dtype of ``request_id`` and ``prompt`` in ``Traffic.frame``
TEXT_DTYPE = pd.StringDtype("pyarrow")


@dataclasses.dataclass
class Traffic:
    """Normalised traffic plus what was rejected and why.

    ``frame`` has the columns of :data:`COLUMNS` in that order, sorted by (timestamp, request_id): ``timestamp``
    datetime64[ns, UTC]; int columns int64; float columns float64; ``request_id`` and ``prompt``
    ``string[pyarrow]``; the other text columns and ``metadata`` pandas categories (sorted string categories,
    missing = NaN); ``prefix_blocks`` Python lists or None.
    """

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
    limits: Limits | None = None,
) -> Traffic:
    """Read, adapt and validate traffic files into one table (see the module docstring)."""
    files, parts, rows_read, rejects = _read_parts(paths, adapter, mapping, timezone, now, limits, True)
    good, bad = finish(parts)
    del parts
    release_memory()
    reject_frame = _reject_frame(rejects + bad, files, len(good))
    return Traffic(good, reject_frame, rows_read, [str(f) for f in files])


@dataclasses.dataclass
class TrafficCheck:
    """What ``tfysim validate`` reports of the traffic: the rows :func:`load_traffic` would keep and reject (the same
    reading, validation and duplicate rule), without building the table. ``start_ns``/``end_ns``: the first and last
    kept timestamp (ns since 1970, UTC); ``values``: the distinct labels of the kept rows per column of
    :data:`CHECKED_LABELS`, sorted."""

    rejects: pd.DataFrame
    rows_read: int
    rows_replayed: int
    sources: list[str]
    start_ns: int
    end_ns: int
    values: dict[str, list[str]]

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)

    def counts(self) -> dict[str, int]:
        return {"rows_read": self.rows_read, "rows_replayed": self.rows_replayed, "rows_rejected": self.rows_rejected}


#: the label columns :func:`check_traffic` lists the values of (what ``validate`` matches rules against)
CHECKED_LABELS = ("model", "requested_model", "workflow_tag", "team", "project")


def check_traffic(
    paths: Sequence[str | Path],
    *,
    adapter: str | None = None,
    mapping: dict[str, str] | None = None,
    timezone: str | None = None,
    now: pd.Timestamp | None = None,
    limits: Limits | None = None,
) -> TrafficCheck:
    """:func:`load_traffic`'s counts, rejects, time span and labels, without the table (no sort, no categories, no
    metadata or prompt text unless the traffic has duplicate ids: which copy is kept depends on them)."""
    files, parts, rows_read, rejects = _read_parts(paths, adapter, mapping, timezone, now, limits, False)
    rows, bad = join_parts(parts)
    if rows.keep is not None:  # copies of an id are ranked by content, texts included: read as the run does
        files, parts, rows_read, rejects = _read_parts(paths, adapter, mapping, timezone, now, limits, True)
        rows, bad = join_parts(parts)
    del parts
    keep = rows.keep if rows.keep is not None else slice(None)
    ts = rows.num["timestamp"][keep]
    n = len(ts)
    reject_frame = _reject_frame(rejects + bad, files, n)
    values = {}
    for name in CHECKED_LABELS:
        codes, labels = rows.labels[name]
        values[name] = [str(v) for v in _used_labels(codes[keep], labels)[1]]
    return TrafficCheck(reject_frame, rows_read, n, [str(f) for f in files], int(ts.min()), int(ts.max()), values)


def _read_parts(paths: Sequence[str | Path], adapter: str | None, mapping: dict[str, str] | None,
                timezone: str | None, now: pd.Timestamp | None, limits: Limits | None, texts: bool
                ) -> tuple[list[Path], list[Part], int, list[dict[str, Any]]]:
    """(files, validated parts, rows read, rejects of unreadable lines) of every traffic file."""
    if not paths:
        raise InputError("no traffic given: name files in the scenario's traffic: or with --traffic PATH.")
    limits = limits or Limits.from_env()
    _check_timezone(timezone)
    files = expand_paths(list(paths))
    parts, rejects, rows_read = [], [], 0
    for path in files:
        raw = read_any(path, limits)
        rows_read += raw.rows_read
        rejects.extend({"source": str(path), "row": r["row"], "request_id": None, "reason": r["reason"]}
                       for r in raw.rejects)
        if raw.num_rows == 0:
            if not raw.rejects:
                raise InputError(f"{path}: no data rows (header only?).")
            continue
        pieces = _pieces(_adapted(raw, adapter, mapping, str(path)))
        del raw
        while pieces:  # each piece's raw buffers are freed once it is validated: raw and parts never both whole
            parts.append(validate(pieces.pop(0), timezone=timezone, now=now, limits=limits,
                                  texts=texts))
            release_memory()
    return files, parts, rows_read, rejects


def _reject_frame(rejects: list[dict[str, Any]], files: list[Path], kept: int) -> pd.DataFrame:
    """The rejected rows in (source, row) order; no kept row at all is an error naming the most common reason."""
    reject_frame = pd.DataFrame(rejects, columns=list(REJECT_COLUMNS))
    ids = reject_frame["request_id"].astype(object)
    reject_frame["request_id"] = ids.where(ids.notna(), None)  # None, not NaN, for rows without an id
    reject_frame = reject_frame.sort_values(["source", "row"], kind="stable").reset_index(drop=True)
    if kept == 0:
        top = reject_frame["reason"].value_counts().index[0] if len(reject_frame) else "no rows"
        raise InputError(f"{', '.join(map(str, files))}: no valid rows ({len(reject_frame)} rejected; e.g. {top}).")
    return reject_frame


def _adapted(raw: RawTable, adapter: str | None, mapping: dict[str, str] | None, where: str
             ) -> pa.Table | pd.DataFrame:
    """Canonical files go to validation as read (Arrow); other exports through their pandas adapter."""
    names = raw.column_names
    renamed = {src: dst for dst, src in (mapping or {}).items()}
    after = {renamed.get(c, c) for c in names}
    name = AdapterOptions.of(adapter).name  # a scenario passes its options: canonical files ignore them
    if raw.table is not None and name in (None, "canonical") and detect_adapter(after) == "canonical":
        apply_adapter(pd.DataFrame(columns=names), adapter, mapping, where)  # the same file-level checks
        table = raw.table
        return table.rename_columns([renamed.get(c, c) for c in table.column_names]) if renamed else table
    return apply_adapter(raw.frame, adapter, mapping, where)


#: Rows per validation step of an Arrow table: validation's temporary arrays stay bounded (the parts are joined).
VALIDATE_ROWS = 1_000_000


def _release(rows: int) -> None:
    """Hand freed memory back between the steps of building a table of at least :data:`VALIDATE_ROWS` rows; a
    smaller one (a stream's chunk) frees a few MB per step, less than a trim of the heap costs (about 0.5 ms each,
    twenty-odd per table)."""
    if rows >= VALIDATE_ROWS:
        release_memory()


def _pieces(table: pa.Table | pd.DataFrame) -> list[pa.Table | pd.DataFrame]:
    """An Arrow table cut at its record-batch boundaries into pieces of about :data:`VALIDATE_ROWS` rows (each
    batch keeps its own string dictionaries, so no piece decodes another's); a pandas frame whole."""
    if isinstance(table, pd.DataFrame) or table.num_rows <= VALIDATE_ROWS:
        return [table]
    pieces, batches, rows = [], [], 0
    for batch in table.to_batches():
        batches.append(batch)
        rows += batch.num_rows
        if rows >= VALIDATE_ROWS:
            pieces.append(pa.Table.from_batches(batches, schema=table.schema))
            batches, rows = [], 0
    if batches:
        pieces.append(pa.Table.from_batches(batches, schema=table.schema))
    return pieces


def _check_timezone(timezone: str | None) -> None:
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InputError(f"timezone '{timezone}' is not an IANA time zone name such as UTC or Europe/Berlin.") from None


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


@dataclasses.dataclass
class Part:
    """One validated input (file or chunk): typed columns for every row, and the first reason each bad row has."""

    n: int
    bad: np.ndarray
    reason: np.ndarray  # the first reason of each bad row, in row order (none held for good rows)
    request_id: pa.Array
    prompt: pa.Array
    numbers: dict[str, np.ndarray]
    labels: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (codes, labels) for category columns and _source
    prefix_blocks: np.ndarray


def _ints(col: C.Col, name: str, required: bool, default: int, rej: _Rejector, cap: float, limit: str
          ) -> np.ndarray:
    fill = 0 if default is None else default  # required columns: the row is rejected, the value is a placeholder
    if pa.types.is_null(col.type):  # an absent column: every row missing
        if required:
            rej.add(np.ones(len(col), dtype=bool), f"{name} is missing")
        return _repeated(fill, len(col), np.int64)
    whole = C.whole_numbers(col, cap)
    if whole is not None:  # the usual typed column: no float round trip
        return whole
    missing = C.missing(col)
    num = C.numbers(col, missing)
    if required:
        rej.add(missing, f"{name} is missing")
    with np.errstate(invalid="ignore"):
        clean = not (~missing & ~((num >= 0) & (num <= cap) & (np.floor(num) == num))).any()
    if clean:  # the usual case: one pass instead of one per reason
        return np.where(missing, 0 if default is None else default, num).astype(np.int64)
    rej.add(~missing & np.isnan(num), f"{name} must be an integer >= 0")
    with np.errstate(invalid="ignore"):
        rej.add(~missing & np.isinf(num), f"{name} must be finite")
        rej.add(~missing & (num < 0), f"{name} must be >= 0")
        rej.add(~missing & np.isfinite(num) & (np.floor(num) != num), f"{name} must be a whole number of tokens")
        rej.add(~missing & (num > cap), f"{name} is implausibly large{limit}")
    with np.errstate(invalid="ignore"):
        out = np.where(missing | ~np.isfinite(num) | (np.abs(num) > cap), fill, num)
    return out.astype(np.int64)


def _floats(col: C.Col, name: str, rej: _Rejector, cap: float, limit: str) -> np.ndarray:
    if pa.types.is_null(col.type):  # an absent column: NaN throughout
        return _repeated(np.nan, len(col), np.float64)
    missing = C.missing(col)
    num = C.numbers(col, missing)
    with np.errstate(invalid="ignore"):
        if not (~missing & ~((num >= 0) & (num <= cap))).any():
            return np.where(missing, np.nan, num)
    # NaN given explicitly ("NaN" text, JSON NaN) is rejected; absent (and NaN in a typed column) is allowed.
    rej.add(~missing & np.isnan(num), f"{name} must be a finite number")
    with np.errstate(invalid="ignore"):
        rej.add(~missing & np.isinf(num), f"{name} must be finite")
        rej.add(~missing & (num < 0), f"{name} must be >= 0")
        rej.add(~missing & (num > cap), f"{name} is implausibly large{limit}")
    return np.where(missing, np.nan, num)


def _time_reasons(timezone: str | None) -> dict[str, str]:
    return {
        "range": _TS_RANGE,
        "not_iso": "timestamp is not ISO-8601 with an offset or epoch ms",
        "not_date": "timestamp is not a valid ISO-8601 date-time",
        "no_zone": "timestamp has no time zone; add an offset (Z, +02:00) or set timezone: in the scenario",
        "dst": f"timestamp does not exist or is ambiguous in time zone {timezone} (DST change)",
        "dst_typed": "timestamp does not exist or is ambiguous in the scenario time zone",
        "seconds": "epoch timestamp looks like seconds; expected milliseconds since 1970",
        "epoch": "epoch timestamp must be milliseconds since 1970",
    }


#: the canonical metadata text: keys sorted, values that JSON cannot hold as their ``str`` (one encoder, not one per value)
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)


def _metadata(codes: np.ndarray, values: np.ndarray, rej: _Rejector, limits: Limits, texts: bool = True
              ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(codes, canonical text per distinct value, promoted attribution labels per distinct value).

    Each distinct value is parsed once: JSON text or an object; the canonical text drops attribution keys and sorts
    keys (without ``texts``, only checks: every text None); objects nested deeper than ``limits.max_metadata_depth``
    are rejected (never a RecursionError)."""
    k = len(values)
    text = np.full(k, None, dtype=object)
    promoted = {key: np.full(k, None, dtype=object) for key in ATTRIBUTION_KEYS}
    problem = np.full(k, None, dtype=object)
    too_deep = (f"metadata is nested more than {limits.max_metadata_depth} levels deep "
                f"(limit max_metadata_depth)")
    depth, loads, encode = limits.max_metadata_depth, C.json_loads, _CANONICAL.encode
    attribution = frozenset(ATTRIBUTION_KEYS)
    for j, v in enumerate(values):
        shallow = False
        if isinstance(v, str):
            # each level of a value parsed from text opens a bracket: with few brackets it cannot be too deep
            shallow = v.count("{") + v.count("[") <= depth
            try:
                v = loads(v)
            except json.JSONDecodeError:
                v = None
            except RecursionError:
                problem[j] = too_deep
                continue
        elif isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(x, (list, tuple)) and len(x) == 2
                                                             for x in v):
            v = dict(v)  # Arrow map columns arrive as lists of (key, value)
        if not isinstance(v, dict):
            problem[j] = "metadata must be a JSON object"
            continue
        if not shallow and C.json_depth(v) > depth:
            problem[j] = too_deep
            continue
        if not v:
            continue
        if attribution.isdisjoint(v):
            if texts:
                text[j] = encode(v)
            continue
        if texts:
            text[j] = encode({key: v[key] for key in v if key not in attribution})
        for key in ATTRIBUTION_KEYS:
            if v.get(key) not in (None, ""):
                promoted[key][j] = C.scalar_str(v[key])
    for reason in dict.fromkeys(p for p in problem if p is not None):
        per_value = np.array([p == reason for p in problem], dtype=bool)
        rej.add((codes >= 0) & per_value[np.maximum(codes, 0)], reason)
    return codes, text, promoted


def _merge(own: tuple[np.ndarray, np.ndarray], fallback_codes: np.ndarray, fallback_labels: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``own`` where present, else of the fallback (whose label may be None = absent)."""
    codes, labels = own
    if not len(fallback_labels) or (len(labels) == 0 and bool(pd.notna(fallback_labels).all())):
        return (codes, labels) if not len(fallback_labels) else (fallback_codes, fallback_labels.astype(object))
    usable = fallback_codes >= 0
    if len(fallback_labels):
        usable &= np.asarray(pd.notna(fallback_labels), dtype=bool)[np.maximum(fallback_codes, 0)]
    dtype = C.code_dtype(len(labels) + len(fallback_labels))  # codes arrive narrow: widen before shifting
    shifted = fallback_codes.astype(dtype) + dtype.type(len(labels))
    merged = np.where(codes >= 0, codes.astype(dtype, copy=False), np.where(usable, shifted, dtype.type(-1)))
    return merged, np.concatenate([labels, fallback_labels]).astype(object)


def _blocks(codes: np.ndarray, values: np.ndarray, rej: _Rejector) -> tuple[np.ndarray, np.ndarray]:
    if not len(values):  # no row has blocks
        return _repeated(None, len(codes), object), np.zeros(len(codes), dtype=bool)
    per_value = np.full(len(values), None, dtype=object)
    bad_value = np.zeros(len(values), dtype=bool)
    for j, v in enumerate(values):
        if isinstance(v, str):
            try:
                v = C.json_loads(v)
            except (json.JSONDecodeError, RecursionError):
                bad_value[j] = True
                continue
        if isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(x, (str, int, np.integer)) for x in v):
            per_value[j] = [x if isinstance(x, str) else int(x) for x in v]
        else:
            bad_value[j] = True
    out = np.full(len(codes), None, dtype=object)
    present = np.flatnonzero(codes >= 0)
    bad = np.zeros(len(codes), dtype=bool)
    has = np.zeros(len(codes), dtype=bool)
    if len(present):
        bad[present] = bad_value[codes[present]]
        nonempty = np.array([v is not None and len(v) > 0 for v in per_value], dtype=bool)
        has[present] = nonempty[codes[present]] & ~bad[present]
        for i in present[~bad[present]]:
            out[i] = list(per_value[codes[i]])  # each row owns its list
    rej.add(bad, "prefix_blocks must be a list of block hashes (strings or integers)")
    return out, has


def validate(raw: pa.Table | pd.DataFrame, *, timezone: str | None = None, now: pd.Timestamp | None = None,
             limits: Limits | None = None, texts: bool = True) -> Part:
    """Validate one raw input with canonical column names (Arrow table or pandas frame, ``_reject`` optional).

    Without ``texts`` neither the canonical metadata text nor the prompt text is built (the reasons are the same;
    for checks that build no table, :func:`check_traffic`)."""
    limits = limits or Limits.from_env()
    _check_timezone(timezone)
    if isinstance(raw, pd.DataFrame):
        raw = raw.reset_index(drop=True)
        n = len(raw)
        names = set(raw.columns)
        col = lambda name: C.from_series(raw[name]) if name in names else C.absent(n)  # noqa: E731
        original = lambda name: raw[name] if name in names else None  # noqa: E731
    else:
        n = raw.num_rows
        names = set(raw.column_names)
        # ids and prompts stay in their chunks (each chunk's dictionary is decoded on its own)
        col = lambda name: (C.from_arrow(raw.column(name), chunks=name in ("request_id", "prompt"))  # noqa: E731
                            if name in names else C.absent(n))
        original = lambda name: None  # noqa: E731
    rej = _Rejector(n)
    if "_reject" in names:
        codes, labels = C.codes(col("_reject"))
        rej.add(codes >= 0, np.where(codes >= 0, labels[np.maximum(codes, 0)] if len(labels) else None, None))
    cols = {name: col(name) for name in COLUMNS}
    for name, (kind, *_rest) in COLUMNS.items():
        # A JSON object or array where a scalar belongs would otherwise be stringified and misreported.
        if kind not in ("json", "list") and name in names:
            rej.add(cols[name].nested_mask(), f"{name} must be a single value, not a JSON object or array")
    too_long: dict[str, np.ndarray] = {}
    for name, (kind, *_rest) in COLUMNS.items():
        if kind in ("str", "json") and name in names:
            cap, key = (limits.max_prompt_bytes, "max_prompt_bytes") if name == "prompt" else \
                (limits.max_value_bytes, "max_value_bytes")
            too_long[name] = C.longer_than(cols[name], cap)
            rej.add(too_long[name], f"{name} is longer than {cap} bytes (limit {key})")
    out = Part(n=n, bad=np.zeros(n, bool), reason=rej.reason,
               request_id=C.plain_text(cols.pop("request_id"), too_long.get("request_id")),
               prompt=pa.nulls(n, pa.large_string()), numbers={}, labels={}, prefix_blocks=np.zeros(0))
    rej.add(np.asarray(out.request_id.is_null().to_numpy(zero_copy_only=False), dtype=bool) & ~rej.bad,
            "request_id is missing")

    ts_col = cols.pop("timestamp")
    ts_missing = C.missing(ts_col)
    rej.add(ts_missing, "timestamp is missing")
    times = C.timestamps(ts_col, ts_missing, timezone)
    del ts_col
    if times.problem.any():
        for key, reason in _time_reasons(timezone).items():
            rej.add(times.problem == C.PROBLEMS.index(key) + 1, reason)
    ts = times.ns
    parsed = ~ts_missing & (times.problem == 0)
    rej.add(parsed & ((ts < C.NS_LOW) | (ts > C.NS_HIGH)), _TS_RANGE)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    rej.add(~rej.bad & (ts > (now + _FUTURE_SLACK).value), "timestamp is in the future")
    rej.add(~rej.bad & (ts < limits.min_timestamp_ns),
            f"timestamp is before {limits.min_timestamp}, outside the plausible range (limit min_timestamp)")
    out.numbers["timestamp"] = ts

    model = C.codes(cols.pop("model"))
    rej.add(model[0] < 0, "model is missing")
    requested = C.codes(cols.pop("requested_model"))
    out.labels["model"] = model
    out.labels["requested_model"] = _merge(requested, model[0], model[1])
    token_limit = f" (above {limits.max_tokens:,} tokens, limit max_tokens)"
    for name in _INT_COLUMNS:
        _, required, default, _ = COLUMNS[name]
        out.numbers[name] = _ints(cols.pop(name), name, required, default, rej, limits.max_tokens, token_limit)
    num = out.numbers
    rej.add(num["cache_read_tokens"] + num["cache_write_tokens"] > num["input_tokens"],
            "cache_read_tokens + cache_write_tokens exceed input_tokens (input_tokens must include cached tokens)")
    rej.add(num["cache_write_1h_tokens"] > num["cache_write_tokens"], "cache_write_1h_tokens exceed cache_write_tokens")
    num["cost_usd"] = _floats(cols.pop("cost_usd"), "cost_usd", rej, limits.max_cost_usd,
                              f" (above {limits.max_cost_usd:g} USD per request, limit max_cost_usd)")
    num["latency_ms"] = _floats(cols.pop("latency_ms"), "latency_ms", rej, limits.max_latency_ms,
                                f" (above {limits.max_latency_ms:g} ms, limit max_latency_ms)")
    status = _ints(cols.pop("status_code"), "status_code", False, 200, rej, 2**53, "")
    rej.add((status < 100) | (status > 599), "status_code must be an HTTP status between 100 and 599")
    num["status_code"] = status
    meta_codes, meta_values = C.objects(cols.pop("metadata"), original("metadata"))
    meta_codes, meta_text, promoted = _metadata(meta_codes, meta_values, rej, limits, texts)
    for key in ATTRIBUTION_KEYS:
        out.labels[key] = _merge(C.codes(cols.pop(key)), meta_codes, promoted[key])
    out.labels["metadata"] = _merge((np.full(n, -1, np.int8), np.zeros(0, object)), meta_codes, meta_text)
    out.prompt = C.plain_text(cols.pop("prompt"), too_long.get("prompt")) if texts else pa.nulls(n, pa.large_string())
    out.labels["prefix_hash"] = C.codes(cols.pop("prefix_hash"))
    block_codes, block_values = C.objects(cols.pop("prefix_blocks"), original("prefix_blocks"))
    out.prefix_blocks, has_blocks = _blocks(block_codes, block_values, rej)
    rej.add(has_blocks & (num["block_tokens"] <= 0), "prefix_blocks needs block_tokens > 0")
    out.labels["_source"] = C.codes(col("_source"))
    row = C.whole_numbers(col("_row"), 2**53)  # the readers' own row numbers: int64 as they are
    if row is None:
        row = np.nan_to_num(C.numbers(col("_row"), C.missing(col("_row"))), nan=0.0).astype(np.int64)
    num["_row"] = row
    out.bad = rej.bad
    out.reason = rej.reason[out.bad]
    out.labels = {name: (_narrow(codes, len(labels)), labels) for name, (codes, labels) in out.labels.items()}
    return out


def _narrow(codes: np.ndarray, size: int) -> np.ndarray:
    """Label codes in :func:`~simulator.io.columns.code_dtype`: a part keeps a dozen code columns until the table
    is built."""
    return codes.astype(C.code_dtype(size), copy=False)


# -- the table ------------------------------------------------------------------------------------------------
def _used_labels(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(used, uniq, inverse): the label positions some code points to, their distinct text sorted, and each used
    label's position in it."""
    # codes + 1 cannot overflow: code_dtype leaves room above the largest code; a column without labels (absent
    # from the input) has every code -1, so nothing is counted
    used = np.flatnonzero(np.bincount(codes + 1, minlength=len(labels) + 1)[1:]) if len(labels) else \
        np.zeros(0, np.intp)
    if not len(used):
        return used, np.zeros(0, dtype=object), used
    return (used, *_sorted_text(labels[used]))


def _sorted_text(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(labels.astype(str), return_inverse=True)``: the distinct text sorted, and each label's position in
    it. Many labels (session ids, metadata) are sorted by Arrow, whose byte order of UTF-8 is numpy's code point
    order (a quarter of the time on 19,000 metadata texts), and come back as an object array of the same text;
    numpy's fixed-width text drops trailing NUL characters, and so does this."""
    if len(labels) >= 1000:
        try:
            text = pa.array(labels, type=pa.large_string())
        except (pa.ArrowException, TypeError, ValueError):  # not all str (or lone surrogates): numpy's way below
            text = None
        if text is not None and not text.null_count:
            encoded = pc.utf8_rtrim(text, characters="\x00").dictionary_encode()
            order = pc.array_sort_indices(encoded.dictionary).to_numpy()
            rank = np.empty(len(order), dtype=np.intp)
            rank[order] = np.arange(len(order))
            inverse = rank[encoded.indices.to_numpy(zero_copy_only=False)]
            return encoded.dictionary.take(order).to_numpy(zero_copy_only=False), inverse
    return np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)


def _category(codes: np.ndarray, labels: np.ndarray) -> pd.Categorical:
    """Categories of the labels in use, deduplicated and sorted, so equal data gives equal dtypes."""
    used, uniq, inverse = _used_labels(codes, labels)
    if not len(used):
        return pd.Categorical.from_codes(np.full(len(codes), -1, dtype=np.int8), categories=pd.Index([], dtype="str"),
                                         validate=False)
    remap = np.full(len(labels) + 1, -1, dtype=C.code_dtype(len(uniq)))  # the last entry: code -1 stays -1
    remap[used] = inverse
    # remap's values are -1 or codes of uniq by construction: pandas' range check of every row is skipped
    return pd.Categorical.from_codes(remap[codes], categories=pd.Index(uniq, dtype="str"), validate=False)


def _concat_labels(parts: list[Part], name: str, take: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One column's codes and labels of every part (the parts' own codes are dropped as they are joined)."""
    dtype = C.code_dtype(sum(len(part.labels[name][1]) for part in parts))
    codes, labels, offset = [], [], 0
    for part, rows in zip(parts, take):
        c, lab = part.labels.pop(name)
        c = c if len(rows) == part.n else c[rows]
        codes.append(np.where(c >= 0, c.astype(dtype) + dtype.type(offset), dtype.type(-1)) if offset else c)
        labels.append(np.asarray(lab, dtype=object))
        offset += len(lab)
    return _join(codes, dtype), _join(labels, object)


def _repeated(value: Any, n: int, dtype: Any) -> np.ndarray:
    """``n`` copies of ``value`` as one element seen ``n`` times (a read-only view with stride 0): a column the
    input does not have costs no memory per row. Selecting rows of it (:func:`_take`) keeps it one element."""
    return np.broadcast_to(np.array(value, dtype=dtype), (n,))


def _is_repeated(values: np.ndarray) -> bool:
    return values.ndim == 1 and len(values) > 0 and values.strides[0] == 0


def _take(values: np.ndarray, rows: Any) -> np.ndarray:
    """``values[rows]``, a :func:`_repeated` column staying one."""
    if _is_repeated(values):
        return _repeated(values[0], len(range(len(values))[rows]) if isinstance(rows, slice) else len(rows),
                        values.dtype)
    return values[rows]


def _join(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    """np.concatenate without the copy when there is one array; :func:`_repeated` columns of one value stay one."""
    if len(arrays) == 1:
        return arrays[0]
    filled = [a for a in arrays if len(a)]
    if filled and all(_is_repeated(a) for a in filled) and len({a[:1].tobytes() for a in filled}) == 1:
        return _repeated(filled[0][0], sum(len(a) for a in arrays), filled[0].dtype)
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype)


def _label_values(codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.full(len(codes), None, dtype=object)
    have = codes >= 0
    out[have] = labels[codes[have]]
    return out


def finish(parts: list[Part]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Drop duplicate ids (keeping the first in (timestamp, request_id, content, source, row) order), sort by
    (timestamp, request_id) and build the table; returns it and the rejected rows of every part."""
    rows, rejects = join_parts(parts)
    ts, ids = rows.num["timestamp"], rows.ids
    if rows.keep is not None:
        keep = rows.keep
        order = keep[time_order(ts[keep], ids.take(pa.array(keep)))]
    else:
        order = time_order(ts, ids)
    return _frame(order, ids, rows.num, rows.labels, rows.blocks, rows.prompt), rejects


@dataclasses.dataclass
class Rows:
    """The good rows of every part joined, before the table is built: ``keep`` the positions kept (later copies of
    a request id dropped), None when every row is kept."""

    ids: pa.Array
    num: dict[str, np.ndarray]
    labels: dict[str, tuple[np.ndarray, np.ndarray]]
    blocks: np.ndarray
    prompt: pa.Array
    keep: np.ndarray | None


def join_parts(parts: list[Part]) -> tuple[Rows, list[dict[str, Any]]]:
    """The good rows of every part as one :class:`Rows` (duplicate ids found, see :func:`finish`) and the rejected
    rows of every part."""
    take = [np.flatnonzero(~p.bad) for p in parts]
    rejects: list[dict[str, Any]] = []
    for p in parts:
        bad = np.flatnonzero(p.bad)
        if not len(bad):
            continue
        src = _label_values(*(c[bad] if i == 0 else c for i, c in enumerate(p.labels["_source"])))
        ids = p.request_id.take(pa.array(bad)).to_pylist()
        rows = p.numbers["_row"][bad]
        rejects.extend({"source": str(s), "row": int(r), "request_id": i, "reason": why}
                       for s, r, i, why in zip(src, rows, ids, p.reason))
    def rows_of(values: Any, part: Part, rows: np.ndarray) -> Any:
        if len(rows) == part.n:
            return values
        return values.take(pa.array(rows)) if isinstance(values, pa.Array) else _take(values, rows)

    ids = pa.concat_arrays([rows_of(p.request_id, p, t).cast(pa.large_string()) for p, t in zip(parts, take)]) \
        if parts else pa.array([], pa.large_string())
    for p in parts:
        p.request_id = None  # joined: the parts' copies go now, not when the caller drops the parts
    num = {}
    for name in ("timestamp", *_INT_COLUMNS, "cost_usd", "latency_ms", "status_code", "_row"):
        # each part's column is dropped once joined: one column at a time is held twice, not the whole table
        num[name] = _join([rows_of(p.numbers.pop(name), p, t) for p, t in zip(parts, take)],
                          np.float64 if name in ("cost_usd", "latency_ms") else np.int64)
        _release(len(ids))  # the parts' copies: freed, and handed back before the next column is joined
    labels = {name: _concat_labels(parts, name, take) for name in (*_CATEGORY_COLUMNS, "_source")}
    _release(len(ids))
    blocks = _join([rows_of(p.prefix_blocks, p, t) for p, t in zip(parts, take)], object)
    prompt = pa.concat_arrays([rows_of(p.prompt, p, t).cast(pa.large_string()) for p, t in zip(parts, take)]) \
        if parts else pa.array([], pa.large_string())
    ts = num["timestamp"]

    dup = _duplicates(ids, ts, num, labels, blocks, prompt)
    _release(len(ids))  # the id hashes
    if dup.any():
        where = np.flatnonzero(dup)
        src = _label_values(labels["_source"][0][where], labels["_source"][1])
        dup_ids = ids.take(pa.array(where)).to_pylist()
        rejects.extend({"source": str(s), "row": int(r), "request_id": i,
                        "reason": "duplicate request_id (an earlier row has the same id)"}
                       for s, r, i in zip(src, num["_row"][where], dup_ids))
    return Rows(ids, num, labels, blocks, prompt, np.flatnonzero(~dup) if dup.any() else None), rejects


def _duplicates(ids: pa.Array, ts: np.ndarray, num: dict, labels: dict, blocks: np.ndarray, prompt: pa.Array
                ) -> np.ndarray:
    """Later copies of a request id. Ordering by content before position makes the kept row independent of input
    row order and of how the rows are split across files."""
    n = len(ids)
    dup = np.zeros(n, dtype=bool)
    if n < 2:
        return dup
    # candidates share a 64-bit key; the exact text decides among them (at every size faster than pandas' hash
    # table on the text: 5 against 15 ms at 40 k rows, 45 against 90 ms at 200 k)
    hashes = id_keys(ids)
    ordered = np.sort(hashes)
    shared = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    candidates = np.flatnonzero(np.isin(hashes, shared)) if len(shared) else np.zeros(0, np.int64)
    if not len(candidates):
        return dup
    texts = pd.Series(ids.take(pa.array(candidates)).to_pylist(), dtype=object)
    repeated = candidates[texts.duplicated(keep=False).to_numpy()]
    if not len(repeated):
        return dup
    idx = np.zeros(n, dtype=np.int64)
    idx[repeated] = pd.factorize(texts[texts.duplicated(keep=False)].to_numpy())[0]
    values = {"request_id": ids.take(pa.array(repeated)).to_pylist(), "timestamp": ts[repeated]}
    for name in COLUMNS:
        if name in _CATEGORY_COLUMNS:
            values[name] = _label_values(labels[name][0][repeated], labels[name][1])
        elif name == "prompt":
            values[name] = prompt.take(pa.array(repeated)).to_pylist()
        elif name == "prefix_blocks":
            values[name] = [repr(b) for b in blocks[repeated]]
        elif name != "request_id":
            values[name] = num[name][repeated]
    content = pd.util.hash_pandas_object(pd.DataFrame(values, columns=list(COLUMNS)).astype(object),
                                         index=False).to_numpy()
    source = _label_values(labels["_source"][0][repeated], labels["_source"][1]).astype(str)
    order = np.lexsort((num["_row"][repeated], source, content, ts[repeated], idx[repeated]))
    ranked = idx[repeated][order]
    later = np.zeros(len(order), dtype=bool)
    later[1:] = ranked[1:] == ranked[:-1]
    dup[repeated[order[later]]] = True
    return dup


#: Rows per slice of :func:`id_keys`: its padded copy of the text and its temporaries stay a few tens of MB.
_KEY_ROWS = 1 << 18
#: ``_BYTE_MASKS[r]`` keeps the first ``r`` bytes of a little-endian word.
_BYTE_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def id_keys(ids: pa.Array) -> np.ndarray:
    """A uint64 key per string, equal for equal strings, read eight bytes at a time from the Arrow buffers: a
    filter for candidate duplicates (the exact text decides among rows sharing a key), about 8x fewer steps than
    ``hash64``'s byte-wise FNV. Not stable across versions; never written anywhere."""
    ids = ids.fill_null("") if ids.null_count else ids
    ids = ids.cast(pa.large_string())
    return np.concatenate([_slice_keys(ids.slice(at, _KEY_ROWS)) for at in range(0, len(ids), _KEY_ROWS)]) \
        if len(ids) else np.zeros(0, np.uint64)


def _slice_keys(ids: pa.Array) -> np.ndarray:
    from simulator.hashing import FNV_OFFSET

    _, offset_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[ids.offset: ids.offset + len(ids) + 1]
    first = int(offsets[0])
    data = np.frombuffer(data_buf, dtype=np.uint8)[first: int(offsets[-1])] if data_buf is not None else \
        np.zeros(0, np.uint8)
    padded = np.zeros(len(data) + 8, dtype=np.uint8)  # every word read stays inside the copy
    padded[:len(data)] = data
    # a little-endian uint64 starting at every byte (stride 1): word k of a string is words[begin + 8 * k]
    words = np.ndarray(shape=(len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))
    begin = offsets[:-1] - first
    lengths = np.diff(offsets)
    n_words = (lengths + 7) >> 3
    if len(n_words) and n_words.min() != n_words.max():
        order = np.argsort(-n_words, kind="stable")  # most words first: the strings still running are a prefix
        begin, lengths, n_words = begin[order], lengths[order], n_words[order]
    else:
        order = None
    running = np.searchsorted(-n_words, -np.arange(int(n_words[0]) if len(n_words) else 0), "left")
    h = np.full(len(lengths), FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k, count in enumerate(running.tolist()):
            word = words[begin[:count] + 8 * k]
            left = lengths[:count] - 8 * k
            if left.min() < 8:  # some strings end inside this word: drop the bytes after their end
                word &= _BYTE_MASKS[np.minimum(left, 8)]
            _step(h[:count], word)
        _step(h, lengths.view(np.uint64))  # the length last: "a" and "a\x00" share their masked words
    if order is None:
        return h
    out = np.empty_like(h)
    out[order] = h
    return out


def _step(h: np.ndarray, word: np.ndarray) -> None:
    """Fold a word into the keys in place: xor, odd multiply, xor-shift (each one-to-one on 64 bits)."""
    from simulator.hashing import FNV_PRIME

    h ^= word
    h *= np.uint64(FNV_PRIME)
    h ^= h >> np.uint64(29)


def request_ids(frame: pd.DataFrame) -> pa.Array:
    """A normalised table's ``request_id`` column as Arrow text (its own buffers, no Python strings)."""
    ids = pa.array(frame["request_id"].array)
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def time_order(ts: np.ndarray, ids: pa.Array) -> np.ndarray:
    """Positions sorted by (timestamp, request_id): numpy on the times, Arrow's string sort only on ties."""
    if len(ts) < 2 or bool((ts[1:] > ts[:-1]).all()):  # exports are often in time order already
        return np.arange(len(ts))
    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    tie = np.zeros(len(order), dtype=bool)
    same = sorted_ts[1:] == sorted_ts[:-1]
    tie[1:] |= same
    tie[:-1] |= same
    if tie.any():
        pos = np.flatnonzero(tie)
        sub = order[pos]
        table = pa.table({"ts": ts[sub], "id": ids.take(pa.array(sub))})
        within = pc.sort_indices(table, sort_keys=[("ts", "ascending"), ("id", "ascending")])
        order[pos] = sub[np.asarray(within.to_numpy(zero_copy_only=False), dtype=np.int64)]
    return order


def _frame(order: np.ndarray, ids: pa.Array, num: dict, labels: dict, blocks: np.ndarray, prompt: pa.Array
           ) -> pd.DataFrame:
    if len(order) == len(ids) and bool((order == np.arange(len(order))).all()):
        order = slice(None)  # already in order: no copies
        take = None
    else:
        take = pa.array(order)
    data: dict[str, Any] = {}
    for name, (kind, *_rest) in COLUMNS.items():
        if name == "request_id":
            data[name] = pd.array(ids if take is None else ids.take(take), dtype=TEXT_DTYPE)
        elif name == "prompt":
            data[name] = pd.array(prompt if take is None else prompt.take(take), dtype=TEXT_DTYPE)
        elif name == "timestamp":
            # UTC given as the dtype: one copy of the times (tz_localize would make a second)
            data[name] = pd.DatetimeIndex(num[name][order].view("M8[ns]"), dtype="datetime64[ns, UTC]")
        elif name in _CATEGORY_COLUMNS:
            codes, lab = labels[name]
            data[name] = _category(codes[order], lab)
            _release(len(ids))  # the category's temporaries
        elif name == "prefix_blocks":  # object as it is: pandas would scan every row to infer a type
            data[name] = pd.Series(_take(blocks, order), dtype=object, copy=False)
        else:
            data[name] = _take(num[name], order)
    return pd.DataFrame(data, columns=list(COLUMNS), copy=False)  # no consolidation copy of the int columns


def normalize_raw(raw: RawTable, *, adapter: str | AdapterOptions | None = None,
                  mapping: dict[str, str] | None = None, where: str = "", timezone: str | None = None,
                  now: pd.Timestamp | None = None, limits: Limits | None = None
                  ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Adapt and validate one raw input (a file, or a chunk of one) as :func:`load_traffic` does: canonical Arrow
    input validated as read (record batches, dictionary codes), other exports through their pandas adapter; returns
    the table and the rejected rows."""
    adapted = _adapted(raw, adapter, mapping, where)
    return finish([validate(piece, timezone=timezone, now=now, limits=limits) for piece in _pieces(adapted)])


def normalize(raw: pd.DataFrame | pa.Table, *, timezone: str | None = None, now: pd.Timestamp | None = None,
              limits: Limits | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Validate canonical-named raw columns; returns the table and the rejected rows."""
    return finish([validate(raw, timezone=timezone, now=now, limits=limits)])
