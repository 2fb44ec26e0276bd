"""Generated weeks of savings with a known true value: the simulation study behind the savings interval.

Each week is 168 hourly savings totals: requests arrive as a Poisson process with a daily cycle (quiet nights, busy
afternoons), and each request saves a lognormal amount (mean $1, a long right tail). The regimes differ in what
moves from week to week:

- ``steady``: only the arrivals and the per-request savings;
- ``swings``: each day's volume is multiplied by an independent factor with mean 1 and a 25% standard deviation;
- ``busy``: busy hours persist: each hour's volume is multiplied by ``exp(x)``, ``x`` an AR(1) series with hour-to-hour
  correlation 0.8 (busy periods last hours) and a 0.5 standard deviation, normalised to mean 1;
- ``weekly``: weekends carry 40% of a weekday's volume, with 10% day-to-day swings (the pattern is not noise);
- ``busy-0.9``: as ``busy`` with correlation 0.9 (busy periods that often run across midnight; a stress case).

The true monthly savings is the expectation, ``30 / 7 x`` the expected weekly total. ``python -m
simulator.synth.weeks`` prints the coverage table in the README.
"""

from __future__ import annotations

import numpy as np

from simulator.summary.intervals import NS_PER_DAY, savings_interval

HOURS = 168
BASE_PER_HOUR = 60.0
REGIMES = ("steady", "swings", "busy", "weekly", "busy-0.9")
#: Monday 2026-11-16 00:00 UTC: weeks start on a Monday, so the weekday/weekend term sees Saturday and Sunday.
START_NS = 1_794_787_200 * 10**9
_DIURNAL = 0.4 + 0.6 * np.sin(np.pi * ((np.arange(24) - 6) % 24) / 24) ** 2
_WEEKEND = np.array([1, 1, 1, 1, 1, 0.4, 0.4])


def expected_per_hour(regime: str) -> np.ndarray:
    """Expected requests per hour over the week (the known truth, before noise)."""
    lam = BASE_PER_HOUR * np.tile(_DIURNAL, 7)
    if regime == "weekly":
        lam = lam * np.repeat(_WEEKEND, 24)
    return lam


def true_monthly_savings(regime: str) -> float:
    """The expected monthly savings (each request saves $1 on average)."""
    return float(expected_per_hour(regime).sum() * 30 / 7)


def week(rng: np.random.Generator, regime: str) -> np.ndarray:
    """One generated week: savings (USD) per hour, 168 values."""
    lam = expected_per_hour(regime)
    if regime == "swings":
        lam = lam * np.repeat(rng.gamma(16.0, 1 / 16.0, 7), 24)  # mean 1, sd 0.25
    elif regime == "weekly":
        lam = lam * np.repeat(rng.gamma(100.0, 1 / 100.0, 7), 24)  # mean 1, sd 0.10
    elif regime.startswith("busy"):
        rho, sd = (0.9 if regime == "busy-0.9" else 0.8), 0.5
        x = np.empty(HOURS)
        x[0] = rng.normal(0.0, sd)
        noise = rng.normal(0.0, sd * np.sqrt(1 - rho**2), HOURS)
        for h in range(1, HOURS):
            x[h] = rho * x[h - 1] + noise[h]
        lam = lam * np.exp(x - sd**2 / 2)
    counts = rng.poisson(lam)
    per_request = rng.lognormal(-0.5, 1.0, int(counts.sum()))  # mean exp(-0.5 + 0.5) = 1
    return np.bincount(np.repeat(np.arange(HOURS), counts), weights=per_request, minlength=HOURS)


def coverage_study(regime: str, weeks: int = 2000, seed: int = 1) -> dict:
    """Coverage of the true value by the 95% interval over ``weeks`` generated weeks, and its width.

    ``true_spread`` is half the central 95% range of the weekly estimates (what an interval that knew the process
    would span); ``width_ratio`` = mean half-width / true_spread.
    """
    rng = np.random.default_rng(seed)
    truth = true_monthly_savings(regime)
    minutes = np.arange(HOURS) * 60  # each hour's total in its first minute: the interval only sums them
    end = START_NS + 7 * NS_PER_DAY - 1
    covered, half_widths, estimates = 0, [], []
    for _ in range(weeks):
        sums = week(rng, regime)
        lo, hi = savings_interval(minutes, sums, START_NS, end)["monthly_savings_ci95"]
        covered += lo <= truth <= hi
        half_widths.append((hi - lo) / 2)
        estimates.append(sums.sum() * 30 / 7)
    estimates = np.asarray(estimates)
    spread = float(np.percentile(estimates, 97.5) - np.percentile(estimates, 2.5)) / 2
    return {"regime": regime, "weeks": weeks, "coverage": covered / weeks, "mean_half_width": float(np.mean(half_widths)),
            "true_spread": spread, "width_ratio": float(np.mean(half_widths)) / spread, "truth": truth}


def table(weeks: int = 2000, seed: int = 1) -> str:
    """The README's coverage table (Markdown)."""
    lines = ["| regime | weeks | coverage of the true value | mean half-width / true week-to-week spread |",
             "|---|---|---|---|"]
    for regime in REGIMES:
        r = coverage_study(regime, weeks, seed)
        lines.append(f"| {regime} | {r['weeks']:,} | {r['coverage']:.1%} | {r['width_ratio']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
