"""The levers every engine adds to a run, in the same order: probes replayed beside the scenario's candidates, the
opportunity sections built from them, then the plan (a second pass when it combines several candidates).

An engine calls, in order: :meth:`Levers.candidates` (replayed with the scenario's candidates in the main pass,
their states built with ``probe=`` :meth:`Levers.is_probe`), :meth:`Levers.sections` with the probes' policy
records and state reports (the ``opportunities`` and ``cache_opportunities`` sections, and the plan to replay), and
:meth:`Levers.plan_summary` with the plan's replayed policy (or None when the plan has one component, whose figures
are its own). Pure bookkeeping: the replays themselves are the engine's.
"""

from __future__ import annotations

from typing import Any

from simulator.summary.opportunities import (cache_opportunities, cache_probes, model_opportunities, model_probes)
from simulator.summary.plan import Overlaps, compose, plan_section


class Levers:
    """Probes of one run (see the module docstring)."""

    def __init__(self, scenario, candidates: list, ctx, facts, eval_data) -> None:
        self.scenario = scenario
        self.written = list(candidates)
        self.facts = facts
        self.ctx = ctx
        self.samples = eval_data.samples if eval_data is not None else None
        taken = {c.name for c in candidates} | {scenario.plan.name}
        self.model = model_probes(scenario, facts, self.samples, ctx.catalog, taken)
        models = list(facts.models) if facts.prefix_rows else []
        self.cache = cache_probes(scenario, models, ctx.cache_rules, facts.ts_max, taken)
        self.overlaps = Overlaps([c.name for c in self.written + self.probe_candidates])
        self._plan: tuple | None = None

    @property
    def probe_candidates(self) -> list:
        return [p.candidate for p in self.model] + [p.candidate for p in self.cache]

    @property
    def candidates(self) -> list:
        """The scenario's candidates, then the probes: what the main pass replays."""
        return self.written + self.probe_candidates

    def is_probe(self, k: int) -> bool:
        return k >= len(self.written)

    def is_cache_probe(self, k: int) -> bool:
        return k >= len(self.written) + len(self.model)

    def sections(self, summary: dict, probe_policies: dict[str, dict], probe_reports: dict[str, dict]) -> dict:
        """``opportunities`` and ``cache_opportunities`` for summary.json (only the ones with something to say);
        decides the plan's components as a side effect."""
        out: dict[str, Any] = {}
        scenario, facts = self.scenario, self.facts
        base = summary["baseline"]["breakdowns"]["workflow_tag"]
        opportunities = None
        if scenario.opportunities.models and (self.samples is not None or self.model):
            opportunities = model_opportunities(scenario, facts, self.model, probe_policies, base, self.samples)
            out["opportunities"] = opportunities
        cache = []
        if self.cache:
            out["cache_opportunities"] = cache_opportunities(self.cache, probe_reports, facts.days,
                                                             self.ctx.cache_rules, facts.ts_max, self.ctx.translator)
            cache = [(e["workflow_tag"], e["model"], e["best"]) for e in out["cache_opportunities"]["by_workflow_model"]
                     if e.get("best") and e["meets_minimum"] != "no"]
        chosen = []
        if opportunities is not None:
            names = {e["candidate"] for e in opportunities["by_workflow"] if e.get("status") == "move"}
            chosen = [(p.candidate, probe_policies[p.candidate.name]) for p in self.model if p.candidate.name in names]
        policies = {p["name"]: p for p in summary["policies"]}
        self._plan = compose(scenario, self.written, policies, chosen, self.overlaps, cache)
        return out

    @property
    def plan_candidate(self):
        """The combined candidate to replay, or None (nothing to combine, or one component: its figures stand)."""
        components, _, candidate = self._plan
        alone = len(components) == 1 and components[0]["source"] != "cache opportunity"
        return candidate if candidate is not None and not alone else None

    def plan_summary(self, policy: dict | None, policies: dict[str, dict]) -> dict:
        """summary.json ``plan`` from the plan's replayed policy (None: a single component or none)."""
        components, skipped, candidate = self._plan
        if candidate is not None and policy is None:
            policy = dict(policies[components[0]["name"]], name=candidate.name)
        return plan_section(components, skipped, policy, candidate)


__all__ = ["Levers"]
