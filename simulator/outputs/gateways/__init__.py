"""Gateway configs of a run: ``routing/`` with TrueFoundry, LiteLLM and Portkey files per candidate and an index.

Built from summary.json figures and the scenario; :func:`write_gateway_configs` is registered in
:data:`simulator.outputs.writer.WRITERS`. One module per gateway (:mod:`.truefoundry`, :mod:`.litellm`,
:mod:`.portkey`), shared bits in :mod:`.common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.errors import ScenarioError
from simulator.outputs.gateways import truefoundry
from simulator.outputs.gateways.common import dump_yaml, figures_line, header, traffic_models
from simulator.outputs.gateways.litellm import rule_tag, to_litellm
from simulator.outputs.gateways.portkey import attach_when, to_portkey
from simulator.outputs.escape import yaml_comment
from simulator.outputs.gateways.tiers import gateway_view
from simulator.routing.truefoundry_config import KINDS, SUFFIX, candidate_from_config, read_manifest
from simulator.summary.plan import plan_candidates

__all__ = ["write_gateway_configs", "baseline_configs"]


def baseline_configs(scenario) -> dict[str, tuple[str, dict, str]]:
    """The tenant's current configs named in ``baseline:``, per kind: (file name, manifest, text)."""
    if scenario.baseline is None:
        return {}
    paths = scenario.baseline.truefoundry_config
    out: dict[str, tuple[str, dict, str]] = {}
    for value in [paths] if isinstance(paths, str) else paths:
        path = scenario.path(value)
        try:
            kind, manifest, text = read_manifest(path)
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read the baseline truefoundry_config ({exc.strerror}).") from None
        key = KINDS[kind]
        if key in out:
            raise ScenarioError(f"{path}: baseline.truefoundry_config names two {kind} files ({out[key][0]} and "
                                f"{path.name}); TrueFoundry keeps one per tenant, give one.")
        out[key] = (path.name, manifest, text)
    return out


def write_gateway_configs(result, folder: str | Path, include_prompts: bool = False) -> list[Path]:
    """``routing/<c>.truefoundry.yaml`` (+ ``.budgets`` / ``.rate-limits`` companions), ``<c>.litellm.yaml``,
    ``<c>.portkey.json``, ``<c>.diff`` against the tenant's current config, and ``routing/index.json``."""
    from simulator.outputs.files import dumps, write_text

    folder = Path(folder) / "routing"
    scenario = result.scenario
    policies = {p["name"]: p for p in result.summary.get("policies", [])}
    models = traffic_models(result.summary)
    baselines = baseline_configs(scenario)
    written: list[Path] = []
    index: dict[str, Any] = {}
    candidates = [candidate_from_config(c, scenario.path(c.truefoundry_config)) if c.truefoundry_config else c
                  for c in scenario.candidates]
    plans = plan_candidates(result.summary)  # the plan: its own files, one per config type, like any candidate
    policies.update({cand.name: figures for cand, figures in plans})
    for cand in candidates + [cand for cand, _ in plans]:
        figures = policies.get(cand.name, {})
        entry: dict[str, Any] = {"files": [], "config_types": {}, "not_expressible": {}}
        cand, client_changes = gateway_view(cand)  # service tiers: request parameters, or client changes
        if client_changes:
            entry["client_changes"] = client_changes
        tier_params = [f"rule '{r.id}': service_tier {r.service_tier} is a request parameter the LiteLLM and Portkey "
                       "files do not set; set it in the client" for r in cand.rules
                       if r.service_tier in ("flex", "priority")]
        if tier_params:  # the routing is complete in every file; the tier is a client step for two of them
            entry["client_changes"] = [*client_changes, *tier_params]
        tfy_gaps = truefoundry.not_expressible(cand)
        entry["not_expressible"]["truefoundry"] = tfy_gaps
        if not tfy_gaps:
            texts = truefoundry.render(cand, scenario.name, figures, known_models=models, traffic_models=models,
                                       baselines={k: (name, m) for k, (name, m, _) in baselines.items()})
            manifests = truefoundry.manifests(cand, known_models=models, traffic_models=models,
                                              baselines={k: m for k, (_, m, _) in baselines.items()})
            changes = "".join(f"# client change: {yaml_comment(c)}\n" for c in client_changes)
            for i, (kind, manifest, _) in enumerate(manifests):
                path = folder / f"{cand.name}{SUFFIX['routing' if i == 0 else kind]}"
                written.append(write_text(path, changes + texts[kind]))
                entry["files"].append(path.name)
                entry["config_types"][path.name] = manifest["type"]
                if kind in baselines and baselines[kind][1].get("type") == manifest["type"]:
                    entry.setdefault("merged_into", {})[path.name] = baselines[kind][0]
            diffs = [truefoundry.unified_diff(baselines[k][2], texts[k], f"current/{baselines[k][0]}",
                                              f"proposed/{cand.name}{SUFFIX['routing' if i == 0 else k]}")
                     for i, (k, m, _) in enumerate(manifests)
                     if k in baselines and baselines[k][1].get("type") == m["type"]]
            if diffs:
                written.append(write_text(folder / f"{cand.name}.diff", "".join(diffs) or "# no difference\n"))
                entry["files"].append(f"{cand.name}.diff")
        litellm, gaps = to_litellm(cand)
        entry["not_expressible"]["litellm"] = gaps
        if litellm is not None:
            lines = [f"tfysim: candidate '{cand.name}' of scenario '{scenario.name}' as a LiteLLM proxy config",
                     f"figures: {figures_line(figures)}",
                     "load: litellm --config <this file>, or litellm.Router(model_list=..., **router_settings)"]
            tags = {r.id: rule_tag(r) for r in cand.rules if rule_tag(r)}
            lines += [f"rule '{rid}': clients send metadata.tags: [\"{tag}\"]" for rid, tag in tags.items()]
            if any(len(r.load_balance_targets) > 1 and r.type == "weight-based-routing" for r in cand.rules):
                lines.append("fallbacks: the chosen deployment may be tried once more as the first fallback group "
                             "before the next target (LiteLLM fallbacks are per model group)")
            path = folder / f"{cand.name}.litellm.yaml"
            written.append(write_text(path, header(lines) + dump_yaml(litellm)))
            entry["files"].append(path.name)
            entry["config_types"][path.name] = "litellm-proxy-config"
            if tags:
                entry["litellm_tags"] = tags
        portkey, gaps = to_portkey(cand, scenario.portkey.accounts)
        entry["not_expressible"]["portkey"] = gaps
        if portkey is not None:
            path = folder / f"{cand.name}.portkey.json"
            written.append(write_text(path, dumps(portkey)))
            entry["files"].append(path.name)
            entry["config_types"][path.name] = "portkey-config"
            entry["portkey_attach_when"] = attach_when(cand.rules[0])
        kpath = folder / f"{cand.name}.session-kill.truefoundry.yaml"
        if figures.get("session_kill"):  # kill_runaway_sessions as a per-session rate limit (simulator.control)
            from simulator.control.gateway import session_kill_text

            ktext, kill_gaps = session_kill_text(cand.name, scenario.name, figures["session_kill"])
            entry["not_expressible"]["truefoundry"] = entry["not_expressible"]["truefoundry"] + kill_gaps
            written.append(write_text(kpath, ktext))
            entry["files"].append(kpath.name)
            entry["config_types"][kpath.name] = "gateway-rate-limiting-config"
        elif cand.kill_runaway_sessions:
            entry["not_expressible"]["truefoundry"] = entry["not_expressible"]["truefoundry"] + [
                "kill_runaway_sessions: the per-session limit comes from the replay's figures (none in this summary)"]
        if cand.kill_runaway_sessions:
            for fmt in ("litellm", "portkey"):
                entry["not_expressible"][fmt] = entry["not_expressible"][fmt] + [
                    "kill_runaway_sessions: no per-session limit in this config"]
        if not entry["files"] and client_changes:
            entry["note"] = "nothing to apply on the gateway: the change is in the client (client_changes)"
        elif not entry["files"] and not (cand.rules or cand.budgets or cand.rate_limits):
            entry["note"] = "no rules, budgets or rate limits: nothing to apply"
        index[cand.name] = entry
    if index:
        written.append(write_text(folder / "index.json", dumps(index)))
    return written
