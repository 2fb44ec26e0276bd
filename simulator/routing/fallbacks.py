"""Budget and rate-limit fallbacks as the TrueFoundry gateway composes them.

The gateway's budget and rate-limit rules can only block (HTTP 429). A scenario's ``on_exceed: {fallback: X}`` (or a
rate limit's ``fallback: X``) is therefore the composition of two configs:

- the budget (rate limit) rule blocks with 429; for a budget whose scope also matches the fallback model X, an
  audit-mode rule ``<id>-fallback-exempt`` placed right before it decides for X's attempts, so the fallback is never
  blocked by that budget while its spend is still tracked against it (spend counts against every matching rule);
- per model M of the scope, a priority-based load-balancing rule ``<id>-fallback-<k>`` (``when``: the scope's
  subjects and metadata, ``models: [M]``) serves M and falls back on 429 to X.

tfysim simulates exactly that: requests in the scope that no candidate rule routes are served by their recorded
model M and fall back to X on a 429, whether the 429 is the budget's or the provider's (a recorded 429 falls back
too), and a request already on X is never blocked by its budget. This module is the one definition of the
composition, used by the replay (:mod:`simulator.core`), the writer and the reader of TrueFoundry files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from simulator.pricing.model_ids import split_model_id
from simulator.routing.scenario import Candidate, Rule, Target, When

RULE_ID_RE = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9\-]{0,60}[a-zA-Z0-9])$")
FALLBACK_CODES = ("429",)
EXEMPT_SUFFIX = "-fallback-exempt"


@dataclasses.dataclass(frozen=True)
class Composition:
    """One budget or rate limit that falls back to ``fallback`` instead of blocking."""

    kind: str  # "budget" | "rate-limit"
    limit_id: str
    when: When
    fallback: str


def gateway_rule_id(rule_id: str) -> str:
    """A load-balancing rule id the gateway accepts (letters, digits, '-'; at least 2 characters)."""
    out = re.sub(r"[^a-zA-Z0-9\-]+", "-", rule_id).strip("-") or "rule"
    if not out[0].isalpha():
        out = "r-" + out
    if len(out) < 2:
        out += "-rule"
    return out[:62].rstrip("-")


def compositions(candidate: Candidate) -> list[Composition]:
    """The candidate's fallbacks in the order their load-balancing rules are written: budgets, then rate limits."""
    out = [Composition("budget", b.id, b.when, b.on_exceed.fallback)
           for b in candidate.budgets if not isinstance(b.on_exceed, str)]
    out += [Composition("rate-limit", r.id, r.when, r.fallback) for r in candidate.rate_limits if r.fallback]
    return out


def scope_has_fallback(comp: Composition) -> bool:
    """Whether the fallback model's own attempts match the limit's ``when`` (then budgets need the exemption)."""
    models = comp.when.models
    if not models or "*" in models:
        return True
    _, name = split_model_id(comp.fallback)
    return comp.fallback in models or name in models


def covers(comp: Composition, model: str) -> bool:
    """Whether requests recorded on ``model`` (in the scope) get a fallback rule: served models of the scope, not X."""
    if model == comp.fallback:
        return False
    models = comp.when.models
    return not models or "*" in models or model in models


def covered_models(comp: Composition, traffic_models: Iterable[str]) -> list[str]:
    """Models that get a fallback rule: the scope's own model ids when it names them, else the traffic's models."""
    models = comp.when.models
    pool = [m for m in models if "/" in m] if models and "*" not in models else list(traffic_models)
    return sorted({m for m in pool if covers(comp, m)})


def fallback_rule_id(comp: Composition, k: int) -> str:
    return f"{gateway_rule_id(comp.limit_id)[:44].rstrip('-')}-fallback-{k}"


def composition_rule(comp: Composition, model: str, k: int = 0) -> Rule:
    """The load-balancing rule that serves ``model`` and falls back on 429 to the composition's fallback."""
    return Rule(id=fallback_rule_id(comp, k), type="priority-based-routing",
                when=When(subjects=list(comp.when.subjects), metadata=dict(comp.when.metadata), models=[model]),
                load_balance_targets=[Target(target=model, priority=0, fallback_status_codes=list(FALLBACK_CODES)),
                                      Target(target=comp.fallback, priority=1)])


def exemption_when(comp: Composition) -> When:
    """``when`` of the audit-mode budget rule that lets the fallback model's attempts through."""
    return When(subjects=list(comp.when.subjects), metadata=dict(comp.when.metadata), models=[comp.fallback])


def fallback_of(rule: Rule, limit_id: str) -> str | None:
    """The fallback model when ``rule`` is a composition rule written for the limit ``limit_id``, else None."""
    prefix = f"{gateway_rule_id(limit_id)[:44].rstrip('-')}-fallback-"
    if not rule.id.startswith(prefix) or not rule.id[len(prefix):].isdigit():
        return None
    targets = rule.load_balance_targets
    if rule.type != "priority-based-routing" or len(targets) != 2 or rule.sticky_routing is not None:
        return None
    first, second = targets
    plain = all(t.retry_config is None and t.fallback_candidate and not t.override_params and not t.headers_override
                and not t.metadata_match and t.sla_cutoff is None for t in targets)
    if (not plain or rule.when.models != [first.target] or (first.priority or 0) != 0 or second.priority != 1
            or list(first.fallback_status_codes) != list(FALLBACK_CODES)):
        return None
    return second.target
