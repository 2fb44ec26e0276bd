"""Exact percentiles of values added in chunks (:class:`Quantiles`), in memory or spilled to disk.

Spilled (:class:`SpillQuantiles`): values are appended to a temporary file (8 bytes each) and
:meth:`SpillQuantiles.percentiles` reads it twice in blocks: a histogram of the top 20 bits of an order-preserving
integer key, then the exact values of the bins that hold the wanted ranks; the result equals
``np.percentile(values, q)`` (linear method) to the last bit. Memory: the histogram (8 MB) plus the values of the
target bins.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

BITS = _BITS = 20  # histogram bits of the exact-percentile selection
_BLOCK = 4_000_000  # values per read


def order_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of float64 values (negative values flip all bits)."""
    flip = values.view(np.int64) >> np.int64(63)  # arithmetic shift: all ones for negative values, else 0
    flip |= np.int64(-(1 << 63))  # the sign bit: set for non-negative values, kept set for negative ones
    return values.view(np.uint64) ^ flip.view(np.uint64)


def lerp(a: float, b: float, t: float) -> float:
    """numpy's interpolation between neighbouring order statistics (``numpy.lib._function_base_impl._lerp``)."""
    diff = b - a
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def order_positions(n: int, q: float) -> tuple[int, int, float]:
    """Ranks below/above and weight of percentile ``q`` (0-100) for ``n`` values, as ``np.percentile`` computes them."""
    virtual = np.true_divide(q, 100) * (n - 1)
    lo = int(np.floor(virtual))
    hi = min(lo + 1, n - 1)
    return lo, hi, float(virtual - lo)


class Quantiles:
    """Exact percentiles of finite values added in chunks: in memory, or spilled to disk (``spill_dir`` given).

    :meth:`percentiles` is the last call (it closes a spill file); :meth:`median` may be followed by more calls and
    :meth:`close`. In memory, ``median()`` is ``np.median`` and ``percentiles()`` is ``np.percentile``.
    """

    def __init__(self, spill_dir: str | None = None) -> None:
        self.parts: list[np.ndarray] = []
        self.spill = SpillQuantiles(spill_dir) if spill_dir is not None else None

    def add(self, values: np.ndarray) -> None:
        if self.spill is not None:
            self.spill.add(values)
            return
        values = np.asarray(values, dtype=np.float64)
        self.parts.append(values[np.isfinite(values)] + 0.0)  # +0.0: -0.0 sorts with 0.0 as numpy does

    def extend(self, other: Quantiles) -> None:
        """Add the values another in-memory instance holds."""
        if other.spill is not None:
            raise ValueError("spilled values cannot be merged; merge percentiles computed where the values are")
        for part in other.parts:
            self.add(part)

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0)

    def median(self) -> float:
        if self.spill is not None:
            return float(self.spill.percentiles([50])[0])
        return float(np.median(self.values()))

    def percentiles(self, qs: list[float]) -> list[float | None]:
        if self.spill is not None:
            out = self.spill.percentiles(qs)
            self.spill.close()
            return out
        values = self.values()
        if len(values) == 0:
            return [None for _ in qs]
        return [float(v) for v in np.percentile(values, qs)]

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


class SpillQuantiles:
    """Collects finite float64 values on disk; exact percentiles at the end."""

    def __init__(self, directory: str | None = None) -> None:
        fd, self.path = tempfile.mkstemp(suffix=".f64", dir=directory)
        self._file = os.fdopen(fd, "wb")
        self.n = 0

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)] + 0.0  # +0.0: -0.0 sorts with 0.0 as numpy does
        values.tofile(self._file)
        self.n += len(values)

    def _blocks(self):
        self._file.flush()
        with open(self.path, "rb") as fh:
            while True:
                block = np.fromfile(fh, dtype=np.float64, count=_BLOCK)
                if len(block) == 0:
                    return
                yield block

    def percentiles(self, qs: list[float]) -> list[float | None]:
        if self.n == 0:
            return [None for _ in qs]
        ranks = sorted({r for q in qs for r in order_positions(self.n, q)[:2]})
        hist = np.zeros(1 << _BITS, np.int64)
        shift = np.uint64(64 - _BITS)
        for block in self._blocks():
            hist += np.bincount((order_keys(block) >> shift).astype(np.int64), minlength=1 << _BITS)
        cum = np.cumsum(hist)
        bins = {r: int(np.searchsorted(cum, r, side="right")) for r in ranks}
        wanted = np.zeros(1 << _BITS, dtype=bool)  # per histogram bin: it holds a wanted rank
        wanted[list(bins.values())] = True
        kept = []
        for block in self._blocks():
            kept.append(block[wanted[(order_keys(block) >> shift).astype(np.int64)]])
        kept_values = np.concatenate(kept)
        kept_bins = (order_keys(kept_values) >> shift).astype(np.int64)
        value_at = {}
        for r, b in bins.items():
            in_bin = np.sort(kept_values[kept_bins == b])
            before = int(cum[b - 1]) if b > 0 else 0
            value_at[r] = float(in_bin[r - before])
        out = []
        for q in qs:
            lo, hi, t = order_positions(self.n, q)
            out.append(lerp(value_at[lo], value_at[hi], t))
        return out

    def close(self) -> None:
        self._file.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __del__(self) -> None:  # best effort: temporary files never outlive the run
        try:
            self.close()
        except OSError:
            pass
