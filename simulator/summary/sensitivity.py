"""Verdicts that flip inside an assumption's own interval (the tokenizer ratio's stated range, say).

A verdict is only as firm as the assumptions under it. For each policy the translation assumptions are moved to both
ends of their intervals (every moved request's token counts at the low end, then at the high end) and the verdicts
are taken again: gates from the savings at each end (first order: a moved request's cost scales with its token
counts), and, where prompt caching is simulated, cacheable vs below the model's minimum from a replay at each end.
Where a verdict differs between the ends, the report shows both outcomes and the action says "Check", not "Apply".
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

MONTH_DAYS = 30.0
ASSUMPTION = "token counts of moved requests at the ends of their translation intervals"


def _r6(x: float) -> float:
    return round(float(x), 6) + 0.0


def at_cost(policy: dict[str, Any], candidate_cost_usd: float, base_cost_usd: float, days: float, *,
            cost_usd: float | None = None, savings_usd: float | None = None) -> dict[str, Any]:
    """A copy of ``policy`` with its savings figures recomputed for another candidate cost in the window. The cost
    difference falls on served requests, so the equal-service saving moves by exactly that difference.

    ``cost_usd`` / ``savings_usd``: the policy's unrounded window figures (default: the record's rounded ones), so
    every engine rounds the same sums once."""
    out = copy.deepcopy(policy)
    cost = policy.get("cost_usd", candidate_cost_usd) if cost_usd is None else cost_usd
    saved = policy.get("savings_usd", base_cost_usd - cost) if savings_usd is None else savings_usd
    savings = saved - (candidate_cost_usd - cost)
    out["cost_usd"] = _r6(candidate_cost_usd)
    out["savings_usd"] = _r6(savings)
    out["savings_pct"] = round(100.0 * savings / base_cost_usd, 4) if base_cost_usd else 0.0
    out["monthly_savings_usd"] = _r6(savings * MONTH_DAYS / max(days, 1e-9))
    return out


def gate_sensitivity(policy: dict[str, Any], moved: dict[str, float], candidate_cost_usd: float,
                     base_cost_usd: float, days: float,
                     evaluate: Callable[[dict[str, Any]], list[dict[str, Any]]],
                     savings_usd: float | None = None) -> dict[str, Any] | None:
    """Savings and gate verdicts with the translation assumptions at each end; None without such an interval.

    ``moved``: ``cost_usd``, ``cost_low_usd`` and ``cost_high_usd`` summed over the moved requests (moves table);
    ``candidate_cost_usd`` / ``base_cost_usd`` / ``savings_usd``: the window totals (unrounded); ``evaluate(policy)
    -> gates`` re-evaluates the candidate's gates on a policy record.
    """
    cost, low, high = (float(moved.get(k) or 0.0) for k in ("cost_usd", "cost_low_usd", "cost_high_usd"))
    if abs(low - cost) < 1e-12 and abs(high - cost) < 1e-12:
        return None
    ends = {}
    for end, moved_cost in (("low", low), ("high", high)):
        record = at_cost(policy, candidate_cost_usd + (moved_cost - cost), base_cost_usd, days,
                         cost_usd=candidate_cost_usd, savings_usd=savings_usd)
        ends[end] = {"monthly_savings_usd": record["monthly_savings_usd"],
                     "gates": {g["name"]: g["passed"] for g in evaluate(record)}}
    point = {g["name"]: g["passed"] for g in policy.get("gates") or []}
    flips = sorted(name for name, passed in point.items()
                   if any(ends[e]["gates"].get(name, passed) != passed for e in ends))
    return {"assumption": ASSUMPTION, "kind": "gates",
            "monthly_savings_usd": {"low_token_counts": ends["low"]["monthly_savings_usd"],
                                    "used": policy["monthly_savings_usd"],
                                    "high_token_counts": ends["high"]["monthly_savings_usd"]},
            "gates": {name: {"low_token_counts": ends["low"]["gates"].get(name), "used": passed,
                             "high_token_counts": ends["high"]["gates"].get(name)} for name, passed in point.items()},
            "flips": [f"gate {name}" for name in flips]}


def cache_counts(caching: dict[str, Any] | None) -> dict[str, int]:
    """Requests covered, cacheable (prefix at or above the minimum) and below the minimum, from a ``caching`` block."""
    rows = (caching or {}).get("by_workflow") or []
    total = next((r for r in rows if r.get("workflow_tag") == "(all)"), {})
    return {k: int(total.get(k) or 0) for k in ("requests", "cacheable_requests", "below_minimum_requests")}


def cache_sensitivity(point: dict[str, Any], low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any] | None:
    """Whether the caching verdict (any request cacheable vs all below the minimum) differs across the ends.

    Each argument is a policy record (``caching`` block, ``monthly_savings_usd``) of a replay with the translation
    assumptions at the ratio used, at the low end and at the high end.
    """
    if not point.get("caching"):
        return None
    sides = {"low_token_counts": low, "used": point, "high_token_counts": high}
    counts = {k: cache_counts(v.get("caching")) for k, v in sides.items()}
    verdict = {k: ("cacheable" if c["cacheable_requests"] > 0 else "below minimum") for k, c in counts.items()}
    flips = ["caching verdict"] if len(set(verdict.values())) > 1 else []
    return {"assumption": ASSUMPTION, "kind": "caching",
            "caching": {k: {**counts[k], "verdict": verdict[k],
                            "monthly_savings_usd": sides[k].get("monthly_savings_usd")} for k in sides},
            "flips": flips}
