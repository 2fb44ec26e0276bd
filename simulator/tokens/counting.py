"""Token counting at traffic scale: dedupe texts, batch-encode the unique ones on both cores, cache counts on disk.

System prompts and templates repeat across requests, so the unique texts are usually a small fraction of the rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.tokens.backends import Tokenizer

MISSING = -1  # count reported for a missing (None/NaN) text


def text_sha256(text: str) -> str:
    """Hex sha256 of the UTF-8 text: the key of counts files and the on-disk cache."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CountCache:
    """On-disk token counts keyed by (tokenizer cache key, text sha256), in one sqlite file under ``cache_dir``."""

    def __init__(self, cache_dir: str | Path):
        self.path = Path(cache_dir) / "token-counts.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        import sqlite3  # only a run with a count cache needs it (its import is a shared-library load)

        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counts (tokenizer TEXT NOT NULL, text_sha256 TEXT NOT NULL, "
            "tokens INTEGER NOT NULL, PRIMARY KEY (tokenizer, text_sha256)) WITHOUT ROWID"
        )

    def get(self, tokenizer_key: str, hashes: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(hashes), 900):  # stay under sqlite's bound-parameter limit
            chunk = hashes[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text_sha256, tokens FROM counts WHERE tokenizer = ? AND text_sha256 IN ({marks})",
                [tokenizer_key, *chunk],
            )
            found.update(rows)
        return found

    def put(self, tokenizer_key: str, hashes: list[str], counts: np.ndarray) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO counts VALUES (?, ?, ?)",
                zip([tokenizer_key] * len(hashes), hashes, (int(c) for c in counts)),
            )

    def close(self) -> None:
        self._db.close()


def unique_texts(texts: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """``(codes, uniques)``: ``uniques[codes[i]] == texts[i]``; missing texts get code -1. Arrow-backed text (a
    ``string[pyarrow]`` Series, an Arrow array) is deduplicated by Arrow over its buffers, without a Python string
    per row."""
    if _is_arrow_text(texts):
        from simulator.hashing import dictionary_text

        encoded = dictionary_text(texts)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        return codes, encoded.dictionary.to_pylist()
    values = np.asarray(texts, dtype=object) if not isinstance(texts, (pd.Series, np.ndarray)) else texts
    codes, uniques = pd.factorize(pd.Series(values, dtype=object, copy=False), use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), [str(u) for u in uniques]


def _is_arrow_text(texts) -> bool:
    import pyarrow as pa

    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)
    if not isinstance(texts, pd.Series):
        return False
    dtype = texts.dtype
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    return isinstance(dtype, pd.ArrowDtype) and (pa.types.is_string(dtype.pyarrow_dtype)
                                                  or pa.types.is_large_string(dtype.pyarrow_dtype))


def count_unique(tokenizer: Tokenizer, uniques: list[str], cache: CountCache | None = None) -> np.ndarray:
    """Counts for distinct texts, looking them up in ``cache`` first and storing what was counted."""
    if cache is None or not uniques:
        return tokenizer.count_batch(uniques)
    hashes = [text_sha256(t) for t in uniques]
    cached = cache.get(tokenizer.cache_key, hashes)
    counts = np.fromiter((cached.get(h, MISSING) for h in hashes), dtype=np.int64, count=len(hashes))
    todo = np.flatnonzero(counts == MISSING)
    if todo.size:
        fresh = tokenizer.count_batch([uniques[i] for i in todo])
        counts[todo] = fresh
        cache.put(tokenizer.cache_key, [hashes[i] for i in todo], fresh)
    return counts


def count_tokens(tokenizer: Tokenizer, texts: Sequence[str | None], cache: CountCache | None = None) -> np.ndarray:
    """Token count per text as int64 (``-1`` where the text is missing); each distinct text is encoded once."""
    codes, uniques = unique_texts(texts)
    counts = count_unique(tokenizer, uniques, cache)
    return np.where(codes >= 0, counts[np.maximum(codes, 0)] if counts.size else MISSING, MISSING).astype(np.int64)
