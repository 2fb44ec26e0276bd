"""Simulation study: do tfysim's intervals and gates keep their promises on data with a known truth?

Synthetic paired eval sets are drawn from a known joint distribution of (baseline right, candidate right), so the
true delta is known exactly. Seeded, so the outcome is reproducible; repetitions chosen so a true 95% coverage
lands in [93%, 97%] with high probability (binomial SE about 0.7 pp at 1,000 repetitions).
"""

import numpy as np
import pandas as pd
import pytest

from simulator.evals.gates import non_inferiority
from simulator.evals.impact import policy_accuracy_impact
from simulator.evals.stats import paired_delta


def _paired_set(rng, n, p_base, delta, p_disc, workflow="w"):
    """n samples: P(base right, cand wrong) = (p_disc - delta) / 2, P(base wrong, cand right) = (p_disc + delta) / 2."""
    p10, p01 = (p_disc - delta) / 2, (p_disc + delta) / 2
    p11 = p_base - p10
    probs = np.array([p11, p10, p01, 1 - p11 - p10 - p01])
    cat = rng.choice(4, size=n, p=probs)
    base = np.isin(cat, (0, 1)).astype(float)
    cand = np.isin(cat, (0, 2)).astype(float)
    ids = [f"{workflow}-{i}" for i in range(n)]
    return pd.DataFrame({"sample_id": ids * 2, "model": ["base"] * n + ["cand"] * n, "correct": np.r_[base, cand],
                         "score": np.r_[base, cand], "workflow_tag": workflow})


@pytest.mark.slow
def test_paired_interval_coverage_and_gate_false_pass():
    rng = np.random.default_rng(20260601)
    reps, n, margin = 1000, 300, 0.02
    truths = np.array([-0.05, -0.02, 0.0, 0.03])
    covered, false_pass = 0, 0
    n_margin = 0
    for rep in range(reps):
        truth = truths[rep % len(truths)]
        res = paired_delta(_paired_set(rng, n, 0.75, truth, 0.2), "base", "cand", n_boot=1000, seed=rep)
        lo, hi = res["delta_ci"]
        covered += lo <= truth <= hi
        if truth == -margin:
            n_margin += 1
            gate = non_inferiority((100 * lo, 100 * hi), 100 * margin)
            false_pass += gate["passed"]
    coverage = covered / reps
    false_pass_rate = false_pass / n_margin
    print(f"paired coverage {coverage:.3f} over {reps}; gate false-pass at true drop = margin {false_pass_rate:.3f} over {n_margin}")
    assert 0.93 <= coverage <= 0.97
    assert false_pass_rate <= 0.05


@pytest.mark.slow
def test_policy_impact_joint_interval_coverage():
    """Two workflows with different deltas and traffic shares; the joint-bootstrap interval covers the truth."""
    rng = np.random.default_rng(7)
    reps = 400
    moves = pd.DataFrame({"workflow_tag": ["a", "b"], "from_model": ["base", "base"], "to_model": ["cand", "cand"],
                          "requests": [300, 500]})
    traffic = pd.DataFrame({"workflow_tag": ["a", "b", "c"], "requests": [400, 600, 1000]})
    truth_pp = 100 * (300 / 2000 * -0.04 + 500 / 2000 * 0.01)
    covered = 0
    for rep in range(reps):
        samples = pd.concat([_paired_set(rng, 200, 0.7, -0.04, 0.25, "a"), _paired_set(rng, 250, 0.8, 0.01, 0.15, "b")],
                            ignore_index=True)
        r = policy_accuracy_impact(moves, traffic, samples, n_boot=1000, seed=rep)
        lo, hi = r["accuracy_delta_ci95"]
        covered += lo <= truth_pp <= hi
    coverage = covered / reps
    print(f"policy-impact coverage {coverage:.3f} over {reps}")
    assert 0.93 <= coverage <= 0.97
