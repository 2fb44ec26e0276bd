"""CI gate outputs: verdict rows, JUnit XML (one testcase per candidate x gate) and a GitHub step-summary table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from simulator.formats import money
from simulator.outputs import escape


def gate_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per candidate x gate: candidate, gate, passed, detail."""
    return [{"candidate": p["name"], "gate": g["name"], "passed": bool(g["passed"]), "detail": g["detail"]}
            for p in summary.get("policies", []) for g in p.get("gates") or []]


def junit_xml(summary: dict[str, Any]) -> str:
    """JUnit XML: a testsuite per scenario, a testcase per candidate x gate; failures carry the figures."""
    rows = [{k: escape.xml(v) if isinstance(v, str) else v for k, v in r.items()} for r in gate_rows(summary)]
    scenario = escape.xml(summary.get("scenario", "scenario"))
    failures = sum(not r["passed"] for r in rows)
    suites = ET.Element("testsuites", name="tfysim gate", tests=str(len(rows)), failures=str(failures))
    suite = ET.SubElement(suites, "testsuite", name=f"tfysim.{scenario}", tests=str(len(rows)),
                          failures=str(failures), errors="0", skipped="0")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"tfysim.{scenario}.{r['candidate']}", name=r["gate"],
                             time="0")
        if not r["passed"]:
            fail = ET.SubElement(case, "failure", message=r["detail"], type="GateFailed")
            fail.text = f"candidate {r['candidate']}: gate {r['gate']} failed: {r['detail']}"
        else:
            ET.SubElement(case, "system-out").text = r["detail"]
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _md(text: str) -> str:
    return escape.markdown(text, table_cell=True)


def github_summary(summary: dict[str, Any]) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: verdict line, per-candidate savings and the gate table."""
    rows = gate_rows(summary)
    failed = [r for r in rows if not r["passed"]]
    verdict = ("no gates configured" if not rows else
               f"**{len(failed)} of {len(rows)} gate(s) failed**" if failed else f"all {len(rows)} gate(s) passed")
    out = [f"### tfysim gate: {escape.markdown_code(summary.get('scenario'))}: {verdict}", "",
           "| candidate | monthly savings | 95% interval | accuracy change (moved requests; traffic-wide) | gates |",
           "|---|---|---|---|---|"]
    from simulator.outputs.report.content import accuracy_text

    for p in summary.get("policies", []):
        lo, hi = p.get("monthly_savings_ci95") or (None, None)
        gates = p.get("gates") or []
        bad = [g["name"] for g in gates if not g["passed"]]
        out.append(f"| {_md(p['name'])} | {money(p['monthly_savings_usd'])} | "
                   f"{'n/a' if lo is None else f'{money(lo)} to {money(hi)}'} | "
                   f"{_md(accuracy_text(p))} | "
                   f"{'no gates' if not gates else ('FAILED: ' + _md(', '.join(bad)) if bad else 'passed')} |")
    if rows:
        out += ["", "| candidate | gate | verdict | figures |", "|---|---|---|---|"]
        out += [f"| {_md(r['candidate'])} | {_md(r['gate'])} | {'pass' if r['passed'] else ':x: FAIL'} | "
                f"{_md(r['detail'])} |" for r in rows]
    return "\n".join(out) + "\n\n"


#: the figures of each candidate in ``tfysim gate --json`` (the names summary.json and ``tfysim run`` use)
GATE_FIGURES = ("monthly_savings_usd", "monthly_savings_ci95", "savings_pct", "requests_changed",
                "accuracy_delta_moved_pp", "accuracy_delta_moved_ci95", "accuracy_delta_pp", "accuracy_delta_ci95",
                "requests_refused", "spend_prevented_usd", "latency_p95_ms_before", "latency_p95_ms_after",
                "error_rate_after")


def gate_report(summary: dict[str, Any]) -> dict[str, Any]:
    """``tfysim gate --json``: the verdict, every gate row, and per candidate its figures and gates."""
    rows = gate_rows(summary)
    return {"scenario": summary.get("scenario"), "passed": all(r["passed"] for r in rows),
            "gates_failed": sum(not r["passed"] for r in rows), "gates": rows,
            "policies": [{"name": p["name"], **{k: p.get(k) for k in GATE_FIGURES}} for p in summary["policies"]]}


def console_table(summary: dict[str, Any]) -> str:
    """Terminal lines: every value through :func:`escape.terminal` (no value can add a line or an escape code)."""
    rows = [{k: escape.terminal(v) if isinstance(v, str) else v for k, v in r.items()} for r in gate_rows(summary)]
    scenario = escape.terminal(summary.get("scenario"))
    if not rows:
        return f"{scenario}: no gates configured (add gates: to the scenario or its candidates)."
    width = max(len(f"{r['candidate']} / {r['gate']}") for r in rows)
    lines = [f"{'PASS' if r['passed'] else 'FAIL'}  {(r['candidate'] + ' / ' + r['gate']).ljust(width)}  {r['detail']}"
             for r in rows]
    failed = sum(not r["passed"] for r in rows)
    lines.append(f"{scenario}: {failed} of {len(rows)} gate(s) failed." if failed else
                 f"{scenario}: all {len(rows)} gate(s) passed.")
    return "\n".join(lines)
