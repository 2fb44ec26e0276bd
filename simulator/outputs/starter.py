"""``tfysim init``: a commented starter scenario for the user's own export.

It reads the export as ``run`` would (adapter detected from the columns, or the one given), then writes a scenario
that names the file and the adapter, lists what it found (models with their requests and catalog cost, workflows,
teams, projects) and proposes one candidate in the gateway's vocabulary: the workflow with the largest cost on the
priciest model, moved to the cheapest model of the same provider seen in the traffic. Text from the export goes
into comments through :func:`simulator.outputs.escape.yaml_comment` and into values as JSON strings (valid YAML).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError, PricingError, TfysimError
from simulator.io.adapters import ADAPTERS, detect_adapter
from simulator.io.readers import expand_paths, read_any
from simulator.io.traffic import load_traffic
from simulator.outputs.escape import yaml_comment
from simulator.pricing.catalog import Catalog
from simulator.pricing.model_ids import guess_provider

#: how many workflows, teams and projects the comments list (the rest are counted)
SHOWN = 12


@dataclasses.dataclass
class Found:
    """What the export holds: the adapter that reads it and the counts the starter scenario lists."""

    adapter: str
    detected: bool
    rows_read: int
    rows_rejected: int
    start: pd.Timestamp
    end: pd.Timestamp
    models: pd.DataFrame  # model, requests, cost_usd (NaN: not in the catalog), priced, output_mtok
    labels: dict[str, pd.Series]  # workflow_tag / team / project -> requests per value (UNTAGGED for missing)
    top_workflow: pd.DataFrame  # model, workflow_tag, cost_usd: cost per (model, workflow)


def inspect_export(paths: list[str], adapter: str | None = None, mapping: dict[str, str] | None = None,
                   timezone: str | None = None) -> Found:
    """Read the export and summarise it for :func:`starter_yaml`."""
    files = expand_paths(list(paths))
    detected = adapter is None
    if adapter is None:
        renamed = set(read_any(files[0]).column_names) - set((mapping or {}).values()) | set(mapping or {})
        adapter = detect_adapter(renamed) or "canonical"  # load_traffic names the missing columns
    if adapter == "truefoundry" and timezone is None:
        raise InputError(f"{files[0]}: a TrueFoundry analytics export (CreatedAt has no time zone) needs "
                         "--timezone, e.g. --timezone UTC.")
    traffic = load_traffic(paths, adapter=adapter, mapping=mapping, timezone=timezone)
    frame = traffic.frame
    catalog = Catalog.load()
    models = frame["model"].astype(str)
    counts = models.value_counts()
    rows, cost = [], np.full(len(frame), np.nan)
    for model, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        try:
            catalog.resolve(model)
        except PricingError:
            rows.append((model, int(n), float("nan"), False, float("nan")))
            continue
        sel = (models == model).to_numpy()
        part = frame.loc[sel]
        cost[sel] = catalog.cost_usd([model] * len(part), part["timestamp"].astype("int64").to_numpy(),
                                     part["input_tokens"].to_numpy(), part["output_tokens"].to_numpy(),
                                     part["cache_read_tokens"].to_numpy(), part["cache_write_tokens"].to_numpy())
        ts = int(part["timestamp"].iloc[-1].value)
        rows.append((model, int(n), float(cost[sel].sum()), True, catalog.unit_prices(model, ts)["output_mtok"]))
    table = pd.DataFrame(rows, columns=["model", "requests", "cost_usd", "priced", "output_mtok"])
    labels = {key: frame[key].astype(object).where(frame[key].notna(), "UNTAGGED").value_counts().sort_index()
              .sort_values(ascending=False, kind="stable") for key in ("workflow_tag", "team", "project")}
    by_flow = pd.DataFrame({"model": models, "workflow_tag": frame["workflow_tag"].astype(object), "cost_usd": cost})
    by_flow = by_flow.dropna().groupby(["model", "workflow_tag"], as_index=False)["cost_usd"].sum()
    return Found(adapter, detected, traffic.rows_read, traffic.rows_rejected, frame["timestamp"].iloc[0],
                 frame["timestamp"].iloc[-1], table, labels, by_flow)


def _tokenizer_known(model: str) -> bool:
    from simulator.tokens.registry import Registry

    try:
        Registry().tokenizer_id_for_model(model)
    except TfysimError:
        return False
    return True


def suggest_move(found: Found) -> tuple[str, str, str] | None:
    """(from model, workflow, to model): the largest workflow on the priciest priced model, to the cheapest priced
    model of the same provider in the traffic (any provider when it has no other); None when nothing fits."""
    priced = found.models[found.models["priced"]].sort_values(["output_mtok", "cost_usd", "model"],
                                                               ascending=[False, False, True])
    if len(priced) < 2 or not len(found.top_workflow):
        return None
    source = str(priced["model"].iloc[0])
    flows = found.top_workflow[found.top_workflow["model"] == source].sort_values(["cost_usd", "workflow_tag"],
                                                                                  ascending=[False, True])
    cheaper = priced[priced["output_mtok"] < priced["output_mtok"].iloc[0]].sort_values(["output_mtok", "model"])
    cheaper = cheaper[[_tokenizer_known(m) for m in cheaper["model"]]]
    if not len(flows) or not len(cheaper) or not _tokenizer_known(source):
        return None
    same = cheaper[[guess_provider(m) == guess_provider(source) for m in cheaper["model"]]]
    target = str((same if len(same) else cheaper)["model"].iloc[0])
    return source, str(flows["workflow_tag"].iloc[0]), target


def money(usd: float) -> str:
    """``$1,234.50``; ``-$5.29`` for a negative amount (never ``$-5.29``)."""
    return ("-" if usd < 0 and round(usd, 2) != 0 else "") + f"${abs(usd):,.2f}"


def _q(value: str) -> str:
    """A YAML scalar for any text (JSON strings are YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug or "x")[:40].strip("-") or "x"


def _listing(counts: pd.Series) -> str:
    shown = [f"{yaml_comment(k, 80)} ({int(n):,})" for k, n in counts.head(SHOWN).items()]
    more = len(counts) - SHOWN
    return ", ".join(shown) + (f", and {more:,} more" if more > 0 else "")


def starter_yaml(found: Found, traffic: list[str], scenario_path: Path, name: str | None = None,
                 timezone: str | None = None, mapping: dict[str, str] | None = None) -> str:
    """The commented starter scenario. Traffic paths are written relative to the scenario's folder."""
    base = scenario_path.resolve().parent
    rel = [p if Path(p).is_absolute() or any(c in p for c in "*?[") else os.path.relpath(Path(p).resolve(), base)
           for p in traffic]  # a relative path stays relative, now to the scenario's folder
    name = name or _slug(Path(traffic[0]).stem.split(".")[0])
    out = [f"# Starter scenario written by `tfysim init` for {yaml_comment(', '.join(traffic), 200)}.",
           f"# Found {found.rows_read:,} rows ({found.rows_rejected:,} rejected) from "
           f"{found.start:%Y-%m-%d %H:%M} to {found.end:%Y-%m-%d %H:%M} UTC, read as a "
           f"{ADAPTERS[found.adapter].label}.",
           f"# Next: edit the candidate below, then `tfysim validate {scenario_path}` (every problem at once, no "
           "replay) and",
           f"# `tfysim run {scenario_path}` (writes reports/{name}/report.md). Every key: `tfysim schema`, README "
           "\"Scenarios\".",
           "schema_version: 1",
           f"name: {name}",
           "traffic: " + (_q(rel[0]) if len(rel) == 1 else "[" + ", ".join(_q(r) for r in rel) + "]"),
           f"adapter: {found.adapter}" + ("                 # detected from the columns" if found.detected else "")]
    if mapping:
        out.append("columns: {" + ", ".join(f"{k}: {_q(v)}" for k, v in mapping.items()) + "}")
    out.append(f"timezone: {_q(timezone)}" if timezone else
               "# timezone: UTC                  # only for timestamps without an offset")
    out += ["seed: 0", "",
            "# Models in the traffic: requests, cost in the window at catalog prices (genai-prices), output price."]
    unpriced = []
    width = max(len(m) for m in found.models["model"])
    for row in found.models.itertuples():
        if row.priced:
            out.append(f"#   {yaml_comment(row.model, 200):<{width}}  {row.requests:>9,} requests  "
                       f"{money(row.cost_usd):>12}  {money(row.output_mtok)}/M output")
        else:
            unpriced.append(row.model)
            out.append(f"#   {yaml_comment(row.model, 200):<{width}}  {row.requests:>9,} requests  not in the "
                       "catalog: map it below or price it in a pricing: file")
    if unpriced:
        out.append("# models:                        # gateway id -> genai-prices provider:model; fill in, uncomment")
        out += [f"#   {_q(yaml_comment(m, 200))}: \"provider:model\"" for m in unpriced]
    else:
        out.append("# models: {internal/fast: \"openai:gpt-4o-mini\"}   # gateway id -> genai-prices provider:model")
    for key, title in (("workflow_tag", "Workflows (workflow_tag)"), ("team", "Teams"), ("project", "Projects")):
        out.append(f"# {title}, requests: {_listing(found.labels[key])}")
    out += ["",
            "# evals: evals/samples.parquet     # labeled eval samples: accuracy change and gates for moved requests",
            "# pricing: prices.yaml             # negotiated rates or private models (USD per million tokens)",
            "# gates: {max_accuracy_drop_pp: 2}  # with evals: fail a move that loses more than 2 pp accuracy", ""]
    move = suggest_move(found)
    if move is None:
        out += ["# No move suggested (fewer than two priced models, or no workflow tags). Write one like this:",
                "candidates: []", "#  - name: my-downgrade", "#    rules:", "#      - id: my-rule",
                "#        when: {models: [provider-account/expensive-model], metadata: {workflow_tag: my-workflow}}",
                "#        type: weight-based-routing",
                "#        load_balance_targets: [{target: provider-account/cheaper-model, weight: 100}]"]
    else:
        source, flow, target = move
        rule = _slug(flow if flow != "UNTAGGED" else "untagged")
        out += ["candidates:",
                "  # The workflow with the largest cost on the priciest model, moved to the cheapest model of the",
                "  # same provider in the traffic. Add eval samples before you trust it; an A/B split is",
                "  # load_balance_targets with two targets whose weights sum to 100.",
                f"  - name: {rule}-to-{_slug(target.split('/')[-1])}",
                "    rules:",
                f"      - id: {rule}",
                "        when:",
                f"          models: [{_q(source)}]",
                f"          metadata: {{workflow_tag: {_q(flow)}}}",
                "        type: weight-based-routing",
                "        load_balance_targets:",
                f"          - {{target: {_q(target)}, weight: 100}}"]
    return "\n".join(out) + "\n"
