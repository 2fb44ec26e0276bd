"""Policy search: per workflow, the cheapest model with eval evidence that is non-inferior to the served one."""

from __future__ import annotations

import re

import pandas as pd

from simulator.errors import InputError
from simulator.evals.gates import non_inferiority
from simulator.evals.impact import match_eval_model
from simulator.evals.stats import paired_delta


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "untagged"


def _rule_id(tag, target: str) -> str:
    """``<workflow>-to-<target>`` as a valid rule id: starts with a letter, at most 62 characters (a long one is cut
    and keeps a short digest of the whole, so two long workflow names stay apart)."""
    rid = f"{_slug(tag or 'untagged')}-to-{_slug(target)}"
    rid = rid if rid[0].isalpha() else "w-" + rid
    if len(rid) > 62:
        import hashlib

        rid = rid[:53].rstrip("-") + "-" + hashlib.sha256(rid.encode()).hexdigest()[:8]
    return rid


def recommend(served: pd.DataFrame, samples: pd.DataFrame, cost_per_request, *, candidates, margin_pp: float = 2.0,
              model_map: dict | None = None, workflow_map: dict | None = None, min_paired: int = 20,
              n_boot: int = 2000, seed: int = 0, name: str = "recommended") -> tuple[dict, list[dict]]:
    """A candidate policy in scenario syntax plus one decision per (workflow, served model).

    served: ``workflow_tag, model, requests`` (what serves each workflow today, gateway ids); candidates: gateway
    ids that may be targets; ``cost_per_request(model_id, workflow_tag) -> float`` (USD). A target must be cheaper,
    have at least ``min_paired`` eval samples paired with the served model in that workflow, and pass
    ``non_inferiority`` at ``margin_pp``; the cheapest such target wins (ties: by name).
    Returns ``({"name", "rules": [...]}, decisions)``; each decision has workflow_tag, model, target (or None), detail.
    """
    for col in ("workflow_tag", "model"):
        if col not in served.columns:
            raise InputError(f"served table: column `{col}` is missing. Expected workflow_tag, model, requests.")
    workflow_map = workflow_map or {}
    eval_models = sorted(samples["model"].unique())
    pairs = served[["workflow_tag", "model"]].drop_duplicates()
    pairs = pairs.assign(_k=pairs["workflow_tag"].astype(object).where(pairs["workflow_tag"].notna(), "")) \
        .sort_values(["_k", "model"], kind="stable")
    decisions, chosen = [], {}
    for row in pairs.itertuples(index=False):
        tag = row.workflow_tag if isinstance(row.workflow_tag, str) else None
        etag = workflow_map.get(tag, tag)
        a = match_eval_model(row.model, eval_models, model_map)
        base_cost = float(cost_per_request(row.model, tag))
        decision = {"workflow_tag": tag, "model": row.model, "target": None, "cost_per_request_usd": base_cost,
                    "target_cost_per_request_usd": None, "delta_pp": None, "delta_ci95_pp": None, "detail": None}
        if a is None:
            decisions.append(decision | {"detail": f"served model {row.model!r} has no eval samples; kept."})
            continue
        tried = []
        options = sorted((float(cost_per_request(b, tag)), b) for b in candidates if b != row.model)
        for cost_b, b in options:
            if cost_b >= base_cost:
                break
            eb = match_eval_model(b, eval_models, model_map)
            if eb is None:
                continue
            res = paired_delta(samples, a, eb, workflow_tag=etag, n_boot=n_boot, seed=seed)
            if res["n_paired"] < min_paired:
                tried.append(f"{b}: only {res['n_paired']} paired samples")
                continue
            ci = (100 * res["delta_ci"][0], 100 * res["delta_ci"][1])
            gate = non_inferiority(ci, margin_pp, delta_pp=100 * res["delta"],
                                   variance_per_sample=res["variance_per_sample"], n_now=res["n_paired"],
                                   label=f"{b} vs {row.model}")
            if gate["passed"]:
                decision |= {"target": b, "target_cost_per_request_usd": cost_b, "delta_pp": 100 * res["delta"],
                             "delta_ci95_pp": ci, "detail": gate["detail"]}
                chosen.setdefault((tag, b), []).append(row.model)
                break
            tried.append(gate["detail"])
        if decision["target"] is None:
            decision["detail"] = "no cheaper model passes non-inferiority; kept." + (
                " Tried: " + " | ".join(tried) if tried else " No cheaper candidate has eval evidence.")
        decisions.append(decision)
    rules = []
    for (tag, target), models in chosen.items():
        when = {"models": sorted(models)}
        if tag is not None:
            when["metadata"] = {"workflow_tag": tag}
        rules.append({"id": _rule_id(tag, target), "when": when,
                      "type": "weight-based-routing", "load_balance_targets": [{"target": target, "weight": 100}]})
    return {"name": name, "rules": rules}, decisions
