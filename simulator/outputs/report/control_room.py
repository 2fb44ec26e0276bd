"""The report's "Control room" section, rendered from summary.json's ``loops``, ``alerts``, ``outcomes``,
``leverage`` and ``adoption`` only (and each candidate's ``session_kill``, ``alerts`` and ``outcomes``).

Views are by workflow, project and team; session ids appear because the runbook's kill step needs them, user ids
never. Every table ends in something to do.
"""

from __future__ import annotations

from typing import Any

from simulator.formats import money
from simulator.outputs.escape import chart_label
from simulator.outputs.report.document import Chart, Section, Table, literal

RULES_FILE = "alerts/tfysim-alerts.rules.yml"


_money = money


def _s(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f} s" if x < 600 else f"{x / 60:,.1f} min"


def _time(x: str | None) -> str:
    return "n/a" if not x else x[:19].replace("T", " ")


def _kill_candidates(summary: dict) -> list[dict]:
    return [p for p in summary.get("policies", []) if p.get("session_kill")]


def control_room_actions(summary: dict) -> list[str]:
    """The control room's actions, most urgent first (also listed in the report's headline)."""
    out: list[str] = []
    loops = summary.get("loops")
    if loops and loops.get("sessions_flagged"):
        kills = _kill_candidates(summary)
        how = (f"apply `routing/{literal(kills[0]['name'])}.session-kill.truefoundry.yaml` (simulated: "
               f"{_money(kills[0]['session_kill']['spend_avoided_usd'])} avoided)" if kills else
               "add a candidate with `kill_runaway_sessions: true` to size the kill rule")
        out.append(f"Stop runaway sessions: {loops['sessions_flagged']} session(s) flagged, "
                   f"{_money(loops['cost_after_detection_usd'])} spent after detection; follow the runaway_agent "
                   f"runbook for each session id below and {how}.")
    for alert in (summary.get("alerts") or {}).get("backtest", []):
        if alert["alert"] == "budget_near_ceiling" and alert.get("ceilings_reached"):
            out.append(f"Budget ceilings were reached {alert['ceilings_reached']} time(s) with a median lead time of "
                       f"{_s(alert.get('lead_time_s_p50'))} after the {alert['alert']} alert: raise the ceiling or "
                       "enable a fallback-to-cheaper-model policy for those projects.")
        if alert["alert"] == "budget_near_ceiling" and not alert.get("ceilings_configured"):
            out.append("Configure a budget ceiling per project (alerts.budget_near_ceiling.ceilings) so the 80% and "
                       "90% alerts can be backtested.")
        if alert["alert"] == "untagged_spend_spike" and alert.get("fires"):
            top = max(alert["by"], key=lambda r: r["fires"]) if alert["by"] else None
            where = f" (mostly `{literal(top['workflow_tag'])}`, team `{literal(top['team'])}`)" if top else ""
            out.append(f"Untagged spend crossed {_money(alert['threshold_usd'])} per {alert['window']} "
                       f"{alert['fires']} time(s){where}: require a project in X-TFY-METADATA for those callers.")
    out += (summary.get("outcomes") or {}).get("actions", [])
    out += (summary.get("leverage") or {}).get("actions", [])
    out += (summary.get("adoption") or {}).get("actions", [])
    return out


def _adoption_chart(rows: list[dict]):
    shown = [r for r in rows if not r["suppressed"] and r["mean_daily_adoption_pct"] is not None]

    def draw(fig):
        ax = fig.add_subplot(111)
        teams = sorted({r["team"] for r in shown})
        tools = sorted({r["tool"] for r in shown})
        width = 0.8 / max(len(tools), 1)
        for j, tool in enumerate(tools):
            xs, ys = [], []
            for i, team in enumerate(teams):
                r = next((r for r in shown if r["team"] == team and r["tool"] == tool), None)
                if r is not None:
                    xs.append(i + j * width - 0.4 + width / 2)
                    ys.append(r["mean_daily_adoption_pct"])
            ax.bar(xs, ys, width=width, label=chart_label(tool))
        ax.set_xticks(range(len(teams)))
        ax.set_xticklabels([chart_label(t) for t in teams])
        ax.set_ylabel("mean daily active users, % of team")
        ax.set_ylim(0, 125)  # room for the legend above the bars
        ax.set_title("Adoption per team and tool (suppressed cells left out)")
        ax.legend(loc="upper center", fontsize="small", ncol=min(len(tools), 6))
        ax.grid(axis="y", alpha=0.3)
    return draw


def control_room_section(summary: dict) -> Section | None:
    """The section, or None when the run computed no control-room panel."""
    keys = ("loops", "alerts", "outcomes", "leverage", "adoption")
    if not any(summary.get(k) for k in keys) and not _kill_candidates(summary):
        return None
    sec = Section("Control room", anchor="control-room")
    sec.add("The daily and sprint panels of the control room, backtested on the same traffic in time order: runaway "
            "sessions, alert rules, cost per outcome, leverage by workflow, adoption. Team, project and workflow "
            "views only; session ids are shown because the kill step of the runbook needs them.")
    loops = summary.get("loops")
    if loops:
        r = loops["rule"]
        sec.add(f"**Runaway sessions.** Rule: a session's {r['weight']} over a sliding {r['window']} above "
                f"{r['multiplier']:g}x the p{r['quantile'] * 100:g} of its workflow's per-session {r['window']} totals "
                f"over the previous {r['baseline_days']} days, for {r['for']}; also {r['identical_requests']} identical "
                f"requests or {r['retry_storm']} failed attempts in a row. {loops['sessions_flagged']:,} of "
                f"{loops['sessions_checked']:,} sessions flagged; **{_money(loops['cost_after_detection_usd'])} spent "
                f"after detection** (what a kill at detection would have saved); detection delay from the first "
                f"excess p50 {_s(loops['detection_delay_s_p50'])}, max {_s(loops['detection_delay_s_max'])}.")
        if loops["sessions"]:
            sec.add(Table(["session_id", "workflow", "team", "rule", "started (UTC)", "detected (UTC)", "delay",
                           "requests after", "cost after detection"],
                          [[s["session_id"], s["workflow_tag"], s["team"], s["rule"], _time(s["started_at"]),
                            _time(s["detected_at"]), _s(s["detection_delay_s"]), s["requests_after_detection"],
                            _money(s["cost_after_detection_usd"])] for s in loops["sessions"][:25]],
                          caption="Flagged sessions (run the runaway_agent runbook for each)"))
    for p in _kill_candidates(summary):
        k = p["session_kill"]
        sec.add(f"Candidate `{literal(p['name'])}` kills flagged sessions in the replay: "
                f"{k['sessions_killed']} session(s), "
                f"{k['requests_blocked']:,} requests blocked, {_money(k['spend_avoided_usd'])} avoided "
                f"({_money(p.get('monthly_savings_usd'))}/month); gateway rule: "
                f"`routing/{literal(p['name'])}.session-kill.truefoundry.yaml`.")
    alerts = summary.get("alerts")
    if alerts:
        rows = []
        for a in alerts["backtest"]:
            if a["alert"] == "budget_near_ceiling":
                detect = f"lead {_s(a.get('lead_time_s_p50'))} before the ceiling"
                where = ", ".join(sorted({r["project"] for r in a["by"] if r["fired_at"]})) or "-"
                fires = f"{a['fires']} (soft 80%: {a.get('soft_alert_fires', 0)})"
            else:
                detect = f"p50 {_s(a.get('time_to_detect_s_p50'))}, max {_s(a.get('time_to_detect_s_max'))}"
                where = ", ".join(f"{r['workflow_tag']} ({r['team']})" for r in a["by"]) or "-"
                fires = a["fires"]
                if a["alert"] == "untagged_spend_spike":
                    where += f"; peak {_money(a['peak_window_usd'])} per {a['window']}"
            rows.append([a["alert"], a["severity"], fires, _time(a["first_fired_at"]), detect, where])
        sec.add(Table(["alert", "severity", "fires", "first fired (UTC)", "time to detect", "where"], rows,
                      caption="Alert rules backtested on the recorded traffic"))
        cand_rows = [[p["name"]] + [a["fires"] for a in p["alerts"]] for p in summary.get("policies", [])
                     if p.get("alerts")]
        if cand_rows:
            sec.add(Table(["candidate"] + [a["alert"] for a in alerts["backtest"]], cand_rows,
                          caption="Alert fires under each candidate"))
        sec.add(f"The rules are written for Prometheus in `{RULES_FILE}` (each with its runbook as an annotation; "
                "check with `promtool check rules`). Not backtested: " + "; ".join(alerts.get("not_backtested", []))
                + ".")
    outcomes = summary.get("outcomes")
    if outcomes:
        sec.add(f"**Cost per outcome.** {outcomes['rows_loaded']:,} outcomes loaded ({outcomes['rows_rejected']:,} "
                f"rejected, {outcomes['rows_skipped']:,} skipped), {outcomes['outcomes_matched']:,} joined to a "
                f"session of this traffic. Both denominators: runs that produced nothing stay visible.")
        sec.add(Table(["workflow", "sessions", "with an outcome", "outcomes", "cost", "per outcome", "per session"],
                      [[r["workflow_tag"], r["sessions"], r["sessions_with_outcome"], r["outcomes"],
                        _money(r["cost_usd"]), _money(r["cost_per_outcome_usd"]), _money(r["cost_per_session_usd"])]
                       for r in outcomes["by_workflow"]], caption="Cost per outcome by workflow (recorded cost)"))
        projected = [p for p in summary.get("policies", []) if p.get("outcomes")]
        if projected:
            workflows = [r["workflow_tag"] for r in outcomes["by_workflow"] if r["outcomes"]]
            rows = []
            for p in projected:
                per = {r["workflow_tag"]: r["cost_per_outcome_usd"] for r in p["outcomes"]}
                rows.append([p["name"]] + [_money(per.get(w)) for w in workflows])
            base = {r["workflow_tag"]: r["cost_per_outcome_usd"] for r in outcomes["by_workflow"]}
            rows.insert(0, ["recorded"] + [_money(base.get(w)) for w in workflows])
            sec.add(Table(["cost per outcome"] + workflows, rows,
                          caption="Projected cost per outcome under each candidate (outcomes held fixed)"))
    leverage = summary.get("leverage")
    if leverage:
        sec.add("**Leverage by workflow** (the article's diagnostic score per session, 0-100, aggregated by "
                "workflow_tag; never by person). Not measured in gateway logs: " + "; ".join(leverage["not_measured"])
                + ".")
        sec.add(Table(["workflow", "sessions", "with an outcome", "mean score", "median", "scoring 0", "loop-flagged"],
                      [[r["workflow_tag"], r["sessions"], r["sessions_with_outcome"], r["score_mean"],
                        r["score_median"], r["sessions_scoring_zero"], r["loop_flagged"]]
                       for r in leverage["by_workflow"]], caption="Leverage score by workflow"))
    adoption = summary.get("adoption")
    if adoption:
        sec.add(f"**Adoption** ({adoption['unit']}; tool = {adoption['tool_source']}; cells under "
                f"{adoption['min_users']} users suppressed).")
        rows = adoption["by_team_tool"]
        if any(not r["suppressed"] for r in rows):
            sec.add(Chart("adoption", "Adoption per team and tool", _adoption_chart(rows)))
        sec.add(Table(["team", "tool", "from", "users in the window", "mean daily active", "% of team per day"],
                      [[r["team"], r["tool"], r["source"], r["users_in_window"] if not r["suppressed"] else "<" +
                        str(adoption["min_users"]), r["mean_daily_active_users"], r["mean_daily_adoption_pct"]]
                       for r in rows], caption="Adoption by team and tool"))
    actions = control_room_actions(summary)
    if actions:
        sec.add("**What to do next (control room)**")
        sec.add(actions)
    return sec
