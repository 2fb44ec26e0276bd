"""The decision-fidelity fields of a policy record, shared by every engine.

An engine replays a candidate and hands over plain inputs: its per-minute savings sums, its moves table
(:mod:`simulator.summary.moves`) and the policy record built so far. :func:`policy_interval` gives
``monthly_savings_ci95`` (before the record is built); :func:`finish_policy` adds ``interval_method``,
``monthly_savings_interval``, ``moved``, ``translation_pairs``, ``sensitivity`` and ``assumptions``, all computed from
those inputs, so every engine writes the same figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from simulator.formats import money

from simulator.summary import intervals
from simulator.summary.assumptions import moved_summary, policy_assumptions
from simulator.summary.moves import group_sums, translation_pairs
from simulator.summary.sensitivity import gate_sensitivity


def ratio_terms(moves: pd.DataFrame, tokenizer_of: Callable[[str], str] | None = None) -> list[intervals.RatioTerm]:
    """One interval term per (source tokenizer, target tokenizer, method) from the moves table's cost ranges."""
    if moves is None or moves.empty:
        return []
    tok = tokenizer_of or (lambda m: m)
    sources, targets = moves["from_model"].tolist(), moves["to_model"].tolist()
    names = {m: tok(m) for m in {*sources, *targets}}  # a registry lookup per distinct model, not per row
    groups, sums = group_sums(moves, [[names[m] for m in sources], [names[m] for m in targets], "translation"],
                              ["cost_usd", "cost_low_usd", "cost_high_usd"])
    terms = []
    for (src, dst, method), (cost, cost_low, cost_high) in zip(groups, sums.tolist()):
        if cost <= 0:
            continue
        low, high = cost_low / cost, cost_high / cost
        if low != 1.0 or high != 1.0:
            terms.append(intervals.RatioTerm(f"translation {src} -> {dst} ({method})", cost, min(low, 1.0),
                                             max(high, 1.0)))
    return terms


def tokenizer_lookup(translator) -> Callable[[str], str]:
    """Model id -> tokenizer id through the run's registry (the model id itself when none is registered)."""
    registry = getattr(translator, "registry", None)

    def lookup(model: str) -> str:
        try:
            return registry.tokenizer_id_for_model(model) if registry is not None else model
        except Exception:  # noqa: BLE001 - an unknown tokenizer keys by model (its rows translate by identity)
            return model
    return lookup


def policy_interval(block, sums, ts_min: int, ts_max: int, scenario, moves: pd.DataFrame, translator=None,
                    session_totals=None) -> dict[str, Any]:
    """``monthly_savings_ci95``, ``interval_method`` and ``interval`` of one policy (see ``summary.intervals``).

    ``block``/``sums``: per-minute savings sums (minutes from ``ts_min``); ``session_totals``: per-session savings
    when ``bootstrap.unit`` is ``session`` (local engine only).
    """
    terms = ratio_terms(moves, tokenizer_lookup(translator))
    unit, draws, seed = scenario.bootstrap.unit, scenario.bootstrap.draws, scenario.seed
    if unit == "session" and session_totals is not None:
        days = max(int(ts_max) - int(ts_min), 10**9) / intervals.NS_PER_DAY
        return intervals.session_interval(session_totals, days, terms=terms, draws=draws, seed=seed)
    return intervals.savings_interval(block, sums, ts_min, ts_max, unit=unit if unit != "session" else "auto",
                                      terms=terms, draws=draws, seed=seed)


def minute_sums(ts: np.ndarray, ts_min: int, savings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(minute index, savings sum) of the minutes that have requests: what the engines accumulate."""
    minute = (np.asarray(ts, dtype=np.int64) - int(ts_min)) // intervals.BLOCK_NS
    keys, inverse = np.unique(minute, return_inverse=True)
    return keys, np.bincount(inverse.reshape(-1), weights=savings, minlength=len(keys))


def finish_policy(policy: dict[str, Any], *, moves: pd.DataFrame, interval: dict[str, Any], candidate, days: float,
                  candidate_cost_usd: float, base_cost_usd: float, recorded_requests_by_model: dict[str, int],
                  savings_usd: float | None = None,
                  evaluate_gates: Callable[[dict[str, Any]], list[dict[str, Any]]],
                  extra_sensitivity: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Add the fidelity fields to a policy record whose gates are already evaluated; returns the record."""
    policy["interval_method"] = interval["interval_method"]
    policy["monthly_savings_interval"] = interval["interval"]
    policy["moved"] = moved_summary(moves)
    policy["translation_pairs"] = translation_pairs(moves)
    if (policy.get("savings_usd") or 0.0) < 0:
        policy["cost_increase"] = cost_increase(moves)
    sums = moves[["cost_usd", "cost_low_usd", "cost_high_usd"]].sum().to_dict() if len(moves) else {}
    checks = [gate_sensitivity(policy, sums, candidate_cost_usd, base_cost_usd, days, evaluate_gates,
                                savings_usd)] + list(extra_sensitivity or [])
    policy["sensitivity"] = [c for c in checks if c]
    policy["changes"] = [kind for kind in ("rules", "budgets", "rate_limits", "prompt_caching")
                         if getattr(candidate, kind, None)]
    policy["scope"] = action_scope(policy, candidate)
    policy["assumptions"] = policy_assumptions(policy, candidate, days, recorded_requests_by_model)
    return policy


def cost_increase(moves: pd.DataFrame, top: int = 3) -> list[dict[str, Any]]:
    """Why a candidate costs more than the recording: the (from, to) moves that raised cost most, each with its
    requests and extra cost in the window and a sentence (present only when savings are negative)."""
    if moves.empty:
        return []
    groups, sums = group_sums(moves, ["from_model", "to_model"], ["requests", "recorded_cost_usd", "cost_usd"])
    g = pd.DataFrame(sums, columns=["requests", "recorded_cost_usd", "cost_usd"],
                     index=pd.MultiIndex.from_tuples(groups, names=["from_model", "to_model"]))
    g["extra_cost_usd"] = g["cost_usd"] - g["recorded_cost_usd"]
    g = g[g["extra_cost_usd"] > 0].sort_values("extra_cost_usd", ascending=False, kind="stable").head(top)
    out = []
    for (src, dst), r in g.iterrows():
        n = int(round(r["requests"]))
        out.append({"from_model": src, "to_model": dst, "requests": n,
                    "extra_cost_usd": round(float(r["extra_cost_usd"]), 6) + 0.0,
                    "reason": f"{n:,} requests recorded on {src} were moved to {dst}, which costs "
                              f"{money(float(r['extra_cost_usd']))} more for them in the window: the rule also "
                              f"matches requests already on the cheaper model (narrow its when.models)"})
    return out


def action_scope(policy: dict[str, Any], candidate) -> list[str]:
    """Keys of the requests a candidate acts on: each workflow whose requests it moves or whose cost it changes
    (routing, caching, blocking alike), and each rule's ``when`` per kind of rule. Candidates sharing a key are
    alternatives: the report's action queue applies at most one of them. A ``when`` is keyed by a hash: it may name
    subjects (user ids)."""
    import hashlib
    import json

    keys = {f"workflow:{r['workflow_tag']}" for r in (policy.get("breakdowns") or {}).get("workflow_tag", [])
            if r.get("requests_changed") or abs(r.get("savings_usd") or 0.0) > 1e-9}
    for kind, label in (("rules", "route"), ("budgets", "budget"), ("rate_limits", "rate-limit"),
                        ("prompt_caching", "cache")):
        for item in getattr(candidate, kind, None) or []:
            text = json.dumps(item.when.model_dump(mode="json", exclude_defaults=True), sort_keys=True)
            keys.add(f"{label}:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16])
    return sorted(keys)
