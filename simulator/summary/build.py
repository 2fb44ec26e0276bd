"""summary.json from the accumulators: the one place every engine's summary is assembled.

Every output (report, gateway configs, CI gate files) is built from this summary, so every engine can write every
output, and privacy and escaping rules hold once for all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.summary import metrics, privacy
from simulator.summary.accumulate import BREAKDOWNS, BaselineAccumulator, PolicyAccumulator

SCHEMA_VERSION = 1
DRIFT_FLAG_PCT = 1.0


def pricing_drift(acc: BaselineAccumulator, catalog) -> list[dict[str, Any]]:
    """Per model: catalog cost of the recorded requests vs their recorded ``cost_usd`` (most expensive first)."""
    labels, sums = acc.per_model.sorted()
    models = []
    for model, (requests, cost, rec, cat_on_rec, with_rec) in zip(labels, sums):
        rec_value = float(rec) if with_rec > 0 else None
        drift = 100.0 * (rec - cat_on_rec) / cat_on_rec if rec_value is not None and cat_on_rec else None
        models.append({
            "model": str(model), "catalog": catalog.resolve(str(model)).label, "requests": int(requests),
            "cost_usd": metrics.r6(cost), "recorded_cost_usd": metrics.r6(rec_value) if rec_value is not None else None,
            "drift_pct": round(drift, 4) + 0.0 if drift is not None else None,
            "flagged": bool(drift is not None and abs(drift) > DRIFT_FLAG_PCT),
        })
    models.sort(key=lambda m: (-m["cost_usd"], m["model"]))
    return models


def traffic_counts(counts: dict[str, int], reasons: dict[str, int], notes: list[str]) -> dict[str, Any]:
    """Row counts for summary.json ``traffic``, with rows that are not model calls by design (agent and tool spans,
    gateway cache hits; still rejected rows) and the ingest notes (assumptions the adapters made)."""
    from simulator.io.adapters import not_model_calls

    out: dict[str, Any] = dict(counts)
    by_design = sum(n for r, n in reasons.items() if not_model_calls([r]))
    if by_design:
        out["rows_not_model_calls"] = by_design
    if notes:
        out["notes"] = list(notes)
    return out


def data_quality(counts: dict[str, int], reasons: dict[str, int], drift_models: list[dict[str, Any]],
                 drift_error: str | None = None) -> dict[str, Any]:
    """The report's data-quality section: row counts, reject reasons, pricing drift per model."""
    out: dict[str, Any] = {**{k: v for k, v in counts.items() if k != "notes"}, "reasons": sorted(([r, n] for r, n in reasons.items()),
                                                       key=lambda kv: (-kv[1], kv[0]))}
    if drift_error is not None:
        out["drift_error"] = drift_error
    out["drift_models"] = [m for m in drift_models if m.get("drift_pct") is not None]
    out["drift_flagged"] = [m for m in drift_models if m.get("flagged")]
    out["drift_flag_pct"] = DRIFT_FLAG_PCT
    return out


def breakdown_table(by: str, table, k: int | None) -> list[dict[str, Any]]:
    labels, sums = table
    requests = sums[:, 0].astype(np.int64)
    if k is None:
        return metrics.breakdown_rows(by, labels, requests, sums[:, 1])
    return metrics.breakdown_rows(by, labels, requests, sums[:, 1], sums[:, 2 + 2 * k], sums[:, 3 + 2 * k])


def policy_summary(scenario, cand, acc: PolicyAccumulator, state_reports: dict[str, Any], before: dict[str, Any],
                   base: BaselineAccumulator, facts, tables, k: int, eval_data, translator=None,
                   variants: dict | None = None) -> dict[str, Any]:
    """One entry of summary.json ``policies``."""
    from simulator.summary.fidelity import finish_policy, policy_interval
    from simulator.summary.sensitivity import at_cost, cache_sensitivity

    after = acc.stats()
    days = facts.days
    labels, block_sums = acc.blocks.sorted()
    sums = block_sums[:, 0] if len(block_sums) else np.zeros(0)
    if scenario.bootstrap.unit == "session":
        interval = policy_interval(np.zeros(0, np.int64), np.zeros(0), facts.ts_min or 0, facts.ts_max or 0,
                                   scenario, acc.moves, translator, session_totals=sums)
    else:
        interval = policy_interval(labels.astype(np.int64), sums, facts.ts_min or 0, facts.ts_max or 0, scenario,
                                   acc.moves, translator)
    policy = metrics.policy_record(cand.name, facts.n, acc.cost, base.cost, days, interval["monthly_savings_ci95"],
                                   acc.counts, before, after, acc.translation, savings_usd=acc.savings,
                                   money=acc.money)
    policy.update({
        "budgets": privacy.budget_rows(state_reports.get("budgets", []), cand, scenario.non_personal_metadata),
        "rate_limits": state_reports.get("rate_limits", []),
        "breakdowns": {by: breakdown_table(by, tables[by], k) for by in BREAKDOWNS},
    })
    policy.update(acc.extras)
    from simulator.summary.tiers import tier_report

    tiers = tier_report(acc, scenario.service_tiers.flex_unavailable_rate)
    if tiers is not None:
        policy["service_tiers"] = tiers
    for key in ("caching", "session_kill"):
        if key in state_reports:
            policy[key] = state_reports[key]
    policy["premium_share_by_day"] = acc.premium_share_by_day()
    if eval_data is not None:
        import pandas as pd

        from simulator.evals.policy import accuracy_from_moves

        traffic = (pd.Series(facts.workflows).sort_values(ascending=False, kind="stable")
                   .rename_axis("workflow_tag").reset_index(name="requests"))
        policy.update(accuracy_from_moves(acc.moves_table(), traffic, facts.prompts, cand, eval_data, scenario))
    gates = metrics.candidate_gates(scenario, cand)
    policy["gates"] = metrics.evaluate_gates(policy, gates, before)
    extra = []
    moves = acc.moves
    uncertain = len(moves) and ((moves["cost_low_usd"] != moves["cost_usd"]).any()
                                or (moves["cost_high_usd"] != moves["cost_usd"]).any())
    if variants and policy.get("caching") and uncertain:
        ends = {end: {**at_cost(policy, cost, base.cost, days, cost_usd=acc.cost, savings_usd=acc.savings),
                      "caching": report}
                for end, (cost, report) in variants.items()}
        extra.append(cache_sensitivity(policy, ends["low"], ends["high"]))
    model_labels, model_sums = base.per_model.sorted()
    by_model = {str(m): int(r[0]) for m, r in zip(model_labels, model_sums)}
    return finish_policy(policy, moves=moves, interval=interval, candidate=cand, days=days,
                         candidate_cost_usd=acc.cost, base_cost_usd=base.cost, recorded_requests_by_model=by_model,
                         savings_usd=acc.savings,
                         evaluate_gates=lambda rec: metrics.evaluate_gates(rec, gates, before),
                         extra_sensitivity=[e for e in extra if e])


def build_summary(scenario, facts, counts: dict[str, int], base: BaselineAccumulator, candidates,
                  accs: list[PolicyAccumulator], state_reports: list[dict[str, Any]], tables, eval_data,
                  quality: dict[str, Any], translator=None, variants: dict | None = None) -> dict[str, Any]:
    """summary.json (see the README's "Outputs" section). ``variants``: per caching candidate index, the cost and
    caching report at the low and high ends of the translation intervals (the sensitivity check)."""
    from simulator.facts import summary_value
    from simulator.summary.drift import alias_drift

    before = base.stats()
    policies = [policy_summary(scenario, cand, accs[k], state_reports[k], before, base, facts, tables, k, eval_data,
                               translator, (variants or {}).get(k))
                for k, cand in enumerate(candidates)]
    days = facts.days
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "traffic": {**{k: v for k, v in counts.items() if k != "notes"}, **summary_value(facts),
                    **({"notes": counts["notes"]} if counts.get("notes") else {})},
        "baseline": {
            "requests": facts.n,
            "cost_usd": metrics.r6(base.cost),
            "recorded_cost_usd": metrics.r6(base.recorded) if base.has_recorded else None,
            "monthly_cost_usd": metrics.r6(base.cost * metrics.MONTH_DAYS / max(days, 1e-9)),
            **{k: v for k, v in before.items() if k != "cost_usd"},
            "premium_models": sorted(base.premium),
            "breakdowns": {by: breakdown_table(by, tables[by], None) for by in BREAKDOWNS},
            "premium_share_by_day": base.premium_share_by_day(),
        },
        "policies": policies,
        "data_quality": quality,
    }
    drift = alias_drift(facts.drift_sums) if facts.drift_sums is not None else None
    if drift:
        summary["drift"] = drift
    if eval_data is not None:
        from simulator.evals.policy import research_curves

        summary["evals"] = {"rows_read": eval_data.rows_read, "rows_loaded": eval_data.rows_loaded,
                            "rows_rejected": eval_data.rows_rejected}
        curves = research_curves([acc.moves_table() for acc in accs], eval_data.samples)
        if curves:
            summary["accuracy"] = curves
    return metrics.clean(summary)
