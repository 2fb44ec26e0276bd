"""Service tiers in a replay: which routed requests a rule's ``service_tier`` may move, and what that changes.

* ``batch`` applies only to non-interactive requests: a workflow marked ``interactive: false`` in the scenario's
  ``workflows:``, or a request whose metadata key (``service_tiers.interactive_metadata_key``, default
  ``interactive``) says ``false`` / ``0`` / ``no``. Interactive requests a batch rule matches keep the default tier
  and are counted (``batch_ineligible``). A batched request completes within the tier's window (24 h), not in a
  synchronous latency: its latency is left out of the latency percentiles, and the latency it would have had is
  kept for the report.
* ``flex`` requests are refused with 429 at the scenario's ``flex_unavailable_rate`` (not published; default 0),
  drawn from a hash of the request; a refused one is retried on the default tier at the default price.
* ``priority`` and ``flex`` keep the recorded (or fitted) latency: the providers publish no latency figure.

Prices per tier come from :mod:`simulator.pricing.tiers` through the catalog.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simulator.pricing.tiers import TIER_CODE

FALSE_WORDS = ("false", "0", "no")


@dataclasses.dataclass(frozen=True)
class TierSettings:
    """The scenario's service-tier inputs a replay needs (see :class:`simulator.routing.scenario.Scenario`)."""

    non_interactive_workflows: frozenset = frozenset()
    interactive_key: str = "interactive"
    flex_unavailable_rate: float = 0.0

    @classmethod
    def of(cls, scenario) -> TierSettings:
        if scenario is None:
            return cls()
        return cls(frozenset(w for w, info in scenario.workflows.items() if not info.interactive),
                   scenario.service_tiers.interactive_metadata_key, scenario.service_tiers.flex_unavailable_rate)


def non_interactive(view, settings: TierSettings, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` nobody waits on: a non-interactive workflow, or the metadata key says so (the request's
    own metadata wins over its workflow's mark)."""
    workflow = view.key("workflow_tag")[rows]
    out = np.isin(workflow.astype(object), list(settings.non_interactive_workflows))
    flag = view.key(settings.interactive_key)[rows]
    said = np.array([v is not None for v in flag], dtype=bool)
    if said.any():
        out = np.where(said, np.array([str(v).strip().lower() in FALSE_WORDS if v is not None else False
                                       for v in flag]), out)
    return out


def assign_tiers(p, o, assignments: list[tuple[np.ndarray, str]], settings: TierSettings) -> np.ndarray:
    """Set ``o.service_tier`` for the rows each tier rule matched; returns the rows whose tier changed.

    Batch needs non-interactive requests; flex refusals go back to the default tier. Counts land in ``o.counts``
    under ``batch_ineligible`` and ``flex_unavailable`` (added to the replay's other counts by the caller)."""
    from simulator.routing.assign import mix_uniform

    changed = []
    ineligible = unavailable = 0
    for rows, tier in assignments:
        if tier == "default" or not len(rows):
            continue
        rows = rows[o.status[rows] < 400]
        if tier == "batch":
            ok = non_interactive(p.view, settings, rows)
            ineligible += int((~ok).sum())
            rows = rows[ok]
        elif tier == "flex" and settings.flex_unavailable_rate > 0:
            refused = mix_uniform(p.request_hash(rows), 7) < settings.flex_unavailable_rate
            unavailable += int(refused.sum())
            rows = rows[~refused]
        o.service_tier[rows] = TIER_CODE[tier]
        changed.append(rows)
    o.counts["batch_ineligible"] = o.counts.get("batch_ineligible", 0) + ineligible
    o.counts["flex_unavailable"] = o.counts.get("flex_unavailable", 0) + unavailable
    return np.unique(np.concatenate(changed)) if changed else np.zeros(0, np.int64)


def window_latency(o, rows: np.ndarray) -> None:
    """Batched rows: keep the synchronous latency they would have had for the report, leave it out of the
    percentiles (results arrive within the tier's window)."""
    if o.tier_latency_ms is None:
        o.tier_latency_ms = np.full(len(o.latency_ms), np.nan)
    o.tier_latency_ms[rows] = o.latency_ms[rows]
    o.latency_ms[rows] = np.nan


__all__ = ["TierSettings", "assign_tiers", "non_interactive", "window_latency"]
