"""Prompt-caching rules: load ``pricing/cache-rules.yaml`` and resolve a gateway model id to a :class:`CacheRule`.

The file format (dated values, source per value, prefix match on model names) is documented at its top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from simulator.errors import ScenarioError, did_you_mean
from simulator.pricing.dated import parse_history
from simulator.pricing.model_ids import guess_provider, split_model_id

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[3] / "pricing" / "cache-rules.yaml"

MODES = ("automatic", "explicit")
MODE_CODES = {"automatic": 0, "explicit": 1}
_FIELDS = (
    "mode",
    "min_tokens",
    "increment_tokens",
    "write_multiplier",
    "read_multiplier",
    "refresh_on_hit",
    "breakpoints",
    "ttls",
    "default_ttl",
    "lookback_blocks",
    "storage_mtok_hour",
)
_OPTIONAL = {"lookback_blocks": 0, "storage_mtok_hour": 0.0}  # absent: no lookback, no storage fee
_TOP_KEYS = {"schema_version", "sources", "providers"}
_PROVIDER_KEYS = {"defaults", "models", "note"}
_TTL_RE = re.compile(r"^(\d+)(s|m|h)$")
_TTL_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}
# Bedrock ids: optional region ("us.", "eu.", "global.") and vendor ("anthropic.") before the model name.
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?(?:anthropic|amazon|meta|mistral|cohere)\.")


def parse_ttl_ms(text: str, where: str = "ttl") -> int:
    """``"5m"`` -> 300000; ``"1h"`` -> 3600000; ``"90s"`` -> 90000."""
    match = _TTL_RE.match(str(text).strip())
    if not match or int(match.group(1)) <= 0:
        raise ScenarioError(f"{where} must be a duration like '5m', '1h' or '90s'. Got {text!r} instead.")
    return int(match.group(1)) * _TTL_UNIT_MS[match.group(2)]


def normalise_model_name(name: str) -> str:
    """Lower-case, ``.`` -> ``-``, Bedrock region/vendor prefix removed: the form rule keys are matched against."""
    name = _BEDROCK_PREFIX.sub("", str(name).strip().lower())
    return name.replace(".", "-")


@dataclass(frozen=True)
class CacheRule:
    """Caching behaviour of one model at one point in time. TTLs in milliseconds, multipliers x base input price."""

    provider: str
    model_key: str  # the matched key under ``models:``, or "" for provider defaults
    mode: str
    min_tokens: int
    increment_tokens: int
    write_multiplier: dict  # {ttl_ms: multiplier}
    read_multiplier: float
    refresh_on_hit: bool
    breakpoints: int
    ttls_ms: tuple
    default_ttl_ms: int
    sources: dict  # {field: url}
    lookback_blocks: int = 0  # explicit mode: blocks before a breakpoint checked for an earlier entry
    storage_mtok_hour: float | None = 0.0  # explicit caches billed per M tokens per hour; None = price unknown

    def write_multiplier_for(self, ttl_ms: int) -> float | None:
        """Write multiplier for a TTL, or None when the rule has none (writes then cost the plain input price)."""
        return self.write_multiplier.get(int(ttl_ms))


class CacheRules:
    """Validated cache rules. ``CacheRules.load()`` reads the project file; ``resolve(model_id, at)`` finds a rule."""

    def __init__(self, data: dict, origin: str = "<dict>"):
        self.origin = origin
        self._providers = self._validate(data, origin)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CacheRules":
        path = Path(path) if path is not None else DEFAULT_RULES_PATH
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"`{path}`: cannot read cache rules ({exc.strerror}). Check the path.") from None
        try:
            # libyaml's parser where PyYAML has it: the same objects as safe_load, 8x faster on this 14 kB file
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            at = f" line {line + 1}" if line is not None else ""
            raise ScenarioError(f"`{path}`{at}: not valid YAML. Fix the syntax.") from None
        return cls(data, origin=str(path))

    # -- validation -------------------------------------------------------------------------------------------
    def _validate(self, data, origin: str) -> dict:
        if not isinstance(data, dict):
            raise ScenarioError(f"`{origin}`: must be a mapping with keys {sorted(_TOP_KEYS)}. Got {type(data).__name__}.")
        self._closed(data, _TOP_KEYS, origin, "")
        if data.get("schema_version") != 1:
            raise ScenarioError(f"`{origin}: schema_version` must be 1. Got {data.get('schema_version')!r} instead.")
        sources = data.get("sources") or {}
        if not isinstance(sources, dict) or not all(str(u).startswith("http") for u in sources.values()):
            raise ScenarioError(f"`{origin}: sources` must map names to http(s) URLs.")
        self._sources = {str(k): str(v) for k, v in sources.items()}
        providers = {}
        for provider, body in (data.get("providers") or {}).items():
            where = f"providers.{provider}"
            if not isinstance(body, dict):
                raise ScenarioError(f"`{origin}: {where}` must be a mapping with keys {sorted(_PROVIDER_KEYS)}.")
            self._closed(body, _PROVIDER_KEYS, origin, where)
            defaults = self._fields(body.get("defaults") or {}, origin, f"{where}.defaults")
            models = {}
            for key, fields in (body.get("models") or {}).items():
                norm = normalise_model_name(key)
                if norm in models:
                    raise ScenarioError(f"`{origin}: {where}.models.{key}` is listed twice. Keep one entry.")
                models[norm] = self._fields(fields or {}, origin, f"{where}.models.{key}")
            providers[str(provider)] = (defaults, models)
        if not providers:
            raise ScenarioError(f"`{origin}: providers` is empty. Add at least one provider.")
        return providers

    @staticmethod
    def _closed(mapping: dict, allowed: set, origin: str, where: str) -> None:
        for key in mapping:
            if key not in allowed:
                path = f"{where}.{key}" if where else str(key)
                raise ScenarioError(
                    f"`{origin}: {path}` is not a known key; expected one of {sorted(allowed)}."
                    + did_you_mean(str(key), allowed)
                )

    def _fields(self, fields: dict, origin: str, where: str) -> dict:
        if not isinstance(fields, dict):
            raise ScenarioError(f"`{origin}: {where}` must be a mapping of field -> {{value, since, source}}.")
        out = {}
        for name, spec in fields.items():
            if name == "note":
                continue
            if name not in _FIELDS:
                raise ScenarioError(
                    f"`{origin}: {where}.{name}` is not a known field; expected one of {sorted(_FIELDS)}."
                    + did_you_mean(str(name), _FIELDS)
                )
            out[name] = parse_history(spec, origin=origin, where=f"{where}.{name}", sources=self._sources,
                                      value=lambda raw, at, name=name: self._value(name, raw, origin, at),
                                      error=ScenarioError)
        return out

    @staticmethod
    def _value(name: str, value, origin: str, at: str):
        def bad(expected):
            return ScenarioError(f"`{origin}: {at}.value` must be {expected}. Got {value!r} instead.")

        if name == "mode":
            if value not in MODES:
                raise bad(f"one of {list(MODES)}")
            return value
        if name == "storage_mtok_hour":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise bad("a number >= 0 (USD per million tokens per hour), or null when unknown")
            return float(value)
        if name in ("min_tokens", "breakpoints", "lookback_blocks"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad("an integer >= 0")
            return int(value)
        if name == "increment_tokens":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad("an integer >= 1")
            return int(value)
        if name == "read_multiplier":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise bad("a number in [0, 1]")
            return float(value)
        if name == "refresh_on_hit":
            if not isinstance(value, bool):
                raise bad("true or false")
            return value
        if name == "write_multiplier":
            if not isinstance(value, dict):
                raise bad("a mapping {ttl: multiplier}, e.g. {5m: 1.25, 1h: 2.0}")
            out = {}
            for ttl, mult in value.items():
                if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult < 1:
                    raise bad("a mapping of TTL -> number >= 1")
                out[parse_ttl_ms(ttl, f"`{origin}: {at}.value` key")] = float(mult)
            return out
        if name == "ttls":
            if not isinstance(value, list) or not value:
                raise bad("a non-empty list of durations, e.g. [5m, 1h]")
            return tuple(parse_ttl_ms(t, f"`{origin}: {at}.value` item") for t in value)
        if name == "default_ttl":
            return parse_ttl_ms(value, f"`{origin}: {at}.value`")
        raise AssertionError(name)  # unreachable: names are checked against _FIELDS first

    # -- resolution -------------------------------------------------------------------------------------------
    @property
    def providers(self) -> tuple:
        return tuple(sorted(self._providers))

    def _match(self, provider: str, name: str) -> tuple[str, dict, dict]:
        defaults, models = self._providers[provider]
        best = ""
        for key in models:
            if (name == key or (name.startswith(key) and name[len(key)] in "-@:")) and len(key) > len(best):
                best = key
        return best, defaults, (models[best] if best else {})

    def change_dates(self, model_id: str, provider: str | None = None) -> tuple:
        """Dates at which any value of this model's rule changes (beyond the first entry)."""
        provider, name = self._provider_and_name(model_id, provider)
        _, defaults, specific = self._match(provider, name)
        dates = set()
        for fields in (defaults, specific):
            for history in fields.values():
                dates.update(h[0] for h in history[1:])
        return tuple(sorted(dates))

    def _provider_and_name(self, model_id: str, provider: str | None) -> tuple[str, str]:
        provider = provider or guess_provider(model_id)
        if provider not in self._providers:
            raise ScenarioError(
                f"`{self.origin}`: no prompt-caching rules for provider {provider!r} (model {model_id!r}); "
                f"known providers: {', '.join(self.providers)}. Add the provider or disable caching for this model."
                + (did_you_mean(provider, self._providers) if provider else "")
            )
        return provider, normalise_model_name(split_model_id(model_id)[1])

    def resolve(self, model_id: str, at=None, provider: str | None = None) -> CacheRule:
        """The rule for gateway model ``model_id`` at time ``at`` (anything ``pd.Timestamp`` accepts; None = latest).

        ``provider`` overrides the guess from :func:`simulator.pricing.model_ids.guess_provider` (a scenario's ``models:`` map).
        Raises ScenarioError when the provider or a required value (e.g. an Anthropic model's minimum) is unknown.
        """
        provider, name = self._provider_and_name(model_id, provider)
        key, defaults, specific = self._match(provider, name)
        day = None if at is None else pd.Timestamp(at).date()
        values, sources = {}, {}
        for field in _FIELDS:
            history = specific.get(field) or defaults.get(field)
            if history is None and field in _OPTIONAL:
                values[field], sources[field] = _OPTIONAL[field], None
                continue
            if history is None:
                known = ", ".join(sorted(self._providers[provider][1]))
                raise ScenarioError(
                    f"`{self.origin}`: model {model_id!r} has no `{field}` under providers.{provider} "
                    f"(known models: {known}). Add a `models:` entry for it." + did_you_mean(name, self._providers[provider][1])
                )
            chosen = history[0]
            if day is not None:
                for entry in history:
                    if entry[0] <= day:
                        chosen = entry
            else:
                chosen = history[-1]
            values[field], sources[field] = chosen[1], chosen[2]
        if values["default_ttl"] not in values["ttls"]:
            raise ScenarioError(f"`{self.origin}`: providers.{provider} default_ttl for {model_id!r} is not in its ttls.")
        return CacheRule(
            provider=provider,
            model_key=key,
            mode=values["mode"],
            min_tokens=values["min_tokens"],
            increment_tokens=values["increment_tokens"],
            write_multiplier=dict(values["write_multiplier"]),
            read_multiplier=values["read_multiplier"],
            refresh_on_hit=values["refresh_on_hit"],
            breakpoints=values["breakpoints"],
            ttls_ms=values["ttls"],
            default_ttl_ms=values["default_ttl"],
            sources={k: v for k, v in sources.items() if v is not None},
            lookback_blocks=values["lookback_blocks"],
            storage_mtok_hour=values["storage_mtok_hour"],
        )

    def params(self, model_ids, timestamps=None, mode=None, ttl=None, providers: dict | None = None,
               breakpoints=None) -> dict:
        """Per-request kernel parameters for arrays of gateway model ids (and timestamps for dated rules).

        ``mode`` / ``ttl`` (e.g. ``"explicit"``, ``"1h"``) override the rule defaults for every row; a TTL the
        provider does not allow is an error. ``providers`` maps gateway ids to provider ids (scenario ``models:``).
        Returns arrays ``mode`` int8 (0 automatic, 1 explicit), ``ttl_ms``, ``min_tokens``, ``increment_tokens`` int64,
        ``refresh_on_hit`` bool, and ``rules``: the resolved CacheRule per (model, period), keyed by model id.
        Explicit mode also gets ``bp_pos`` / ``bp_ttl_ms`` (n x 4; ``breakpoints`` is a list of (block position,
        TTL text or None for the rule's TTL), default one at the end of the prefix), ``lookback_blocks``, ``storage``
        (explicit caches billed per token-hour) and ``storage_mtok_hour``.
        """
        from simulator.state.caching.kernel import MAX_BREAKPOINTS, NO_BREAKPOINT

        model_ids = np.asarray(model_ids, dtype=object)
        n = len(model_ids)
        out = {
            "mode": np.zeros(n, np.int8),
            "ttl_ms": np.zeros(n, np.int64),
            "min_tokens": np.zeros(n, np.int64),
            "increment_tokens": np.ones(n, np.int64),
            "refresh_on_hit": np.zeros(n, bool),
            "bp_pos": np.full((n, MAX_BREAKPOINTS), NO_BREAKPOINT, np.int64),
            "bp_ttl_ms": np.zeros((n, MAX_BREAKPOINTS), np.int64),
            "lookback_blocks": np.zeros(n, np.int64),
            "storage": np.zeros(n, bool),
            "storage_mtok_hour": np.zeros(n, np.float64),
        }
        if breakpoints and len(breakpoints) > MAX_BREAKPOINTS:
            raise ScenarioError(f"prompt_caching breakpoints: at most {MAX_BREAKPOINTS} per request. Got "
                                f"{len(breakpoints)} instead.")
        if mode is not None and mode not in MODES:
            raise ScenarioError(f"prompt_caching mode must be one of {list(MODES)}. Got {mode!r} instead." + did_you_mean(mode, MODES))
        ttl_override = parse_ttl_ms(ttl, "prompt_caching ttl") if ttl is not None else None
        ts = None if timestamps is None else pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("ns")
        rules_used: dict = {}
        codes, uniques = pd.factorize(pd.Series(model_ids), sort=True)
        for code, model_id in enumerate(uniques):
            rows = np.flatnonzero(codes == code)
            provider = (providers or {}).get(model_id)
            dates = self.change_dates(model_id, provider)
            if ts is None or not dates:
                periods = [(rows, None if ts is None else ts[rows].max())]
            else:
                # rows after a change date get the rule valid at that date
                edges = pd.DatetimeIndex([pd.Timestamp(d.isoformat(), tz="UTC") for d in dates]).as_unit("ns")
                period = np.searchsorted(edges.asi8, ts[rows].asi8, side="right")
                periods = [(rows[period == p], ts[rows][period == p].max()) for p in np.unique(period)]
            for sub, at in periods:
                rule = self.resolve(model_id, at=at, provider=provider)
                rules_used.setdefault(model_id, []).append(rule)
                ttl_ms = ttl_override if ttl_override is not None else rule.default_ttl_ms
                if ttl_ms not in rule.ttls_ms:
                    allowed = ", ".join(_fmt_ttl(t) for t in rule.ttls_ms)
                    raise ScenarioError(
                        f"prompt_caching ttl {ttl!r} is not allowed for {model_id!r} ({rule.provider}); allowed: {allowed}."
                    )
                chosen = mode or rule.mode
                out["mode"][sub] = MODE_CODES[chosen]
                if chosen == "explicit":
                    self._explicit_params(out, sub, rule, model_id, ttl_ms, breakpoints)
                elif breakpoints:
                    raise ScenarioError(f"prompt_caching breakpoints need mode explicit; {model_id!r} caches "
                                        f"automatically ({rule.provider}). Set mode: explicit or drop breakpoints.")
                out["ttl_ms"][sub] = ttl_ms
                out["min_tokens"][sub] = rule.min_tokens
                out["increment_tokens"][sub] = rule.increment_tokens
                out["refresh_on_hit"][sub] = rule.refresh_on_hit
        out["rules"] = rules_used
        return out

    def _explicit_params(self, out: dict, sub, rule: CacheRule, model_id: str, ttl_ms: int, breakpoints) -> None:
        """Breakpoint positions and TTLs, lookback and storage fee of explicit caching for rows ``sub``."""
        specs = list(breakpoints) if breakpoints else [(-1, None)]
        allowed = max(rule.breakpoints, 1)
        if len(specs) > allowed:
            raise ScenarioError(f"prompt_caching breakpoints: {model_id!r} ({rule.provider}) takes at most {allowed} "
                                f"explicit breakpoint(s). Got {len(specs)} instead.")
        ttls = []
        for at, ttl in specs:
            bp_ttl = parse_ttl_ms(ttl, "prompt_caching breakpoints ttl") if ttl is not None else ttl_ms
            if bp_ttl not in rule.ttls_ms:
                raise ScenarioError(f"prompt_caching breakpoint ttl {ttl!r} is not allowed for {model_id!r} "
                                    f"({rule.provider}); allowed: {', '.join(_fmt_ttl(t) for t in rule.ttls_ms)}.")
            ttls.append(bp_ttl)
        if rule.storage_mtok_hour is None:
            raise ScenarioError(f"explicit caching on {model_id!r} ({rule.provider}) bills storage per token-hour, but "
                                "pricing/cache-rules.yaml has no storage_mtok_hour for it. Add a dated, sourced value or "
                                "use mode: automatic (implicit caching).")
        for k, (at, _) in enumerate(specs):
            out["bp_pos"][sub, k] = int(at)
            out["bp_ttl_ms"][sub, k] = ttls[k]
        out["lookback_blocks"][sub] = rule.lookback_blocks
        out["storage"][sub] = rule.storage_mtok_hour > 0
        out["storage_mtok_hour"][sub] = rule.storage_mtok_hour

def _fmt_ttl(ttl_ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ttl_ms % size == 0:
            return f"{ttl_ms // size}{unit}"
    return f"{ttl_ms}ms"
