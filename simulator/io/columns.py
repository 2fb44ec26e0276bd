"""Vectorised conversion of raw traffic columns (Arrow arrays, or Python objects from JSON and adapters) into typed
numpy arrays and category codes. Work per row is done by pyarrow compute or numpy; Python runs only per distinct
value (metadata JSON text, labels) or on the few rows a fast path could not convert.

Every function takes a :class:`Col` and returns values plus masks; reasons are attached by
:mod:`simulator.io.traffic`, which owns the reject discipline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER = r"(?i)^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf|infinity|nan)$"
# An offset counts only after a time of day, so the day of a date-only 2026-11-16 is not read as "-16".
_ZONE = r"\d{2}:?\d{2}(?::?\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_DATE = r"^\d{4}-?\d{2}-?\d{2}"


@dataclasses.dataclass
class Col:
    """One raw column: an Arrow array, plus per-row flags for values that were JSON objects/arrays or booleans
    when the column came from Python objects of mixed kinds."""

    arr: pa.Array
    nested: np.ndarray | None = None
    boolean: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.arr)

    @property
    def type(self) -> pa.DataType:
        return self.arr.type

    def is_text(self) -> bool:
        t = self.arr.type
        return pa.types.is_string(t) or pa.types.is_large_string(t) or (
            pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))

    def nested_mask(self) -> np.ndarray:
        t = self.arr.type
        if self.nested is not None:
            return self.nested
        if pa.types.is_nested(t):
            return _valid(self.arr)
        return np.zeros(len(self), dtype=bool)

    def bool_mask(self) -> np.ndarray:
        if self.boolean is not None:
            return self.boolean
        if pa.types.is_boolean(self.arr.type):
            return _valid(self.arr)
        return np.zeros(len(self), dtype=bool)


def absent(n: int) -> Col:
    return Col(pa.nulls(n))


def _valid(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _bools(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def scalar_str(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# -- from pandas / Python objects ------------------------------------------------------------------------------
def from_series(values: pd.Series) -> Col:
    """A pandas column as a :class:`Col`; object columns of mixed kinds become text with flags."""
    if values.dtype != object:
        try:
            return Col(_combine(pa.array(values, from_pandas=True)))
        except (pa.ArrowException, TypeError, ValueError):
            values = values.astype(object)
    obj = values.to_numpy(dtype=object)
    if len(obj) == 0 or all(v is None for v in obj):
        return absent(len(obj))
    try:
        arr = pa.array(obj, from_pandas=True)
        if not pa.types.is_null(arr.type):
            return Col(_combine(arr))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    nested = np.zeros(len(obj), dtype=bool)
    boolean = np.zeros(len(obj), dtype=bool)
    text: list[str | None] = []
    for i, v in enumerate(obj):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
            text.append(None)
        elif isinstance(v, str):
            text.append(v)
        elif isinstance(v, (dict, list, tuple, np.ndarray)):
            nested[i] = True
            text.append(None)
        elif isinstance(v, (bool, np.bool_)):
            boolean[i] = True
            text.append(str(bool(v)))
        elif isinstance(v, (pd.Timestamp, dt.datetime, dt.date)):
            text.append(v.isoformat())
        else:
            text.append(scalar_str(v))
    return Col(pa.array(text, type=pa.large_string()), nested, boolean)


def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks == 1:
            return arr.chunk(0)
        if arr.num_chunks == 0:
            return pa.array([], arr.type)
        if pa.types.is_dictionary(arr.type):
            return _stack_dictionaries(arr.chunks)
        return arr.combine_chunks()
    return arr


def _stack_dictionaries(chunks: list[pa.DictionaryArray]) -> pa.DictionaryArray:
    """One dictionary array from chunks with their own dictionaries: dictionaries stacked (a value may appear
    twice; labels are deduplicated when categories are built), indices shifted. Unifying dictionaries instead
    hashes every value and takes seconds on a column of unique ids."""
    offsets = np.cumsum([0] + [len(c.dictionary) for c in chunks[:-1]])
    value_type = pa.large_string() if pa.types.is_string(chunks[0].type.value_type) else chunks[0].type.value_type
    # int32 indices (Parquet's) when every shifted index fits: half the bytes of int64, and no cast of each chunk
    wide = pa.int32() if int(offsets[-1]) + len(chunks[-1].dictionary) < 2**31 - 1 else pa.int64()
    shifted = [c.indices.cast(wide) for c in chunks]
    indices = pa.concat_arrays([pc.add(i, pa.scalar(int(o), wide)) if o else i for i, o in zip(shifted, offsets)])
    dictionary = pa.concat_arrays([c.dictionary.cast(value_type) for c in chunks])
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def from_arrow(arr: pa.Array | pa.ChunkedArray, chunks: bool = False) -> Col:
    """An Arrow column; with ``chunks`` a chunked column stays chunked (only for :func:`longer_than`,
    :func:`plain_text` and the masks)."""
    if chunks and isinstance(arr, pa.ChunkedArray) and arr.num_chunks > 1:
        return Col(arr)
    return Col(_combine(arr))


def _per_chunk(arr: Any, fn: Any, mask: np.ndarray | None = None) -> Any:
    """Apply ``fn(chunk, mask_slice)`` to each chunk of a chunked array and join the results."""
    out, start = [], 0
    for chunk in arr.chunks:
        out.append(fn(chunk, None if mask is None else mask[start:start + len(chunk)]))
        start += len(chunk)
    if out and isinstance(out[0], np.ndarray):
        return np.concatenate(out)
    return pa.concat_arrays(out) if out else pa.array([], pa.large_string())


# -- missing ---------------------------------------------------------------------------------------------------
def _blank_text(arr: pa.Array) -> np.ndarray:
    """Null, empty or whitespace-only text."""
    if pa.types.is_dictionary(arr.type):
        labels = _blank_text(arr.dictionary)
        idx = arr.indices.to_numpy(zero_copy_only=False)
        out = np.ones(len(arr), dtype=bool)
        valid = _valid(arr)
        out[valid] = labels[np.asarray(idx[valid], dtype=np.int64)]
        return out
    empty = pc.or_kleene(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))
    return np.asarray(pc.fill_null(empty, True).to_numpy(zero_copy_only=False), dtype=bool)


def missing(col: Col) -> np.ndarray:
    """Absent values: null, empty or whitespace-only text, NaN in a typed float column."""
    arr = col.arr
    if pa.types.is_null(arr.type):
        return np.ones(len(arr), dtype=bool)
    if col.is_text():
        out = _blank_text(arr)
        if col.nested is not None:
            out &= ~col.nested
        return out
    if pa.types.is_floating(arr.type):
        return np.asarray(pc.fill_null(pc.is_nan(arr), True).to_numpy(zero_copy_only=False), dtype=bool)
    return ~_valid(arr)


def longer_than(col: Col, cap: int) -> np.ndarray:
    """Text values of more than ``cap`` bytes (False for other kinds). Dictionary text is measured per label: rows
    are looked at only when some label is too long (a null row counts as label 0, as it always has)."""
    arr = col.arr
    if isinstance(arr, pa.ChunkedArray):
        return _per_chunk(arr, lambda chunk, _: longer_than(Col(chunk), cap))
    if not col.is_text():
        return np.zeros(len(arr), dtype=bool)
    if pa.types.is_dictionary(arr.type):
        over = _bools(pc.greater(pc.binary_length(arr.dictionary), cap))
        if not over.any():
            return np.zeros(len(arr), dtype=bool)
        idx = pc.fill_null(arr.indices, 0).to_numpy(zero_copy_only=False)
        return over[np.asarray(idx, dtype=np.int64)]
    return _bools(pc.greater(pc.binary_length(arr), cap))


# -- numbers ---------------------------------------------------------------------------------------------------
def _decode(arr: pa.Array) -> pa.Array:
    """Dictionary text as plain text."""
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary.take(arr.indices)
    return arr


def _text_numbers(arr: pa.Array, absent_mask: np.ndarray) -> np.ndarray:
    """float64 of text; text that is not a number becomes NaN (the caller rejects it)."""
    if pa.types.is_dictionary(arr.type):
        per_label = _text_numbers(arr.dictionary, np.zeros(len(arr.dictionary), dtype=bool))
        idx = np.asarray(pc.fill_null(arr.indices, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out = per_label[idx] if len(per_label) else np.full(len(arr), np.nan)
        out[absent_mask] = np.nan
        return out
    filled = pc.if_else(pa.array(absent_mask), "0", arr) if absent_mask.any() else arr
    try:
        out = pc.cast(filled, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        trimmed = pc.utf8_trim_whitespace(filled)
        number = _bools(pc.match_substring_regex(trimmed, _NUMBER))
        safe = pc.if_else(pa.array(number), trimmed, "nan")
        out = pc.cast(safe, pa.float64()).to_numpy(zero_copy_only=False)
        out = np.where(number, out, np.nan)
    out = np.array(out, dtype=np.float64)
    out[absent_mask] = np.nan
    return out


def numbers(col: Col, absent_mask: np.ndarray) -> np.ndarray:
    """float64 values; text that is not a number, booleans and nested values become NaN."""
    arr = col.arr
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        out = np.array(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    elif col.is_text():
        out = _text_numbers(arr, absent_mask)
    else:
        out = np.full(len(arr), np.nan)
    out[col.bool_mask() | col.nested_mask()] = np.nan
    return out


def whole_numbers(col: Col, cap: float) -> np.ndarray | None:
    """int64 values of an integer column without nulls whose values all lie in [0, ``cap``]; None otherwise
    (the caller then takes the general path, which finds each bad row's reason). The values are those the general
    path gives (every value up to ``cap`` <= 2**53 is exact in float64)."""
    arr = col.arr
    if (not pa.types.is_integer(arr.type) or arr.null_count or col.boolean is not None or col.nested is not None
            or cap > 2**53):
        return None
    if len(arr):
        bounds = pc.min_max(arr)
        if bounds["min"].as_py() < 0 or bounds["max"].as_py() > cap:
            return None
    return np.array(arr.to_numpy(zero_copy_only=False), dtype=np.int64)  # its own copy, writeable


# -- labels and codes ------------------------------------------------------------------------------------------
def code_dtype(size: int) -> np.dtype:
    """The smallest signed integer type for codes of ``size`` labels (-1 = missing), with room for code + 1."""
    return np.dtype(next((t for t in (np.int8, np.int16, np.int32) if size < np.iinfo(t).max), np.int64))


def codes(col: Col) -> tuple[np.ndarray, np.ndarray]:
    """(codes, labels): codes (in :func:`code_dtype` of the labels) into an object array of distinct text labels;
    -1 for absent values.

    Blank text is absent; numbers and booleans are written as text (``5.0`` as ``5``, ``True``)."""
    arr = col.arr
    n = len(arr)
    if pa.types.is_null(arr.type) or n == 0 or pa.types.is_nested(arr.type):
        return np.full(n, -1, dtype=np.int8), np.zeros(0, dtype=object)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    dictionary = arr.dictionary
    if col.is_text():
        labels = np.array(dictionary.to_pylist(), dtype=object)
        blank = _blank_text(dictionary) if len(dictionary) else np.zeros(0, dtype=bool)
    else:
        labels = np.array([scalar_str(v) if v is not None else None for v in dictionary.to_pylist()], dtype=object)
        blank = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in dictionary.to_pylist()],
                         dtype=bool)
    indices = pc.fill_null(arr.indices, -1) if arr.indices.null_count else arr.indices
    idx = indices.to_numpy(zero_copy_only=False).astype(code_dtype(len(labels)))  # its own copy, writeable
    if blank.any():
        idx = np.where(idx >= 0, np.where(blank[np.maximum(idx, 0)], -1, idx), -1)
    if col.nested is not None:
        idx[col.nested] = -1
    return idx, labels


def plain_text(col: Col, drop: np.ndarray | None = None) -> pa.Array:
    """The column as large_string text; absent (blank, nested) values and rows in ``drop`` are null. Dictionary
    text is decoded after dropping, so a rejected 1 MB value repeated by a dictionary is never copied per row."""
    arr = col.arr
    n = len(arr)
    if isinstance(arr, pa.ChunkedArray):
        return _per_chunk(arr, lambda chunk, part: plain_text(Col(chunk), part), drop)
    if pa.types.is_null(arr.type) or pa.types.is_nested(arr.type):
        return pa.nulls(n, pa.large_string())
    if col.is_text():
        blank = _blank_text(arr)
        if col.nested is not None:
            blank |= col.nested
        if drop is not None:
            blank |= drop
        if pa.types.is_dictionary(arr.type):
            indices = pc.if_else(pa.array(blank), pa.scalar(None, arr.indices.type), arr.indices)
            return pc.cast(arr.dictionary, pa.large_string()).take(indices)
        text = pc.cast(arr, pa.large_string())
        return pc.if_else(pa.array(blank), pa.scalar(None, pa.large_string()), text) if blank.any() else text
    idx, labels = codes(col)
    if not len(labels):
        return pa.nulls(n, pa.large_string())
    taken = pa.array(list(labels), type=pa.large_string()).take(pa.array(np.where(idx >= 0, idx, 0)))
    return pc.if_else(pa.array(idx < 0), pa.scalar(None, pa.large_string()), taken)


# -- timestamps ------------------------------------------------------------------------------------------------
NS_LOW = pd.Timestamp("1678-01-01", tz="UTC").value
NS_HIGH = pd.Timestamp("2261-12-31", tz="UTC").value


#: what can be wrong with a timestamp; ``Times.problem`` holds 1 + the index here (0 = fine)
PROBLEMS = ("range", "not_iso", "not_date", "no_zone", "dst", "dst_typed", "seconds", "epoch")
_CODE = {name: np.int8(i + 1) for i, name in enumerate(PROBLEMS)}


@dataclasses.dataclass
class Times:
    """UTC nanoseconds plus, per row, the problem found (0 = fine, else 1 + index into :data:`PROBLEMS`)."""

    ns: np.ndarray
    problem: np.ndarray


def _problem(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int8)


def timestamps(col: Col, absent_mask: np.ndarray, timezone: str | None) -> Times:
    """Parse a timestamp column: typed timestamps, epoch milliseconds (numbers or digits) or ISO-8601 text."""
    arr = col.arr
    t = arr.type
    n = len(arr)
    out = Times(np.zeros(n, dtype=np.int64), _problem(n))
    if pa.types.is_timestamp(t):
        valid = ~absent_mask
        raw = np.array(pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[t.unit]
        in_range = valid & (raw >= NS_LOW // per) & (raw <= NS_HIGH // per)
        if in_range.all():  # the usual typed column: no masked copies
            out.ns = raw * per if per != 1 else raw
        else:
            out.problem[valid & ~in_range] = _CODE["range"]
            out.ns[in_range] = raw[in_range] * per
        if t.tz is None:
            _localise(out, in_range, timezone, typed=True)
        return out
    if pa.types.is_date(t):
        return timestamps(Col(pc.cast(arr, pa.string())), absent_mask, timezone)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        ms = np.array(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        _epoch(out, ms, ~absent_mask & ~col.bool_mask() & ~col.nested_mask())
        out.problem[col.bool_mask()] = _CODE["not_iso"]
        return out
    if not col.is_text():
        out.problem[~absent_mask] = _CODE["not_iso"]
        return out
    if pa.types.is_dictionary(t):  # parse each distinct text once
        inner = Col(arr.dictionary)
        parsed = timestamps(inner, _blank_text(arr.dictionary), timezone)
        idx = np.asarray(pc.fill_null(arr.indices, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        out.ns = parsed.ns[idx] if len(idx) and len(parsed.ns) else out.ns
        out.problem = parsed.problem[idx] if len(idx) and len(parsed.ns) else out.problem
        out.ns[absent_mask] = 0
        out.problem[absent_mask] = 0
        return out
    todo = ~absent_mask & ~col.bool_mask() & ~col.nested_mask()  # nested values have their own reason
    out.problem[col.bool_mask()] = _CODE["not_iso"]
    if not todo.any():
        return out
    filled = pc.if_else(pa.array(todo), arr, "2026-01-01T00:00:00Z") if not todo.all() else arr
    try:  # the common case: every value is ISO-8601 with an offset
        ns = pc.fill_null(pc.cast(filled, pa.timestamp("ns", "UTC")).cast(pa.int64()), 0).to_numpy(
            zero_copy_only=False)
        out.ns[todo] = np.asarray(ns, dtype=np.int64)[todo]
        return out
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(arr)
    number = _bools(pc.match_substring_regex(text, _NUMBER)) & todo
    if number.any():
        ms = _text_numbers(pc.if_else(pa.array(number), text, "0"), ~number)
        _epoch(out, ms, number)
    zoned = _bools(pc.match_substring_regex(text, _ZONE)) & todo & ~number
    datey = _bools(pc.match_substring_regex(text, _DATE)) & todo & ~number & ~zoned
    out.problem[todo & ~number & ~zoned & ~datey] = _CODE["not_iso"]
    if zoned.any():
        idx = np.flatnonzero(zoned)
        ns, ok, too_far = _parse_iso(text.take(pa.array(idx)), utc=True)
        out.ns[idx[ok]] = ns[ok]
        out.problem[idx[~ok & too_far]] = _CODE["range"]
        out.problem[idx[~ok & ~too_far]] = _CODE["not_iso"]
    if datey.any():
        idx = np.flatnonzero(datey)
        if timezone is None:
            out.problem[idx] = _CODE["no_zone"]
        else:
            ns, ok, too_far = _parse_iso(text.take(pa.array(idx)), utc=False)
            out.ns[idx[ok]] = ns[ok]
            out.problem[idx[~ok & too_far]] = _CODE["range"]
            out.problem[idx[~ok & ~too_far]] = _CODE["not_date"]
            mask = np.zeros(n, dtype=bool)
            mask[idx[ok]] = True
            _localise(out, mask, timezone, typed=False)
    return out


def _parse_iso(text: pa.Array, utc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ns, parsed, out_of_range) for ISO-8601 text: Arrow's parser, then pandas for what it refused, then Python's
    for telling a valid but unrepresentable time (year 9999) from text that is not a time at all."""
    n = len(text)
    target = pa.timestamp("ns", "UTC") if utc else pa.timestamp("ns")
    try:
        ns = np.asarray(pc.cast(text, target).cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        return ns, np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    except pa.ArrowInvalid:
        pass
    series = pd.Series(text.to_pylist(), dtype=object)
    ns = np.zeros(n, dtype=np.int64)
    try:
        parsed = pd.to_datetime(series, utc=utc, errors="coerce", format="ISO8601")
        ok = parsed.notna().to_numpy()
        if ok.any():
            ns[ok] = pd.DatetimeIndex(parsed[ok]).as_unit("ns").asi8
    except (ValueError, OverflowError, TypeError):  # pandas raises for some out-of-bounds times: one at a time
        ok = np.zeros(n, dtype=bool)
        for s, rows in series.groupby(series, sort=False).indices.items():
            try:
                one = pd.Timestamp(s)
                if (one.tzinfo is not None) != utc:
                    continue
                ns[rows] = (one.tz_convert("UTC") if utc else one).as_unit("ns").value
                ok[rows] = True
            except (ValueError, OverflowError, TypeError):
                continue
    too_far = np.zeros(n, dtype=bool)
    verdict: dict[str, bool] = {}
    for i in np.flatnonzero(~ok):
        s = series.iat[i]
        if s not in verdict:
            verdict[s] = _valid_iso_out_of_range(s, utc)
        too_far[i] = verdict[s]
    return ns, ok, too_far


def _valid_iso_out_of_range(text: str, utc: bool) -> bool:
    try:
        value = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        return False
    if utc != (value.tzinfo is not None):
        return False
    return not (1678 <= value.year <= 2261)


def _epoch(out: Times, ms: np.ndarray, rows: np.ndarray) -> None:
    """Epoch milliseconds; seconds, negative, non-finite and far-future values get their own problem."""
    with np.errstate(invalid="ignore"):
        bad = rows & (~np.isfinite(ms) | (ms < 0) | (ms >= 1e14))
        seconds = rows & ~bad & (ms >= 1e9) & (ms < 1e11)
        ok = rows & ~bad & ~seconds
    out.problem[bad] = _CODE["epoch"]
    out.problem[seconds] = _CODE["seconds"]
    # ms * 1e6 in float64 would be off by up to ~128 ns at today's epochs; scale the whole part as integers.
    whole = np.floor(ms[ok])
    out.ns[ok] = whole.astype(np.int64) * 1_000_000 + np.round((ms[ok] - whole) * 1e6).astype(np.int64)


def _localise(out: Times, rows: np.ndarray, timezone: str | None, typed: bool) -> None:
    if timezone is None:
        out.problem[rows] = _CODE["no_zone"]
        return
    idx = np.flatnonzero(rows)
    if not len(idx):
        return
    local = pd.DatetimeIndex(out.ns[idx].view("M8[ns]")).tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    bad = np.asarray(local.isna())
    out.problem[idx[bad]] = _CODE["dst_typed" if typed else "dst"]
    good = idx[~bad]
    out.ns[good] = local[~bad].tz_convert("UTC").as_unit("ns").asi8


# -- JSON values -----------------------------------------------------------------------------------------------
def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value without recursion (a scalar is 0, ``{}`` is 1)."""
    depth = 0
    stack = [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in value)
    return depth


#: the value types of a JSON object or array that orjson reads exactly as ``json`` does (a float may be an integer
#: beyond 64 bits that orjson turned into a float; ``json`` keeps it an int)
_EXACT = frozenset({str, int, bool, type(None)})


def json_loads(text: str) -> Any:
    """``json.loads(text)``, by orjson (several times faster) where it gives the same value. orjson refuses NaN,
    Infinity, lone surrogates and more than 1024 levels (those texts go to ``json``), and reads integers beyond 64
    bits as floats: a value holding a float or a nested object or array goes to ``json`` too. Raises what
    ``json.loads`` raises (``json.JSONDecodeError``, ``RecursionError``)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    kind = type(value)
    if kind in _EXACT or (kind is dict and _EXACT.issuperset(map(type, value.values()))) or \
            (kind is list and _EXACT.issuperset(map(type, value))):  # the types tested in C, not by a generator
        return value
    return json.loads(text)


def objects(col: Col, original: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values): each row's code into an array of distinct raw values (JSON text, or Python objects from
    JSON records and nested Arrow columns); -1 for absent values. Distinct text is handled once."""
    n = len(col)
    if original is not None and original.dtype == object:
        values = original.to_numpy(dtype=object)
    elif pa.types.is_nested(col.arr.type):
        values = _object_array(col.arr.to_pylist())
    else:
        return codes(col)
    out = np.full(n, -1, dtype=np.int64)
    distinct: list[Any] = []
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        if isinstance(v, str):
            if v not in seen:
                seen[v] = len(distinct)
                distinct.append(v)
            out[i] = seen[v]
        else:
            out[i] = len(distinct)
            distinct.append(v)
    return out, _object_array(distinct)


def _object_array(values: list[Any]) -> np.ndarray:
    """A 1-d object array (numpy would turn a list of equal-length lists into a 2-d one)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out
