import pandas as pd

from simulator.evals.recommend import recommend


def _rows(workflow, model, outcomes):
    return [(f"{workflow}-{i}", model, float(v), float(v), workflow) for i, v in enumerate(outcomes)]


def test_recommend_picks_cheapest_non_inferior_target():
    rows = (_rows("chat", "big", [1] * 180 + [0] * 20) + _rows("chat", "small", [1] * 180 + [0] * 20)
            + _rows("math", "big", [1] * 180 + [0] * 20) + _rows("math", "small", [1] * 120 + [0] * 80))
    samples = pd.DataFrame(rows, columns=["sample_id", "model", "correct", "score", "workflow_tag"])
    served = pd.DataFrame({"workflow_tag": ["chat", "math"], "model": ["acct/big", "acct/big"], "requests": [10, 10]})
    prices = {"acct/big": 1.0, "acct/small": 0.2, "acct/tiny": 0.05}
    candidate, decisions = recommend(served, samples, lambda m, w: prices[m],
                                     candidates=list(prices), margin_pp=2.0, n_boot=500)
    assert candidate == {"name": "recommended", "rules": [{
        "id": "chat-to-acct-small", "when": {"models": ["acct/big"], "metadata": {"workflow_tag": "chat"}},
        "type": "weight-based-routing", "load_balance_targets": [{"target": "acct/small", "weight": 100}]}]}
    by_tag = {d["workflow_tag"]: d for d in decisions}
    assert by_tag["chat"]["target"] == "acct/small" and by_tag["chat"]["delta_pp"] == 0.0
    assert by_tag["math"]["target"] is None and "fail" in by_tag["math"]["detail"]
