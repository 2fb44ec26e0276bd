"""A seeded 64-bit hash of a string column, computed on the Arrow buffers (offsets + UTF-8 bytes).

The function is fixed here, so values are the same on every machine and in every version (tests pin them against
a pure-Python implementation): 64-bit FNV-1a over the UTF-8 bytes of ``f"{seed}\\x1f{salt}\\x1f"`` followed by the
string's bytes, then the MurmurHash3 ``fmix64`` finaliser so every output bit depends on every input bit. The whole
seed is part of the key (seeds 1234567890123456 and 12345678901234567 give unrelated hashes). A missing value
hashes as the empty string.

``hash64(strings, seed, salt)`` takes an Arrow string array (plain, large or dictionary), a pandas Series (Arrow
text, category or object) or a sequence of ``str``; categories and dictionaries are hashed once per distinct value.
``uniform(hashes)`` maps hashes to floats in [0, 1) for weighted splits and failure draws.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def _prefix_state(seed: Any, salt: str) -> int:
    h = FNV_OFFSET
    for byte in f"{seed}\x1f{salt}\x1f".encode():
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


@lru_cache(maxsize=1)
def _kernel():
    from numba import njit, uint64

    @njit(cache=True, nogil=True)
    def kernel(offsets, data, start, out):  # pragma: no cover - compiled
        prime = uint64(FNV_PRIME)
        for i in range(out.shape[0]):
            h = uint64(start)
            for j in range(offsets[i], offsets[i + 1]):
                h = (h ^ uint64(data[j])) * prime
            h ^= h >> uint64(33)
            h *= uint64(0xFF51AFD7ED558CCD)
            h ^= h >> uint64(33)
            h *= uint64(0xC4CEB9FE1A85EC53)
            h ^= h >> uint64(33)
            out[i] = h
        return out

    return kernel


def _arrow_text(strings: Any):
    """An Arrow array of text (or dictionary of text) for the supported inputs."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(strings, pa.ChunkedArray):
        return strings.combine_chunks() if strings.num_chunks != 1 else strings.chunk(0)
    if isinstance(strings, pa.Array):
        return strings
    if isinstance(strings, pd.Series):
        if isinstance(strings.dtype, pd.CategoricalDtype):
            cats = pa.array([str(c) for c in strings.cat.categories], type=pa.large_string())
            codes = strings.cat.codes.to_numpy()
            return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0, type=pa.int64()), cats)
        array = strings.array
        if hasattr(array, "_pa_array"):
            return _arrow_text(array._pa_array)
        strings = strings.to_numpy(dtype=object)
    values = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in strings]
    return pa.array(values, type=pa.large_string())


def dictionary_text(strings: Any):
    """The text as an Arrow dictionary array (inputs as for :func:`hash64`): ``hash64`` of it hashes each distinct
    value once, for columns whose values repeat (prompt text)."""
    import pyarrow as pa

    arr = _arrow_text(strings)
    return arr if pa.types.is_dictionary(arr.type) else arr.dictionary_encode()


def hash64(strings: Any, seed: int | str, salt: str = "") -> np.ndarray:
    """uint64 hash of each string with the full ``seed`` and ``salt`` in the key (see the module docstring)."""
    return _hash_rows(strings, seed, (salt,))[0]


def hash64_salts(strings: Any, seed: int | str, salts: tuple[str, ...]) -> list[np.ndarray]:
    """``[hash64(strings, seed, salt) for salt in salts]`` in one pass over the text (each byte read once)."""
    return list(_hash_rows(strings, seed, tuple(salts)))


def _hash_rows(strings: Any, seed: int | str, salts: tuple[str, ...]) -> np.ndarray:
    """(len(salts), n) uint64: row i is the hash with salt ``salts[i]``."""
    import pyarrow as pa

    arr = _arrow_text(strings)
    if pa.types.is_dictionary(arr.type):
        per_value = _hash_rows(arr.dictionary, seed, salts)
        empty = _hash_rows(pa.array([""]), seed, salts)[:, 0]
        idx = arr.indices.to_numpy(zero_copy_only=False)
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        out = np.repeat(empty[:, None], len(arr), axis=1)
        out[:, valid] = per_value[:, np.asarray(idx[valid], dtype=np.int64)]
        return out
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise TypeError(f"hash64 needs text; got Arrow type {arr.type}.")
    if arr.null_count:
        arr = arr.fill_null("")
    arr = arr.cast(pa.large_string())
    _, offset_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts = [_prefix_state(seed, salt) for salt in salts]
    lengths = np.diff(offsets)
    if _compiled(lengths):
        return np.stack([_kernel()(offsets, data, np.uint64(start), np.empty(len(arr), dtype=np.uint64))
                         for start in starts]).reshape(len(starts), len(arr))
    return _numpy_hash(offsets, lengths, data, starts)


#: Small inputs (longest string x number of strings up to this) are hashed with numpy, one byte position at a
#: time: the same values without numba's first-call cost (2-3 s per process, more than the whole hash of a sample
#: week); larger ones (million-row chunks) go to the compiled kernel.
NUMPY_MAX_WORK = 8_000_000
#: Inputs beyond ``NUMPY_MAX_WORK`` also stay on numpy while their bytes and longest string are within these, unless
#: the kernel is loaded already. numpy costs about 11 ns a byte plus a few microseconds a byte position; importing
#: numba and loading the cached kernel about 0.9 s (a sample week's 4,367 distinct prompts, 3.3 MB up to 3,767
#: bytes long: numpy 0.05 s, kernel 0.005 s once loaded).
NUMPY_MAX_BYTES = 16_000_000
NUMPY_MAX_LENGTH = 65_536


def _compiled(lengths: np.ndarray) -> bool:
    """Whether strings of these lengths go to the compiled kernel rather than the numpy path."""
    if not len(lengths):
        return False
    longest = int(lengths.max())
    if longest * len(lengths) <= NUMPY_MAX_WORK:
        return False
    if _kernel.cache_info().currsize:  # loaded in this process: cheaper than numpy at any size
        return True
    return longest > NUMPY_MAX_LENGTH or int(lengths.sum()) > NUMPY_MAX_BYTES


def _numpy_hash(offsets: np.ndarray, lengths: np.ndarray, data: np.ndarray, starts: list[int]) -> np.ndarray:
    """(len(starts), n) hashes, one row per FNV start state; each byte position read once for all of them."""
    longest = int(lengths.max()) if len(lengths) else 0
    keys = -lengths
    if longest < np.iinfo(np.int16).max:
        keys = keys.astype(np.int16)  # numpy's stable sort of 16-bit keys is a radix sort
    order = np.argsort(keys, kind="stable")  # longest first: the strings still running are a prefix
    at = offsets[:-1][order]  # each running string's next byte
    running = np.searchsorted(keys[order], -np.arange(longest, dtype=keys.dtype), "left")
    h = np.repeat(np.array(starts, dtype=np.uint64)[:, None], len(order), axis=1)
    byte = np.empty(len(order), dtype=np.uint8)
    prime = np.uint64(FNV_PRIME)
    with np.errstate(over="ignore"):
        if len(starts) == 1:
            h1 = h[0]  # a view: 1-d slices, as cheap per byte position as before
            for k in running.tolist():  # in place: no temporaries per byte position
                np.take(data, at[:k], out=byte[:k])
                h1[:k] ^= byte[:k]
                h1[:k] *= prime
                at[:k] += 1
        else:
            for k in running.tolist():
                np.take(data, at[:k], out=byte[:k])
                h[:, :k] ^= byte[:k]
                h[:, :k] *= prime
                at[:k] += 1
    out = np.empty_like(h)
    if len(starts) == 1:
        out[0][order] = _fmix64(h[0])
    else:
        out[:, order] = _fmix64(h)
    return out


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a uint64 array."""
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return h


def mix64(hashes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint64 hashes of ``(hash, value)`` pairs (values int64 or uint64): the value is folded in and ``fmix64``
    applied again."""
    values = np.asarray(values)
    values = values.view(np.uint64) if values.dtype == np.int64 else values.astype(np.uint64)
    with np.errstate(over="ignore"):
        return _fmix64(np.asarray(hashes, dtype=np.uint64) ^ (values * np.uint64(FNV_PRIME)))


def uniform(hashes: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits of each hash (exact in float64)."""
    return (np.asarray(hashes, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
