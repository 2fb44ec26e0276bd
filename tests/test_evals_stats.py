import math

import numpy as np
import pandas as pd
import pytest

from simulator.errors import InputError
from simulator.evals.stats import (UNPAIRED_WARNING, accuracy_table, adjust_pvalues, mcnemar, output_length_ratio,
                                   paired_delta, unpaired_delta, wilson_interval)


def _samples(rows):
    return pd.DataFrame(rows, columns=["sample_id", "model", "correct", "score", "workflow_tag", "output_tokens"])


def test_wilson_hand_values():
    # k=8, n=10, z=1.959964: centre 0.716740, half-width 0.226578 (worked by hand from the formula).
    lo, hi = wilson_interval(8, 10)
    assert (float(lo), float(hi)) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    # k=0: centre = half-width = (z^2/(2n)) / (1 + z^2/n) = 0.384146 / 1.768292.
    lo, hi = wilson_interval(0, 5)
    assert float(lo) == pytest.approx(0.0, abs=1e-12) and float(hi) == pytest.approx(0.434482, abs=1e-6)


def test_mcnemar_exact_and_chi_square():
    # Exact: 2 * P(X <= 3 | 15, 0.5) = 2 * (1 + 15 + 105 + 455) / 2**15.
    r = mcnemar(3, 12)
    assert r["method"] == "exact binomial" and r["p_value"] == pytest.approx(1152 / 32768, abs=1e-12)
    # Chi-square with continuity correction: (|40 - 20| - 1)^2 / 60; 1 df survival = erfc(sqrt(x / 2)).
    r = mcnemar(40, 20)
    assert r["statistic"] == pytest.approx(361 / 60)
    assert r["p_value"] == pytest.approx(math.erfc(math.sqrt(361 / 120)), rel=1e-9)
    assert mcnemar(0, 0)["p_value"] == 1.0


def test_adjust_pvalues_hand():
    p = [0.01, 0.04, 0.03, 0.2]
    assert adjust_pvalues(p, "holm").tolist() == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert adjust_pvalues(p, "bh").tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_paired_delta_small_binary():
    a = [1, 1, 1, 1, 0, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 1, 1, 0, 1, 0, 0, 1]
    rows = [(f"s{i}", "A", x, x, "w", None) for i, x in enumerate(a)] + \
           [(f"s{i}", "B", x, x, "w", None) for i, x in enumerate(b)] + [("extra", "A", 1, 1, "w", None)]
    res = paired_delta(_samples(rows), "A", "B", n_boot=1000, seed=3)
    assert res["n_paired"] == 10
    assert res["delta"] == pytest.approx(-0.2)  # b - a: 3 losses (s1, s2, s7), 1 win (s4)
    assert res["p_disc"] == pytest.approx(0.4)
    assert res["variance_per_sample"] == pytest.approx(0.4 - 0.04)
    assert res["mcnemar"]["b"] == 3 and res["mcnemar"]["c"] == 1
    assert res["delta_ci"][0] < -0.2 < res["delta_ci"][1]
    again = paired_delta(_samples(rows), "A", "B", n_boot=1000, seed=3)
    assert again["delta_ci"] == res["delta_ci"]


def test_graded_uses_bootstrap_without_mcnemar():
    rows = [(f"s{i}", "A", np.nan, s, "w", None) for i, s in enumerate([0.9, 0.8, 1.0, 0.7])] + \
           [(f"s{i}", "B", np.nan, s, "w", None) for i, s in enumerate([0.5, 0.8, 0.9, 0.7])]
    res = paired_delta(_samples(rows), "A", "B", n_boot=500)
    assert res["kind"] == "graded" and res["mcnemar"] is None
    assert res["delta"] == pytest.approx(-0.125)
    table = accuracy_table(_samples(rows)).set_index("model")
    assert table.loc["A", "interval"] == "normal" and table.loc["A", "accuracy"] == pytest.approx(0.85)


def test_unpaired_carries_warning_and_unknown_model_errors():
    rows = [("s1", "gpt-4o", 1, 1, "w", None), ("s2", "gpt-4o-mini", 0, 0, "w", None)]
    res = unpaired_delta(_samples(rows), "gpt-4o", "gpt-4o-mini", n_boot=100)
    assert res["warning"] == UNPAIRED_WARNING and res["delta"] == -1
    with pytest.raises(InputError, match="Did you mean 'gpt-4o'"):
        paired_delta(_samples(rows), "gpt4o", "gpt-4o-mini")


def test_output_length_ratio_median():
    base = [100, 200, 50, 80, 0]
    cand = [150, 200, 100, 40, 30]
    rows = [(f"s{i}", "A", 1, 1, "w", t) for i, t in enumerate(base)] + \
           [(f"s{i}", "B", 1, 1, "w", t) for i, t in enumerate(cand)]
    res = output_length_ratio(_samples(rows), "A", "B", n_boot=200)
    assert res["n"] == 4  # the zero-length baseline sample is skipped
    assert res["median_ratio"] == pytest.approx(1.25)  # ratios 1.5, 1.0, 2.0, 0.5
    assert res["ratio_ci"][0] <= 1.25 <= res["ratio_ci"][1]
