"""A candidate as TrueFoundry manifests for ``tfy apply -f`` (one manifest per file).

- One rule matching one requested virtual model (``group/name``, not a served model) becomes a virtual model
  (``type: provider-account/virtual-model``); other rules become a ``gateway-load-balancing-config`` (first match
  wins, as tfysim simulates).
- Budgets become a ``gateway-budget-config``, rate limits a ``gateway-rate-limiting-config``.
- A budget or rate-limit fallback is written as the gateway composes it (:mod:`simulator.routing.fallbacks`): a
  blocking rule plus load-balancing rules that fall back on 429; no comment carries behaviour.

TrueFoundry keeps one config of each type per tenant, so applying a file replaces the tenant's config of that type.
With the tenant's current configs (``baseline: {truefoundry_config: [...]}``) each file is that whole config with the
candidate's rules merged in first (first match wins), and a unified diff is written beside it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from simulator.outputs.gateways.common import dump_yaml, figures_line, header
from simulator.pricing.model_ids import split_model_id
from simulator.routing.fallbacks import (
    EXEMPT_SUFFIX,
    compositions,
    composition_rule,
    covered_models,
    exemption_when,
    gateway_rule_id,
    scope_has_fallback,
)
from simulator.routing.scenario import DEFAULT_FALLBACK_CODES, Candidate, Rule
from simulator.routing.truefoundry_config import (
    BUDGET,
    INTEGRATION_NAME_RE,
    LOAD_BALANCING,
    RATE_LIMITING,
    VIRTUAL_INTEGRATION,
    VIRTUAL_MODEL,
    VM_NAME_RE,
)

KIND_TYPE = {"routing": LOAD_BALANCING, "budgets": BUDGET, "rate-limits": RATE_LIMITING}


def slug(text: str, pattern: re.Pattern = VM_NAME_RE, fallback: str = "tfysim") -> str:
    """A manifest name from free text: lowercase, [a-z0-9-], starting with a letter."""
    out = re.sub(r"[^a-z0-9\-]+", "-", str(text).lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)
    if not out or not out[0].isalpha():
        out = f"{fallback}-{out}".strip("-")
    out = out[:64].rstrip("-")
    if len(out) < 3:
        out = f"{out}-{fallback}"[:64]
    return out if pattern.match(out) else fallback


def _when(when) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if when.subjects:
        out["subjects"] = list(when.subjects)
    if when.models:
        out["models"] = list(when.models)
    if when.metadata:
        out["metadata"] = dict(when.metadata)
    return out


def _target(t, rule_type: str, single: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"target": t.target}
    if t.weight is not None:
        out["weight"] = int(t.weight)
    elif rule_type == "weight-based-routing" and single:
        out["weight"] = 100  # a weight-based target needs a weight; one target takes all traffic
    if t.priority is not None:
        out["priority"] = int(t.priority)
    if t.sla_cutoff is not None:
        sla = {k: v for k, v in t.sla_cutoff.model_dump().items() if v is not None}
        if sla:
            out["sla_cutoff"] = sla
    if t.retry_config is not None:
        rc = t.retry_config
        out["retry_config"] = {"attempts": rc.attempts, "delay": rc.delay, "on_status_codes": list(rc.on_status_codes)}
    if list(t.fallback_status_codes) != list(DEFAULT_FALLBACK_CODES):
        out["fallback_status_codes"] = list(t.fallback_status_codes)
    if not t.fallback_candidate:
        out["fallback_candidate"] = False
    if t.override_params:
        out["override_params"] = dict(t.override_params)
    if t.headers_override:
        out["headers_override"] = dict(t.headers_override)
    if t.metadata_match:
        out["metadata_match"] = dict(t.metadata_match)
    return out


def _targets(rule: Rule, notes: list[str]) -> list[dict[str, Any]]:
    targets = rule.load_balance_targets
    out = [_target(t, rule.type, len(targets) == 1) for t in targets]
    if rule.type == "weight-based-routing" and len(targets) > 1:
        total = sum(t.weight or 0 for t in targets)
        if total != 100:
            if all((t.weight or 0) * 100 % total == 0 for t in targets):
                # Same proportions, written the way the gateway docs expect (summing to 100).
                for entry, t in zip(out, targets):
                    entry["weight"] = (t.weight or 0) * 100 // total
            else:
                notes.append(f"rule '{rule.id}': weights sum to {total}, not 100 as the gateway docs expect; "
                             "tfysim simulated these exact weights")
    return out


def _routing_block(rule: Rule, notes: list[str]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": rule.type}
    if rule.sticky_routing is not None:
        sr = rule.sticky_routing
        block["sticky_routing"] = {"ttl_seconds": sr.ttl_seconds,
                                   "session_identifiers": [s.model_dump() for s in sr.session_identifiers]}
        if not 1800 <= sr.ttl_seconds <= 86400:
            notes.append(f"rule '{rule.id}': sticky_routing.ttl_seconds {sr.ttl_seconds} is outside the schema "
                         "range 1800..86400")
    block["load_balance_targets"] = _targets(rule, notes)
    return block


def virtual_model_target(candidate: Candidate, known_models: Iterable[str] = ()) -> str | None:
    """The virtual model id (``group/name``) when the candidate fits the virtual-model form, else None."""
    if len(candidate.rules) != 1 or compositions(candidate):
        return None
    rule = candidate.rules[0]
    w = rule.when
    if w.subjects or w.metadata or len(w.models) != 1:
        return None
    model = w.models[0]
    group, name = split_model_id(model)
    targets = {t.target for t in rule.load_balance_targets}
    accounts = {split_model_id(t)[0] for t in targets}
    if (not group or not VM_NAME_RE.match(group) or not INTEGRATION_NAME_RE.match(name) or model in targets
            or group in accounts or model in set(known_models)):
        return None
    return model


def routing_rules(candidate: Candidate, traffic_models: Iterable[str]) -> list[Rule]:
    """The load-balancing rules to apply, in first-match order: the candidate's, then its fallback compositions."""
    rules = list(candidate.rules)
    models = list(traffic_models)
    for comp in compositions(candidate):
        rules += [composition_rule(comp, m, k) for k, m in enumerate(covered_models(comp, models))]
    return rules


def not_expressible(candidate: Candidate) -> list[str]:
    """What TrueFoundry cannot apply as simulated (then no TrueFoundry file is written)."""
    out = []
    comps = compositions(candidate)
    if comps and candidate.rules:
        out.append("a budget or rate-limit fallback together with routing rules: the gateway would fall back on the "
                   "budget's 429 through the routing rule's own targets, not to the fallback; split them into two "
                   "candidates")
    for comp in comps:
        named = [m for m in comp.when.models if m != "*"]
        if any("/" not in m for m in named):
            out.append(f"{comp.kind} '{comp.limit_id}': a fallback whose when.models names a bare model or alias "
                       f"({', '.join(m for m in named if '/' not in m)}); the fallback rule needs served model ids")
        if comp.kind == "rate-limit" and scope_has_fallback(comp):
            out.append(f"rate limit '{comp.limit_id}': falls back to {comp.fallback}, which the rule itself also "
                       "limits (rate limits have no audit mode to exempt it); list the limited models in when.models")
    return out


def _routing_manifest(candidate: Candidate, name: str, known_models, traffic_models, notes: list[str]) -> dict | None:
    vm = virtual_model_target(candidate, known_models)
    if vm is not None:
        group, integration = split_model_id(vm)
        return {"type": VIRTUAL_MODEL, "name": group, "integrations": [{
            "type": VIRTUAL_INTEGRATION, "name": integration, "model_types": ["chat"],
            "routing_config": _routing_block(candidate.rules[0], notes)}]}
    rules = []
    for rule in routing_rules(candidate, traffic_models):
        entry: dict[str, Any] = {"id": gateway_rule_id(rule.id), "type": rule.type, "when": _when(rule.when)}
        if not rule.when.models:
            notes.append(f"rule '{rule.id}' lists no when.models: the schema allows it, the docs require it")
        block = _routing_block(rule, notes)
        if "sticky_routing" in block:
            entry["sticky_routing"] = block["sticky_routing"]
        entry["load_balance_targets"] = block["load_balance_targets"]
        rules.append(entry)
    return {"name": name, "type": LOAD_BALANCING, "rules": rules} if rules else None


def _applies_per(values: list[str]) -> list[str]:
    # tfysim accepts team / project / workflow_tag; the gateway spells these as metadata keys.
    return [v if v in ("user", "model", "virtualaccount") or v.startswith("metadata.") else f"metadata.{v}"
            for v in values]


def _budget_manifest(candidate: Candidate, name: str) -> dict:
    rules = []
    for b in candidate.budgets:
        entry = _limit_rule(b, float(b.limit_to), "budget_applies_per", b.budget_applies_per)
        if b.alerts:
            entry["alerts"] = dict(b.alerts)
        if not isinstance(b.on_exceed, str):
            comp = next(c for c in compositions(candidate) if c.kind == "budget" and c.limit_id == b.id)
            if scope_has_fallback(comp):
                # Decides for the fallback model's attempts (first match) without blocking them; their spend
                # still counts against the budget below (every matching rule tracks spend).
                exempt = {k: v for k, v in entry.items() if k != "alerts"}  # its own counter: no alerts
                rules.append({**exempt, "id": b.id + EXEMPT_SUFFIX, "when": _when(exemption_when(comp)),
                              "audit_mode": True})
        if b.audit_mode:
            entry["audit_mode"] = True
        rules.append(entry)
    return _limits_manifest(name, "budgets", rules)


def _rate_manifest(candidate: Candidate, name: str) -> dict:
    rules = [_limit_rule(r, int(r.limit_to), "rate_limit_applies_per", r.rate_limit_applies_per)
             for r in candidate.rate_limits]
    return _limits_manifest(name, "rate-limits", rules)


def _limit_rule(limit, limit_to: float | int, per_key: str, per: list[str]) -> dict[str, Any]:
    """The fields a budget rule and a rate-limit rule share (``per_key``: how the gateway names "applies per")."""
    entry: dict[str, Any] = {"id": limit.id, "when": _when(limit.when), "limit_to": limit_to, "unit": limit.unit}
    if per:
        entry[per_key] = _applies_per(per)
    return entry


def _limits_manifest(name: str, kind: str, rules: list[dict]) -> dict:
    return {"name": f"{name}-{kind}", "type": KIND_TYPE[kind], "rules": rules}


def manifests(candidate: Candidate, *, known_models: Iterable[str] = (), traffic_models: Iterable[str] = (),
              baselines: dict[str, dict] | None = None) -> list[tuple[str, dict, list[str]]]:
    """(kind, manifest, notes) per file: routing, budgets, rate limits (each only when the candidate has it).

    ``traffic_models`` are the models recorded in the traffic (a fallback's rules cover them); ``baselines`` maps a
    kind to the tenant's current manifest of that type, into which the candidate's rules are merged first.
    """
    base = slug(f"tfysim-{candidate.name}")
    baselines = baselines or {}
    out = []
    notes: list[str] = []
    routing = _routing_manifest(candidate, base, known_models, list(traffic_models), notes)
    if routing is not None:
        out.append(("routing", routing, notes))
    if candidate.budgets:
        out.append(("budgets", _budget_manifest(candidate, base), []))
    if candidate.rate_limits:
        out.append(("rate-limits", _rate_manifest(candidate, base), []))
    return [(kind, merge(m, baselines.get(kind)), n) for kind, m, n in out]


def merge(proposed: dict, current: dict | None) -> dict:
    """The tenant's whole config with the candidate's rules first (first match wins) and a current rule of the same
    id replaced; the current config's ``name`` and other keys are kept. Unchanged when types differ."""
    if not current or current.get("type") != proposed.get("type") or proposed.get("type") == VIRTUAL_MODEL:
        return proposed
    ids = {r["id"] for r in proposed["rules"]}
    kept = [r for r in current.get("rules") or [] if not (isinstance(r, dict) and r.get("id") in ids)]
    return {**current, "rules": proposed["rules"] + kept}


def render(candidate: Candidate, scenario_name: str, figures: dict[str, Any] | None = None, *,
           known_models: Iterable[str] = (), traffic_models: Iterable[str] = (),
           baselines: dict[str, tuple[str, dict]] | None = None) -> dict[str, str]:
    """YAML text per file kind (``routing`` / ``budgets`` / ``rate-limits``), each with a comment header.

    ``baselines`` maps a kind to (file name, manifest) of the tenant's current config of that type.
    """
    baselines = baselines or {}
    items = manifests(candidate, known_models=known_models, traffic_models=traffic_models,
                      baselines={k: m for k, (_, m) in baselines.items()})
    out: dict[str, str] = {}
    for i, (kind, manifest, notes) in enumerate(items):
        lines = [f"tfysim: candidate '{candidate.name}' of scenario '{scenario_name}' ({manifest['type']})",
                 f"figures: {figures_line(figures)}",
                 "apply: tfy apply -f <this file> --dry-run --show-diff   (then without --dry-run)"]
        if manifest["type"] == VIRTUAL_MODEL:
            lines.append(f"applying creates or replaces the virtual model group '{manifest['name']}'")
        elif kind in baselines and baselines[kind][1].get("type") == manifest["type"]:
            lines.append(f"this is the tenant's whole {manifest['type']} from {baselines[kind][0]} with this "
                         "candidate's rules merged in first (first match wins); see the .diff beside it")
        else:
            lines.append(f"applying REPLACES the tenant's {manifest['type']} (TrueFoundry keeps one per tenant and "
                         "type): merge your current rules into this file first, or name them in the scenario's "
                         "baseline: {truefoundry_config: [...]} so tfysim merges them")
        if len(items) > 1:
            others = [k for j, (k, _, _) in enumerate(items) if j != i]
            lines.append(f"one manifest per file: this candidate also has {', '.join(others)} config file(s) "
                         "beside this one; apply each")
        if kind == "routing" and compositions(candidate):
            lines.append("budget/rate-limit fallbacks: the rules '<id>-fallback-<k>' serve each model and fall back "
                         "on 429 (the limit's block or the provider's) to the fallback model; they cover the models "
                         "seen in the traffic, so add a rule for a model that starts serving this scope")
        lines += [f"note: {n}" for n in notes]
        out[kind] = header(lines) + dump_yaml(manifest)
    return out


def unified_diff(current_text: str, proposed_text: str, current_name: str, proposed_name: str) -> str:
    return "".join(difflib.unified_diff(current_text.splitlines(keepends=True), proposed_text.splitlines(keepends=True),
                                        fromfile=current_name, tofile=proposed_name))
