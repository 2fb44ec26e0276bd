"""Prompt caching inside a candidate replay (the ``prompt_caching:`` section), carried across time-ordered chunks.

Rows covered by a rule (first matching rule wins; ``when.models`` matches the recorded, requested or serving model)
are simulated in time order per serving model with :mod:`simulator.state.caching`; their cache reads and writes
replace the recorded ones. Rows that stay on their recorded model and already recorded cache activity keep it: the
recorded counts reflect the client's real breakpoints (conversation history included), which prefix information
cannot see. Rows not covered keep their cache counts (recorded, or zero after a model switch). "Cost without
caching" bills every input token of the covered rows as plain input. Budgets and rate limits are applied after
caching, so cache state ignores later blocks (an approximation).

The cache tables of each rule, of the 5-minute / 1-hour break-even simulations, and the last use of each prefix are
kept in :class:`CacheState` from one chunk to the next, so a chunked replay equals a replay of the whole table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulator.routing.matching import match
from simulator.state.caching.analysis import (cache_summary_sums, finish_break_even, finish_cache_summary,
                                              simulate_frame, ttl_break_even_sums)
from simulator.state.caching.kernel import KernelState
from simulator.state.caching.rules import CacheRules

ASSUMPTION = "prompt caching simulated per serving model; a switched model starts cold"
NOTE = "below_minimum_requests: caching would be silently skipped (prefix under the model's minimum)"


PROBE_GROUP = "workflow_model"  # a probe's report is per (workflow, serving model), joined by GROUP_SEP
GROUP_SEP = "\x1f"
PROBE_EXTRA = ("prefix_tokens_sum", "prefix_rows", "borderline_requests")
# what the simulation, pricing and reports read of the covered rows (not metadata, users, recorded costs...)
_COLUMNS = ("request_id", "timestamp", "model", "input_tokens", "output_tokens", "workflow_tag", "prompt",
            "prefix_hash", "prefix_tokens", "prefix_blocks", "block_tokens")


class CacheState:
    """The prompt cache of one candidate over successive chunks, and the sums its report is built from.

    ``probe``: a cache-opportunity probe (no candidate was written for it): the report is per (workflow, serving
    model), without the TTL break-even, with the prefix sizes, the requests whose prefix is within the tokenizer's
    count interval of the model's minimum (``translator`` gives the interval) and the distinct prefixes."""

    def __init__(self, cand, rules: CacheRules, *, probe: bool = False, translator=None) -> None:
        self.rules = rules
        self.probe = probe
        self.translator = translator
        self.prefix_keys: dict[str, list[np.ndarray]] = {}
        self.kept_by_model: dict[str, int] = {}
        self.kernels = [KernelState() for _ in cand.prompt_caching]
        # per rule: what it is, and requests, cache reads, 5-minute writes, 1-hour writes, storage (USD) it produced
        self.rule_info = [{"rule": i + 1, "mode": r.mode or "provider default", "ttl": r.ttl,
                           "breakpoints": [{"at": b.at, "ttl": b.ttl} for b in r.breakpoints]}
                          for i, r in enumerate(cand.prompt_caching)]
        self.rule_sums = np.zeros((len(cand.prompt_caching), 5))
        self.break_even_states: dict[str, KernelState] = {}
        self.last_seen: dict[int, int] = {}
        self.summary_sums: list[pd.DataFrame] = []
        self.break_even_parts: list[pd.DataFrame] = []
        self.break_even_error: str | None = None
        self.covered = 0
        self.kept = 0

    def apply(self, p, o, cand) -> None:
        """Replace the cache reads and writes of this chunk's covered rows of ``o`` (costs are repriced by the
        caller)."""
        vocab = np.array(p.vocab, dtype=object)
        served = vocab[o.model]
        rule_of = np.full(p.n, -1, dtype=np.int64)
        for i, rule in enumerate(cand.prompt_caching):
            when = rule.when
            mask = match(p.view, when.model_copy(update={"models": []}))
            if when.models and self.probe:
                mask &= np.isin(served, when.models)  # a probe covers the model that served the request only
            elif when.models:
                mask &= match(p.view, when) | np.isin(served, when.models)
            rule_of[(rule_of < 0) & mask] = i
        if self.probe:
            rule_of[o.status >= 400] = -1  # failed requests never reached a cache
        already = ~o.changed & ((p.cr > 0) | (p.cw > 0))
        self.kept += int(((rule_of >= 0) & already).sum())
        if self.probe:
            for model, n in pd.Series(served[(rule_of >= 0) & already]).value_counts().items():
                self.kept_by_model[str(model)] = self.kept_by_model.get(str(model), 0) + int(n)
        rule_of[already] = -1
        covered = np.flatnonzero(rule_of >= 0)
        self.covered += len(covered)
        if len(covered) == 0:
            return
        tiers = o.service_tier[covered]
        before = p.catalog.cost_usd_codes(o.model[covered], vocab, p.ts[covered], o.input_tokens[covered],
                                          o.output_tokens[covered], tiers=tiers)
        frame = p.frame[[c for c in _COLUMNS if c in p.frame.columns]].iloc[covered]
        frame["model"] = served[covered]
        frame["input_tokens"] = o.input_tokens[covered]
        # Prefix sizes were counted on the recorded model: scale them like the request's input tokens.
        scale = np.where(p.inp[covered] > 0, o.input_tokens[covered] / np.maximum(p.inp[covered], 1), 1.0)
        moved = o.changed[covered] & (scale != 1.0)
        if moved.any():
            for col in ("prefix_tokens", "block_tokens"):
                values = frame[col].to_numpy(np.int64)
                frame[col] = np.where(moved, np.floor(values * scale).astype(np.int64), values)
        codes = o.model[covered]
        sims = []
        for i, rule in enumerate(cand.prompt_caching):
            sel = rule_of[covered] == i
            if not sel.any():
                continue
            sim = simulate_frame(frame[sel], self.rules, mode=rule.mode, ttl=rule.ttl, model_codes=codes[sel],
                                 state=self.kernels[i], breakpoints=[(b.at, b.ttl) for b in rule.breakpoints])
            sims.append(sim)
            rows = covered[sel]
            o.cache_read_tokens[rows] = sim["cache_read_tokens"].to_numpy()
            o.cache_write_tokens[rows] = sim["cache_write_tokens"].to_numpy()
            o.cache_write_1h_tokens[rows] = sim["cache_write_1h_tokens"].to_numpy()
            storage = sim["cache_storage_usd"].to_numpy()
            self.rule_sums[i] += [len(rows), float(sim["cache_read_tokens"].sum()),
                                  float(sim["cache_write_tokens"].sum()), float(sim["cache_write_1h_tokens"].sum()),
                                  float(storage.sum())]
            if storage.any():
                if o.cache_storage_usd is None:
                    o.cache_storage_usd = np.zeros(p.n)
                o.cache_storage_usd[rows] = storage
        after = p.catalog.cost_usd_codes(o.model[covered], vocab, p.ts[covered], o.input_tokens[covered],
                                         o.output_tokens[covered], o.cache_read_tokens[covered],
                                         o.cache_write_tokens[covered], o.cache_write_1h_tokens[covered],
                                         tiers=tiers)
        if o.cache_storage_usd is not None:
            after = after + o.cache_storage_usd[covered]
        sim_all = sims[0] if len(sims) == 1 and len(sims[0]) == len(frame) else pd.concat(sims).loc[frame.index]
        costs = pd.DataFrame({"cost_without_cache_usd": before, "cost_with_cache_usd": after}, index=frame.index)
        if self.probe:
            self._probe_sums(frame, sim_all, costs)
            return
        self.summary_sums.append(cache_summary_sums(frame, sim_all, costs, by="workflow_tag"))
        if self.break_even_error is None:
            try:
                self.break_even_parts.append(ttl_break_even_sums(
                    frame, self.rules, unit_prices=p.catalog.unit_prices, model_codes=codes,
                    states=self.break_even_states, last_seen=self.last_seen))
            except Exception as exc:  # noqa: BLE001 - break-even is advisory; say why it is missing
                self.break_even_error = str(exc).splitlines()[0]
        if ASSUMPTION not in o.assumptions:
            o.assumptions.append(ASSUMPTION)

    def _probe_sums(self, frame: pd.DataFrame, sim: pd.DataFrame, costs: pd.DataFrame) -> None:
        from simulator.tokens.intervals import count_interval

        # (workflow, model) groups on integer codes: each label and each model's interval made once
        wf_codes, workflows = pd.factorize(frame["workflow_tag"])
        model_codes, models = pd.factorize(frame["model"].to_numpy(dtype=object))
        pair_codes, pairs = pd.factorize(wf_codes.astype(np.int64) * len(models) + model_codes)
        wf_names = [str(w) for w in workflows] + ["UNTAGGED"]  # code -1: no workflow tag
        labels = np.array([wf_names[p // len(models)] + GROUP_SEP + str(models[p % len(models)]) for p in pairs],
                          dtype=object)
        frame = frame.assign(**{PROBE_GROUP: labels[pair_codes]})
        prefix = sim["prefix_tokens"].to_numpy(np.float64)
        minimum = sim["cache_min_tokens"].to_numpy(np.float64)
        low, high = np.ones(len(frame)), np.ones(len(frame))
        if self.translator is not None:
            intervals = [count_interval(str(m), self.translator.registry, self.translator.calibration) for m in models]
            low = np.array([i.low for i in intervals], dtype=np.float64)[model_codes]
            high = np.array([i.high for i in intervals], dtype=np.float64)[model_codes]
        has = prefix > 0
        sim = sim.assign(prefix_tokens_sum=np.where(has, prefix, 0.0), prefix_rows=has,
                         borderline_requests=has & (prefix * low < minimum) & (prefix * high >= minimum))
        self.summary_sums.append(cache_summary_sums(frame, sim, costs, by=PROBE_GROUP, extra=PROBE_EXTRA))
        keys = np.where(has, sim["prefix_key"].to_numpy(np.int64), 0)
        for code in pd.unique(pair_codes[keys != 0]):
            self.prefix_keys.setdefault(str(labels[code]), []).append(
                np.unique(keys[(pair_codes == code) & (keys != 0)]))

    def rules_report(self) -> list[dict[str, Any]]:
        """Per caching rule: its mode, TTL and breakpoints, and the requests, cache tokens and storage it produced."""
        out = []
        for info, sums in zip(self.rule_info, self.rule_sums):
            requests, reads, writes, writes_1h, storage = sums
            out.append({**info, "requests": int(requests), "cache_read_tokens": int(reads),
                        "cache_write_tokens": int(writes), "cache_write_1h_tokens": int(writes_1h),
                        "cache_storage_usd": round(float(storage), 6) + 0.0})
        return out

    def release(self) -> None:
        """Drop the cache tables (no later chunk will come); the sums behind the report stay."""
        self.kernels, self.break_even_states, self.last_seen = [], {}, {}
        self.translator = None  # tokenizers stay where they were loaded

    def merge(self, other: CacheState) -> CacheState:
        """Fold in the sums of another partition holding other prefixes (the Dask engine)."""
        self.summary_sums += other.summary_sums
        self.rule_sums = self.rule_sums + other.rule_sums
        self.break_even_parts += other.break_even_parts
        for group, keys in other.prefix_keys.items():
            self.prefix_keys.setdefault(group, []).extend(keys)
        for model, n in other.kept_by_model.items():
            self.kept_by_model[model] = self.kept_by_model.get(model, 0) + n
        self.break_even_error = self.break_even_error or other.break_even_error
        self.covered += other.covered
        self.kept += other.kept
        return self

    def report(self) -> dict[str, Any]:
        """The policy's ``caching`` section."""
        if not self.summary_sums:
            out = {"requests_covered": 0, "requests_kept_recorded_cache": self.kept}
            return out | ({"kept_by_model": dict(sorted(self.kept_by_model.items()))} if self.probe else {})
        if self.probe:
            table = finish_cache_summary(pd.concat(self.summary_sums), PROBE_GROUP)
            table = table.drop(index="(all)")
            table["distinct_prefixes"] = [len(np.unique(np.concatenate(self.prefix_keys[g]))) if g in self.prefix_keys
                                          else 0 for g in table.index]
            rows = records(table, PROBE_GROUP)
            for rec, exact in zip(rows, table["savings_usd"].to_numpy(np.float64)):
                # scaled to a month by the caller: rounding first would multiply the rounding error (engines agree
                # to the last rounded digit only when the unrounded sum is scaled)
                rec["savings_usd_unrounded"] = float(exact)
            return {"requests_covered": self.covered, "requests_kept_recorded_cache": self.kept,
                    "kept_by_model": dict(sorted(self.kept_by_model.items())), "by_workflow_model": rows}
        table = finish_cache_summary(pd.concat(self.summary_sums), "workflow_tag")
        if self.break_even_error is not None:
            break_even: list[dict[str, Any]] = [{"error": self.break_even_error}]
        else:
            break_even = records(finish_break_even(pd.concat(self.break_even_parts)), "workflow_tag")
        return {
            "requests_covered": self.covered,
            "requests_kept_recorded_cache": self.kept,
            "by_workflow": records(table, "workflow_tag"),
            "by_rule": self.rules_report(),
            "ttl_break_even": break_even,
            "note": NOTE,
        }


def records(table: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    """Rows of a summary table as JSON-ready dicts (counts as ints, money rounded to 6 decimals)."""
    out = []
    for label, row in table.iterrows():
        rec: dict[str, Any] = {key: str(label)}
        for col, value in row.items():
            if isinstance(value, (float, np.floating)) and not str(col).endswith(("_usd", "_rate", "_hours")):
                rec[col] = int(value) if np.isfinite(value) else None
            elif isinstance(value, (float, np.floating)):
                rec[col] = round(float(value), 6) + 0.0 if np.isfinite(value) else None
            elif isinstance(value, (int, np.integer, bool, np.bool_)):
                rec[col] = int(value)
            else:
                rec[col] = value
        out.append(rec)
    return out
