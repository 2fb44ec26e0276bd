"""Hand freed memory back to the operating system between the large steps of a run, or keep it for the next chunk;
keep the cyclic garbage collector off the objects that imports create, and pause it over a step that only adds to a
large heap."""

from __future__ import annotations

import contextlib
import functools
import gc


@functools.cache
def _libc(name: str):
    """A glibc function (``malloc_trim``, ``mallopt``), or None elsewhere; looked up on first use (finding the C
    library runs ``ldconfig``: 25 ms that a command importing this module for the collector should not pay)."""
    import ctypes
    import ctypes.util

    lib = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(lib), name) if lib else None
    except (OSError, AttributeError):
        return None

# mallopt parameters (malloc.h) and glibc's defaults
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_DEFAULT_THRESHOLD_BYTES = 128 * 1024


def release_memory(heap: bool = True) -> None:
    """Return freed heap to the OS: glibc keeps the arenas of freed small objects (millions of strings per chunk)
    and Arrow's pool keeps freed pages, so RSS would otherwise creep up with the traffic size. ``heap=False`` releases
    Arrow's pages only (inside :func:`steady_heap`, where the C heap's freed memory is kept on purpose)."""
    trim = _libc("malloc_trim") if heap else None
    if trim is not None:
        trim(0)
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


@contextlib.contextmanager
def steady_heap(mmap_threshold_bytes: int = 64 << 20, trim_threshold_bytes: int = 256 << 20):
    """Within the block, glibc serves arrays below ``mmap_threshold_bytes`` from its heap and keeps up to
    ``trim_threshold_bytes`` of freed heap for reuse instead of returning it at every ``free``: a pass over equal-sized
    chunks then reuses the same pages instead of faulting every array of every chunk in afresh (the streaming
    engine, 10 M rows, 5 candidates: 2.86 M page faults and 9.8 s of system time without it, 0.95 M and 3.8 s with
    it). Afterwards both thresholds are glibc's defaults (fixed ones: glibc's dynamic mmap threshold stays off once
    set). No-op without glibc."""
    mallopt = _libc("mallopt")
    if mallopt is None:
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes))
    mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_bytes))
    try:
        yield
    finally:
        mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD_BYTES)
        mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD_BYTES)


_IMPORT_SCOPES = [0]


@contextlib.contextmanager
def imports_kept():
    """Within the block, :func:`imports_done` moves every object alive into the garbage collector's permanent
    generation (``gc.freeze``); at the end they return to the collected generations (``gc.unfreeze``).

    A command imports 1,300 modules lazily (pandas, numba's registries, matplotlib): about 200,000 objects that live
    until exit. Each full collection walked all of them again, five times in a premium review (0.4-0.6 s of CPU, a
    twelfth of the run). Frozen objects are still freed by reference counting; only a reference cycle among them
    that becomes garbage waits for the end of the block, so freeze right after imports, not after building data."""
    _IMPORT_SCOPES[0] += 1
    try:
        yield
    finally:
        _IMPORT_SCOPES[0] -= 1
        if not _IMPORT_SCOPES[0]:
            gc.unfreeze()


def imports_done() -> None:
    """Inside :func:`imports_kept`: leave every object alive now (the modules just imported) out of later
    collections. Outside it (library use, tests) it does nothing."""
    if _IMPORT_SCOPES[0]:
        gc.freeze()


@contextlib.contextmanager
def no_cyclic_gc():
    """Within the block Python's cyclic garbage collector does not run (reference counting still frees every object
    outside a cycle); afterwards it is enabled again if it was. For a step that allocates many small objects on top of
    a replay's large heap: an automatic full collection there walks the whole heap (the premium review's charts: one
    of 0.2 s CPU, triggered by matplotlib's import). The cycles made inside the block are collected after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


__all__ = ["imports_done", "imports_kept", "no_cyclic_gc", "release_memory", "steady_heap"]
