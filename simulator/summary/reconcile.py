"""``tfysim reconcile``: the identity replay (recorded routing at catalog prices) against billed FOCUS truth, per
provider, model and charge period (a UTC day in daily exports)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulator.core import Prepared
from simulator.summary import metrics


def reconcile(traffic: Any, catalog: Any, billed: pd.DataFrame) -> dict[str, Any]:
    """Compare replayed cost with ``billed`` (from :func:`simulator.io.focus.read_focus`).

    Each billed (provider, model, period) row is matched with the replayed requests of that provider (catalog
    provider id) and model (the gateway id's part after ``/``) whose timestamps fall in [start, end). ``gap_pct``
    is billed minus replayed over replayed. Replayed traffic outside every billed period or model is reported as
    ``unbilled``.
    """
    p = Prepared(traffic, catalog)
    vocab = np.array(p.vocab, dtype=object)
    provider = np.array([(catalog.resolve(m).provider_id or "").lower() for m in vocab], dtype=object)[p.model]
    model = np.array([m.split("/", 1)[1] if "/" in m else m for m in vocab], dtype=object)[p.model]
    key = pd.Series(provider + "|" + model, dtype=object)
    matched = np.zeros(p.n, dtype=bool)
    rows = []
    for r in billed.itertuples(index=False):
        sel = (key == f"{r.provider}|{r.model}").to_numpy() & (p.ts >= r.period_start.value) & \
            (p.ts < r.period_end.value)
        matched |= sel
        replayed = float(p.baseline_cost[sel].sum())
        gap = r.billed_cost_usd - replayed
        rows.append({"provider": r.provider, "model": r.model, "period_start": r.period_start.isoformat(),
                     "period_end": r.period_end.isoformat(), "requests": int(sel.sum()),
                     "replayed_cost_usd": metrics.r6(replayed), "billed_cost_usd": metrics.r6(r.billed_cost_usd),
                     "gap_usd": metrics.r6(gap), "gap_pct": round(100 * gap / replayed, 4) + 0.0 if replayed else None})
    replayed_total = float(p.baseline_cost[matched].sum())
    billed_total = float(billed["billed_cost_usd"].sum())
    unbilled = ~matched & (p.baseline_cost != 0)
    return {
        **traffic.counts(),
        "replayed_cost_usd": metrics.r6(replayed_total), "billed_cost_usd": metrics.r6(billed_total),
        "gap_usd": metrics.r6(billed_total - replayed_total),
        "gap_pct": round(100 * (billed_total - replayed_total) / replayed_total, 4) + 0.0 if replayed_total else None,
        "unbilled_requests": int(unbilled.sum()), "unbilled_cost_usd": metrics.r6(p.baseline_cost[unbilled].sum()),
        "rows": rows,
    }


def reconcile_text(report: dict[str, Any], limit: int = 40) -> str:
    """A console table: the largest gaps first, then the totals."""
    from simulator.outputs.escape import terminal  # provider and model come from the files: one line each

    worst = sorted(report["rows"], key=lambda r: (-abs(r["gap_usd"]), r["period_start"], r["model"]))[:limit]
    width = max([len("model")] + [len(terminal(r["model"])) for r in worst])  # model ids are never truncated
    lines = [f"{'provider':<12} {'model':<{width}} {'period':<10} {'replayed $':>12} {'billed $':>12} {'gap':>9}"]
    for r in worst:
        gap = f"{r['gap_pct']:+.2f}%" if r["gap_pct"] is not None else "n/a"
        lines.append(f"{terminal(r['provider']):<12} {terminal(r['model']):<{width}} {r['period_start'][:10]:<10} "
                     f"{r['replayed_cost_usd']:>12,.4f} {r['billed_cost_usd']:>12,.4f} {gap:>9}")
    total = f"{report['gap_pct']:+.2f}%" if report["gap_pct"] is not None else "n/a"
    lines.append(f"total: replayed ${report['replayed_cost_usd']:,.4f}, billed ${report['billed_cost_usd']:,.4f}, "
                 f"gap {total}; {report['unbilled_requests']:,} replayed requests "
                 f"(${report['unbilled_cost_usd']:,.4f}) fall outside every billed provider, model and period.")
    return "\n".join(lines)
