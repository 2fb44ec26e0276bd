"""The control-room panels over one replay: fed chunk by chunk (time-ordered), summarised into summary.json dicts.

``ControlRoom(scenario, n_candidates)`` is built once; ``add(frame, recorded_cost, baseline_cost, status, tokens,
candidates)`` takes each chunk of the canonical table with the recorded replay's arrays and, per candidate, its
executed cost and status; ``sections()`` returns ``loops``, ``alerts``, ``outcomes``, ``leverage`` and ``adoption``
for summary.json, ``policy_fields(k)`` what candidate k adds to its policy record. The in-memory engine calls
``add`` once with the whole table; the streaming engine once per chunk.

Costs: the backtest uses the recorded ``cost_usd`` (the catalog price where it is missing); a candidate's projected
cost is the recorded cost minus what the candidate saves on that request (catalog baseline minus candidate), so a
candidate that changes nothing projects exactly the recorded figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulator.control.adoption import AdoptionCounter
from simulator.control.alerts import AlertBacktest, compact, prometheus_rules
from simulator.control.leverage import leverage_by_workflow
from simulator.control.loops import LoopState, SessionIndex, chunk_inputs, kill_rule, loop_inputs
from simulator.control.outcomes import OutcomeJoin, OutcomeTable, cost_per_outcome, load_outcomes
from simulator.control.settings import Alerts, LoopDetection, outcome_settings

COST_SOURCE = "recorded cost_usd (catalog price where it is missing)"


def wanted(scenario) -> bool:
    """Whether the scenario asks for any control-room panel."""
    return any(x is not None for x in (scenario.loop_detection, scenario.alerts, scenario.outcomes,
                                       scenario.adoption))


class ControlRoom:
    def __init__(self, scenario, n_candidates: int) -> None:
        self.scenario = scenario
        self.rule: LoopDetection = scenario.loop_detection or LoopDetection()
        self.alert_settings: Alerts | None = scenario.alerts
        settings = outcome_settings(scenario.outcomes)
        self.outcomes: OutcomeTable | None = load_outcomes(settings, scenario.base_dir) if settings else None
        self.adoption = AdoptionCounter(scenario.adoption) if scenario.adoption is not None else None
        need_sessions = (scenario.loop_detection is not None or self.outcomes is not None
                         or (self.alert_settings is not None and self.alert_settings.runaway_agent.enabled))
        self.index = SessionIndex()  # every replay sees the same sessions: numbered once per chunk
        self.loops = ([LoopState(self.rule, index=self.index) for _ in range(n_candidates + 1)]
                      if need_sessions else None)
        self.alerts = ([AlertBacktest(self.alert_settings) for _ in range(n_candidates + 1)]
                       if self.alert_settings is not None else None)
        self._join: tuple[tuple, OutcomeJoin] | None = None  # (LoopState.sessions_key, the outcomes joined)

    def add(self, frame: pd.DataFrame, recorded_cost: np.ndarray, baseline_cost: np.ndarray, status: np.ndarray,
            input_tokens: np.ndarray, output_tokens: np.ndarray,
            candidates: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
            shared: dict[str, np.ndarray] | None = None) -> None:
        """One time-ordered chunk: the recorded replay's arrays, and per candidate (cost_usd, status,
        input_tokens, output_tokens) as executed; ``shared``: the frame's ``chunk_inputs`` if already made."""
        recorded = np.where(np.isfinite(recorded_cost), recorded_cost, baseline_cost)
        replays = [(recorded, status, input_tokens, output_tokens)]
        replays += [(recorded - (baseline_cost - cost), st, i, o) for cost, st, i, o in candidates]
        ts = frame["timestamp"].array.asi8 if len(frame) else np.zeros(0, np.int64)
        chunk = None
        if self.loops is not None:  # shared by every replay of the chunk
            chunk = dict(chunk_inputs(frame) if shared is None else shared)  # slots added to a copy
            chunk["slots"] = self.index.slots(chunk["session_keys"], chunk["session_id"], chunk["workflow_tag"],
                                                 chunk["team"], chunk["ts"])
        labels = alert_chunk = None
        if self.alerts is not None:
            labels = (frame["project"].to_numpy(dtype=object), frame["workflow_tag"].to_numpy(dtype=object),
                      frame["team"].to_numpy(dtype=object))
            alert_chunk = self.alerts[0].chunk(ts, labels[0])
        for k, (cost, st, inp, out) in enumerate(replays):
            cost = np.where(st >= 400, 0.0, cost)
            if self.loops is not None:
                self.loops[k].step(**loop_inputs(frame, cost, st, inp, out, self.rule, chunk))
            if self.alerts is not None:
                self.alerts[k].add(ts, *labels, cost, chunk=alert_chunk)
        if self.adoption is not None:
            self.adoption.add(ts, frame["team"].to_numpy(dtype=object), frame["user_id"].to_numpy(dtype=object),
                              frame["metadata"], frame["model"].to_numpy(dtype=object))

    def merge(self, other: ControlRoom) -> ControlRoom:
        """Fold in the room of another partition of the same replay. Exact when each partition holds whole sessions,
        workflows and projects and one of them all rows without a project
        (``simulator.engines.components.panel_keys``)."""
        if self.loops is not None:
            self.loops = [a.merge(b) for a, b in zip(self.loops, other.loops)]
        if self.alerts is not None:
            self.alerts = [a.merge(b) for a, b in zip(self.alerts, other.alerts)]
        if self.adoption is not None:
            self.adoption.merge(other.adoption)
        return self

    def observe(self, p, base, outcomes: list) -> None:
        """:meth:`add` as a replay observer: ``p`` a chunk of the replay (``traffic.frame``, ``recorded_cost``,
        ``baseline_cost``, ``status``, ``inp``, ``out``), ``base`` its recorded outcome, ``outcomes`` the
        candidates' outcomes (``cost_usd``, ``status``, ``input_tokens``, ``output_tokens``), in candidate order."""
        self.add(p.frame, p.recorded_cost, base.cost_usd, p.status, p.inp, p.out,
                 [(o.cost_usd, o.status, o.input_tokens, o.output_tokens) for o in outcomes],
                 p.shared(chunk_inputs) if self.loops is not None else None)

    def sections(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        s = self.scenario
        loops = self.loops[0].summary() if self.loops is not None else None
        if s.loop_detection is not None:
            out["loops"] = {**loops, "cost_source": COST_SOURCE}
        if self.alerts is not None:
            out["alerts"] = {"backtest": self.alerts[0].summary(loops["sessions"] if loops else []),
                             "evaluation": "continuous: every rule is evaluated at each request, in time order",
                             "prometheus": prometheus_rules(self.alert_settings, self.rule),
                             "not_backtested": ["secret_leaked (no guardrail events in the traffic table; the "
                                                "gateway's guardrail metric names are not published)"]}
        if self.outcomes is not None:
            sessions = self.loops[0].session_table()
            frame = self.outcomes.frame
            matched = frame["session_id"].isin(sessions["session_id"]) if len(frame) else frame["session_id"]
            out["outcomes"] = {**self.outcomes.counts(), "outcomes_matched": int(matched.sum()),
                               "outcomes_unmatched": int((~matched).sum()), "cost_source": COST_SOURCE,
                               "by_workflow": cost_per_outcome(sessions, frame[matched] if len(frame) else frame)}
            out["outcomes"]["actions"] = outcome_actions(out["outcomes"]["by_workflow"])
            out["leverage"] = leverage_by_workflow(sessions, frame[matched] if len(frame) else frame)
        if self.adoption is not None:
            out["adoption"] = self.adoption.summary()
        return out

    def policy_fields(self, k: int) -> dict[str, Any]:
        """What candidate ``k`` (0-based) adds to its policy record: alerts under it, projected cost per outcome."""
        out: dict[str, Any] = {}
        state = self.loops[k + 1] if self.loops is not None else None
        if self.alerts is not None:
            out["alerts"] = compact(self.alerts[k + 1].summary(state.sessions() if state is not None else []))
        if self.outcomes is not None:
            sessions = state.session_table()
            key = state.sessions_key()  # the replays' states share their sessions: one join for all of them
            if self._join is None or self._join[0] != key:
                self._join = (key, OutcomeJoin(sessions["session_id"], sessions["workflow_tag"], self.outcomes.frame))
            rows = self._join[1].by_workflow(sessions["cost_usd"])
            out["outcomes"] = [{key: r[key] for key in ("workflow_tag", "cost_usd", "cost_per_outcome_usd",
                                                         "cost_per_session_usd")} for r in rows]
        return out


def outcome_actions(rows: list[dict[str, Any]]) -> list[str]:
    """What to do about cost per outcome: instrument workflows without outcomes; review the costliest."""
    actions = []
    missing = [r for r in rows if not r["outcomes"]]
    if missing:
        names = ", ".join(f"`{r['workflow_tag']}`" for r in missing)
        actions.append(f"Join outcomes for {names}: their sessions cost "
                       f"${sum(r['cost_usd'] for r in missing):,.2f} and no outcome is linked (carry the session id "
                       "in the PR trailer, label or ticket field).")
    priced = sorted([r for r in rows if r["outcomes"]], key=lambda r: -r["cost_per_outcome_usd"])
    if priced:
        r = priced[0]
        actions.append(f"Review `{r['workflow_tag']}`: ${r['cost_per_outcome_usd']:,.2f} per outcome "
                       f"(${r['cost_per_session_usd']:,.2f} per session; {r['sessions_with_outcome']:,} of "
                       f"{r['sessions']:,} sessions produced one).")
    return actions


def resolve_kill(candidate, scenario):
    """The candidate with ``kill_runaway_sessions: true`` replaced by the scenario's loop rule."""
    if candidate.kill_runaway_sessions is True:
        return candidate.model_copy(update={"kill_runaway_sessions": kill_rule(True, scenario.loop_detection)})
    return candidate


def control_room_summary(scenario, frame: pd.DataFrame, recorded_cost, baseline_cost, status, input_tokens,
                         output_tokens, candidates) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The whole table at once (the in-memory engine): (summary sections, per-candidate policy fields), or None
    when the scenario asks for no control-room panel."""
    if not wanted(scenario):
        return None
    room = ControlRoom(scenario, len(candidates))
    room.add(frame, recorded_cost, baseline_cost, status, input_tokens, output_tokens, candidates)
    return room.sections(), [room.policy_fields(k) for k in range(len(candidates))]
