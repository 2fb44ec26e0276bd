"""``tfysim plan``: the plan of a scenario (its passing candidates and opportunities combined) as console text."""

from __future__ import annotations

from typing import Any


def _money(x: Any) -> str:
    return "n/a" if x is None else (f"-${-x:,.2f}" if x < 0 else f"${x:,.2f}")


def _ci(ci: Any) -> str:
    return "n/a" if not ci or ci[0] is None else f"{_money(ci[0])} to {_money(ci[1])}"


def plan_text(summary: dict, routing_files: dict) -> str:
    """What the plan combines, what it saves with its interval, its gates and the files to apply."""
    plan = summary.get("plan") or {}
    if not plan.get("candidate"):
        return (f"{summary['scenario']}: no plan. " + plan.get("note", "no candidate or opportunity passed its "
                                                                        "gates with savings.")).rstrip()
    lines = [f"{summary['scenario']}: plan '{plan['name']}' saves {_money(plan['monthly_savings_usd'])}/month "
             f"(95% CI {_ci(plan['monthly_savings_ci95'])}); the parts alone: "
             f"{_money(plan['sum_of_parts_monthly_savings_usd'])} (interactions {_money(plan['interaction_monthly_usd'])})"]
    for c in plan["components"]:
        lines.append(f"  + {c['name']} ({c['source']}): {_money(c['monthly_savings_usd'])}/month alone")
    for s in plan.get("skipped") or []:
        lines.append(f"  - {s['name']} ({s['source']}): left out, {s['reason']}")
    for g in plan.get("gates") or []:
        lines.append(f"  {'PASS' if g['passed'] else 'FAIL'}  {g['name']}: {g['detail']}")
    entry = routing_files.get(plan["name"]) or {}
    files = [f for f in entry.get("files", []) if f.endswith(".yaml")]
    if files:
        lines.append("apply: " + "; ".join(f"tfy apply -f routing/{f} --dry-run --show-diff" for f in files))
    for change in (entry.get("client_changes") or []) + (plan.get("client_changes") or []):
        lines.append(f"client change: {change}")
    return "\n".join(lines)


def plan_passed(summary: dict) -> bool:
    plan = summary.get("plan") or {}
    return all(g["passed"] for g in plan.get("gates") or [])


__all__ = ["plan_passed", "plan_text"]
