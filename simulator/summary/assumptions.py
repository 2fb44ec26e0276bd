"""The assumption lines of a policy, generated from what the replay did (its summary.json record), never by hand.

Every engine produces the same policy record, so every engine produces the same lines. Each line states a number the
replay counted (requests per translation method, the realised output-token ratio, cache tokens lost to a cold
target, requests added to each target, the window's extrapolation factor, ...), so it can be checked against the
replay's own counters (``tests/test_assumptions.py`` does, for every example scenario).
"""

from __future__ import annotations

from typing import Any

MONTH_DAYS = 30.0
WINDOW_WARNING_FACTOR = 10.0  #: above this extrapolation factor the headline warns about the window
FULL_WEEK_DAYS = 6.9  #: a week's export spans first to last request, a little under 7 days
_METHOD_WORDS = {
    "identity": "identity (same tokenizer: kept as recorded, an assumption without an interval)",
    "exact": "exact (prompt re-tokenised)",
    "partial-exact": "partial-exact (visible prompt re-tokenised, the rest by the calibrated ratio)",
    "calibrated": "calibrated (ratio fitted on this traffic)",
    "calibrated-default": "calibrated-default (shipped ratio)",
    "identity-unknown": "identity-unknown (no tokenizer registered: kept as recorded)",
}


def extrapolation_factor(days: float) -> float:
    """How many times the window is multiplied to make a 30-day month."""
    return MONTH_DAYS / max(float(days), 1.0 / 86_400)


def window_warning(days: float) -> str | None:
    """The headline warning when monthly figures extrapolate the window more than 10x (None otherwise)."""
    factor = extrapolation_factor(days)
    if factor <= WINDOW_WARNING_FACTOR:
        return None
    span = f"{days * 24:,.2f} hours" if days < 2 else f"{days:,.2f} days"
    return (f"the traffic window is only {span}: every monthly figure multiplies it {factor:,.0f}x and assumes the "
            "rest of the month looks like it. Replay a full week before acting on monthly figures.")


def _n(x: Any) -> int:
    return int(round(float(x or 0)))


def policy_assumptions(policy: dict[str, Any], candidate, days: float,
                       recorded_requests_by_model: dict[str, int] | None = None) -> list[str]:
    """Assumption lines for one policy record (summary.json fields) of ``candidate`` over a ``days``-long window.

    Reads ``token_translation``, ``moved`` (from the moves table), ``caching``, ``requests_unserved``,
    ``requests_imputed``, ``failed_attempts`` and the accuracy fields; ``recorded_requests_by_model`` (the baseline's
    requests per model) puts the volume added to each target in proportion.
    """
    out: list[str] = []
    moved = policy.get("moved") or {}
    methods = {k: _n(v) for k, v in (policy.get("token_translation") or {}).items() if _n(v)}
    changed = sum(methods.values())
    if changed:
        parts = ", ".join(f"{_METHOD_WORDS.get(m, m)} {c:,}" for m, c in sorted(methods.items(), key=lambda kv: -kv[1]))
        out.append(f"token translation of {changed:,} requests served by another model: {parts}")
    if _n(moved.get("requests")):
        n = _n(moved["requests"])
        in_ratio, out_ratio = moved.get("input_tokens_ratio"), moved.get("output_tokens_ratio")
        how = ("scaled like the input by the tokenizer ratio, then by the paired eval output-length ratio"
               if getattr(candidate, "output_tokens", "recorded") == "eval-ratio"
               else "scaled like the input by the tokenizer ratio (output text is not logged)")
        if in_ratio is not None:
            out.append(f"input tokens of the {n:,} moved requests: x{in_ratio:.3f} on their targets "
                       f"({_n(moved['input_tokens']):,} from {_n(moved['input_tokens_recorded']):,} recorded)")
        if out_ratio is not None:
            out.append(f"output tokens of the {n:,} moved requests: x{out_ratio:.3f} "
                       f"({_n(moved['output_tokens']):,} from {_n(moved['output_tokens_recorded']):,} recorded), {how}")
        cache = _n(moved.get("cache_tokens_recorded"))
        if cache and not getattr(candidate, "prompt_caching", None):
            out.append(f"cold cache on the targets: {cache:,} recorded cache-read/write tokens of moved requests "
                       "are billed as plain input")
        out.append(f"latency of the {n:,} moved requests: each target's fit on its recorded traffic "
                   "(ms per request + ms per output token), static over the window")
        for target, added in sorted((moved.get("requests_by_target") or {}).items()):
            before = (recorded_requests_by_model or {}).get(target, 0)
            share = f", +{added / before:.0%} of the {before:,} it served in the recording" if before else \
                ", which served none in the recording"
            out.append(f"provider rate limits at the new volume are not modelled: `{target}` receives {added:,} "
                       f"more requests{share}")
    out += tier_assumptions(policy.get("service_tiers"))
    if policy.get("caching") and _n(policy["caching"].get("requests_covered")):
        out.append(f"prompt caching simulated per serving model for {_n(policy['caching']['requests_covered']):,} "
                   "requests; a switched model starts cold")
        out += caching_assumptions(policy["caching"])
    unserved = _n(policy.get("requests_unserved"))
    if unserved:
        out.append(f"{unserved:,} requests served in the recording fail in the candidate (unserved, "
                   f"${float(policy.get('unserved_recorded_cost_usd') or 0):,.2f} recorded cost): not counted as "
                   "savings")
    imputed = _n(policy.get("requests_imputed"))
    if imputed:
        out.append(f"{imputed:,} requests recorded as failed and served by the candidate are priced from their "
                   "workflow's median tokens on the target (imputed)")
    if getattr(candidate, "bill_failed_attempts", False) and _n(policy.get("failed_attempts")):
        out.append(f"{_n(policy['failed_attempts']):,} failed attempts billed: input tokens at the attempted "
                   "model's price")
    if getattr(candidate, "budgets", None) or getattr(candidate, "rate_limits", None):
        out.append("budgets and rate limits are checked against the executed model, in fixed UTC windows")
    acc = policy.get("accuracy") or {}
    if policy.get("accuracy_delta_moved_pp") is not None and acc.get("n_paired"):
        out.append(f"accuracy from {_n(acc['n_paired']):,} paired eval samples covering "
                   f"{float(acc.get('coverage_share') or 0):.1%} of the moved requests, reweighted to the "
                   "production workflow mix")
    factor = extrapolation_factor(days)
    line = f"monthly figures scale the {days:,.2f}-day window {factor:,.2f}x to 30 days"
    if days < FULL_WEEK_DAYS:
        line += "; the window is shorter than a week, so it holds no full weekly pattern"
    out.append(line)
    return out


def tier_assumptions(tiers: dict[str, Any] | None) -> list[str]:
    """Lines for the requests a policy moved to another service tier (its ``service_tiers`` record)."""
    if not tiers:
        return []
    out = []
    by_tier: dict[str, list[dict[str, Any]]] = {}
    for row in tiers.get("by_tier") or []:
        by_tier.setdefault(row["service_tier"], []).append(row)
    for name, rows in sorted(by_tier.items()):
        n = sum(_n(r["requests"]) for r in rows)
        sources = sorted({s for r in rows for s in r.get("price_source") or []})
        line = (f"{name}: prices of the {name} tier for {n:,} requests recorded on the default tier "
                f"({'; '.join(sources) or 'no price source'})")
        if name == "batch":
            window = rows[0].get("completion_window") or "the batch window"
            line += (f"; their synchronous latency is left out of the latency percentiles (results within {window}); "
                     "they still count against the candidate's budgets and rate limits")
        else:
            line += "; latency kept as recorded (the provider publishes no figure)"
        out.append(line)
    if _n(tiers.get("batch_ineligible_requests")):
        out.append(f"{_n(tiers['batch_ineligible_requests']):,} requests matched a batch rule but are interactive "
                   "(workflow not marked interactive: false, or metadata says so): kept on the default tier")
    if "flex" in by_tier or _n(tiers.get("flex_unavailable_requests")):
        rate = float(tiers.get("flex_unavailable_rate") or 0.0)
        out.append(f"flex: {_n(tiers.get('flex_unavailable_requests')):,} requests refused with 429 and served on the "
                   f"default tier ({rate:.1%} service_tiers.flex_unavailable_rate; the provider publishes no rate)")
    return out


def caching_assumptions(caching: dict[str, Any]) -> list[str]:
    """One line per prompt-caching rule that covered requests: its mode, TTLs and breakpoints, and what it did."""
    out = []
    for r in caching.get("by_rule") or []:
        if not _n(r.get("requests")):
            continue
        if r.get("breakpoints"):
            how = "breakpoints " + ", ".join(f"at block {b['at']} ({b['ttl']})" for b in r["breakpoints"]) + \
                " (longer TTLs first, each looking back 20 blocks)"
        else:
            how = f"TTL {r['ttl']}"
        line = (f"prompt caching rule {r['rule']} ({r['mode']}, {how}): {_n(r['requests']):,} requests, "
                f"{_n(r['cache_read_tokens']):,} cache-read tokens, {_n(r['cache_write_tokens']):,} cache-write "
                f"tokens (of which {_n(r['cache_write_1h_tokens']):,} written with a 1-hour TTL), priced by the "
                "model's dated cache rules")
        if float(r.get("cache_storage_usd") or 0.0) > 0:
            line += f"; cached-content storage ${float(r['cache_storage_usd']):,.2f} billed per token-hour"
        out.append(line)
    return out


def plan_assumptions(plan: dict[str, Any]) -> list[str]:
    """Lines a plan adds to its replay's own (summary.json ``plan``): what it combined, how its parts were judged
    compatible, and the interaction the combined replay measured."""
    components = plan.get("components") or []
    if not components:
        return []
    names = ", ".join(f"`{c['name']}` ({c['source']})" for c in components)
    out = [f"the plan replays {len(components)} components as one candidate: {names}; no request is claimed by two "
           "components' rules of the same kind (routing and tiers, budgets, rate limits, prompt caching)"]
    interaction = plan.get("interaction_monthly_usd")
    if interaction is not None:
        out.append(f"the combined replay saves ${float(plan['monthly_savings_usd']):,.2f}/month against "
                   f"${float(plan['sum_of_parts_monthly_savings_usd']):,.2f}/month for the parts replayed alone: "
                   f"{'+' if interaction >= 0 else '-'}${abs(float(interaction)):,.2f}/month from their interactions "
                   "(budgets, rate limits and caches see the combined traffic)")
    unjudged = [c["name"] for c in components if c.get("monthly_savings_ci95") is None]
    if unjudged:
        out.append(f"{', '.join(f'`{n}`' for n in unjudged)}: savings simulated on the recorded traffic without an "
                   "interval of their own; the plan's interval covers them")
    if plan.get("skipped"):
        out.append(f"{len(plan['skipped']):,} candidates or opportunities left out of the plan (plan.skipped says "
                   "why for each)")
    return out


def moved_summary(moves) -> dict[str, Any]:
    """The ``moved`` block of a policy record from its moves table (``simulator.summary.moves``)."""
    if moves is None or moves.empty:
        return {"requests": 0}
    from simulator.summary.moves import group_sums

    t = moves[["requests", "input_tokens_recorded", "input_tokens", "output_tokens_recorded", "output_tokens",
               "cache_tokens_recorded", "recorded_cost_usd", "cost_usd"]].sum()

    def ratio(a: str, b: str) -> float | None:
        return round(float(t[a] / t[b]), 6) if t[b] else None

    targets, requests = group_sums(moves, ["to_model"], ["requests"])
    by_target = {target: n for (target,), n in zip(targets, requests[:, 0])}
    return {
        "requests": _n(t["requests"]),
        "input_tokens_recorded": _n(t["input_tokens_recorded"]), "input_tokens": _n(t["input_tokens"]),
        "input_tokens_ratio": ratio("input_tokens", "input_tokens_recorded"),
        "output_tokens_recorded": _n(t["output_tokens_recorded"]), "output_tokens": _n(t["output_tokens"]),
        "output_tokens_ratio": ratio("output_tokens", "output_tokens_recorded"),
        "cache_tokens_recorded": _n(t["cache_tokens_recorded"]),
        "recorded_cost_usd": round(float(t["recorded_cost_usd"]), 6) + 0.0,
        "cost_usd": round(float(t["cost_usd"]), 6) + 0.0,
        "requests_by_target": {str(k): _n(v) for k, v in by_target.items()},
    }
