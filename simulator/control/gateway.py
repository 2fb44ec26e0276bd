"""The gateway rule a ``kill_runaway_sessions`` candidate is written as: a per-session TrueFoundry rate limit.

TrueFoundry has no "kill at 3x the workflow's p95" rule. The closest is a ``gateway-rate-limiting-config`` rule per
workflow, ``rate_limit_applies_per: [metadata.session_id]``, in tokens per minute: ``multiplier`` x the workflow's
quantile of per-session window token totals at the end of the replayed traffic, per minute. Built from the
candidate's ``session_kill`` record in summary.json; what the rule cannot express is listed.
"""

from __future__ import annotations

import re
from typing import Any

from simulator.control.loops import UNTAGGED  # the label of the sessions' baseline without a workflow tag

RATE_LIMITING = "gateway-rate-limiting-config"
_ID = re.compile(r"[^a-z0-9\-]+")


def _rule_id(workflow: str) -> str:
    text = _ID.sub("-", f"runaway-session-{workflow}".lower()).strip("-")[:62]
    return text if text[:1].isalpha() else "r" + text[:61]


def session_kill_manifest(candidate: str, record: dict[str, Any]) -> dict[str, Any]:
    """A ``gateway-rate-limiting-config`` with one per-session token rule per workflow that has a baseline."""
    rules, catch_all = [], []
    for b in record.get("baselines", []):
        if b.get("tokens_per_minute_limit") is None:
            continue
        untagged = b["workflow_tag"] == UNTAGGED
        # The gateway applies the first rule that matches. The sessions without a workflow tag cannot be matched by
        # a condition, so their limit is a rule without one, placed last: above the others it would catch every
        # session of every workflow.
        (catch_all if untagged else rules).append({
            "id": _rule_id(b["workflow_tag"]), "when": {} if untagged else {"metadata": {"workflow_tag": b["workflow_tag"]}},
            "limit_to": int(b["tokens_per_minute_limit"]), "unit": "tokens_per_minute",
            "rate_limit_applies_per": ["metadata.session_id"]})
    rules += catch_all
    slug = _ID.sub("-", f"tfysim-{candidate}-session-kill".lower()).strip("-")
    return {"name": slug, "type": RATE_LIMITING, "rules": rules}


def not_expressible(record: dict[str, Any]) -> list[str]:
    """What the per-session rate limit does not do that the simulated kill does."""
    rule = record.get("rule", {})
    return [
        "a kill: the gateway throttles the session each minute instead of stopping it (the runbook's kill step "
        "stops it)",
        f"the moving baseline ({rule.get('quantile')} quantile of the previous {rule.get('baseline_days')} days, "
        "per workflow): these limits are fixed at the end of the replayed traffic; regenerate them weekly",
        "price weighting: the gateway counts raw tokens, so cache reads count in full (limits here come from raw "
        "token totals)",
        f"the sliding {rule.get('window')} window and `for: {rule.get('for')}`: the gateway uses fixed one-minute "
        f"windows, so the limit is the rule's {rule.get('window')} threshold per minute (it throttles later than the "
        "simulated kill fires)",
        "the identical_requests and retry_storm detectors",
        "only the first matching rate-limit rule applies and a tenant has one rate-limiting config: merge these "
        "rules into yours, above broader rules",
    ] + ([
        "a limit for sessions without a workflow tag only: the gateway cannot match a missing tag, so that limit is "
        "the last rule, without a condition, and also applies to the sessions of workflows without a limit of their own"
    ] if any(b.get("workflow_tag") == UNTAGGED and b.get("tokens_per_minute_limit") is not None
             for b in record.get("baselines", [])) else [])


def session_kill_text(candidate: str, scenario: str, record: dict[str, Any]) -> tuple[str, list[str]]:
    """The YAML file for ``tfy apply -f`` (with a comment header) and what it cannot express."""
    import yaml

    manifest = session_kill_manifest(candidate, record)
    gaps = not_expressible(record)
    lines = [f"# tfysim: candidate '{candidate}' of scenario '{scenario}' (kill_runaway_sessions as a per-session "
             f"rate limit, {RATE_LIMITING})",
             f"# simulated: {record.get('sessions_killed', 0)} session(s) killed, {record.get('requests_blocked', 0)} "
             f"request(s) blocked, ${record.get('spend_avoided_usd', 0.0):,.2f} avoided in the replayed window",
             "# apply: tfy apply -f <this file> --dry-run --show-diff   (then without --dry-run)"]
    lines += [f"# not expressible: {g}" for g in gaps]
    if not manifest["rules"]:
        lines.append("# no workflow had enough baseline samples for a limit: nothing to apply yet")
    body = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    return "\n".join(lines) + "\n" + body, gaps
