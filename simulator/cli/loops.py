"""``tfysim loops``: run the loop rules over traffic in time order and, with the generator's labels, score them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simulator.control.loops import LoopState, loop_inputs
from simulator.control.settings import LoopDetection
from simulator.core import Prepared
from simulator.errors import InputError
from simulator.io.readers import expand_paths, read_any
from simulator.io.traffic import load_traffic
from simulator.outputs.escape import terminal
from simulator.pricing.catalog import Catalog


def read_truth(path: str | Path) -> set[str]:
    """Session ids labelled runaway: any table with a ``session_id`` column."""
    ids: set[str] = set()
    for file in expand_paths([path]):
        raw = read_any(file)
        if "session_id" not in raw.frame.columns:
            raise InputError(f"{file}: a truth file needs a session_id column.")
        ids |= {str(s) for s in raw.frame["session_id"].dropna()}
    return ids


def loops_command(traffic: list[str], scenario: str | Path | None, truth: str | Path | None,
                  weight: str | None, pricing: str | Path | None, timezone: str | None) -> dict[str, Any]:
    """The ``loops`` section of summary.json for ``traffic``: the scenario's rule (or the default), optionally
    with another ``weight``, scored against ``truth`` when given."""
    rule = LoopDetection()
    catalog = None
    if scenario is not None:
        from simulator.routing.scenario import load_scenario

        loaded_scenario = load_scenario(scenario)
        rule = loaded_scenario.loop_detection or rule
        catalog = Catalog.load(loaded_scenario.path(loaded_scenario.pricing), loaded_scenario.models)
        traffic = traffic or [str(p) for p in loaded_scenario.paths("traffic")]
        timezone = timezone or loaded_scenario.timezone
    if weight:
        rule = rule.model_copy(update={"weight": weight})
    if not traffic:
        raise InputError("no traffic given: name files, or --scenario with a traffic: key.")
    loaded = load_traffic(traffic, timezone=timezone)
    p = Prepared(loaded, catalog or Catalog.load(pricing))
    cost = np.where(np.isfinite(p.recorded_cost), p.recorded_cost, p.baseline_cost)
    state = LoopState(rule)
    state.step(**loop_inputs(loaded.frame, cost, p.status, p.inp, p.out, rule))
    return {**loaded.counts(), **state.summary(read_truth(truth) if truth else None)}


def loops_table(report: dict[str, Any]) -> str:
    r = report["rule"]
    lines = [f"{report['rows_replayed']:,} requests, {report['sessions_checked']:,} sessions checked; rule: "
             f"{r['weight']} over a sliding {r['window']} > {r['multiplier']:g} x p{r['quantile'] * 100:g} of the "
             f"workflow's previous {r['baseline_days']} days (for {r['for']}), {r['identical_requests']} identical "
             f"requests, {r['retry_storm']} failed attempts in a row",
             f"{report['sessions_flagged']} session(s) flagged; cost after detection "
             f"${report['cost_after_detection_usd']:,.2f}; detection delay p50 {report['detection_delay_s_p50']} s, "
             f"max {report['detection_delay_s_max']} s", ""]
    lines.append(f"{'session_id':<24} {'workflow':<20} {'rule':<19} {'detected at (UTC)':<26} {'after':>6} "
                 f"{'cost after':>11}")
    for s in report["sessions"]:
        lines.append(f"{terminal(s['session_id'], 24):<24} {terminal(s['workflow_tag'], 20):<20} {s['rule']:<19} "
                     f"{s['detected_at'][:26]:<26} {s['requests_after_detection']:>6} "
                     f"${s['cost_after_detection_usd']:>10,.2f}")
    t = report.get("truth")
    if t:
        lines += ["", f"against the labels: {t['true_flags']} of {t['labeled_runaway']} runaway sessions flagged "
                      f"(recall {_pct(t['recall'])}), {t['false_flags']} false flag(s) among "
                      f"{report['sessions_checked'] - t['labeled_runaway']:,} other sessions (false-flag rate "
                      f"{_pct(t['false_flag_rate'], 3)}), precision {_pct(t['precision'])}"]
    return "\n".join(lines)


def _pct(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"
