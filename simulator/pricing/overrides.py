"""Price-override catalogs (YAML, USD per million tokens) and the scenario's ``models:`` map.

    schema_version: 1
    prices_checked: 2026-11-20          # optional: when these numbers were last checked
    source: "2026 enterprise agreement" # optional
    providers:
      anthropic: {discount_pct: 12}     # negotiated discount on every price of that provider
    models:
      mistralai/mixtral-8x7b-chat: {input_mtok: 0.6, output_mtok: 0.6}
      openai-main/gpt-4o:               # a list = dated prices; each applies from its start_date (UTC)
        - {input_mtok: 2.5, output_mtok: 10, cache_read_mtok: 1.25}
        - {start_date: 2026-12-01, input_mtok: 2.0, output_mtok: 8}

Model keys match a gateway id exactly or its model part (after ``provider_account/``). An override replaces the
catalog price for that model entirely; token classes without a price are billed at ``input_mtok``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any

from simulator.errors import PricingError, did_you_mean
from simulator.io.yamlio import read_yaml

_TOP_KEYS = ("schema_version", "prices_checked", "source", "providers", "models")
_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")
_ENTRY_KEYS = ("start_date", *_PRICE_KEYS)


@dataclasses.dataclass(frozen=True)
class Overrides:
    models: dict[str, list[dict[str, Any]]]
    discounts: dict[str, float]
    path: str


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise PricingError(
                f"{where}: unknown key '{key}'.{did_you_mean(key, allowed)} Allowed: {', '.join(allowed)}."
            )


def _number(value: Any, where: str, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PricingError(f"{where} must be a finite number. Got {value!r} instead.")
    if not low <= value <= high:
        allowed = f">= {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise PricingError(f"{where} must be a number {allowed}. Got {value!r} instead.")
    return float(value)


def load_overrides(path: str | Path) -> Overrides:
    """Read and validate an overrides file; every problem is a one-line PricingError naming the dotted path."""
    where = str(path)
    data = read_yaml(path, PricingError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PricingError(f"{where}: expected a mapping with 'models:' and optional 'providers:'.")
    _check_keys(data, _TOP_KEYS, where)
    if data.get("schema_version", 1) != 1:
        raise PricingError(f"{where}: schema_version must be 1. Got {data['schema_version']!r} instead.")
    discounts: dict[str, float] = {}
    providers = data.get("providers") or {}
    if not isinstance(providers, dict):
        raise PricingError(f"{where}: providers must be a mapping of provider id to {{discount_pct: N}}.")
    for provider, spec in providers.items():
        at = f"{where}: providers.{provider}"
        if not isinstance(spec, dict):
            raise PricingError(f"{at} must be a mapping like {{discount_pct: 10}}.")
        _check_keys(spec, ("discount_pct",), at)
        discounts[str(provider)] = _number(spec.get("discount_pct", 0), f"{at}.discount_pct", 0, 100)
    models: dict[str, list[dict[str, Any]]] = {}
    raw_models = data.get("models") or {}
    if not isinstance(raw_models, dict):
        raise PricingError(f"{where}: models must be a mapping of model id to prices.")
    for model, spec in raw_models.items():
        entries = spec if isinstance(spec, list) else [spec]
        parsed = []
        for i, entry in enumerate(entries):
            at = f"{where}: models.{model}" + (f"[{i}]" if isinstance(spec, list) else "")
            if not isinstance(entry, dict):
                raise PricingError(f"{at} must be a mapping like {{input_mtok: 1.0, output_mtok: 2.0}}.")
            _check_keys(entry, _ENTRY_KEYS, at)
            if "input_mtok" not in entry or "output_mtok" not in entry:
                raise PricingError(f"{at} needs both input_mtok and output_mtok (USD per million tokens).")
            out: dict[str, Any] = {k: _number(entry[k], f"{at}.{k}") for k in _PRICE_KEYS if k in entry}
            start = entry.get("start_date")
            if start is not None:
                if isinstance(start, str):
                    try:
                        start = dt.date.fromisoformat(start)
                    except ValueError:
                        start = None
                if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
                    raise PricingError(f"{at}.start_date must be a date like 2026-12-01. Got {entry['start_date']!r}.")
                out["start_date"] = start
            parsed.append(out)
        dates = [e.get("start_date") for e in parsed]
        if len(set(dates)) != len(dates):
            raise PricingError(f"{where}: models.{model} has two entries with the same start_date.")
        models[str(model)] = parsed
    return Overrides(models=models, discounts=discounts, path=where)


def parse_models_map(models: dict[str, Any], where: str = "models") -> dict[str, tuple[str | None, str]]:
    """Scenario ``models:`` -> {gateway id: (provider_id, catalog model ref)}.

    Values are ``"provider:model"`` / ``"model"`` strings or ``{provider: ..., model: ...}`` mappings.
    """
    out: dict[str, tuple[str | None, str]] = {}
    for gateway_id, value in models.items():
        if isinstance(value, str):
            provider, sep, ref = value.partition(":")
            out[str(gateway_id)] = (provider, ref) if sep else (None, provider)
        elif isinstance(value, dict) and set(value) <= {"provider", "model"} and "model" in value:
            out[str(gateway_id)] = (value.get("provider"), str(value["model"]))
        else:
            raise PricingError(
                f"{where}.{gateway_id} must be 'provider:model' or {{provider: ..., model: ...}}. Got {value!r}."
            )
    return out
