"""How far a model's token counts may be off: the relative interval behind a "meets the minimum?" verdict.

The same estimate the token translation uses (:meth:`simulator.tokens.calibration.Calibration.vs_reference`, whose
``log_bounds`` set the translator's per-row ratio intervals, the Monte Carlo terms of the savings interval and the
low / high replays of the sensitivity check): a public tokenizer counts exactly (1 to 1); a calibrated one (Claude
3+, Gemini) is a ratio against o200k, fitted on the traffic with a 95% interval or shipped with a stated range. A
shipped ratio without a stated range falls back to the spread of its content classes (prose, code, non-Latin)
around the mixed-corpus ratio. A model with no tokenizer at all has no interval (``unknown``, 1 to 1).
"""

from __future__ import annotations

import dataclasses
import math

from simulator.errors import TokenizerError
from simulator.tokens.calibration import ALL, SOURCE_DEFAULT, Calibration
from simulator.tokens.registry import EXACT, REFERENCE_TOKENIZER


@dataclasses.dataclass(frozen=True)
class CountInterval:
    """True count / given count lies in [low, high] (fractions of 1); ``basis`` says where that comes from."""

    low: float
    high: float
    basis: str  # exact | calibrated | calibrated-default | unknown

    def verdict(self, tokens: float, minimum: int) -> str:
        """``yes`` / ``no`` / ``borderline`` (the minimum lies inside the interval around ``tokens``)."""
        if tokens * self.low >= minimum:
            return "yes"
        if tokens * self.high < minimum:
            return "no"
        return "borderline"


def count_interval(model_id: str, registry, calibration: Calibration | None = None) -> CountInterval:
    """The relative interval of a model's token counts (see the module docstring)."""
    try:
        spec = registry.spec_for_model(model_id)
    except TokenizerError:
        return CountInterval(1.0, 1.0, "unknown")
    if spec.kind == EXACT:
        return CountInterval(1.0, 1.0, "exact")
    calibration = calibration if calibration is not None else Calibration()
    estimate = calibration.vs_reference(spec.id, ALL)
    if estimate is None:
        return CountInterval(1.0, 1.0, "unknown")
    basis = "calibrated-default" if estimate.source == SOURCE_DEFAULT else "calibrated"
    log_low, log_high = estimate.log_bounds
    if math.isfinite(log_low) and math.isfinite(log_high):
        return CountInterval(math.exp(log_low), math.exp(log_high), basis)
    values = calibration.defaults.get((spec.id, REFERENCE_TOKENIZER))
    if values and values.get(ALL):
        mid = values[ALL]
        return CountInterval(min(values.values()) / mid, max(values.values()) / mid, "calibrated-default")
    return CountInterval(1.0, 1.0, basis)


__all__ = ["CountInterval", "count_interval"]
