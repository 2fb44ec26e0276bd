"""A plan, not a list: compatible candidates combined into one candidate and replayed together.

Two candidates are compatible when, for each kind of rule (routing and service tiers, budgets, rate limits, prompt
caching), no request of the traffic is claimed by rules of both: then their rules can sit in one config per config
type without changing which rule decides a request. :class:`Overlaps` counts shared requests per kind on every
chunk (mergeable across partitions). :func:`compose` picks the plan's components (the scenario's ``plan:``: a list
of names, or every candidate and model opportunity whose gates pass, most monthly savings first, each added when it
is compatible with those already in), and builds the combined candidate. The plan is then replayed as one candidate,
so interactions show: a downgrade changes what a budget blocks and what a cache holds, and the combined saving
differs from the sum of the parts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.errors import ScenarioError, did_you_mean
from simulator.routing.matching import match
from simulator.routing.scenario import Candidate

KINDS = ("routing", "budgets", "rate_limits", "prompt_caching")


def claims(view, cand: Candidate) -> dict[str, np.ndarray]:
    """Rows each kind of the candidate's rules matches (audit-only budgets decide nothing and claim nothing)."""
    n = view.n
    out = {}
    for kind, rules in (("routing", cand.rules), ("budgets", [b for b in cand.budgets if not b.audit_mode]),
                        ("rate_limits", cand.rate_limits), ("prompt_caching", cand.prompt_caching)):
        mask = np.zeros(n, dtype=bool)
        for rule in rules:
            mask |= match(view, rule.when)
        out[kind] = mask
    return out


class Overlaps:
    """Requests claimed by two candidates' rules of the same kind, per kind, summed over chunks."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        k = len(self.names)
        self.counts = {kind: np.zeros((k, k), dtype=np.int64) for kind in KINDS}

    def add(self, p, candidates: list[Candidate]) -> None:
        if not p.n or not candidates:
            return
        masks = [claims(p.view, c) for c in candidates]
        for kind in KINDS:
            m = np.stack([x[kind] for x in masks])
            some = m.any(axis=0)  # rows no rule claims add nothing: the product runs over the others only
            if not some.any():
                continue
            m = (m if some.all() else m[:, some]).astype(np.float64)  # counts of 0/1 products: exact below 2**53
            self.counts[kind] += (m @ m.T).astype(np.int64)

    def merge(self, other: Overlaps) -> Overlaps:
        for kind in KINDS:
            self.counts[kind] += other.counts[kind]
        return self

    def shared(self, a: str, b: str) -> dict[str, int]:
        """Requests both claim, per kind (only kinds with some)."""
        i, j = self.names.index(a), self.names.index(b)
        return {kind: int(self.counts[kind][i, j]) for kind in KINDS if self.counts[kind][i, j]}


def _passed(policy: dict) -> bool:
    return all(g["passed"] for g in policy.get("gates") or []) and (policy.get("monthly_savings_usd") or 0) > 0


def compose(scenario, candidates: list[Candidate], policies: dict[str, dict], opportunities: list[tuple[Candidate, dict]],
            overlaps: Overlaps, cache: list[tuple[str, str, object]] = ()) -> tuple[list[dict], list[dict], Candidate | None]:
    """(components, skipped, combined candidate or None) of the scenario's plan.

    ``policies``: summary records of the scenario's candidates by name; ``opportunities``: (probe candidate, its
    policy record) of the model opportunity chosen per workflow; ``cache``: (workflow, model, best option) of the
    prompt-caching opportunities, added as one caching component for the (workflow, model) pairs no routing rule
    of the plan may move and no component already caches."""
    plan = scenario.plan
    by_name = {c.name: (c, policies[c.name], "candidate") for c in candidates}
    by_name.update({c.name: (c, p, "opportunity") for c, p in opportunities})
    if isinstance(plan.candidates, list):
        unknown = [n for n in plan.candidates if n not in by_name]
        if unknown:
            raise ScenarioError(f"plan.candidates: '{unknown[0]}' is not a candidate of the scenario; known: "
                                f"{', '.join(sorted(c.name for c in candidates))}." +
                                did_you_mean(unknown[0], [c.name for c in candidates]))
        order = list(plan.candidates)
    else:
        pool = [c.name for c in candidates if _passed(policies[c.name])]
        if plan.include_opportunities:
            pool += [c.name for c, p in opportunities if _passed(p)]
        order = sorted(pool, key=lambda n: (-by_name[n][1]["monthly_savings_usd"], n))
    components, skipped = [], []
    for name in order:
        cand, policy, source = by_name[name]
        clash = {}
        for other in components:
            shared = overlaps.shared(name, other["name"])
            if shared:
                clash[other["name"]] = shared
        if clash:
            other, shared = next(iter(clash.items()))
            what = ", ".join(f"{n:,} {kind.replace('_', ' ')}" for kind, n in shared.items())
            skipped.append({"name": name, "source": source,
                            "reason": f"its rules claim requests `{other}` already claims ({what} requests)"})
            continue
        components.append({"name": name, "source": source, "monthly_savings_usd": policy["monthly_savings_usd"],
                           "monthly_savings_ci95": policy["monthly_savings_ci95"]})
    parts = [by_name[c["name"]][0] for c in components]
    if cache and plan.candidates == "passing" and plan.include_opportunities:
        part, saving, left = cache_component(cache, parts, {c.name for c in candidates} | set(by_name))
        skipped += left
        if part is not None:
            parts.append(part)
            components.append({"name": part.name, "source": "cache opportunity", "monthly_savings_usd": saving,
                               "monthly_savings_ci95": None})
    if not components:
        return components, skipped, None
    return components, skipped, combine(plan.name, parts, plan.gates or scenario.gates)


def _may_move(rule, workflow: str, model: str) -> bool:
    """Whether a routing rule (or a budget / rate-limit fallback: anything with a ``when``) could match requests of
    ``workflow`` recorded on ``model`` (conservative)."""
    tag = rule.when.metadata.get("workflow_tag")
    if tag is not None and tag != workflow:
        return False
    models = rule.when.models
    return not models or "*" in models or model in models or model.split("/", 1)[-1] in models


def cache_component(cache, parts: list[Candidate], taken: set[str]) -> tuple[Candidate | None, float, list[dict]]:
    """One caching candidate from the best option of each cache opportunity the plan's other parts leave alone:
    (candidate or None, its monthly savings as simulated on the recorded traffic, skipped entries)."""
    from simulator.routing.scenario import CacheRule, When

    if any(p.prompt_caching for p in parts):
        return None, 0.0, [{"name": "cache opportunities", "source": "cache opportunity",
                            "reason": "a component already sets prompt caching"}]
    rules, saving, skipped = [], 0.0, []
    from simulator.routing.fallbacks import compositions

    for workflow, model, best in cache:
        movers = [r.id for p in parts for r in p.rules if r.load_balance_targets and _may_move(r, workflow, model)]
        # a budget or rate limit that falls back moves requests too (to a model that may not offer this TTL)
        movers += [f"{c.limit_id}-fallback" for p in parts for c in compositions(p)
                   if model != c.fallback and _may_move(c, workflow, model)]
        if movers:
            skipped.append({"name": f"cache {workflow} on {model}", "source": "cache opportunity",
                            "reason": f"rule `{movers[0]}` of the plan may move these requests to another model"})
            continue
        rules.append(CacheRule(when=When(models=[model], metadata={"workflow_tag": workflow}), mode=best["mode"],
                               ttl=best["ttl"]))
        saving += best["monthly_savings_usd"]
    if not rules:
        return None, 0.0, skipped
    name = "cache-opportunities"
    while name in taken:
        name += "-x"
    return Candidate(name=name, description="prompt-caching opportunities", prompt_caching=rules), \
        round(saving, 6) + 0.0, skipped


def combine(name: str, parts: list[Candidate], gates) -> Candidate:
    """One candidate holding every part's rules (ids made unique), budgets, rate limits and caching rules."""
    rules, budgets, limits, caching = [], [], [], []
    seen: set[str] = set()

    def unique(rule_id: str, owner: str) -> str:
        out = rule_id if rule_id not in seen else f"{owner}-{rule_id}"[:62]
        seen.add(out)
        return out

    for part in parts:
        rules += [r.model_copy(update={"id": unique(r.id, part.name)}) for r in part.rules]
        budgets += [b.model_copy(update={"id": unique(b.id, part.name)}) for b in part.budgets]
        limits += [r.model_copy(update={"id": unique(r.id, part.name)}) for r in part.rate_limits]
        caching += list(part.prompt_caching)
    output = "eval-ratio" if all(p.output_tokens == "eval-ratio" for p in parts) else "recorded"
    return Candidate(name=name, description="plan: " + ", ".join(p.name for p in parts), rules=rules, budgets=budgets,
                     rate_limits=limits, prompt_caching=caching, output_tokens=output,
                     bill_failed_attempts=any(p.bill_failed_attempts for p in parts), gates=gates)


def plan_section(components: list[dict], skipped: list[dict], policy: dict | None, candidate: Candidate | None
                 ) -> dict[str, Any]:
    """summary.json ``plan``: the components, what was left out and why, the plan's own replay (total, interval,
    gates) and the difference to the sum of its parts (the interactions)."""
    out: dict[str, Any] = {"components": components, "skipped": skipped}
    if candidate is None:
        out["note"] = "no candidate or opportunity passed its gates with savings: nothing to combine"
        return out
    parts = sum(c["monthly_savings_usd"] for c in components)
    out["name"] = candidate.name
    out["sum_of_parts_monthly_savings_usd"] = round(parts, 6) + 0.0
    out["monthly_savings_usd"] = policy["monthly_savings_usd"]
    out["monthly_savings_ci95"] = policy["monthly_savings_ci95"]
    for key in ("interval_method", "monthly_savings_interval"):  # the single candidates' method (summary.intervals)
        if key in policy:
            out[key] = policy[key]
    out["interaction_monthly_usd"] = round(policy["monthly_savings_usd"] - parts, 6) + 0.0
    out["gates"] = policy["gates"]
    out["client_changes"] = [
        f"prompt caching for {r.when.metadata.get('workflow_tag', 'all workflows')} on {', '.join(r.when.models) or 'all models'}: "
        + ("mark the prefix with cache_control breakpoints (TTL " + r.ttl + ")" if r.mode == "explicit"
           else f"set prompt_cache_retention: {r.ttl}") for r in candidate.prompt_caching]
    from simulator.summary.assumptions import plan_assumptions

    out["assumptions"] = plan_assumptions(out) + list(policy.get("assumptions") or [])
    out["policy"] = policy
    out["candidate"] = candidate.model_dump(mode="json", exclude_defaults=True)
    return out


def plan_candidates(summary: dict) -> list[tuple[Candidate, dict]]:
    """(candidate, figures) of the plan in a summary.json, for the config writers (none without a plan)."""
    plan = summary.get("plan") or {}
    if not plan.get("candidate"):
        return []
    return [(Candidate.model_validate(plan["candidate"]), plan.get("policy") or {})]


__all__ = ["KINDS", "Overlaps", "claims", "combine", "compose", "plan_candidates", "plan_section"]
