import numpy as np
import pandas as pd
import pytest

from simulator.evals.curves import aiq, apgr, cost_to_reach, curve_metrics, plot_curves, strong_weak_curves


def test_apgr_and_cpt_on_a_non_monotone_curve():
    x, y = [0.0, 0.5, 1.0], [0.5, 0.9, 0.8]
    m = curve_metrics(x, y, weak=0.5, strong=0.8)
    # Raw AUC = 0.35 + 0.425 = 0.775 -> (0.775 - 0.5) / 0.3; hull AUC = 0.35 + 0.45 = 0.8 -> 1.0.
    assert m["apgr"] == pytest.approx(0.275 / 0.3)
    assert m["apgr_hull"] == pytest.approx(1.0)
    # CPT(50%): target 0.65 on the segment (0, 0.5) -> (0.5, 0.9): 0.15 / 0.4 * 0.5 = 0.1875.
    assert m["cpt50_pct"] == pytest.approx(18.75)
    assert m["cpt80_pct"] == pytest.approx(100 * 0.5 * 0.24 / 0.4)


def test_cpt_does_not_use_a_dip():
    # Accuracy rises, dips, then rises: np.interp on the raw curve would answer inside the dip.
    x = [0.0, 0.2, 0.4, 0.6, 1.0]
    y = [0.50, 0.70, 0.55, 0.72, 0.80]
    assert cost_to_reach(x, y, 0.60) == pytest.approx(0.1)
    assert cost_to_reach(x, y, 0.71) == pytest.approx(0.4 + 0.2 * 0.01 / 0.02)  # flat hull from 0.2 to 0.4
    assert np.isnan(cost_to_reach(x, y, 0.9))
    assert apgr([0, 1], [0.5, 0.8], 0.5, 0.8) == pytest.approx(0.5)


def test_aiq_hand_values():
    routers = {"a": ([0.0, 0.5, 1.0], [0.5, 0.6, 0.9]), "b": ([0.0, 0.5, 0.8], [0.5, 0.8, 0.75])}
    out = aiq(routers)
    assert out["a"] == pytest.approx(0.7)  # (0.5, 0.6) is under the hull
    assert out["b"] == pytest.approx(0.325 + 0.4)  # hull stops at its peak, then flat to cost 1


def test_strong_weak_curves_oracle_and_router():
    strong, weak = [1, 1, 0, 1], [0, 1, 1, 0]
    rows = [(f"s{i}", "S", v, v) for i, v in enumerate(strong)] + [(f"s{i}", "W", v, v) for i, v in enumerate(weak)]
    samples = pd.DataFrame(rows, columns=["sample_id", "model", "correct", "score"]).assign(workflow_tag="w")
    score = pd.Series([0.9, 0.1, 0.8, 0.2], index=["s0", "s1", "s2", "s3"])
    res = strong_weak_curves(samples, "S", "W", router_score=score, shares=[0, 0.25, 0.5, 0.75, 1])
    curve = res["curve"]
    assert curve["oracle"].tolist() == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0])
    assert curve["router"].tolist() == pytest.approx([0.5, 0.75, 0.5, 0.75, 0.75])
    assert curve["random"].tolist() == pytest.approx([0.5, 0.5625, 0.625, 0.6875, 0.75])
    assert res["metrics"]["router"]["cpt50_pct"] == pytest.approx(12.5)
    png = plot_curves(res)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _curve_samples(with_cost: bool) -> pd.DataFrame:
    """Workflow w: S right on s0-s2, W right on s0 only (strong 0.75, weak 0.25 on 4 paired samples); workflow v:
    S and W on other samples; cost 1.0 for S and 0.25 for W per sample."""
    rows = []
    for tag, ids, s_ok, w_ok in (("w", ["s0", "s1", "s2", "s3"], [1, 1, 1, 0], [1, 0, 0, 0]),
                                 ("v", ["v0", "v1"], [1, 1], [1, 1])):
        for sid, a, b in zip(ids, s_ok, w_ok):
            rows += [(sid, "S", a, a, tag, 1.0), (sid, "W", b, b, tag, 0.25)]
    frame = pd.DataFrame(rows, columns=["sample_id", "model", "correct", "score", "workflow_tag", "cost_usd"])
    return frame if with_cost else frame.drop(columns="cost_usd")


def _moves(*tags):
    return [pd.DataFrame({"workflow_tag": list(tags), "from_model": "acct/S", "to_model": "acct/W",
                          "requests": 10})]


def test_research_curves_reads_each_workflow_pair():
    from simulator.evals.policy import research_curves

    curves = research_curves(_moves("w"), _curve_samples(with_cost=True))["curves"]
    assert [(c["workflow_tag"], c["strong"], c["weak"], c["n_paired"]) for c in curves] == [("w", "S", "W", 4)]
    assert (curves[0]["accuracy_strong"], curves[0]["accuracy_weak"]) == (0.75, 0.25)


def test_research_curves_on_duplicate_samples():
    """A (sample_id, model) given twice: with costs, the cost lookup over all samples fails for every curve (none
    drawn); without costs only the workflow holding the duplicate fails its one-to-one pairing."""
    from simulator.evals.policy import research_curves

    samples = _curve_samples(with_cost=True)
    twice = pd.concat([samples, samples[(samples["sample_id"] == "v0") & (samples["model"] == "S")]])
    assert research_curves(_moves("w", "v"), twice) is None
    plain = twice.drop(columns="cost_usd")
    curves = research_curves(_moves("w", "v"), plain)["curves"]
    assert [c["workflow_tag"] for c in curves] == ["w"]
