"""Accuracy impact of a candidate from labeled eval samples (joins the replay's moves to simulator.evals)."""

from __future__ import annotations

from typing import Any

from simulator.errors import InputError
from simulator.evals.gates import impact_gate
from simulator.evals.impact import match_eval_model, policy_accuracy_impact
from simulator.evals.load import load_eval_samples


def load_evals(paths, prepared) -> Any:
    """Load eval samples; an eval file none of whose models is in the traffic or a target is an error."""
    loaded = load_eval_samples(paths)
    models = sorted(loaded.samples["model"].unique())
    known = [m for m in prepared.vocab if match_eval_model(m, models) is not None]
    if models and not known:
        raise InputError(
            f"eval samples name models {', '.join(models[:4])}, none of which matches a model in the traffic "
            f"({', '.join(prepared.vocab[:4])}); name eval models by the model part of the gateway id (a release-date "
            "suffix is fine).")
    return loaded


def accuracy_from_moves(moves, traffic, prompts, cand, evals, scenario) -> dict[str, Any]:
    """summary.json accuracy fields of one policy: accuracy_delta_pp / _ci95 (traffic-wide),
    accuracy_delta_moved_pp / _ci95 (on the moved requests), accuracy (details, by_workflow) and accuracy_verdict.

    ``moves``: workflow_tag, from_model, to_model, requests (every engine builds it); ``traffic``: workflow_tag,
    requests over all traffic; ``prompts``: workflow_tag, prompt of production rows (covariate-shift weights) or None.
    """
    if moves.empty:
        return {"accuracy_delta_pp": 0.0, "accuracy_delta_ci95": [0.0, 0.0], "accuracy_delta_moved_pp": None,
                "accuracy_delta_moved_ci95": None, "accuracy": {"note": "no request changed model"}}
    moves = moves[["workflow_tag", "from_model", "to_model", "requests"]]
    impact = policy_accuracy_impact(moves, traffic, evals.samples, prod_prompts=prompts, seed=scenario.seed)
    margin = cand.gates.max_accuracy_drop_pp
    if margin is None:
        margin = scenario.gates.max_accuracy_drop_pp
    headline = ("accuracy_delta_pp", "accuracy_delta_ci95", "accuracy_delta_moved_pp", "accuracy_delta_moved_ci95")
    out: dict[str, Any] = {k: impact[k] for k in headline}
    out["accuracy"] = {k: v for k, v in impact.items() if k not in headline}
    per_workflow = []
    for workflow in sorted(moves["workflow_tag"].unique()):
        sub = policy_accuracy_impact(moves[moves["workflow_tag"] == workflow],
                                     traffic[traffic["workflow_tag"] == workflow], evals.samples,
                                     prod_prompts=prompts, seed=scenario.seed)
        entry = {"workflow_tag": workflow, "moved_share": sub["moved_share"],
                 "accuracy_delta_moved_pp": sub["accuracy_delta_moved_pp"],
                 "accuracy_delta_moved_ci95": sub["accuracy_delta_moved_ci95"],
                 "accuracy_delta_pp": sub["accuracy_delta_pp"], "accuracy_delta_ci95": sub["accuracy_delta_ci95"],
                 "coverage_share": sub["coverage_share"], "n_paired": sub["n_paired"]}
        if margin is not None:
            entry["gate"] = (impact_gate(sub, margin) if sub["accuracy_delta_ci95"] is not None else
                             {"verdict": "undecided", "passed": False,
                              "detail": "no eval evidence; add labeled eval samples for this workflow"})
        per_workflow.append(entry)
    out["accuracy"]["by_workflow"] = per_workflow
    if margin is not None:
        out["accuracy_verdict"] = _combined_verdict(per_workflow, margin)
    return out


def _combined_verdict(per_workflow: list[dict[str, Any]], margin: float) -> dict[str, Any]:
    """The gate holds per moved workflow: the accuracy change of the requests the candidate moves in that workflow
    must keep its lower 95% bound >= -margin. Diluting a drop over unmoved requests (a partial split) or over other
    workflows is not allowed."""
    failing = [w for w in per_workflow if not w["gate"]["passed"]]
    if not failing:
        worst = min(per_workflow, key=lambda w: w["accuracy_delta_moved_ci95"][0])
        return {"verdict": "pass", "passed": True,
                "detail": f"every moved workflow within -{margin:g} pp; tightest {worst['workflow_tag']}: "
                          + worst["gate"]["detail"]}
    verdict = "fail" if any(w["gate"]["verdict"] == "fail" for w in failing) else "undecided"
    parts = [f"{w['workflow_tag']}: {w['gate']['detail']}" for w in failing]
    return {"verdict": verdict, "passed": False, "detail": " | ".join(parts)}


def research_curves(moves_list: list[pd.DataFrame], samples: pd.DataFrame) -> dict[str, Any] | None:
    """RouteLLM/RouterBench-comparable figures for each (workflow, strong -> weak) move with paired evals:
    accuracy of the random and oracle routers as the weak share grows, APGR, CPT(50%), CPT(80%), AIQ."""
    from simulator.evals.curves import strong_weak_curves
    from simulator.evals.impact import match_eval_model

    models = sorted(samples["model"].unique())
    # Each curve reads only its workflow's rows of its two models. The full table is kept where a (sample_id, model)
    # repeats and costs are read: the cost lookup over all samples then fails for every curve, as it always has.
    whole = "cost_usd" in samples and bool(samples.duplicated(["sample_id", "model"]).any())
    tags, names = samples["workflow_tag"].to_numpy(dtype=object), samples["model"].to_numpy(dtype=object)
    seen, rows = set(), []
    for moves in moves_list:
        for m in moves.itertuples(index=False):
            strong, weak = match_eval_model(m.from_model, models), match_eval_model(m.to_model, models)
            key = (m.workflow_tag, strong, weak)
            if not strong or not weak or key in seen:
                continue
            seen.add(key)
            try:
                sub = samples if whole else samples[(tags == m.workflow_tag) & ((names == strong) | (names == weak))]
                result = strong_weak_curves(sub, strong, weak, workflow_tag=m.workflow_tag)
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
