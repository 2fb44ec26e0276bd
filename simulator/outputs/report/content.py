"""What the weekly premium-model review says: built from summary.json only (so every engine can write it).

Design rules (from the control-room article that motivates tfysim): team, project and workflow views only, never a
per-person chart or ranking; user ids and prompt text are never printed; every panel ends in something to do
(the action queue at the top collects them). Sections for caching, tokenizer drift and accuracy render only when the
summary carries that data, so the report grows as those modules are wired in.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from simulator.outputs.escape import chart_label
from simulator.outputs.report.document import Chart, Document, Markup, Section, Table, literal
from simulator.outputs.report.levers import lever_actions, lever_sections, since_last_week_section
from simulator.summary.assumptions import WINDOW_WARNING_FACTOR, extrapolation_factor, window_warning

UNTAGGED = "UNTAGGED"
#: Keys never shown by the generic renderer (privacy: per-person data and prompt text).
PRIVATE_KEYS = {"user", "user_id", "users", "user_ids", "end_user", "prompt", "prompts", "prompt_text", "messages",
                "created_by_subject", "subject", "email"}
BREAKDOWN_TITLES = {"model": "model", "team": "team", "project": "project", "workflow_tag": "workflow"}


from simulator.formats import minute, money, money_range  # noqa: E402  (one formatter for every output)


def pct(x: Any, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _pp(d: Any, ci: Any) -> str:
    text = f"{d:+.2f} pp"
    if ci and ci[0] is not None:
        text += f" (95% CI {ci[0]:+.2f} to {ci[1]:+.2f})"
    return text


def accuracy_text(p: dict) -> str:
    """The accuracy change on the moved requests, with the traffic-wide change beside it, both labelled."""
    d = p.get("accuracy_delta_pp")
    if d is None:
        return "not measured"
    moved = p.get("accuracy_delta_moved_pp")
    wide = f"{d:+.2f} pp traffic-wide"
    if moved is None:
        return f"no request moved ({wide})" if not p.get("requests_changed") else f"{wide} (moved requests: n/a)"
    return f"{_pp(moved, p.get('accuracy_delta_moved_ci95'))} on moved requests; {wide}"


def interval_sentences(policies: list[dict]) -> list[str]:
    """The distinct ``interval_method`` sentences of the candidates, in order."""
    out: list[str] = []
    for p in policies:
        m = p.get("interval_method")
        if m and m not in out:
            out.append(m)
    return out


def gate_verdict(p: dict) -> str:
    gates = p.get("gates") or []
    if not gates:
        return "no gates"
    failed = [g["name"] for g in gates if not g["passed"]]
    return "FAILED: " + ", ".join(failed) if failed else "passed"


def _config_file(name: str, routing_files: dict) -> str | None:
    files = (routing_files.get(name) or {}).get("files") or []
    for main in (f"{name}.truefoundry.yaml", f"{name}.session-kill.truefoundry.yaml"):
        if main in files:
            return f"routing/{main}"
    return None


def _tenant_config_types(name: str, routing_files: dict) -> list[str]:
    """TrueFoundry config types a candidate's files replace when applied (virtual models are named groups)."""
    types = ((routing_files.get(name) or {}).get("config_types") or {}).values()
    return sorted({t for t in types if t.startswith("gateway-")})


# -- action queue -------------------------------------------------------------------------------------------------
def _saving(p: dict) -> float:
    return p.get("monthly_savings_usd") or 0.0


def _refused(p: dict) -> tuple[int, float]:
    """Requests refused by budgets / rate limits and the spend that prevents (the replay core's fields when present)."""
    if "requests_refused" in p:
        return int(p.get("requests_refused") or 0), float(p.get("spend_prevented_usd") or 0.0)
    prevented = sum(float(r.get("spend_avoided_usd") or 0.0) for r in (p.get("budgets") or []) + (p.get("rate_limits")
                                                                                                  or []))
    return int(p.get("requests_blocked") or 0), prevented


def _blocker(p: dict) -> bool:
    """Only refuses requests (a spend cap), routes none elsewhere: not a routing optimization."""
    return not p.get("requests_changed") and _refused(p)[0] > 0 and "prompt_caching" not in (p.get("changes") or [])


def _passes(p: dict) -> bool:
    return all(g["passed"] for g in p.get("gates") or [])


def _flips(p: dict) -> list[dict]:
    return [s for s in p.get("sensitivity") or [] if s.get("flips")]


def action_groups(policies: list[dict]) -> list[list[dict]]:
    """Candidates that act on the same requests (shared ``scope`` keys: a moved workflow or a rule's ``when``), as
    groups; each group gets one action. Groups are ordered by their largest monthly savings."""
    groups: list[list[dict]] = []
    keys: list[set] = []
    for p in policies:
        mine = set(p.get("scope") or [f"candidate:{p['name']}"])
        hits = [i for i, k in enumerate(keys) if k & mine]
        merged = [p] + [q for i in hits for q in groups[i]]
        merged_keys = mine.union(*(keys[i] for i in hits))
        groups = [g for i, g in enumerate(groups) if i not in hits] + [merged]
        keys = [k for i, k in enumerate(keys) if i not in hits] + [merged_keys]
    order = {p["name"]: i for i, p in enumerate(policies)}
    groups = [sorted(g, key=lambda p: order[p["name"]]) for g in groups]
    return sorted(groups, key=lambda g: (-max(_saving(p) for p in g), order[g[0]["name"]]))


def _why_not(p: dict) -> str:
    failed = [g["name"] for g in p.get("gates") or [] if not g["passed"]]
    if failed:
        return "gate " + literal(", ".join(failed)) + " failed"
    if _flips(p):
        return "Check: a verdict changes within an assumption's interval, see Sensitivity"
    return "gates passed"


def sensitivity_text(p: dict) -> str:
    """What flips for one policy, with both outcomes."""
    parts = []
    for s in _flips(p):
        if s.get("kind") == "caching":
            c = s["caching"]
            sides = "; ".join(f"{label}: {c[k]['verdict']} ({c[k]['cacheable_requests']:,} of {c[k]['requests']:,} "
                              f"cacheable, saves {money(c[k].get('monthly_savings_usd'))}/month)"
                              for k, label in (("low_token_counts", "at the low end"), ("used", "as replayed"),
                                               ("high_token_counts", "at the high end")))
            parts.append(f"the caching verdict changes within the token-translation interval ({sides})")
        else:
            m = s["monthly_savings_usd"]
            names = literal(", ".join(f.removeprefix("gate ") for f in s["flips"]))
            parts.append(f"gate {names} changes within the token-translation interval (monthly savings "
                         f"{money(m['high_token_counts'])} at the high end of the token counts, {money(m['used'])} "
                         f"as replayed, {money(m['low_token_counts'])} at the low end)")
    return "; ".join(parts)


def _chosen(group: list[dict]) -> dict | None:
    """The candidate a group's action is about: the best saver that passes its gates with verdicts that hold across
    its assumptions' intervals, else the best that passes, else the best saver."""
    ranked = sorted(group, key=lambda p: (not _passes(p), bool(_flips(p)), -_saving(p)))
    return next((p for p in ranked if _saving(p) > 0), None)


def group_action(group: list[dict], routing_files: dict, days: float | None = None) -> str | None:
    """One action for candidates acting on the same requests: the best that passes its gates, others named.
    ``days``: the traffic window; a window extrapolated more than 10x to a month is never applied from."""
    best = _chosen(group)
    if best is None:
        return None
    others = [p for p in group if p is not best]
    name = literal(best["name"])
    alts = ("; alternatives for the same requests: " + ", ".join(
        f"`{literal(p['name'])}` ({money(_saving(p))}/month, {_why_not(p)})" for p in others)) if others else ""
    saving = _saving(best)
    failed = [g for g in best.get("gates") or [] if not g["passed"]]
    if failed:
        g = failed[0]
        return f"Hold `{name}` ({money(saving)}/month): gate {literal(g['name'])} failed: {literal(g['detail'])}{alts}"
    if _flips(best):
        return (f"Check `{name}` before applying ({money(saving)}/month): {sensitivity_text(best)}. Measure "
                f"the deciding figure (e.g. count tokens of a sample with the provider's count-tokens endpoint and "
                f"calibrate){alts}")
    if days and extrapolation_factor(days) > WINDOW_WARNING_FACTOR:
        return (f"Replay a week of traffic before applying `{name}` ({money(saving)}/month): its monthly "
                f"figures extrapolate a {days * 24:,.2f}-hour window {extrapolation_factor(days):,.0f}x{alts}.")
    lo = (best.get("monthly_savings_ci95") or [None])[0]
    if lo is not None and lo <= 0:
        return (f"Replay another week before applying `{name}`: the 95% interval of its monthly savings "
                f"({money_range(best.get('monthly_savings_ci95'))}) includes zero{alts}.")
    cfg = _config_file(best["name"], routing_files)
    if _blocker(best) and cfg:
        n, prevented = _refused(best)
        return (f"Apply `{name}` to cap spend: `tfy apply -f {literal(cfg)} --dry-run --show-diff`, then apply. It "
                f"refuses {n:,} requests ({money(prevented)} of spend prevented in the window: refused requests are "
                f"not savings){alts}.")
    figures = (f"Saves {money(saving)}/month (95% CI {money_range(best.get('monthly_savings_ci95'))}); accuracy "
               f"{accuracy_text(best)}")
    caching = "prompt_caching" in (best.get("changes") or [])
    if cfg is None:
        if caching and (best.get("changes") or []) == ["prompt_caching"]:
            return (f"Enable prompt caching for `{name}` in the application (cache_control breakpoints; no "
                    f"gateway config sets it). {figures}{alts}.")
        return (f"Configure `{name}` by hand: no gateway config file expresses it (see the configs table). "
                f"{figures}{alts}.")
    extra = (" and enable prompt caching in the application (cache_control breakpoints on Anthropic; automatic on "
             "OpenAI)") if caching else ""
    return (f"Apply `{name}`: `tfy apply -f {literal(cfg)} --dry-run --show-diff`, then apply{extra}. {figures}{alts}.")


def plan_action(summary: dict, routing_files: dict, days: float | None = None) -> tuple[str | None, bool]:
    """(the plan's action, whether it is applied): the plan's replayed record judged like a candidate's
    (:func:`group_action`), with its components named and its client changes listed."""
    plan = summary.get("plan") or {}
    record = plan.get("policy")
    if not plan.get("candidate") or not record:
        return None, False
    names = ", ".join(f"`{c['name']}`" for c in plan.get("components") or [])
    line = group_action([record], routing_files, days)
    if line is None:
        return None, False
    applied = line.startswith(f"Apply `{record['name']}`")
    if applied:
        line = f"Apply the plan ({names})" + line[len(f"Apply `{record['name']}`"):]
    else:
        line = line.rstrip(".") + f" (the plan combines {names})."
    changes = ((routing_files.get(plan["name"]) or {}).get("client_changes") or []) + list(plan.get("client_changes")
                                                                                             or [])
    if changes:
        line += " Client changes: " + "; ".join(changes) + "."
    return line, applied


def action_queue(summary: dict, data_quality: dict, routing_files: dict) -> list[str]:
    """What to do next, most valuable first: the plan (when one combines something), then one action per group of
    candidates acting on the same requests, then evidence to collect, attribution gaps, pricing drift and rejected
    rows. Each item names a file, figure or workflow. One config per tenant and type: a candidate whose config types
    an applied plan or candidate already takes is named as an alternative, a component of an applied plan as part
    of it."""
    actions: list[str] = []
    chosen = []
    days = (summary.get("traffic") or {}).get("days")
    claimed: dict[str, str] = {}  # TrueFoundry config type -> the candidate applied for it (one per tenant and type)
    line, applied = plan_action(summary, routing_files, days)
    in_plan: set[str] = set()
    if line:
        actions.append(line)
    if applied:
        plan = summary["plan"]
        claimed.update({t: plan["name"] for t in _tenant_config_types(plan["name"], routing_files)})
        in_plan = {c["name"] for c in plan.get("components") or []}
    for group in action_groups(summary.get("policies", [])):
        line = group_action(group, routing_files, days)
        if not line:
            continue
        best = _chosen(group)
        if line.startswith("Apply ") and best is not None and best["name"] in in_plan:
            actions.append(f"`{best['name']}` ({money(_saving(best))}/month alone) is applied with the plan "
                           f"`{summary['plan']['name']}`: its rules are in the plan's files.")
            chosen.append(best)
            continue
        if line.startswith("Apply ") and best is not None:
            types = _tenant_config_types(best["name"], routing_files)
            taken = {t: claimed[t] for t in types if t in claimed}
            if taken:
                other = sorted(set(taken.values()))[0]
                other = literal(other)
                actions.append(f"Not applied: `{literal(best['name'])}` ({money(_saving(best))}/month) is an "
                               f"alternative to `{other}`: its {', '.join(sorted(taken))} would replace `{other}`'s "
                               "(TrueFoundry keeps one per tenant and type). To apply both, put their rules in one "
                               "candidate.")
                continue
            claimed.update({t: best["name"] for t in types})
            merged = (routing_files.get(best["name"]) or {}).get("merged_into") or {}
            if merged:
                current = literal(", ".join(sorted(set(merged.values()))))
                line += f" The file is the tenant's current config ({current}) merged with it."
            elif types:
                line += f" Applying it replaces the tenant's current {', '.join(types)}."
        actions.append(line)
        chosen.append(best)
    for p in chosen:
        if p is None or not p.get("requests_changed"):
            continue
        verdict = p.get("accuracy_verdict") if isinstance(p.get("accuracy_verdict"), dict) else {}
        n_more = verdict.get("n_more")
        moved = [r for r in (p.get("breakdowns") or {}).get("workflow_tag", []) if r.get("requests_changed")]
        moved.sort(key=lambda r: -r["requests_changed"])
        names = ", ".join(f"`{literal(r['workflow_tag'])}`" for r in moved[:3]) or "the moved traffic"
        if n_more:
            actions.append(f"Collect about {int(n_more):,} more paired eval samples for {names} to decide the accuracy "
                           f"gate of `{literal(p['name'])}`.")
        elif p.get("accuracy_delta_pp") is None:
            actions.append(f"Collect labeled eval samples for {names} (moved by `{literal(p['name'])}`): its "
                           "accuracy impact is not measured yet.")
    base = summary.get("baseline", {})
    total = base.get("cost_usd") or 0.0
    for by in ("project", "team", "workflow_tag"):
        rows = (base.get("breakdowns") or {}).get(by, [])
        untagged = next((r for r in rows if r.get(by) == UNTAGGED), None)
        if untagged and untagged["cost_usd"] > 0 and total > 0:
            actions.append(f"Tag untagged traffic: {money(untagged['cost_usd'])} ({untagged['cost_usd'] / total:.0%}) "
                           f"of spend has no {by}; require `{by}` in X-TFY-METADATA so it can be budgeted and routed.")
    for m in data_quality.get("drift_flagged", []):
        actions.append(f"Check pricing drift on `{literal(m['model'])}`: recorded cost is {m['drift_pct']:+.1f}% vs "
                       "the catalog (missing price override, negotiated discount or a price change).")
    from simulator.io.adapters import not_model_calls

    defects = [(r, n) for r, n in data_quality.get("reasons", []) if not not_model_calls([r])]
    if defects:
        top = defects[0]
        actions.append(f"Fix {sum(n for _, n in defects):,} rejected rows (most common: {literal(top[0])}, "
                       f"{top[1]:,} rows); see rejects.jsonl.")
    return actions


# -- per-day premium share ----------------------------------------------------------------------------------------
def premium_share_by_day(summary: dict) -> pd.DataFrame:
    """Premium models' share of cost per UTC day: recorded, and under the recommended candidate (``_best_policy``)."""
    base = summary.get("baseline", {}).get("premium_share_by_day") or []
    if not base:
        return pd.DataFrame(columns=["day", "recorded"])
    out = pd.DataFrame({"day": [r["day"] for r in base], "recorded": [r["premium_share_cost"] for r in base]})
    best = _best_policy(summary)
    if best is not None and best.get("premium_share_by_day"):
        shares = {r["day"]: r["premium_share_cost"] for r in best["premium_share_by_day"]}
        out[best["name"]] = [shares.get(d, 0.0) for d in out["day"]]
    return out


BUDGET_ROWS = 25


def budget_key_rows(policies: list[dict]) -> list[list[Any]]:
    """One row per (candidate, budget rule, key): the ceiling's moment, requests blocked or rerouted, spend
    avoided; keys that reached their ceiling first (earliest first), then by spend avoided."""
    rows = []
    for p in policies:
        for b in p.get("budgets") or []:
            key = b.get("key") if b.get("key") is not None else "(one budget)"
            rows.append(((b.get("ceiling_reached_at") is None, b.get("ceiling_reached_at") or "",
                          -(b.get("spend_avoided_usd") or 0.0), p["name"], b["id"], str(key)),
                         [p["name"], b["id"] + (" (audit mode)" if b.get("audit_mode") else ""), key,
                          _limit(b),
                          minute(b["ceiling_reached_at"]) if b.get("ceiling_reached_at") else "not reached",
                          b.get("requests_blocked", 0), b.get("requests_rerouted", 0),
                          money(b.get("spend_avoided_usd"))]))
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


def _limit(budget: dict) -> str:
    unit = str(budget.get("unit", ""))
    limit = budget["limit_to"]
    amount = money(limit, 2 if limit >= 0.01 else 4) if unit.startswith("cost") else f"{limit:,} tokens"
    return f"{amount} per {unit.split('_per_')[1]}" if "_per_" in unit else f"{amount} {unit}"


def drift_blocks(drift: dict) -> tuple[Table, Chart | None]:
    """Tokenizer drift as a short table (one row per virtual model and model version: days served, requests, input
    tokens per request) and a chart of the daily tokens per request of the virtual models whose version changed."""
    frame = pd.DataFrame(drift.get("tokens_per_request_by_day") or [])
    if frame.empty:
        return Table(["virtual model", "model"], [], caption="Tokens per request"), None
    frame["input_tokens"] = frame["input_tokens_per_request"] * frame["requests"]
    g = frame.groupby(["virtual_model", "model"], sort=True).agg(first=("day", "min"), last=("day", "max"),
                                                                 days=("day", "nunique"), requests=("requests", "sum"),
                                                                 input_tokens=("input_tokens", "sum"))
    window_days = frame["day"].nunique()
    changed = sorted({vm for (vm, _), r in g.iterrows() if r["days"] < window_days})
    rows = [[vm, m, f"{r['first']} to {r['last']}", int(r["requests"]), f"{r['input_tokens'] / r['requests']:,.0f}"]
            for (vm, m), r in g.iterrows() if vm in changed] or \
           [[vm, m, f"{r['first']} to {r['last']}", int(r["requests"]), f"{r['input_tokens'] / r['requests']:,.0f}"]
            for (vm, m), r in g.iterrows()][:12]
    table = Table(["virtual model", "model version", "served", "requests", "input tokens per request"], rows,
                  caption="Virtual models whose model version changed in the window" if changed else
                  "Tokens per request by virtual model and model (no version change in the window)")
    if not changed:
        return table, None
    data = frame[frame["virtual_model"].isin(changed)]

    def draw(fig):
        ax = fig.add_subplot(111)
        for (vm, m), part in data.groupby(["virtual_model", "model"], sort=True):
            ax.plot(part["day"], part["input_tokens_per_request"], marker="o", label=f"{vm}: {m}")
        ax.set_ylabel("input tokens per request")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=7)

    return table, Chart("tokenizer-drift", "Input tokens per request per day, virtual models whose version changed",
                        draw)


def _best_policy(summary: dict) -> dict | None:
    """The recommended candidate: the largest monthly saving among routing candidates that pass their gates (as
    the action queue applies it); a spend cap or a candidate whose gate failed is never the one shown."""
    ranked = [p for p in summary.get("policies", []) if (p.get("monthly_savings_usd") or 0) > 0
              and _passes(p) and not _blocker(p)]
    return max(ranked, key=lambda p: (p["monthly_savings_usd"], p["name"])) if ranked else None


# -- generic rendering of sections other modules add --------------------------------------------------------------
def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def generic_blocks(obj: Any, depth: int = 0) -> list[Any]:
    """Tables for a summary sub-object of unknown shape; private keys are dropped, never shown."""
    blocks: list[Any] = []
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        cols: list[str] = []
        for r in obj:
            cols += [k for k, v in r.items() if k not in cols and k not in PRIVATE_KEYS and _scalar(v)]
        if cols:
            blocks.append(Table(cols, [[r.get(c) for c in cols] for r in obj[:50]]))
        if len(obj) > 50:
            blocks.append(f"{len(obj) - 50} more rows in summary.json.")
        if depth < 1:
            for i, r in enumerate(obj[:10]):
                for k, v in r.items():
                    if k not in PRIVATE_KEYS and isinstance(v, (list, dict)) and v:
                        label = next((str(r[c]) for c in cols if isinstance(r.get(c), str)), f"row {i + 1}")
                        sub = generic_blocks(v, depth + 1)
                        if sub:
                            blocks.append(f"{literal(label)}: {literal(k)}")
                            blocks += sub
    elif isinstance(obj, dict):
        scalars = [(k, v) for k, v in obj.items() if k not in PRIVATE_KEYS and _scalar(v)]
        if scalars:
            blocks.append(Table(["key", "value"], [[k, v] for k, v in scalars]))
        if depth < 2:
            for k, v in obj.items():
                if k in PRIVATE_KEYS or _scalar(v) or not v:
                    continue
                if isinstance(v, list) and all(_scalar(x) for x in v):
                    blocks.append(Table(["key", "value"], [[k, ", ".join(map(str, v))]]))
                    continue
                sub = generic_blocks(v, depth + 1)
                if sub:
                    blocks.append(f"{literal(k)}:")
                    blocks += sub
    return blocks


# -- charts -------------------------------------------------------------------------------------------------------
def _bar_chart(rows: list[dict], label_key: str, title: str):
    rows = rows[:12][::-1]

    def draw(fig):
        ax = fig.add_subplot(111)
        labels = [chart_label(r[label_key]) for r in rows]
        values = [r["cost_usd"] for r in rows]
        colors = ["#cf222e" if lab == UNTAGGED else "#0969da" for lab in labels]
        ax.barh(labels, values, color=colors)
        ax.set_xlabel("cost in the window (USD)")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    return draw


def _premium_chart(frame: pd.DataFrame):
    def draw(fig):
        ax = fig.add_subplot(111)
        for col, style in zip([c for c in frame.columns if c != "day"], ["-o", "--s"]):
            label = "recorded" if col == "recorded" else chart_label(f"with {col}")
            ax.plot(frame["day"], 100 * frame[col], style, label=label)
        ax.set_ylabel("premium models' share of cost (%)")
        ax.set_ylim(0, 105)
        ax.set_title("Premium-model share of spend per day")
        ax.legend(loc="lower left")
        ax.grid(alpha=0.3)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_ha("right")
    return draw


def _savings_chart(policies: list[dict]):
    def draw(fig):
        ax = fig.add_subplot(111)
        names = [chart_label(p["name"]) for p in policies][::-1]
        vals = [p.get("monthly_savings_usd") or 0.0 for p in policies][::-1]
        colors = ["#1a7f37" if gate_verdict(p) != "no gates" and not gate_verdict(p).startswith("FAILED") else
                  ("#cf222e" if gate_verdict(p).startswith("FAILED") else "#0969da") for p in policies[::-1]]
        ax.barh(names, vals, color=colors, alpha=0.85)
        for i, p in enumerate(policies[::-1]):
            ci = p.get("monthly_savings_ci95")
            if ci and ci[0] is not None:
                # Interval drawn as a line: matplotlib's errorbar trips a NumPy 2 deprecation on array errors.
                ax.hlines(i, ci[0], ci[1], color="#1b1f24", linewidth=1.5)
                ax.vlines([ci[0], ci[1]], i - 0.15, i + 0.15, color="#1b1f24", linewidth=1.5)
        ax.axvline(0, color="#57606a", linewidth=0.8)
        ax.set_xlabel("monthly savings (USD), bars = 95% interval; green passed gates, red failed")
        ax.set_title("Candidate routing policies")
        ax.grid(axis="x", alpha=0.3)
    return draw


def _cost_quality_chart(points: list[dict]):
    def draw(fig):
        ax = fig.add_subplot(111)
        right = max((p["savings_pct"] for p in points), default=0.0)
        for p in points:
            moved = p.get("accuracy_delta_moved_pp")
            y = moved if moved is not None else p["accuracy_delta_pp"]
            ci = p.get("accuracy_delta_moved_ci95") if moved is not None else p.get("accuracy_delta_ci95")
            ax.plot([p["savings_pct"]], [y], "o", color="#0969da")
            if ci and ci[0] is not None:
                ax.vlines(p["savings_pct"], ci[0], ci[1], color="#0969da", linewidth=1.5)
            ax.plot([p["savings_pct"]], [p["accuracy_delta_pp"]], "x", color="#57606a")
            flip = right > 0 and p["savings_pct"] > right / 2  # names in the right half end at their point: on the chart
            ax.annotate(chart_label(p["name"]), (p["savings_pct"], y), textcoords="offset points",
                        xytext=(-5 if flip else 5, 5), ha="right" if flip else "left")
        ax.axhline(0, color="#57606a", linewidth=0.8)
        ax.set_xlabel("cost saved (%)")
        ax.set_ylabel("accuracy change (pp)\ndot = moved requests, x = traffic-wide")
        ax.set_title("Cost vs quality per candidate")
        ax.grid(alpha=0.3)
    return draw


# -- the document -------------------------------------------------------------------------------------------------
def build_document(result, routing_files: dict | None = None) -> Document:
    s = result.summary
    routing_files = routing_files or {}
    base, traffic = s["baseline"], s["traffic"]
    policies = s.get("policies", [])
    dq = s.get("data_quality") or {}
    sections: list[Section] = []

    # Headline
    head = Section("Headline", anchor="headline")
    warning = window_warning(traffic.get("days") or 0.0)
    if warning:
        head.add(f"**Warning: {warning}**")
    head.add(f"Spend in the window: **{money(base['cost_usd'])}** over {traffic['days']:.2f} days "
             f"({minute(traffic.get('start'))} to {minute(traffic.get('end'))}), about "
             f"{money(base.get('monthly_cost_usd'))} per month; {base['requests']:,} requests.")
    head.add(f"Premium-model share: **{pct(base.get('premium_share_cost'))} of spend**, "
             f"{pct(base.get('premium_share_requests'))} of requests (premium models: "
             f"{', '.join(f'`{literal(m)}`' for m in base.get('premium_models') or []) or 'none'}).")
    top = [p for p in sorted(policies, key=lambda p: -(p.get("monthly_savings_usd") or 0))
           if (p.get("monthly_savings_usd") or 0) > 0 and not _blocker(p)][:3]
    if top:
        head.add(Table(["#", "routing optimization", "monthly savings", "95% interval",
                        "accuracy (moved requests; traffic-wide)", "gates", "config"],
                       [[i + 1, p["name"], money(p["monthly_savings_usd"]), money_range(p.get("monthly_savings_ci95")),
                         accuracy_text(p), gate_verdict(p), _config_file(p["name"], routing_files) or "n/a"]
                        for i, p in enumerate(top)], caption="Top routing optimizations"))
        head.add("95% intervals: " + " ".join(interval_sentences(top)))
    else:
        head.add("No candidate saves money on this traffic.")
    from simulator.outputs.report.control_room import control_room_actions, control_room_section

    actions = action_queue(s, dq, routing_files) + lever_actions(s, routing_files) + control_room_actions(s)[:3]
    head.add("**What to do next**")
    head.add(actions or ["Nothing to act on this week: keep the current routing."])
    sections.append(head)
    since = since_last_week_section(s)
    if since is not None:
        sections.append(since)

    # Spend
    spend = Section("Spend by model, team, project and workflow", anchor="spend")
    spend.add("Team, project and workflow views only (no per-person views, by design). `UNTAGGED` is spend whose "
              "requests carry no such metadata: an attribution gap to close in X-TFY-METADATA, not a team.")
    total = base["cost_usd"] or 0.0
    for by, label in BREAKDOWN_TITLES.items():
        rows = (base.get("breakdowns") or {}).get(by, [])
        if not rows:
            continue
        spend.add(Table([label, "requests", "cost (USD)", "share of spend"],
                        [[r[by] + (" (attribution gap)" if r[by] == UNTAGGED else ""), r["requests"],
                          money(r["cost_usd"]), pct(r["cost_usd"] / total if total else None)] for r in rows[:25]],
                        caption=f"Spend by {label}"))
        if by in ("model", "workflow_tag"):
            spend.add(Chart(f"spend-by-{by}", f"Spend by {label}", _bar_chart(rows, by, f"Spend by {label}")))
    daily = premium_share_by_day(s)
    if len(daily):
        spend.add(Chart("premium-share-per-day", "Premium-model share per day", _premium_chart(daily)))
        spend.add(Table(["day"] + [c for c in daily.columns if c != "day"],
                        [[r["day"]] + [pct(r[c]) for c in daily.columns if c != "day"] for r in
                         daily.to_dict(orient="records")], caption="Premium-model share of spend per day"))
    sections.append(spend)

    # Candidates
    if policies:
        comp = Section("Candidate comparison", anchor="candidates")
        comp.add(Table(
            ["candidate", "requests changed", "cost (USD)", "savings", "monthly savings", "95% interval",
             "accuracy on moved requests", "accuracy traffic-wide", "p95 latency (ms)", "error rate", "blocked",
             "premium share", "gates"],
            [[p["name"], p["requests_changed"], money(p["cost_usd"]), f"{p['savings_pct']:.1f}%",
              money(p["monthly_savings_usd"]), money_range(p.get("monthly_savings_ci95")), _moved_text(p),
              _wide_text(p), f"{_ms(p.get('latency_p95_ms_before'))} -> {_ms(p.get('latency_p95_ms_after'))}",
              pct(p.get("error_rate_after"), 2), p.get("requests_blocked", 0),
              f"{pct(p.get('premium_share_cost_before'))} -> {pct(p.get('premium_share_cost_after'))}",
              gate_verdict(p)] for p in policies]))
        comp.add("95% intervals of monthly savings: " + " ".join(interval_sentences(policies)))
        refusing = [p for p in policies if _refused(p)[0] or p.get("requests_unserved")]
        if refusing:
            comp.add(Table(["candidate", "requests refused (budgets, rate limits)", "spend prevented in the window",
                            "requests unserved (failed in the candidate)", "their recorded cost"],
                           [[p["name"], _refused(p)[0], money(_refused(p)[1]), p.get("requests_unserved", "n/a"),
                             money(p.get("unserved_recorded_cost_usd"))] for p in refusing],
                           caption="Refused and unserved requests (never counted as savings)"))
        budget_rows = budget_key_rows(policies)
        if budget_rows:
            comp.add(Table(["candidate", "budget", "key", "limit", "ceiling reached", "blocked", "rerouted",
                            "spend avoided"], budget_rows[:BUDGET_ROWS],
                           caption="Budgets per key (spend avoided is prevented, not saved; `UNTAGGED`: requests "
                                   "without the key's metadata)"))
            if len(budget_rows) > BUDGET_ROWS:
                comp.add(f"{len(budget_rows) - BUDGET_ROWS:,} more budget keys (no ceiling reached first) are in "
                         "summary.json `policies[].budgets`.")
        flips = [(p["name"], sensitivity_text(p)) for p in policies if _flips(p)]
        if flips:
            comp.add(Table(["candidate", "verdict that changes within an assumption's interval"],
                           [list(f) for f in flips], caption="Sensitivity: check before applying"))
        comp.add(Chart("candidates", "Monthly savings per candidate", _savings_chart(policies)))
        gate_rows = [[p["name"], g["name"], "pass" if g["passed"] else "FAIL", g["detail"]]
                     for p in policies for g in p.get("gates") or []]
        if gate_rows:
            comp.add(Table(["candidate", "gate", "verdict", "figures"], gate_rows, caption="Gates"))
        file_rows = []
        for p in policies:
            entry = routing_files.get(p["name"]) or {}
            if entry:
                gaps = entry.get("not_expressible", {})
                files = Markup(", ".join(f"`routing/{literal(f)}`" for f in entry.get("files", [])))
                file_rows.append([p["name"], files or "none",
                                  "; ".join(gaps.get("truefoundry", [])) or "-",
                                  "; ".join(gaps.get("litellm", [])) or "-", "; ".join(gaps.get("portkey", [])) or "-"])
        if file_rows:
            comp.add(Table(["candidate", "files", "not expressible in TrueFoundry", "not expressible in LiteLLM",
                            "not expressible in Portkey"],
                           file_rows, caption="Gateway configs written"))
        sections.append(comp)
    sections += lever_sections(s, routing_files)

    # Optional sections
    caching = [(p["name"], p["caching"]) for p in policies if p.get("caching")]
    if caching:
        sec = Section("Cache opportunities", anchor="caching")
        sec.add("Prompt-caching opportunities per candidate, including prefixes below a model's minimum cacheable "
                "length (they never hit the cache).")
        for name, data in caching:
            sec.add(f"**{literal(name)}**")
            sec.blocks += generic_blocks(data)
        sections.append(sec)
    if s.get("drift"):
        sec = Section("Tokenizer drift", anchor="drift")
        sec.add("Same input, different token counts per model version: the rate card can stay the same while the "
                "cost per request moves. Roll back the virtual-model alias if a version costs more for no gain.")
        table, chart = drift_blocks(s["drift"])
        if chart is not None:
            sec.add(chart)
        sec.add(table)
        sections.append(sec)
    acc = [p for p in policies if p.get("accuracy_delta_pp") is not None]
    if acc or s.get("accuracy"):
        sec = Section("Cost-quality curve", anchor="accuracy")
        if acc:
            sec.add(Chart("cost-quality", "Cost vs quality", _cost_quality_chart(acc)))
            sec.add(Table(["candidate", "cost saved", "accuracy on moved requests", "accuracy traffic-wide",
                           "coverage of moved traffic"],
                          [[p["name"], f"{p['savings_pct']:.1f}%", _moved_text(p), _wide_text(p),
                            pct((p.get("accuracy") or {}).get("coverage_share"))] for p in acc]))
        if s.get("accuracy"):
            sec.blocks += generic_blocks(s["accuracy"])
        sections.append(sec)

    room = control_room_section(s)
    if room is not None:
        sections.append(room)

    # Data quality
    sec = Section("Data quality", anchor="data-quality")
    sec.add(f"{dq['rows_read']:,} rows read, {dq['rows_replayed']:,} replayed, {dq['rows_rejected']:,} rejected.")
    traffic = result.summary.get("traffic", {})
    if traffic.get("rows_not_model_calls"):
        sec.add(f"Of the rejected rows, {traffic['rows_not_model_calls']:,} are not model calls by design (agent and "
                "tool spans, whose model calls are counted on their own spans, and gateway cache hits); the rest "
                "are defects to fix.")
    for note in traffic.get("notes", []):
        sec.add(f"Assumed on ingest: {literal(note)}.")
    if dq["reasons"]:
        sec.add(Table(["reason", "rows"], [[r, n] for r, n in dq["reasons"][:20]], caption="Rejected rows by reason"))
    if dq.get("drift_models"):
        sec.add(Table(["model", "requests", "catalog cost", "recorded cost", "drift", "flagged"],
                      [[m["model"], m["requests"], money(m["cost_usd"]), money(m["recorded_cost_usd"]),
                        f"{m['drift_pct']:+.2f}%", m["flagged"]] for m in dq["drift_models"]],
                      caption=f"Pricing drift by identity replay (flagged above {dq['drift_flag_pct']}%)"))
    elif dq.get("drift_error"):
        sec.add(literal(dq["drift_error"]))
    else:
        sec.add("No recorded cost_usd to compare with the catalog: pricing drift not checked.")
    sections.append(sec)

    # Assumptions: generated per candidate from what its replay did (summary.json ``assumptions``)
    sec = Section("Assumptions", anchor="assumptions")
    sec.add(["premium models: " + ("as listed in the scenario (premium_models)"
                                   if result.scenario.premium_models is not None else
                                   "models whose output price is at least half the priciest model's "
                                   "(set premium_models in the scenario to choose)")])
    for p in policies:
        if p.get("assumptions"):
            sec.add(f"**{literal(p['name'])}**")
            sec.add([literal(a) for a in p["assumptions"]])
    sections.append(sec)
    return Document(title=f"tfysim premium-model review: {literal(s['scenario'])}",
                    subtitle=f"Scenario `{literal(s['scenario'])}`, traffic {traffic.get('start') or 'n/a'} to "
                             f"{traffic.get('end') or 'n/a'}. Figures scale the window to 30 days for monthly values.",
                    sections=sections)


def _moved_text(p: dict) -> str:
    d = p.get("accuracy_delta_moved_pp")
    if d is None:
        return "not measured" if p.get("accuracy_delta_pp") is None else "no request moved"
    return _pp(d, p.get("accuracy_delta_moved_ci95"))


def _wide_text(p: dict) -> str:
    d = p.get("accuracy_delta_pp")
    return "not measured" if d is None else _pp(d, p.get("accuracy_delta_ci95"))


def _ms(x: Any) -> str:
    return "n/a" if x is None else f"{x:,.0f}"
