"""Per-label sums of the summary accumulators."""

import numpy as np
import pytest

from simulator.summary.accumulate import Labels


def test_labels_add_equals_adding_row_by_row_in_row_order():
    # magnitudes from 1e-6 to 1e6 so a different order of additions would change the last bits
    rng = np.random.default_rng(7)
    keys = rng.choice(np.array(["a", "b", "c", "d", "e"], dtype=object), 20_000)
    weights = rng.random(20_000) * 10.0 ** rng.integers(-6, 7, 20_000)
    labels = Labels(2)
    for start in range(0, len(keys), 3_001):  # uneven chunks; labels first seen in later chunks too
        part = slice(start, start + 3_001)
        codes = labels.codes(keys[part])
        labels.add(codes, 1, weights[part])
    expected: dict[str, float] = {}
    for key, weight in zip(keys.tolist(), weights.tolist()):  # plain Python floats, one addition per row
        expected[key] = expected.get(key, 0.0) + weight
    names, sums = labels.sorted()
    assert names.tolist() == sorted(expected)
    assert sums[:, 1].tolist() == [expected[name] for name in names]  # bit for bit
    assert sums[:, 0].tolist() == [0.0] * len(names)


def test_labels_add_with_no_rows_and_integer_weights():
    labels = Labels(1)
    labels.add(labels.codes(np.array([], dtype=object)), 0, np.zeros(0))
    assert labels.sums.shape == (0, 1)
    labels.add(labels.codes(np.array(["x", "y", "x"], dtype=object)), 0, np.array([1, 2, 3]))
    assert dict(zip(*[a.tolist() for a in labels.sorted()])) == {"x": [4.0], "y": [2.0]}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_sum_is_the_correctly_rounded_sum_in_any_split(seed):
    """``ExactSum`` against ``math.fsum`` (exact, correctly rounded) and ``fractions``: values over the whole float64
    exponent range, signs mixed, cancelling pairs, signed zeros, subnormals and the normals next to them; added whole
    and in uneven slices."""
    import math
    from fractions import Fraction

    from simulator.summary.exact_sums import ExactSum

    rng = np.random.default_rng(seed)
    values = rng.standard_normal(20_000) * np.exp2(rng.integers(-1060, 1000, 20_000))
    edges = [5e-324, -5e-324, 2.0**-1074 * 3, 0.0, -0.0, 2.0**-1022, -2.0**-1022, 2.0**-1022 - 2.0**-1074,
             1e308, -1e308, 1.5e308]
    values = np.concatenate([values, -values[:500], edges])
    rng.shuffle(values)
    whole = ExactSum().add(values)
    cuts = np.sort(rng.integers(0, len(values), 9))
    split = ExactSum()
    for part in np.split(values, cuts)[::-1]:
        split.add(part)
    exact = sum((Fraction(float(v)) for v in values), Fraction(0))
    assert whole.fraction == exact and split.fraction == exact
    assert whole.value == math.fsum(values.tolist()) == split.value


def test_labels_codes_of_sorted_integer_keys_are_pandas_factorize():
    """Sorted integer keys (a chunk's minute blocks) take a shortcut: the same codes and labels as pd.factorize, and the
    same sums as unsorted keys added row by row (expected: Python additions)."""
    import pandas as pd

    rng = np.random.default_rng(3)
    keys = np.sort(rng.integers(-5, 40, 5_000))
    weights = rng.random(5_000) * 10.0 ** rng.integers(-6, 7, 5_000)
    codes, uniques = pd.factorize(keys)
    labels = Labels(1)
    assert labels.codes(keys).tolist() == codes.tolist()
    assert list(labels.ids) == uniques.tolist()
    labels = Labels(1)
    for part in np.array_split(np.arange(5_000), 7):
        labels.add(labels.codes(keys[part]), 0, weights[part])
    expected: dict[int, float] = {}
    for key, weight in zip(keys.tolist(), weights.tolist()):
        expected[key] = expected.get(key, 0.0) + weight
    names, sums = labels.sorted()
    assert names.tolist() == sorted(expected) and sums[:, 0].tolist() == [expected[k] for k in sorted(expected)]
    assert Labels(1).codes(np.array([7])).tolist() == [0] and Labels(1).codes(np.zeros(0, np.int64)).tolist() == []


def test_labels_of_categorical_keys_equal_their_values_and_list_only_categories_present():
    """Keys given as a categorical (day labels, workflow, model): the same sums, bit for bit, as the keys as values
    row by row; categories no row of a chunk has get no label."""
    import pandas as pd

    rng = np.random.default_rng(5)
    categories = np.array(["z-unused", "b", "a", "c", "also-unused"], dtype=object)
    codes = rng.integers(1, 4, 9_000)
    weights = rng.random(9_000) * 10.0 ** rng.integers(-6, 7, 9_000)
    by_category, by_value = Labels(1), Labels(1)
    for part in (slice(0, 4_000), slice(4_000, 4_001), slice(4_001, None)):
        keys = pd.Categorical.from_codes(codes[part], categories=categories)
        by_category.add(by_category.codes(keys), 0, weights[part])
        by_value.add(by_value.codes(categories[codes[part]]), 0, weights[part])
    names, sums = by_category.sorted()
    assert names.tolist() == ["a", "b", "c"]
    assert names.tolist() == by_value.sorted()[0].tolist()
    assert sums[:, 0].tolist() == by_value.sorted()[1][:, 0].tolist()


def test_labels_of_categorical_keys_whose_categories_are_all_known():
    """Later chunks whose categories all have a label already (one of them without rows in the chunk, one chunk of
    a single category): the same sums, bit for bit, as the keys as values row by row."""
    import pandas as pd

    rng = np.random.default_rng(6)
    categories = np.array(["b", "a", "c"], dtype=object)
    parts = [np.array([0, 1, 2, 1]), rng.integers(0, 2, 5_000), np.full(7, 2), rng.integers(0, 3, 3_000)]
    by_category, by_value = Labels(1), Labels(1)
    for codes in parts:
        weights = rng.random(len(codes)) * 10.0 ** rng.integers(-6, 7, len(codes))
        by_category.add(by_category.codes(pd.Categorical.from_codes(codes, categories=categories)), 0, weights)
        by_value.add(by_value.codes(categories[codes]), 0, weights)
    names, sums = by_category.sorted()
    assert names.tolist() == ["a", "b", "c"] == by_value.sorted()[0].tolist()
    assert sums[:, 0].tolist() == by_value.sorted()[1][:, 0].tolist()
