"""Read CSV, JSONL/JSON and Parquet files (optionally gzip-compressed) into raw pandas frames.

Every frame carries ``_source`` (file path) and ``_row`` (1-based line number for CSV and JSONL, counting the CSV
header as line 1; 1-based row index for Parquet and JSON arrays). Lines that cannot be parsed are returned as rejects
with their line number instead of being dropped. Whole-file problems raise ``InputError``.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import InputError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
MAX_LINE_BYTES = 8 * 1024 * 1024  # a longer JSONL line is rejected, not parsed


@dataclass
class RawTable:
    """Rows as read, plus the lines that could not be parsed at all."""

    frame: pd.DataFrame
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    kind: str = ""


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files named by paths, directories (their supported files, sorted) and glob patterns."""
    out: list[Path] = []
    for raw in paths:
        text = str(raw)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern.")
            out.extend(m for m in matches if m.is_file())
            continue
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and detect_format(p, strict=False))
            if not found:
                raise InputError(f"{path}: directory holds no .csv, .jsonl, .json or .parquet files.")
            out.extend(found)
        elif not path.exists():
            raise InputError(f"{path}: file not found.")
        else:
            out.append(path)
    return out


def detect_format(path: Path, strict: bool = True) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None and strict:
        raise InputError(
            f"{path}: unknown file type. Expected .csv, .jsonl, .ndjson, .json or .parquet (optionally .gz)."
        )
    return kind


def read_any(path: Path) -> RawTable:
    """Read one file of any supported format."""
    kind = detect_format(path)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "json": _read_json, "parquet": _read_parquet}[kind]
    table = reader(path)
    table.kind = kind
    _expand_otlp_lines(table)
    frame = table.frame
    frame["_source"] = str(path)
    table.rows_read = len(frame) + len(table.rejects)
    return table


def _expand_otlp_lines(table: RawTable) -> None:
    """OTel Collector file exporter output (one ExportTraceServiceRequest per JSON line): one row per span."""
    from simulator.io.adapters import expand_otlp_lines, is_otlp_lines

    if table.kind == "jsonl" and is_otlp_lines(table.frame):
        table.frame, span_rejects = expand_otlp_lines(table.frame)
        table.rejects.extend(span_rejects)


def _open_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}).") from None
    if path.suffix.lower() == ".gz" or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            reason = "truncated" if isinstance(exc, EOFError) else "corrupt"
            raise InputError(f"{path}: {reason} gzip file ({exc}). Re-export or re-compress it.") from None
    return data


def _read_csv(path: Path) -> RawTable:
    data = _open_bytes(path)
    if not data.strip():
        raise InputError(f"{path}: empty file, expected a CSV header and rows.")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path} line {line}: not UTF-8 text (byte {exc.start}). Re-export as UTF-8.") from None
    rejects: list[dict[str, Any]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(
                io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[], on_bad_lines="warn",
                encoding="utf-8", skip_blank_lines=True,
            )
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: empty file, expected a CSV header and rows.") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise InputError(f"{path}: cannot parse CSV ({str(exc).strip().splitlines()[0]}).") from None
    for warning in caught:
        for match in re.finditer(r"Skipping line (\d+): (.*)", str(warning.message)):
            rejects.append({"row": int(match.group(1)), "reason": f"malformed CSV line: {match.group(2).strip()}"})
    # Line numbers of parsed rows: header is line 1. Blank lines and skipped bad lines shift rows, so count them.
    frame["_row"] = _csv_line_numbers(data, len(frame), {r["row"] for r in rejects})
    return RawTable(frame, rejects)


def _csv_line_numbers(data: bytes, n_rows: int, skipped: set[int]) -> np.ndarray:
    """Physical line numbers where parsed CSV records start.

    A line starts a record when an even number of quote characters precede it (RFC 4180: ``""`` inside a quoted
    field counts twice), so quoted commas and quoted newlines keep the numbering exact; blank lines and the lines
    pandas skipped as malformed are left out.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    starts = starts[starts < len(buf)]
    quotes_before = np.searchsorted(np.flatnonzero(buf == ord('"')), starts)
    line_end = np.append(newlines, len(buf))[np.searchsorted(newlines, starts)]  # end of each line
    # Blank lines are empty or start with whitespace; only those few are inspected one by one.
    maybe = np.flatnonzero((line_end == starts) | np.isin(buf[np.minimum(starts, len(buf) - 1)], list(b" \t\r")))
    blank = np.zeros(len(starts), dtype=bool)
    blank[maybe] = [not data[starts[i]:line_end[i]].strip() for i in maybe]
    numbers = np.flatnonzero((quotes_before % 2 == 0) & ~blank) + 1
    numbers = numbers[1:]  # the header
    if skipped:
        numbers = numbers[~np.isin(numbers, list(skipped))]
    if len(numbers) != n_rows:  # the parser disagreed (e.g. stray quotes); record order is still unique and stable
        return np.arange(2, n_rows + 2, dtype=np.int64)
    return numbers.astype(np.int64)


def _keep_constant(name: str) -> str:
    """JSON's non-standard NaN/Infinity stay text, so validation rejects them as it does in CSV (not 'absent')."""
    return name


def parse_jsonl_line(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One JSON-lines record, or the reason it is rejected (shared by every reader of JSONL)."""
    if len(line) > MAX_LINE_BYTES:
        return None, f"line longer than {MAX_LINE_BYTES} bytes"
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_keep_constant)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "malformed JSON: nested too deeply"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    return obj, None


def _read_jsonl(path: Path) -> RawTable:
    data = _open_bytes(path)
    if not data.strip():
        raise InputError(f"{path}: empty file, expected one JSON object per line.")
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    rejects: list[dict[str, Any]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        obj, reason = parse_jsonl_line(line)
        if reason is not None:
            rejects.append({"row": number, "reason": reason})
            continue
        records.append(obj)
        rows.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame["_row"] = np.asarray(rows, dtype=np.int64)
    return RawTable(frame, rejects)


def _read_json(path: Path) -> RawTable:
    """A JSON document: an array of records, ``{"data": [...]}`` (span API), or an OTLP export."""
    data = _open_bytes(path)
    if not data.strip():
        raise InputError(f"{path}: empty file, expected JSON.")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_keep_constant)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}).") from None
    except json.JSONDecodeError as exc:
        # A .json file holding JSON lines is common; read it as such.
        if exc.msg == "Extra data":
            return _read_jsonl(path)
        raise InputError(f"{path} line {exc.lineno}: malformed JSON ({exc.msg}).") from None
    except RecursionError:
        raise InputError(f"{path}: malformed JSON (nested too deeply).") from None
    if isinstance(doc, dict) and "resourceSpans" in doc:
        from simulator.io.adapters import otlp_records

        records = otlp_records(doc)
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
        records = doc["data"]
    elif isinstance(doc, list):
        records = doc
    else:
        raise InputError(f"{path}: expected a JSON array of records, {{\"data\": [...]}} or an OTLP export.")
    good, rows, rejects = [], [], []
    for i, rec in enumerate(records, start=1):
        if isinstance(rec, dict):
            good.append(rec)
            rows.append(i)
        else:
            rejects.append({"row": i, "reason": f"expected a JSON object, got {type(rec).__name__}"})
    frame = pd.DataFrame.from_records(good) if good else pd.DataFrame()
    frame["_row"] = np.asarray(rows, dtype=np.int64)
    return RawTable(frame, rejects)


def _read_parquet(path: Path) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".gz":
            table = pq.read_table(io.BytesIO(_open_bytes(path)))
        else:
            table = pq.read_table(path)
        table.validate(full=True)  # e.g. invalid UTF-8 in a string column would otherwise fail later, lazily
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({(str(exc).splitlines() or ['corrupt'])[0]}).") from None
    try:
        frame = table.to_pandas()
    except (pa.ArrowException, ValueError, KeyError, TypeError):
        # Corrupt pandas metadata in the schema (found by fuzzing): the columns themselves may still be fine.
        try:
            frame = table.replace_schema_metadata(None).to_pandas()
        except (pa.ArrowException, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({(str(exc).splitlines() or ['corrupt'])[0]}).") from None
    frame["_row"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return RawTable(frame, [])
