"""Week over week: this run against last week's summary.json (``tfysim run --previous PATH/summary.json``).

Compared: monthly spend, the premium models' share of spend, the error rate, the untagged share of spend (by
project, team and workflow), each candidate's monthly savings (by name) and the plan's. This week's 95% interval of
each figure comes from the same block bootstrap as the savings intervals (hours by default, seeded): monthly spend
scales the resampled block sums to 30 days; shares and rates are ratios of resampled sums. A change is *flagged*
when last week's value lies outside this week's interval: a change larger than what resampling this week's own
traffic produces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import InputError
from simulator.summary.accumulate import BLOCK_SUMS
from simulator.summary.metrics import MONTH_DAYS, UNTAGGED


def read_previous(path: str | Path) -> dict[str, Any]:
    """Last week's summary.json; a one-line InputError when it cannot be one."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (--previous). Give last week's summary.json.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable summary.json (--previous): {str(exc).splitlines()[0]}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("baseline"), dict) or "policies" not in data:
        raise InputError(f"{path}: not a tfysim summary.json (no baseline and policies); give the summary.json of "
                         "last week's `tfysim run`.")
    if data.get("schema_version") != 1:
        raise InputError(f"{path}: summary.json schema_version must be 1. Got {data.get('schema_version')!r} instead.")
    return data


def block_intervals(sums: np.ndarray, draws: int, seed: int, days: float) -> dict[str, list[float]]:
    """95% percentile intervals of this week's figures from per-block sums (columns: ``BLOCK_SUMS``)."""
    col = {name: sums[:, i] for i, name in enumerate(BLOCK_SUMS)}
    b = len(sums)
    if b == 0:
        return {}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, b, size=(draws, b))

    def total(name: str) -> np.ndarray:
        return col[name][idx].sum(axis=1)

    cost, requests = total("cost_usd"), total("requests")
    safe_cost = np.where(cost > 0, cost, np.nan)
    safe_requests = np.where(requests > 0, requests, np.nan)
    figures = {"monthly_cost_usd": cost * MONTH_DAYS / max(days, 1e-9),
               "premium_share_cost": total("premium_cost_usd") / safe_cost,
               "error_rate": total("errors") / safe_requests}
    for by in ("project", "team", "workflow_tag"):
        figures[f"untagged_{by}_share_cost"] = total(f"untagged_{by}_cost_usd") / safe_cost
    out = {}
    for name, values in figures.items():
        lo, hi = np.nanpercentile(values, [2.5, 97.5])
        out[name] = [float(lo), float(hi)]
    return out


def _untagged_share(summary: dict, by: str) -> float | None:
    base = summary.get("baseline") or {}
    total = base.get("cost_usd") or 0.0
    rows = (base.get("breakdowns") or {}).get(by)
    if rows is None or total <= 0:
        return None
    return sum(r["cost_usd"] for r in rows if r.get(by) == UNTAGGED) / total


def _row(metric: str, previous, current, interval, kind: str) -> dict[str, Any]:
    def fmt(x):
        if x is None:
            return "n/a"
        return f"${x:,.2f}" if kind == "money" else f"{100 * x:.2f}%"

    change = None if previous is None or current is None else current - previous
    flagged = bool(previous is not None and interval and not interval[0] <= previous <= interval[1])
    if change is None:
        change_text = "n/a"
    elif kind == "money":
        change_text = f"{'+' if change >= 0 else '-'}${abs(change):,.2f}"
    else:
        change_text = f"{100 * change:+.2f} pp"
    return {"metric": metric, "previous_value": previous, "current_value": current,
            "interval_95": interval, "flagged": flagged, "previous": fmt(previous), "current": fmt(current),
            "change": change_text,
            "interval": f"{fmt(interval[0])} to {fmt(interval[1])}" if interval else None}


def since_last_week(summary: dict, previous: dict, previous_path: str, intervals: dict[str, list[float]]) -> dict:
    """The ``since_last_week`` section of summary.json."""
    base, prev_base = summary["baseline"], previous["baseline"]
    rows = [
        _row("spend per month", prev_base.get("monthly_cost_usd"), base.get("monthly_cost_usd"),
             intervals.get("monthly_cost_usd"), "money"),
        _row("premium share of spend", prev_base.get("premium_share_cost"), base.get("premium_share_cost"),
             intervals.get("premium_share_cost"), "share"),
        _row("error rate", prev_base.get("error_rate"), base.get("error_rate"), intervals.get("error_rate"), "share"),
    ]
    for by, label in (("project", "project"), ("team", "team"), ("workflow_tag", "workflow")):
        rows.append(_row(f"untagged share of spend ({label})", _untagged_share(previous, by),
                         _untagged_share(summary, by), intervals.get(f"untagged_{by}_share_cost"), "share"))
    prev_policies = {p["name"]: p for p in previous.get("policies", [])}
    for p in summary.get("policies", []):
        old = prev_policies.get(p["name"])
        rows.append(_row(f"savings per month: {p['name']}", old.get("monthly_savings_usd") if old else None,
                         p.get("monthly_savings_usd"), p.get("monthly_savings_ci95"), "money"))
    plan, prev_plan = summary.get("plan") or {}, previous.get("plan") or {}
    if plan.get("monthly_savings_usd") is not None:
        rows.append(_row(f"savings per month: the plan ({plan['name']})", prev_plan.get("monthly_savings_usd"),
                         plan["monthly_savings_usd"], plan.get("monthly_savings_ci95"), "money"))
    traffic = previous.get("traffic") or {}
    window = f"{traffic.get('start')} to {traffic.get('end')}" if traffic.get("start") else None
    return {"previous": str(previous_path), "previous_window": window,
            "gone": sorted(set(prev_policies) - {p["name"] for p in summary.get("policies", [])}),
            "flagged": [r["metric"] for r in rows if r["flagged"]], "rows": rows}


def attach(summary: dict, base_acc, previous: dict | None, previous_path: str | None, scenario, days: float) -> None:
    """Add ``since_last_week`` to ``summary`` when last week's summary was given."""
    if previous is None:
        return
    from simulator.summary.metrics import clean

    _, sums = base_acc.blocks.sorted()
    intervals = block_intervals(sums, scenario.bootstrap.draws, scenario.seed, days)
    summary["since_last_week"] = clean(since_last_week(summary, previous, previous_path or "", intervals))


__all__ = ["attach", "block_intervals", "read_previous", "since_last_week"]
