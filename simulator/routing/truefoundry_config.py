"""Read TrueFoundry gateway configs (the ``truefoundry_config:`` and ``baseline:`` files) into a candidate.

Virtual models (``provider-account/virtual-model``), ``gateway-load-balancing-config``, ``gateway-budget-config`` and
``gateway-rate-limiting-config`` manifests, one per file; the companions ``<c>.budgets.truefoundry.yaml`` and
``<c>.rate-limits.truefoundry.yaml`` beside a ``<c>.truefoundry.yaml`` are read too. A budget or rate-limit fallback
written as the gateway composes it (see :mod:`simulator.routing.fallbacks`) is read back as ``on_exceed: {fallback}``
(``fallback:``), so a written file replays exactly as the candidate it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic

from simulator.errors import ScenarioError, did_you_mean
from simulator.io.yamlio import parse_yaml
from simulator.routing.fallbacks import EXEMPT_SUFFIX, fallback_of, gateway_rule_id
from simulator.routing.scenario import Budget, Candidate, Fallback, RateLimit, Rule, format_validation_error

VIRTUAL_MODEL = "provider-account/virtual-model"
VIRTUAL_INTEGRATION = "integration/model/virtual"
LOAD_BALANCING = "gateway-load-balancing-config"
BUDGET = "gateway-budget-config"
RATE_LIMITING = "gateway-rate-limiting-config"
KINDS = {LOAD_BALANCING: "routing", VIRTUAL_MODEL: "routing", BUDGET: "budgets", RATE_LIMITING: "rate-limits"}
SUFFIX = {"routing": ".truefoundry.yaml", "budgets": ".budgets.truefoundry.yaml",
          "rate-limits": ".rate-limits.truefoundry.yaml"}

VM_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_]{1,62}[a-z0-9]$")
INTEGRATION_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9\-_.]{0,62}$")
_TOP_LEVEL = {
    VIRTUAL_MODEL: {"type", "name", "integrations", "collaborators", "ownedBy", "slug"},
    LOAD_BALANCING: {"type", "name", "rules", "model_configs", "collaborators", "ownedBy"},
    BUDGET: {"type", "name", "rules", "collaborators", "ownedBy"},
    RATE_LIMITING: {"type", "name", "rules", "collaborators", "ownedBy"},
}
_INTEGRATION_KEYS = {"type", "name", "model_types", "routing_config", "slug", "collaborators"}
_ROUTING_KEYS = {"type", "sticky_routing", "load_balance_targets"}


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


def _read_manifest(data: Any, where: str) -> tuple[str, dict[str, list]]:
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
            rule = {"id": gateway_rule_id(name), "when": {"models": models}, **rc}
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
            out["budgets"].append(_validate(Budget, rule, where, path))
        else:
            if "rate_limit_applies_per" in rule:
                rule["rate_limit_applies_per"] = _applies_back(rule["rate_limit_applies_per"])
            out["rate_limits"].append(_validate(RateLimit, rule, where, path))
    return kind, out


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
    return _read_manifest(data, where)


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
    return fold_fallbacks(candidate.model_copy(update={**merged, "truefoundry_config": None}))


def fold_fallbacks(candidate: Candidate) -> Candidate:
    """Budgets and rate limits with the gateway's fallback composition read back as ``fallback`` (the composition's
    load-balancing rules and the audit-mode exemption rule are dropped); anything else is kept as written."""
    rules = list(candidate.rules)
    budgets, rate_limits = list(candidate.budgets), list(candidate.rate_limits)

    def take(limit_id: str) -> str | None:
        found = [(i, fallback_of(r, limit_id)) for i, r in enumerate(rules)]
        found = [(i, x) for i, x in found if x is not None]
        targets = {x for _, x in found}
        if len(targets) != 1:
            return None
        for i, _ in reversed(found):
            del rules[i]
        return targets.pop()

    fallbacks = {b.id: take(b.id) for b in budgets
                 if isinstance(b.on_exceed, str) and not b.audit_mode and not b.id.endswith(EXEMPT_SUFFIX)}
    folded_budgets = []
    for b in budgets:
        if b.id.endswith(EXEMPT_SUFFIX) and b.audit_mode and fallbacks.get(b.id[: -len(EXEMPT_SUFFIX)]):
            continue
        fallback = fallbacks.get(b.id)
        folded_budgets.append(b.model_copy(update={"on_exceed": Fallback(fallback=fallback)}) if fallback else b)
    folded_limits = []
    for r in rate_limits:
        fallback = take(r.id) if r.fallback is None else None
        folded_limits.append(r.model_copy(update={"fallback": fallback}) if fallback else r)
    return candidate.model_copy(update={"rules": rules, "budgets": folded_budgets, "rate_limits": folded_limits})


def read_manifest(path: str | Path) -> tuple[str, dict[str, Any], str]:
    """(type, the manifest as a mapping, the file text) of one TrueFoundry file, e.g. a tenant's current config."""
    path = Path(path)
    kind, _ = read_config(path)
    text = path.read_text(encoding="utf-8")
    return kind, parse_yaml(text, str(path), ScenarioError), text
