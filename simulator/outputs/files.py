"""Writing run outputs atomically (temporary file + rename), so a failed run never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.errors import TfysimError


def write_text(path: str | Path, text: str | bytes) -> Path:
    """Write ``text`` to ``path`` atomically; an unwritable place is a one-line error, not a traceback."""
    path = Path(path)
    try:
        return _write_atomic(path, text)
    except OSError as exc:
        raise TfysimError(f"{path}: cannot write ({exc.strerror or exc}). Write somewhere writable (--out).") from None


def _write_atomic(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def dumps(obj: Any) -> str:
    """Stable JSON text: indented, keys in insertion order, no NaN, trailing newline."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, dumps(obj))


def write_rejects(path: str | Path, rejects: pd.DataFrame) -> Path:
    lines = []
    for rec in rejects.to_dict(orient="records"):
        rid, row = rec.get("request_id"), rec.get("row")
        lines.append(json.dumps({
            "source": rec["source"], "row": None if row is None or row != row else int(row),
            "request_id": None if rid is None or (isinstance(rid, float) and rid != rid) else str(rid),
            "reason": rec["reason"],
        }, ensure_ascii=False))
    return write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, compression="zstd")
    return write_text(path, buf.getvalue())
