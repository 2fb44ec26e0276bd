"""Hand freed memory back to the operating system between the large steps of a run."""

from __future__ import annotations


def _libc_trim():
    """glibc's malloc_trim, or None elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _libc_trim()


def release_memory() -> None:
    """Return freed heap to the OS: glibc keeps the arenas of freed small objects (millions of strings per chunk)
    and Arrow's pool keeps freed pages, so RSS would otherwise creep up with the traffic size."""
    if _TRIM is not None:
        _TRIM(0)
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


__all__ = ["release_memory"]
