"""Write a run's folder (summary.json, rejects.jsonl, requests Parquet, and the hooked reports) and console text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.formats import minute, money, percent
from simulator.outputs.escape import terminal
from simulator.outputs.files import write_json, write_rejects, write_text
from simulator.outputs.folder import run_folder

#: Extra writers (report, gateway configs) registered by other modules: fn(result, folder, include_prompts) -> paths.
WRITERS: list[Callable[..., list[Path]]] = []


def write_run(result, folder: str | Path, *, requests=None, include_prompts: bool = False) -> list[Path]:
    """Write a run's folder from its summary and rejects; ``requests`` is the :class:`RequestsWriter` that saw the
    replay when per-request outcomes were asked for. The folder is built beside ``folder`` and swapped in whole
    (:func:`simulator.outputs.folder.run_folder`): it never mixes files of two runs."""
    out = Path(folder)
    with run_folder(out) as staging:
        written = [write_json(staging / "summary.json", result.summary)]
        if result.rows_rejected:
            written.append(write_rejects(staging / "rejects.jsonl", result.rejects))
        if requests is not None:
            for path in requests.files():
                written.append(write_text(staging / "requests" / path.name, path.read_bytes()))
        for writer in WRITERS:
            written.extend(writer(result, staging, include_prompts))
    return [out / Path(w).relative_to(staging) for w in written]


def write_rejects_only(result, folder: str | Path) -> list[Path]:
    """The run folder of a failed ``--strict`` run: rejects.jsonl and nothing else (no report or configs)."""
    out = Path(folder)
    with run_folder(out) as staging:
        written = [write_rejects(staging / "rejects.jsonl", result.rejects)]
    return [out / Path(w).relative_to(staging) for w in written]


_money = money


def policy_line(p: dict[str, Any]) -> str:
    """One candidate in the console headline. Refused requests (budgets, rate limits, kills) are spend prevented,
    never savings: they are named apart, and a candidate that costs more than the recording says so."""
    lo, hi = p["monthly_savings_ci95"]
    failed = [terminal(g["name"]) for g in p["gates"] if not g["passed"]]
    verdict = " gates: " + ("FAILED " + ", ".join(failed) if failed else "passed") if p["gates"] else ""
    usd = p["monthly_savings_usd"]
    head = (f"saves {money(usd)}/month" if round(usd, 2) >= 0 else f"costs {money(-usd)}/month MORE than recorded")
    text = (f"  {terminal(p['name'])}: {head} (savings 95% CI {money(lo)} to {money(hi)}), {percent(p['savings_pct'])} of the "
            f"baseline, {p['requests_changed']:,} requests moved")
    refused = p.get("requests_refused", 0) or 0
    if refused:
        text += (f"; {refused:,} requests refused: {money(p.get('spend_prevented_usd') or 0.0)} of spend prevented "
                 "in the window (not a saving: those requests go unanswered)")
    reasons = p.get("cost_increase") or []
    if round(usd, 2) < 0:
        text += ". Why: " + ("; ".join(terminal(r["reason"]) for r in reasons) if reasons else
                             "no moved request costs more; the extra cost comes from cache writes, retries or "
                             "fallbacks (see the report's assumptions)")
    return text + "." + verdict


def console_summary(result, written: list[Path]) -> str:
    """The headline every engine prints (all engines return the same RunResult)."""
    s = result.summary
    t, b = s["traffic"], s["baseline"]
    lines = [
        f"{terminal(s['scenario'])}: {t['rows_replayed']:,} requests replayed ({t['rows_rejected']:,} rejected) from "
        f"{minute(t['start'])} to {minute(t['end'])} ({t['days']:.2f} days); baseline {money(b['cost_usd'])} "
        f"({money(b['monthly_cost_usd'])}/month)",
    ]
    lines += [policy_line(p) for p in s["policies"]]
    lines.append("wrote " + ", ".join(terminal(w) for w in written[:6]) + (" ..." if len(written) > 6 else ""))
    return "\n".join(lines)


def replay_table(report: dict[str, Any]) -> str:
    width = max([len("model")] + [len(terminal(m["model"])) for m in report["models"]])  # ids are never truncated
    lines = [
        f"{report['rows_replayed']:,} requests replayed, {report['rows_rejected']:,} rejected, "
        f"{report['rows_read']:,} read",
        f"catalog cost {_money(report['cost_usd'])}; recorded {_money(report['recorded_cost_usd'])}",
        "",
        f"{'model':<{width}} {'requests':>9} {'catalog':>12} {'recorded':>12} {'drift':>8}",
    ]
    for m in report["models"]:
        drift = "" if m["drift_pct"] is None else percent(m["drift_pct"], 2, signed=True)
        flag = "  <- check" if m["flagged"] else ""
        lines.append(f"{terminal(m['model']):<{width}} {m['requests']:>9,} {_money(m['cost_usd']):>12} "
                     f"{_money(m['recorded_cost_usd']):>12} {drift:>8}{flag}")
    return "\n".join(lines)


# Built-in writers, registered the same way plugins would be (imported last: they import this module's helpers).
from simulator.outputs.alert_rules import write_alert_rules  # noqa: E402
from simulator.outputs.gateways import write_gateway_configs  # noqa: E402
from simulator.outputs.report import write_report  # noqa: E402

WRITERS.extend([write_gateway_configs, write_alert_rules, write_report])
