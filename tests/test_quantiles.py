"""Quantiles: exact percentiles in memory or spilled to disk, equal to numpy's over the raw values."""

from __future__ import annotations

import os

import numpy as np
import pytest

from simulator.summary.quantiles import Quantiles

RAW = np.random.default_rng(3).lognormal(6, 1, 10_001)


def _filled(spill_dir, chunks=7) -> Quantiles:
    q = Quantiles(spill_dir)
    for part in np.array_split(RAW, chunks):
        q.add(part)
    return q


@pytest.mark.parametrize("spill", [False, True])
def test_percentiles_equal_numpy_to_the_last_bit(tmp_path, spill):
    q = _filled(str(tmp_path) if spill else None)
    assert q.percentiles([50, 95, 99]) == [float(v) for v in np.percentile(RAW, [50, 95, 99])]


@pytest.mark.parametrize("spill", [False, True])
def test_non_finite_values_are_left_out(tmp_path, spill):
    q = Quantiles(str(tmp_path) if spill else None)
    q.add(np.array([np.nan, 4.0, np.inf, 1.0, -np.inf, 2.0]))
    assert q.percentiles([50]) == [2.0]


def test_median_in_memory_is_numpys_median():
    q = _filled(None)
    q.add(np.array([1.0]))  # an even count: the mean of the two middle values, as np.median takes it
    assert q.median() == float(np.median(np.append(RAW, 1.0)))


def test_spilled_median_keeps_the_file_and_percentiles_closes_it(tmp_path):
    q = _filled(str(tmp_path))
    path = q.spill.path
    assert q.median() == float(np.percentile(RAW, 50))
    assert q.median() == float(np.percentile(RAW, 50))  # still readable after a median
    assert os.path.exists(path)
    q.percentiles([95])
    assert not os.path.exists(path)


def test_extend_adds_the_other_values():
    a, b = Quantiles(), Quantiles()
    a.add(RAW[:100])
    b.add(RAW[100:])
    a.extend(b)
    assert a.percentiles([10, 50, 90]) == [float(v) for v in np.percentile(RAW, [10, 50, 90])]


def test_extend_refuses_spilled_values(tmp_path):
    spilled = _filled(str(tmp_path))
    with pytest.raises(ValueError, match="spilled values cannot be merged"):
        Quantiles().extend(spilled)
    spilled.close()


def test_empty_gives_none():
    assert Quantiles().percentiles([50, 95]) == [None, None]


def test_spilled_percentiles_of_mixed_signs_equal_numpy(tmp_path):
    """Negative values, zeros of both signs and values across the float64 range: the order keys sort as the values
    do, and spilled percentiles equal np.percentile to the last bit."""
    from simulator.summary.quantiles import order_keys

    rng = np.random.default_rng(9)
    raw = rng.standard_normal(20_000) * 10.0 ** rng.integers(-300, 300, 20_000)
    raw[:50], raw[50:80] = 0.0, -0.0
    keys = order_keys(np.sort(raw) + 0.0)
    assert bool((keys[1:] >= keys[:-1]).all()) and keys.dtype == np.uint64
    assert order_keys(np.array([-1.0, -0.0 + 0.0, 1.0])).tolist() == [0x400FFFFFFFFFFFFF, 1 << 63, 0xBFF0000000000000]
    q = Quantiles(str(tmp_path))
    for part in np.array_split(raw, 5):
        q.add(part)
    qs = [0, 1, 25, 50, 75, 95, 99.9, 100]
    assert q.percentiles(qs) == [float(v) for v in np.percentile(raw, qs)]
