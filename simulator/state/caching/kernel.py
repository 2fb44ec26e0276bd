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
* explicit (Anthropic/Bedrock style): the client marks up to :data:`MAX_BREAKPOINTS` breakpoints, block positions in
  the prefix (negative counts from the end; default one breakpoint at the end of the prefix, -1, with the row's TTL).
  Cache entries exist only where a breakpoint wrote one. Read: at each breakpoint the kernel looks for a live entry
  at that block or up to ``lookback_blocks`` blocks before it (Anthropic: 20 content blocks); the longest found is
  read (a hit), and refreshed with the TTL of the breakpoint that found it when ``refresh_on_hit``. Write: every
  breakpoint beyond the read point that meets the minimum gets an entry (expiry ``ts + its ttl``); the tokens from
  the read point to the last such breakpoint are written, each segment at its breakpoint's TTL, so a 1-hour
  breakpoint before a 5-minute one bills the tokens up to it as 1-hour writes (``cache_write_1h_tokens``) and the
  rest as 5-minute writes, as Anthropic bills mixed TTLs. TTLs must not grow along the prefix (longer TTLs first);
  a later, longer TTL is cut to the one before it. Breakpoints at or before the read point keep their entries live.
* explicit with ``storage`` (Gemini cached contents): the entry's TTL is fixed at creation (never refreshed on a hit)
  and every write adds ``prefix tokens x TTL`` to ``storage_token_hours``, which is billed per token-hour.
* Both modes: prefix tokens (capped at ``input_tokens``) below ``min_tokens`` -> nothing cached, nothing stored,
  ``below_minimum`` set. Rows with ``enabled`` False are untouched; enabled rows without blocks get ``no_prefix_info``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import InputError
from simulator.jit import njit

FIVE_MINUTES_MS = 300_000
MAX_BREAKPOINTS = 4
NO_BREAKPOINT = np.iinfo(np.int64).min  # an unused breakpoint slot

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
    storage_token_hours: np.ndarray  # float64: cached tokens x hours stored (explicit caches billed for storage)


@njit(cache=True, inline="always", nogil=True)
def _splitmix(x):
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _explicit(table, cap, used, kbuf, cumbuf, bpbuf, ttlbuf, start, nb, block_tokens, cap_tokens, now, pos_row,
              ttl_row, lookback, min_tok, refresh, storage):
    """One request in explicit mode (see the module docstring): (write, write_1h, read, storage token-hours, used)."""
    total = np.int64(0)
    for b in range(nb):
        total += block_tokens[start + b]
        cumbuf[b] = total if total < cap_tokens else cap_tokens
    # breakpoints: resolved to block positions, sorted, merged (a position keeps its longest TTL)
    m = 0
    for k in range(pos_row.shape[0]):
        pos = pos_row[k]
        if pos == NO_BREAKPOINT:
            continue
        if pos < 0:
            pos = nb + pos
        pos = 0 if pos < 0 else (nb - 1 if pos > nb - 1 else pos)
        ttl = ttl_row[k]
        merged = False
        for q in range(m):
            if bpbuf[q] == pos:
                if ttl > ttlbuf[q]:
                    ttlbuf[q] = ttl
                merged = True
        if not merged:
            q = m
            while q > 0 and bpbuf[q - 1] > pos:
                bpbuf[q] = bpbuf[q - 1]
                ttlbuf[q] = ttlbuf[q - 1]
                q -= 1
            bpbuf[q] = pos
            ttlbuf[q] = ttl
            m += 1
    for q in range(1, m):  # longer TTLs first: a later, longer TTL is cut to the one before it
        if ttlbuf[q] > ttlbuf[q - 1]:
            ttlbuf[q] = ttlbuf[q - 1]
    # read: the longest live entry at a breakpoint or within the lookback before it
    r = -1
    r_ttl = np.int64(0)
    for q in range(m):
        p = bpbuf[q]
        lo = p - lookback
        if lo < 0:
            lo = 0
        j = p
        while j >= lo and j > r:
            s = _find(table, kbuf[j], cap)
            if table[2 * s] != 0 and now <= table[2 * s + 1]:
                r = j
                r_ttl = ttlbuf[q]
                break
            j -= 1
    read = cumbuf[r] if r >= 0 else np.int64(0)
    if r >= 0 and refresh and not storage:
        s = _find(table, kbuf[r], cap)
        if now + r_ttl > table[2 * s + 1]:
            table[2 * s + 1] = now + r_ttl
    write = np.int64(0)
    write_1h = np.int64(0)
    stored = 0.0
    prev = read
    for q in range(m):
        p = bpbuf[q]
        if cumbuf[p] < min_tok or cumbuf[p] <= 0:
            continue  # below the minimum: silently not cached
        ttl = ttlbuf[q]
        s = _find(table, kbuf[p], cap)
        if table[2 * s] == 0:
            table[2 * s] = kbuf[p]
            table[2 * s + 1] = _NEVER
            used += 1
        old_expiry = table[2 * s + 1]
        if p > r:
            seg = cumbuf[p] - prev
            if seg > 0:
                write += seg
                if ttl > FIVE_MINUTES_MS:
                    write_1h += seg
                prev = cumbuf[p]
            table[2 * s + 1] = now + ttl
            if storage:
                stored += cumbuf[p] * (ttl / 3_600_000.0)
        elif now > old_expiry or (refresh and not storage and now + ttl > old_expiry):
            table[2 * s + 1] = now + ttl
    return write, write_1h, read, stored, used


@njit(cache=True, nogil=True)
def _find(table, key, cap):
    """Slot of ``key`` (or of the empty slot where it would go)."""
    j = key & (cap - 1)
    while table[2 * j] != 0 and table[2 * j] != key:
        j = (j + 1) & (cap - 1)
    return j


@njit(cache=True, nogil=True)
def _simulate(ts_ms, model_code, block_offsets, block_ids, block_tokens, input_tokens, enabled, mode, ttl_ms,
              min_tokens, increment_tokens, refresh_on_hit, table, used, max_blocks, bp_pos, bp_ttl, lookback,
              storage):
    n = ts_ms.shape[0]
    kbuf = np.empty(max(max_blocks, 1), np.int64)
    cumbuf = np.empty(max(max_blocks, 1), np.int64)
    bpbuf = np.empty(MAX_BREAKPOINTS, np.int64)
    ttlbuf = np.empty(MAX_BREAKPOINTS, np.int64)
    stored = np.zeros(n, np.float64)
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
        if explicit:
            w, w1h, r_tok, st, used = _explicit(table, cap, used, kbuf, cumbuf, bpbuf, ttlbuf, start, nb,
                                                block_tokens, cap_tokens, now, bp_pos[i], bp_ttl[i], lookback[i],
                                                min_tokens[i], refresh, storage[i])
            write[i] = w
            write_1h[i] = w1h
            if r_tok > 0:
                read[i] = r_tok
                hit[i] = True
            stored[i] = st
            continue
        run_tokens = np.int64(0)
        in_run = True
        for b in range(nb):
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
            if in_run:
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
    return read, write, write_1h, prefix, hit, below, no_prefix, stored, table, used, touched


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
                   min_tokens, increment_tokens, refresh_on_hit, state: KernelState | None = None, *,
                   breakpoints=None, breakpoint_ttl_ms=None, lookback_blocks=0, storage=False) -> CacheResult:
    """Run the cache simulation over requests sorted by ``ts_ms`` (ties keep input order).

    Explicit mode: ``breakpoints`` (n x up to 4 block positions, :data:`NO_BREAKPOINT` for unused slots; default one
    at -1, the end of the prefix) with ``breakpoint_ttl_ms`` (same shape; default the row's ``ttl_ms``),
    ``lookback_blocks`` (scalar or per row) and ``storage`` (bool, scalar or per row) as in the module docstring.

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
    ttl_arr = full("ttl_ms", ttl_ms, np.int64)
    if breakpoints is None:
        bp_pos = np.full((n, MAX_BREAKPOINTS), NO_BREAKPOINT, np.int64)
        bp_pos[:, 0] = -1
    else:
        bp_pos = np.ascontiguousarray(breakpoints, np.int64).reshape(n, -1)
        if bp_pos.shape[1] > MAX_BREAKPOINTS:
            raise InputError(f"cache kernel: at most {MAX_BREAKPOINTS} breakpoints per request. Got {bp_pos.shape[1]}.")
        bp_pos = np.ascontiguousarray(np.pad(bp_pos, ((0, 0), (0, MAX_BREAKPOINTS - bp_pos.shape[1])),
                                             constant_values=NO_BREAKPOINT))
    if breakpoint_ttl_ms is None:
        bp_ttl = np.repeat(ttl_arr[:, None], MAX_BREAKPOINTS, axis=1)
    else:
        bp_ttl = np.ascontiguousarray(breakpoint_ttl_ms, np.int64).reshape(n, -1)
        bp_ttl = np.ascontiguousarray(np.pad(bp_ttl, ((0, 0), (0, MAX_BREAKPOINTS - bp_ttl.shape[1])), mode="edge"))
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
        ttl_arr,
        full("min_tokens", min_tokens, np.int64),
        increment,
        full("refresh_on_hit", refresh_on_hit, np.bool_),
        state.table,
        state.used,
        int(np.diff(block_offsets).max()) if n else 0,
        bp_pos,
        bp_ttl,
        full("lookback_blocks", lookback_blocks, np.int64),
        full("storage", storage, np.bool_),
    )
    if n:
        state.last_ts_ms = int(ts_ms[-1])
    return CacheResult(*out)


def _initial_capacity(n_blocks: int) -> int:
    # start small (prefixes are usually shared, so distinct keys << blocks); the kernel doubles as needed
    return 1 << max(10, min(16, int(n_blocks).bit_length()))


@njit(cache=True, nogil=True)
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
