"""A candidate as a LiteLLM proxy config (``model_list`` + ``router_settings``), only when all of it is expressible.

- Each requested model a rule names (``when.models``) is a model group (``model_name``); its deployments are the
  rule's targets, ``model`` spelled with LiteLLM's provider prefix (:data:`common.LITELLM_PREFIX`).
- A rule's metadata condition is tag-based routing: the deployments carry the tag ``key=value`` (several keys:
  ``k1=v1,k2=v2``), ``enable_tag_filtering: true``, and the client sends ``metadata.tags: ["key=value"]``.
  Requests without a matching tag go to the group's ``default``-tagged deployments: the group's rule without a
  condition, or the requested model itself (a passthrough, as tfysim keeps unmatched requests on their model).
- Weight-based targets carry ``weight`` (``simple-shuffle``); a rule's fallback order (priority, else weight) is a
  chain of one-deployment groups in ``fallbacks``; ``num_retries: 0`` and ``disable_cooldowns: true`` pin what was
  simulated (no retries, a failing target stays in rotation).

Anything else (subjects, budgets, rate limits, retries, fallback on chosen status codes, sticky routing, ...) is
listed by :func:`to_litellm` and then no file is written, never a partial one.
"""

from __future__ import annotations

from typing import Any

from simulator.outputs.gateways.common import litellm_model
from simulator.routing.fallbacks import gateway_rule_id
from simulator.summary.privacy import subject_label
from simulator.routing.scenario import DEFAULT_FALLBACK_CODES, Candidate, Rule

ROUTER_SETTINGS = {"routing_strategy": "simple-shuffle", "num_retries": 0, "disable_cooldowns": True}


def rule_tag(rule: Rule) -> str | None:
    """The tag a request sends in ``metadata.tags`` to match the rule's metadata condition, or None."""
    meta = rule.when.metadata
    return ",".join(f"{k}={meta[k]}" for k in sorted(meta)) if meta else None


def _rule_gaps(rule: Rule) -> list[str]:
    out = []
    if rule.when.subjects:
        out.append(f"rule '{rule.id}': subject conditions ({', '.join(map(subject_label, rule.when.subjects))})")
    if not rule.when.models or "*" in rule.when.models:
        out.append(f"rule '{rule.id}': matches every requested model (LiteLLM routes by requested model name)")
    if rule.type == "latency-based-routing":
        out.append(f"rule '{rule.id}': latency-based routing (one global routing_strategy)")
    if rule.sticky_routing is not None:
        out.append(f"rule '{rule.id}': sticky routing")
    for t in rule.load_balance_targets:
        if litellm_model(t.target) is None:
            out.append(f"rule '{rule.id}': no LiteLLM provider prefix known for {t.target}")
        if t.metadata_match:
            out.append(f"rule '{rule.id}': per-target metadata_match on {t.target}")
        if t.sla_cutoff is not None:
            out.append(f"rule '{rule.id}': sla_cutoff on {t.target}")
        if not t.fallback_candidate:
            out.append(f"rule '{rule.id}': fallback_candidate: false on {t.target}")
        if t.retry_config is not None and t.retry_config.attempts > 0:
            out.append(f"rule '{rule.id}': retries on {t.target} on chosen status codes")
        if list(t.fallback_status_codes) != list(DEFAULT_FALLBACK_CODES) and len(rule.load_balance_targets) > 1:
            out.append(f"rule '{rule.id}': {t.target} falls back only on status codes "
                       f"{', '.join(t.fallback_status_codes)} (LiteLLM falls back on any error)")
    return out


def _order(rule: Rule) -> list[int]:
    targets = rule.load_balance_targets
    if rule.type == "priority-based-routing":
        return sorted(range(len(targets)), key=lambda i: (targets[i].priority or 0, i))
    return sorted(range(len(targets)), key=lambda i: (-(targets[i].weight or 0), i))


def to_litellm(candidate: Candidate) -> tuple[dict[str, Any] | None, list[str]]:
    """(LiteLLM proxy config or None, what cannot be expressed). The config is None whenever the list is not empty."""
    gaps: list[str] = []
    if candidate.budgets:
        gaps.append("budgets (" + ", ".join(b.id for b in candidate.budgets) + "): set them in the proxy's own "
                    "budget settings")
    if candidate.rate_limits:
        gaps.append("rate limits (" + ", ".join(r.id for r in candidate.rate_limits) + "): per-subject/metadata "
                    "limits have no equivalent in a model_list")
    if candidate.prompt_caching:
        gaps.append("prompt caching rules (provider-side caching is set per request)")
    groups: dict[str, list[Rule]] = {}
    for rule in candidate.rules:
        gaps += _rule_gaps(rule)
        for alias in rule.when.models:
            groups.setdefault(alias, []).append(rule)
    if not candidate.rules or gaps:
        return None, gaps
    model_list: list[dict[str, Any]] = []
    fallbacks: list[dict[str, list[str]]] = []
    tagged = False
    for alias, rules in groups.items():
        live, seen_tags = [], set()
        for rule in rules:  # first match wins: a rule after an unconditional one, or a repeated tag, never matches
            tag = rule_tag(rule)
            if tag in seen_tags:
                continue
            seen_tags.add(tag)
            live.append(rule)
            if tag is None:
                break
        has_default = live[-1] is not None and rule_tag(live[-1]) is None
        tags_used = any(rule_tag(r) for r in live)
        if tags_used and not has_default and litellm_model(alias) is None:
            gaps.append(f"model '{alias}': requests without the rule's tags need a default deployment, and '{alias}' "
                        "is not a served model id")
            continue
        if len(live) > 1 and any(len(r.load_balance_targets) > 1 for r in live):
            gaps.append(f"model '{alias}': several rules with fallback targets (LiteLLM fallbacks are per model "
                        "group, not per tag)")
            continue
        tagged |= tags_used
        for rule in live:
            tag = rule_tag(rule)
            order = _order(rule)
            served = order[:1] if rule.type == "priority-based-routing" else order
            for j in served:
                t = rule.load_balance_targets[j]
                params: dict[str, Any] = {"model": litellm_model(t.target)}
                if rule.type == "weight-based-routing" and len(served) > 1:
                    params["weight"] = int(t.weight if t.weight is not None else 100)
                if tags_used:
                    params["tags"] = [tag or "default"]
                model_list.append({"model_name": alias, "litellm_params": params,
                                   "model_info": {"id": f"{gateway_rule_id(rule.id)}-{j}", "tfy_target": t.target}})
            if len(order) > 1:
                chain = []
                for j in order:
                    group = f"{alias}>{gateway_rule_id(rule.id)}-{j}"
                    chain.append(group)
                    t = rule.load_balance_targets[j]
                    params = {"model": litellm_model(t.target)}
                    if tag:  # the request keeps its tags when it falls back: the fallback group must accept them
                        params["tags"] = [tag]
                    model_list.append({"model_name": group, "litellm_params": params,
                                       "model_info": {"id": f"{gateway_rule_id(rule.id)}-{j}-fallback",
                                                      "tfy_target": t.target}})
                if rule.type == "priority-based-routing":
                    chain = chain[1:]
                fallbacks.append({alias: chain})
        if tags_used and not has_default:
            model_list.append({"model_name": alias, "litellm_params": {"model": litellm_model(alias),
                                                                         "tags": ["default"]},
                               "model_info": {"id": f"{gateway_rule_id(alias)}-passthrough", "tfy_target": alias}})
    if gaps or not model_list:
        return None, gaps
    router: dict[str, Any] = dict(ROUTER_SETTINGS)
    if tagged:
        router["enable_tag_filtering"] = True
    if fallbacks:
        router["fallbacks"] = fallbacks
    return {"model_list": model_list, "router_settings": router}, gaps
