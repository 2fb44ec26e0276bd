"""Prefix blocks from the canonical traffic table, in the CSR layout the cache kernel reads.

Sources, first available per row wins:

1. ``prefix_blocks`` (list of block hashes, str or int) with ``block_tokens`` tokens per block.
2. ``prefix_hash`` with ``prefix_tokens``: one block (e.g. the system prompt).
3. ``prompt`` text: split on :data:`PROMPT_SEGMENT_SEPARATOR`; every segment but the last (the current turn) is a
   prefix block, so a request shares the system part and the earlier turns it has in common with another.
   Block tokens come from ``count_tokens`` (a callable ``list[str] -> list[int]``, e.g. a tokens-module counter)
   or, without it, ``ceil(len(text) / 4)``; such rows are flagged ``approximate``.

Rows with none of these get no blocks (the kernel flags them ``no_prefix_info`` and skips them).
Block ids only need to be equal for equal blocks: the kernel chains them, so position and predecessors count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np
import pandas as pd

from simulator.errors import InputError

PROMPT_SEGMENT_SEPARATOR = "\n\n"
SOURCE_NONE, SOURCE_BLOCKS, SOURCE_HASH, SOURCE_PROMPT = 0, 1, 2, 3
SOURCE_NAMES = {SOURCE_NONE: "none", SOURCE_BLOCKS: "prefix_blocks", SOURCE_HASH: "prefix_hash", SOURCE_PROMPT: "prompt"}
CHARS_PER_TOKEN = 4  # the approximate count when no tokenizer is given


@dataclass(frozen=True)
class PrefixBlocks:
    offsets: np.ndarray  # int64, n + 1
    ids: np.ndarray  # int64, one per block
    tokens: np.ndarray  # int64, one per block
    source: np.ndarray  # int8 per row: SOURCE_*
    approximate: np.ndarray  # bool per row: token counts estimated from text length


@lru_cache(maxsize=1 << 16)
def hash_text(text: str) -> int:
    """A stable signed 64-bit id for a string (same on every run and machine, unlike ``hash()``). Kept per text:
    system prompts and prefix hashes repeat across rows, chunks and every candidate's cache replay."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def _block_id(value) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return hash_text(str(value))


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return True


def _hash_rows(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(mask, tokens) of the rows whose one block is their ``prefix_hash`` by a plain test: no ``prefix_blocks``, a
    non-empty text hash and a whole positive ``prefix_tokens``. Anything less plain is left to the row loop."""
    n = len(df)
    none = np.zeros(n, bool), np.zeros(n, np.int64)
    if "prefix_hash" not in df.columns or "prefix_tokens" not in df.columns:
        return none
    sizes = df["prefix_tokens"]
    if not pd.api.types.is_integer_dtype(sizes.dtype):
        return none
    present = sizes.notna().to_numpy()
    tokens = sizes.to_numpy(dtype=np.int64, na_value=0)
    hashes = df["prefix_hash"]
    if isinstance(hashes.dtype, pd.CategoricalDtype):
        if hashes.cat.categories.inferred_type not in ("string", "empty"):
            return none
    elif not pd.api.types.is_string_dtype(hashes.dtype) or pd.api.types.is_object_dtype(hashes.dtype):
        return none  # object columns may hold anything: the row loop decides
    mask = present & (tokens > 0) & (hashes.notna() & (hashes != "")).to_numpy(dtype=bool, na_value=False)
    if "prefix_blocks" in df.columns:
        mask &= df["prefix_blocks"].isna().to_numpy()  # rows with blocks (or an empty list) take the row loop
    return mask, tokens


def build_prefix_blocks(df: pd.DataFrame, count_tokens=None, separator: str = PROMPT_SEGMENT_SEPARATOR) -> PrefixBlocks:
    """CSR prefix blocks for every row of a canonical traffic table (row order kept)."""
    n = len(df)
    source = np.zeros(n, np.int8)
    approximate = np.zeros(n, bool)
    plain, plain_tokens = _hash_rows(df)  # most exports: one system-prompt hash per row, done column-wise
    plain_rows = np.flatnonzero(plain)
    source[plain_rows] = SOURCE_HASH
    loop_rows = np.flatnonzero(~plain) if len(plain_rows) else np.arange(n)
    m = len(loop_rows)
    per_row_ids: list = [()] * m  # of the rows the loop walks: position k is row loop_rows[k]
    per_row_tokens: list = [()] * m

    def column(name):
        if name not in df.columns or not m:
            return [None] * m
        return (df[name].take(loop_rows) if len(plain_rows) else df[name]).tolist()

    blocks, block_tokens = column("prefix_blocks"), column("block_tokens")
    hashes, prefix_tokens = column("prefix_hash"), column("prefix_tokens")
    prompts = column("prompt")
    pending_text: list = []  # (position, segments) whose tokens are counted in one batch
    for k, i in enumerate(loop_rows.tolist()):
        value = blocks[k]
        if value is not None and not (isinstance(value, float) and np.isnan(value)) and len(value) > 0:
            size = block_tokens[k]
            if not _present(size) or int(size) <= 0:
                raise InputError(
                    f"row {i} (request {df['request_id'].iloc[i] if 'request_id' in df.columns else i}): prefix_blocks "
                    f"needs block_tokens > 0. Got {size!r} instead. Set block_tokens (e.g. 512 for Mooncake traces)."
                )
            per_row_ids[k] = [_block_id(v) for v in value]
            per_row_tokens[k] = [int(size)] * len(value)
            source[i] = SOURCE_BLOCKS
            continue
        if _present(hashes[k]) and str(hashes[k]) != "":
            size = prefix_tokens[k]
            if _present(size) and int(size) > 0:
                per_row_ids[k] = [_block_id(hashes[k])]
                per_row_tokens[k] = [int(size)]
                source[i] = SOURCE_HASH
                continue
        text = prompts[k]
        if _present(text) and isinstance(text, str):
            segments = text.split(separator)[:-1]
            if segments:
                per_row_ids[k] = [hash_text(s) for s in segments]
                pending_text.append((k, [s + separator for s in segments]))
                source[i] = SOURCE_PROMPT
    if pending_text:
        flat = list(chain.from_iterable(segs for _, segs in pending_text))
        if count_tokens is None:
            counts = [-(-len(s) // CHARS_PER_TOKEN) for s in flat]
        else:
            counts = [int(c) for c in count_tokens(flat)]
        pos = 0
        for k, segs in pending_text:
            per_row_tokens[k] = counts[pos : pos + len(segs)]
            pos += len(segs)
            approximate[loop_rows[k]] = count_tokens is None
    lengths = np.zeros(n, np.int64)
    lengths[plain_rows] = 1
    lengths[loop_rows] = np.fromiter((len(r) for r in per_row_ids), np.int64, count=m)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    ids = np.empty(total, np.int64)
    tokens = np.empty(total, np.int64)
    looped = np.repeat(~plain, lengths)  # block positions that belong to rows the loop walked
    ids[looped] = np.fromiter(chain.from_iterable(per_row_ids), np.int64, count=int(looped.sum()))
    tokens[looped] = np.fromiter(chain.from_iterable(per_row_tokens), np.int64, count=int(looped.sum()))
    if len(plain_rows):
        codes, distinct = pd.factorize(df["prefix_hash"].take(plain_rows).astype(object).to_numpy())
        ids[offsets[plain_rows]] = np.fromiter((hash_text(v) for v in distinct), np.int64, count=len(distinct))[codes]
        tokens[offsets[plain_rows]] = plain_tokens[plain_rows]
    return PrefixBlocks(offsets, ids, tokens, source, approximate)
