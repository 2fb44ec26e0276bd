"""Cost-quality curves for a strong/weak model pair, with RouteLLM and RouterBench metrics.

A router ranks prompts (higher score = more likely to need the strong model); sweeping the share sent to the
weak model traces accuracy against strong-call share (RouteLLM) or total cost (RouterBench). Metrics:

- PGR = (acc - weak) / (strong - weak); APGR = (AUC - AUC_weak) / (AUC_strong - AUC_weak), trapezoids on the
  curve's own grid (RouteLLM ``evaluate.py``); ``apgr_hull`` does the same on the monotone hull.
- CPT(x) = strong-call share needed to recover x of the gap, read off the monotone non-decreasing hull (running
  maximum): RouteLLM's ``np.interp(target, accuracy, pct_strong)`` silently misreads non-monotone curves.
- AIQ (RouterBench ``AIQ.py``): area under the non-decreasing convex hull of (cost, quality) points, extended
  flat to the largest cost among compared routers, divided by that cost.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from simulator.errors import InputError
from simulator.evals.stats import paired_frame


def monotone_hull(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Sort by x and take the running maximum of y: at a given cost, never worse than a cheaper point."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    order = np.lexsort((-y, x))
    return x[order], np.maximum.accumulate(y[order])


def cost_to_reach(x, y, target: float) -> float:
    """Smallest x at which the monotone hull of (x, y) reaches ``target`` (linear between grid points); NaN if never."""
    hx, hy = monotone_hull(x, y)
    hit = np.flatnonzero(hy >= target - 1e-12)
    if len(hit) == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(hx[0])
    # hy[i-1] < target <= hy[i]: interpolate inside the segment that crosses the target.
    frac = (target - hy[i - 1]) / (hy[i] - hy[i - 1])
    return float(hx[i - 1] + frac * (hx[i] - hx[i - 1]))


def apgr(x, y, weak: float, strong: float) -> float:
    """Average performance gap recovered on the curve's own grid (trapezoids), RouteLLM's definition."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    span = x[-1] - x[0]
    if strong == weak or span == 0:
        return float("nan")
    auc = np.trapezoid(y, x)
    return float((auc - weak * span) / ((strong - weak) * span))


def curve_metrics(strong_share, accuracy, weak: float, strong: float) -> dict:
    """APGR (raw and on the monotone hull) and CPT(20/50/80%) in percent of strong calls."""
    hx, hy = monotone_hull(strong_share, accuracy)
    out = {"apgr": apgr(strong_share, accuracy, weak, strong), "apgr_hull": apgr(hx, hy, weak, strong)}
    for pct in (20, 50, 80):
        cpt = cost_to_reach(strong_share, accuracy, weak + pct / 100 * (strong - weak))
        out[f"cpt{pct}_pct"] = 100 * cpt
    return out


def convex_hull_nondecreasing(cost, quality) -> tuple[np.ndarray, np.ndarray]:
    """Upper convex hull of (cost, quality) points, cut at its highest point (non-decreasing), as RouterBench."""
    pts = sorted(set(zip(np.asarray(cost, np.float64).tolist(), np.asarray(quality, np.float64).tolist())))
    hull: list[tuple[float, float]] = []
    for p in pts:
        # Andrew's monotone chain, upper part: drop points that make a non-right turn.
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    hx = np.array([p[0] for p in hull])
    hy = np.array([p[1] for p in hull])
    top = int(np.argmax(hy))
    return hx[: top + 1], hy[: top + 1]


def aiq(routers: dict) -> dict:
    """AIQ per router from ``{name: (costs, qualities)}``; hulls extended flat to the largest cost of all."""
    c_max = max(float(np.max(c)) for c, _ in routers.values())
    if c_max <= 0:
        raise InputError(f"AIQ needs a positive cost. Got a largest cost of {c_max:g} instead.")
    out = {}
    for name, (c, q) in routers.items():
        hx, hy = convex_hull_nondecreasing(c, q)
        if hx[-1] < c_max:
            hx, hy = np.r_[hx, c_max], np.r_[hy, hy[-1]]
        out[name] = float(np.trapezoid(hy, hx) / c_max)
    return out


def _share_grid(n: int, shares) -> np.ndarray:
    if shares is None:
        shares = np.linspace(0.0, 1.0, 11)
    return np.unique(np.clip(np.asarray(shares, np.float64), 0, 1))


def strong_weak_curves(samples: pd.DataFrame, strong: str, weak: str, *, router_score=None, workflow_tag=None,
                       shares=None) -> dict:
    """Cost-quality curves for routing between ``strong`` and ``weak`` on their paired eval samples.

    ``router_score``: a pd.Series indexed by sample_id (higher = send to strong); without it only the random and
    oracle baselines are drawn. Sweeps the strong share over ``shares`` (default 0, 0.1, ..., 1; weak share is
    1 - strong share). Cost is total ``cost_usd`` when both models carry it on every paired sample, else the
    strong-call share. Returns ``curve`` (DataFrame), ``metrics`` per curve, ``aiq`` per curve, ``weak``, ``strong``, ``n``.
    """
    pairs = paired_frame(samples, strong, weak, workflow_tag)
    n = len(pairs)
    if n == 0:
        raise InputError(f"models {strong!r} and {weak!r} share no eval samples"
                         f"{'' if workflow_tag is None else f' in workflow {workflow_tag!r}'}. Label both on the same samples.")
    s, w = pairs["base"].to_numpy(), pairs["cand"].to_numpy()
    grid = _share_grid(n, shares)
    k = np.rint(grid * n).astype(int)
    acc_s, acc_w = float(s.mean()), float(w.mean())
    gain = s - w
    pos = np.sort(gain[gain > 0])[::-1]
    # Oracle: spend strong calls on the prompts where strong beats weak most; extra calls cannot help.
    oracle = acc_w + np.r_[0.0, np.cumsum(pos)][np.minimum(k, len(pos))] / n
    curve = {"strong_share": k / n, "weak_share": 1 - k / n, "random": acc_w + (k / n) * (acc_s - acc_w), "oracle": oracle}
    if router_score is not None:
        score = pd.Series(router_score).reindex(pairs["sample_id"]).to_numpy(np.float64)
        if np.isnan(score).any():
            raise InputError(f"router_score is missing for {int(np.isnan(score).sum())} paired samples. "
                             "Give a score for every sample_id both models answered.")
        order = np.argsort(-score, kind="stable")
        cum = np.r_[0.0, np.cumsum(gain[order])]
        curve["router"] = acc_w + cum[k] / n
    cost_cols = samples.set_index(["sample_id", "model"])["cost_usd"] if "cost_usd" in samples else None
    cs = cw = None
    if cost_cols is not None:
        cs = cost_cols.reindex(list(zip(pairs["sample_id"], [strong] * n))).to_numpy(np.float64)
        cw = cost_cols.reindex(list(zip(pairs["sample_id"], [weak] * n))).to_numpy(np.float64)
        if np.isnan(cs).any() or np.isnan(cw).any():
            cs = cw = None
    frame = pd.DataFrame(curve)
    names = [c for c in ("router", "random", "oracle") if c in frame]
    metrics = {c: curve_metrics(frame["strong_share"], frame[c], acc_w, acc_s) for c in names}
    if cs is not None:
        # Expected cost for random/oracle at share k/n is approximated by the mean-cost line; the router's is exact.
        frame["cost_usd_random"] = cw.sum() + (k / n) * (cs.sum() - cw.sum())
        if "router" in frame:
            frame["cost_usd_router"] = cw.sum() + np.r_[0.0, np.cumsum((cs - cw)[order])][k]
        cost_axis = {c: frame.get(f"cost_usd_{c}", frame["cost_usd_random"]) for c in names}
        cost_unit = "cost_usd"
    else:
        cost_axis = {c: frame["strong_share"] for c in names}
        cost_unit = "strong_share"
    aiq_values = aiq({c: (cost_axis[c].to_numpy(), frame[c].to_numpy()) for c in names})
    return {"curve": frame, "metrics": metrics, "aiq": aiq_values, "aiq_cost_axis": cost_unit,
            "weak": acc_w, "strong": acc_s, "n": n, "strong_model": strong, "weak_model": weak}


def plot_curves(result: dict, title: str | None = None) -> bytes:
    """PNG bytes of accuracy vs strong-call share for the curves in a ``strong_weak_curves`` result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = result["curve"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, style in (("router", "-o"), ("random", "--"), ("oracle", ":")):
        if name in frame:
            ax.plot(100 * frame["strong_share"], 100 * frame[name], style, label=name)
    ax.axhline(100 * result["weak"], color="grey", lw=0.8, label=f"weak only ({result['weak_model']})")
    ax.axhline(100 * result["strong"], color="black", lw=0.8, label=f"strong only ({result['strong_model']})")
    ax.set_xlabel("strong-model calls (%)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "cost-quality curve")
    ax.legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
