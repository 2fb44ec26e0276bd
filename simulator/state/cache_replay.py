"""Prompt-caching simulation inside a candidate replay (the ``prompt_caching:`` section).

Rows covered by a rule (first matching rule wins; ``when.models`` matches the recorded, requested or serving model)
are simulated in time order per serving model with :mod:`simulator.state.caching`; their cache reads and writes replace
the recorded ones. Rows that stay on their recorded model and already recorded cache activity keep it: the recorded
counts reflect the client's real breakpoints (conversation history included), which prefix information cannot see.
Rows not covered keep their cache counts (recorded, or zero after a model switch). "Cost without caching" bills
every input token of the covered rows as plain input.
Budgets and rate limits are applied after caching, so cache state ignores later blocks (an approximation).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from simulator.state.caching.analysis import cache_summary, simulate_frame, ttl_break_even
from simulator.state.caching.rules import CacheRules
from simulator.routing.matching import match
from simulator.summary.metrics import r6


class CacheSimulator:
    """Callable used by :func:`simulator.core.simulate` for candidates with ``prompt_caching``."""

    def __init__(self, scenario) -> None:
        self.scenario = scenario

    @cached_property
    def rules(self) -> CacheRules:
        return CacheRules.load()

    def __call__(self, p, o, cand) -> None:
        vocab = np.array(p.vocab, dtype=object)
        served = vocab[o.model]
        rule_of = np.full(p.n, -1, dtype=np.int64)
        for i, rule in enumerate(cand.prompt_caching):
            when = rule.when
            mask = match(p.view, when.model_copy(update={"models": []}))
            if when.models:
                mask &= match(p.view, when) | np.isin(served, when.models)
            rule_of[(rule_of < 0) & mask] = i
        already = ~o.changed & ((p.cr > 0) | (p.cw > 0))
        kept = int(((rule_of >= 0) & already).sum())
        rule_of[already] = -1
        covered = np.flatnonzero(rule_of >= 0)
        before = p.catalog.cost_usd_codes(o.model[covered], vocab, p.ts[covered], o.input_tokens[covered],
                                          o.output_tokens[covered])
        frame = p.traffic.frame.iloc[covered].copy()
        frame["model"] = served[covered]
        frame["input_tokens"] = o.input_tokens[covered]
        # Prefix sizes were counted on the recorded model: scale them like the request's input tokens.
        scale = np.where(p.inp[covered] > 0, o.input_tokens[covered] / np.maximum(p.inp[covered], 1), 1.0)
        moved = o.changed[covered] & (scale != 1.0)
        if moved.any():
            for col in ("prefix_tokens", "block_tokens"):
                values = frame[col].to_numpy(np.int64)
                frame[col] = np.where(moved, np.floor(values * scale).astype(np.int64), values)
        sims = []
        for i, rule in enumerate(cand.prompt_caching):
            sel = rule_of[covered] == i
            if not sel.any():
                continue
            sub = frame[sel]
            sim = simulate_frame(sub, self.rules, mode=rule.mode, ttl=rule.ttl)
            sims.append(sim)
            rows = covered[sel]
            o.cache_read_tokens[rows] = sim["cache_read_tokens"].to_numpy()
            o.cache_write_tokens[rows] = sim["cache_write_tokens"].to_numpy()
            o.cache_write_1h_tokens[rows] = sim["cache_write_1h_tokens"].to_numpy()
        if not sims:
            o.extras["caching"] = {"requests_covered": 0, "requests_kept_recorded_cache": kept}
            return
        after = p.catalog.cost_usd_codes(o.model[covered], vocab, p.ts[covered], o.input_tokens[covered],
                                         o.output_tokens[covered], o.cache_read_tokens[covered],
                                         o.cache_write_tokens[covered], o.cache_write_1h_tokens[covered])
        sim_all = pd.concat(sims).loc[frame.index]
        costs = pd.DataFrame({"cost_without_cache_usd": before, "cost_with_cache_usd": after}, index=frame.index)
        table = cache_summary(frame, sim_all, costs, by="workflow_tag")
        o.extras["caching"] = {
            "requests_covered": int(len(covered)),
            "requests_kept_recorded_cache": kept,
            "by_workflow": _records(table, "workflow_tag"),
            "ttl_break_even": self._break_even(frame, p),
            "note": "below_minimum_requests: caching would be silently skipped (prefix under the model's minimum)",
        }
        o.assumptions.append("prompt caching simulated per serving model; a switched model starts cold")

    def _break_even(self, frame: pd.DataFrame, p) -> list[dict[str, Any]]:
        try:
            table = ttl_break_even(frame, self.rules, unit_prices=p.catalog.unit_prices)
        except Exception as exc:  # noqa: BLE001 - break-even is advisory; say why it is missing
            return [{"error": str(exc).splitlines()[0]}]
        return _records(table, "workflow_tag")


def _records(table: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    out = []
    for label, row in table.iterrows():
        rec: dict[str, Any] = {key: str(label)}
        for col, value in row.items():
            if isinstance(value, (float, np.floating)) and not str(col).endswith(("_usd", "_rate")):
                rec[col] = int(value) if np.isfinite(value) else None
            elif isinstance(value, (float, np.floating)):
                rec[col] = r6(value) if np.isfinite(value) else None
            elif isinstance(value, (int, np.integer, bool, np.bool_)):
                rec[col] = int(value)
            else:
                rec[col] = value
        out.append(rec)
    return out
