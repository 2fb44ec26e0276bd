"""Summary numbers for a replay: totals, breakdowns, latency, premium share, savings intervals, gates.

Breakdowns are by team, project, workflow_tag and model only; never by user (per-person rankings are out of the
product by design). Missing attribution shows as ``UNTAGGED``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from simulator.formats import money, percent, points
from simulator.routing.scenario import Gates
from simulator.summary.privacy import UNTAGGED

BREAKDOWNS = ("team", "project", "workflow_tag", "model")
_NS_PER_DAY = 86_400 * 10**9
MONTH_DAYS = 30.0
MIN_BLOCKS = 24  # fewer bootstrap blocks than this and the interval is too coarse to mean anything


def r6(x: float) -> float:
    """Round money for output (the arithmetic stays float64)."""
    return round(float(x), 6) + 0.0


def window_days(ts: np.ndarray) -> float:
    """Length of the traffic window in days (at least one second)."""
    if len(ts) == 0:
        return 0.0
    return max(float(ts.max() - ts.min()), 1e9) / _NS_PER_DAY


def premium_models(catalog, vocab: list[str], ts_min: int | None, configured: list[str] | None) -> set[str]:
    """Configured premium models, else those whose output price is at least half the priciest model's (prices at the
    start of the traffic window)."""
    if configured is not None:
        return set(configured)
    start = int(ts_min) if ts_min is not None else 0
    prices = {m: catalog.unit_prices(m, start)["output_mtok"] for m in vocab}
    top = max(prices.values(), default=0.0)
    return {m for m, price in prices.items() if top > 0 and price >= 0.5 * top}


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 4) if den else None


def _quantiles(values: np.ndarray) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None, None
    p50, p95 = np.percentile(values, [50, 95])
    return round(float(p50), 3), round(float(p95), 3)


def bootstrap_from_sums(sums: np.ndarray, draws: int, seed: int, days: float) -> list[float]:
    """95% percentile interval of monthly savings, resampling blocks (hours, days or sessions) with replacement;
    ``sums`` are the per-block savings (blocks in sorted order), ``days`` the window length."""
    b = len(sums)
    rng = np.random.default_rng(seed)
    totals = np.empty(draws)
    chunk = max(1, 20_000_000 // max(b, 1))
    for start in range(0, draws, chunk):
        k = min(chunk, draws - start)
        idx = rng.integers(0, b, size=(k, b))
        totals[start:start + k] = sums[idx].sum(axis=1)
    scale = MONTH_DAYS / days
    lo, hi = np.percentile(totals * scale, [2.5, 97.5])
    return [r6(lo), r6(hi)]


def breakdown_rows(by: str, labels, requests, base_cost, cand_cost=None, changed=None) -> list[dict[str, Any]]:
    """Breakdown table rows from per-label sums (labels sorted), most expensive first."""
    rows = []
    for i in np.argsort(-base_cost, kind="stable"):
        row = {by: str(labels[i]), "requests": int(requests[i]), "cost_usd": r6(base_cost[i])}
        if cand_cost is not None:
            row.update(candidate_cost_usd=r6(cand_cost[i]), savings_usd=r6(base_cost[i] - cand_cost[i]),
                       requests_changed=int(changed[i]))
        rows.append(row)
    return rows


def policy_record(name: str, requests: int, cost_usd: float, base_cost_usd: float, days: float,
                  ci95: list[float], counts: dict[str, int], before: dict[str, Any], after: dict[str, Any],
                  translation: dict[str, int], savings_usd: float | None = None,
                  money: dict[str, float] | None = None) -> dict[str, Any]:
    """The engine-independent fields of one summary.json policy, in their fixed order.

    ``savings_usd`` is the equal-service saving: the recorded cost minus the candidate's cost over requests both
    serve (or both fail), minus the cost of failed requests the candidate serves; requests the candidate fails
    (``requests_unserved``) or refuses (``requests_refused``: budgets, rate limits) save nothing and are reported
    with their recorded cost apart.
    """
    savings = base_cost_usd - cost_usd if savings_usd is None else savings_usd
    money = money or {}
    record: dict[str, Any] = {
        "name": name,
        "requests": requests,
        "requests_changed": counts.get("requests_changed", 0),
        "cost_usd": r6(cost_usd),
        "savings_usd": r6(savings),
        "savings_pct": round(100.0 * savings / base_cost_usd, 4) if base_cost_usd else 0.0,
        "monthly_savings_usd": r6(savings * MONTH_DAYS / max(days, 1e-9)),
        "monthly_savings_ci95": ci95,
        "accuracy_delta_pp": None,
        "accuracy_delta_ci95": None,
        "requests_blocked": counts.get("requests_blocked", 0),
        "fallbacks": counts.get("fallbacks", 0),
        "failed_attempts": counts.get("failed_attempts", 0),
        "retries": counts.get("retries", 0),
        "requests_still_failing": counts.get("still_failing", 0),
        "requests_unserved": counts.get("requests_unserved", 0),
        "unserved_recorded_cost_usd": r6(money.get("unserved_recorded_cost_usd", 0.0)),
        "requests_rescued": counts.get("requests_rescued", 0),
        "requests_imputed": counts.get("requests_imputed", 0),
        "requests_refused": counts.get("requests_refused", 0),
        "spend_prevented_usd": r6(money.get("spend_prevented_usd", 0.0)),
    }
    for key in ("error_rate", "latency_p50_ms", "latency_p95_ms", "premium_share_cost", "premium_share_requests"):
        record[f"{key}_before"] = before[key]
        record[f"{key}_after"] = after[key]
    record["token_translation"] = dict(sorted(translation.items()))
    return record


def candidate_gates(scenario, cand) -> Gates:
    """The scenario's gates with the gates the candidate sets itself overriding them (an explicit null turns a gate
    off for that candidate)."""
    return scenario.gates.model_copy(update=cand.gates.model_dump(exclude_unset=True))


def evaluate_gates(policy: dict[str, Any], gates: Gates, before: dict[str, Any]) -> list[dict[str, Any]]:
    """Gate verdicts for one policy; each says what was measured against what limit."""
    out = []
    g = gates.model_dump()
    if g["min_monthly_savings_usd"] is not None:
        lim, val = g["min_monthly_savings_usd"], policy["monthly_savings_usd"]
        lo, hi = policy["monthly_savings_ci95"]
        out.append({"name": "min_monthly_savings_usd", "passed": val >= lim,
                    "detail": f"monthly savings {money(val)} (95% CI {money(lo)} to {money(hi)}) vs minimum {money(lim)}"})
    if g["max_cost_increase_pct"] is not None:
        lim = g["max_cost_increase_pct"]
        inc = -(policy["savings_pct"] or 0.0)
        out.append({"name": "max_cost_increase_pct", "passed": inc <= lim,
                    "detail": f"cost change {percent(inc, signed=True)} vs maximum increase {percent(lim)}"})
    if g["max_p95_latency_increase_pct"] is not None:
        lim = g["max_p95_latency_increase_pct"]
        b, a = before["latency_p95_ms"], policy["latency_p95_ms_after"]
        if b is None or a is None:
            out.append({"name": "max_p95_latency_increase_pct", "passed": False,
                        "detail": "no latency data to compare; record latency_ms"})
        else:
            inc = 100.0 * (a - b) / b if b else 0.0
            out.append({"name": "max_p95_latency_increase_pct", "passed": inc <= lim,
                        "detail": f"p95 latency {b:.0f} ms -> {a:.0f} ms ({inc:+.1f}%) vs maximum {lim:.1f}%"})
    if g["max_error_rate_increase_pp"] is not None:
        lim = g["max_error_rate_increase_pp"]
        b, a = before["error_rate"], policy["error_rate_after"]
        inc = 100.0 * (a - b)
        out.append({"name": "max_error_rate_increase_pp", "passed": inc <= lim + 1e-9,
                    "detail": f"error rate {percent(100 * b)} -> {percent(100 * a)} ({points(inc)}; "
                              f"{policy['requests_unserved']:,} requests the recording served fail here) vs maximum "
                              f"+{lim:.1f} pp"})
    if g["max_error_rate"] is not None:
        lim, val = g["max_error_rate"], policy["error_rate_after"]
        out.append({"name": "max_error_rate", "passed": val <= lim,
                    "detail": f"error rate {val:.4%} vs maximum {lim:.4%}"})
    if g["max_blocked_requests"] is not None:
        lim, val = g["max_blocked_requests"], policy["requests_blocked"]
        out.append({"name": "max_blocked_requests", "passed": val <= lim,
                    "detail": f"{val} requests blocked by budgets or rate limits vs maximum {lim}"})
    if g["max_accuracy_drop_pp"] is not None:
        lim = g["max_accuracy_drop_pp"]
        ci = policy.get("accuracy_delta_ci95")
        verdict = policy.get("accuracy_verdict")
        if ci is None:
            detail = verdict.get("detail") if isinstance(verdict, dict) else None
            out.append({"name": "max_accuracy_drop_pp", "passed": False,
                        "detail": detail or "no eval evidence for the moved traffic; add labeled eval samples"})
        else:
            passed = verdict["passed"] if isinstance(verdict, dict) and "passed" in verdict else ci[0] >= -lim
            detail = (verdict or {}).get("detail") if isinstance(verdict, dict) else None
            out.append({"name": "max_accuracy_drop_pp", "passed": bool(passed), "detail": detail or (
                f"accuracy change {points(policy['accuracy_delta_pp'])} (95% CI {points(ci[0])} to "
                f"{points(ci[1])}) vs margin -{lim:.1f} pp")})
    return out


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
