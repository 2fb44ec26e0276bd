"""Service tiers (``batch``, ``flex``, ``priority``, ``default``): what each tier means and how it is priced.

The tier's facts (completion window, latency, who may use it, the request parameter or client change that selects
it) and the fallback prices live in ``pricing/service-tiers.yaml`` (dated, sourced; format documented at its top).
Prices come from genai-prices' price variants first (``price_context``, e.g. ``{"processing": "batch"}``), at each
request's timestamp; :func:`tier_price` applies them exactly as ``genai_prices.types.ModelInfo.get_prices`` does,
and falls back to a dated multiplier of the standard price only where no variant is active.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import PricingError, did_you_mean
from simulator.pricing.dated import parse_history

TIERS = ("default", "batch", "flex", "priority")
TIER_CODE = {name: i for i, name in enumerate(TIERS)}
DEFAULT_TIERS_PATH = Path(__file__).resolve().parents[2] / "pricing" / "service-tiers.yaml"

_TOP_KEYS = {"schema_version", "sources", "tiers", "fallbacks"}
_TIER_FIELDS = {"price_context", "completion", "window", "typical", "latency", "interactive_ok", "request_param",
                "client_change", "may_fail"}
_FALLBACK_FIELDS = {"multiplier", "models"}
_NS_PER_DAY = 86_400 * 10**9
_DURATION_RE = re.compile(r"^(\d+)(s|m|h)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}


def format_duration(ms: int) -> str:
    """3600000 -> '1h'; 86400000 -> '24h'."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclasses.dataclass(frozen=True)
class Tier:
    """One tier's facts at one date (see the file header for the fields)."""

    name: str
    price_context: dict
    completion: str
    window_ms: int | None
    typical: str | None
    latency: str
    interactive_ok: bool
    request_param: dict | None
    client_change: str | None
    may_fail: int | None
    sources: dict

    @property
    def window_text(self) -> str | None:
        return None if self.window_ms is None else format_duration(self.window_ms)


class ServiceTiers:
    """Validated ``service-tiers.yaml``. ``tier(name, at)`` -> :class:`Tier`; ``fallback(provider, tier, model, at)``."""

    def __init__(self, data: Any, origin: str = "<dict>") -> None:
        self.origin = origin
        if not isinstance(data, dict):
            raise PricingError(f"`{origin}`: must be a mapping with keys {sorted(_TOP_KEYS)}.")
        self._closed(data, _TOP_KEYS, "")
        if data.get("schema_version") != 1:
            raise PricingError(f"`{origin}: schema_version` must be 1. Got {data.get('schema_version')!r} instead.")
        self._sources = {str(k): str(v) for k, v in (data.get("sources") or {}).items()}
        self._tiers: dict[str, dict] = {}
        for name, fields in (data.get("tiers") or {}).items():
            if name not in TIERS:
                raise PricingError(f"`{origin}: tiers.{name}` is not a tier; expected one of {list(TIERS)}."
                                   + did_you_mean(str(name), TIERS))
            self._tiers[name] = self._fields(fields, _TIER_FIELDS, f"tiers.{name}")
        missing = [t for t in TIERS if t not in self._tiers]
        if missing:
            raise PricingError(f"`{origin}: tiers` lacks {', '.join(missing)}. Describe every tier.")
        self._fallbacks: dict[tuple[str, str], dict] = {}
        for provider, tiers in (data.get("fallbacks") or {}).items():
            for tier, fields in (tiers or {}).items():
                if tier not in TIERS:
                    raise PricingError(f"`{origin}: fallbacks.{provider}.{tier}` is not a tier; expected one of "
                                       f"{list(TIERS)}." + did_you_mean(str(tier), TIERS))
                parsed = self._fields(fields, _FALLBACK_FIELDS, f"fallbacks.{provider}.{tier}")
                if "multiplier" not in parsed:
                    raise PricingError(f"`{origin}: fallbacks.{provider}.{tier}` needs a multiplier.")
                self._fallbacks[(str(provider), str(tier))] = parsed

    @classmethod
    def load(cls, path: str | Path | None = None) -> ServiceTiers:
        from simulator.io.yamlio import read_yaml

        path = Path(path) if path is not None else DEFAULT_TIERS_PATH
        return cls(read_yaml(path, PricingError), origin=str(path))

    # -- validation -------------------------------------------------------------------------------------------
    def _closed(self, mapping: dict, allowed: set, where: str) -> None:
        for key in mapping:
            if key not in allowed:
                path = f"{where}.{key}" if where else str(key)
                raise PricingError(f"`{self.origin}: {path}` is not a known key; expected one of {sorted(allowed)}."
                                   + did_you_mean(str(key), allowed))

    def _fields(self, fields: Any, allowed: set, where: str) -> dict:
        if not isinstance(fields, dict):
            raise PricingError(f"`{self.origin}: {where}` must be a mapping of field -> {{value, since, source}}.")
        self._closed(fields, allowed, where)
        return {name: parse_history(spec, origin=self.origin, where=f"{where}.{name}", sources=self._sources,
                                    value=lambda raw, at, name=name: self._value(name, raw, at), error=PricingError)
                for name, spec in fields.items()}

    def _value(self, name: str, value: Any, at: str) -> Any:
        def bad(expected: str) -> PricingError:
            return PricingError(f"`{self.origin}: {at}.value` must be {expected}. Got {value!r} instead.")

        if name == "multiplier":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
                raise bad("a number in (0, 10]")
            return Decimal(str(value))
        if name in ("price_context", "request_param"):
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise bad("a mapping of strings, e.g. {processing: batch}")
            return {str(k): v for k, v in value.items()}
        if name == "window":
            match = _DURATION_RE.match(str(value).strip())
            if not match or int(match.group(1)) <= 0:
                raise bad("a duration like '24h'")
            return int(match.group(1)) * _UNIT_MS[match.group(2)]
        if name == "interactive_ok":
            if not isinstance(value, bool):
                raise bad("true or false")
            return value
        if name == "completion" and value not in ("synchronous", "window"):
            raise bad("synchronous or window")
        if name == "latency" and value not in ("recorded", "unpublished"):
            raise bad("recorded or unpublished")
        if name == "may_fail":
            if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
                raise bad("an HTTP status like 429")
            return value
        if name == "models":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad("a list of model-name prefixes")
            return tuple(value)
        return str(value).strip()

    # -- resolution -------------------------------------------------------------------------------------------
    @staticmethod
    def _at(history: list, day: dt.date | None):
        chosen = history[0]
        for entry in history:
            if day is None or entry[0] <= day:
                chosen = entry
        return chosen

    def tier(self, name: str, at: dt.date | None = None) -> Tier:
        """The facts of tier ``name`` valid on day ``at`` (None: the latest)."""
        if name not in self._tiers:
            raise PricingError(f"unknown service tier {name!r}; expected one of {list(TIERS)}." +
                               did_you_mean(str(name), TIERS))
        fields = self._tiers[name]
        values = {k: self._at(h, at)[1] for k, h in fields.items()}
        return Tier(name=name, price_context=values.get("price_context", {}), completion=values["completion"],
                    window_ms=values.get("window"), typical=values.get("typical"), latency=values["latency"],
                    interactive_ok=values["interactive_ok"], request_param=values.get("request_param"),
                    client_change=values.get("client_change"), may_fail=values.get("may_fail"),
                    sources={k: self._at(h, at)[2] for k, h in fields.items()})

    def fallback(self, provider: str | None, tier: str, model_name: str) -> list | None:
        """Dated multiplier history ``[(since, Decimal, url)]`` for (provider, tier), or None when there is none or
        the model is not in its ``models`` list."""
        entry = self._fallbacks.get((str(provider), tier))
        if entry is None:
            return None
        models = self._at(entry["models"], None)[1] if "models" in entry else None
        name = model_name.lower().replace(".", "-")
        if models is not None and not any(name == m or name.startswith(m + "-") for m in models):
            return None
        return entry["multiplier"]


@lru_cache(maxsize=4)
def default_tiers(path: str | None = None) -> ServiceTiers:
    """The project's ``pricing/service-tiers.yaml`` (read once per process)."""
    return ServiceTiers.load(path)


def matching_variants(variants, tier: Tier) -> list:
    """genai-prices price variants selected by the tier's request context (``when`` contained in the context)."""
    context = tier.price_context
    if not context:
        return []
    return [v for v in variants or () if all(context.get(k) == value for k, value in v.when.items())]


def active_mask(constraint, ts_ns: np.ndarray) -> np.ndarray:
    """Rows at which a genai-prices constraint holds (None holds always)."""
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if constraint is None:
        return np.ones(len(ts_ns), dtype=bool)
    day = ts_ns // _NS_PER_DAY
    if isinstance(constraint, StartDateConstraint):
        return day >= (constraint.start_date - dt.date(1970, 1, 1)).days
    if isinstance(constraint, TimeOfDateConstraint):
        tod = ts_ns - day * _NS_PER_DAY

        def ns(t: dt.time) -> int:
            if t.tzinfo is not None:
                t = dt.datetime.combine(dt.date(1970, 1, 1), t).astimezone(dt.UTC).time()
            return ((t.hour * 60 + t.minute) * 60 + t.second) * 10**9 + t.microsecond * 1000

        start, end = ns(constraint.start_time), ns(constraint.end_time)
        return (tod >= start) | (tod < end) if end < start else (tod >= start) & (tod < end)
    raise PricingError(f"Unsupported genai-prices price constraint {type(constraint).__name__}.")  # pragma: no cover


def overlay(standard, variants: list, active: tuple[bool, ...]):
    """``standard`` with the prices of the active variants laid over it, first variant first per price key (as
    ``ModelInfo.get_prices`` resolves them)."""
    overrides: dict[str, Any] = {}
    for variant, on in zip(variants, active):
        if not on:
            continue
        for key, price in variant.prices.__dict__.items():
            if price is not None:
                overrides.setdefault(key, price)
    resolved = copy.copy(standard)
    resolved.__dict__.update(overrides)
    return resolved


def scaled(standard, multiplier: Decimal):
    """Every price of a genai-prices ModelPrice times ``multiplier`` (tiers included)."""
    from genai_prices.types import Tier as PriceTier, TieredPrices

    out = copy.copy(standard)
    for key, value in list(standard.__dict__.items()):
        if isinstance(value, Decimal):
            out.__dict__[key] = value * multiplier
        elif isinstance(value, TieredPrices):
            out.__dict__[key] = TieredPrices(base=value.base * multiplier,
                                             tiers=[PriceTier(start=t.start, price=t.price * multiplier)
                                                    for t in value.tiers])
    return out


__all__ = ["TIERS", "TIER_CODE", "ServiceTiers", "Tier", "active_mask", "default_tiers", "matching_variants",
           "overlay", "scaled"]
