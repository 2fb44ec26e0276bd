"""``tfysim diff``: replay the current and the proposed TrueFoundry config over the same traffic and compare."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import InputError
from simulator.formats import money, percent, points, signed_money
from simulator.summary import metrics


def compare_configs(current: str | Path, proposed: str | Path, traffic: Sequence[str | Path], *,
                    evals: Sequence[str | Path] = (), pricing: str | Path | None = None, seed: int = 0,
                    premium_models: list[str] | None = None, adapter: str | None = None,
                    columns: dict[str, str] | None = None, timezone: str | None = None) -> dict[str, Any]:
    """Replay both configs (each a TrueFoundry config file) over ``traffic``; returns figures and the YAML diff.

    ``savings`` uses the vocabulary of ``tfysim run``: ``savings_usd`` (current minus proposed cost),
    ``savings_pct``, ``monthly_savings_usd`` and ``monthly_savings_ci95``, the interval built as the savings interval
    is (:mod:`simulator.summary.intervals`: daily totals, week-to-week), ``interval_method`` says so. ``change`` is
    proposed minus current for the other figures (accuracy, latency, error rate, blocked requests, premium share). Accuracy is each config's change against the recorded routing (needs ``evals``). ``adapter``,
    ``columns`` (canonical -> source) and ``timezone`` say how the traffic files are read.
    Example: ``compare_configs("routing/current.yaml", "routing/proposed.yaml", ["traffic.parquet"])``.
    """
    from simulator.api import run
    from simulator.outputs.gateways.truefoundry import unified_diff
    from simulator.routing.scenario import parse_scenario

    if not traffic:
        raise InputError("tfysim diff: give the traffic to replay with --traffic PATH (a file, folder or glob).")
    current, proposed = Path(current), Path(proposed)
    data: dict[str, Any] = {
        "name": "diff", "traffic": [str(t) for t in traffic], "evals": [str(e) for e in evals], "seed": seed,
        "candidates": [{"name": "current", "truefoundry_config": str(current.resolve())},
                       {"name": "proposed", "truefoundry_config": str(proposed.resolve())}],
        "opportunities": {"models": False, "cache": False},  # a diff compares two configs, nothing else
    }
    if pricing:
        data["pricing"] = str(pricing)
    data.update({k: v for k, v in (("adapter", adapter), ("columns", columns), ("timezone", timezone)) if v})
    if premium_models is not None:
        data["premium_models"] = premium_models
    pairs = _PairObserver()
    result = run(parse_scenario(data, "tfysim diff", Path.cwd()), observers=[pairs])
    cur, prop = result.summary["policies"]
    days = result.summary["traffic"]["days"]
    scale = metrics.MONTH_DAYS / max(days, 1e-9)
    interval = pairs.interval(seed)

    def side(pol: dict) -> dict[str, Any]:
        return {"cost_usd": pol["cost_usd"], "monthly_cost_usd": metrics.r6(pol["cost_usd"] * scale),
                "accuracy_delta_pp": pol.get("accuracy_delta_pp"), "accuracy_delta_ci95": pol.get("accuracy_delta_ci95"),
                "latency_p50_ms": pol["latency_p50_ms_after"], "latency_p95_ms": pol["latency_p95_ms_after"],
                "error_rate": pol["error_rate_after"], "requests_blocked": pol["requests_blocked"],
                "premium_share_cost": pol["premium_share_cost_after"]}

    a, b = side(cur), side(prop)
    # Money in the vocabulary of `tfysim run` and summary.json: savings = current minus proposed cost.
    lo, hi = interval["monthly_savings_ci95"]  # the interval of the cost change (proposed minus current)
    savings = {"savings_usd": metrics.r6(a["cost_usd"] - b["cost_usd"]) + 0,
               "savings_pct": round(100 * (a["cost_usd"] - b["cost_usd"]) / a["cost_usd"], 4) + 0
               if a["cost_usd"] else None,
               "monthly_savings_usd": metrics.r6(a["monthly_cost_usd"] - b["monthly_cost_usd"]) + 0,
               "monthly_savings_ci95": [-hi + 0.0, -lo + 0.0], "interval_method": interval["interval_method"]}
    change: dict[str, Any] = {}  # the other figures: proposed minus current
    for key in ("accuracy_delta_pp", "latency_p50_ms", "latency_p95_ms", "error_rate", "requests_blocked",
                "premium_share_cost"):
        change[key] = None if a[key] is None or b[key] is None else round(b[key] - a[key], 6) + 0
    return {
        "current": str(current), "proposed": str(proposed),
        "traffic": result.summary["traffic"],
        "requests_routed_differently": pairs.moved,
        "models_after": {"current": dict(sorted(pairs.models[0].items())),
                         "proposed": dict(sorted(pairs.models[1].items()))},
        "current_figures": a, "proposed_figures": b, "savings": savings, "change": change,
        "yaml_diff": unified_diff(current.read_text(encoding="utf-8"), proposed.read_text(encoding="utf-8"),
                                  str(current), str(proposed)),
    }


class _PairObserver:
    """Sees both configs' outcomes chunk by chunk: per-minute cost change, requests routed differently, models."""

    def __init__(self) -> None:
        from simulator.summary.accumulate import Labels

        self.minutes = Labels(1)
        self.moved = 0
        self.models: list[dict[str, int]] = [{}, {}]
        self.window: tuple[int, int] | None = None

    def __call__(self, p, base, outcomes) -> None:
        from simulator.summary.intervals import BLOCK_NS

        o_cur, o_prop = outcomes
        facts = p.ctx.facts
        self.window = (facts.ts_min, facts.ts_max)
        minute = (p.ts - facts.ts_min) // BLOCK_NS
        self.minutes.add(self.minutes.codes(minute), 0, o_prop.cost_usd - o_cur.cost_usd)
        self.moved += int((o_cur.model != o_prop.model).sum())
        names = np.array(p.vocab, dtype=object)
        for side, o in enumerate(outcomes):
            keys, counts = np.unique(names[o.model].astype(str), return_counts=True)
            for k, c in zip(keys, counts):
                self.models[side][str(k)] = self.models[side].get(str(k), 0) + int(c)

    def interval(self, seed: int) -> dict[str, Any]:
        """The interval of the monthly cost change, built as the savings interval is."""
        from simulator.summary.intervals import savings_interval

        if self.window is None or not self.minutes.ids:
            return {"monthly_savings_ci95": [0.0, 0.0], "interval_method": "no traffic"}
        labels, sums = self.minutes.sorted()
        return savings_interval(labels.astype(np.int64), sums[:, 0], self.window[0], self.window[1], draws=2000,
                                seed=seed)


def diff_text(report: dict[str, Any], show_yaml: bool = True) -> str:
    a, b, c, sv = report["current_figures"], report["proposed_figures"], report["change"], report["savings"]
    t = report["traffic"]

    def num(x, fmt="{:,.0f}"):
        return "n/a" if x is None else fmt.format(x)

    def signed(x, fmt):
        return "n/a" if x is None else ("+" if x >= 0 else "") + fmt.format(x)

    rows = [
        ("cost in the window", money(a["cost_usd"]), money(b["cost_usd"]),
         f"{signed_money(-sv['savings_usd'])} ({percent(-sv['savings_pct'], signed=True)})"
         if sv["savings_pct"] is not None else signed_money(-sv["savings_usd"])),
        ("monthly cost", money(a["monthly_cost_usd"]), money(b["monthly_cost_usd"]),
         f"{signed_money(-sv['monthly_savings_usd'])} (95% CI {signed_money(-sv['monthly_savings_ci95'][1])} to "
         f"{signed_money(-sv['monthly_savings_ci95'][0])})"),
        ("accuracy vs recorded", points(a["accuracy_delta_pp"]) if a["accuracy_delta_pp"] is not None else "n/a",
         points(b["accuracy_delta_pp"]) if b["accuracy_delta_pp"] is not None else "n/a",
         points(c["accuracy_delta_pp"]) if c["accuracy_delta_pp"] is not None else "n/a (give --evals)"),
        ("p50 latency (ms)", num(a["latency_p50_ms"]), num(b["latency_p50_ms"]), signed(c["latency_p50_ms"], "{:,.0f}")),
        ("p95 latency (ms)", num(a["latency_p95_ms"]), num(b["latency_p95_ms"]), signed(c["latency_p95_ms"], "{:,.0f}")),
        ("error rate", num(a["error_rate"], "{:.1%}"), num(b["error_rate"], "{:.1%}"),
         points(c["error_rate"] * 100) if c["error_rate"] is not None else "n/a"),
        ("requests blocked", num(a["requests_blocked"]), num(b["requests_blocked"]), signed(c["requests_blocked"], "{:,}")),
    ]
    w = [max(len(r[i]) for r in rows + [("", "current", "proposed", "change")]) for i in range(4)]
    lines = [f"{report['current']} -> {report['proposed']}: {t['rows_replayed']:,} requests over {t['days']:.2f} days, "
             f"{report['requests_routed_differently']:,} routed differently", "",
             f"{'':<{w[0]}}  {'current':>{w[1]}}  {'proposed':>{w[2]}}  change"]
    lines += [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]}" for r in rows]
    saved = sv["monthly_savings_usd"]
    lines += ["", f"the proposed config {'saves' if saved >= 0 else 'costs'} {money(abs(saved))}/month "
              f"(savings 95% CI {money(sv['monthly_savings_ci95'][0])} to {money(sv['monthly_savings_ci95'][1])}); "
              + sv["interval_method"]]
    if show_yaml and report["yaml_diff"]:
        lines += ["", report["yaml_diff"].rstrip("\n")]
    return "\n".join(lines)
