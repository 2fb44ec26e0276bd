"""A one-rule candidate as a Portkey config (the ``x-portkey-config`` JSON) the open-source gateway accepts.

A Portkey config is attached by the client to the requests it should route, so the rule's model and metadata
conditions become "attach this config to requests with ..." (``attach_when`` in ``routing/index.json``); a candidate
with several rules, subject conditions, budgets or rate limits is not written.

Targets name a Portkey provider id (:data:`common.PORTKEY_PROVIDER`, or the scenario's ``portkey.accounts``) with the
credentials the open-source gateway requires for it; by default these are ``${ACCOUNT_API_KEY}``-style placeholders
the client fills in before sending. An account mapped to a ``virtual_key`` (hosted Portkey) is written as that key.
Weight-based rules are ``loadbalance`` over per-target ``fallback`` chains, priority-based rules a ``fallback`` chain,
with the target's own ``fallback_status_codes`` (numbers) and ``retry`` from its ``retry_config``.
"""

from __future__ import annotations

import re
from typing import Any

from simulator.outputs.gateways.common import PORTKEY_PROVIDER, provider_key
from simulator.pricing.model_ids import split_model_id
from simulator.summary.privacy import subject_label
from simulator.routing.scenario import Candidate, PortkeyAccount, Rule

_CREDENTIALS = {
    "vertex-ai": ("api_key", "vertex_project_id", "vertex_region"),
    "bedrock": ("aws_access_key_id", "aws_secret_access_key", "aws_region"),
    "azure-openai": ("api_key", "resource_name", "deployment_id", "api_version"),
}


def _placeholder(account: str, field: str) -> str:
    return "${" + re.sub(r"[^A-Z0-9]+", "_", f"{account}_{field}".upper()).strip("_") + "}"


def account_target(target: str, accounts: dict[str, PortkeyAccount]) -> dict[str, Any] | None:
    """The Portkey target for a gateway model id, or None when no provider is known for its account."""
    account, name = split_model_id(target)
    given = accounts.get(account)
    out: dict[str, Any]
    if given is not None and given.virtual_key:
        out = {"virtual_key": given.virtual_key}
    else:
        provider = (given.provider if given is not None and given.provider
                    else PORTKEY_PROVIDER.get(provider_key(target) or ""))
        if not provider:
            return None
        out = {"provider": provider}
        for field in _CREDENTIALS.get(provider, ("api_key",)):
            value = getattr(given, field, None) if given is not None else None
            out[field] = value if value else _placeholder(account or name, field)
    out["override_params"] = {"model": name}
    return out


def _retry(t) -> dict[str, Any] | None:
    rc = t.retry_config
    if rc is None or rc.attempts <= 0:
        return None
    return {"attempts": min(int(rc.attempts), 5), "on_status_codes": sorted(int(c) for c in rc.on_status_codes)}


def attach_when(rule: Rule) -> dict[str, Any]:
    """The requests a client attaches the config to: the rule's requested models and metadata."""
    out: dict[str, Any] = {}
    if rule.when.models and "*" not in rule.when.models:
        out["models"] = list(rule.when.models)
    if rule.when.metadata:
        out["metadata"] = dict(rule.when.metadata)
    return out


def to_portkey(candidate: Candidate, accounts: dict[str, PortkeyAccount] | None = None
               ) -> tuple[dict[str, Any] | None, list[str]]:
    """(Portkey config or None, what cannot be expressed). The config is None whenever the list is not empty."""
    accounts = accounts or {}
    gaps: list[str] = []
    if candidate.budgets:
        gaps.append("budgets (" + ", ".join(b.id for b in candidate.budgets) + ")")
    if candidate.rate_limits:
        gaps.append("rate limits (" + ", ".join(r.id for r in candidate.rate_limits) + ")")
    if candidate.prompt_caching:
        gaps.append("prompt caching rules")
    if len(candidate.rules) != 1:
        if len(candidate.rules) > 1:
            gaps.append(f"{len(candidate.rules)} rules: a Portkey config routes the requests it is attached to and "
                        "has no passthrough for requests that match no rule")
        return None, gaps
    rule = candidate.rules[0]
    if rule.when.subjects:
        gaps.append(f"rule '{rule.id}': subject conditions ({', '.join(map(subject_label, rule.when.subjects))})")
    if rule.sticky_routing is not None:
        gaps.append(f"rule '{rule.id}': sticky routing")
    if rule.type == "latency-based-routing":
        gaps.append(f"rule '{rule.id}': latency-based routing")
    targets = rule.load_balance_targets
    leaves = []
    for t in targets:
        leaf = account_target(t.target, accounts)
        if leaf is None:
            gaps.append(f"rule '{rule.id}': no Portkey provider known for {t.target}; map its account in the "
                        "scenario's portkey.accounts")
        if t.metadata_match:
            gaps.append(f"rule '{rule.id}': per-target metadata_match on {t.target}")
        if t.sla_cutoff is not None:
            gaps.append(f"rule '{rule.id}': sla_cutoff on {t.target}")
        if leaf is not None and _retry(t):
            leaf["retry"] = _retry(t)
        leaves.append(leaf)
    if gaps:
        return None, gaps
    order = sorted(range(len(targets)), key=lambda i: (targets[i].priority or 0, i)) \
        if rule.type == "priority-based-routing" else \
        sorted(range(len(targets)), key=lambda i: (-(targets[i].weight or 0), i))

    def chain(first: int) -> dict[str, Any]:
        members = [first] + [i for i in order if i != first and targets[i].fallback_candidate]
        if len(members) == 1:
            return dict(leaves[first])
        codes = sorted(int(c) for c in targets[first].fallback_status_codes)
        return {"strategy": {"mode": "fallback", "on_status_codes": codes},
                "targets": [dict(leaves[i]) for i in members]}

    if rule.type == "weight-based-routing" and len(targets) > 1:
        lb = []
        for i, t in enumerate(targets):
            entry = chain(i)
            entry["weight"] = int(t.weight if t.weight is not None else 100)
            lb.append(entry)
        return {"strategy": {"mode": "loadbalance"}, "targets": lb}, gaps
    if len(targets) == 1:
        return {"strategy": {"mode": "single"}, "targets": [chain(0)]}, gaps
    return chain(order[0]), gaps
