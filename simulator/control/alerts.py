"""The article's minimum alert rule set, backtested on traffic in time order and written as Prometheus rules.

- ``runaway_agent``: a session flagged by the loop rule's rate test (see :mod:`simulator.control.loops`); time to
  detect = from the session's first rate excess to the alert.
- ``budget_near_ceiling`` (and the ``budget_soft_alert``): a project's spend in its budget window (UTC day, week from
  Monday, month from the 1st, as the gateway resets budgets) above ``threshold_pct`` (``soft_threshold_pct``) of its
  ceiling; lead time = from the alert to the moment the ceiling itself is reached (None when it is not).
- ``untagged_spend_spike``: spend of requests without a project over the trailing window above ``threshold_usd``;
  one fire per episode (the sum goes above the threshold and later falls back); time to detect = from the earliest
  request in the window to the fire.

Rules are evaluated at every request (continuously), not at a Prometheus evaluation interval. The Prometheus rules
run over the gateway's cost counter with metadata labels (section 6 of gateway-formats: ``ai_gateway_*`` metrics,
``llm_gateway_metadata_<key>`` labels); what they approximate is said in each rule's ``tfysim_note`` annotation.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pandas as pd

from simulator.control.settings import Alerts, LoopDetection, duration_s

_NS = 10**9
_DAY_NS = 86_400 * _NS
_PROM_RANGE = {"cost_per_day": "1d", "cost_per_week": "7d", "cost_per_month": "30d"}
UNTAGGED = "UNTAGGED"

RUNBOOKS = {
    "runaway_agent": ("1. Identify session_id from the alert labels\n"
                      "2. Check the workflow_tag field in the request's X-TFY-METADATA for the owning team\n"
                      "3. Confirmed loop: kill the session (PUT /gateway/sessions/{id}/kill) or let the per-session "
                      "rate limit tfysim wrote hold it\n"
                      "4. File an incident linked to the TFY session trace"),
    "budget_near_ceiling": ("1. Notify the project owner (#ai-budget-alerts)\n"
                            "2. Review the premium-model panel for quick routing wins\n"
                            "3. Raise the ceiling or enable a fallback-to-cheaper-model policy"),
    "budget_soft_alert": ("1. Tell the project owner the budget is at the soft threshold\n"
                          "2. Check this week's premium-model review for routing changes on this project"),
    "untagged_spend_spike": ("1. Find the callers by workflow_tag and team (tfysim lists them; never by person)\n"
                             "2. Require a project field in X-TFY-METADATA via gateway config\n"
                             "3. Block untagged traffic after a 30-day grace period"),
}


def calendar_window(ts: np.ndarray, unit: str) -> np.ndarray:
    """UTC budget window index per timestamp, the windows the gateway's budgets reset on."""
    days = ts // _DAY_NS
    if unit == "cost_per_day":
        return days
    if unit == "cost_per_week":
        return (days + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Monday
    months = pd.DatetimeIndex(ts.astype("datetime64[ns]"))
    return (months.year.to_numpy() - 1970) * 12 + months.month.to_numpy() - 1


def _iso(ns: int | None) -> str | None:
    return None if ns is None else pd.Timestamp(int(ns), tz="UTC").isoformat()


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(float(np.median(values)), 3), round(float(max(values)), 3)


# -- budget ceilings ----------------------------------------------------------------------------------------------
class BudgetAlerts:
    """Per (ceiling, project, window): cumulative spend in time order and the moments it crossed each level."""

    def __init__(self, settings: Alerts) -> None:
        self.s = settings.budget_near_ceiling
        self.levels = [("budget_near_ceiling", self.s.threshold_pct / 100)]
        if self.s.soft_threshold_pct is not None:
            self.levels.append(("budget_soft_alert", self.s.soft_threshold_pct / 100))
        self.levels.append(("ceiling", 1.0))
        self.spent: dict[tuple[int, str, int], float] = {}
        self.crossed: dict[tuple[int, str, int], dict[str, int]] = {}

    def groups(self, ts: np.ndarray, project: np.ndarray) -> list[tuple]:
        """What :meth:`add` needs of a chunk apart from the costs (the same for every replay of it): per ceiling
        with rows, its rows ordered by (project, window) group (groups in order of first appearance, rows in time
        order inside each), each group's row offsets, its project and window, and the rows' times in that order."""
        tagged = ~pd.isna(project)
        out = []
        for c_i, ceiling in enumerate(self.s.ceilings):
            sel = tagged & ((project == ceiling.project) if ceiling.project != "*" else True)
            rows = np.flatnonzero(sel)
            if not len(rows):
                continue
            projects, windows = project[rows].astype(str), calendar_window(ts[rows], ceiling.unit)
            group = pd.DataFrame({"p": projects, "w": windows}).groupby(["p", "w"], sort=False).ngroup().to_numpy()
            order = np.argsort(group, kind="stable")
            starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
            out.append((c_i, rows[order], group[order], starts.tolist(), [*starts[1:].tolist(), len(order)],
                        projects[order][starts].tolist(), windows[order][starts].tolist(), ts[rows][order]))
        return out

    def add(self, ts: np.ndarray, project: np.ndarray, cost: np.ndarray, groups: list[tuple] | None = None) -> None:
        """One chunk's requests (time-ordered) and their costs; ``groups``: :meth:`groups` of the chunk if made."""
        for c_i, rows, group, starts, ends, projects, windows, times in (
                self.groups(ts, project) if groups is None else groups):
            ceiling = self.s.ceilings[c_i]
            # running spend per group, rows in time order (pandas' grouped cumsum: compensated summation)
            cums = pd.Series(cost[rows]).groupby(group).cumsum().to_numpy()
            for lo, hi, p, w in zip(starts, ends, projects, windows):
                key = (c_i, p, int(w))
                base = self.spent.get(key, 0.0)
                cum = base + cums[lo:hi]
                self.spent[key] = float(cum[-1])
                marks = self.crossed.setdefault(key, {})
                for name, share in self.levels:
                    limit = share * ceiling.limit_to
                    if name in marks or cum[-1] <= limit:
                        continue
                    marks[name] = int(times[lo:hi][np.argmax(cum > limit)])

    def merge(self, other: BudgetAlerts) -> BudgetAlerts:
        """Fold in the alerts of another partition holding other projects (the Dask engine)."""
        if set(self.spent) & set(other.spent):
            raise ValueError("budget alerts: two partitions hold rows of the same project")
        self.spent.update(other.spent)
        self.crossed.update(other.crossed)
        return self

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for (c_i, p, w), marks in sorted(self.crossed.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
            ceiling = self.s.ceilings[c_i]
            if not marks:
                continue
            fired, reached = marks.get("budget_near_ceiling"), marks.get("ceiling")
            rows.append({"project": p, "limit_to": ceiling.limit_to, "unit": ceiling.unit,
                         "spend_usd": round(self.spent[(c_i, p, w)], 6),
                         "soft_alert_at": _iso(marks.get("budget_soft_alert")), "fired_at": _iso(fired),
                         "ceiling_reached_at": _iso(reached),
                         "lead_time_s": round((reached - fired) / _NS, 3) if fired is not None and reached is not None
                         else None})
        return rows


# -- untagged spend -----------------------------------------------------------------------------------------------
class UntaggedSpike:
    """Trailing-window sum of untagged spend; episodes above the threshold, with their largest contributors."""

    def __init__(self, settings: Alerts) -> None:
        self.s = settings.untagged_spend_spike
        self.window_ns = duration_s(self.s.window) * _NS
        self.events: collections.deque = collections.deque()  # (t, cost, workflow, team) inside the window
        self.total = 0.0
        self.active = False
        self.episodes: list[dict[str, Any]] = []
        self.peak = 0.0

    def _leave_until(self, t: int, inclusive: bool) -> None:
        """Drop events whose window has ended by ``t`` (an event at t0 counts in (t0, t0 + window])."""
        while self.events and (self.events[0][0] + self.window_ns < t or
                               (inclusive and self.events[0][0] + self.window_ns <= t)):
            t0, c, _, _ = self.events.popleft()
            self.total -= c
            if self.active and self.total <= self.s.threshold_usd:
                self.active = False
                self.episodes[-1]["resolved_at"] = _iso(t0 + self.window_ns)
        if not self.events:
            self.total = 0.0  # no drift from float subtraction once the window is empty

    def add(self, ts: np.ndarray, project: np.ndarray, cost: np.ndarray, workflow: np.ndarray,
            team: np.ndarray) -> None:
        rows = np.flatnonzero(pd.isna(project) & (cost > 0))
        events, window_ns, threshold = self.events, self.window_ns, self.s.threshold_usd
        # Python values taken once (the same ints, floats and labels the rows give one by one)
        for t, c, wf, tm in zip(ts[rows].tolist(), cost[rows].tolist(), workflow[rows].tolist(),
                                team[rows].tolist()):
            if events and events[0][0] + window_ns <= t:  # an event leaves (an empty window's total is 0 already)
                self._leave_until(t, inclusive=True)
            events.append((t, c, wf, tm))
            self.total += c
            if self.total > self.peak:
                self.peak = self.total
            if not self.active and self.total > threshold:
                self.active = True
                by = collections.Counter()
                for _, spent, e_wf, e_tm in events:
                    by[(_label(e_wf), _label(e_tm))] += spent
                (top_wf, top_tm), _ = max(by.items(), key=lambda kv: (kv[1], kv[0]))
                self.episodes.append({"fired_at": _iso(t), "resolved_at": None, "window_usd": round(self.total, 6),
                                      "time_to_detect_s": round((t - events[0][0]) / _NS, 3),
                                      "top_workflow_tag": top_wf, "top_team": top_tm})

    def merge(self, other: UntaggedSpike) -> UntaggedSpike:
        """The spike of the one partition that holds the untagged rows (the Dask engine keeps them together)."""
        if not other.seen():
            return self
        if self.seen():
            raise ValueError("untagged spend: two partitions hold untagged rows")
        return other

    def seen(self) -> bool:
        return bool(self.events or self.episodes or self.peak)

    def finish(self) -> None:
        if self.events:
            self._leave_until(self.events[-1][0] + self.window_ns + 1, inclusive=True)

    def summary(self) -> dict[str, Any]:
        self.finish()
        p50, mx = _stats([e["time_to_detect_s"] for e in self.episodes])
        by = collections.Counter((e["top_workflow_tag"], e["top_team"]) for e in self.episodes)
        return {"alert": "untagged_spend_spike", "severity": self.s.severity, "fires": len(self.episodes),
                "first_fired_at": self.episodes[0]["fired_at"] if self.episodes else None,
                "time_to_detect_s_p50": p50, "time_to_detect_s_max": mx,
                "threshold_usd": self.s.threshold_usd, "window": self.s.window,
                "peak_window_usd": round(self.peak, 6),
                "by": [{"workflow_tag": wf, "team": tm, "fires": n} for (wf, tm), n in sorted(by.items())],
                "episodes": self.episodes[:20]}


def _label(value: Any) -> str:
    return UNTAGGED if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


# -- all rules ----------------------------------------------------------------------------------------------------
class AlertBacktest:
    """The alert rules over one replay (recorded, or one candidate's), fed chunk by chunk."""

    def __init__(self, settings: Alerts) -> None:
        self.settings = settings
        self.budget = BudgetAlerts(settings) if settings.budget_near_ceiling.enabled else None
        self.untagged = UntaggedSpike(settings) if settings.untagged_spend_spike.enabled else None

    def chunk(self, ts, project) -> dict[str, Any]:
        """What :meth:`add` needs of a chunk apart from the costs: make it once for every replay of the chunk."""
        ts, project = np.asarray(ts, dtype=np.int64), np.asarray(project, dtype=object)
        return {"budget": self.budget.groups(ts, project) if self.budget is not None else None}

    def add(self, ts, project, workflow, team, cost, chunk: dict[str, Any] | None = None) -> None:
        """One time-ordered chunk and the replay's costs; ``chunk``: :meth:`chunk` of it if already made."""
        ts, cost = np.asarray(ts, dtype=np.int64), np.nan_to_num(np.asarray(cost, dtype=np.float64))
        project = np.asarray(project, dtype=object)
        if self.budget is not None:
            self.budget.add(ts, project, cost, chunk["budget"] if chunk is not None else None)
        if self.untagged is not None:
            self.untagged.add(ts, project, cost, np.asarray(workflow, dtype=object), np.asarray(team, dtype=object))

    def merge(self, other: AlertBacktest) -> AlertBacktest:
        """Fold in the backtest of another partition: other projects, and the untagged rows in one of the two."""
        if self.budget is not None:
            self.budget.merge(other.budget)
        if self.untagged is not None:
            self.untagged = self.untagged.merge(other.untagged)
        return self

    def summary(self, loop_sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        s = self.settings
        if s.runaway_agent.enabled:
            rate = [x for x in loop_sessions if x["rule"] == "rate"]
            p50, mx = _stats([x["detection_delay_s"] for x in rate if x["detection_delay_s"] is not None])
            by = collections.Counter((x["workflow_tag"], x["team"]) for x in rate)
            out.append({"alert": "runaway_agent", "severity": s.runaway_agent.severity, "fires": len(rate),
                        "first_fired_at": min((x["detected_at"] for x in rate), default=None),
                        "time_to_detect_s_p50": p50, "time_to_detect_s_max": mx,
                        "by": [{"workflow_tag": wf, "team": tm, "fires": n} for (wf, tm), n in sorted(by.items(),
                               key=lambda kv: (str(kv[0][0]), str(kv[0][1])))],
                        "sessions": [x["session_id"] for x in rate][:50]})
        if self.budget is not None:
            rows = self.budget.summary()
            fired = [r for r in rows if r["fired_at"]]
            soft = [r for r in rows if r["soft_alert_at"]]
            p50, mx = _stats([r["lead_time_s"] for r in fired if r["lead_time_s"] is not None])
            out.append({"alert": "budget_near_ceiling", "severity": s.budget_near_ceiling.severity,
                        "fires": len(fired), "first_fired_at": min((r["fired_at"] for r in fired), default=None),
                        "soft_alert_fires": len(soft),
                        "first_soft_alert_at": min((r["soft_alert_at"] for r in soft), default=None),
                        "ceilings_reached": sum(r["ceiling_reached_at"] is not None for r in rows),
                        "lead_time_s_p50": p50, "lead_time_s_max": mx,
                        "ceilings_configured": len(s.budget_near_ceiling.ceilings), "by": rows})
        if self.untagged is not None:
            out.append(self.untagged.summary())
        return out


def compact(backtest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-candidate view: fires, first fire and time to detect of each rule, and where it fired."""
    keep = ("alert", "fires", "first_fired_at", "time_to_detect_s_p50", "time_to_detect_s_max", "soft_alert_fires",
            "ceilings_reached", "lead_time_s_p50", "peak_window_usd")
    out = []
    for a in backtest:
        row = {k: a[k] for k in keep if k in a}
        if a["alert"] == "budget_near_ceiling":
            row["projects"] = sorted({r["project"] for r in a["by"] if r["fired_at"]})
        else:
            row["workflows"] = sorted({str(r["workflow_tag"]) for r in a["by"]})
        out.append(row)
    return out


# -- Prometheus ---------------------------------------------------------------------------------------------------
def prometheus_rules(settings: Alerts, loops: LoopDetection) -> dict[str, Any]:
    """Prometheus alerting (and recording) rules for the rule set, each alert with its runbook as an annotation."""
    m, lp = settings.cost_metric, settings.metadata_label_prefix
    session, workflow, project = f"{lp}session_id", f"{lp}workflow_tag", f"{lp}project"
    window, days = loops.window, loops.baseline_days
    per_session = f"tfysim:session_cost_usd:increase{window}"
    baseline = f"{per_session}:q{int(round(loops.quantile * 100))}_{days}d"
    rules: list[dict[str, Any]] = []
    if settings.runaway_agent.enabled:
        rules += [
            {"record": per_session,
             "expr": f"sum by ({session}, {workflow}) (increase({m}{{{session}!=\"\"}}[{window}]))"},
            {"record": baseline,
             "expr": f"quantile_over_time({loops.quantile}, (quantile by ({workflow}) ({loops.quantile}, "
                     f"{per_session}))[{days}d:{window}])"},
            {"alert": "runaway_agent",
             "expr": f"{per_session} > on ({workflow}) group_left() ({loops.multiplier} * {baseline})",
             "for": loops.for_,
             "labels": {"severity": settings.runaway_agent.severity, "team": settings.runaway_agent.team},
             "annotations": {
                 "summary": "Session {{ $labels." + session + " }} (workflow {{ $labels." + workflow + " }}) spends "
                            f"more than {loops.multiplier:g}x its workflow's p{int(round(loops.quantile * 100))} "
                            f"per {window}",
                 "runbook": RUNBOOKS["runaway_agent"],
                 "tfysim_note": (f"the backtest's baseline is the pooled quantile of per-session {window} spend over "
                                 f"{days} days; this recording rule takes the quantile over time of the per-instant "
                                 "quantile across sessions, an approximation. Needs LLM_GATEWAY_METADATA_LOGGING_KEYS "
                                 "to include session_id and workflow_tag.")}},
        ]
    b = settings.budget_near_ceiling
    if b.enabled:
        for ceiling in b.ceilings:
            rng = _PROM_RANGE[ceiling.unit]
            match = f"{project}!=\"\"" if ceiling.project == "*" else f"{project}=\"{ceiling.project}\""
            spend = f"sum by ({project}) (increase({m}{{{match}}}[{rng}]))"
            levels = [("budget_near_ceiling", b.threshold_pct, b.severity)]
            if b.soft_threshold_pct is not None:
                levels.append(("budget_soft_alert", b.soft_threshold_pct, "info"))
            for name, pct, severity in levels:
                rules.append({
                    "alert": name, "expr": f"{spend} > {pct / 100:g} * {ceiling.limit_to:g}",
                    "labels": {"severity": severity, "team": b.team,
                               "ceiling": "every-project" if ceiling.project == "*" else ceiling.project},
                    "annotations": {
                        "summary": "Project {{ $labels." + project + " }} is above " + f"{pct:g}% of its "
                                   f"${ceiling.limit_to:,.2f} {ceiling.unit.replace('_', ' ')} ceiling",
                        "runbook": RUNBOOKS[name],
                        "tfysim_note": f"increase over a trailing {rng}; the gateway's budget window is calendar "
                                       "(UTC midnight, Monday, the 1st), so this fires on the trailing spend"}})
    u = settings.untagged_spend_spike
    if u.enabled:
        rules.append({
            "alert": "untagged_spend_spike", "expr": f"sum(increase({m}{{{project}=\"\"}}[{u.window}])) > "
                                                     f"{u.threshold_usd:g}",
            "labels": {"severity": u.severity, "team": u.team},
            "annotations": {"summary": f"More than ${u.threshold_usd:,.2f} of spend without a project in "
                                       f"{u.window}",
                            "runbook": RUNBOOKS["untagged_spend_spike"],
                            "tfysim_note": "requests without a project carry no project label (matched by =\"\")"}})
    return {"groups": [{"name": "tfysim-control-room", "rules": rules}]}
