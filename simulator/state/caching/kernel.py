"""Time-ordered prompt-cache simulation: one sequential numba pass over requests sorted by time.

Prefixes arrive in a CSR layout: request ``i`` owns blocks ``block_ids[block_offsets[i]:block_offsets[i + 1]]`` with
``block_tokens`` tokens each (one value per block; :func:`per_request_block_tokens` broadcasts a per-request size).
The kernel chains block ids (block k's key hashes the model and blocks 0..k), so a key stands for an exact prefix
on one model: blocks match only as a leading run, and a request on another model starts cold.

Semantics (TTL and timestamps in ms; a cache entry is live while ``ts <= expiry``):

* automatic (OpenAI/Gemini style): the read is the longest leading run of live blocks. Every use sets each block's
  expiry to ``ts + ttl`` (on a live block only when ``refresh_on_hit``; expiries never move backwards). The run's
  tokens, capped at ``input_tokens``, are rounded down to ``min_tokens + k * increment_tokens`` and are zero below
  ``min_tokens``. No writes are recorded (no write premium).
* explicit (Anthropic/Bedrock style): the whole prefix is one breakpoint. A live entry is a hit (read = prefix tokens,
  refreshed when ``refresh_on_hit``); otherwise it is written (write = prefix tokens, expiry ``ts + ttl``), and
  writes with a TTL longer than 5 minutes are also counted in ``cache_write_1h_tokens``.
* Both modes: prefix tokens (capped at ``input_tokens``) below ``min_tokens`` -> nothing cached, nothing stored,
  ``below_minimum`` set. Rows with ``enabled`` False are untouched; enabled rows without blocks get ``no_prefix_info``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from simulator.errors import InputError

FIVE_MINUTES_MS = 300_000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_MODEL_SEED = np.uint64(0x5DEECE66D)
_NEVER = np.iinfo(np.int64).min


@dataclass(frozen=True)
class CacheResult:
    """Kernel outputs, one entry per request (same order as the inputs)."""

    cache_read_tokens: np.ndarray  # int64
    cache_write_tokens: np.ndarray  # int64, all TTLs
    cache_write_1h_tokens: np.ndarray  # int64, sub-count of writes with a TTL > 5 min
    prefix_tokens: np.ndarray  # int64, total prefix tokens capped at input_tokens
    hit: np.ndarray  # bool: some tokens read from cache
    below_minimum: np.ndarray  # bool: prefix shorter than the model's minimum, caching silently skipped
    no_prefix_info: np.ndarray  # bool: caching enabled but no prefix information


@njit(cache=True, inline="always")
def _splitmix(x):
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@njit(cache=True)
def _grow(table):
    # table holds (key, expiry) pairs side by side so a probe touches one cache line
    cap = table.shape[0]  # new capacity in slots = 2 * old slots = old array length
    new = np.zeros(2 * cap, np.int64)
    for s in range(table.shape[0] // 2):
        k = table[2 * s]
        if k != 0:
            j = k & (cap - 1)
            while new[2 * j] != 0:
                j = (j + 1) & (cap - 1)
            new[2 * j] = k
            new[2 * j + 1] = table[2 * s + 1]
    return new


@njit(cache=True)
def _simulate(ts_ms, model_code, block_offsets, block_ids, block_tokens, input_tokens, enabled, mode, ttl_ms,
              min_tokens, increment_tokens, refresh_on_hit, table, used, max_blocks):
    n = ts_ms.shape[0]
    kbuf = np.empty(max(max_blocks, 1), np.int64)
    touched = np.int64(0)
    read = np.zeros(n, np.int64)
    write = np.zeros(n, np.int64)
    write_1h = np.zeros(n, np.int64)
    prefix = np.zeros(n, np.int64)
    hit = np.zeros(n, np.bool_)
    below = np.zeros(n, np.bool_)
    no_prefix = np.zeros(n, np.bool_)

    cap = table.shape[0] // 2  # open addressing, linear probing; key 0 marks an empty slot

    for i in range(n):
        if not enabled[i]:
            continue
        start = block_offsets[i]
        stop = block_offsets[i + 1]
        if stop == start:
            no_prefix[i] = True
            continue
        total = np.int64(0)
        for b in range(start, stop):
            total += block_tokens[b]
        cap_tokens = input_tokens[i]
        p = total if total < cap_tokens else cap_tokens
        prefix[i] = p
        if p < min_tokens[i] or p <= 0:
            below[i] = True
            continue
        # each request adds at most (stop - start) keys: grow first so probes never see a full table
        while (used + (stop - start)) * 2 > cap:
            table = _grow(table)
            cap = table.shape[0] // 2
        now = ts_ms[i]
        new_expiry = now + ttl_ms[i]
        refresh = refresh_on_hit[i]
        explicit = mode[i] == 1
        # pass 1: chained keys, plus a load of each home slot. The loads are independent, so the CPU overlaps
        # their cache misses; pass 2 then finds the slots in cache (2-3x faster on tables larger than the cache).
        h = _splitmix(np.uint64(model_code[i]) ^ _MODEL_SEED)
        nb = stop - start
        for b in range(nb):
            h = _splitmix(h ^ _splitmix(np.uint64(block_ids[start + b])))
            key = np.int64(h)
            if key == 0:
                key = 1
            kbuf[b] = key
            if not explicit:
                touched += table[2 * (key & (cap - 1))]
        first = nb - 1 if explicit else 0  # explicit mode keys the whole prefix only
        run_tokens = np.int64(0)
        in_run = True
        for b in range(first, nb):
            key = kbuf[b]
            j = key & (cap - 1)
            while table[2 * j] != 0 and table[2 * j] != key:
                j = (j + 1) & (cap - 1)
            if table[2 * j] == 0:
                table[2 * j] = key
                table[2 * j + 1] = _NEVER
                used += 1
            old_expiry = table[2 * j + 1]
            live = now <= old_expiry
            if not live or (refresh and new_expiry > old_expiry):
                table[2 * j + 1] = new_expiry
            if explicit:
                if live:
                    read[i] = p
                    hit[i] = True
                else:
                    write[i] = p
                    if ttl_ms[i] > FIVE_MINUTES_MS:
                        write_1h[i] = p
            elif in_run:
                if live:
                    run_tokens += block_tokens[start + b]
                else:
                    in_run = False
        if not explicit and run_tokens > 0:
            c = run_tokens if run_tokens < cap_tokens else cap_tokens
            if c >= min_tokens[i]:
                c = min_tokens[i] + ((c - min_tokens[i]) // increment_tokens[i]) * increment_tokens[i]
                read[i] = c
                hit[i] = c > 0
    # `touched` is returned (and ignored) so the compiler cannot drop the prefetch loads
    return read, write, write_1h, prefix, hit, below, no_prefix, table, used, touched


def per_request_block_tokens(block_offsets: np.ndarray, tokens_per_request: np.ndarray) -> np.ndarray:
    """Broadcast one block size per request to one value per block (the kernel's layout)."""
    counts = np.diff(np.asarray(block_offsets, np.int64))
    return np.repeat(np.asarray(tokens_per_request, np.int64), counts)


def _as(name, arr, dtype, n):
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"cache kernel: `{name}` must be a 1-D array of length {n}. Got shape {arr.shape} instead.")
    return arr


class KernelState:
    """The cache table carried from one call of :func:`simulate_cache` to the next (time-ordered chunks)."""

    def __init__(self) -> None:
        self.table: np.ndarray | None = None
        self.used = 0
        self.last_ts_ms: int | None = None


def simulate_cache(ts_ms, model_code, block_offsets, block_ids, block_tokens, input_tokens, enabled, mode, ttl_ms,
                   min_tokens, increment_tokens, refresh_on_hit, state: KernelState | None = None) -> CacheResult:
    """Run the cache simulation over requests sorted by ``ts_ms`` (ties keep input order).

    ``state`` carries the cache from an earlier call (the next chunk of the same time-ordered traffic, with the same
    model codes); without it the cache starts empty.

    Per-request arrays (length n): ``ts_ms`` int64, ``model_code`` int32 (target model), ``input_tokens``,
    ``enabled`` bool, ``mode`` (0 automatic, 1 explicit), ``ttl_ms``, ``min_tokens``, ``increment_tokens``,
    ``refresh_on_hit`` bool. CSR prefix: ``block_offsets`` (n + 1, int64), ``block_ids`` int64 and ``block_tokens``
    int64 (one per block; see :func:`per_request_block_tokens` for one size per request). Scalars are broadcast for the rule parameters.
    """
    ts_ms = np.ascontiguousarray(ts_ms, np.int64)
    n = ts_ms.shape[0]
    if n and np.any(ts_ms[1:] < ts_ms[:-1]):
        raise InputError("cache kernel: `ts_ms` must be sorted ascending (sort by timestamp, keep file order for ties).")
    state = state if state is not None else KernelState()
    if n and state.last_ts_ms is not None and ts_ms[0] < state.last_ts_ms:
        raise InputError("cache kernel: a chunk starts before the previous one ended; chunks must be time-ordered.")
    block_offsets = _as("block_offsets", block_offsets, np.int64, n + 1)
    if block_offsets[0] != 0 or np.any(np.diff(block_offsets) < 0):
        raise InputError("cache kernel: `block_offsets` must start at 0 and never decrease.")
    n_blocks = int(block_offsets[-1])
    block_ids = _as("block_ids", block_ids, np.int64, n_blocks)
    block_tokens = _as("block_tokens", block_tokens, np.int64, n_blocks)

    def full(name, value, dtype):
        arr = np.asarray(value, dtype)
        return _as(name, np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr, dtype, n)

    increment = full("increment_tokens", increment_tokens, np.int64)
    if np.any(increment < 1):
        raise InputError("cache kernel: `increment_tokens` must be >= 1.")
    mode_arr = full("mode", mode, np.int8)
    if np.any((mode_arr != 0) & (mode_arr != 1)):
        raise InputError("cache kernel: `mode` must be 0 (automatic) or 1 (explicit).")
    if state.table is None:
        state.table = np.zeros(2 * _initial_capacity(n_blocks), np.int64)
    *out, state.table, state.used, _ = _simulate(
        ts_ms,
        full("model_code", model_code, np.int32),
        block_offsets,
        block_ids,
        block_tokens,
        full("input_tokens", input_tokens, np.int64),
        full("enabled", enabled, np.bool_),
        mode_arr,
        full("ttl_ms", ttl_ms, np.int64),
        full("min_tokens", min_tokens, np.int64),
        increment,
        full("refresh_on_hit", refresh_on_hit, np.bool_),
        state.table,
        state.used,
        int(np.diff(block_offsets).max()) if n else 0,
    )
    if n:
        state.last_ts_ms = int(ts_ms[-1])
    return CacheResult(*out)


def _initial_capacity(n_blocks: int) -> int:
    # start small (prefixes are usually shared, so distinct keys << blocks); the kernel doubles as needed
    return 1 << max(10, min(16, int(n_blocks).bit_length()))


@njit(cache=True)
def full_prefix_keys(model_code, block_offsets, block_ids):
    """The kernel's chained key of each request's whole prefix (0 for requests without blocks)."""
    n = model_code.shape[0]
    out = np.zeros(n, np.int64)
    for i in range(n):
        if block_offsets[i + 1] == block_offsets[i]:
            continue
        h = _splitmix(np.uint64(model_code[i]) ^ _MODEL_SEED)
        for b in range(block_offsets[i], block_offsets[i + 1]):
            h = _splitmix(h ^ _splitmix(np.uint64(block_ids[b])))
        key = np.int64(h)
        out[i] = key if key != 0 else 1
    return out
