"""Quality gates on accuracy changes: non-inferiority with a power-based "how many more samples" answer."""

from __future__ import annotations

import math

from simulator.errors import InputError


def samples_needed(delta: float, margin: float, variance_per_sample: float, *, alpha: float = 0.025,
                   power: float = 0.8) -> float:
    """Paired samples for a non-inferiority test: ``(z_(1-alpha) + z_(power))^2 * v / (delta + margin)^2``.

    ``delta`` and ``margin`` are fractions (0.02 = 2 pp), ``v`` the per-sample variance of the paired difference
    (``p_disc - delta^2`` for binary outcomes). ``inf`` when ``delta <= -margin``: no sample size can pass then.
    """
    gap = delta + margin
    if gap <= 0:
        return math.inf
    from scipy.special import ndtri  # the normal quantile (scipy.stats.norm.ppf) without importing scipy.stats

    z = ndtri(1 - alpha) + ndtri(power)
    return float(z * z * max(variance_per_sample, 0.0) / (gap * gap))


def _pp(x: float) -> str:
    return f"{x:+.1f} pp"


def non_inferiority(delta_ci95, margin_pp: float, *, delta_pp: float | None = None,
                    variance_per_sample: float | None = None, n_now: int | None = None, alpha: float = 0.025,
                    power: float = 0.8, label: str = "accuracy change") -> dict:
    """Non-inferiority verdict for an accuracy change (candidate - baseline) in percentage points.

    ``pass`` only when the lower 95% bound >= -margin; ``fail`` when the whole interval is below -margin;
    ``undecided`` when it straddles -margin (the gate fails then too). With ``delta_pp``, ``variance_per_sample``
    (fraction^2) and ``n_now`` an undecided verdict says how many more paired samples would decide it; alpha=0.025
    one-sided matches the lower bound of a two-sided 95% interval.
    Example: ``non_inferiority((-2.6, 0.2), 2.0, delta_pp=-1.2, variance_per_sample=0.1, n_now=400)``.
    """
    if not (isinstance(margin_pp, int | float) and margin_pp >= 0):
        raise InputError(f"max_accuracy_drop_pp must be a number >= 0. Got {margin_pp!r} instead.")
    lo, hi = float(delta_ci95[0]), float(delta_ci95[1])
    out = {"margin_pp": float(margin_pp), "lower_pp": lo, "upper_pp": hi, "n_more": None}
    head = f"{label} "
    if delta_pp is not None:
        head += f"{_pp(delta_pp)} "
    head += f"(95% CI {lo:+.1f} to {hi:+.1f} pp) vs margin {-margin_pp:+.1f} pp"
    if math.isnan(lo) or math.isnan(hi):
        return out | {"verdict": "undecided", "passed": False,
                      "detail": f"{label}: no eval evidence, so non-inferiority cannot be shown; gate fails."}
    if lo >= -margin_pp:
        return out | {"verdict": "pass", "passed": True,
                      "detail": f"{head}: pass (lower bound {lo:+.1f} pp >= {-margin_pp:+.1f} pp)."}
    if hi < -margin_pp:
        return out | {"verdict": "fail", "passed": False,
                      "detail": f"{head}: fail (whole interval below {-margin_pp:+.1f} pp)."}
    detail = f"{head}: undecided (interval straddles {-margin_pp:+.1f} pp), so the gate fails"
    if delta_pp is not None and variance_per_sample is not None and n_now is not None:
        need = samples_needed(delta_pp / 100.0, margin_pp / 100.0, variance_per_sample, alpha=alpha, power=power)
        if math.isinf(need):
            detail += "; the point estimate is at or below the margin, so more samples are unlikely to pass it"
        else:
            more = max(0, math.ceil(need) - int(n_now))
            out["n_more"] = more
            detail += (f"; about {more:,} more paired eval samples would decide it at {power:.0%} power "
                       f"(have {int(n_now):,}, if the true change equals the estimate)")
    return out | {"verdict": "undecided", "passed": False, "detail": detail + "."}


def impact_gate(impact: dict, margin_pp: float, *, min_coverage: float = 1.0, power: float = 0.8,
                moved: bool = True) -> dict:
    """Non-inferiority gate on a ``policy_accuracy_impact`` result.

    ``moved`` (default) tests the change on the moved requests (``accuracy_delta_moved_pp``): a partial split of a
    bad move fails like the full move. ``moved=False`` tests the traffic-wide change. Moved traffic without eval
    evidence is unknown, so when ``coverage_share < min_coverage`` the verdict is ``undecided`` (a failed gate)
    whatever the interval says; the detail names the coverage either way.
    """
    suffix = "_moved" if moved else ""
    verdict = non_inferiority(impact[f"accuracy_delta{suffix}_ci95"], margin_pp,
                              delta_pp=impact[f"accuracy_delta{suffix}_pp"],
                              variance_per_sample=impact[f"variance_per_sample{suffix}"], n_now=impact["n_paired"],
                              power=power, label="accuracy change on moved requests" if moved else "accuracy change")
    coverage = float(impact["coverage_share"])
    if coverage < min_coverage:
        return verdict | {"verdict": "undecided", "passed": False,
                          "detail": verdict["detail"] + f" Only {coverage:.1%} of moved traffic has eval evidence "
                                    f"(need {min_coverage:.0%}); label samples for the uncovered workflows."}
    if coverage < 1.0:
        verdict = verdict | {"detail": verdict["detail"] + f" Covers {coverage:.1%} of moved traffic."}
    return verdict
