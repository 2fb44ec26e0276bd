"""Report sections for the levers found without written candidates, and the plan: model opportunities, prompt-caching
opportunities, the plan, service tiers and the week-over-week comparison. Built from summary.json only; every table
ends in something to do, and :func:`lever_actions` adds those actions to the report's queue."""

from __future__ import annotations

from typing import Any

from simulator.formats import money, money_range
from simulator.outputs.report.document import Section, Table, literal


def _pp(x: Any, ci: Any = None) -> str:
    if x is None:
        return "not measured"
    text = f"{x:+.2f} pp"
    return text + (f" (95% CI {ci[0]:+.2f} to {ci[1]:+.2f})" if ci and ci[0] is not None else "")


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _plan_files(routing_files: dict, name: str) -> list[str]:
    return [f"routing/{f}" for f in (routing_files.get(name) or {}).get("files", []) if f.endswith(".yaml")]


def lever_actions(summary: dict, routing_files: dict) -> list[str]:
    """What to do next about the opportunities and caching, most valuable first (the plan's action is the action
    queue's first: :func:`simulator.outputs.report.content.plan_action`)."""
    actions: list[str] = []
    for entry in (summary.get("opportunities") or {}).get("by_workflow", []):
        if entry.get("status") == "label" and entry.get("samples_needed"):
            actions.append(f"Label about {entry['samples_needed']:,} paired eval samples for "
                           f"`{literal(entry['workflow_tag'])}` "
                           "to decide whether a cheaper model holds its accuracy.")
    for entry in (summary.get("cache_opportunities") or {}).get("by_workflow_model", [])[:3]:
        best = entry.get("best")
        if best and best["monthly_savings_usd"] > 0:
            actions.append(f"Cache `{literal(entry['workflow_tag'])}` on `{literal(entry['model'])}`: "
                           f"{best['action']}; saves about {money(best['monthly_savings_usd'])}/month.")
    return actions


def opportunities_section(summary: dict) -> Section | None:
    data = summary.get("opportunities")
    if not data:
        return None
    sec = Section("Model opportunities (found without candidates)", anchor="opportunities")
    sec.add(f"For each workflow, the cheapest model with eval evidence that keeps the accuracy change of the moved "
            f"requests within -{data['margin_pp']:g} pp (non-inferiority, 95%), replayed like any candidate. "
            "Workflows without that evidence say how many paired samples to label.")
    if data.get("note"):
        sec.add(data["note"])
    rows = []
    for e in data["by_workflow"]:
        if e.get("status") == "move":
            todo = f"move to `{e['target']}` (in the plan, or as rule {e['rule']['id']})"
        elif e.get("status") == "label":
            todo = (f"label {e['samples_needed']:,} paired samples" if e.get("samples_needed") else "label samples") \
                + (f" ({e['target']})" if e.get("target") else "")
        else:
            todo = "keep the current models"
        rows.append([e["workflow_tag"], ", ".join(e.get("served_models") or []) or "n/a", todo,
                     money(e.get("monthly_savings_usd")), money_range(e.get("monthly_savings_ci95")),
                     _pp(e.get("accuracy_delta_pp"), e.get("accuracy_delta_ci95")), e.get("evidence", "")])
    sec.add(Table(["workflow", "served by", "what to do", "monthly savings", "95% interval", "accuracy change",
                   "evidence"], rows))
    return sec


def cache_section(summary: dict) -> Section | None:
    data = summary.get("cache_opportunities")
    if not data:
        return None
    sec = Section("Prompt-caching opportunities (found without candidates)", anchor="cache-opportunities")
    sec.add("Per workflow and serving model: how often a prefix recurs, whether it meets the model's minimum "
            "cacheable length (with the tokenizer's count interval: `borderline` means the minimum lies inside it), "
            "and what caching would save at each TTL the provider offers. " + data["note"] + ".")
    rows = []
    for e in data["by_workflow_model"]:
        best = e.get("best") or {}
        interval = e.get("token_count_interval") or [1, 1]
        rows.append([e["workflow_tag"], e["model"], e["requests_with_prefix"], e["recurring_requests"],
                     e["distinct_prefixes"], e.get("prefix_tokens_mean"), e["min_tokens"],
                     f"{e['meets_minimum']} ({e['token_count_basis']} {interval[0]:.2f}-{interval[1]:.2f}x)",
                     f"{best.get('mode', '-')} {best.get('ttl', '')}".strip(), money(best.get("monthly_savings_usd")),
                     best.get("action", "nothing saves money here")])
    sec.add(Table(["workflow", "model", "requests with a prefix", "recurring", "distinct prefixes",
                   "mean prefix tokens", "minimum", "meets minimum", "best option", "monthly savings", "what to do"],
                  rows))
    detail = []
    for e in data["by_workflow_model"]:
        for o in e["options"]:
            detail.append([e["workflow_tag"], e["model"], o["mode"], o["ttl"], _pct(o.get("hit_rate")),
                           money(o.get("monthly_savings_usd")), money(o.get("storage_usd"))
                           if o.get("storage_usd") is not None else "-"])
    if detail:
        sec.add(Table(["workflow", "model", "mode", "TTL", "hit rate", "monthly savings", "storage in the window"],
                      detail, caption="Every option simulated"))
    return sec


def plan_section(summary: dict, routing_files: dict) -> Section | None:
    plan = summary.get("plan")
    if not plan:
        return None
    sec = Section("The plan: compatible changes combined", anchor="plan")
    if not plan.get("candidate"):
        sec.add(plan.get("note", "nothing to combine"))
        return sec
    sec.add(f"`{literal(plan['name'])}` combines the candidates and opportunities below whose rules never claim "
            "the same "
            f"request, replayed together (a downgrade changes what a budget blocks and what a cache holds): "
            f"**{money(plan['monthly_savings_usd'])}/month** (95% CI {money_range(plan['monthly_savings_ci95'])}) "
            f"against {money(plan['sum_of_parts_monthly_savings_usd'])} for the parts replayed one by one "
            f"(interactions: {money(plan['interaction_monthly_usd'])}/month)."
            + (f" Interval: {plan['interval_method']}" if plan.get("interval_method") else ""))
    sec.add(Table(["component", "from", "monthly savings alone", "95% interval"],
                  [[c["name"], c["source"], money(c["monthly_savings_usd"]), money_range(c["monthly_savings_ci95"])]
                   for c in plan["components"]]))
    sec.add(Table(["gate", "verdict", "figures"], [[g["name"], "pass" if g["passed"] else "FAIL", g["detail"]]
                                                 for g in plan.get("gates") or []], caption="Gates of the plan"))
    files = _plan_files(routing_files, plan["name"])
    changes = ((routing_files.get(plan["name"]) or {}).get("client_changes") or []) + plan.get("client_changes", [])
    sec.add(["One config per config type: " + (", ".join(f"`{f}`" for f in files) if files else "none")
             + " (apply each with `tfy apply -f`)."] + [f"Client change: {c}" for c in changes])
    if plan.get("skipped"):
        sec.add(Table(["left out", "from", "why"], [[s["name"], s["source"], s["reason"]] for s in plan["skipped"]],
                      caption="Not combined"))
    if plan.get("assumptions"):
        sec.add("**Assumptions of the plan's replay**")
        sec.add(list(plan["assumptions"]))
    return sec


def tiers_section(summary: dict) -> Section | None:
    rows = []
    for p in summary.get("policies", []):
        for t in (p.get("service_tiers") or {}).get("by_tier", []):
            rows.append([p["name"], t["service_tier"], t["model"], t["requests"], money(t["cost_at_default_tier_usd"]),
                         money(t["cost_usd"]), t["latency"], t["how_to_apply"]])
    if not rows:
        return None
    sec = Section("Service tiers", anchor="service-tiers")
    sec.add("Batch and flex processing trade latency for price; batch only serves workflows nobody waits on "
            "(`interactive: false`) and is a client change, not a routing rule.")
    sec.add(Table(["candidate", "tier", "model", "requests", "cost on the default tier", "cost on this tier",
                   "latency", "what has to change"], rows))
    return sec


def since_last_week_section(summary: dict) -> Section | None:
    data = summary.get("since_last_week")
    if not data:
        return None
    sec = Section("Since last week", anchor="since-last-week")
    sec.add(f"Compared with `{literal(data['previous'])}` ({literal(data.get('previous_window') or 'window unknown')})"
            ". A change is "
            "flagged when last week's value lies outside this week's 95% interval.")
    rows = [[r["metric"], r["previous"], r["current"], r["change"], r.get("interval") or "n/a",
             "CHANGED" if r["flagged"] else ""] for r in data["rows"]]
    sec.add(Table(["metric", "last week", "this week", "change", "this week's 95% interval", "flag"], rows))
    return sec


def lever_sections(summary: dict, routing_files: dict) -> list[Section]:
    """Every lever section the summary has data for, in reading order."""
    out = [plan_section(summary, routing_files), opportunities_section(summary), cache_section(summary),
           tiers_section(summary)]
    return [s for s in out if s is not None]


def plan_text(summary: dict, routing_files: dict) -> str:
    """What the plan combines, what it saves with its interval, its gates and the files to apply."""
    plan = summary.get("plan") or {}
    if not plan.get("candidate"):
        return (f"{summary['scenario']}: no plan. " + plan.get("note", "no candidate or opportunity passed its "
                                                                        "gates with savings.")).rstrip()
    lines = [f"{summary['scenario']}: plan '{plan['name']}' saves {money(plan['monthly_savings_usd'])}/month "
             f"(95% CI {money_range(plan['monthly_savings_ci95'])}); the parts alone: "
             f"{money(plan['sum_of_parts_monthly_savings_usd'])} "
             f"(interactions {money(plan['interaction_monthly_usd'])})"]
    for c in plan["components"]:
        lines.append(f"  + {c['name']} ({c['source']}): {money(c['monthly_savings_usd'])}/month alone")
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


__all__ = ["lever_actions", "lever_sections", "plan_passed", "plan_text", "since_last_week_section"]
