"""``tfysim drift``: load traffic, price both models, and format the drift report."""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.formats import signed_money
from simulator.outputs.escape import terminal
from simulator.tokens.drift import drift_report
from simulator.pricing.catalog import OPTION_FIX, Catalog
from simulator.io.traffic import load_traffic


def drift_command(paths, from_model: str, to_model: str, by: str | None, pricing, timezone) -> dict[str, Any]:
    loaded = load_traffic(paths, timezone=timezone)
    catalog = Catalog.load(pricing, fix=OPTION_FIX)
    catalog.resolve(from_model)
    catalog.resolve(to_model)

    def price(model_id: str, frame) -> np.ndarray:
        ts = frame["timestamp"].array.asi8 if len(frame) else np.zeros(0, np.int64)
        return catalog.cost_usd(np.full(len(frame), model_id, dtype=object), ts, frame["input_tokens"],
                                frame["output_tokens"], frame["cache_read_tokens"], frame["cache_write_tokens"],
                                frame["cache_write_1h_tokens"])

    report = drift_report(loaded.frame, from_model, to_model, by=by, price_fn=price)
    return {**loaded.counts(), **report}


def drift_table(report: dict[str, Any]) -> str:
    ratio = report["ratio"]
    lo, hi = report.get("ratio_ci_low"), report.get("ratio_ci_high")
    # A fitted ratio's 95% CI or a shipped ratio's stated range; identity and range-less defaults have none.
    ci = f" (interval {lo:.3f} to {hi:.3f})" if lo is not None and hi is not None else " (no interval: an assumption)"
    lines = [
        f"{terminal(report['tokenizer_from'])} -> {terminal(report['tokenizer_to'])}: "
        f"input tokens {report['input_tokens_from']:,} -> "
        f"{report['input_tokens_to']:,}, ratio {ratio:.3f}{ci}, method {report['method']}",
    ]
    cost = report.get("cost") or {}
    if cost:
        monthly = cost.get("monthly_cost_impact_usd")
        lines.append(f"cost per request ${cost['cost_per_request_usd_from']:.6f} -> "
                     f"${cost['cost_per_request_usd_to']:.6f}"
                     + (f"; monthly impact {signed_money(monthly)}" if monthly is not None else ""))
    for g in report.get("groups") or []:
        lines.append(f"  {terminal(g.get('group')):<24} {g.get('requests', 0):>8,} requests  "
                     f"ratio {g.get('ratio', 0):.3f}")
    return "\n".join(lines)
