"""Prices from genai-prices (the catalog) plus optional dated overrides, applied to whole columns at once.

genai-prices is consulted once per (model, price period, tier); each consultation is turned into five per-token
coefficients, and every request is then priced by numpy gathers and one multiply-add per token class:

    cost_usd = per_request + input*(input_tokens - cache_read - cache_write) + cache_read*cache_read_tokens
               + cache_write*(cache_write - cache_write_1h) + cache_write_1h*cache_write_1h_tokens + output*output_tokens

The coefficients come from genai-prices' own ``ModelPrice.calc_price`` on unit usages, so which token classes fall
back to the plain input price (a model without a cache-read price, say) follows the library exactly.
Token convention: ``input_tokens`` includes cache reads and writes; ``cache_write_1h_tokens`` is part of
``cache_write_tokens``. Tiers are chosen per request by its total input tokens (genai-prices' "cliff" model:
crossing a tier reprices all tokens). Each request is priced at its own timestamp (UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import PricingError
from simulator.pricing.model_ids import guess_provider, split_model_id

TOKEN_CLASSES = ("input", "cache_read", "cache_write", "cache_write_1h", "output")
PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")
_NS_PER_DAY = 86_400 * 10**9
_M = 1_000_000


@dataclasses.dataclass(frozen=True)
class PriceSource:
    """Where one gateway model id's prices come from."""

    model_id: str
    origin: str  # "genai-prices" or "override"
    provider_id: str | None
    catalog_model_id: str | None
    periods: tuple[Any, ...]  # genai-prices ConditionalPrice list / ModelPrice, or override entries
    variants: tuple[Any, ...] = ()  # genai-prices PriceVariant list (service tiers, batch)

    @property
    def label(self) -> str:
        if self.origin == "override":
            return f"override:{self.model_id}"
        return f"{self.provider_id}:{self.catalog_model_id}"


def _modelprice(**kwargs: Any):
    from genai_prices.types import ModelPrice

    return ModelPrice(**kwargs)


def _coefficients(model_price: Any) -> np.ndarray:
    """Per-token USD coefficients (per_request, *TOKEN_CLASSES) of a flat (tier-free) genai-prices ModelPrice."""
    from genai_prices.types import Usage

    def total(**usage: int) -> float:
        return float(model_price.calc_price(Usage(**usage))["total_price"])

    per_request = total()
    plain = total(input_tokens=_M) - per_request
    read = total(input_tokens=_M, cache_read_tokens=_M) - per_request
    write = total(input_tokens=_M, cache_write_tokens=_M) - per_request
    write_1h = total(input_tokens=_M, cache_write_tokens=_M, cache_write_1h_tokens=_M) - per_request
    output = total(output_tokens=_M) - per_request
    return np.array([per_request, plain / _M, read / _M, write / _M, write_1h / _M, output / _M], dtype=np.float64)


def _tier_levels(model_price: Any) -> tuple[np.ndarray, list[Any]]:
    """Tier thresholds (ascending) and one flat ModelPrice per level (level 0 = base)."""
    from genai_prices.types import TieredPrices

    items = {k: v for k, v in model_price.__dict__.items() if not k.startswith("_") and v is not None}
    starts = sorted({t.start for v in items.values() if isinstance(v, TieredPrices) for t in v.tiers})
    levels = []
    for total_input in [0] + [s + 1 for s in starts]:
        flat = {}
        for key, value in items.items():
            if isinstance(value, TieredPrices):
                price = value.base
                for tier in reversed(value.tiers):
                    if total_input > tier.start:
                        price = tier.price
                        break
                flat[key] = price
            else:
                flat[key] = value
        levels.append(_modelprice(**flat))
    return np.asarray(starts, dtype=np.int64), levels


def _active_period_index(periods: tuple[Any, ...], ts_ns: np.ndarray) -> np.ndarray:
    """Index of the genai-prices ConditionalPrice in force per timestamp (last active wins, else the first)."""
    from simulator.pricing.tiers import active_mask

    out = np.zeros(len(ts_ns), dtype=np.int64)
    decided = np.zeros(len(ts_ns), dtype=bool)
    for index in range(len(periods) - 1, -1, -1):
        active = active_mask(periods[index].constraint, ts_ns)
        take = active & ~decided
        out[take] = index
        decided |= active
    return out


SCENARIO_FIX = ("Map it to a catalog id in the scenario (models: {gateway id: provider:model}) or price it in a "
                "price-override file (pricing:; see pricing/README.md)")
OPTION_FIX = "Price it in a price-override file given with --pricing FILE (see pricing/README.md)"
_WORD = re.compile(r"[a-z]+")


def unknown_model_detail(model_id: str, provider_id: str | None, ref: str, snapshot: Any) -> str:
    """"model 'x' is not in the catalog (...)" with its real neighbours: catalog models that share a word of its name
    (``claude``, ``opus``, ``mini``; not a bare version number), closest first; none when nothing resembles it."""
    providers = [p for p in snapshot.providers if provider_id is None or p.id == provider_id] or snapshot.providers
    ids = sorted({f"{p.id}:{m.id}" for p in providers for m in p.models})
    words = {w for w in _WORD.findall(ref.lower()) if len(w) >= 3}
    related = [i for i in ids if words & set(_WORD.findall(i.split(":", 1)[1].lower()))]
    by_name: dict[str, list[str]] = {}
    for i in related:
        by_name.setdefault(i.split(":", 1)[1], []).append(i)
    close = difflib.get_close_matches(ref, sorted(by_name), n=3, cutoff=0.5)
    shown = [by_name[name][0] for name in close]
    hint = f"; closest catalog ids: {', '.join(shown)}" if shown else "; no catalog model has a similar name"
    where = f"provider '{provider_id}'" if provider_id else "any provider"
    return f"model '{model_id}' is not in the genai-prices catalog ({where}, model '{ref}'){hint}"


@dataclasses.dataclass
class Catalog:
    """Resolves gateway model ids to prices and prices token columns.

    ``overrides``: {model id: [entries]} with ``input_mtok``... in USD per million tokens and optional ``start_date``;
    ``models``: {gateway model id: (provider_id, catalog model ref)}; ``discounts``: {provider_id: percent}.
    """

    overrides: Mapping[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    models: Mapping[str, tuple[str | None, str]] = dataclasses.field(default_factory=dict)
    discounts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: how the user fixes an unknown model where this catalog came from (a scenario, or --pricing on a command)
    fix: str = SCENARIO_FIX
    _sources: dict[str, PriceSource] = dataclasses.field(default_factory=dict, init=False, repr=False)
    _tables: dict[tuple, tuple[np.ndarray, np.ndarray]] = dataclasses.field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def load(cls, overrides: str | Path | None = None, models: Mapping[str, Any] | None = None,
             fix: str = SCENARIO_FIX) -> Catalog:
        """Catalog from an optional overrides YAML file and an optional scenario ``models:`` map; ``fix`` ends the
        unknown-model message (the scenario's ``models:``/``pricing:``, or ``OPTION_FIX`` for ``--pricing``)."""
        from simulator.pricing.overrides import load_overrides, parse_models_map

        parsed = load_overrides(overrides) if overrides else None
        return cls(
            overrides=parsed.models if parsed else {},
            models=parse_models_map(models or {}),
            discounts=parsed.discounts if parsed else {},
            fix=fix,
        )

    # -- resolution -------------------------------------------------------------------------------------------
    def resolve(self, model_id: str) -> PriceSource:
        """The price source of one gateway model id; an unknown model is a PricingError naming close ids."""
        source = self._sources.get(model_id)
        if source is None:
            source = self._sources[model_id] = self._resolve(model_id)
        return source

    def _resolve(self, model_id: str) -> PriceSource:
        account, name = split_model_id(model_id)
        for key in (model_id, name):
            if key in self.overrides:
                entries = tuple(sorted(self.overrides[key], key=lambda e: e.get("start_date") or dt.date.min))
                provider = guess_provider(model_id)
                return PriceSource(model_id, "override", provider, None, entries)
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        if model_id in self.models:
            provider_id, ref = self.models[model_id]
        else:
            provider_id, ref = guess_provider(model_id), name
        try:
            provider, info = snapshot.find_provider_model(ref, None, provider_id, None)
        except LookupError:
            self._unknown_message(model_id, provider_id, ref, snapshot)
        prices = info.prices
        periods = tuple(prices) if isinstance(prices, list) else (_unconditional(prices),)
        return PriceSource(model_id, "genai-prices", provider.id, info.id, periods, tuple(info.price_variants or ()))

    def check_known(self, model_ids: Iterable[str]) -> None:
        """Resolve every model id; one PricingError lists every unknown one (each with its closest catalog ids)."""
        problems = []
        for model_id in dict.fromkeys(str(m) for m in model_ids):
            try:
                self.resolve(model_id)
            except PricingError as exc:
                problems.append(exc.detail)
        if len(problems) == 1:
            raise PricingError(f"{problems[0]}. {self.fix}.")
        if problems:
            raise PricingError(f"{len(problems)} models are not in the genai-prices catalog: "
                               + "; ".join(problems) + f". {self.fix}.")

    def _unknown_message(self, model_id: str, provider_id: str | None, ref: str, snapshot: Any) -> str:
        detail = unknown_model_detail(model_id, provider_id, ref, snapshot)
        raise PricingError(f"{detail}. {self.fix}.", detail=detail)

    # -- per-source tables ------------------------------------------------------------------------------------
    def _table(self, source: PriceSource, period: int) -> tuple[np.ndarray, np.ndarray]:
        """(tier starts, coefficient rows) for one price period of one source, cached."""
        key = (source.model_id, period)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = self._price_table(source, self._standard_price(source, period))
        return table

    def _price_table(self, source: PriceSource, price) -> tuple[np.ndarray, np.ndarray]:
        """(tier starts, coefficient rows) of one genai-prices ModelPrice, with the provider's negotiated discount."""
        starts, levels = _tier_levels(price)
        coefs = np.vstack([_coefficients(level) for level in levels])
        discount = self.discounts.get(source.provider_id or "", 0.0)
        if discount:
            coefs = coefs * (1.0 - discount / 100.0)
        return starts, coefs

    def _period_index(self, source: PriceSource, ts_ns: np.ndarray) -> np.ndarray:
        if source.origin == "override":
            starts = [e.get("start_date") for e in source.periods]
            days = np.array([(d - dt.date(1970, 1, 1)).days if d else np.iinfo(np.int64).min for d in starts])
            index = np.searchsorted(days, ts_ns // _NS_PER_DAY, side="right") - 1
            if (index < 0).any():
                first = starts[0]
                raise PricingError(
                    f"override prices for '{source.model_id}' start on {first}, but traffic has requests before it. "
                    "Add an entry without start_date (or an earlier one)."
                )
            return index
        return _active_period_index(source.periods, ts_ns)

    def unit_prices(self, model_id: str, timestamp: dt.datetime | np.datetime64 | int,
                    service_tier: str = "default") -> dict[str, Any]:
        """USD per million tokens for each token class at one instant (tier at the base level)."""
        source = self.resolve(model_id)
        ts = np.array([_to_ns(timestamp)], dtype=np.int64)
        if service_tier != "default":
            from simulator.pricing.tiers import TIER_CODE

            code = TIER_CODE[service_tier]
            starts, coefs = self._tier_table(source, code, self._tier_keys(source, code, ts)[0])
        else:
            period = int(self._period_index(source, ts)[0])
            starts, coefs = self._table(source, period)
        row = coefs[0]
        out = {f"{cls}_mtok": float(row[i + 1] * _M) for i, cls in enumerate(TOKEN_CLASSES)}
        out.update(per_request_usd=float(row[0]), tiers=starts.tolist(), source=source.label)
        return out

    # -- vectorised pricing -----------------------------------------------------------------------------------
    def cost_usd(
        self,
        model: Any,
        timestamp_ns: Any,
        input_tokens: Any,
        output_tokens: Any,
        cache_read_tokens: Any = None,
        cache_write_tokens: Any = None,
        cache_write_1h_tokens: Any = None,
    ) -> np.ndarray:
        """Cost in USD of each request (arrays of equal length; ``model`` holds gateway model ids)."""
        codes, uniques = _factorize(model)
        return self.cost_usd_codes(
            codes, uniques, timestamp_ns, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
        )

    def cost_usd_codes(
        self,
        codes: np.ndarray,
        uniques: Any,
        timestamp_ns: Any,
        input_tokens: Any,
        output_tokens: Any,
        cache_read_tokens: Any = None,
        cache_write_tokens: Any = None,
        cache_write_1h_tokens: Any = None,
        tiers: Any = None,
    ) -> np.ndarray:
        """Like :meth:`cost_usd` with models given as integer codes into ``uniques`` (no string work per row);
        ``tiers`` holds a service-tier code per row (:data:`simulator.pricing.tiers.TIER_CODE`, None = default)."""
        n = len(codes)
        inp = np.asarray(input_tokens, dtype=np.float64)
        zeros = np.zeros(n, dtype=np.float64)
        cr = zeros if cache_read_tokens is None else np.asarray(cache_read_tokens, dtype=np.float64)
        cw = zeros if cache_write_tokens is None else np.asarray(cache_write_tokens, dtype=np.float64)
        cw1h = zeros if cache_write_1h_tokens is None else np.asarray(cache_write_1h_tokens, dtype=np.float64)
        out = np.asarray(output_tokens, dtype=np.float64)
        table, idx = self._coefficients(codes, uniques, timestamp_ns, inp, tiers)
        return price_kernel(table, idx, inp, cr, cw, cw1h, out)

    def unit_prices_codes(self, codes: np.ndarray, uniques: Any, timestamp_ns: Any, input_tokens: Any,
                          tiers: Any = None) -> np.ndarray:
        """USD per unit of each request's price row, shape (n, 6): per request, then per token of each of
        ``TOKEN_CLASSES`` (the tier is chosen by ``input_tokens``, as in :meth:`cost_usd_codes`)."""
        table, idx = self._coefficients(codes, uniques, timestamp_ns, np.asarray(input_tokens, dtype=np.float64),
                                        tiers)
        return table[idx]

    def _coefficients(self, codes: np.ndarray, uniques: Any, timestamp_ns: Any, inp: np.ndarray,
                      tiers: Any = None) -> tuple[np.ndarray, np.ndarray]:
        table, idx = self._default_coefficients(codes, uniques, timestamp_ns, inp)
        if tiers is None:
            return table, idx
        tiers = np.asarray(tiers)
        rows = np.flatnonzero(tiers != 0)
        if not len(rows):
            return table, idx
        # Rows on another service tier get their own coefficient rows, appended to the table.
        ts = np.asarray(timestamp_ns, dtype=np.int64)
        blocks, offset = [table], len(table)
        pairs = np.unique(np.stack([codes[rows], tiers[rows]], axis=1), axis=0)
        for code, tier in pairs:
            sel = rows[(codes[rows] == code) & (tiers[rows] == tier)]
            source = self.resolve(str(uniques[code]))
            keys = self._tier_keys(source, int(tier), ts[sel])
            for key in sorted(set(keys)):
                sub = sel[np.array([k == key for k in keys])]
                starts, coefs = self._tier_table(source, int(tier), key)
                level = np.searchsorted(starts, inp[sub], side="left") if len(starts) else 0
                idx[sub] = offset + level
                blocks.append(coefs)
                offset += len(coefs)
        return np.vstack(blocks), idx

    # -- service tiers ----------------------------------------------------------------------------------------
    @property
    def tiers(self):
        """The service-tier data (``pricing/service-tiers.yaml``)."""
        from simulator.pricing.tiers import default_tiers

        return default_tiers()

    def _tier_keys(self, source: PriceSource, tier: int, ts_ns: np.ndarray) -> list[tuple]:
        """Per row: (standard period, active genai-prices variants, fallback entry) that price it on ``tier``."""
        from simulator.pricing.tiers import TIERS, active_mask, matching_variants

        name = TIERS[tier]
        info = self.tiers.tier(name)
        periods = self._period_index(source, ts_ns)
        variants = matching_variants(source.variants, info)
        active = (np.stack([active_mask(v.constraint, ts_ns) for v in variants], axis=1) if variants
                  else np.zeros((len(ts_ns), 0), dtype=bool))
        any_active = active.any(axis=1)
        fallback = np.full(len(ts_ns), -1, dtype=np.int64)
        if not any_active.all():
            history = self.tiers.fallback(source.provider_id, name, split_model_id(source.model_id)[1])
            if history is None:
                where = "genai-prices has no active " + name + " price variant" if source.origin != "override" else \
                    "it is priced by an override"
                raise PricingError(
                    f"no {name} price for model '{source.model_id}' ({where}, and pricing/service-tiers.yaml has no "
                    f"{name} fallback for provider '{source.provider_id}' and this model). The provider may not offer "
                    f"the {name} tier for it: drop service_tier {name} for this model, or add a dated, sourced "
                    "fallback entry.")
            days = np.array([(h[0] - dt.date(1970, 1, 1)).days for h in history])
            fallback = np.where(any_active, -1, np.maximum(np.searchsorted(days, ts_ns // _NS_PER_DAY,
                                                                           side="right") - 1, 0))
        return [(int(k), tuple(bool(b) for b in a), int(f)) for k, a, f in zip(periods, active, fallback)]

    def _tier_table(self, source: PriceSource, tier: int, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        """(tier starts, coefficient rows) of one model on one service tier for one key of :meth:`_tier_keys`."""
        from simulator.pricing.tiers import TIERS, matching_variants, overlay, scaled

        cache_key = (source.model_id, "tier", tier, key)
        table = self._tables.get(cache_key)
        if table is None:
            period, active, fallback = key
            standard = self._standard_price(source, period)
            name = TIERS[tier]
            if fallback >= 0:
                history = self.tiers.fallback(source.provider_id, name, split_model_id(source.model_id)[1])
                price = scaled(standard, history[fallback][1])
            else:
                price = overlay(standard, matching_variants(source.variants, self.tiers.tier(name)), active)
            table = self._tables[cache_key] = self._price_table(source, price)
        return table

    def _standard_price(self, source: PriceSource, period: int):
        if source.origin == "override":
            entry = source.periods[period]
            return _modelprice(**{k: Decimal(str(entry[k])) for k in PRICE_KEYS if entry.get(k) is not None})
        return source.periods[period].prices

    def tier_price_origin(self, model_id: str, tier: str, timestamp_ns: int) -> str:
        """Where the ``tier`` price of a model at an instant comes from: a genai-prices variant or a fallback
        multiplier of ``pricing/service-tiers.yaml`` (raises PricingError when neither exists)."""
        from simulator.pricing.tiers import TIER_CODE

        if tier == "default":
            return self.resolve(model_id).label
        source = self.resolve(model_id)
        period, active, fallback = self._tier_keys(source, TIER_CODE[tier], np.array([timestamp_ns]))[0]
        if fallback < 0:
            return f"genai-prices {tier} variant"
        history = self.tiers.fallback(source.provider_id, tier, split_model_id(model_id)[1])
        since, multiplier, url = history[fallback]
        return f"{multiplier:g} x standard price (pricing/service-tiers.yaml, {url})"

    def _default_coefficients(self, codes: np.ndarray, uniques: Any, timestamp_ns: Any,
                              inp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(codes)
        ts = np.asarray(timestamp_ns, dtype=np.int64)
        # One flat coefficient table for the models present: every (model, price period, tier level) is a row.
        # Models with one period and no tiers (the common case) are priced by a single gather from their code;
        # only the others need per-row work on their own rows.
        blocks, base = [], np.zeros(len(uniques), dtype=np.int64)
        complex_codes = []
        for code, model_id in enumerate(uniques):
            source = self.resolve(str(model_id))
            base[code] = sum(len(b) for b in blocks)
            if len(source.periods) == 1:
                starts, coefs = self._table(source, 0)
                blocks.append(coefs)
                if len(starts):
                    complex_codes.append((code, source))
            else:
                tables = [self._table(source, k) for k in range(len(source.periods))]
                blocks.append(np.vstack([t[1] for t in tables]))
                complex_codes.append((code, source))
        table = np.vstack(blocks) if blocks else np.zeros((0, 6))
        idx = base[codes] if n else np.zeros(0, dtype=np.int64)
        for code, source in complex_codes:
            rows = np.flatnonzero(codes == code)
            if len(rows) == 0:
                continue
            periods = self._period_index(source, ts[rows]) if len(source.periods) > 1 else np.zeros(len(rows), int)
            offset = np.zeros(len(rows), dtype=np.int64)
            start_row = 0
            for k in range(len(source.periods)):
                starts, coefs = self._table(source, k)
                sel = periods == k
                level = np.searchsorted(starts, inp[rows[sel]], side="left") if len(starts) else 0
                offset[sel] = start_row + level
                start_row += len(coefs)
            idx[rows] = base[code] + offset
        return table, idx


def price_kernel(
    table: np.ndarray, idx: np.ndarray, inp: np.ndarray, cr: np.ndarray, cw: np.ndarray, cw1h: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """The pricing arithmetic: row ``idx[i]`` of ``table`` (columns: per_request, *TOKEN_CLASSES) prices row i."""
    col = [np.ascontiguousarray(table[:, k]) for k in range(6)]
    cost = col[1][idx] * (inp - cr - cw)
    cost += col[0][idx]
    cost += col[2][idx] * cr
    cost += col[3][idx] * (cw - cw1h)
    cost += col[4][idx] * cw1h
    cost += col[5][idx] * out
    return cost


def _unconditional(model_price: Any) -> Any:
    from genai_prices.types import ConditionalPrice

    return ConditionalPrice(constraint=None, prices=model_price)


def _factorize(values: Any) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _to_ns(value: Any) -> int:
    import pandas as pd

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)
