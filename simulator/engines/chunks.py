"""Read traffic files in chunks and yield normalised, globally time-ordered tables of bounded size.

Parquet is read with ``pyarrow.parquet.ParquetFile.iter_batches`` file by file (directories and globs expand as for
the in-memory reader, so a Hive-partitioned folder reads the same rows) and each record batch is validated by the
in-memory reader's Arrow code (:func:`simulator.io.traffic.normalize_raw`), CSV with ``pandas.read_csv(chunksize=)``
(all columns as text, as the in-memory reader does), JSONL line by line. A ``.json`` array or a gzipped Parquet file
cannot be split and is read whole.

Ordering: each chunk is normalised (validated, sorted by timestamp then request_id) by
:func:`simulator.io.traffic.normalize_raw`. Rows at the chunk's last timestamp are held back and merged with the next chunk (unless it is the
last), so ties across a chunk boundary sort as in memory. A row earlier than one already emitted means the input is not
time-ordered: :class:`~simulator.errors.InputError` asks to sort or partition by time (no on-disk sort is attempted).

Duplicates across chunks: the first pass keeps a set of 64-bit request-id hashes (:func:`simulator.hashing.hash64`
on the Arrow buffers; about 8-11 bytes per request);
two distinct ids collide with probability about n^2 / 2^65 (3e-4 for 100 M requests), in which case the later row is
wrongly rejected as a duplicate. The positions found are dropped again in later passes. With a spill folder
(:class:`ChunkSpill`) later passes re-read the first pass's chunks instead of parsing the source again.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from simulator.jit import njit

from simulator.errors import InputError
from simulator.hashing import hash64
from simulator.io.readers import PLAIN_TEXT, RawTable, detect_format, expand_paths, jsonl_lines, read_any
from simulator.io.traffic import normalize_raw, request_ids, time_order
from simulator.memory import release_memory


def iter_raw(path: Path, chunk_rows: int) -> Iterator[RawTable]:
    """Raw chunks of one file, each with ``_source``/``_row`` and its unparseable-line rejects: Parquet as Arrow
    record batches (text dictionary-encoded, as the in-memory reader keeps it), CSV and JSONL as pandas frames."""
    kind = detect_format(path)
    gz = path.suffix.lower() == ".gz"
    if kind == "parquet" and not gz:
        yield from _iter_parquet(path, chunk_rows)
    elif kind == "csv":
        offset = 0
        try:
            for frame in pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8",
                                     skip_blank_lines=True, chunksize=chunk_rows, on_bad_lines="skip"):
                frame["_row"] = np.arange(offset + 2, offset + len(frame) + 2, dtype=np.int64)
                frame["_source"] = str(path)
                offset += len(frame)
                yield RawTable(None, [], len(frame), kind, pandas=frame)
        except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot parse CSV ({str(exc).strip().splitlines()[0]}).") from None
    elif kind == "jsonl":
        for frame, rejects, rows_read in _iter_jsonl(path, chunk_rows):
            yield RawTable(None, rejects, rows_read, kind, pandas=frame)
    else:
        yield read_any(path)


def _parquet_file(path: Path):
    """The file opened with its text columns (apart from request ids) read as Arrow dictionaries, without
    pre-buffering: with it, ``iter_batches`` keeps about 18 bytes per row already read in Arrow's pool until the
    file is done (pyarrow 26; 1.8 GB of a 100 M-row file's peak), and it only pays off on object stores."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path, pre_buffer=False)
        text = [f.name for f in reader.schema_arrow if f.name not in PLAIN_TEXT
                and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        return pq.ParquetFile(path, read_dictionary=text, pre_buffer=False) if text else reader
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: BaseException) -> InputError:
    message = (str(exc).splitlines() or ["corrupt"])[0].replace("Dictionary array invalid: Invalid: ", "")
    return InputError(f"{path}: not a readable Parquet file ({message}).")


def _parquet_raw(path: Path, table, offset: int) -> RawTable:
    """A table as read, validated in full, with its 1-based file rows and source: one raw input."""
    import pyarrow as pa

    try:
        table.validate(full=True)  # e.g. invalid UTF-8 would otherwise fail later, lazily
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    n = table.num_rows
    table = table.append_column(
        "_row", pa.array(np.arange(offset + 1, offset + n + 1, dtype=np.int64))).append_column(
        "_source", pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([str(path)])))
    return RawTable(table, [], n, "parquet")


def _iter_parquet(path: Path, chunk_rows: int) -> Iterator[RawTable]:
    import pyarrow as pa

    batches = _parquet_file(path).iter_batches(batch_size=chunk_rows)
    offset = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _unreadable(path, exc) from None
        if batch is None:
            return
        yield _parquet_raw(path, pa.Table.from_batches([batch]), offset)
        offset += batch.num_rows


def read_row_group(path: Path, index: int) -> RawTable:
    """One Parquet row group (a cluster partition) as one raw input, read as streaming reads its chunks."""
    import pyarrow as pa

    reader = _parquet_file(path)
    try:
        offset = sum(reader.metadata.row_group(g).num_rows for g in range(index))
        table = reader.read_row_group(index)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    return _parquet_raw(path, table, offset)


def _iter_jsonl(path: Path, chunk_rows: int):
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    records, rows, rejects = [], [], []

    def flush():
        from simulator.io.adapters import expand_otlp_lines, is_otlp_lines

        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        frame["_row"] = np.asarray(rows, dtype=np.int64)
        frame["_source"] = str(path)
        if is_otlp_lines(frame):  # Collector file exporter: one row per span, not per line
            frame, span_rejects = expand_otlp_lines(frame)
            return frame, list(rejects) + span_rejects, len(frame) + len(rejects) + len(span_rejects)
        return frame, list(rejects), len(records) + len(rejects)

    with opener(path, "rb") as fh:
        for number, obj, reason in jsonl_lines(fh):
            if reason is not None:
                rejects.append({"row": number, "reason": reason})
                continue
            records.append(obj)
            rows.append(number)
            if len(records) >= chunk_rows:
                yield flush()
                records, rows, rejects = [], [], []
    if records or rejects:
        yield flush()


@njit(cache=True)
def _insert(table, keys):  # pragma: no cover - compiled
    """Insert keys into an open-addressing set (0 = empty); returns a mask of keys already present."""
    cap = table.shape[0]
    seen = np.zeros(keys.shape[0], np.bool_)
    for i in range(keys.shape[0]):
        k = keys[i]
        if k == 0:
            k = 1
        j = (k ^ (k >> 29)) % cap  # any capacity, not only powers of two: the table can be sized to the data
        while table[j] != 0 and table[j] != k:
            j = j + 1 if j + 1 < cap else 0
        if table[j] == k:
            seen[i] = True
        else:
            table[j] = k
    return seen


class IdSet:
    """A set of 64-bit request-id hashes (load factor <= 0.8), sized up front when the row count is known
    (Parquet metadata), so 100 M requests take ~1 GB and never pay a doubling's transient copy."""

    LOAD = 0.8

    def __init__(self, expected_rows: int = 0) -> None:
        self.table = np.zeros(max(1 << 16, int(expected_rows / self.LOAD) + 1), np.int64)
        self.n = 0

    def add(self, ids: np.ndarray) -> np.ndarray:
        keys = hash64(ids, 0, "request_id").view(np.int64)
        while (self.n + len(keys)) > self.table.shape[0] * self.LOAD:
            old = self.table[self.table != 0]
            self.table = np.zeros(self.table.shape[0] * 2, np.int64)
            _insert(self.table, old)
        seen = _insert(self.table, keys)
        self.n += int((~seen).sum())
        return seen


class Stream:
    """Normalised, time-ordered chunks of the traffic; iterate it once per pass.

    ``counts`` after a full pass: rows read, replayed, rejected (as in :meth:`simulator.io.traffic.Traffic.counts`).
    """

    def __init__(self, paths, *, adapter=None, mapping=None, timezone=None, chunk_rows: int = 1_000_000,
                 now: pd.Timestamp | None = None, spill_dir: str | Path | None = None) -> None:
        if chunk_rows < 1:
            raise InputError(f"chunk_rows must be an integer >= 1. Got {chunk_rows} instead.")
        if not paths:
            raise InputError("no traffic given: name files in the scenario's traffic: or with --traffic PATH.")
        self.files = expand_paths(list(paths))
        self.adapter, self.mapping, self.timezone = adapter, mapping, timezone
        self.chunk_rows = chunk_rows
        self.now = now if now is not None else pd.Timestamp.now(tz="UTC")
        self.duplicates: np.ndarray | None = None  # emission positions to drop, found by the first pass
        self.reject_reasons: dict[str, int] = {}
        self.rejects: list[dict] = []
        self.rows_read = self.rows_rejected = self.rows_replayed = 0
        #: with a folder, the first pass writes its chunks there and later passes re-read them (no parsing again)
        self.spill = ChunkSpill(spill_dir) if spill_dir is not None else None

    def _normalised(self) -> Iterator[pd.DataFrame]:
        for path in self.files:
            for raw in iter_raw(path, self.chunk_rows):
                self.rows_read += raw.rows_read
                self._reject([{"source": str(path), "row": r["row"], "request_id": None, "reason": r["reason"]}
                              for r in raw.rejects])
                if raw.num_rows == 0:
                    continue
                good, bad = normalize_raw(raw, adapter=self.adapter, mapping=self.mapping, where=str(path),
                                          timezone=self.timezone, now=self.now)
                del raw
                self._reject(bad)
                if len(good):
                    yield good

    def expected_rows(self) -> int:
        """Rows in the input when cheap to know (Parquet footers), else 0."""
        import pyarrow.parquet as pq

        total = 0
        for path in self.files:
            if path.suffix.lower() in (".parquet", ".pq"):
                try:
                    total += pq.ParquetFile(path).metadata.num_rows
                except Exception:  # noqa: BLE001 - the reader reports unreadable files with a proper message
                    continue
        return total

    def _reject(self, records: list[dict]) -> None:
        for r in records:
            self.reject_reasons[r["reason"]] = self.reject_reasons.get(r["reason"], 0) + 1
        self.rejects.extend(records)
        self.rows_rejected += len(records)

    def rejects_frame(self) -> pd.DataFrame:
        """The rejected rows of the last pass (source, row, request_id, reason), in source and row order."""
        frame = pd.DataFrame(self.rejects, columns=["source", "row", "request_id", "reason"])
        return frame.sort_values(["source", "row"], kind="stable", na_position="last").reset_index(drop=True)

    @property
    def from_spill(self) -> bool:
        """Whether the next pass re-reads the first pass's chunks from the spill folder."""
        return self.spill is not None and self.spill.complete

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self.from_spill:
            yield from self.spill
            return
        if self.spill is not None:
            self.spill.clear()
        for chunk in self._parse():
            if self.spill is not None:
                self.spill.write(chunk)
            yield chunk
        if self.spill is not None:
            self.spill.complete = True

    def _parse(self) -> Iterator[pd.DataFrame]:
        self.rows_read = self.rows_rejected = self.rows_replayed = 0
        self.reject_reasons = {}
        self.rejects = []
        first_pass = self.duplicates is None
        ids = IdSet(self.expected_rows()) if first_pass else None
        found: list[np.ndarray] = []
        position = 0
        last: tuple[int, str] | None = None
        pending: pd.DataFrame | None = None
        tables = self._normalised()
        following = next(tables, None)
        while following is not None:
            good, following = following, next(tables, None)  # one table ahead: the last one holds nothing back
            if pending is not None and len(pending):
                good = pd.concat([pending, good], ignore_index=True)
                order = time_order(good["timestamp"].array.asi8, request_ids(good))
                if not np.array_equal(order, np.arange(len(order))):  # usually in order already: no copy
                    good = good.iloc[order].reset_index(drop=True)
            ts = good["timestamp"].array.asi8
            # the table is in time order: the rows at its last timestamp are its tail (slices, not masked copies;
            # the few held rows copied so the chunk's columns are not kept alive by them)
            cut = int(np.searchsorted(ts, ts[-1], side="left")) if following is not None else len(ts)
            pending, out = good.iloc[cut:].copy(), good.iloc[:cut]
            if len(out):
                yield from self._emit(out, ids, found, position, last)
                position += len(out)
                release_memory()
                last = (int(out["timestamp"].array.asi8[-1]), str(out["request_id"].iat[-1]))
        if pending is not None and len(pending):
            yield from self._emit(pending.reset_index(drop=True), ids, found, position, last)
        if first_pass:
            self.duplicates = np.concatenate(found) if found else np.zeros(0, np.int64)
        if self.rows_replayed == 0:
            top = max(self.reject_reasons, key=self.reject_reasons.get) if self.reject_reasons else "no rows"
            raise InputError(f"{', '.join(map(str, self.files))}: no valid rows ({self.rows_rejected} rejected; "
                             f"e.g. {top}).")

    def _emit(self, out: pd.DataFrame, ids: IdSet | None, found: list, position: int, last):
        first = (int(out["timestamp"].array.asi8[0]), str(out["request_id"].iat[0]))
        if last is not None and first < last:
            when = pd.Timestamp(first[0], tz="UTC").isoformat()
            raise InputError(
                f"{', '.join(map(str, self.files))}: rows are not in time order across chunks (a row at {when} comes "
                f"after later rows). Sort the traffic by timestamp (or partition it by day with sorted file names), "
                f"or use the in-memory engine.")
        if ids is not None:
            dup = ids.add(request_ids(out))
            found.append(position + np.flatnonzero(dup))
        else:
            lo = np.searchsorted(self.duplicates, position)
            hi = np.searchsorted(self.duplicates, position + len(out))
            dup = np.zeros(len(out), bool)
            dup[self.duplicates[lo:hi] - position] = True
        if dup.any():
            ids_dup = out["request_id"].to_numpy(dtype=object)[dup]
            self._reject([{"source": ", ".join(map(str, self.files)), "row": None, "request_id": i,
                           "reason": "duplicate request_id (an earlier row has the same id)"} for i in ids_dup])
            out = out[~dup].reset_index(drop=True)
        self.rows_replayed += len(out)
        if len(out):
            yield out


class ChunkSpill:
    """Normalised chunks written once as Arrow IPC files (LZ4, text columns dictionary-encoded as in the frame) and
    re-read memory-mapped: later passes over a stream cost a read, not a parse. Each chunk comes back with the
    dtypes it was written with (category labels included), so every pass sees equal frames. Arrow's freed pages are
    handed back after each chunk (:func:`simulator.memory.release_memory`); the C heap's are kept for the next
    chunk's arrays, bounded by :func:`simulator.memory.steady_heap`. Trimming it after every chunk faulted every
    array of every chunk and candidate in afresh: 10 M rows, 5 candidates, the replay passes took 2.35 M page faults
    and 7.5 s of system time with the trim, 0.51 M and 2.0 s without; their peak RSS went from 933 to 957 MB and
    stays flat over the chunks."""

    COMPRESSION = "lz4"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.files: list[tuple[Path, pd.Series, list[str], Path | None]] = []
        self.complete = False
        self.bytes = 0

    def clear(self) -> None:
        for path, _, _, blocks in self.files:
            path.unlink(missing_ok=True)
            if blocks is not None:
                blocks.unlink(missing_ok=True)
        self.files, self.complete, self.bytes = [], False, 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.feather as feather

        path = self.folder / f"tfysim-chunk-{len(self.files):06d}.arrow"
        columns = list(frame.columns)
        blocks = None
        if "prefix_blocks" in frame and not frame["prefix_blocks"].isna().all():
            # lists mixing str and int have no Arrow type: pickled beside the chunk (our own file, read back once)
            blocks = path.with_suffix(".blocks.pickle")
            with blocks.open("wb") as fh:
                pickle.dump(frame["prefix_blocks"].to_numpy(), fh, protocol=pickle.HIGHEST_PROTOCOL)
            self.bytes += blocks.stat().st_size
            frame = frame.drop(columns="prefix_blocks")
        feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), path, compression=self.COMPRESSION)
        self.bytes += path.stat().st_size
        self.files.append((path, frame.dtypes, columns, blocks))

    def __iter__(self) -> Iterator[pd.DataFrame]:
        """The chunks in the order written; the next one is read on a second thread while this one is replayed
        (Arrow's reads and conversion release the GIL), so at most two chunks are held at a time."""
        from concurrent.futures import ThreadPoolExecutor

        if not self.files:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfysim-spill") as reader:
            ahead = reader.submit(self._read, 0)
            for k in range(len(self.files)):
                frame = ahead.result()
                ahead = reader.submit(self._read, k + 1) if k + 1 < len(self.files) else None
                yield frame
                del frame
                release_memory(heap=False)

    def _read(self, k: int) -> pd.DataFrame:
        import pyarrow.feather as feather

        path, dtypes, columns, blocks = self.files[k]
        frame = feather.read_table(path, memory_map=True).to_pandas()
        for name, dtype in dtypes.items():
            if frame[name].dtype != dtype:
                frame[name] = _as_dtype(frame[name], dtype)
        if blocks is not None:
            with blocks.open("rb") as fh:
                frame["prefix_blocks"] = pickle.load(fh)
            frame = frame[columns]
        return frame


def _as_dtype(column: pd.Series, dtype) -> pd.Series:
    """A column read back from Arrow in the dtype it was written with."""
    if isinstance(dtype, pd.CategoricalDtype) and list(column.cat.categories) == list(dtype.categories):
        return pd.Series(pd.Categorical.from_codes(column.cat.codes.to_numpy(), dtype=dtype), index=column.index,
                         name=column.name)
    return column.astype(dtype)
