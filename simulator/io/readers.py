"""Read CSV, JSONL/JSON and Parquet files (optionally gzip-compressed) into raw Arrow tables.

Every table carries ``_row`` (1-based line number for CSV and JSONL, counting the CSV header as line 1; 1-based row
index for Parquet and JSON arrays); ``read_any`` adds ``_source`` (file path). Lines that cannot be parsed are
returned as rejects with their line number instead of being dropped. Whole-file problems raise ``InputError``.

CSV and Parquet are read by pyarrow; every CSV column is text (validation converts it), columns that become
categories are dictionary-encoded while reading. gzip is decompressed as a stream and every file is bounded by
:class:`simulator.io.limits.Limits` (decompressed bytes, columns, header length); only regular files are read.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import io
import json
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from simulator.errors import InputError
from simulator.io.limits import Limits

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
MAX_LINE_BYTES = 8 * 1024 * 1024  # a longer JSONL line is rejected, not parsed
MAX_HEADER_BYTES = 1024 * 1024
#: canonical columns read as dictionaries (they become pandas categories)
DICTIONARY_COLUMNS = ("model", "requested_model", "user_id", "team", "project", "workflow_tag", "session_id",
                      "metadata", "prefix_hash")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NAME_CHARS = 40


@dataclass
class RawTable:
    """Rows as read: an Arrow table (CSV, Parquet) or a frame of Python objects (JSON), plus the lines that could
    not be parsed at all."""

    table: pa.Table | None
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    kind: str = ""
    pandas: pd.DataFrame | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a pandas frame (for adapters, which work on pandas)."""
        return self.pandas if self.pandas is not None else arrow_to_pandas(self.table)

    @property
    def raw(self) -> pa.Table | pd.DataFrame:
        """What :func:`simulator.io.traffic.normalize` takes: the Arrow table when there is one."""
        return self.table if self.table is not None else self.pandas

    @property
    def num_rows(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.pandas)

    @property
    def column_names(self) -> list[str]:
        return list(self.table.column_names if self.table is not None else self.pandas.columns)


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """A raw table as pandas (text as text, not categories), tolerating corrupt pandas metadata in a Parquet schema
    (found by fuzzing)."""
    decoded = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    table = pa.table(decoded, schema=pa.schema([f.with_type(c.type) for f, c in zip(table.schema, decoded)],
                                               metadata=table.schema.metadata))
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, KeyError, TypeError):
        try:
            return table.replace_schema_metadata(None).to_pandas()
        except (pa.ArrowException, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot convert the table ({_first_line(exc)}).") from None


def shown_columns(columns: Any, limit: int = 8) -> str:
    """Column names safe to echo in an error: identifier-like names only, truncated; never a header's raw values
    (a header line may hold ``AWS_SECRET_ACCESS_KEY=...``)."""
    names = sorted(str(c) for c in columns if not str(c).startswith("_"))
    safe = [n if len(n) <= _NAME_CHARS else n[:_NAME_CHARS] + "..." for n in names if _IDENTIFIER.fullmatch(n)]
    hidden = len(names) - len(safe)
    text = ", ".join(safe[:limit])
    if len(safe) > limit:
        text += f" (+{len(safe) - limit} more)"
    if hidden:
        note = f"{hidden} name{'s' if hidden > 1 else ''} not shown: not identifier-like"
        text = f"{text}; {note}" if text else note
    return text


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
        elif not path.exists() and not path.is_symlink():
            raise InputError(f"{path}: file not found.")
        else:
            check_regular(path)
            out.append(path)
    return out


def check_regular(path: Path) -> None:
    """Refuse FIFOs, devices and sockets (a FIFO blocks forever, /dev/zero never ends)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}).") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: not a regular file (a pipe, device or socket); traffic must be files.")


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


def read_any(path: Path, limits: Limits | None = None) -> RawTable:
    """Read one file of any supported format."""
    limits = limits or Limits.from_env()
    kind = detect_format(path)
    check_regular(path)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "json": _read_json, "parquet": _read_parquet}[kind]
    table = reader(path, limits)
    table.kind = kind
    _expand_otlp_lines(table)
    if table.table is not None:
        source = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.table.num_rows, np.int32)), [str(path)])
        table.table = table.table.append_column("_source", source)
    else:
        table.pandas["_source"] = str(path)
    table.rows_read = table.num_rows + len(table.rejects)
    return table


def _expand_otlp_lines(table: RawTable) -> None:
    """OTel Collector file exporter output (one ExportTraceServiceRequest per JSON line): one row per span."""
    from simulator.io.adapters import expand_otlp_lines, is_otlp_lines

    # "json" too: a .json file holding JSON lines is read as such (_read_json falls back to _read_jsonl)
    if table.kind in ("jsonl", "json") and table.pandas is not None and is_otlp_lines(table.pandas):
        table.pandas, span_rejects = expand_otlp_lines(table.pandas)
        table.rejects.extend(span_rejects)


# -- byte streams ---------------------------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


class LineScan:
    """Physical line numbers of CSV record starts, found while the bytes stream past.

    A line starts a record when an even number of quote characters precede it (RFC 4180: ``""`` inside a quoted
    field counts twice), so quoted commas and quoted newlines keep the numbering exact; empty lines are left out, as
    the parser skips them.
    """

    def __init__(self) -> None:
        self._even: list[np.ndarray] = []
        self._empty: list[np.ndarray] = []
        self._quotes = 0
        self._start_even = True
        self._cur_len = 0
        self._cur_last = -1
        self.unclosed_line = -1  # 0-based line where an unterminated quoted field starts

    def feed(self, data: bytes) -> None:
        if not data:
            return
        buf = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(buf == 10)
        q = np.flatnonzero(buf == 34)
        if len(nl):
            qb = (np.searchsorted(q, nl) + self._quotes) % 2 == 0  # parity at the start of the following line
            even = np.empty(len(nl), dtype=bool)
            even[0] = self._start_even
            even[1:] = qb[:-1]
            starts = np.empty(len(nl), dtype=np.int64)
            starts[0] = -self._cur_len
            starts[1:] = nl[:-1] + 1
            length = nl - starts
            before = buf[np.maximum(nl - 1, 0)]
            last_cr = np.where(nl > 0, before == 13, self._cur_last == 13)
            empty = (length == 0) | ((length == 1) & last_cr)
            self._even.append(even)
            self._empty.append(empty)
            self._start_even = bool(qb[-1])
            self._cur_len = len(buf) - int(nl[-1]) - 1
        else:
            self._cur_len += len(buf)
        self._cur_last = int(buf[-1])
        self._quotes += len(q)

    def record_lines(self) -> np.ndarray:
        """1-based physical line numbers where records start (the header's included)."""
        even = np.concatenate(self._even) if self._even else np.zeros(0, bool)
        empty = np.concatenate(self._empty) if self._empty else np.zeros(0, bool)
        if self._cur_len > 0 and not (self._cur_len == 1 and self._cur_last == 13):
            even = np.append(even, self._start_even)
            empty = np.append(empty, False)
        starts = np.flatnonzero(even & ~empty)
        if self._quotes % 2 == 1:
            self.unclosed_line = int(starts[-1]) if len(starts) else 0
        return starts + 1


class CappedStream(io.RawIOBase):
    """A binary stream that counts bytes, stops past ``cap`` and feeds an optional :class:`LineScan`.

    A failure (the cap, a damaged gzip stream) is kept in ``error`` and raised, or, once ``eof_on_error`` is set,
    reported as the end of the stream: for pyarrow's reader, which reads ahead on its own I/O threads. Raised there,
    the reader returns while a read ahead may still be waiting to call back into Python; if the process then exits,
    that thread is ended inside Arrow's C++ frames and the process aborts ("terminate called without an active
    exception", exit -6 instead of 2; apache/arrow#34314). At the end of the stream the reader returns once the reads
    it needs are done, and the caller raises ``error`` after :meth:`settle`."""

    def __init__(self, inner: Any, cap: int, scan: LineScan | None = None, prefix: bytes = b"") -> None:
        self._inner, self.cap, self.scan = inner, cap, scan
        self._prefix = prefix
        self.total = 0
        self.error: BaseException | None = None
        self.eof_on_error = False
        self.reads = 0  # read calls started, and those not yet returned: see settle()
        self.reading = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        self.reading += 1
        try:
            return self._read(size)
        finally:
            self.reading -= 1

    def settle(self, quiet_s: float = 0.05, limit_s: float = 2.0) -> None:
        """Wait until no read is running and none has started for ``quiet_s`` (at most ``limit_s``): the reads
        that pyarrow's reader issued ahead and had not started when it returned. Called before an error ends the
        command, so no Arrow thread calls back into a finalising interpreter."""
        import time

        deadline = time.monotonic() + limit_s
        seen = -1
        while time.monotonic() < deadline and (self.reading or seen != self.reads):
            seen = self.reads
            time.sleep(quiet_s)

    def _read(self, size: int) -> bytes:
        if self.error is not None and self.eof_on_error:
            return b""
        if self._prefix:
            data = self._prefix if size < 0 else self._prefix[:size]
            self._prefix = self._prefix[len(data):]
        else:
            try:
                data = self._inner.read(size)
            except (EOFError, OSError, zlib.error) as exc:
                self.error = exc
                if self.eof_on_error:
                    return b""
                raise
        self.total += len(data)
        if self.total > self.cap:
            self.error = _TooLarge()
            if self.eof_on_error:
                return b""
            raise self.error
        if self.scan is not None:
            self.scan.feed(data)
        return data

    def close(self) -> None:
        self._inner.close()
        super().close()


def open_stream(path: Path) -> Any:
    """The file's bytes, gzip decompressed as a stream when the name ends in .gz or the magic bytes say so."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}).") from None
    magic = raw.read(2)
    raw.seek(0)
    if path.suffix.lower() == ".gz" or magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def stream_error(path: Path, stream: CappedStream, limits: Limits) -> InputError | None:
    """The InputError for a failure inside the byte stream (gzip damage, size cap), if that was the cause."""
    exc = stream.error
    if isinstance(exc, _TooLarge):
        return InputError(f"{path}: more than {limits.max_file_bytes} bytes after decompression "
                          f"(limit max_file_bytes; raise it with TFYSIM_MAX_FILE_BYTES if the file is genuine).")
    if isinstance(exc, EOFError):
        return InputError(f"{path}: truncated gzip file ({exc}). Re-export or re-compress it.")
    if isinstance(exc, (OSError, zlib.error)):
        return InputError(f"{path}: corrupt gzip file ({exc}). Re-export or re-compress it.")
    return None


def _read_all(path: Path, limits: Limits) -> bytes:
    stream = CappedStream(open_stream(path), limits.max_file_bytes)
    parts = []
    try:
        while chunk := stream.read(1 << 20):  # in pieces, so the limit stops a huge file early
            parts.append(chunk)
        return b"".join(parts)
    except (_TooLarge, EOFError, OSError, zlib.error):
        raise stream_error(path, stream, limits) from None
    finally:
        stream.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["corrupt"])[0]


# -- CSV ------------------------------------------------------------------------------------------------------
def _header(stream: CappedStream, path: Path, limits: Limits) -> tuple[list[str], bytes]:
    """The header's column names and the bytes read to find them (handed back to the parser)."""
    seen = b""
    while True:
        chunk = stream._inner.read(64 * 1024)
        seen += chunk
        text = seen.lstrip(b"\r\n")
        end = text.find(b"\n")
        if end >= 0 or not chunk:
            break
        if len(seen) > MAX_HEADER_BYTES:
            break
    line = text[: end if end >= 0 else len(text)]
    if len(line) > MAX_HEADER_BYTES:
        raise InputError(f"{path}: header line longer than {MAX_HEADER_BYTES} bytes; is this a CSV file?")
    if not seen.strip():
        raise InputError(f"{path}: empty file, expected a CSV header and rows.")
    try:
        decoded = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _utf8_error(path, limits) from None
    if decoded.count(",") + 1 > limits.max_columns:
        raise InputError(f"{path}: more than {limits.max_columns} columns (limit max_columns; raise it with "
                         f"TFYSIM_MAX_COLUMNS if the file is genuine).")
    try:
        names = next(csv.reader([decoded.rstrip("\r")]), []) if decoded else []
    except csv.Error:  # e.g. a bare carriage return or NUL in the header: let the parser name the columns
        names = []
    return names, seen


def _read_csv(path: Path, limits: Limits) -> RawTable:
    # Parsed on both cores first; the parser numbers malformed lines only when parsing alone, so a file that has
    # some is parsed again single-threaded (malformed lines are rare; exact line numbers are the contract).
    table, scan, invalid = _parse_csv(path, limits, threads=True)
    if invalid:
        table, scan, invalid = _parse_csv(path, limits, threads=False)
    if table.num_columns > limits.max_columns:
        raise InputError(f"{path}: more than {limits.max_columns} columns (limit max_columns; raise it with "
                         f"TFYSIM_MAX_COLUMNS if the file is genuine).")
    lines = scan.record_lines()
    # An odd quote count alone may be a stray quote inside an unquoted field; the parser confirms it when the last
    # record came out malformed (it ran to the end of the file).
    if scan.unclosed_line >= 0 and (not table.num_rows or (invalid and invalid[-1][0] == len(lines))):
        raise InputError(f"{path}: cannot parse CSV (Error tokenizing data. C error: EOF inside string starting at "
                         f"row {scan.unclosed_line}).")
    table = _dedupe_names(table)
    rejects, rows = _csv_rows(lines, invalid, table.num_rows)
    table = table.append_column("_row", pa.array(rows, type=pa.int64()))
    return RawTable(table, rejects)


def _parse_csv(path: Path, limits: Limits, threads: bool) -> tuple[pa.Table, LineScan, list]:
    import pyarrow.csv as pcsv

    scan = LineScan()
    stream = CappedStream(open_stream(path), limits.max_file_bytes, scan)
    invalid: list[tuple[int | None, int, int]] = []
    parsed = False
    try:
        try:
            names, seen = _header(stream, path, limits)
        except (EOFError, OSError, zlib.error) as exc:
            stream.error = exc
            raise stream_error(path, stream, limits) from None
        stream._prefix = seen

        def on_invalid(row: Any) -> str:
            if row.text.strip():
                invalid.append((row.number, row.expected_columns, row.actual_columns))
            else:  # a whitespace-only line is a blank line
                invalid.append((row.number, 0, 0))
            return "skip"

        types = {name: pa.dictionary(pa.int32(), pa.string()) if name in DICTIONARY_COLUMNS else pa.string()
                 for name in names}
        # pyarrow decodes a malformed line's text before calling on_invalid; when that text is not UTF-8 the error
        # goes to sys.unraisablehook (a traceback on stderr). Collect it instead: the file is not UTF-8.
        unraisable: list[BaseException | None] = []
        hook = sys.unraisablehook
        sys.unraisablehook = lambda info: unraisable.append(info.exc_value)
        stream.eof_on_error = True  # failures end the stream; raised below, once the reader has stopped reading
        try:
            table = pcsv.read_csv(
                stream,
                read_options=pcsv.ReadOptions(use_threads=threads, block_size=8 << 20),
                parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(column_types=types, null_values=["\\N"], strings_can_be_null=True,
                                                    quoted_strings_can_be_null=False),
            )
        except (pa.ArrowException, _TooLarge, EOFError, OSError, zlib.error, ValueError) as exc:
            error = stream_error(path, stream, limits)
            if error is not None:
                raise error from None
            if "UTF8" in str(exc) or any(isinstance(e, UnicodeDecodeError) for e in unraisable):
                raise _utf8_error(path, limits) from None
            if _unclosed(scan):
                raise InputError(f"{path}: cannot parse CSV (Error tokenizing data. C error: EOF inside string "
                                 f"starting at row {scan.unclosed_line}).") from None
            # pyarrow ends some messages with the line's text: values are never echoed
            message = re.sub(r"(got \d+)\s*:.*", r"\1", _first_line(exc))
            raise InputError(f"{path}: cannot parse CSV ({message}).") from None
        finally:
            sys.unraisablehook = hook
        error = stream_error(path, stream, limits)
        if error is not None:
            raise error
        if any(isinstance(e, UnicodeDecodeError) for e in unraisable):
            raise _utf8_error(path, limits)
        parsed = True
    finally:
        if not parsed and stream.eof_on_error:  # an error ends the command: let pyarrow's reads ahead finish first
            stream.settle()
        stream.close()
    return table, scan, invalid


def _unclosed(scan: LineScan) -> bool:
    scan.record_lines()
    return scan.unclosed_line >= 0


def _csv_rows(lines: np.ndarray, invalid: list[tuple[int | None, int, int]], n_rows: int
              ) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rejects for malformed lines and the physical line number of every parsed row.

    The parser numbers records from 1 (the header) without empty lines, which is an index into ``lines``. When the
    quote heuristic disagrees with the parser (stray quotes inside unquoted fields), rows keep a stable order."""
    numbers = [n for n, _, _ in invalid]
    agree = len(lines) == n_rows + 1 + len(invalid) and all(n is not None and 1 <= n <= len(lines) for n in numbers)
    rejects = []
    for number, expected, actual in invalid:
        if expected == 0:
            continue
        row = int(lines[number - 1]) if agree else int(number or 0) + 1
        rejects.append({"row": row, "reason": f"malformed CSV line: expected {expected} fields, saw {actual}"})
    if agree:
        keep = np.ones(len(lines), dtype=bool)
        keep[0] = False
        keep[np.asarray(numbers, dtype=np.int64) - 1] = False
        return rejects, lines[keep].astype(np.int64)
    return rejects, np.arange(2, n_rows + 2, dtype=np.int64)


def _dedupe_names(table: pa.Table) -> pa.Table:
    """Repeated column names get ``.1``, ``.2`` suffixes, as pandas does."""
    seen: dict[str, int] = {}
    names = []
    for name in table.column_names:
        if name in seen:
            seen[name] += 1
            names.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            names.append(name)
    return table.rename_columns(names) if names != table.column_names else table


def _utf8_error(path: Path, limits: Limits) -> InputError:
    """Where the first byte that is not UTF-8 sits (only computed when the parser found one)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    stream = CappedStream(open_stream(path), limits.max_file_bytes)
    offset, lines = 0, 0
    try:
        while chunk := stream.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                in_chunk = max(exc.start - pending, 0)
                line = lines + chunk[:in_chunk].count(b"\n") + 1
                return InputError(f"{path} line {line}: not UTF-8 text (byte {offset + in_chunk}). Re-export as UTF-8.")
            offset += len(chunk)
            lines += chunk.count(b"\n")
    finally:
        stream.close()
    return InputError(f"{path}: not UTF-8 text. Re-export as UTF-8.")


# -- JSON -----------------------------------------------------------------------------------------------------
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


def jsonl_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record, reject reason) for every line that is not blank."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            obj, reason = parse_jsonl_line(line.rstrip(b"\n"))
            yield number, obj, reason


def records_frame(records: list[dict[str, Any]], rows: list[int]) -> pd.DataFrame:
    """Parsed JSON records as a frame of Python objects (validation converts them, kind by kind)."""
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.astype(object) if len(frame.columns) else frame
    frame["_row"] = np.asarray(rows, dtype=np.int64)
    return frame


def _read_jsonl(path: Path, limits: Limits) -> RawTable:
    stream = CappedStream(open_stream(path), limits.max_file_bytes)
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    rejects: list[dict[str, Any]] = []
    any_text = False
    try:
        for number, obj, reason in jsonl_lines(io.BufferedReader(stream, buffer_size=1 << 20)):
            any_text = True
            if reason is not None:
                rejects.append({"row": number, "reason": reason})
                continue
            records.append(obj)
            rows.append(number)
    except (_TooLarge, EOFError, OSError, zlib.error):
        raise stream_error(path, stream, limits) from None
    finally:
        stream.close()
    if not any_text:
        raise InputError(f"{path}: empty file, expected one JSON object per line.")
    return RawTable(None, rejects, pandas=records_frame(records, rows))


def _read_json(path: Path, limits: Limits) -> RawTable:
    """A JSON document: an array of records, ``{"data": [...]}`` (span API), or an OTLP export."""
    data = _read_all(path, limits)
    if not data.strip():
        raise InputError(f"{path}: empty file, expected JSON.")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_keep_constant)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}).") from None
    except json.JSONDecodeError as exc:
        # A .json file holding JSON lines is common; read it as such.
        if exc.msg == "Extra data":
            return _read_jsonl(path, limits)
        raise InputError(f"{path} line {exc.lineno}: malformed JSON ({exc.msg}).") from None
    except RecursionError:
        raise InputError(f"{path}: malformed JSON (nested too deeply).") from None
    del data
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
    return RawTable(None, rejects, pandas=records_frame(good, rows))


# -- Parquet --------------------------------------------------------------------------------------------------
#: Parquet text columns read as plain strings: one value per request, so a dictionary would only cost a hash table.
PLAIN_TEXT = ("request_id",)


def _read_parquet(path: Path, limits: Limits) -> RawTable:
    import pyarrow.parquet as pq

    def unreadable(exc: BaseException) -> InputError:
        message = _first_line(exc).replace("Dictionary array invalid: Invalid: ", "")
        return InputError(f"{path}: not a readable Parquet file ({message}).")

    try:
        source = pa.BufferReader(_read_all(path, limits)) if path.suffix.lower() == ".gz" else path
        try:
            pf = pq.ParquetFile(source, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file (Could not open Parquet input source '{path}': "
                             f"{_first_line(exc)}).") from None
        schema = pf.schema_arrow
        if len(schema) > limits.max_columns:
            raise InputError(f"{path}: more than {limits.max_columns} columns (limit max_columns; raise it with "
                             f"TFYSIM_MAX_COLUMNS if the file is genuine).")
        text = [f.name for f in schema if f.name not in PLAIN_TEXT
                and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        # Text stays dictionary-encoded: a repeated 1 MB string costs 1 MB, not rows x 1 MB. No pre-buffering: it
        # coalesces reads for object stores; on a local file it costs CPU and ~90 MB of RSS at 5 M rows.
        table = pq.read_table(source, read_dictionary=text, pre_buffer=False) if text else pf.read()
        table.validate(full=True)  # e.g. invalid UTF-8 in a string column would otherwise fail later, lazily
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise unreadable(exc) from None
    _check_decoded_size(table, path, limits)
    table = table.append_column("_row", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    return RawTable(table, [])


def _check_decoded_size(table: pa.Table, path: Path, limits: Limits) -> None:
    """Bytes that plain text columns (request ids, prompts) take once decoded, checked before decoding them."""
    import pyarrow.compute as pc

    total = 0
    for name, cap in (("request_id", limits.max_value_bytes), ("prompt", limits.max_prompt_bytes)):
        if name not in table.column_names:
            continue
        for chunk in table.column(name).chunks:
            if pa.types.is_dictionary(chunk.type):  # values over the cap are rejected before decoding: not counted
                lengths = np.nan_to_num(pc.binary_length(chunk.dictionary).to_numpy(zero_copy_only=False))
                lengths = np.where(lengths > cap, 0, lengths).astype(np.int64)
                idx = chunk.indices.to_numpy(zero_copy_only=False)
                valid = ~np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)
                total += int(lengths[np.asarray(idx[valid], dtype=np.int64)].sum())
            else:
                total += chunk.nbytes
    if total > limits.max_file_bytes:
        raise InputError(f"{path}: more than {limits.max_file_bytes} bytes of text once decoded (limit "
                         f"max_file_bytes; raise it with TFYSIM_MAX_FILE_BYTES if the file is genuine).")
