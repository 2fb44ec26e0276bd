"""Gateway configs: emit a candidate as TrueFoundry / LiteLLM / Portkey config, and read TrueFoundry configs back.

TrueFoundry (``tfy apply -f``, one manifest per file):

- a candidate that is one rule matching one requested virtual model (``group/name``, not a served model) becomes a
  virtual model (``type: provider-account/virtual-model``); any other rule set becomes a legacy
  ``gateway-load-balancing-config`` (first match wins, as tfysim simulates);
- budgets become a ``gateway-budget-config``, rate limits a ``gateway-rate-limiting-config``.

File layout per candidate: ``<c>.truefoundry.yaml`` holds the first manifest (routing if any, else budgets, else
rate limits); the others go to ``<c>.budgets.truefoundry.yaml`` and ``<c>.rate-limits.truefoundry.yaml``, which
:func:`candidate_from_config` reads back from beside the main file. Behaviour tfysim simulates that the gateway's
schema has no field for (a budget or rate limit that *falls back* to another model instead of blocking) is kept in
a ``# tfysim-extension: {json}`` comment line: ``tfy apply`` ignores it, tfysim reads it back, and the header says so.

LiteLLM proxy and Portkey can express only part of a candidate; what they cannot is listed in ``not_expressible``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydantic
import yaml

from simulator.errors import ScenarioError, did_you_mean
from simulator.pricing.model_ids import guess_provider, split_model_id
from simulator.routing.scenario import (
    DEFAULT_FALLBACK_CODES,
    Budget,
    Candidate,
    RateLimit,
    Rule,
    format_validation_error,
)
from simulator.io.yamlio import parse_yaml
from simulator.outputs.tier_configs import gateway_view
from simulator.summary.plan import plan_candidates

VIRTUAL_MODEL = "provider-account/virtual-model"
VIRTUAL_INTEGRATION = "integration/model/virtual"
LOAD_BALANCING = "gateway-load-balancing-config"
BUDGET = "gateway-budget-config"
RATE_LIMITING = "gateway-rate-limiting-config"
KINDS = {LOAD_BALANCING: "routing", VIRTUAL_MODEL: "routing", BUDGET: "budgets", RATE_LIMITING: "rate-limits"}
SUFFIX = {"routing": ".truefoundry.yaml", "budgets": ".budgets.truefoundry.yaml",
          "rate-limits": ".rate-limits.truefoundry.yaml"}
EXTENSION_PREFIX = "# tfysim-extension: "

VM_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_]{1,62}[a-z0-9]$")
INTEGRATION_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9\-_.]{0,62}$")
RULE_ID_RE = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9\-]{0,60}[a-zA-Z0-9])$")
_TOP_LEVEL = {
    VIRTUAL_MODEL: {"type", "name", "integrations", "collaborators", "ownedBy", "slug"},
    LOAD_BALANCING: {"type", "name", "rules", "model_configs", "collaborators", "ownedBy"},
    BUDGET: {"type", "name", "rules", "collaborators", "ownedBy"},
    RATE_LIMITING: {"type", "name", "rules", "collaborators", "ownedBy"},
}
_INTEGRATION_KEYS = {"type", "name", "model_types", "routing_config", "slug", "collaborators"}
_ROUTING_KEYS = {"type", "sticky_routing", "load_balance_targets"}


# -- emitting TrueFoundry ------------------------------------------------------------------------------------------
def slug(text: str, pattern: re.Pattern = VM_NAME_RE, fallback: str = "tfysim") -> str:
    """A manifest name from free text: lowercase, [a-z0-9-], starting with a letter."""
    out = re.sub(r"[^a-z0-9\-]+", "-", str(text).lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)
    if not out or not out[0].isalpha():
        out = f"{fallback}-{out}".strip("-")
    out = out[:64].rstrip("-")
    if len(out) < 3:
        out = f"{out}-{fallback}"[:64]
    return out if pattern.match(out) else fallback


def _rule_id(rule_id: str) -> str:
    """Gateway rule ids allow letters, digits and '-' (at least 2 characters); tfysim also allows '_'."""
    out = re.sub(r"[^a-zA-Z0-9\-]+", "-", rule_id).strip("-") or "rule"
    if not out[0].isalpha():
        out = "r-" + out
    if len(out) < 2:
        out += "-rule"
    return out[:62].rstrip("-")


def _when(when) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if when.subjects:
        out["subjects"] = list(when.subjects)
    if when.models:
        out["models"] = list(when.models)
    if when.metadata:
        out["metadata"] = dict(when.metadata)
    return out


def _target(t, rule_type: str, single: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"target": t.target}
    if t.weight is not None:
        out["weight"] = int(t.weight)
    elif rule_type == "weight-based-routing" and single:
        out["weight"] = 100  # a weight-based target needs a weight; one target takes all traffic
    if t.priority is not None:
        out["priority"] = int(t.priority)
    if t.sla_cutoff is not None:
        sla = {k: v for k, v in t.sla_cutoff.model_dump().items() if v is not None}
        if sla:
            out["sla_cutoff"] = sla
    if t.retry_config is not None:
        rc = t.retry_config
        out["retry_config"] = {"attempts": rc.attempts, "delay": rc.delay, "on_status_codes": list(rc.on_status_codes)}
    if list(t.fallback_status_codes) != list(DEFAULT_FALLBACK_CODES):
        out["fallback_status_codes"] = list(t.fallback_status_codes)
    if not t.fallback_candidate:
        out["fallback_candidate"] = False
    if t.override_params:
        out["override_params"] = dict(t.override_params)
    if t.headers_override:
        out["headers_override"] = dict(t.headers_override)
    if t.metadata_match:
        out["metadata_match"] = dict(t.metadata_match)
    return out


def _targets(rule: Rule, notes: list[str]) -> list[dict[str, Any]]:
    targets = rule.load_balance_targets
    out = [_target(t, rule.type, len(targets) == 1) for t in targets]
    if rule.type == "weight-based-routing" and len(targets) > 1:
        total = sum(t.weight or 0 for t in targets)
        if total != 100:
            if all((t.weight or 0) * 100 % total == 0 for t in targets):
                # Same proportions, written the way the gateway docs expect (summing to 100).
                for entry, t in zip(out, targets):
                    entry["weight"] = (t.weight or 0) * 100 // total
            else:
                notes.append(f"rule '{rule.id}': weights sum to {total}, not 100 as the gateway docs expect; "
                             "tfysim simulated these exact weights")
    return out


def _routing_block(rule: Rule, notes: list[str]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": rule.type}
    if rule.sticky_routing is not None:
        sr = rule.sticky_routing
        block["sticky_routing"] = {"ttl_seconds": sr.ttl_seconds,
                                   "session_identifiers": [s.model_dump() for s in sr.session_identifiers]}
        if not 1800 <= sr.ttl_seconds <= 86400:
            notes.append(f"rule '{rule.id}': sticky_routing.ttl_seconds {sr.ttl_seconds} is outside the schema "
                         "range 1800..86400")
    block["load_balance_targets"] = _targets(rule, notes)
    return block


def virtual_model_target(candidate: Candidate, known_models: Iterable[str] = ()) -> str | None:
    """The virtual model id (``group/name``) when the candidate fits the virtual-model form, else None."""
    if len(candidate.rules) != 1:
        return None
    rule = candidate.rules[0]
    w = rule.when
    if w.subjects or w.metadata or len(w.models) != 1:
        return None
    model = w.models[0]
    group, name = split_model_id(model)
    targets = {t.target for t in rule.load_balance_targets}
    accounts = {split_model_id(t)[0] for t in targets}
    if (not group or not VM_NAME_RE.match(group) or not INTEGRATION_NAME_RE.match(name) or model in targets
            or group in accounts or model in set(known_models)):
        return None
    return model


def _routing_manifest(candidate: Candidate, name: str, known_models: Iterable[str], notes: list[str]) -> dict:
    vm = virtual_model_target(candidate, known_models)
    if vm is not None:
        group, integration = split_model_id(vm)
        rule = candidate.rules[0]
        return {"type": VIRTUAL_MODEL, "name": group, "integrations": [{
            "type": VIRTUAL_INTEGRATION, "name": integration, "model_types": ["chat"],
            "routing_config": _routing_block(rule, notes)}]}
    rules = []
    for rule in candidate.rules:
        entry: dict[str, Any] = {"id": _rule_id(rule.id), "type": rule.type, "when": _when(rule.when)}
        if not rule.when.models:
            notes.append(f"rule '{rule.id}' lists no when.models: the schema allows it, the docs require it")
        block = _routing_block(rule, notes)
        if "sticky_routing" in block:
            entry["sticky_routing"] = block["sticky_routing"]
        entry["load_balance_targets"] = block["load_balance_targets"]
        rules.append(entry)
    return {"name": name, "type": LOAD_BALANCING, "rules": rules}


def _applies_per(values: list[str]) -> list[str]:
    # tfysim accepts team / project / workflow_tag; the gateway spells these as metadata keys.
    return [v if v in ("user", "model", "virtualaccount") or v.startswith("metadata.") else f"metadata.{v}"
            for v in values]


def _budget_manifest(candidate: Candidate, name: str, ext: dict) -> dict:
    rules = []
    for b in candidate.budgets:
        entry: dict[str, Any] = {"id": b.id, "when": _when(b.when), "limit_to": float(b.limit_to), "unit": b.unit}
        if b.budget_applies_per:
            entry["budget_applies_per"] = _applies_per(b.budget_applies_per)
        if b.audit_mode:
            entry["audit_mode"] = True
        if b.alerts:
            entry["alerts"] = dict(b.alerts)
        if not isinstance(b.on_exceed, str):
            ext.setdefault("budgets", {})[b.id] = {"on_exceed": {"fallback": b.on_exceed.fallback}}
        rules.append(entry)
    return {"name": f"{name}-budgets", "type": BUDGET, "rules": rules}


def _rate_manifest(candidate: Candidate, name: str, ext: dict) -> dict:
    rules = []
    for r in candidate.rate_limits:
        entry: dict[str, Any] = {"id": r.id, "when": _when(r.when), "limit_to": int(r.limit_to), "unit": r.unit}
        if r.rate_limit_applies_per:
            entry["rate_limit_applies_per"] = _applies_per(r.rate_limit_applies_per)
        if r.fallback:
            ext.setdefault("rate_limits", {})[r.id] = {"fallback": r.fallback}
        rules.append(entry)
    return {"name": f"{name}-rate-limits", "type": RATE_LIMITING, "rules": rules}


def to_truefoundry(candidate: Candidate, scenario_name: str = "", figures: dict[str, Any] | None = None, *,
                   name: str | None = None, known_models: Iterable[str] = ()) -> list[dict[str, Any]]:
    """TrueFoundry manifests for a candidate, one per file: [routing?, budgets?, rate limits?].

    ``name`` is the load-balancing config's ``name`` (default ``tfysim-<candidate>``; pass the current config's
    name so applying replaces it). ``known_models`` are served model ids: a rule matching one of those is not a
    virtual model. ``scenario_name`` and ``figures`` are used by :func:`render_truefoundry` for the comments.
    Example: ``to_truefoundry(candidate, "weekly", {"monthly_savings_usd": 1200.0})``.
    """
    return [m for _, m, _ in _manifests(candidate, name=name, known_models=known_models)]


def _manifests(candidate: Candidate, *, name: str | None, known_models: Iterable[str]):
    """(kind, manifest, notes/extension) triples."""
    base = name or slug(f"tfysim-{candidate.name}")
    out = []
    if candidate.rules:
        notes: list[str] = []
        out.append(("routing", _routing_manifest(candidate, base, known_models, notes), {"notes": notes}))
    if candidate.budgets:
        ext: dict = {}
        out.append(("budgets", _budget_manifest(candidate, slug(f"tfysim-{candidate.name}"), ext), {"ext": ext}))
    if candidate.rate_limits:
        ext = {}
        out.append(("rate-limits", _rate_manifest(candidate, slug(f"tfysim-{candidate.name}"), ext), {"ext": ext}))
    return out


def _money(x: Any) -> str:
    return "n/a" if x is None else f"${x:,.2f}"


def figures_line(figures: dict[str, Any] | None) -> str:
    """One line of figures for a header comment: monthly savings with interval, accuracy change."""
    f = figures or {}
    parts = []
    if f.get("monthly_savings_usd") is not None:
        ci = f.get("monthly_savings_ci95") or [None, None]
        parts.append(f"monthly savings {_money(f['monthly_savings_usd'])} (95% CI {_money(ci[0])} to {_money(ci[1])})")
    if f.get("accuracy_delta_pp") is not None:
        ci = f.get("accuracy_delta_ci95")
        acc = f"accuracy change {f['accuracy_delta_pp']:+.2f} pp"
        if ci and ci[0] is not None:
            acc += f" (95% CI {ci[0]:+.2f} to {ci[1]:+.2f} pp)"
        parts.append(acc)
    else:
        parts.append("accuracy change: not measured (no eval data for the moved traffic)")
    gates = f.get("gates") or []
    if gates:
        failed = [g["name"] for g in gates if not g["passed"]]
        parts.append("gates: " + ("FAILED " + ", ".join(failed) if failed else "all passed"))
    return "; ".join(parts)


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def render_truefoundry(candidate: Candidate, scenario_name: str, figures: dict[str, Any] | None = None, *,
                       name: str | None = None, known_models: Iterable[str] = ()) -> dict[str, str]:
    """YAML text per file kind (``routing`` / ``budgets`` / ``rate-limits``), each with a comment header."""
    out: dict[str, str] = {}
    manifests = _manifests(candidate, name=name, known_models=known_models)
    for i, (kind, manifest, extra) in enumerate(manifests):
        file_kind = "routing" if i == 0 else kind
        lines = [
            f"# tfysim: candidate '{candidate.name}' of scenario '{scenario_name}' ({manifest['type']})",
            f"# figures: {figures_line(figures)}",
            f"# apply: tfy apply -f <this file> --dry-run --show-diff   (then without --dry-run)",
        ]
        if len(manifests) > 1:
            others = [k for j, (k, _, _) in enumerate(manifests) if j != i]
            lines.append(f"# one manifest per file: this candidate also has {', '.join(others)} config file(s) "
                         "beside this one; apply each")
        for note in extra.get("notes", []):
            lines.append(f"# note: {note}")
        if extra.get("ext"):
            lines.append("# note: the gateway schema has no field for a fallback on budget/rate-limit exceed; "
                         "the line below records what tfysim simulated (tfy apply ignores comments)")
            lines.append(EXTENSION_PREFIX + json.dumps(extra["ext"], sort_keys=True))
        out[file_kind if i == 0 else kind] = "\n".join(lines) + "\n" + dump_yaml(manifest)
    return out


# -- reading TrueFoundry ---------------------------------------------------------------------------------------
def _err(where: str, msg: str) -> ScenarioError:
    return ScenarioError(f"{where}: {msg}")


def _check_keys(data: dict, allowed: set[str], where: str, path: str) -> None:
    for key in data:
        if key not in allowed:
            raise _err(where, f"{path}unknown key '{key}'.{did_you_mean(str(key), allowed)}")


def _validate(model: type[pydantic.BaseModel], data: Any, where: str, path: str):
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        inner = format_validation_error(exc, where)[len(where) + 2:]
        raise ScenarioError(f"{where}: {path}: {inner}") from None


def _normalise_when(when: Any) -> Any:
    if isinstance(when, dict) and isinstance(when.get("subjects"), list):
        # Old docs wrote "virtual-account:"; the current schema writes "virtualaccount:".
        when = {**when, "subjects": [s.replace("virtual-account:", "virtualaccount:", 1) if isinstance(s, str) else s
                                     for s in when["subjects"]]}
    return when


def _applies_back(values: Any) -> Any:
    if isinstance(values, str):
        values = [values]  # the docs show both a list and a single value
    return values


def _read_manifest(data: Any, where: str, ext: dict) -> tuple[str, dict[str, list]]:
    if not isinstance(data, dict):
        raise _err(where, "expected one YAML mapping (a TrueFoundry manifest); multi-document files are not supported, "
                          "write one manifest per file.")
    kind = data.get("type")
    if kind is None:
        raise _err(where, f"type: required key is missing. Expected one of {', '.join(sorted(_TOP_LEVEL))}.")
    if kind not in _TOP_LEVEL:
        raise _err(where, f"type: '{kind}' is not a routing, budget or rate-limit config. Expected one of "
                          f"{', '.join(sorted(_TOP_LEVEL))}.{did_you_mean(str(kind), _TOP_LEVEL)}")
    _check_keys(data, _TOP_LEVEL[kind], where, "")
    out: dict[str, list] = {"rules": [], "budgets": [], "rate_limits": []}
    if kind == VIRTUAL_MODEL:
        group = data.get("name")
        if not isinstance(group, str) or not group:
            raise _err(where, "name: required key is missing (the virtual model group, e.g. support-routing).")
        integrations = data.get("integrations")
        if not isinstance(integrations, list) or not integrations:
            raise _err(where, "integrations: expected a non-empty list of integration/model/virtual entries.")
        for i, integ in enumerate(integrations):
            path = f"integrations[{i}]"
            if not isinstance(integ, dict):
                raise _err(where, f"{path}: expected a mapping.")
            _check_keys(integ, _INTEGRATION_KEYS, where, f"{path}: ")
            if integ.get("type", VIRTUAL_INTEGRATION) != VIRTUAL_INTEGRATION:
                raise _err(where, f"{path}.type: expected '{VIRTUAL_INTEGRATION}'. Got {integ.get('type')!r} instead.")
            name = integ.get("name")
            if not isinstance(name, str) or not name:
                raise _err(where, f"{path}.name: required key is missing.")
            rc = integ.get("routing_config")
            if not isinstance(rc, dict):
                raise _err(where, f"{path}.routing_config: required mapping is missing.")
            _check_keys(rc, _ROUTING_KEYS, where, f"{path}.routing_config: ")
            models = [f"{group}/{name}"] + ([integ["slug"]] if isinstance(integ.get("slug"), str) else [])
            rule = {"id": _rule_id(name), "when": {"models": models}, **rc}
            out["rules"].append(_validate(Rule, rule, where, f"{path}.routing_config"))
        return kind, out
    rules = data.get("rules")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise _err(where, "rules: expected a list of rules.")
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise _err(where, f"{path}: expected a mapping.")
        rule = {**rule, "when": _normalise_when(rule.get("when", {}))}
        if kind == LOAD_BALANCING:
            out["rules"].append(_validate(Rule, rule, where, path))
        elif kind == BUDGET:
            if "budget_applies_per" in rule:
                rule["budget_applies_per"] = _applies_back(rule["budget_applies_per"])
            extra = ext.get("budgets", {}).get(str(rule.get("id")), {})
            out["budgets"].append(_validate(Budget, {**rule, **extra}, where, path))
        else:
            if "rate_limit_applies_per" in rule:
                rule["rate_limit_applies_per"] = _applies_back(rule["rate_limit_applies_per"])
            extra = ext.get("rate_limits", {}).get(str(rule.get("id")), {})
            out["rate_limits"].append(_validate(RateLimit, {**rule, **extra}, where, path))
    return kind, out


def _extension(text: str, where: str) -> dict:
    for line in text.splitlines():
        if line.startswith(EXTENSION_PREFIX):
            try:
                ext = json.loads(line[len(EXTENSION_PREFIX):])
            except json.JSONDecodeError as exc:
                raise _err(where, f"'{EXTENSION_PREFIX.strip()}' comment is not valid JSON ({exc.msg}); "
                                  "delete the line or restore it from the tfysim run.") from None
            if not isinstance(ext, dict):
                raise _err(where, f"'{EXTENSION_PREFIX.strip()}' comment must hold a JSON object.")
            return ext
    return {}


def read_config(path: str | Path) -> tuple[str, dict[str, list]]:
    """Read one TrueFoundry manifest file: (type, {"rules": [...], "budgets": [...], "rate_limits": [...]})."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found (truefoundry_config). Check the path; relative paths resolve "
                            "against the scenario's folder.") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a directory, expected a TrueFoundry YAML file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read as UTF-8 text ({exc}).") from None
    where = str(path)
    if re.search(r"^---\s*$", text, flags=re.M) and len([d for d in re.split(r"^---\s*$", text, flags=re.M)
                                                          if d.strip() and not _only_comments(d)]) > 1:
        raise _err(where, "several YAML documents in one file; tfy apply -f takes one manifest per file, "
                          "split them into separate files.")
    data = parse_yaml(text, where, ScenarioError)
    return _read_manifest(data, where, _extension(text, where))


def _only_comments(doc: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in doc.splitlines())


def sibling_paths(path: Path) -> dict[str, Path]:
    """``<c>.truefoundry.yaml`` -> its ``budgets`` / ``rate-limits`` companions (whether or not they exist)."""
    name = path.name
    if not name.endswith(SUFFIX["routing"]) or name.endswith((SUFFIX["budgets"], SUFFIX["rate-limits"])):
        return {}
    stem = name[: -len(SUFFIX["routing"])]
    return {kind: path.with_name(stem + SUFFIX[kind]) for kind in ("budgets", "rate-limits")}


def candidate_from_config(candidate: Candidate, path: str | Path) -> Candidate:
    """The candidate with ``rules``, ``budgets`` and ``rate_limits`` read from a TrueFoundry config file.

    ``path`` is a virtual-model, load-balancing, budget or rate-limit manifest; the companion files
    ``<c>.budgets.truefoundry.yaml`` / ``<c>.rate-limits.truefoundry.yaml`` beside a ``<c>.truefoundry.yaml`` are read
    too. Rules, budgets or rate limits written inline in the candidate as well are an error (ambiguous).
    """
    path = Path(path)
    if candidate.rules or candidate.budgets or candidate.rate_limits:
        raise ScenarioError(f"candidate '{candidate.name}': give either truefoundry_config or inline rules/budgets/"
                            "rate_limits, not both.")
    merged: dict[str, list] = {"rules": [], "budgets": [], "rate_limits": []}
    files = [path] + [p for p in sibling_paths(path).values() if p.is_file()]
    for file in files:
        _, part = read_config(file)
        for key in merged:
            merged[key].extend(part[key])
    return candidate.model_copy(update={**merged, "truefoundry_config": None})


# -- LiteLLM and Portkey -------------------------------------------------------------------------------------------
def _plain_rule(rule: Rule) -> str | None:
    """Why a rule cannot be written for a proxy that routes by model name only, or None when it can."""
    if rule.when.subjects:
        return f"rule '{rule.id}': subject conditions ({', '.join(rule.when.subjects)})"
    if rule.when.metadata:
        return f"rule '{rule.id}': metadata conditions ({json.dumps(rule.when.metadata, sort_keys=True)})"
    if not rule.when.models or "*" in rule.when.models:
        return f"rule '{rule.id}': matches every requested model (no model alias to route on)"
    if any(t.metadata_match for t in rule.load_balance_targets):
        return f"rule '{rule.id}': per-target metadata_match"
    return None


def _common_not_expressible(candidate: Candidate) -> list[str]:
    out = []
    if candidate.budgets:
        out.append("budgets (" + ", ".join(b.id for b in candidate.budgets) + "): set them in the proxy's own "
                   "budget settings, not in this config")
    if candidate.rate_limits:
        out.append("rate limits (" + ", ".join(r.id for r in candidate.rate_limits) + "): per-subject/metadata "
                   "limits have no equivalent here")
    if candidate.prompt_caching:
        out.append("prompt caching rules (provider-side caching is set per request)")
    for rule in candidate.rules:
        if rule.sticky_routing is not None:
            out.append(f"rule '{rule.id}': sticky routing")
        for t in rule.load_balance_targets:
            if t.sla_cutoff is not None:
                out.append(f"rule '{rule.id}': sla_cutoff on {t.target}")
            if not t.fallback_candidate:
                out.append(f"rule '{rule.id}': fallback_candidate: false on {t.target}")
    return out


def _litellm_model(target: str) -> str:
    provider = guess_provider(target)
    _, name = split_model_id(target)
    return f"{provider}/{name}" if provider else target


def to_litellm(candidate: Candidate) -> tuple[dict[str, Any] | None, list[str]]:
    """LiteLLM proxy config (``model_list``, ``router_settings``) for the plain rules, and what is not expressible.

    Each requested model of a rule becomes a model group (``model_name``) of its targets: weight-based ->
    ``simple-shuffle`` with ``weight``; priority-based -> ``order`` (1 = first); latency-based ->
    ``latency-based-routing``. Falling back to the other targets of a rule is LiteLLM's own behaviour within a model
    group (retries pick another deployment), so no ``fallbacks`` (which link model *groups*) are needed.
    ``router_settings`` is global, so rules with different routing types cannot all be expressed. None when no rule
    is expressible.
    """
    not_expressible = _common_not_expressible(candidate)
    model_list: list[dict[str, Any]] = []
    types: list[str] = []
    retries = 0
    seen_aliases: set[str] = set()
    for rule in candidate.rules:
        why = _plain_rule(rule)
        if why:
            not_expressible.append(why)
            continue
        aliases = [m for m in rule.when.models if m not in seen_aliases]
        seen_aliases.update(aliases)
        types.append(rule.type)
        for alias in aliases:
            for j, t in enumerate(rule.load_balance_targets):
                params: dict[str, Any] = {"model": _litellm_model(t.target)}
                if rule.type == "weight-based-routing":
                    params["weight"] = int(t.weight if t.weight is not None else 100)
                elif rule.type == "priority-based-routing":
                    params["order"] = int(t.priority or 0) + 1
                model_list.append({"model_name": alias, "litellm_params": params,
                                   "model_info": {"id": f"{_rule_id(rule.id)}-{j}", "tfy_target": t.target}})
                if t.retry_config is not None:
                    retries = max(retries, t.retry_config.attempts)
        for t in rule.load_balance_targets:
            if list(t.fallback_status_codes) != list(DEFAULT_FALLBACK_CODES) and len(rule.load_balance_targets) > 1:
                not_expressible.append(f"rule '{rule.id}': {t.target} falls back only on status codes "
                                       f"{', '.join(t.fallback_status_codes)} (LiteLLM tries other deployments of "
                                       "the group on any failure)")
    if not model_list:
        return None, not_expressible
    strategy = {"weight-based-routing": "simple-shuffle", "priority-based-routing": "simple-shuffle",
                "latency-based-routing": "latency-based-routing"}
    chosen = {strategy[t] for t in types}
    if len(chosen) > 1:
        not_expressible.append("rules with different routing types: LiteLLM has one global routing_strategy; "
                               "latency-based rules are written as simple-shuffle")
    router: dict[str, Any] = {"routing_strategy": "latency-based-routing" if chosen == {"latency-based-routing"}
                              else "simple-shuffle"}
    if retries:
        router["num_retries"] = retries
    return {"model_list": model_list, "router_settings": router}, not_expressible


def _portkey_target(target: str, retry=None) -> dict[str, Any]:
    account, name = split_model_id(target)
    out: dict[str, Any] = {"provider": f"@{account}" if account else target, "override_params": {"model": name}}
    if retry is not None and retry.attempts > 0:
        out["retry"] = {"attempts": min(int(retry.attempts), 5),
                        "on_status_codes": sorted(int(c) for c in retry.on_status_codes)}
    return out


def to_portkey(candidate: Candidate) -> tuple[dict[str, Any] | None, list[str]]:
    """Portkey config JSON for a candidate with one plain rule, and what is not expressible.

    A Portkey config is attached per request (it has no "when the requested model is X"), so only a candidate with
    exactly one rule is written: weight-based -> ``loadbalance`` (each weighted target nested in a ``fallback`` to
    the others, as the gateway falls back); priority/latency-based -> ``fallback`` in priority order. Status codes
    are numbers.
    """
    not_expressible = _common_not_expressible(candidate)
    if len(candidate.rules) != 1:
        if len(candidate.rules) > 1:
            not_expressible.append(f"{len(candidate.rules)} rules: a Portkey config applies to the requests it is "
                                   "attached to and cannot pick a rule by requested model")
        return None, not_expressible
    rule = candidate.rules[0]
    why = _plain_rule(rule)
    if why and not why.endswith("(no model alias to route on)"):
        return None, not_expressible + [why]
    if rule.when.models and "*" not in rule.when.models:
        not_expressible.append(f"rule '{rule.id}': the model condition ({', '.join(rule.when.models)}); attach this "
                               "config only to those requests")
    targets = rule.load_balance_targets
    order = sorted(range(len(targets)), key=lambda i: (targets[i].priority or 0, i)) \
        if rule.type == "priority-based-routing" else \
        sorted(range(len(targets)), key=lambda i: (-(targets[i].weight or 0), i))
    if rule.type == "latency-based-routing":
        not_expressible.append(f"rule '{rule.id}': latency-based routing (written as fallback in weight order)")

    def chain(first: int) -> dict[str, Any]:
        members = [first] + [i for i in order if i != first and targets[i].fallback_candidate]
        if len(members) == 1:
            return _portkey_target(targets[first].target, targets[first].retry_config)
        codes = sorted(int(c) for c in set(targets[first].fallback_status_codes) | {"408"})
        return {"strategy": {"mode": "fallback", "on_status_codes": codes},
                "targets": [_portkey_target(targets[i].target, targets[i].retry_config) for i in members]}

    if rule.type == "weight-based-routing" and len(targets) > 1:
        lb = []
        for i, t in enumerate(targets):
            entry = chain(i)
            entry["weight"] = int(t.weight if t.weight is not None else 100)
            lb.append(entry)
        return {"strategy": {"mode": "loadbalance"}, "targets": lb}, not_expressible
    if len(targets) == 1:
        return {"strategy": {"mode": "single"}, "targets": [chain(0)]}, not_expressible
    return chain(order[0]), not_expressible


# -- writing a run's routing folder --------------------------------------------------------------------------------
def unified_diff(current_text: str, proposed_text: str, current_name: str, proposed_name: str) -> str:
    return "".join(difflib.unified_diff(current_text.splitlines(keepends=True), proposed_text.splitlines(keepends=True),
                                        fromfile=current_name, tofile=proposed_name))


def current_config_name(path: Path | None) -> str | None:
    """The ``name`` of the current load-balancing config, so the proposed one replaces it when applied."""
    if path is None or not path.is_file():
        return None
    kind, _ = read_config(path)
    if kind != LOAD_BALANCING:
        return None
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path), ScenarioError)
    return data.get("name") if isinstance(data.get("name"), str) else None


def write_gateway_configs(result, folder: str | Path, include_prompts: bool = False) -> list[Path]:
    """Writer for :data:`simulator.outputs.writer.WRITERS`: ``routing/<c>.truefoundry.yaml`` (+ companions), ``.litellm.yaml``,
    ``.portkey.json``, ``.diff`` against the scenario's current config, and ``routing/index.json``."""
    from simulator.api import resolve_candidates
    from simulator.outputs.files import dumps, write_text

    folder = Path(folder) / "routing"
    scenario = result.scenario
    policies = {p["name"]: p for p in result.summary.get("policies", [])}
    known = {r["model"] for r in result.summary.get("baseline", {}).get("breakdowns", {}).get("model", [])}
    current = scenario.path(scenario.baseline.truefoundry_config) if scenario.baseline else None
    current_name = current_config_name(current)
    written: list[Path] = []
    index: dict[str, Any] = {}
    plans = plan_candidates(result.summary)  # the plan: one config per config type for everything combined
    policies.update({cand.name: figures for cand, figures in plans})
    for cand in resolve_candidates(scenario) + [cand for cand, _ in plans]:
        figures = policies.get(cand.name, {})
        entry: dict[str, Any] = {"files": [], "not_expressible": {}}
        cand, client_changes = gateway_view(cand)  # service tiers: request parameters, or client changes
        if client_changes:
            entry["client_changes"] = client_changes
        texts = render_truefoundry(cand, scenario.name, figures, name=current_name, known_models=known)
        texts = {k: "".join(f"# client change: {c}\n" for c in client_changes) + t for k, t in texts.items()}
        stale = [folder / f"{cand.name}{SUFFIX[k]}" for k in SUFFIX if k not in texts]
        for kind, text in texts.items():
            written.append(write_text(folder / f"{cand.name}{SUFFIX[kind]}", text))
            entry["files"].append(written[-1].name)
        litellm, lx = to_litellm(cand)
        tier_gaps = [f"rule '{r.id}': service_tier {r.service_tier} (a request parameter); set it in the client"
                     for r in cand.rules if r.service_tier in ("flex", "priority")]
        lx = lx + tier_gaps
        entry["not_expressible"]["litellm"] = lx
        lpath = folder / f"{cand.name}.litellm.yaml"
        if litellm is not None:
            header = [f"# tfysim: candidate '{cand.name}' of scenario '{scenario.name}' as a LiteLLM proxy config",
                      f"# figures: {figures_line(figures)}"]
            header += [f"# not expressible in LiteLLM: {x}" for x in lx] or ["# everything in this candidate is "
                                                                            "expressed"]
            written.append(write_text(lpath, "\n".join(header) + "\n" + dump_yaml(litellm)))
            entry["files"].append(lpath.name)
        else:
            stale.append(lpath)
        portkey, px = to_portkey(cand)
        px = px + tier_gaps
        entry["not_expressible"]["portkey"] = px
        ppath = folder / f"{cand.name}.portkey.json"
        if portkey is not None:
            written.append(write_text(ppath, dumps(portkey)))
            entry["files"].append(ppath.name)
        else:
            stale.append(ppath)
        dpath = folder / f"{cand.name}.diff"
        if current is not None and cand.rules:
            try:
                current_text = current.read_text(encoding="utf-8")
            except OSError as exc:
                raise ScenarioError(f"{current}: cannot read the baseline truefoundry_config ({exc.strerror}).") from None
            diff = unified_diff(current_text, texts["routing"], f"current/{current.name}",
                                f"proposed/{cand.name}.truefoundry.yaml")
            written.append(write_text(dpath, diff or "# no difference\n"))
            entry["files"].append(dpath.name)
        else:
            stale.append(dpath)
        for path in stale:  # files of an earlier run that this run would not write
            path.unlink(missing_ok=True)
        if not texts:
            entry["note"] = ("no rules, budgets or rate limits: nothing to apply" if not client_changes else
                             "nothing to apply on the gateway: the change is in the client (client_changes)")
        index[cand.name] = entry
    if index:
        written.append(write_text(folder / "index.json", dumps(index)))
    return written
