"""Opportunities found without a candidate written for them: cheaper models per workflow, and prompt caching per
workflow and model.

Both are found by *probes*: internal candidates replayed by the same core in the same pass as the scenario's own
candidates, so every figure (savings with interval, accuracy on the moved requests, gates, cache hits) is what a
written candidate would show.

* Model probes: for each workflow with eval samples, each eval model that could be cheaper for it (its catalog
  price on a typical request of the workflow is below that of some model serving it) becomes a one-rule
  candidate moving the workflow to it. The opportunity is the probe with the most savings whose gates all pass (the
  accuracy gate holds per moved workflow, at the scenario's margin or ``opportunities.max_accuracy_drop_pp``).
  A workflow without a passing probe is "label N samples to decide", N from the power analysis of its closest probe,
  or, without any paired evidence in the workflow, from the disagreement rate pooled over the other workflows.
* Cache probes: one candidate per (caching mode, TTL) a provider offers (5 minutes, 1 hour, 24 hours where allowed;
  Gemini also explicit cached contents at 1 hour), each covering the models that offer it; reported per (workflow,
  model), with the prefix sizes against the model's minimum and the tokenizer's count interval.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from simulator.routing.scenario import CacheRule, Candidate, Gates, Rule, Target, When
from simulator.summary.metrics import MONTH_DAYS, r6
from simulator.summary.privacy import UNTAGGED

CACHE_TTLS = ("5m", "1h", "24h")
_GROUP_SEP = "\x1f"


def slug(text: str, limit: int = 24) -> str:
    out = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return (out or "x")[:limit].strip("-")


@dataclasses.dataclass(frozen=True)
class ModelProbe:
    workflow: str
    target: str
    candidate: Candidate


@dataclasses.dataclass(frozen=True)
class CacheProbe:
    mode: str
    ttl: str
    models: tuple[str, ...]
    candidate: Candidate


# -- model opportunities -------------------------------------------------------------------------------------------
def margin_pp(scenario) -> float:
    """The accuracy margin opportunities are held to: the scenario's gate, else ``opportunities`` default."""
    configured = scenario.gates.max_accuracy_drop_pp
    return float(configured if configured is not None else scenario.opportunities.max_accuracy_drop_pp)


def served_models(facts, workflow: str) -> list[str]:
    """Models that served ``workflow`` successfully in the traffic (from the facts' token samples)."""
    from simulator.facts import ANY

    return sorted({m for (w, m) in facts.token_medians if w == workflow and m != ANY})


def estimated_cost(catalog, model: str, ts_ns: int, tokens: tuple[int, int]) -> float:
    """Catalog price of one typical request (recorded token counts; a pre-filter, not a figure)."""
    return float(catalog.cost_usd([model], [ts_ns], [tokens[0]], [tokens[1]])[0])


def model_probes(scenario, facts, samples: pd.DataFrame | None, catalog, taken: set[str]) -> list[ModelProbe]:
    """The model probes of a run (see the module docstring); ``taken`` are names already used by candidates."""
    from simulator.evals.impact import match_eval_model

    if samples is None or not scenario.opportunities.models or facts.ts_min is None:
        return []
    eval_models = sorted(samples["model"].unique())
    priceable = []
    for m in eval_models:
        try:
            catalog.resolve(m)
        except Exception:  # noqa: BLE001 - an eval model without a price cannot be a target
            continue
        priceable.append(m)
    gates = scenario.gates.model_copy(update={"max_accuracy_drop_pp": margin_pp(scenario)})
    probes = []
    for workflow in sorted(w for w in facts.workflows if w != UNTAGGED):
        served = served_models(facts, workflow)
        in_workflow = set(samples.loc[samples["workflow_tag"] == workflow, "model"].unique())
        if not served or not in_workflow:
            continue
        own = {m: facts.typical_tokens(workflow, m) for m in served}
        for target in priceable:
            if target not in in_workflow or served == [target]:
                continue
            if not any(match_eval_model(m, eval_models) for m in served if m != target):
                continue  # no paired evidence possible: the workflow is listed as "label samples"
            if not any(estimated_cost(catalog, target, facts.ts_min, own[m])
                       < estimated_cost(catalog, m, facts.ts_min, own[m]) for m in served if m != target):
                continue  # not cheaper than any model serving the workflow today (at its typical request)
            name = f"opp-{slug(workflow)}-to-{slug(target.split('/', 1)[-1])}"
            while name in taken:
                name += "-x"
            taken.add(name)
            moved = [m for m in served if m != target]  # the gateway matches the requested model: name them
            rule = Rule(id=f"opportunity-{slug(workflow, 40)}",
                        when=When(models=moved, metadata={"workflow_tag": workflow}),
                        load_balance_targets=[Target(target=target, weight=100)])
            cand = Candidate(name=name, description=f"opportunity: {workflow} to {target}", rules=[rule],
                             gates=gates)
            probes.append(ModelProbe(workflow, target, cand))
    return probes


def _workflow_gate(policy: dict, workflow: str) -> dict | None:
    for entry in (policy.get("accuracy") or {}).get("by_workflow", []):
        if entry.get("workflow_tag") == workflow:
            return entry
    return None


def pooled_variance(samples: pd.DataFrame) -> float | None:
    """Per-sample variance of paired correctness differences, pooled over every (workflow, model pair) with paired
    samples: what a workflow without evidence is assumed to show."""
    if samples is None or not len(samples):
        return None
    frame = samples[["workflow_tag", "sample_id", "model", "correct"]].dropna()
    # the (workflow, sample) x model table of first outcomes, rows and columns sorted (a pivot table's layout)
    (wf, wfs), (sid, sids), (col, models) = (pd.factorize(frame[c], sort=True)
                                             for c in ("workflow_tag", "sample_id", "model"))
    _, row = np.unique(wf.astype(np.int64) * len(sids) + sid, return_inverse=True)
    row = row.reshape(-1)
    _, first = np.unique(row * len(models) + col, return_index=True)  # each cell's first row
    wide = np.full((int(row.max()) + 1 if len(row) else 0, len(models)), np.nan)
    wide[row[first], col[first]] = frame["correct"].to_numpy(dtype=np.float64)[first]
    diffs = []
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            both = ~np.isnan(wide[:, i]) & ~np.isnan(wide[:, j])
            if both.any():
                diffs.append(wide[both, j] - wide[both, i])
    if not diffs:
        return None
    d = np.concatenate(diffs)
    return float(np.var(d)) if len(d) > 1 else None


def model_opportunities(scenario, facts, probes: list[ModelProbe], policies: dict[str, dict], base_breakdown: list,
                        samples: pd.DataFrame | None) -> dict[str, Any]:
    """The ``opportunities`` section of summary.json from the probes' policy records (by candidate name)."""
    from simulator.evals.gates import samples_needed

    margin = margin_pp(scenario)
    out: dict[str, Any] = {"margin_pp": margin, "by_workflow": []}
    if samples is None:
        out["note"] = "no eval samples: add an eval set (evals:) to find cheaper models per workflow"
        return out
    spend = {r["workflow_tag"]: r for r in base_breakdown}
    variance = pooled_variance(samples)
    by_workflow: dict[str, list[ModelProbe]] = {}
    for probe in probes:
        by_workflow.setdefault(probe.workflow, []).append(probe)
    for workflow in sorted(w for w in facts.workflows if w != UNTAGGED):
        row = spend.get(workflow, {})
        entry: dict[str, Any] = {"workflow_tag": workflow, "requests": int(facts.workflows[workflow]),
                                 "cost_usd": row.get("cost_usd"), "served_models": served_models(facts, workflow)}
        tried = []
        for probe in by_workflow.get(workflow, []):
            p = policies[probe.candidate.name]
            wf = _workflow_gate(p, workflow) or {}
            gate = wf.get("gate") or {}
            failed = [g for g in p["gates"] if not g["passed"]]
            tried.append({"target": probe.target, "candidate": probe.candidate.name,
                          "monthly_savings_usd": p["monthly_savings_usd"],
                          "monthly_savings_ci95": p["monthly_savings_ci95"],
                          "accuracy_delta_pp": wf.get("accuracy_delta_pp"),
                          "accuracy_delta_ci95": wf.get("accuracy_delta_ci95"),
                          "n_paired": wf.get("n_paired"), "coverage_share": wf.get("coverage_share"),
                          "verdict": gate.get("verdict") or ("pass" if not failed else "fail"),
                          "n_more": gate.get("n_more"),
                          "passed": not failed and p["monthly_savings_usd"] > 0,
                          "detail": "; ".join(g["detail"] for g in failed) or gate.get("detail", "")})
        tried.sort(key=lambda t: (-t["monthly_savings_usd"], t["target"]))
        passing = [t for t in tried if t["passed"]]
        entry["tried"] = tried
        if passing:
            best = passing[0]
            probe = next(p for p in by_workflow[workflow] if p.candidate.name == best["candidate"])
            entry.update(status="move", target=best["target"], candidate=best["candidate"],
                         monthly_savings_usd=best["monthly_savings_usd"],
                         monthly_savings_ci95=best["monthly_savings_ci95"],
                         accuracy_delta_pp=best["accuracy_delta_pp"], accuracy_delta_ci95=best["accuracy_delta_ci95"],
                         evidence=f"{best['n_paired']} paired eval samples in {workflow}; {best['detail']}",
                         rule=probe.candidate.rules[0].model_dump(mode="json", exclude_defaults=True))
        else:
            undecided = [t for t in tried if t["verdict"] == "undecided" and t["n_more"]]
            if undecided:
                closest = min(undecided, key=lambda t: (t["n_more"], t["target"]))
                entry.update(status="label", samples_needed=int(closest["n_more"]), target=closest["target"],
                             evidence=f"closest: {closest['target']}, {closest['detail']}")
            elif tried:
                entry.update(status="keep", evidence="no cheaper model with eval evidence passes: " +
                             " | ".join(f"{t['target']}: {t['verdict']}" for t in tried))
            else:
                n = (samples_needed(0.0, margin / 100.0, variance) if variance is not None else math.inf)
                entry.update(status="label", samples_needed=int(math.ceil(n)) if math.isfinite(n) else None,
                             evidence="no paired eval samples of a served and a cheaper model in this workflow; "
                                      + ("N assumes the disagreement rate pooled over the other workflows"
                                         if variance is not None else "no paired samples anywhere to size N"))
        out["by_workflow"].append(entry)
    out["by_workflow"].sort(key=lambda e: (-(e.get("monthly_savings_usd") or 0.0), e["workflow_tag"]))
    return out


# -- cache opportunities ------------------------------------------------------------------------------------------
def _ttl_text(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def cache_probes(scenario, models: list[str], rules, ts_ns: int | None, taken: set[str]) -> list[CacheProbe]:
    """One probe per (mode, TTL) the served models' providers offer (see the module docstring)."""
    from simulator.errors import ScenarioError

    if not scenario.opportunities.cache or ts_ns is None:
        return []
    at = pd.Timestamp(ts_ns, tz="UTC")
    options: dict[tuple[str, str], list[str]] = {}
    for model in models:
        try:
            rule = rules.resolve(model, at=at)
        except ScenarioError:
            continue  # no caching rules for this provider or model: nothing to probe
        ttls = [_ttl_text(t) for t in rule.ttls_ms]
        if rule.mode == "automatic":  # the provider's own TTL (what it does anyway) and extended retention
            wanted = sorted({_ttl_text(rule.default_ttl_ms)} | ({"24h"} & set(ttls)))
        else:
            wanted = [t for t in ttls if t in CACHE_TTLS] or [_ttl_text(rule.default_ttl_ms)]
        for ttl in wanted:
            options.setdefault((rule.mode, ttl), []).append(model)
        if rule.mode == "automatic" and rule.storage_mtok_hour and "1h" in ttls:
            options.setdefault(("explicit", "1h"), []).append(model)  # Gemini explicit cached contents
    probes = []
    for (mode, ttl), ms in sorted(options.items()):
        name = f"cache-opp-{mode}-{ttl}"
        while name in taken:
            name += "-x"
        taken.add(name)
        cand = Candidate(name=name, description=f"cache opportunity: {mode} caching, {ttl}",
                         prompt_caching=[CacheRule(when=When(models=sorted(ms)), mode=mode, ttl=ttl)])
        probes.append(CacheProbe(mode, ttl, tuple(sorted(ms)), cand))
    return probes


def actionable(option: dict, rule) -> bool:
    """Whether a client can choose this option: explicit caching, or a retention longer than the provider's own."""
    return option["mode"] == "explicit" or option["ttl"] != _ttl_text(rule.default_ttl_ms)


def _action(mode: str, ttl: str, provider_mode: str) -> str:
    if mode == "explicit" and provider_mode == "automatic":
        return f"create an explicit cached content for the prefix (TTL {ttl}); storage is billed per token-hour"
    if mode == "explicit":
        return f"mark the prefix with cache_control breakpoints (TTL {ttl})"
    return f"set prompt_cache_retention: {ttl}"


def cache_opportunities(probes: list[CacheProbe], reports: dict[str, dict], days: float, rules,
                        ts_ns: int | None, translator=None) -> dict[str, Any]:
    """The ``cache_opportunities`` section: per (workflow, model), each probe's hit rate and savings; whether the
    prefixes meet the model's minimum, with the tokenizer's count interval (``translator``: registry and
    calibration of the run)."""
    from simulator.tokens.intervals import CountInterval, count_interval

    scale = MONTH_DAYS / max(days, 1e-9)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    kept: dict[str, int] = {}  # per model: every probe covering it sees the same rows
    for probe in probes:
        report = reports.get(probe.candidate.name) or {}
        for model, n in (report.get("kept_by_model") or {}).items():
            kept[model] = max(kept.get(model, 0), int(n))
        for r in report.get("by_workflow_model", []):
            workflow, model = r["workflow_model"].split(_GROUP_SEP, 1)
            entry = rows.setdefault((workflow, model), {"workflow_tag": workflow, "model": model, "options": []})
            for key in ("requests", "prefix_rows", "distinct_prefixes", "below_minimum_requests",
                        "borderline_requests", "prefix_tokens_sum"):
                entry[key] = max(entry.get(key, 0), int(r.get(key) or 0))
            option = {"mode": probe.mode, "ttl": probe.ttl, "hit_rate": r.get("hit_rate"),
                      "cache_read_tokens": r.get("cache_read_tokens"), "cache_write_tokens": r.get("cache_write_tokens"),
                      "savings_usd": r.get("savings_usd"),
                      "monthly_savings_usd": r6(r.get("savings_usd_unrounded", r.get("savings_usd") or 0) * scale)}
            if r.get("cache_storage_usd") is not None:
                option["storage_usd"] = r.get("cache_storage_usd")
            entry["options"].append(option)
    out = []
    at = pd.Timestamp(ts_ns, tz="UTC") if ts_ns is not None else None
    for (workflow, model), entry in sorted(rows.items()):
        rule = rules.resolve(model, at=at)
        interval = (count_interval(model, translator.registry, translator.calibration) if translator is not None
                    else CountInterval(1.0, 1.0, "unknown"))
        with_prefix = entry.pop("prefix_rows")
        total = entry.pop("prefix_tokens_sum")
        mean = total / with_prefix if with_prefix else None
        below, border = entry["below_minimum_requests"], entry["borderline_requests"]
        if not with_prefix:
            meets = "no prefix information"
        elif border:
            meets = "borderline"
        elif below == 0:
            meets = "yes"
        elif below >= with_prefix:
            meets = "no"
        else:
            meets = "partly"
        entry.update(requests_with_prefix=with_prefix, recurring_requests=max(with_prefix - entry["distinct_prefixes"], 0),
                     prefix_tokens_mean=round(mean, 1) if mean is not None else None, min_tokens=rule.min_tokens,
                     meets_minimum=meets, token_count_basis=interval.basis,
                     token_count_interval=[round(interval.low, 4), round(interval.high, 4)])
        entry["options"].sort(key=lambda o: (-(o["monthly_savings_usd"] or 0.0), o["mode"], o["ttl"]))
        for o in entry["options"]:
            o["actionable"] = actionable(o, rule)
            if not o["actionable"]:
                o["note"] = ("the provider caches automatically with this TTL already: savings here mean recorded "
                             "requests missed a cache they could have hit (keep prefixes byte-stable, set "
                             "prompt_cache_key)")
        best = next((o for o in entry["options"] if o["actionable"]), None)
        if best is not None and (best["monthly_savings_usd"] or 0) > 0:
            entry["best"] = {"mode": best["mode"], "ttl": best["ttl"], "monthly_savings_usd": best["monthly_savings_usd"],
                             "action": _action(best["mode"], best["ttl"], rule.mode)}
        out.append(entry)
    out.sort(key=lambda e: (-((e.get("best") or {}).get("monthly_savings_usd") or 0.0), e["workflow_tag"], e["model"]))
    return {"note": "simulated on the recorded traffic per workflow and serving model, without any candidate; "
                    "requests that already recorded cache activity keep it and are not counted",
            "requests_kept_recorded_cache": sum(kept.values()), "by_workflow_model": out}


__all__ = ["CacheProbe", "ModelProbe", "cache_opportunities", "cache_probes", "margin_pp", "model_opportunities",
           "model_probes", "pooled_variance", "served_models"]
