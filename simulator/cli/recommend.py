"""``tfysim recommend``: per workflow the cheapest non-inferior target, written as a scenario candidate."""

from __future__ import annotations

import pandas as pd
import yaml

from simulator.evals.policy import load_evals
from simulator.formats import money
from simulator.errors import InputError
from simulator.evals.recommend import recommend
from simulator.pricing.catalog import Catalog
from simulator.core import Prepared
from simulator.routing.scenario import load_scenario
from simulator.io.traffic import load_traffic
from simulator.outputs.escape import yaml_comment


def recommend_scenario(path, margin_pp: float | None) -> dict:
    """The recommendation: a ``candidate`` in scenario syntax, the replayed total and one entry per decision
    (``recommend_text`` writes it as YAML with the decisions as comments).

    Each recommended move carries its dollar figure: the candidate is replayed over the scenario's traffic (tokens
    translated, every request priced at its own time) and the savings of each (workflow, model -> target) move are
    scaled to 30 days; the total comes with its 95% interval.
    """
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
    targets = [m for m in _gateway_ids(eval_models, p.vocab) if _priceable(catalog, m)]

    def cost_per_request(model_id: str, workflow_tag) -> float:
        row = mean_tokens.loc[workflow_tag] if workflow_tag in mean_tokens.index else mean_tokens.mean()
        return float(catalog.cost_usd([model_id], [start], [row["inp"]], [row["out"]])[0])

    candidate, decisions = recommend(served, evals.samples, cost_per_request, candidates=targets,
                                     margin_pp=margin, seed=scenario.seed)
    per_move, total = _replayed_savings(scenario, candidate) if candidate["rules"] else ({}, None)
    moves = []
    for d in decisions:
        entry = {"workflow_tag": d.get("workflow_tag"), "model": d.get("model"), "target": d.get("target"),
                 "monthly_savings_usd": None, "requests": None, "detail": d.get("detail", "")}
        if d.get("target"):
            key = (d.get("workflow_tag") or "UNTAGGED", d["model"], d["target"])
            usd, n = per_move.get(key, (0.0, 0))
            entry.update(monthly_savings_usd=usd, requests=n)
        moves.append(entry)
    return {"scenario": str(path), "margin_pp": margin, "pairs": len(decisions),
            "monthly_savings_usd": total["monthly_savings_usd"] if total else 0.0,
            "monthly_savings_ci95": total["monthly_savings_ci95"] if total else [0.0, 0.0],
            "requests_changed": total["requests_changed"] if total else 0, "moves": moves, "candidate": candidate}


def recommend_text(report: dict) -> str:
    """YAML text: a ``candidates:`` entry in scenario syntax plus the decisions as comments."""
    lines = [f"# tfysim recommend {yaml_comment(report['scenario'])} (margin {report['margin_pp']:g} pp, "
             f"{report['pairs']} workflow/model pairs)"]
    if report["candidate"]["rules"]:
        lo, hi = report["monthly_savings_ci95"]
        lines.append(f"# replayed: the recommendation saves {money(report['monthly_savings_usd'])}/month "
                     f"(95% CI {money(lo)} to {money(hi)}), {report['requests_changed']:,} requests moved")
    for d in report["moves"]:
        saving = ""
        if d["target"]:
            saving = f"saves {money(d['monthly_savings_usd'])}/month ({d['requests']:,} requests); "
        lines.append("# " + yaml_comment(f"{d['workflow_tag']}: {d['model']} -> {d['target'] or 'keep'}: "
                                         f"{saving}{d['detail']}"))
    body = yaml.safe_dump({"candidates": [report["candidate"]]}, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def _replayed_savings(scenario, candidate: dict) -> tuple[dict, dict]:
    """Replay the recommended candidate; monthly savings per (workflow, model, target) and the policy's figures."""
    from simulator.api import run
    from simulator.routing.scenario import Candidate
    from simulator.summary.moves import add_moves, moves_from_outcome

    only = scenario.model_copy(update={"candidates": [Candidate.model_validate(candidate)]})
    parts = []
    result = run(only, observers=[lambda p, base, outcomes: parts.append(
        moves_from_outcome(p, outcomes[0], base.cost_usd))])
    policy = result.summary["policies"][0]
    moves = add_moves(parts)
    scale = 30.0 / max(result.summary["traffic"]["days"], 1e-9)
    per_move = {}
    if len(moves):
        g = moves.groupby(["workflow_tag", "from_model", "to_model"], sort=True)[["recorded_cost_usd", "cost_usd",
                                                                                 "requests"]].sum()
        for key, r in g.iterrows():
            per_move[key] = ((r["recorded_cost_usd"] - r["cost_usd"]) * scale, int(round(r["requests"])))
    return per_move, policy


def _gateway_ids(eval_models: list[str], vocab: list[str]) -> list[str]:
    """Targets as gateway ids: the traffic's id for an eval model that matches one (``gpt-4o-mini-2024-07-18`` ->
    ``openai-main/gpt-4o-mini``), else the eval id itself (a model the traffic has not used yet)."""
    from simulator.evals.matching import match_eval_model

    out = []
    for m in eval_models:
        known = [g for g in vocab if match_eval_model(g, [m]) == m]
        out.extend(known or [m])
    return sorted(set(out))


def _priceable(catalog: Catalog, model: str) -> bool:
    try:
        catalog.resolve(model)
    except Exception:  # noqa: BLE001 - eval models without a price cannot be recommended
        return False
    return True


__all__ = ["recommend_scenario", "recommend_text"]
