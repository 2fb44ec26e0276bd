"""How far a model's token counts may be off: the relative interval behind a "meets the minimum?" verdict.

A public tokenizer counts exactly (interval 1 to 1). A calibrated one (Claude 3+, Gemini) is a ratio against o200k:
fitted on the traffic it has a 95% interval; with only the shipped default ratios the spread of those ratios over
content classes (prose, code, non-Latin) around the mixed-corpus ratio stands in for it. A model with no tokenizer at
all has no interval (``None``).
"""

from __future__ import annotations

import dataclasses
import math

from simulator.errors import TokenizerError
from simulator.tokens.calibration import ALL
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


def count_interval(model_id: str, registry, calibration=None) -> CountInterval:
    """The relative interval of a model's token counts (see the module docstring)."""
    try:
        spec = registry.spec_for_model(model_id)
    except TokenizerError:
        return CountInterval(1.0, 1.0, "unknown")
    if spec.kind == EXACT:
        return CountInterval(1.0, 1.0, "exact")
    fitted = (calibration.fitted if calibration is not None else {}).get((spec.id, ALL))
    if fitted is not None and fitted.ratio > 0 and math.isfinite(fitted.ci_low) and math.isfinite(fitted.ci_high):
        return CountInterval(fitted.ci_low / fitted.ratio, fitted.ci_high / fitted.ratio, "calibrated")
    if calibration is not None:
        values = calibration.defaults.get((spec.id, REFERENCE_TOKENIZER))
        if values and values.get(ALL):
            mid = values[ALL]
            return CountInterval(min(values.values()) / mid, max(values.values()) / mid, "calibrated-default")
    return CountInterval(1.0, 1.0, "unknown")


__all__ = ["CountInterval", "count_interval"]
