"""Order-independent exact sums and the per-model latency fit built on them.

A float64 sum depends on the order of the additions; a streamed or distributed run adds in another order than an
in-memory one. :class:`ExactSum` keeps the exact sum (integer mantissas grouped by binary exponent, Python ints when
merged), so any split of the rows into chunks gives the same correctly rounded result. The latency fit (ms per
request + ms per output token, least squares) uses it, so every engine fits the same numbers to the last bit.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

_HALF = 26  # mantissas are split into two 26/27-bit halves so the sums of a slice stay exact
_MAX_ROWS = 1 << 25  # rows per slice: half-sums below 2**52 in magnitude, exact even as float64 (np.bincount)
_FRACTION = np.uint64((1 << 52) - 1)
_IMPLICIT = np.uint64(1 << 52)
_LOW = np.uint64((1 << _HALF) - 1)


class ExactSum:
    """Exact running sum of finite float64 values; ``add`` arrays in any order and split, read ``value``."""

    def __init__(self) -> None:
        self.parts: dict[int, int] = {}  # binary exponent e -> integer m: the sum is sum(m * 2**(e - 53))

    def add(self, values: np.ndarray) -> ExactSum:
        values = np.asarray(values, dtype=np.float64)
        for start in range(0, len(values), _MAX_ROWS):
            # the bits as they are: value = +-m * 2**(E - 1075) with m the 52 fraction bits plus the implicit one
            bits = values[start:start + _MAX_ROWS].view(np.uint64)
            if len(bits) == 0:
                continue
            key = (bits >> np.uint64(52)).view(np.int64)  # sign * 2048 + biased exponent E: 0..4095
            m = bits & _FRACTION
            m |= _IMPLICIT
            tiny = np.flatnonzero((key & 2047) == 0)  # zeros and subnormals: no implicit bit, E counts as 1
            if len(tiny):
                m[tiny] ^= _IMPLICIT
                key[tiny] += 1
            # integer weights below 2**27 over at most 2**25 rows: every partial sum is exact in float64
            hi_sum = np.bincount(key, weights=m >> np.uint64(_HALF), minlength=4096)
            lo_sum = np.bincount(key, weights=m & _LOW, minlength=4096)
            present = np.flatnonzero((hi_sum != 0) | (lo_sum != 0))
            for k, h, low in zip(present.tolist(), hi_sum[present].tolist(), lo_sum[present].tolist()):
                total = (int(h) << _HALF) + int(low)
                e = (k & 2047) - 1022  # frexp's exponent of a normal number: value = m * 2**(e - 53)
                self.parts[e] = self.parts.get(e, 0) + (-total if k >= 2048 else total)
        return self

    def merge(self, other: ExactSum) -> ExactSum:
        for e, m in other.parts.items():
            self.parts[e] = self.parts.get(e, 0) + m
        return self

    @property
    def fraction(self) -> Fraction:
        if not self.parts:
            return Fraction(0)
        low = min(self.parts)
        total = sum(m << (e - low) for e, m in self.parts.items())
        return Fraction(total) * (Fraction(2) ** (low - 53))

    @property
    def value(self) -> float:
        return float(self.fraction)  # Fraction -> float is correctly rounded


class LatencySums:
    """Sufficient statistics of one model's latency fit: n, sums of x, x^2 (exact ints), y and x*y (exact)."""

    def __init__(self) -> None:
        self.n = 0
        self.sx = 0
        self.sxx = 0
        self.x_min: int | None = None
        self.x_max: int | None = None
        self.sy = ExactSum()
        self.sxy = ExactSum()

    def add(self, x: np.ndarray, y: np.ndarray) -> LatencySums:
        x = np.asarray(x, dtype=np.int64)
        y = np.asarray(y, dtype=np.float64)
        if len(x) == 0:
            return self
        self.n += len(x)
        self.sx += int(x.sum())
        self.sxx += int((x.astype(object) ** 2).sum()) if x.max() > 3_000_000 else int((x * x).sum())
        lo, hi = int(x.min()), int(x.max())
        self.x_min = lo if self.x_min is None else min(self.x_min, lo)
        self.x_max = hi if self.x_max is None else max(self.x_max, hi)
        self.sy.add(y)
        self.sxy.add(x.astype(np.float64) * y)
        return self

    def merge(self, other: LatencySums) -> LatencySums:
        self.n += other.n
        self.sx += other.sx
        self.sxx += other.sxx
        for name, pick in (("x_min", min), ("x_max", max)):
            a, b = getattr(self, name), getattr(other, name)
            setattr(self, name, b if a is None else a if b is None else pick(a, b))
        self.sy.merge(other.sy)
        self.sxy.merge(other.sxy)
        return self

    @property
    def needs_median(self) -> bool:
        """Whether :func:`fit_latency` falls back to the median (too few rows, constant x or a negative slope)."""
        return self._slope() is None or self._slope() < 0

    def _slope(self) -> Fraction | None:
        if self.n < 20 or self.x_min == self.x_max:
            return None
        den = self.n * self.sxx - self.sx * self.sx
        return (self.n * self.sxy.fraction - self.sx * self.sy.fraction) / den

    def fit(self, median: float | None = None) -> tuple[float, float]:
        """(ms per request, ms per output token): exact least squares, rounded once; ``median`` of y when it falls
        back (fewer than 20 rows, one distinct x, or a negative slope)."""
        slope = self._slope()
        if slope is None or slope < 0:
            return float(median), 0.0
        intercept = (self.sy.fraction - slope * self.sx) / self.n
        return max(float(intercept), 0.0), float(slope)
