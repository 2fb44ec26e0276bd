"""Streaming engine: replay traffic of any size in bounded memory, same summary.json as :func:`simulator.api.run`.

Two passes over time-ordered chunks (:class:`simulator.engines.chunks.Stream`):

1. facts the replay needs globally: model vocabulary, traffic window, failure counts per (model, 5-minute bucket,
   status), exact latency-fit sums per model (medians from a disk spill when the fit falls back), duplicate ids,
   token-calibration rows (prompt rows only), eval workflow counts;
2. per chunk: the stateless replay (:func:`simulator.core.simulate` without budgets and rate limits) and then
   rate limits and budgets with their state carried across chunks (:func:`simulator.state.kernels.rate_limit_step`,
   :func:`simulator.state.kernels.budget_step`; slot ids from a growing key -> slot dict). Aggregates accumulate: counts,
   per-label and per-block sums (``np.add.at`` adds in row order, as ``np.bincount`` does, so these are bit-equal),
   latencies spilled to disk for exact p50/p95 (:mod:`simulator.engines.quantiles`).

Memory: one chunk and its outcomes, plus per-slot, per-label and per-block state, plus the duplicate-id set
(8-11 bytes per request). Totals are summed per chunk, so money totals can differ from the in-memory engine in the
last bits (float addition order); with a single chunk they are identical.

Not streamed (raise :class:`~simulator.errors.ScenarioError`): ``prompt_caching`` candidates. With eval samples and
prompt text in the traffic, the (workflow_tag, prompt) pairs are kept in memory for the covariate-shift weights.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import numpy as np
import pandas as pd

from simulator.state import kernels

from simulator.summary import metrics
from simulator.evals.policy import accuracy_from_moves, load_evals
from simulator.api import (SCHEMA_VERSION, _catalog, alias_drift, alias_drift_sums, research_curves,
                           resolve_candidates)
from simulator.summary import intervals
from simulator.summary.fidelity import finish_policy, policy_interval
from simulator.summary.moves import accuracy_moves, add_moves, empty_moves, moves_from_outcome
from simulator.engines.chunks import Stream
from simulator.engines.quantiles import SpillQuantiles
from simulator.errors import ScenarioError
from simulator.summary.exact_sums import LatencySums
from simulator.routing.matching import match
from simulator.core import (_FAIL_BUCKET_NS, Outcome, Prepared, _block, _decider, _serve_from,
                              apply_rate_limit_actions, budget_fallbacks, budget_matches,
                              budget_window, check_candidate_targets, rate_window, simulate)
from simulator.routing.scenario import Scenario, load_scenario
from simulator.io.traffic import Traffic
from simulator.tokens.translator import Translator

_EMPTY_REJECTS = pd.DataFrame(columns=["source", "row", "request_id", "reason"])


@dataclasses.dataclass
class StreamResult:
    """What a streamed run produced: the summary (summary.json) and the row counts."""

    scenario: Scenario
    summary: dict[str, Any]
    rows_read: int
    rows_rejected: int

    @property
    def gates_passed(self) -> bool:
        return all(g["passed"] for p in self.summary["policies"] for g in p["gates"])


class Vocabulary:
    """The global model vocabulary (sorted models seen, then targets in the order they are named)."""

    def __init__(self, models: list[str], catalog, ts_min: int, n: int) -> None:
        self.vocab = sorted(models)
        self._code = {m: i for i, m in enumerate(self.vocab)}
        self.catalog = catalog
        self.ts = np.array([ts_min], dtype=np.int64)
        self.n = n

    code = Prepared.code


class ChunkPrepared(Prepared):
    """:class:`Prepared` over one chunk, with codes, failure rates and the latency fit of the whole traffic."""

    def __init__(self, traffic: Traffic, shared: Vocabulary, facts: dict, seed: int, outages) -> None:
        self.shared = shared
        self.__dict__["failure_buckets"] = facts["failure_buckets"]
        self.__dict__["latency_model"] = facts["latency_model"]
        super().__init__(traffic, shared.catalog, seed, tuple(outages))

    def __post_init__(self) -> None:
        self.vocab, self._code = self.shared.vocab, self.shared._code  # shared: targets extend it for all chunks
        f = self.traffic.frame
        self.n = len(f)
        from simulator.routing.matching import RequestView

        self.view = RequestView(f)
        self.ts = f["timestamp"].array.asi8.copy()
        self.model = pd.Index(self.vocab).get_indexer(f["model"].to_numpy(dtype=object)).astype(np.int64)
        self.inp = f["input_tokens"].to_numpy(np.int64)
        self.out = f["output_tokens"].to_numpy(np.int64)
        self.cr = f["cache_read_tokens"].to_numpy(np.int64)
        self.cw = f["cache_write_tokens"].to_numpy(np.int64)
        self.cw1h = f["cache_write_1h_tokens"].to_numpy(np.int64)
        self.status = f["status_code"].to_numpy(np.int64)
        self.latency = f["latency_ms"].to_numpy(np.float64)
        self.recorded_cost = f["cost_usd"].to_numpy(np.float64)
        self.baseline_cost = np.where(
            self.status >= 400, 0.0, self.price(self.model, self.inp, self.out, self.cr, self.cw, self.cw1h))


# -- pass 1 ---------------------------------------------------------------------------------------------------
def _facts(stream: Stream, scenario: Scenario, translator_registry, want_prompts: bool, spill_dir: str) -> dict:
    models: set[str] = set()
    ts_min, ts_max, n = None, None, 0
    fail_n: dict[tuple[str, int], list[int]] = {}
    fail_status: dict[tuple[str, int, int], int] = {}
    lat: dict[str, LatencySums] = {}
    lat_spill: dict[str, SpillQuantiles] = {}
    calib: list[tuple] = []
    prompts: list[pd.DataFrame] = []
    workflows: dict[str, int] = {}
    drift_sums: list[pd.DataFrame] = []
    for f in stream:
        n += len(f)
        model = f["model"].to_numpy(dtype=object)
        models.update(pd.unique(model))
        ts = f["timestamp"].array.asi8
        ts_min = int(ts[0]) if ts_min is None else ts_min
        ts_max = int(ts[-1])
        status = f["status_code"].to_numpy(np.int64)
        failed = status >= 400
        frame = pd.DataFrame({"m": model, "b": ts // _FAIL_BUCKET_NS, "f": failed, "s": status})
        for (m, b), (cnt, fails) in frame.groupby(["m", "b"], sort=False)["f"].agg(["size", "sum"]).iterrows():
            acc = fail_n.setdefault((m, int(b)), [0, 0])
            acc[0] += int(cnt)
            acc[1] += int(fails)
        for (m, b, s), cnt in frame[failed].groupby(["m", "b", "s"], sort=False).size().items():
            fail_status[(m, int(b), int(s))] = fail_status.get((m, int(b), int(s)), 0) + int(cnt)
        drift_sums.append(alias_drift_sums(f["requested_model"].to_numpy(dtype=object), model, ts,
                                           f["input_tokens"].to_numpy(np.int64), f["output_tokens"].to_numpy(np.int64),
                                           status))
        latency = f["latency_ms"].to_numpy(np.float64)
        ok = ~failed & np.isfinite(latency)
        out_tokens = f["output_tokens"].to_numpy(np.int64)
        for m in pd.unique(model[ok]):
            sel = ok & (model == m)
            lat.setdefault(m, LatencySums()).add(out_tokens[sel], latency[sel])
            lat_spill.setdefault(m, SpillQuantiles(spill_dir)).add(latency[sel])
        if f["prompt"].notna().any():
            calib.append(_calibration_rows(f, translator_registry))
            if want_prompts:
                prompts.append(f[["workflow_tag", "prompt"]].dropna())
        wf = f["workflow_tag"].to_numpy(dtype=object)
        for tag, cnt in pd.Series(np.where(pd.isna(wf), metrics.UNTAGGED, wf)).value_counts(sort=False).items():
            workflows[tag] = workflows.get(tag, 0) + int(cnt)
    vocab = sorted(models)
    code = {m: i for i, m in enumerate(vocab)}
    buckets: dict[tuple[int, int], tuple[float, int]] = {}
    best: dict[tuple[str, int], tuple[int, int]] = {}
    for (m, b, s), cnt in sorted(fail_status.items()):
        if (m, b) not in best or cnt > best[(m, b)][0]:
            best[(m, b)] = (cnt, s)
    for (m, b), (cnt, fails) in fail_n.items():
        if fails:
            buckets[(code[m], b)] = (fails / cnt, best[(m, b)][1])
    latency_model = {}
    for m, sums in sorted(lat.items()):
        median = lat_spill[m].percentiles([50])[0] if sums.needs_median else None
        latency_model[code[m]] = sums.fit(median)
    for spill in lat_spill.values():
        spill.close()
    return {"models": vocab, "ts_min": ts_min, "ts_max": ts_max, "n": n, "failure_buckets": buckets,
            "latency_model": latency_model, "calibration_rows": calib,
            "prompts": pd.concat(prompts) if prompts else None, "workflows": workflows,
            "drift": alias_drift(pd.concat(drift_sums)) if drift_sums else None}


def _calibration_rows(df: pd.DataFrame, registry) -> tuple:
    """The per-row inputs :func:`simulator.tokens.calibrate_from_traffic` fits on, for one chunk."""
    from simulator.tokens.calibration import (REFERENCE_TOKENIZER, calibration_families, classify_content,
                                              count_tokens)

    families = calibration_families(df, registry)
    rows = pd.notna(families)
    prompts = df["prompt"].to_numpy(dtype=object)[rows]
    reference = count_tokens(registry.get(REFERENCE_TOKENIZER), prompts, None) if rows.any() else np.zeros(0)
    return (families[rows].astype(str), classify_content(prompts) if rows.any() else np.zeros(0, dtype=object),
            np.asarray(reference), df["input_tokens"].to_numpy(dtype=np.int64)[rows])


def _calibration(rows: list[tuple]):
    from simulator.tokens.calibration import MIN_ROWS, SOURCE_TRAFFIC, Calibration, _fit_groups

    if not rows or not sum(len(r[0]) for r in rows):
        return Calibration()
    parts = [np.concatenate([np.asarray(r[i]) for r in rows]) for i in range(4)]
    return Calibration(_fit_groups(parts[0], parts[1], parts[2], parts[3], SOURCE_TRAFFIC, MIN_ROWS))


# -- carried state ----------------------------------------------------------------------------------------------
def _joined(p: Prepared, applies_per: list[str], rows: np.ndarray) -> np.ndarray:
    """Slot key text per row, as :func:`simulator.core._slot_keys` builds it before factorising."""
    if not applies_per:
        return np.full(len(rows), "", dtype=object)
    parts = [np.asarray(p.view.applies_per(spec)[rows], dtype=object).astype(str) for spec in applies_per]
    joined = parts[0] if len(parts) == 1 else np.char.add(np.char.add(parts[0], "\x1f"), parts[1])
    return joined.astype(object)


class _Slots:
    """Stable slot ids across chunks: (rule, key text) -> slot, with per-slot float/int state arrays."""

    def __init__(self, **arrays: tuple[type, float]) -> None:
        self.ids: dict[tuple[int, str], int] = {}
        self.names: list[tuple[int, str, str]] = []  # (rule, key text, first label)
        self.spec = arrays
        for name, (dtype, fill) in arrays.items():
            setattr(self, name, np.full(0, fill, dtype=dtype))

    def get(self, rule: int, keys: np.ndarray, labels: np.ndarray) -> np.ndarray:
        codes, uniques = pd.factorize(keys)
        first = np.zeros(len(uniques), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        ids = np.empty(len(uniques), dtype=np.int64)
        for u, key in enumerate(uniques):
            slot = self.ids.get((rule, key))
            if slot is None:
                slot = self.ids[(rule, key)] = len(self.names)
                self.names.append((rule, key, str(labels[first[u]])))
            ids[u] = slot
        grow = len(self.names) - len(next(iter(vars(self)[n] for n in self.spec)))
        if grow > 0:
            for name, (dtype, fill) in self.spec.items():
                setattr(self, name, np.concatenate([getattr(self, name), np.full(grow, fill, dtype=dtype)]))
        return ids[codes]

    def order(self) -> list[int]:
        """Slots in the in-memory report order: rule, then key text sorted."""
        return sorted(range(len(self.names)), key=lambda s: (self.names[s][0], self.names[s][1]))


class RateLimitState:
    def __init__(self, cand) -> None:
        self.slots = _Slots(used=(np.float64, 0.0), current=(np.int64, -1))
        self.report = [{"limited": 0, "blocked": 0, "rerouted": 0, "avoided": 0.0} for _ in cand.rate_limits]

    def apply(self, p: Prepared, o: Outcome, cand, translator) -> None:
        slot = np.full(p.n, -1, dtype=np.int64)
        window = np.zeros(p.n, dtype=np.int64)
        amount = np.zeros(p.n, dtype=np.float64)
        limit = np.zeros(p.n, dtype=np.float64)
        has_fb = np.zeros(p.n, dtype=bool)
        rule_of = np.full(p.n, -1, dtype=np.int64)
        live = ~o.blocked
        for r_i, rule in enumerate(cand.rate_limits):
            rows = np.flatnonzero(match(p.view, rule.when) & (rule_of < 0) & live)
            if len(rows) == 0:
                continue
            keys = _joined(p, rule.rate_limit_applies_per, rows)
            slot[rows] = self.slots.get(r_i, keys, keys)
            rule_of[rows] = r_i
            window[rows] = rate_window(p.ts[rows], rule.unit)
            amount[rows] = (o.input_tokens[rows] + o.output_tokens[rows]) if rule.unit.startswith("tokens") else 1.0
            limit[rows] = rule.limit_to
            has_fb[rows] = rule.fallback is not None
        action = kernels.rate_limit_step(slot, window, amount, limit, has_fb, self.slots.used, self.slots.current)
        for rep, got in zip(self.report, apply_rate_limit_actions(p, o, cand, rule_of, action, translator)):
            rep["limited"] += got["requests_limited"]
            rep["blocked"] += got["requests_blocked"]
            rep["rerouted"] += got["requests_rerouted"]
            rep["avoided"] += got["spend_avoided_usd"]

    def rows(self, cand) -> list[dict[str, Any]]:
        return [{"id": rule.id, "requests_limited": r["limited"], "requests_blocked": r["blocked"],
                 "requests_rerouted": r["rerouted"], "spend_avoided_usd": round(r["avoided"], 6)}
                for rule, r in zip(cand.rate_limits, self.report)]


class BudgetState:
    def __init__(self) -> None:
        self.slots = _Slots(spent=(np.float64, 0.0), current=(np.int64, -1), reached_at=(np.int64, -1),
                            reached_ts=(np.int64, -1), blocked=(np.int64, 0), rerouted=(np.int64, 0),
                            avoided=(np.float64, 0.0))
        self.rows_done = 0

    def apply(self, p: Prepared, o: Outcome, cand, translator) -> None:
        budgets = cand.budgets
        live = ~o.blocked
        masks = [match(p.view, b.when) & live for b in budgets]
        rule_slots = []
        for b_i, (b, mask) in enumerate(zip(budgets, masks)):
            rows = np.flatnonzero(mask)
            keys = np.full(p.n, -1, dtype=np.int64)
            if len(rows):
                labels = (np.asarray(p.view.applies_per(b.budget_applies_per[0])[rows], dtype=object)
                          if b.budget_applies_per else np.array(["*"] * len(rows), dtype=object))
                keys[rows] = self.slots.get(b_i, _joined(p, b.budget_applies_per, rows), labels)
            rule_slots.append(keys)
        s = self.slots
        csr = budget_matches(p, budgets, masks, rule_slots)
        fallback_cost, fallback_tokens, subs = budget_fallbacks(p, o, cand, csr.fallback_rule, translator)
        ptr, m_slot = csr.ptr, csr.slot
        tokens = (o.input_tokens + o.output_tokens).astype(np.float64)
        cost_now = np.where(o.blocked, 0.0, o.cost_usd)
        action = kernels.budget_step(ptr, m_slot, csr.window, csr.limit, csr.audit, csr.has_fallback, cost_now,
                                     fallback_cost, tokens, fallback_tokens, csr.tokens, s.spent, s.current,
                                     s.reached_at, self.rows_done)
        blocked_rows = np.flatnonzero(action == kernels.BLOCK)
        fb_rows = np.flatnonzero(action == kernels.FALLBACK)
        decider = _decider(ptr, m_slot)
        np.add.at(s.blocked, decider[blocked_rows], 1)
        np.add.at(s.avoided, decider[blocked_rows], o.cost_usd[blocked_rows])
        np.add.at(s.avoided, decider[fb_rows], o.cost_usd[fb_rows] - fallback_cost[fb_rows])
        np.add.at(s.rerouted, decider[fb_rows], 1)
        for rows, sub, cost in subs.values():
            take = np.isin(rows, fb_rows)
            if take.any():
                _serve_from(o, sub, rows[take], cost[take])
                o.latency_ms[rows[take]] = p.estimate_latency(o.model[rows[take]], o.output_tokens[rows[take]])
        _block(o, blocked_rows, 429)
        new = (s.reached_at >= self.rows_done) & (s.reached_ts < 0)
        s.reached_ts[new] = p.ts[s.reached_at[new] - self.rows_done]
        self.rows_done += p.n

    def rows(self, cand) -> list[dict[str, Any]]:
        s = self.slots
        out = []
        for slot in s.order():
            b_i, _, label = s.names[slot]
            b = cand.budgets[b_i]
            reached = int(s.reached_ts[slot])
            out.append({
                "id": b.id, "key": label if label != "*" else None, "limit_to": b.limit_to, "unit": b.unit,
                "ceiling_reached_at": pd.Timestamp(reached, tz="UTC").isoformat() if reached >= 0 else None,
                "requests_blocked": int(s.blocked[slot]), "requests_rerouted": int(s.rerouted[slot]),
                "spend_avoided_usd": round(float(s.avoided[slot]), 6), "audit_mode": b.audit_mode,
            })
        return out


# -- aggregates -------------------------------------------------------------------------------------------------
class _Labels:
    """Per-label sums accumulated in row order (bit-equal to ``np.bincount`` over the whole table)."""

    def __init__(self, width: int) -> None:
        self.ids: dict[Any, int] = {}
        self.sums = np.zeros((0, width))

    def codes(self, keys: np.ndarray) -> np.ndarray:
        codes, uniques = pd.factorize(keys)
        ids = np.array([self.ids.setdefault(u, len(self.ids)) for u in uniques], dtype=np.int64)
        if len(self.ids) > len(self.sums):
            self.sums = np.vstack([self.sums, np.zeros((len(self.ids) - len(self.sums), self.sums.shape[1]))])
        return ids[codes]

    def add(self, codes: np.ndarray, column: int, weights: np.ndarray) -> None:
        col = np.ascontiguousarray(self.sums[:, column])
        np.add.at(col, codes, weights)
        self.sums[:, column] = col

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        labels = np.array(list(self.ids), dtype=object)
        order = np.argsort(labels, kind="stable") if len(labels) else np.zeros(0, np.int64)
        return labels[order], self.sums[order]


class Aggregates:
    """Everything one outcome contributes to summary.json, accumulated chunk by chunk."""

    def __init__(self, premium: set[str], spill_dir: str) -> None:
        self.premium = premium
        self.n = self.errors = self.premium_requests = 0
        self.cost = self.premium_cost = self.savings = 0.0
        self.latency = SpillQuantiles(spill_dir)
        self.blocks = _Labels(1)
        self.counts: dict[str, int] = {}
        self.translation: dict[str, int] = {}
        self.moves = empty_moves()

    def add(self, p: Prepared, o: Outcome, base_cost: np.ndarray | None, block: np.ndarray | None,
            moves: pd.DataFrame | None = None) -> None:
        vocab = np.array(p.vocab, dtype=object)
        is_premium = np.isin(vocab, list(self.premium))[o.model] & ~o.blocked
        self.n += p.n
        self.cost += float(o.cost_usd.sum())
        self.errors += int((o.status >= 400).sum())
        self.premium_requests += int(is_premium.sum())
        self.premium_cost += float(o.cost_usd[is_premium].sum())
        self.latency.add(np.where(o.blocked, np.nan, o.latency_ms))
        if base_cost is None:
            return
        savings = base_cost - o.cost_usd
        self.savings += float(savings.sum())
        self.blocks.add(block, 0, savings)
        for k, v in o.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        methods, counts = np.unique(o.translation[o.changed].astype(str), return_counts=True)
        for m, c in zip(methods, counts):
            self.translation[str(m)] = self.translation.get(str(m), 0) + int(c)
        if moves is not None:
            self.moves = add_moves([self.moves, moves])

    def stats(self) -> dict[str, Any]:
        p50, p95 = self.latency.percentiles([50, 95])
        self.latency.close()
        return {
            "cost_usd": self.cost,
            "error_rate": round(self.errors / self.n, 6) if self.n else 0.0,
            "latency_p50_ms": round(p50, 3) if p50 is not None else None,
            "latency_p95_ms": round(p95, 3) if p95 is not None else None,
            "premium_share_requests": round(self.premium_requests / self.n, 6) if self.n else 0.0,
            "premium_share_cost": round(float(self.premium_cost / self.cost), 6) if self.cost else 0.0,
        }


# -- the run ----------------------------------------------------------------------------------------------------
def run_streaming(scenario: Scenario | str, *, traffic=None, evals=None, chunk_rows: int = 1_000_000,
                  spill_dir: str | None = None) -> StreamResult:
    """Replay the scenario's traffic chunk by chunk; ``summary`` matches :func:`simulator.api.run`'s.

    ``chunk_rows``: rows per chunk read (memory is about chunk_rows x candidates x ~200 bytes plus state);
    ``spill_dir``: where latency values are spilled for exact percentiles (default: the system temp folder).
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    candidates = resolve_candidates(scenario)
    for cand in candidates:
        if cand.prompt_caching:
            raise ScenarioError(f"candidate '{cand.name}': prompt_caching is not supported by the streaming engine "
                                f"yet. Use --engine local, or remove prompt_caching from this candidate.")
    if scenario.bootstrap.unit == "session":
        raise ScenarioError("bootstrap.unit: session is not supported by the streaming engine (sessions span "
                            "chunks). Use unit: hour or day, or --engine local.")
    catalog = _catalog(scenario)
    paths = list(traffic) if traffic else scenario.paths("traffic")
    eval_paths = list(evals) if evals else scenario.paths("evals")
    stream = Stream(paths, adapter=scenario.adapter, mapping=scenario.columns or None, timezone=scenario.timezone,
                    chunk_rows=chunk_rows)
    with tempfile.TemporaryDirectory(dir=spill_dir, prefix="tfysim-spill-") as spill:
        return _run(scenario, candidates, catalog, stream, eval_paths, spill)


def _run(scenario, candidates, catalog, stream, eval_paths, spill) -> StreamResult:
    translator = None
    registry_translator = Translator(scenario, _EmptyPrepared())
    facts = _facts(stream, scenario, registry_translator.registry, bool(eval_paths), spill)
    shared = Vocabulary(facts["models"], catalog, facts["ts_min"], facts["n"])
    for cand in candidates:
        check_candidate_targets(shared, cand)
    eval_data = load_evals(eval_paths, shared) if eval_paths else None
    premium = metrics.premium_models(shared, scenario.premium_models)
    translator = registry_translator
    translator.__dict__["calibration"] = _calibration(facts["calibration_rows"])
    block_ns = intervals.BLOCK_NS  # per-minute savings sums: summary.intervals builds its blocks from them
    base_agg = Aggregates(premium, spill)
    aggs = [Aggregates(premium, spill) for _ in candidates]
    breakdowns = {by: _Labels(2 + 2 * len(candidates)) for by in metrics.BREAKDOWNS}
    rl_states = [RateLimitState(c) for c in candidates]
    budget_states = [BudgetState() for _ in candidates]
    recorded = 0.0
    has_recorded = False
    for f in stream:
        t = Traffic(f, _EMPTY_REJECTS, len(f), [])
        p = ChunkPrepared(t, shared, facts, scenario.seed, scenario.outages)
        translator.p = p
        translator.prompts = f["prompt"].to_numpy(dtype=object)
        vocab = np.array(p.vocab, dtype=object)
        finite = np.isfinite(p.recorded_cost)
        has_recorded |= bool(finite.any())
        recorded += float(np.nansum(p.recorded_cost))
        block = (p.ts - facts["ts_min"]) // block_ns
        base = _identity(p)
        base_agg.add(p, base, None, None)
        codes = {}
        for by in metrics.BREAKDOWNS:
            if by == "model":
                keys = vocab[base.model]
            else:
                keys = f[by].to_numpy(dtype=object)
                keys = np.where(pd.isna(keys), metrics.UNTAGGED, keys)
            codes[by] = breakdowns[by].codes(keys)
            breakdowns[by].add(codes[by], 0, np.ones(p.n))
            breakdowns[by].add(codes[by], 1, base.cost_usd)
        for k, cand in enumerate(candidates):
            stateless = cand.model_copy(update={"rate_limits": [], "budgets": []})
            o = simulate(p, stateless, translator, None)
            if cand.rate_limits:
                rl_states[k].apply(p, o, cand, translator)
            if cand.budgets:
                budget_states[k].apply(p, o, cand, translator)
            o.counts = {
                "requests_changed": int(o.changed.sum()), "requests_blocked": int(o.blocked.sum()),
                "fallbacks": int(o.fallback.sum()),
                "failed_attempts": int((o.attempts - (o.status < 400)).clip(min=0).sum()),
                "retries": int(o.retries.sum()), "still_failing": int(((o.status >= 400) & ~o.blocked).sum()),
            }
            block_codes = aggs[k].blocks.codes(block)
            aggs[k].add(p, o, base.cost_usd, block_codes, moves_from_outcome(p, o, base.cost_usd, translator, cand.name))
            for by in metrics.BREAKDOWNS:
                breakdowns[by].add(codes[by], 2 + 2 * k, o.cost_usd)
                breakdowns[by].add(codes[by], 3 + 2 * k, o.changed.astype(np.float64))
    days = max(float(facts["ts_max"] - facts["ts_min"]), 1e9) / metrics._NS_PER_DAY
    before = base_agg.stats()
    tables = {by: breakdowns[by].sorted() for by in metrics.BREAKDOWNS}
    policies = []
    for k, cand in enumerate(candidates):
        policies.append(_policy(scenario, cand, aggs[k], before, base_agg, days, tables, k, rl_states[k],
                                budget_states[k], facts, eval_data, translator))
    ts_min, ts_max = (pd.Timestamp(facts[x], tz="UTC").isoformat() for x in ("ts_min", "ts_max"))
    counts = {"rows_read": stream.rows_read, "rows_replayed": stream.rows_replayed,
              "rows_rejected": stream.rows_rejected}
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "traffic": {**counts, "start": ts_min, "end": ts_max, "days": round(days, 6)},
        "baseline": {
            "requests": facts["n"],
            "cost_usd": metrics.r6(base_agg.cost),
            "recorded_cost_usd": metrics.r6(recorded) if has_recorded else None,
            "monthly_cost_usd": metrics.r6(base_agg.cost * metrics.MONTH_DAYS / max(days, 1e-9)),
            **{k: v for k, v in before.items() if k != "cost_usd"},
            "premium_models": sorted(premium),
            "breakdowns": {by: _breakdown(by, tables[by], None) for by in metrics.BREAKDOWNS},
        },
        "policies": policies,
    }
    if facts["drift"]:
        summary["drift"] = facts["drift"]
    if eval_data is not None:
        summary["evals"] = {"rows_read": eval_data.rows_read, "rows_loaded": eval_data.rows_loaded,
                            "rows_rejected": eval_data.rows_rejected}
        curves = research_curves([accuracy_moves(agg.moves) for agg in aggs], eval_data.samples)
        if curves:
            summary["accuracy"] = curves
    return StreamResult(scenario, metrics.clean(summary), stream.rows_read, stream.rows_rejected)


def _breakdown(by: str, table, k: int | None) -> list[dict[str, Any]]:
    labels, sums = table
    requests = sums[:, 0].astype(np.int64)
    if k is None:
        return metrics.breakdown_rows(by, labels, requests, sums[:, 1])
    return metrics.breakdown_rows(by, labels, requests, sums[:, 1], sums[:, 2 + 2 * k], sums[:, 3 + 2 * k])


class _EmptyPrepared:
    """Stands in for a Prepared when the Translator is built before any chunk (it only reads prompts)."""

    traffic = Traffic(pd.DataFrame({"prompt": pd.Series([], dtype=object)}), _EMPTY_REJECTS, 0, [])


def _identity(p: Prepared) -> Outcome:
    from simulator.core import identity_outcome

    return identity_outcome(p)


def _policy(scenario, cand, agg: Aggregates, before, base_agg: Aggregates, days: float, tables, k: int,
            rl_state: RateLimitState, budget_state: BudgetState, facts, eval_data, translator=None) -> dict[str, Any]:
    after = agg.stats()
    base_total = base_agg.cost
    labels, sums = agg.blocks.sorted()
    c = agg.counts
    interval = policy_interval(labels.astype(np.int64), sums[:, 0], facts["ts_min"], facts["ts_max"], scenario,
                               agg.moves, translator)
    policy = metrics.policy_record(
        cand.name, facts["n"], agg.cost, base_total, days,
        interval["monthly_savings_ci95"] if facts["n"] else [0.0, 0.0], c, before, after, agg.translation)
    policy.update({
        "budgets": budget_state.rows(cand) if cand.budgets else [],
        "rate_limits": rl_state.rows(cand) if cand.rate_limits else [],
        "breakdowns": {by: _breakdown(by, tables[by], k) for by in metrics.BREAKDOWNS},
    })
    if eval_data is not None:
        traffic = (pd.Series(facts["workflows"]).sort_values(ascending=False, kind="stable")
                   .rename_axis("workflow_tag").reset_index(name="requests"))
        policy.update(accuracy_from_moves(accuracy_moves(agg.moves), traffic, facts["prompts"], cand, eval_data,
                                          scenario))
    gates = metrics.candidate_gates(scenario, cand)
    policy["gates"] = metrics.evaluate_gates(policy, gates, before)
    by_model = {r["model"]: r["requests"] for r in _breakdown("model", tables["model"], None)}
    return finish_policy(policy, moves=agg.moves, interval=interval, candidate=cand, days=days,
                         candidate_cost_usd=agg.cost, base_cost_usd=base_total, recorded_requests_by_model=by_model,
                         evaluate_gates=lambda rec: metrics.evaluate_gates(rec, gates, before))
