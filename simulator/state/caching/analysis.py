"""Cache simulation over a canonical traffic table, cache-aware costs and per-workflow summaries.

``simulate_frame`` runs the kernel on a table whose ``model`` column is the target model (after routing);
``cache_costs`` prices rows with and without caching; ``cache_summary`` aggregates per workflow and overall;
``ttl_break_even`` compares 5-minute and 1-hour TTLs from the gaps between uses of each prefix.

Prices come from ``unit_prices(model_id, timestamp) -> dict`` (``Catalog.unit_prices`` has this signature; the
default reads genai-prices). Cache prices missing there are filled from the rules: read = input x read_multiplier,
5-minute write = input x write multiplier, 1-hour write = ``cache_write_1h_mtok`` or input x the 1 h multiplier.
Prices are looked up once per (model, UTC day), not per row.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from simulator.state.caching.kernel import CacheResult, full_prefix_keys, simulate_cache
from simulator.state.caching.prefixes import SOURCE_NAMES, build_prefix_blocks
from simulator.state.caching.rules import CacheRules, parse_ttl_ms
from simulator.errors import PricingError
from simulator.pricing.model_ids import guess_provider, split_model_id

MTOK = 1_000_000
FIVE_MIN_MS = 300_000
ONE_HOUR_MS = 3_600_000
DAY_NS = 86_400 * 10**9
SIM_COLUMNS = (
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "prefix_tokens",
    "cache_hit",
    "cache_below_minimum",
    "cache_no_prefix_info",
    "prefix_source",
    "prefix_tokens_approximate",
    "storage_token_hours",
    "cache_storage_usd",
    "cache_min_tokens",
    "prefix_key",
)


def time_ordered(df: pd.DataFrame, count_tokens=None) -> tuple:
    """``(ts_ns, order, df in time order, its prefix blocks)``: what :func:`simulate_frame` and
    :func:`prefix_gaps_ms` start from; build it once to pass as ``ordered`` when several run on the same frame."""
    ts_ns = pd.DatetimeIndex(df["timestamp"]).as_unit("ns").asi8
    if len(ts_ns) and (ts_ns[1:] >= ts_ns[:-1]).all():  # already in time order (a replay's chunk): no copy
        order, sdf = np.arange(len(ts_ns)), df
    else:
        order = np.argsort(ts_ns, kind="stable")
        sdf = df.iloc[order]
    return ts_ns, order, sdf, build_prefix_blocks(sdf, count_tokens=count_tokens)


def simulate_frame(df: pd.DataFrame, rules: CacheRules, *, enabled=None, mode=None, ttl=None, providers=None,
                   count_tokens=None, model_codes=None, state=None, breakpoints=None, ordered=None) -> pd.DataFrame:
    """Simulate prompt caching for every row of ``df`` (``model`` = the model that serves it).

    ``enabled``: bool mask of rows covered by a prompt_caching rule (default all). ``mode`` / ``ttl`` override the
    rule defaults; ``breakpoints`` lists explicit breakpoints as (block position, TTL text or None). Returns a frame
    indexed like ``df`` with :data:`SIM_COLUMNS` (``cache_storage_usd``: the storage fee of explicit caches billed per
    token-hour); ``df`` is not modified.
    For time-ordered chunks of one traffic, pass the run's ``model_codes`` (one code per row, the same code for the
    same model in every chunk) and a :class:`~simulator.state.caching.kernel.KernelState` to carry the cache.
    ``ordered``: :func:`time_ordered` of ``df`` (with the same ``count_tokens``) when already built.
    """
    n = len(df)
    enabled = np.ones(n, bool) if enabled is None else np.asarray(enabled, bool)
    ts_ns, order, sdf, blocks = time_ordered(df, count_tokens) if ordered is None else ordered
    codes = (pd.factorize(sdf["model"], sort=True)[0] if model_codes is None
             else np.asarray(model_codes, np.int64)[order])
    s_enabled = enabled[order]
    from simulator.state.caching.kernel import MAX_BREAKPOINTS, NO_BREAKPOINT

    params = {k: np.zeros(n, np.int64) for k in ("mode", "ttl_ms", "min_tokens", "lookback_blocks")}
    params["increment_tokens"] = np.ones(n, np.int64)
    params["refresh_on_hit"] = np.zeros(n, bool)
    params["storage"] = np.zeros(n, bool)
    params["storage_mtok_hour"] = np.zeros(n, np.float64)
    params["bp_pos"] = np.full((n, MAX_BREAKPOINTS), NO_BREAKPOINT, np.int64)
    params["bp_pos"][:, 0] = -1
    params["bp_ttl_ms"] = np.zeros((n, MAX_BREAKPOINTS), np.int64)
    if s_enabled.any():
        times = ts_ns[order][s_enabled].view("datetime64[ns]")
        got = rules.params(sdf["model"].to_numpy()[s_enabled], times, mode=mode, ttl=ttl, providers=providers,
                           breakpoints=breakpoints)
        explicit = got["mode"] == 1
        for key in params:
            if key in ("bp_pos", "bp_ttl_ms"):
                rows = np.flatnonzero(s_enabled)[explicit]
                params[key][rows] = got[key][explicit]
            else:
                params[key][s_enabled] = got[key]
    result = simulate_cache(
        ts_ns[order] // 1_000_000, codes.astype(np.int32), blocks.offsets, blocks.ids, blocks.tokens,
        sdf["input_tokens"].to_numpy(np.int64), s_enabled, params["mode"], params["ttl_ms"], params["min_tokens"],
        params["increment_tokens"], params["refresh_on_hit"], state=state,
        breakpoints=params["bp_pos"], breakpoint_ttl_ms=np.where(params["bp_ttl_ms"] > 0, params["bp_ttl_ms"],
                                                                 params["ttl_ms"][:, None]),
        lookback_blocks=params["lookback_blocks"], storage=params["storage"],
    )
    inverse = np.empty(n, np.int64)
    inverse[order] = np.arange(n)
    source = np.where(s_enabled, blocks.source, 0)
    out = {
        "cache_read_tokens": result.cache_read_tokens,
        "cache_write_tokens": result.cache_write_tokens,
        "cache_write_1h_tokens": result.cache_write_1h_tokens,
        "prefix_tokens": result.prefix_tokens,
        "cache_hit": result.hit,
        "cache_below_minimum": result.below_minimum,
        "cache_no_prefix_info": result.no_prefix_info,
        "prefix_source": pd.Categorical.from_codes(source, categories=[SOURCE_NAMES[k] for k in sorted(SOURCE_NAMES)]),
        "prefix_tokens_approximate": blocks.approximate & s_enabled,
        "storage_token_hours": result.storage_token_hours,
        "cache_storage_usd": result.storage_token_hours * params["storage_mtok_hour"] / MTOK,
        "cache_min_tokens": params["min_tokens"],
        "prefix_key": full_prefix_keys(codes.astype(np.int32), blocks.offsets, blocks.ids),
    }
    if sdf is not df:  # back to the rows' order
        out = {k: (v[inverse] if not isinstance(v, pd.Categorical) else v.take(inverse)) for k, v in out.items()}
    frame = pd.DataFrame(out)
    frame.index = df.index
    return frame


@lru_cache(maxsize=4096)
def _genai_prices(model_id: str, day: str) -> tuple:
    from genai_prices import Usage, calc_price

    provider = guess_provider(model_id)
    name = split_model_id(model_id)[1]
    try:
        price = calc_price(Usage(input_tokens=0, output_tokens=0), name, provider_id=provider,
                           genai_request_timestamp=pd.Timestamp(day, tz="UTC").to_pydatetime())
    except LookupError as exc:
        raise PricingError(f"genai-prices has no price for model {model_id!r} ({exc}). Add a pricing override.") from None
    mp = price.model_price

    def num(field):
        value = getattr(mp, field, None)
        value = getattr(value, "base", value)  # tiered prices: the base tier
        return None if value is None else float(value)

    return tuple((f, num(f)) for f in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok"))


def genai_unit_prices(model_id: str, timestamp) -> dict:
    """USD per million tokens from genai-prices for a gateway model id at ``timestamp`` (per UTC day)."""
    return dict(_genai_prices(str(model_id), pd.Timestamp(timestamp).strftime("%Y-%m-%d")))


def cache_costs(df: pd.DataFrame, sim: pd.DataFrame, rules: CacheRules, unit_prices=genai_unit_prices,
                providers=None) -> pd.DataFrame:
    """``cost_without_cache_usd`` and ``cost_with_cache_usd`` per row (float64, indexed like ``df``)."""
    n = len(df)
    rates = {k: np.zeros(n) for k in ("in", "out", "read", "write", "write_1h")}
    # (model, UTC day) pairs in order of first appearance, factorised as integers (a day string per row costs seconds)
    model_codes, models = pd.factorize(df["model"], use_na_sentinel=False)
    days = pd.DatetimeIndex(df["timestamp"]).as_unit("ns").asi8 // DAY_NS
    first_day = int(days.min()) if n else 0
    codes, uniques = pd.factorize((days - first_day) * max(len(models), 1) + model_codes)
    for code, key in enumerate(uniques.tolist()):
        model_id = models[key % len(models)]
        day = pd.Timestamp((key // len(models) + first_day) * DAY_NS, tz="UTC").strftime("%Y-%m-%d")
        rows = codes == code
        p = unit_prices(model_id, pd.Timestamp(day, tz="UTC"))
        if p.get("input_mtok") is None or p.get("output_mtok") is None:
            raise PricingError(f"no input/output price for model {model_id!r} on {day}. Add a pricing override.")
        base = p["input_mtok"]
        rule = None

        def from_rule(kind):
            nonlocal rule
            rule = rule or rules.resolve(model_id, at=pd.Timestamp(day), provider=(providers or {}).get(model_id))
            if kind == "read":
                return base * rule.read_multiplier
            ttl = FIVE_MIN_MS if kind == "write" else ONE_HOUR_MS
            mult = rule.write_multiplier_for(ttl)
            return base * (mult if mult is not None else 1.0)

        read, write, write_1h = p.get("cache_read_mtok"), p.get("cache_write_mtok"), p.get("cache_write_1h_mtok")
        needs_cache = (sim["cache_read_tokens"].to_numpy()[rows].any() or sim["cache_write_tokens"].to_numpy()[rows].any())
        rates["in"][rows], rates["out"][rows] = base, p["output_mtok"]
        if needs_cache:
            rates["read"][rows] = read if read is not None else from_rule("read")
            rates["write"][rows] = write if write is not None else from_rule("write")
            rates["write_1h"][rows] = write_1h if write_1h is not None else from_rule("write_1h")
    inp = df["input_tokens"].to_numpy(np.float64)
    out = df["output_tokens"].to_numpy(np.float64)
    read_t = sim["cache_read_tokens"].to_numpy(np.float64)
    write_t = sim["cache_write_tokens"].to_numpy(np.float64)
    write_1h_t = sim["cache_write_1h_tokens"].to_numpy(np.float64)
    without = (inp * rates["in"] + out * rates["out"]) / MTOK
    with_cache = (
        (inp - read_t - write_t) * rates["in"]
        + read_t * rates["read"]
        + (write_t - write_1h_t) * rates["write"]
        + write_1h_t * rates["write_1h"]
        + out * rates["out"]
    ) / MTOK
    if "cache_storage_usd" in sim.columns:
        with_cache = with_cache + sim["cache_storage_usd"].to_numpy(np.float64)
    return pd.DataFrame({"cost_without_cache_usd": without, "cost_with_cache_usd": with_cache}, index=df.index)


def cache_summary(df: pd.DataFrame, sim: pd.DataFrame, costs: pd.DataFrame | None = None, by: str = "workflow_tag") -> pd.DataFrame:
    """One row per ``by`` value plus an ``(all)`` row: hit rate, cache tokens, costs, skipped rows.

    ``hit_rate`` = hits / rows that had a usable prefix (enabled, with prefix info, at or above the minimum).
    """
    return finish_cache_summary(cache_summary_sums(df, sim, costs, by), by)


def cache_summary_sums(df: pd.DataFrame, sim: pd.DataFrame, costs: pd.DataFrame | None = None,
                       by: str = "workflow_tag", extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The additive part of :func:`cache_summary` per group (sums over chunks add up); ``extra`` names more
    columns of ``sim`` to sum."""
    n = len(sim)
    columns = {"requests": np.ones(n, np.int64),
               "cacheable": (sim["prefix_tokens"].to_numpy() > 0) & ~sim["cache_below_minimum"].to_numpy(bool)}
    names = ["cache_hit", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cache_below_minimum",
             "cache_no_prefix_info"]
    if "storage_token_hours" in sim.columns:
        names += ["storage_token_hours", "cache_storage_usd"]
    columns.update((c, sim[c].to_numpy()) for c in [*names, *extra])
    if costs is not None:
        columns.update((c, costs[c].to_numpy()) for c in costs.columns)
    frame = pd.DataFrame({c: v.astype(np.int64) if v.dtype == bool else v for c, v in columns.items()})
    return frame.groupby(group_labels(df, by), sort=True).sum()


def group_labels(df: pd.DataFrame, by: str) -> np.ndarray:
    """``df[by]`` as text per row (``"(none)"`` where missing or without the column), each distinct value made once."""
    if by not in df.columns:
        return np.full(len(df), "(none)", dtype=object)
    codes, uniques = pd.factorize(df[by])
    return np.array([str(v) for v in uniques] + ["(none)"], dtype=object)[codes]


def finish_cache_summary(sums: pd.DataFrame, by: str = "workflow_tag") -> pd.DataFrame:
    """:func:`cache_summary` from the summed groups: an ``(all)`` row, hit rate and savings."""
    grouped = sums.groupby(level=0, sort=True).sum()
    if "storage_token_hours" in grouped.columns and not grouped["storage_token_hours"].to_numpy().any():
        grouped = grouped.drop(columns=["storage_token_hours", "cache_storage_usd"])  # no explicit storage billed
    grouped = with_total(grouped)
    grouped = grouped.rename(columns={"cache_hit": "hits", "cache_below_minimum": "below_minimum_requests",
                                      "cache_no_prefix_info": "no_prefix_info_requests", "cacheable": "cacheable_requests"})
    grouped["hit_rate"] = grouped["hits"] / grouped["cacheable_requests"].where(grouped["cacheable_requests"] > 0)
    if "cost_with_cache_usd" in grouped.columns:
        grouped["savings_usd"] = grouped["cost_without_cache_usd"] - grouped["cost_with_cache_usd"]
    grouped.index.name = by
    return grouped


def with_total(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with an ``(all)`` row of column sums, column types kept (``table.loc["(all)"] = table.sum()``
    without the slow enlargement)."""
    totals = table.sum()
    columns = {c: np.append(v := table[c].to_numpy(), np.asarray(totals[c]).astype(v.dtype)) for c in table.columns}
    return pd.DataFrame(columns, index=[*table.index, "(all)"])


def prefix_gaps_ms(df: pd.DataFrame, count_tokens=None, model_codes=None, last_seen: dict | None = None,
                   ordered=None) -> pd.DataFrame:
    """Gap (ms) since the previous request with the same whole prefix on the same model; NaN for first uses.

    ``last_seen`` (prefix key -> ms of its last use) carries earlier chunks of the same traffic and is updated;
    ``ordered`` as in :func:`simulate_frame`.
    """
    ts_ns, order, sdf, blocks = time_ordered(df, count_tokens) if ordered is None else ordered
    codes = (pd.factorize(sdf["model"], sort=True)[0] if model_codes is None
             else np.asarray(model_codes, np.int64)[order])
    keys = full_prefix_keys(codes.astype(np.int32), blocks.offsets, blocks.ids)
    ts_ms = ts_ns[order] // 1_000_000
    gaps = pd.Series(ts_ms, dtype="float64").groupby(keys).diff().to_numpy().copy()
    if last_seen is not None and len(keys):
        first = ~pd.Series(keys).duplicated().to_numpy()
        for i in np.flatnonzero(first & (keys != 0)):
            prev = last_seen.get(int(keys[i]))
            if prev is not None:
                gaps[i] = ts_ms[i] - prev
        last = ~pd.Series(keys).duplicated(keep="last").to_numpy()
        last_seen.update(zip(keys[last & (keys != 0)].tolist(), ts_ms[last & (keys != 0)].tolist()))
    gaps[keys == 0] = np.nan
    out = np.empty(len(df))
    out[order] = gaps
    return pd.DataFrame({"prefix_gap_ms": out}, index=df.index)


def ttl_break_even(df: pd.DataFrame, rules: CacheRules, *, by: str = "workflow_tag", enabled=None, unit_prices=genai_unit_prices,
                   providers=None, ttls=("5m", "1h")) -> pd.DataFrame:
    """Per group: gap bands between uses of each prefix and the cost of explicit caching at each TTL.

    A 1 h TTL only pays where gaps fall between 5 and 60 minutes; the cost columns settle it for this traffic
    (explicit mode, each TTL simulated separately with the same rules).
    """
    sums = ttl_break_even_sums(df, rules, by=by, enabled=enabled, unit_prices=unit_prices, providers=providers,
                               ttls=ttls)
    return finish_break_even(sums, ttls, by)


def ttl_break_even_sums(df: pd.DataFrame, rules: CacheRules, *, by: str = "workflow_tag", enabled=None,
                        unit_prices=genai_unit_prices, providers=None, ttls=("5m", "1h"), model_codes=None,
                        states: dict | None = None, last_seen: dict | None = None) -> pd.DataFrame:
    """The additive part of :func:`ttl_break_even` per group. For time-ordered chunks pass the run's
    ``model_codes``, one :class:`~simulator.state.caching.kernel.KernelState` per TTL in ``states`` and a
    ``last_seen`` dict, all carried from chunk to chunk."""
    ordered = time_ordered(df)  # one prefix-block build for the gaps and every TTL
    gaps = prefix_gaps_ms(df, model_codes=model_codes, last_seen=last_seen, ordered=ordered)["prefix_gap_ms"].to_numpy()
    frame = pd.DataFrame({
        "group": group_labels(df, by),
        "gaps_le_5m": gaps <= FIVE_MIN_MS,
        "gaps_5m_to_1h": (gaps > FIVE_MIN_MS) & (gaps <= ONE_HOUR_MS),
        "gaps_gt_1h": gaps > ONE_HOUR_MS,
        "first_use": np.isnan(gaps),
    })
    for ttl in ttls:
        state = states.setdefault(ttl, None) if states is not None else None
        if states is not None and state is None:
            from simulator.state.caching.kernel import KernelState

            state = states[ttl] = KernelState()
        sim = simulate_frame(df, rules, enabled=enabled, mode="explicit", ttl=ttl, providers=providers,
                             model_codes=model_codes, state=state, ordered=ordered)
        frame[f"cost_{ttl}_usd"] = cache_costs(df, sim, rules, unit_prices=unit_prices, providers=providers)["cost_with_cache_usd"].to_numpy()
    for c in ("gaps_le_5m", "gaps_5m_to_1h", "gaps_gt_1h", "first_use"):
        frame[c] = frame[c].astype(np.int64)
    return frame.groupby("group", sort=True).sum()


def finish_break_even(sums: pd.DataFrame, ttls=("5m", "1h"), by: str = "workflow_tag") -> pd.DataFrame:
    """:func:`ttl_break_even` from the summed groups: an ``(all)`` row and the cheaper TTL per group."""
    table = sums.groupby(level=0, sort=True).sum()
    table = with_total(table)
    cost_cols = [f"cost_{t}_usd" for t in ttls]
    table["cheaper_ttl"] = [ttls[int(np.argmin(row))] for row in table[cost_cols].to_numpy()]
    table.index.name = by
    return table


__all__ = [
    "CacheResult",
    "cache_costs",
    "cache_summary",
    "cache_summary_sums",
    "finish_break_even",
    "finish_cache_summary",
    "ttl_break_even_sums",
    "genai_unit_prices",
    "parse_ttl_ms",
    "prefix_gaps_ms",
    "simulate_frame",
    "ttl_break_even",
]
