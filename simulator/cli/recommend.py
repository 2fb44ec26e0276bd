"""``tfysim recommend``: per workflow the cheapest non-inferior target, written as a scenario candidate."""

from __future__ import annotations

import pandas as pd
import yaml

from simulator.evals.policy import load_evals
from simulator.errors import InputError
from simulator.evals.recommend import recommend
from simulator.pricing.catalog import Catalog
from simulator.core import Prepared
from simulator.routing.scenario import load_scenario
from simulator.io.traffic import load_traffic


def recommend_scenario(path, margin_pp: float | None) -> str:
    """YAML text: a ``candidates:`` entry in scenario syntax plus the decisions as comments."""
    scenario = load_scenario(path)
    if not scenario.evals:
        raise InputError(f"{path}: recommend needs eval samples; add evals: to the scenario.")
    margin = margin_pp if margin_pp is not None else (scenario.gates.max_accuracy_drop_pp or 2.0)
    catalog = Catalog.load(scenario.path(scenario.pricing), scenario.models)
    loaded = load_traffic(scenario.paths("traffic"), adapter=scenario.adapter_options(),
                          mapping=scenario.columns or None,
                          timezone=scenario.timezone)
    p = Prepared(loaded, catalog, seed=scenario.seed)
    evals = load_evals(scenario.paths("evals"), p)
    f = loaded.frame
    served = f.groupby(["workflow_tag", "model"], dropna=False).size().rename("requests").reset_index()
    ok = p.status < 400
    per_req = pd.DataFrame({"workflow_tag": f["workflow_tag"], "inp": p.inp, "out": p.out})[ok]
    mean_tokens = per_req.groupby("workflow_tag", dropna=False)[["inp", "out"]].mean()
    start = int(p.ts.min())
    eval_models = sorted(evals.samples["model"].unique())
    targets = [m for m in eval_models if _priceable(catalog, m)]

    def cost_per_request(model_id: str, workflow_tag) -> float:
        row = mean_tokens.loc[workflow_tag] if workflow_tag in mean_tokens.index else mean_tokens.mean()
        return float(catalog.cost_usd([model_id], [start], [row["inp"]], [row["out"]])[0])

    candidate, decisions = recommend(served, evals.samples, cost_per_request, candidates=targets,
                                     margin_pp=margin, seed=scenario.seed)
    lines = [f"# tfysim recommend {path} (margin {margin:g} pp, {len(decisions)} workflow/model pairs)"]
    for d in decisions:
        lines.append(f"# {d.get('workflow_tag')}: {d.get('model')} -> {d.get('target') or 'keep'}: {d.get('detail', '')}")
    body = yaml.safe_dump({"candidates": [candidate]}, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def _priceable(catalog: Catalog, model: str) -> bool:
    try:
        catalog.resolve(model)
    except Exception:  # noqa: BLE001 - eval models without a price cannot be recommended
        return False
    return True


__all__ = ["recommend_scenario"]
