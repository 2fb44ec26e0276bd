"""The library API behind the CLI: ``run`` a scenario, ``identity_replay`` traffic. No click in here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.summary import metrics
from simulator.summary.fidelity import finish_policy, minute_sums, policy_interval
from simulator.summary.moves import accuracy_moves, moves_from_outcome
from simulator.summary.sensitivity import cache_sensitivity
from simulator.evals.policy import accuracy_from_moves, load_evals
from simulator.state.cache_replay import CacheSimulator
from simulator.pricing.catalog import Catalog
from simulator.core import Outcome, Prepared, check_candidate_targets, identity_outcome, simulate
from simulator.routing.scenario import Candidate, Scenario, load_scenario
from simulator.io.traffic import Traffic, load_traffic
from simulator.tokens.translator import Translator

SCHEMA_VERSION = 1
DRIFT_FLAG_PCT = 1.0



@dataclasses.dataclass
class RunResult:
    """What a run produced: the summary (summary.json), per-candidate outcomes and the loaded traffic."""

    scenario: Scenario
    summary: dict[str, Any]
    traffic: Traffic
    prepared: Prepared
    baseline: Outcome
    outcomes: list[Outcome]
    evals: Any = None

    @property
    def gates_passed(self) -> bool:
        return all(g["passed"] for p in self.summary["policies"] for g in p["gates"])


def _catalog(scenario: Scenario | None, pricing: str | Path | None = None) -> Catalog:
    if scenario is not None:
        return Catalog.load(scenario.path(scenario.pricing), scenario.models)
    return Catalog.load(pricing)


def identity_replay(traffic: Traffic, catalog: Catalog) -> dict[str, Any]:
    """Reprice every request as recorded and compare with the recorded cost_usd, per model."""
    p = Prepared(traffic, catalog)
    recorded = p.recorded_cost
    has = np.isfinite(recorded)
    models = []
    for code, model in enumerate(p.vocab):
        sel = p.model == code
        if not sel.any():
            continue
        cost = float(p.baseline_cost[sel].sum())
        rec_sel = sel & has
        rec = float(recorded[rec_sel].sum()) if rec_sel.any() else None
        cat_on_rec = float(p.baseline_cost[rec_sel].sum())
        drift = 100.0 * (rec - cat_on_rec) / cat_on_rec if rec is not None and cat_on_rec else None
        models.append({
            "model": model, "catalog": catalog.resolve(model).label, "requests": int(sel.sum()),
            "cost_usd": metrics.r6(cost), "recorded_cost_usd": metrics.r6(rec) if rec is not None else None,
            "drift_pct": round(drift, 4) + 0.0 if drift is not None else None,
            "flagged": bool(drift is not None and abs(drift) > DRIFT_FLAG_PCT),
        })
    models.sort(key=lambda m: (-m["cost_usd"], m["model"]))
    return {
        **traffic.counts(),
        "cost_usd": metrics.r6(p.baseline_cost.sum()),
        "recorded_cost_usd": metrics.r6(recorded[has].sum()) if has.any() else None,
        "drift_flag_pct": DRIFT_FLAG_PCT,
        "models": models,
    }


def resolve_candidates(scenario: Scenario) -> list[Candidate]:
    """Candidates with ``truefoundry_config:`` files read into rules/budgets/rate limits."""
    out = []
    for cand in scenario.candidates:
        if cand.truefoundry_config:
            from simulator.outputs.gateway_config import candidate_from_config

            cand = candidate_from_config(cand, scenario.path(cand.truefoundry_config))
        out.append(cand)
    return out


def run(
    scenario: Scenario | str | Path,
    *,
    traffic: Sequence[str | Path] | None = None,
    evals: Sequence[str | Path] | None = None,
    progress=None,
) -> RunResult:
    """Replay the scenario's traffic through its candidates; returns the summary and per-request outcomes.

    ``progress(items, label)`` may wrap the candidate loop (the CLI passes a progress bar on a terminal).
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    catalog = _catalog(scenario)
    paths = list(traffic) if traffic else scenario.paths("traffic")
    loaded = load_traffic(paths, adapter=scenario.adapter, mapping=scenario.columns or None,
                          timezone=scenario.timezone)
    p = Prepared(loaded, catalog, seed=scenario.seed, outages=tuple(scenario.outages))
    candidates = resolve_candidates(scenario)
    for cand in candidates:
        check_candidate_targets(p, cand)
    eval_paths = list(evals) if evals else scenario.paths("evals")
    eval_data = load_evals(eval_paths, p) if eval_paths else None
    translator = Translator(scenario, p, eval_data.samples if eval_data is not None else None)
    base = identity_outcome(p)
    premium = metrics.premium_models(p, scenario.premium_models)
    before = metrics.outcome_stats(p, base, premium)
    cache_sim = CacheSimulator(scenario)
    steps = progress(candidates, "replaying candidates") if progress else candidates
    outcomes = [simulate(p, cand, translator, cache_sim) for cand in steps]
    by_model = {r["model"]: r["requests"] for r in metrics.breakdown(p, base, None, "model")}
    policies = [_policy(p, scenario, cand, o, base, before, premium, eval_data, translator, cache_sim, by_model)
                for cand, o in zip(candidates, outcomes)]
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "traffic": metrics.traffic_block(p),
        "baseline": {
            "requests": p.n,
            "cost_usd": metrics.r6(base.cost_usd.sum()),
            "recorded_cost_usd": (metrics.r6(np.nansum(p.recorded_cost))
                                  if np.isfinite(p.recorded_cost).any() else None),
            "monthly_cost_usd": metrics.r6(base.cost_usd.sum() * metrics.MONTH_DAYS / max(
                metrics.window_days(p.ts), 1e-9)),
            **{k: v for k, v in before.items() if k != "cost_usd"},
            "premium_models": sorted(premium),
            "breakdowns": {by: metrics.breakdown(p, base, None, by) for by in metrics.BREAKDOWNS},
        },
        "policies": policies,
    }
    f = p.traffic.frame
    drift = alias_drift(alias_drift_sums(f["requested_model"].to_numpy(dtype=object), f["model"].to_numpy(dtype=object),
                                         p.ts, p.inp, p.out, p.status))
    if drift:
        summary["drift"] = drift
    if eval_data is not None:
        summary["evals"] = {"rows_read": eval_data.rows_read, "rows_loaded": eval_data.rows_loaded,
                            "rows_rejected": eval_data.rows_rejected}
        curves = research_curves([accuracy_moves(moves_from_outcome(p, o, base.cost_usd)) for o in outcomes],
                                 eval_data.samples)
        if curves:
            summary["accuracy"] = curves
    return RunResult(scenario, metrics.clean(summary), loaded, p, base, outcomes, eval_data)


def research_curves(moves_list: list[pd.DataFrame], samples: pd.DataFrame) -> dict[str, Any] | None:
    """RouteLLM/RouterBench-comparable figures for each (workflow, strong -> weak) move with paired evals:
    accuracy of the random and oracle routers as the weak share grows, APGR, CPT(50%), CPT(80%), AIQ."""
    from simulator.evals.curves import strong_weak_curves
    from simulator.evals.impact import match_eval_model

    models = sorted(samples["model"].unique())
    seen, rows = set(), []
    for moves in moves_list:
        for m in moves.itertuples(index=False):
            strong, weak = match_eval_model(m.from_model, models), match_eval_model(m.to_model, models)
            key = (m.workflow_tag, strong, weak)
            if not strong or not weak or key in seen:
                continue
            seen.add(key)
            try:
                result = strong_weak_curves(samples, strong, weak, workflow_tag=m.workflow_tag)
            except Exception:  # noqa: BLE001 - no paired samples in this workflow: nothing to compare
                continue
            rows.append({"workflow_tag": m.workflow_tag, "strong": strong, "weak": weak, "n_paired": result["n"],
                         "accuracy_strong": result["strong"], "accuracy_weak": result["weak"],
                         **{f"{curve}_{k}": v for curve, mets in result["metrics"].items()
                            for k, v in mets.items()},
                         **{f"aiq_{curve}": v for curve, v in result["aiq"].items()}})
    if not rows:
        return None
    return {"note": "strong/weak curves on paired eval samples (random and oracle routers); APGR and CPT on the "
                    "monotone hull, AIQ on the convex hull, as RouteLLM and RouterBench define them",
            "curves": rows}


def alias_drift_sums(requested, model, ts, inp, out, status) -> pd.DataFrame:
    """Per (virtual model, model, UTC day): requests and token sums of successful requests behind an alias.

    Partial sums add up across chunks, so both engines report the same drift section.
    """
    ok = (status < 400) & (requested != model)
    frame = pd.DataFrame({"virtual_model": requested[ok], "model": model[ok], "day": ts[ok] // (86_400 * 10**9),
                          "requests": 1, "inp": inp[ok], "out": out[ok]})
    return frame.groupby(["virtual_model", "model", "day"], sort=True)[["requests", "inp", "out"]].sum()


def alias_drift(sums: pd.DataFrame) -> dict[str, Any] | None:
    """Tokens per request per day for each virtual model served by more than one model version in the window.

    A provider release behind an alias (same prompts, new tokenizer) shows as a step in tokens per request.
    """
    if sums.empty:
        return None
    sums = sums.groupby(level=[0, 1, 2], sort=True).sum()
    versions = sums.reset_index().groupby("virtual_model")["model"].nunique()
    aliases = set(versions[versions > 1].index)
    rows = [{"virtual_model": alias, "model": model,
             "day": pd.Timestamp(int(day) * 86_400 * 10**9, tz="UTC").date().isoformat(),
             "requests": int(r["requests"]), "input_tokens_per_request": round(float(r["inp"] / r["requests"]), 1),
             "output_tokens_per_request": round(float(r["out"] / r["requests"]), 1)}
            for (alias, model, day), r in sums.iterrows() if alias in aliases]
    if not rows:
        return None
    return {"note": "virtual models served by several model versions: a step in tokens per request at a version "
                    "change with unchanged prompts is tokenizer drift (see `tfysim drift`)",
            "tokens_per_request_by_day": rows}


def _policy(p: Prepared, scenario: Scenario, cand: Candidate, o: Outcome, base: Outcome,
            before: dict[str, Any], premium: set[str], eval_data: Any, translator=None, cache_sim=None,
            recorded_by_model: dict[str, int] | None = None) -> dict[str, Any]:
    after = metrics.outcome_stats(p, o, premium)
    savings_rows = base.cost_usd - o.cost_usd
    days = metrics.window_days(p.ts)
    moves = moves_from_outcome(p, o, base.cost_usd, translator, cand.name)
    interval = _interval(p, scenario, savings_rows, moves, translator)
    methods, counts = np.unique(o.translation[o.changed].astype(str), return_counts=True)
    policy = metrics.policy_record(
        cand.name, p.n, float(o.cost_usd.sum()), float(base.cost_usd.sum()), days, interval["monthly_savings_ci95"],
        o.counts, before, after, {str(m): int(c) for m, c in zip(methods, counts)})
    policy.update({
        "budgets": o.budget_report,
        "rate_limits": o.rate_limit_report,
        "breakdowns": {by: metrics.breakdown(p, base, o, by) for by in metrics.BREAKDOWNS},
    })
    policy.update(o.extras)
    if eval_data is not None:
        policy.update(accuracy_fields(p, cand, moves, eval_data, scenario))
    gates = metrics.candidate_gates(scenario, cand)
    policy["gates"] = metrics.evaluate_gates(policy, gates, before)
    extra = []
    uncertain = len(moves) and ((moves["cost_low_usd"] != moves["cost_usd"]).any()
                                or (moves["cost_high_usd"] != moves["cost_usd"]).any())
    if policy.get("caching") and translator is not None and uncertain:
        extra.append(_cache_sensitivity(p, scenario, cand, policy, base, translator, cache_sim, days))
    return finish_policy(policy, moves=moves, interval=interval, candidate=cand, days=days,
                         candidate_cost_usd=float(o.cost_usd.sum()), base_cost_usd=float(base.cost_usd.sum()), recorded_requests_by_model=recorded_by_model or {},
                         evaluate_gates=lambda rec: metrics.evaluate_gates(rec, gates, before),
                         extra_sensitivity=extra)


def accuracy_fields(p: Prepared, cand: Candidate, moves: pd.DataFrame, eval_data: Any, scenario: Scenario) -> dict:
    """The accuracy fields of one policy from its moves table (``simulator.evals.policy.accuracy_from_moves``)."""
    wf = p.traffic.frame["workflow_tag"].to_numpy(dtype=object)
    wf = np.where(pd.isna(wf), metrics.UNTAGGED, wf)
    traffic = pd.Series(wf).value_counts().rename_axis("workflow_tag").reset_index(name="requests")
    frame = p.traffic.frame
    prompts = frame[["workflow_tag", "prompt"]].dropna() if frame["prompt"].notna().any() else None
    return accuracy_from_moves(accuracy_moves(moves), traffic, prompts, cand, eval_data, scenario)


def _interval(p: Prepared, scenario: Scenario, savings_rows: np.ndarray, moves: pd.DataFrame, translator) -> dict:
    """The policy's savings interval from per-minute sums (or per-session sums with ``bootstrap.unit: session``)."""
    if p.n == 0:
        return policy_interval(np.zeros(0, np.int64), np.zeros(0), 0, 0, scenario, moves, translator)
    ts_min, ts_max = int(p.ts.min()), int(p.ts.max())
    sessions = None
    if scenario.bootstrap.unit == "session":
        ids = p.traffic.frame["session_id"].to_numpy(dtype=object)
        ids = np.where(pd.isna(ids), p.traffic.frame["request_id"].to_numpy(dtype=object), ids)
        codes, _ = pd.factorize(ids, sort=True)
        sessions = np.bincount(codes, weights=savings_rows)
    block, sums = minute_sums(p.ts, ts_min, savings_rows)
    return policy_interval(block, sums, ts_min, ts_max, scenario, moves, translator, sessions)


def _cache_sensitivity(p: Prepared, scenario: Scenario, cand: Candidate, policy: dict, base: Outcome, translator,
                       cache_sim, days: float) -> dict | None:
    """Replay a caching candidate with its translation at both ends of their intervals; compare the caching verdict."""
    from simulator.summary.sensitivity import at_cost

    ends = {}
    for end in ("low", "high"):
        o = simulate(p, cand, translator.at_end(end), cache_sim)
        ends[end] = {**at_cost(policy, float(o.cost_usd.sum()), float(base.cost_usd.sum()), days),
                     "caching": o.extras.get("caching")}
    return cache_sensitivity(policy, ends["low"], ends["high"])


def requests_frame(result: RunResult, outcome: Outcome) -> pd.DataFrame:
    """Per-request outcomes of one candidate (no user ids, no prompt text)."""
    p = result.prepared
    vocab = np.array(p.vocab, dtype=object)
    f = result.traffic.frame
    return pd.DataFrame({
        "request_id": f["request_id"].to_numpy(dtype=object),
        "timestamp": f["timestamp"],
        "recorded_model": vocab[p.model],
        "model": vocab[outcome.model],
        "changed": outcome.changed,
        "blocked": outcome.blocked,
        "fallback": outcome.fallback,
        "status_code": outcome.status,
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "cache_read_tokens": outcome.cache_read_tokens,
        "cache_write_tokens": outcome.cache_write_tokens,
        "baseline_cost_usd": result.baseline.cost_usd,
        "cost_usd": outcome.cost_usd,
        "latency_ms": outcome.latency_ms,
        "token_translation": outcome.translation.astype(str),
        "team": f["team"].to_numpy(dtype=object),
        "project": f["project"].to_numpy(dtype=object),
        "workflow_tag": f["workflow_tag"].to_numpy(dtype=object),
    })


def validate_scenario(path: str | Path) -> str:
    """Load a scenario and its traffic, resolve every model and target; returns a one-paragraph report."""
    scenario = load_scenario(path)
    catalog = _catalog(scenario)
    loaded = load_traffic(scenario.paths("traffic"), adapter=scenario.adapter, mapping=scenario.columns or None,
                          timezone=scenario.timezone)
    p = Prepared(loaded, catalog, seed=scenario.seed)
    candidates = resolve_candidates(scenario)
    for cand in candidates:
        check_candidate_targets(p, cand)
    return (f"{path}: ok. {loaded.rows_replayed:,} rows ({loaded.rows_rejected:,} rejected), {len(p.vocab)} models "
            f"priced, {len(candidates)} candidate(s).")
