"""The article's diagnostic leverage score: per session, aggregated by workflow_tag only (never by user).

    outcome_score = incidents_resolved * 25 + prs_merged * 15 + tickets_closed * 10 + eval_pass_rate * 20
    governance    = budget_limit_hits * 2 + rate_limit_hits * 1 + guardrail_blocks * 3
    waste         = retry_token_count / 10_000 + unused_context_ratio * 10 + loop_flag * 15
    score         = clip((outcome_score - governance - waste) / max(total_cost_usd ** 0.4, 0.01), 0, 100)

What the traffic gives: outcomes from the outcomes join (``eval_pass_rate`` = eval_passed / (eval_passed +
eval_failed), 0 without eval outcomes); rate-limit hits = requests answered 429; retry tokens = tokens of requests
right after a failed attempt; ``loop_flag`` = flagged by the loop rules; cost = the session's cost. Not in gateway
logs, so 0 here (listed in ``not_measured``): budget-limit hits on recorded traffic, guardrail blocks, unused
context ratio. The score is a diagnostic for workflow patterns (invest, redesign), not a ranking of people.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulator.control.outcomes import NOT_OUTCOMES, outcome_counts

WEIGHTS = {"incident_resolved": 25.0, "pr_merged": 15.0, "ticket_closed": 10.0}
EVAL_WEIGHT = 20.0
NOT_MEASURED = ["budget_limit_hits (recorded traffic shows a 429, not which rule answered it)",
                "guardrail_blocks (no guardrail events in the traffic table)",
                "unused_context_ratio (not in gateway logs)"]


def leverage_scores(sessions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.Series:
    """The score of each session (index aligned with ``sessions``); columns as :meth:`LoopState.session_table`."""
    counts = outcome_counts(outcomes).reindex(sessions["session_id"]).fillna(0)

    def col(name: str) -> np.ndarray:
        return counts[name].to_numpy(dtype=np.float64) if name in counts.columns else np.zeros(len(sessions))

    passed, failed = col("eval_passed"), col("eval_failed")
    with np.errstate(invalid="ignore", divide="ignore"):
        pass_rate = np.where(passed + failed > 0, passed / (passed + failed), 0.0)
    outcome = sum(w * col(k) for k, w in WEIGHTS.items()) + EVAL_WEIGHT * pass_rate
    governance = sessions["rate_limit_hits"].to_numpy(dtype=np.float64) * 1.0
    waste = sessions["retry_tokens"].to_numpy(dtype=np.float64) / 10_000 + 15.0 * sessions["flagged"].to_numpy(float)
    cost = np.maximum(sessions["cost_usd"].to_numpy(dtype=np.float64), 0.0)
    raw = (outcome - governance - waste) / np.maximum(cost ** 0.4, 0.01)
    return pd.Series(np.clip(raw, 0.0, 100.0), index=sessions.index)


def leverage_by_workflow(sessions: pd.DataFrame, outcomes: pd.DataFrame, top: int = 3) -> dict[str, Any]:
    """The ``leverage`` section: mean score per workflow_tag, the top patterns to invest in and the bottom ones to
    redesign or guard; workflows without any outcome joined are listed to instrument, not ranked."""
    scores = leverage_scores(sessions, outcomes)
    signals = outcomes["session_id"] if len(outcomes) else []
    produced = outcomes.loc[~outcomes["outcome"].isin(NOT_OUTCOMES), "session_id"] if len(outcomes) else []
    frame = sessions.assign(score=scores.to_numpy(), signal=sessions["session_id"].isin(signals).to_numpy(),
                            has_outcome=sessions["session_id"].isin(produced).to_numpy())
    rows = []
    for wf, g in frame.groupby("workflow_tag", sort=True):
        rows.append({"workflow_tag": wf, "sessions": len(g), "instrumented": bool(g["signal"].any()),
                     "sessions_with_outcome": int(g["has_outcome"].sum()),
                     "score_mean": round(float(g["score"].mean()), 4),
                     "score_median": round(float(g["score"].median()), 4),
                     "sessions_scoring_zero": int((g["score"] == 0).sum()),
                     "loop_flagged": int(g["flagged"].sum())})
    ranked = sorted([r for r in rows if r["instrumented"]], key=lambda r: (-r["score_mean"], r["workflow_tag"]))
    invest = ranked[:top]
    redesign = [r for r in ranked[::-1][:top] if r not in invest]
    actions = [f"Invest in `{r['workflow_tag']}`: mean leverage {r['score_mean']:.1f} over {r['sessions']:,} sessions."
               for r in invest]
    for r in redesign:
        why = f"{r['loop_flagged']} looping session(s); " if r["loop_flagged"] else ""
        actions.append(f"Redesign or add a guardrail to `{r['workflow_tag']}`: mean leverage {r['score_mean']:.1f}; "
                       f"{why}{r['sessions_scoring_zero']:,} of {r['sessions']:,} sessions score 0.")
    for r in rows:
        if not r["instrumented"]:
            actions.append(f"Instrument the outcome join for `{r['workflow_tag']}` (session id in the PR trailer or "
                           "ticket field): none of its sessions can be scored yet.")
    return {"unit": "session, aggregated by workflow_tag", "by_workflow": rows,
            "invest": [r["workflow_tag"] for r in invest], "redesign": [r["workflow_tag"] for r in redesign],
            "actions": actions, "not_measured": NOT_MEASURED}
