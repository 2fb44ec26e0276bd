"""Week over week: this run against last week's summary.json (``tfysim run --previous PATH/summary.json``).

Compared: monthly spend, the premium models' share of spend, the error rate, the untagged share of spend (by
project, team and workflow), each candidate's monthly savings (by name) and the plan's. This week's 95% interval of
each figure uses the savings intervals' method (:mod:`simulator.summary.intervals`: daily totals, weekday/weekend
term, adjacent-day covariance, Student's t; hours or equal blocks in a short window; sessions with
``bootstrap.unit: session``): monthly spend is a scaled sum of the per-minute baseline sums; a share or rate
``A / B`` is linearised (the interval of ``sum(a - r b) / B`` around ``r = A / B``). A change is *flagged* when last
week's value lies outside this week's interval: a change larger than this week's own day-to-day variation explains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import InputError
from simulator.summary.accumulate import BLOCK_SUMS
from simulator.summary.metrics import MONTH_DAYS
from simulator.summary.privacy import UNTAGGED


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


def block_intervals(keys: np.ndarray, sums: np.ndarray, ts_min: int, ts_max: int, unit: str,
                    days: float) -> dict[str, list[float]]:
    """95% intervals of this week's figures from the baseline's per-block sums (columns: ``BLOCK_SUMS``; ``keys``:
    minutes from ``ts_min``, or sessions when ``unit`` is ``session``)."""
    from simulator.summary import intervals

    if len(sums) == 0:
        return {}
    col = {name: sums[:, i] for i, name in enumerate(BLOCK_SUMS)}

    def interval_of_sum(values: np.ndarray, scale: float) -> list[float]:
        if unit == "session":
            return intervals.interval_from_blocks(values, scale=scale)["ci95"]
        tb = intervals.time_blocks(keys.astype(np.int64), values, ts_min, ts_max, unit)
        return intervals.interval_from_blocks(tb["totals"], tb["exposure"], tb["weekend"], tb["first_half"],
                                              scale=scale)["ci95"]

    def ratio(num: str, den: str) -> list[float] | None:
        total = float(col[den].sum())
        if total <= 0:
            return None
        r = float(col[num].sum()) / total
        lo, hi = interval_of_sum(col[num] - r * col[den], 1.0 / total)  # sum(a - r b) is 0 up to round-off
        return [min(r + lo, r), max(r + hi, r)]

    out = {"monthly_cost_usd": interval_of_sum(col["cost_usd"], MONTH_DAYS / max(days, 1e-9)),
           "premium_share_cost": ratio("premium_cost_usd", "cost_usd"),
           "error_rate": ratio("errors", "requests")}
    for by in ("project", "team", "workflow_tag"):
        out[f"untagged_{by}_share_cost"] = ratio(f"untagged_{by}_cost_usd", "cost_usd")
    return {k: [float(v[0]), float(v[1])] for k, v in out.items() if v is not None}


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


def attach(summary: dict, base_acc, previous: dict | None, previous_path: str | None, scenario, facts) -> None:
    """Add ``since_last_week`` to ``summary`` when last week's summary was given."""
    if previous is None:
        return
    from simulator.summary.metrics import clean

    keys, sums = base_acc.blocks.sorted()
    intervals = block_intervals(np.asarray(keys), sums, facts.ts_min or 0, facts.ts_max or 0, scenario.bootstrap.unit,
                                facts.days)
    summary["since_last_week"] = clean(since_last_week(summary, previous, previous_path or "", intervals))


__all__ = ["attach", "block_intervals", "read_previous", "since_last_week"]
