"""Scenario files: closed pydantic models in the gateway's own vocabulary, loaded with one-line errors.

A candidate is written the way a TrueFoundry routing config is written (``rules`` with ``when`` and
``load_balance_targets``; ``budgets`` as gateway-budget-config rules; ``rate_limits`` as
gateway-rate-limiting-config rules), so what is simulated is what gets applied. Unknown keys are errors naming the
dotted path and the closest valid key. ``tfysim schema`` prints the JSON Schema generated from these models.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.control.settings import Adoption, Alerts, LoopDetection, Outcomes
from simulator.errors import ScenarioError, did_you_mean
from simulator.io.options import DEFAULT_TAG_PREFIXES, AdapterOptions
from simulator.io.yamlio import read_yaml

STATUS_RE = re.compile(r"^[1-5]\d\d$")
DEFAULT_RETRY_CODES = ("429", "500", "502", "503")
DEFAULT_FALLBACK_CODES = ("401", "403", "404", "429", "500", "502", "503")


NAME_PATTERN = r"^[a-z0-9][a-z0-9\-_.]{0,62}$"
RULE_ID_PATTERN = r"^[a-zA-Z](?:[a-zA-Z0-9\-_]{0,60}[a-zA-Z0-9])?$"
TTL_PATTERN = r"^\d+(ms|s|m|h)$"
#: the name patterns in words, for messages (a raw regex is not an explanation)
PATTERN_WORDS = {
    NAME_PATTERN: "1 to 63 characters: lower-case letters, digits, '-', '_' and '.', starting with a letter or digit",
    RULE_ID_PATTERN: "1 to 62 characters: letters, digits, '-' and '_', starting with a letter and ending with a "
                     "letter or digit",
    TTL_PATTERN: "a duration like 5m or 1h (a number and ms, s, m or h)",
}

class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class When(_Closed):
    """Match block: subjects AND models AND metadata (each optional; an empty block matches everything)."""

    subjects: list[str] = Field(default_factory=list, description="user:<id> | team:<name> | virtualaccount:<name>")
    models: list[str] = Field(default_factory=list, description="recorded model or requested_model ids")
    metadata: dict[str, str] = Field(default_factory=dict, description="must be contained in the request metadata")

    @field_validator("metadata", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                    for k, v in value.items()}
        return value


class RetryConfig(_Closed):
    attempts: int = Field(2, ge=0, le=10)
    delay: int = Field(100, ge=0, description="ms between retries")
    on_status_codes: list[str] = Field(default_factory=lambda: list(DEFAULT_RETRY_CODES))

    @field_validator("on_status_codes", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return _status_codes(value)


def _status_codes(value: Any) -> Any:
    if isinstance(value, list):
        out = []
        for v in value:
            text = str(v)
            if not STATUS_RE.match(text):
                raise ValueError(f"status codes must be HTTP codes like \"429\"; got {v!r}")
            out.append(text)
        return out
    return value


class SlaCutoff(_Closed):
    time_per_output_token_ms: int | None = Field(None, gt=0)
    time_to_first_token_ms: int | None = Field(None, gt=0)


class Target(_Closed):
    target: str = Field(description="provider_account/model")
    weight: int | None = Field(None, ge=0, le=100)
    priority: int | None = Field(None, ge=0, description="0 = highest")
    retry_config: RetryConfig | None = None
    fallback_status_codes: list[str] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_CODES))
    fallback_candidate: bool = True
    override_params: dict[str, Any] = Field(default_factory=dict)
    headers_override: dict[str, Any] = Field(default_factory=dict)
    metadata_match: dict[str, str] = Field(default_factory=dict)
    sla_cutoff: SlaCutoff | None = None

    @field_validator("fallback_status_codes", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return _status_codes(value)


class SessionIdentifier(_Closed):
    source: Literal["headers", "metadata"] = "metadata"
    key: str


class StickyRouting(_Closed):
    ttl_seconds: int = Field(3600, ge=1)
    session_identifiers: list[SessionIdentifier] = Field(default_factory=list)


RoutingType = Literal["weight-based-routing", "priority-based-routing", "latency-based-routing"]
ServiceTier = Literal["default", "batch", "flex", "priority"]


class Rule(_Closed):
    id: str = Field(pattern=RULE_ID_PATTERN)
    when: When = Field(default_factory=When)
    type: RoutingType = "weight-based-routing"
    sticky_routing: StickyRouting | None = None
    load_balance_targets: list[Target] = Field(default_factory=list)
    service_tier: ServiceTier | None = Field(
        None, description="processing tier for the matched requests (batch: non-interactive workflows only); "
                          "without load_balance_targets the requests keep their model")

    @model_validator(mode="before")
    @classmethod
    def _tier_from_targets(cls, data: Any) -> Any:
        """Targets that all set the same ``service_tier`` in ``override_params`` (the gateway's way to ask for flex
        or priority processing) put the rule's requests on that tier."""
        if not isinstance(data, dict) or data.get("service_tier") is not None:
            return data
        targets = data.get("load_balance_targets") or []
        tiers = {str((t.get("override_params") or {}).get("service_tier")) for t in targets if isinstance(t, dict)}
        if targets and len(tiers) == 1 and next(iter(tiers)) in ("flex", "priority"):
            return {**data, "service_tier": next(iter(tiers))}
        return data

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not self.load_balance_targets:
            if self.service_tier is not None:
                return self  # a tier-only rule: requests keep their recorded model
            raise ValueError(f"rule '{self.id}' has no load_balance_targets; give at least one target (or a "
                             "service_tier to change only the processing tier)")
        if self.type == "weight-based-routing":
            weights = [t.weight for t in self.load_balance_targets]
            if any(w is None for w in weights):
                if len(weights) == 1:
                    return self  # a single target takes all traffic
                raise ValueError(f"rule '{self.id}': every target of a weight-based rule needs a weight")
            if sum(weights) <= 0:
                raise ValueError(f"rule '{self.id}': target weights sum to 0; give at least one a positive weight")
            if sum(weights) != 100:
                total = sum(weights)
                scaled = [round(w * 100 / total) for w in weights]
                scaled[-1] = 100 - sum(scaled[:-1])
                raise ValueError(f"rule '{self.id}': target weights sum to {total}, not 100 (the gateway splits by "
                                 f"percent); e.g. {'/'.join(map(str, scaled))} instead of "
                                 f"{'/'.join(map(str, weights))}")
        if self.sticky_routing is not None and self.type != "weight-based-routing":
            raise ValueError(f"rule '{self.id}': sticky_routing applies to weight-based-routing only")
        return self


class Fallback(_Closed):
    fallback: str = Field(description="provider_account/model to send requests to instead")


BudgetUnit = Literal["cost_per_day", "cost_per_week", "cost_per_month", "cost_per_quarter",
                     "tokens_per_day", "tokens_per_month"]


class Budget(_Closed):
    id: str
    when: When = Field(default_factory=When)
    limit_to: float = Field(gt=0, description="USD for cost units, tokens for token units")
    unit: BudgetUnit = "cost_per_month"
    budget_applies_per: list[str] = Field(default_factory=list, max_length=1,
                                          description="user | model | virtualaccount | metadata.<key>")
    on_exceed: Literal["block"] | Fallback = "block"
    audit_mode: bool = False
    alerts: dict[str, Any] = Field(default_factory=dict)

    @field_validator("budget_applies_per")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return [_applies_per(v) for v in value]


def _applies_per(value: str) -> str:
    if value in ("user", "model", "virtualaccount", "team", "project", "workflow_tag") or value.startswith("metadata."):
        return value
    raise ValueError(f"must be user, model, virtualaccount or metadata.<key>; got {value!r}")


RateUnit = Literal["requests_per_minute", "requests_per_hour", "requests_per_day",
                   "tokens_per_minute", "tokens_per_hour", "tokens_per_day"]


class RateLimit(_Closed):
    id: str
    when: When = Field(default_factory=When)
    limit_to: int = Field(gt=0)
    unit: RateUnit = "requests_per_minute"
    rate_limit_applies_per: list[str] = Field(default_factory=list, max_length=2)
    fallback: str | None = Field(None, description="send rate-limited requests here instead of failing them (429)")

    @field_validator("rate_limit_applies_per")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return [_applies_per(v) for v in value]


class Breakpoint(_Closed):
    """An explicit cache breakpoint (Anthropic ``cache_control``): after prefix block ``at`` (0 = the first block;
    negative counts from the end, -1 = the whole prefix), with its own TTL (default: the rule's)."""

    at: int = -1
    ttl: str | None = Field(None, pattern=r"^\d+(s|m|h)$")


class CacheRule(_Closed):
    when: When = Field(default_factory=When)
    mode: Literal["automatic", "explicit"] | None = None
    ttl: str = Field("5m", pattern=TTL_PATTERN)
    breakpoints: list[Breakpoint] = Field(
        default_factory=list, max_length=4,
        description="explicit mode: up to 4 breakpoints in prefix order, longer TTLs first (default: one at -1)")

    @model_validator(mode="after")
    def _check(self) -> CacheRule:
        if self.breakpoints and self.mode == "automatic":
            raise ValueError("breakpoints need mode: explicit (automatic caching has no breakpoints)")
        return self


DEFAULT_MAX_ERROR_RATE_INCREASE_PP = 0.5


class Gates(_Closed):
    """CI gates. ``max_error_rate_increase_pp`` applies by default (0.5 pp): a candidate that fails requests the
    recording served does not pass unnoticed; set it to another value, or to null to turn it off."""

    max_accuracy_drop_pp: float | None = Field(None, ge=0)
    max_error_rate_increase_pp: float | None = Field(DEFAULT_MAX_ERROR_RATE_INCREASE_PP, ge=0)
    min_monthly_savings_usd: float | None = None
    max_cost_increase_pct: float | None = None
    max_p95_latency_increase_pct: float | None = None
    max_error_rate: float | None = Field(None, ge=0, le=1)
    max_blocked_requests: int | None = Field(None, ge=0)


class Candidate(_Closed):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    truefoundry_config: str | None = Field(None, description="path to a virtual-model or load-balancing config")
    rules: list[Rule] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    prompt_caching: list[CacheRule] = Field(default_factory=list)
    output_tokens: Literal["recorded", "eval-ratio"] = "recorded"
    bill_failed_attempts: bool = False
    kill_runaway_sessions: bool | LoopDetection = Field(
        False, description="block a session's requests once the loop rule flags it (true: the scenario's "
                           "loop_detection rule; or a rule of its own)")
    gates: Gates = Field(default_factory=Gates)


class Outage(_Closed):
    target: str
    start: dt.datetime
    end: dt.datetime
    status: int = Field(503, ge=400, le=599)

    @model_validator(mode="after")
    def _check(self) -> Outage:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("outage start and end need a time zone offset, e.g. 2026-11-18T14:00:00Z")
        if self.end <= self.start:
            raise ValueError("outage end must be after start")
        return self


class Workflow(_Closed):
    """What the scenario knows about a workflow (by ``workflow_tag``)."""

    interactive: bool = Field(True, description="false: nobody waits on the answer; batch processing may serve it")


class ServiceTierOptions(_Closed):
    """How service tiers behave where providers publish no figure."""

    interactive_metadata_key: str = Field(
        "interactive", description="request metadata key whose value false/0/no marks a request non-interactive")
    flex_unavailable_rate: float = Field(
        0.0, ge=0, le=1, description="share of flex requests refused with 429 (not published; retried on the "
                                     "default tier at the default price)")


class Opportunities(_Closed):
    """Levers tfysim looks for by itself, without a candidate written for them."""

    models: bool = Field(True, description="per workflow, the cheapest model with eval evidence that passes the "
                                           "accuracy gate (needs eval samples)")
    cache: bool = Field(True, description="per workflow and model, what prompt caching would save at each TTL")
    max_accuracy_drop_pp: float = Field(
        2.0, ge=0, description="non-inferiority margin for model opportunities when the scenario's gates set none")


class Plan(_Closed):
    """One plan from compatible candidates: rules that never claim the same request, replayed together."""

    name: str = Field("plan", pattern=r"^[a-z0-9][a-z0-9\-_.]{0,62}$")
    candidates: Literal["passing"] | list[str] = Field(
        "passing", description="'passing': every candidate and opportunity whose gates pass, most savings first; or "
                               "candidate names in the order to combine them")
    include_opportunities: bool = Field(True, description="with 'passing': also combine the model opportunities")
    gates: Gates | None = Field(None, description="the plan's gates (default: the scenario's)")


class Bootstrap(_Closed):
    """The savings interval (``simulator.summary.intervals``): its blocks and the Monte Carlo draws."""

    unit: Literal["auto", "hour", "day", "session"] = Field(
        "auto", description="auto: days (hours or equal blocks for windows under 3 days); hour and day force a "
                            "block size (hour sees no day-to-day variation); session: sessions as units")
    draws: int = Field(2000, ge=100, le=100_000)


class TokenizerEntry(_Closed):
    name: str
    path: str
    models: list[str] = Field(default_factory=list)


PathList = Union[str, list[str]]


class Baseline(_Closed):
    truefoundry_config: PathList = Field(description="the tenant's current TrueFoundry configs, one file per type")


class PortkeyAccount(_Closed):
    """How a TrueFoundry provider account is addressed in a Portkey config (``${...}`` placeholders by default)."""

    provider: str | None = Field(None, description="Portkey provider id, e.g. anthropic, vertex-ai, bedrock")
    api_key: str | None = None
    virtual_key: str | None = Field(None, description="hosted Portkey only: written instead of provider + keys")
    vertex_project_id: str | None = None
    vertex_region: str | None = None
    aws_region: str | None = None
    resource_name: str | None = None
    deployment_id: str | None = None
    api_version: str | None = None


class Portkey(_Closed):
    accounts: dict[str, PortkeyAccount] = Field(default_factory=dict, description="provider account -> Portkey")



class Scenario(_Closed):
    schema_version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    traffic: PathList = Field(default_factory=list)
    adapter: Literal["canonical", "truefoundry", "truefoundry-spans", "otel", "litellm", "langfuse", "helicone"] | None \
        = Field(None, description="log source of the traffic files (default: detected from the columns)")
    columns: dict[str, str] = Field(default_factory=dict, description="canonical column -> column in the file")
    tag_prefixes: dict[Literal["project", "workflow_tag", "team"], str] = Field(
        default_factory=lambda: dict(DEFAULT_TAG_PREFIXES),
        description="tag prefix that carries each attribution key in LiteLLM request_tags and Langfuse tags")
    gateway_cache_hits: Literal["reject", "replay"] = Field(
        "reject", description="rows answered by a gateway cache: rejected with that reason, or replayed as misses")
    evals: PathList = Field(default_factory=list)
    pricing: str | None = Field(None, description="price-override YAML (see pricing/)")
    models: dict[str, Union[str, dict[str, str]]] = Field(default_factory=dict)
    seed: int = Field(0, ge=0)
    timezone: str | None = None
    premium_models: list[str] | None = None
    non_personal_metadata: list[str] = Field(
        default_factory=list, description="metadata keys whose values may appear in clear in outputs (e.g. env); "
        "values of every other per-key key but team, project, workflow_tag and model are hashed")
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    baseline: Baseline | None = None
    portkey: Portkey = Field(default_factory=Portkey)
    outages: list[Outage] = Field(default_factory=list)
    tokenizers: list[TokenizerEntry] = Field(default_factory=list)
    workflows: dict[str, Workflow] = Field(default_factory=dict, description="per workflow_tag: interactive or not")
    service_tiers: ServiceTierOptions = Field(default_factory=ServiceTierOptions)
    opportunities: Opportunities = Field(default_factory=Opportunities)
    plan: Plan = Field(default_factory=Plan)
    candidates: list[Candidate] = Field(default_factory=list)
    gates: Gates = Field(default_factory=Gates)
    # control-room panels (simulator.control): each runs when its key is present
    loop_detection: LoopDetection | None = None
    alerts: Alerts | None = None
    outcomes: Union[str, list[str], Outcomes, None] = None
    adoption: Adoption | None = None

    # set by load_scenario: the folder relative paths are resolved against
    base_dir: Annotated[str, Field(exclude=True)] = "."

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        names = [c.name for c in self.candidates]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"candidate names must be unique; '{sorted(dup)[0]}' appears twice")
        return self

    @model_validator(mode="after")
    def _contained(self) -> Scenario:
        for key, value in self.config_paths():
            problem = escapes_folder(self.base_dir, value, key)
            if problem:
                raise ValueError(problem)
        return self

    def config_paths(self) -> list[tuple[str, str]]:
        """(dotted key, path) of every configuration file the scenario names (see ``escapes_folder``)."""
        out = [("pricing", self.pricing)]
        out += [(f"candidates[{i}].truefoundry_config", c.truefoundry_config) for i, c in enumerate(self.candidates)]
        current = self.baseline.truefoundry_config if self.baseline else []
        current = [current] if isinstance(current, str) else current
        out += [(f"baseline.truefoundry_config[{i}]", c) for i, c in enumerate(current)]
        out += [(f"tokenizers[{i}].path", t.path) for i, t in enumerate(self.tokenizers)]
        return [(k, v) for k, v in out if v]

    def adapter_options(self) -> AdapterOptions:
        """How the traffic files are read: adapter, tag convention, gateway cache-hit policy."""
        return AdapterOptions(self.adapter, dict(self.tag_prefixes), self.gateway_cache_hits)

    def paths(self, field: str) -> list[Path]:
        value = getattr(self, field)
        items = [value] if isinstance(value, str) else list(value)
        return [resolve_path(self.base_dir, p) for p in items]

    def path(self, value: str | None) -> Path | None:
        """A configuration file path (pricing, truefoundry_config, tokenizer): must stay in the scenario's folder."""
        if not value:
            return None
        problem = escapes_folder(self.base_dir, value, "path")
        if problem:
            raise ScenarioError(problem + ".")
        return resolve_path(self.base_dir, value)


def resolve_path(base_dir: str | Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def escapes_folder(base_dir: str | Path, value: str, key: str) -> str | None:
    """Path rule: traffic and eval paths may point anywhere (the user names their data), but a *relative*
    configuration path (pricing, truefoundry_config, tokenizers[].path) must stay inside the folder tree of the
    scenario file after ``..`` and symlinks are resolved; an absolute path is taken as the user's explicit choice.
    A scenario copied from elsewhere thus cannot pull in files outside its own folder behind the user's back."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return None
    root = Path(base_dir).resolve()
    real = (root / path).resolve()
    if not real.is_relative_to(root):
        via = "a symlink" if ".." not in path.parts else "'..'"
        return (
            f"{key}: '{value}' leaves the scenario's folder through {via}. Relative pricing, truefoundry_config and "
            "tokenizer paths must stay inside the folder holding the scenario; move the file there or give an "
            "absolute path"
        )
    return None


_UNION_TAG = re.compile(r"^(str|int|float|bool|none|\w+\[.*\])$")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "tagged-union")):
            continue
        elif _UNION_TAG.match(str(part)) or part in {c.__name__ for c in _Closed.__subclasses__()}:
            continue  # a union member's type name (str, list[str], literal[...], Fallback), not a key
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the model at ``loc`` (used for 'Did you mean' on unknown keys)."""
    model: Any = Scenario
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _inner_model(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _message(err: dict[str, Any], where: str) -> str:
    loc = tuple(err["loc"])
    path = _loc(loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _fields_at(loc)
        return f"{where}: {path}: unknown key '{key}'.{did_you_mean(key, allowed)}"
    if err["type"] == "missing":
        return f"{where}: {path}: required key is missing."
    if err["type"] == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(err.get("ctx", {}).get("pattern")), "the allowed characters")
        return f"{where}: {path}: must be {words}. Got {err.get('input')!r} instead."
    msg = err["msg"]
    msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
    given = err.get("input")
    shown = "" if isinstance(given, (dict, list)) or given is None else f" Got {given!r} instead."
    return f"{where}: {path}: {msg}.{shown}" if path else f"{where}: {msg}."


def validation_problems(exc: pydantic.ValidationError, where: str) -> list[str]:
    """Every problem of a failed validation, one line each. A "missing" key next to an unknown one is left out:
    the unknown key (a typo) explains it."""
    errors = exc.errors(include_url=False)
    typo_parents = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    kept = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"][:-1]) in typo_parents)]
    return list(dict.fromkeys(_message(e, where) for e in kept))


def format_validation_error(exc: pydantic.ValidationError, where: str) -> str:
    """The first problem (an unknown key first: it usually explains a missing one next to it)."""
    errors = exc.errors(include_url=False)
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    return _message(err, where)


def parse_scenario(data: Any, where: str, base_dir: str | Path = ".") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a scenario must be a YAML mapping with at least 'name' and 'traffic'.")
    try:
        return Scenario.model_validate({**data, "base_dir": str(base_dir)})
    except pydantic.ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, where)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; relative paths inside resolve against its folder."""
    path = Path(path)
    data = read_yaml(path, ScenarioError)
    if isinstance(data, dict) and "base_dir" in data:
        raise ScenarioError(f"{path}: base_dir: unknown key 'base_dir'.")
    return parse_scenario(data, str(path), path.parent)


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema.get("properties", {}).pop("base_dir", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tfysim scenario"
    return schema
