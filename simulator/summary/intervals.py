"""The 95% interval of monthly savings: week-to-week uncertainty plus the uncertainty of the replay's assumptions.

What the interval is for: the savings a candidate would have in an average month like the recorded traffic. One
recorded week is one draw from a process that swings from day to day (volume, mix, busy hours that persist for hours),
so the interval is built from **daily totals**, not hours: hours of one day move together, and resampling them as if
independent makes intervals that are too narrow when days swing and too wide when they do not.

Method (``unit="auto"``):

1. the engines add each request's savings into one-minute blocks counted from the window start (``BLOCK_NS``);
2. the minutes are summed into day blocks (24 h from the window start); a window of 7 days or more with at least two
   weekend and two weekday blocks gets a weekend term, so the weekly pattern is kept as a pattern, not counted as noise;
3. the window total's variance is the residual variance of the daily totals (per unit of exposure, so a partial last
   day counts for what it covers) plus the covariance of adjacent days, estimated from the halves next to each
   midnight (busy periods that run across midnight); the interval uses Student's t with the residual degrees of
   freedom (a model of daily totals: with 7 days a bootstrap would understate the spread);
4. assumptions with an interval of their own (tokenizer ratios, output-length ratios) are propagated by Monte Carlo:
   each term shifts the candidate's cost of the moved requests it governs by ``cost x (ratio draw / ratio - 1)``,
   with one independent draw per term, from a split normal on the log scale whose 95% range is the stated interval.

Windows shorter than 3 days have too few days: hours (12 h to 3 days) or 24 equal blocks (shorter) are used, and the
method sentence says that day-to-day variation cannot be seen in such a window. ``unit="hour"`` / ``"day"`` force a
block size; sessions are passed to :func:`interval_from_blocks` as blocks directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MONTH_DAYS = 30.0
BLOCK_NS = 60 * 10**9  #: engines accumulate per-minute savings sums from the window start
NS_PER_HOUR = 3600 * 10**9
NS_PER_DAY = 24 * NS_PER_HOUR
MIN_DAYS = 3.0  #: a shorter window is split into hours or equal blocks instead of days
MIN_HOURS = 0.5  #: a window shorter than this many days is split into 24 equal blocks
SHORT_BLOCKS = 24
FULL_EXPOSURE = 0.95  #: blocks covering less than this share of their length count in the total, not the variance


@dataclass(frozen=True)
class RatioTerm:
    """One assumption with an interval: ``cost_usd`` of the candidate's moved requests scales with the ratio.

    ``rel_low`` / ``rel_high`` are the ends of the ratio's 95% interval divided by the ratio used
    (e.g. 0.96 and 1.30); ``key`` names it (``tokenizer claude-4.7 -> claude-3-4.6``).
    """

    key: str
    cost_usd: float
    rel_low: float
    rel_high: float


def _t_quantile(confidence: float, df: int) -> float:
    from scipy.special import stdtrit  # scipy.stats.t.ppf without importing scipy.stats

    return float(stdtrit(df, 0.5 + confidence / 2))


def _design(n: int, weekend: np.ndarray | None) -> tuple[np.ndarray, bool]:
    use_weekend = weekend is not None and weekend.sum() >= 2 and (~weekend).sum() >= 2
    x = np.column_stack([np.ones(n), weekend.astype(np.float64)]) if use_weekend else np.ones((n, 1))
    return x, use_weekend


def _variance_parts(rates: np.ndarray, first: np.ndarray | None, x: np.ndarray) -> tuple[float, float]:
    """(variance of one block's total, covariance of adjacent blocks' totals), both unbiased under the model.

    Adjacent blocks covary through persistence across their boundary (a busy evening followed by a busy night).
    With each block split in halves, that covariance is estimated from the second half of block d and the first
    half of block d+1; the same-block covariance of the halves (day effects) is solved for jointly, so day effects
    are not mistaken for persistence. Residuals come from the mean (and weekend) fit, whose bias is undone exactly.
    """
    n = len(rates)
    resid_maker = np.eye(n) - x @ np.linalg.pinv(x)
    trace, off = float(np.trace(resid_maker)), float(np.sum(np.diag(resid_maker, 1)))
    cross = 0.0
    if first is not None and n >= 3:
        a, b = first, rates - first
        shift = np.eye(n, k=1)
        m_cross, m_same = resid_maker @ shift @ resid_maker, resid_maker @ resid_maker
        system = np.array([[np.trace(m_cross), np.sum(np.diag(m_cross, 1))],
                           [np.trace(m_same), np.sum(np.diag(m_same, 1))]])
        if abs(np.linalg.det(system)) > 1e-9:
            _, cross = np.linalg.solve(system, [b @ m_cross @ a, b @ m_same @ a])
            cross = max(float(cross), 0.0)  # negative persistence is not credible: never narrow the interval
    var = (float(rates @ resid_maker @ rates) - 2.0 * cross * off) / trace
    return max(var, 0.0), cross


def interval_from_blocks(totals, exposure=None, weekend=None, first_half=None, *, scale: float,
                         terms: Sequence[RatioTerm] = (), draws: int = 2000, seed: int = 0,
                         confidence: float = 0.95) -> dict:
    """Interval of ``scale x sum(totals)`` from per-block totals (a pure function; see the module docstring).

    ``exposure``: the share of each block inside the window (default 1); ``weekend``: bool per block for a weekend
    term; ``first_half``: each block's total over its first half (enables the persistence term); ``scale``: e.g.
    30 / window days. Returns ``ci95`` (scaled), ``week_to_week_ci95`` (without ``terms``), ``df``, ``blocks``,
    ``weekend_term`` and ``adjacent_covariance``.
    Example: ``interval_from_blocks([10, 12, 9, 11, 10, 12, 11], scale=30 / 7)``.
    """
    totals = np.asarray(totals, dtype=np.float64)
    exposure = np.ones(len(totals)) if exposure is None else np.asarray(exposure, dtype=np.float64)
    total = float(totals.sum())
    full = exposure >= FULL_EXPOSURE
    rates = totals[full] / exposure[full]
    first = np.asarray(first_half, dtype=np.float64)[full] / exposure[full] if first_half is not None else None
    wk = np.asarray(weekend, dtype=bool)[full] if weekend is not None else None
    x, used_weekend = _design(len(rates), wk)
    df = len(rates) - x.shape[1]
    se = quantile = cross = 0.0
    if df >= 1:
        contiguous = first is not None and bool(np.all(np.diff(np.flatnonzero(full)) == 1))
        var, cross = _variance_parts(rates, first if contiguous else None, x)
        adjacent = float(np.sum(exposure[:-1] * exposure[1:]))
        se = math.sqrt(max(var * float(np.sum(exposure ** 2)) + 2.0 * cross * adjacent, 0.0))
        quantile = _t_quantile(confidence, df)
    base = [scale * (total - quantile * se), scale * (total + quantile * se)]
    out = {"blocks": int(len(totals)), "df": int(df), "weekend_term": bool(used_weekend),
           "halves": first is not None and df >= 1, "adjacent_covariance": cross > 0,
           "week_to_week_ci95": base, "ci95": base}
    terms = [t for t in terms if t.cost_usd and (t.rel_low != 1.0 or t.rel_high != 1.0)]
    if terms:
        from scipy.special import ndtri

        rng = np.random.default_rng(seed)
        sim = total + se * (rng.standard_t(df, size=draws) if df >= 1 else np.zeros(draws))
        z = ndtri(0.5 + confidence / 2)
        for term in terms:
            u = rng.standard_normal(draws)
            log_width = np.where(u > 0, math.log(term.rel_high), -math.log(term.rel_low)) / z
            sim -= term.cost_usd * (np.exp(u * log_width) - 1.0)
        lo, hi = np.percentile(sim * scale, [50 * (1 - confidence), 50 * (1 + confidence)])
        out["ci95"] = [float(lo), float(hi)]
    return out


def time_blocks(block, sums, ts_min: int, ts_max: int, unit: str = "auto") -> dict:
    """Sum per-minute savings (``block`` = minutes from ``ts_min``) into the blocks the interval uses.

    Returns ``totals``, ``first_half`` (totals over each block's first half), ``exposure``, ``weekend`` (or None),
    ``unit`` (``day``, ``hour`` or ``equal``) and ``span_days``.
    """
    block = np.asarray(block, dtype=np.int64)
    sums = np.asarray(sums, dtype=np.float64)
    span = max(int(ts_max) - int(ts_min), 1)
    days = span / NS_PER_DAY
    if unit == "auto":
        unit = "day" if days >= MIN_DAYS else ("hour" if days >= MIN_HOURS else "equal")
    if unit == "day":
        size = NS_PER_DAY
    elif unit == "hour":
        size = NS_PER_HOUR
    else:
        size = max(-(-(span + 1) // SHORT_BLOCKS), BLOCK_NS)
    n_blocks = max(int(span // size) + 1, 1)
    index = np.minimum((block * BLOCK_NS) // size, n_blocks - 1)
    totals = np.bincount(index, weights=sums, minlength=n_blocks)
    in_first = ((block * BLOCK_NS) % size) < size // 2
    first = np.bincount(index[in_first], weights=sums[in_first], minlength=n_blocks) if size >= 2 * BLOCK_NS else None
    starts = np.arange(n_blocks, dtype=np.int64) * size
    exposure = np.clip((span + 1 - starts) / size, 0.0, 1.0)
    weekend = None
    if unit == "day":
        mid = int(ts_min) + starts + np.minimum(size, span + 1 - starts) // 2
        weekday = ((mid // NS_PER_DAY) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
        weekend = weekday >= 5
    return {"totals": totals, "first_half": first, "exposure": exposure, "weekend": weekend, "unit": unit,
            "span_days": days}


def method_sentence(unit: str, blocks: int, df: int, weekend_term: bool, adjacent: bool = False,
                    terms: Sequence[RatioTerm] = (), span_days: float | None = None) -> str:
    """One sentence for summary.json ``interval_method`` and the report."""
    if unit == "session":
        text = f"t interval on {blocks:,} session totals (sessions taken as independent)"
    else:
        label = {"day": "daily", "hour": "hourly", "equal": "equal-length"}[unit]
        text = f"t interval ({df} df) on {blocks:,} {label} savings totals"
        extras = (["a weekday/weekend term (the weekly pattern is kept, not counted as noise)"] if weekend_term
                  else []) + (["the covariance of adjacent blocks (busy periods that run across a boundary)"]
                              if adjacent else [])
        if extras:
            text += " with " + " and ".join(extras)
        if unit == "day":
            text += ", covering week-to-week variation"
        elif span_days is not None and span_days < MIN_DAYS:
            text += "; a window under 3 days cannot show day-to-day variation, so it covers only the variation within it"
        else:
            text += "; hourly blocks cannot show day-to-day variation, so it covers only the variation within days"
    text += ", scaled to 30 days"
    if terms:
        text += "; the intervals of the token-translation ratios are propagated by Monte Carlo"
    return text + "."


def savings_interval(block, sums, ts_min: int, ts_max: int, *, unit: str = "auto", terms: Sequence[RatioTerm] = (),
                     draws: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """The policy's ``monthly_savings_ci95`` and ``interval_method`` from per-minute savings sums.

    ``block``: minutes from ``ts_min`` (ns) of each sum; ``sums``: savings (USD) per block; ``terms``: assumption
    intervals to propagate (:class:`RatioTerm`). Returns ``monthly_savings_ci95``, ``interval_method`` and
    ``interval`` (details: unit, blocks, df, week_to_week_ci95).
    """
    tb = time_blocks(block, sums, ts_min, ts_max, unit)
    days = max(tb["span_days"], 1.0 / 86_400)
    res = interval_from_blocks(tb["totals"], tb["exposure"], tb["weekend"], tb["first_half"], scale=MONTH_DAYS / days,
                               terms=terms,
                               draws=draws, seed=seed, confidence=confidence)
    used = [t for t in terms if t.cost_usd and (t.rel_low != 1.0 or t.rel_high != 1.0)]
    return _result(res, tb["unit"], used, tb["span_days"])


def session_interval(totals, days: float, *, terms: Sequence[RatioTerm] = (), draws: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """As :func:`savings_interval` with sessions (independent units) as blocks."""
    res = interval_from_blocks(totals, scale=MONTH_DAYS / max(days, 1.0 / 86_400), terms=terms, draws=draws,
                               seed=seed, confidence=confidence)
    used = [t for t in terms if t.cost_usd and (t.rel_low != 1.0 or t.rel_high != 1.0)]
    return _result(res, "session", used)


def _result(res: dict, unit: str, terms: list[RatioTerm], span_days: float | None = None) -> dict:
    r6 = lambda x: round(float(x), 6) + 0.0  # noqa: E731
    return {
        "monthly_savings_ci95": [r6(v) for v in res["ci95"]],
        "interval_method": method_sentence(unit, res["blocks"], res["df"], res["weekend_term"],
                                           res["halves"], terms, span_days),
        "interval": {"unit": unit, "blocks": res["blocks"], "df": res["df"], "weekend_term": res["weekend_term"],
                     "adjacent_covariance": res["adjacent_covariance"],
                     "week_to_week_ci95": [r6(v) for v in res["week_to_week_ci95"]],
                     "assumption_terms": [{"assumption": t.key, "cost_usd": r6(t.cost_usd),
                                           "ratio_range": [round(t.rel_low, 6), round(t.rel_high, 6)]}
                                          for t in terms]},
    }
