"""Service-tier rules as gateway configs, and what they cannot say.

A ``flex`` or ``priority`` tier is a request parameter (OpenAI ``service_tier``): a gateway target can set it with
``override_params``. A rule that only changes the tier (no targets) is written with its one ``when.models`` model as
the target. ``batch`` is not a routing decision at all: the client has to submit the requests through the provider's
batch API, so a batch rule is never written as a routing rule; its client change is stated instead (see
``pricing/service-tiers.yaml``). Reading a config back, a rule whose targets all set the same ``service_tier`` in
``override_params`` gets that tier (:class:`simulator.routing.scenario.Rule`), so a written config replays like its
candidate.
"""

from __future__ import annotations

from simulator.pricing.model_ids import guess_provider
from simulator.pricing.tiers import default_tiers

PARAM_PROVIDERS = ("openai", "azure")  # providers whose API takes a service_tier request parameter


def gateway_view(candidate) -> tuple[object, list[str]]:
    """The candidate as the gateway writers should see it, and the changes they cannot make (one line each)."""
    if not any(r.service_tier not in (None, "default") for r in candidate.rules):
        return candidate, []
    rules, changes = [], []
    tiers = default_tiers()
    for rule in candidate.rules:
        tier = rule.service_tier
        if tier in (None, "default"):
            rules.append(rule)
            continue
        info = tiers.tier(tier)
        if tier == "batch" or not info.request_param:
            changes.append(f"rule '{rule.id}': service_tier {tier} is a client change, not a routing rule: "
                           f"{info.client_change}")
            if rule.load_balance_targets:
                rules.append(rule.model_copy(update={"service_tier": None}))
            continue
        if rule.load_balance_targets:
            rules.append(_with_param(rule, rule.load_balance_targets, info, tier, changes))
            continue
        # a tier-only rule keeps each request on its model: one rule per model, targeting that model
        full = [m for m in rule.when.models if "/" in m]
        if not full or len(full) != len(rule.when.models):
            changes.append(f"rule '{rule.id}': service_tier {tier} on the requests' own models needs their gateway "
                           f"ids in when.models (provider_account/model) to be written as targets; otherwise set "
                           f"{info.request_param} in the client")
            continue
        from simulator.routing.scenario import Target

        for i, model in enumerate(full):
            rule_id = rule.id if len(full) == 1 else f"{rule.id}-{i + 1}"
            when = rule.when.model_copy(update={"models": [model]})
            one = rule.model_copy(update={"id": rule_id, "when": when})
            rules.append(_with_param(one, [Target(target=model, weight=100)], info, tier, changes))
    return candidate.model_copy(update={"rules": rules}), changes


def _with_param(rule, targets, info, tier: str, changes: list[str]):
    written = []
    for t in targets:
        if guess_provider(t.target) not in PARAM_PROVIDERS:
            changes.append(f"rule '{rule.id}': target {t.target} takes no service_tier request parameter; written "
                           f"without {tier}")
            written.append(t)
            continue
        written.append(t.model_copy(update={"override_params": {**t.override_params, **info.request_param}}))
    return rule.model_copy(update={"load_balance_targets": written})


__all__ = ["gateway_view"]
