"""The one replay core: ``replay_chunk(chunk, candidate, state) -> outcome``.

Every engine drives this function. The local engine replays the whole table as one chunk (or as slices of it), the
streaming engine replays successive time-ordered chunks read from disk, the Dask engine replays partitions that
hold whole state components. What a request's replay depends on besides its own row is either global
(:class:`simulator.facts.Facts`, shared through :class:`Context`) or carried in :class:`CandidateState`
(budget spend, rate-limit windows, prompt-cache tables), so a chunked replay equals a replay of the whole table.

Order of a replay, per candidate (each step documented in the README's "Semantics" section):

1. routing rules, first match wins; weighted targets by a seeded hash of request_id (or session_id when sticky);
2. failures of the chosen target (declared outages, else the target's failure rate observed in the same
   5-minute bucket), retries on the same target, then fallbacks in priority / weight order
   (:mod:`simulator.routing.assign`);
3. token translation for requests that changed model, cold cache (recorded cache reads become plain input)
   unless prompt caching is simulated (:mod:`simulator.state.cache_replay`);
4. pricing at each request's timestamp;
5. rate limits, then budget ceilings, in time order (:mod:`simulator.state.rate_limits`,
   :mod:`simulator.state.budgets`).

Requests that match no rule, or whose target is the model they were recorded on, keep their recorded outcome
exactly, so a candidate identical to the recorded routing saves exactly 0.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, Callable

import numpy as np
import pandas as pd

from simulator.facts import Facts, facts_of
from simulator.io.traffic import Traffic
from simulator.pricing.catalog import Catalog
from simulator.hashing import hash64, uniform
from simulator.pricing.tiers import TIER_CODE
from simulator.routing.assign import route_rule
from simulator.routing.fallbacks import composition_rule, compositions, covers
from simulator.routing.matching import RequestView, match
from simulator.routing.scenario import Candidate, Outage
from simulator.routing.tiers import TierSettings, assign_tiers, window_latency
from simulator.state.budgets import BudgetState
from simulator.state.rate_limits import RateLimitState
from simulator.tokens.translate import has_text
from simulator.tokens.translator import TRANSLATION_CODE, TRANSLATIONS
from simulator.summary.privacy import attribution_labels

__all__ = ["CandidateState", "Chunk", "Context", "Outcome", "Prepared", "check_candidate_targets",
           "identity_outcome", "replay_chunk", "simulate"]


class Context:
    """What every chunk and candidate of one run share: the catalog, the global facts and the model vocabulary
    (models seen, then targets in the order candidates name them; ``vocab`` starts from a given one, e.g. a Dask
    client's complete vocabulary, so codes agree across workers), the seed, declared outages, the translator."""

    def __init__(self, catalog: Catalog, facts: Facts, *, seed: int = 0, outages: tuple[Outage, ...] = (),
                 translator=None, cache_rules=None, tiers: TierSettings | None = None,
                 vocab: list[str] | None = None) -> None:
        self.catalog = catalog
        self.tiers = tiers or TierSettings()
        self.facts = facts
        self.seed = seed
        self.outages = tuple(outages)
        self.translator = translator
        self.vocab: list[str] = list(facts.models)
        catalog.check_known(self.vocab)  # every unknown model of the traffic in one message
        if vocab is not None:
            self.vocab[:] = vocab
        self._code = {m: i for i, m in enumerate(self.vocab)}
        self._failure_tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cache_rules = cache_rules

    def code(self, model_id: str) -> int:
        """Integer code of a model id, extending the vocabulary with targets not seen in traffic."""
        if model_id not in self._code:
            self.catalog.resolve(model_id)  # unknown targets fail early with the catalog's message
            self._code[model_id] = len(self.vocab)
            self.vocab.append(model_id)
        return self._code[model_id]

    @property
    def cache_rules(self):
        if self._cache_rules is None:
            from simulator.state.caching.rules import CacheRules

            self._cache_rules = CacheRules.load()
        return self._cache_rules

    @property
    def latency_model(self) -> dict[int, tuple[float, float]]:
        return self.facts.latency_model

    def failure_table(self, code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted 5-minute buckets, failure rate, failure status) observed for one model, for vectorised lookup."""
        if code not in self._failure_tables:
            items = sorted((b, v) for (c, b), v in self.facts.failure_buckets.items() if c == code)
            self._failure_tables[code] = (np.array([b for b, _ in items], dtype=np.int64),
                                          np.array([v[0] for _, v in items], dtype=np.float64),
                                          np.array([v[1] for _, v in items], dtype=np.int64))
        return self._failure_tables[code]

    def estimate_latency(self, codes: np.ndarray, out_tokens: np.ndarray) -> np.ndarray:
        est = np.full(len(codes), np.nan)
        for code, (base, per_token) in self.latency_model.items():
            sel = codes == code
            est[sel] = base + per_token * out_tokens[sel]
        return est


class Chunk:
    """One time-ordered slice of the canonical traffic table as arrays, with the run's model codes."""

    def __init__(self, traffic: Traffic | pd.DataFrame, ctx: Context) -> None:
        if isinstance(traffic, pd.DataFrame):
            traffic = Traffic(traffic, pd.DataFrame(columns=["source", "row", "request_id", "reason"]),
                              len(traffic), [])
        self.traffic = traffic
        self.ctx = ctx
        f = self.frame = traffic.frame
        self.n = len(f)
        self.view = RequestView(f)
        self._fail_hash: np.ndarray | None = None  # request_hash per row, filled as rows ask
        self._fail_known: np.ndarray | None = None
        self._shared: dict[Callable, Any] = {}
        self.ts = f["timestamp"].array.asi8.copy() if self.n else np.zeros(0, np.int64)
        self.model = codes_in(f["model"], ctx.vocab)
        # contiguous: a column the input lacks is one repeated value in the table (stride 0), not per row here
        self.inp = np.ascontiguousarray(f["input_tokens"].to_numpy(np.int64))
        self.out = np.ascontiguousarray(f["output_tokens"].to_numpy(np.int64))
        self.cr = np.ascontiguousarray(f["cache_read_tokens"].to_numpy(np.int64))
        self.cw = np.ascontiguousarray(f["cache_write_tokens"].to_numpy(np.int64))
        self.cw1h = np.ascontiguousarray(f["cache_write_1h_tokens"].to_numpy(np.int64))
        self.status = np.ascontiguousarray(f["status_code"].to_numpy(np.int64))
        self.latency = np.ascontiguousarray(f["latency_ms"].to_numpy(np.float64))
        self.recorded_cost = np.ascontiguousarray(f["cost_usd"].to_numpy(np.float64))
        # Failed attempts (status >= 400) bill nothing: providers do not charge for them.
        self.baseline_cost = np.where(
            self.status >= 400, 0.0, self.price(self.model, self.inp, self.out, self.cr, self.cw, self.cw1h))

    # the run's shared facts, reachable from a chunk
    catalog = property(lambda self: self.ctx.catalog)
    vocab = property(lambda self: self.ctx.vocab)
    seed = property(lambda self: self.ctx.seed)
    outages = property(lambda self: self.ctx.outages)
    latency_model = property(lambda self: self.ctx.latency_model)

    def code(self, model_id: str) -> int:
        return self.ctx.code(model_id)

    def failure_table(self, code: int):
        return self.ctx.failure_table(code)

    def estimate_latency(self, codes: np.ndarray, out_tokens: np.ndarray) -> np.ndarray:
        return self.ctx.estimate_latency(codes, out_tokens)

    def price(self, codes, inp, out, cr=None, cw=None, cw1h=None, rows=None, tiers=None) -> np.ndarray:
        """Cost of each row at its own timestamp (``rows`` selects the timestamps when the arrays are a subset;
        ``tiers`` the service tier per row, default tier when None)."""
        ts = self.ts if rows is None else self.ts[rows]
        return self.catalog.cost_usd_codes(codes, np.array(self.vocab, dtype=object), ts, inp, out, cr, cw, cw1h,
                                           tiers=tiers)

    def shared(self, make: Callable[[pd.DataFrame], Any]) -> Any:
        """``make(self.frame)``, made once per chunk and kept under the function itself: what every replay of the
        chunk computes alike from its rows (``simulator.control.loops.chunk_inputs`` for the kill candidates and the
        control room). The value is shared: callers must not modify it."""
        if make not in self._shared:
            self._shared[make] = make(self.frame)
        return self._shared[make]

    @cached_property
    def prompts(self) -> np.ndarray:
        return self.frame["prompt"].to_numpy(dtype=object)

    @cached_property
    def prompt_text(self) -> np.ndarray:
        """Per row: the prompt is a non-empty string (no Python objects made when no row has a prompt)."""
        if not self.frame["prompt"].notna().any():
            return np.zeros(self.n, dtype=bool)
        return has_text(self.prompts, self.n)

    @cached_property
    def failed(self) -> np.ndarray:
        return self.status >= 400

    @cached_property
    def request_uniform(self) -> np.ndarray:
        """U[0, 1) per row from (seed, request_id): weighted splits (:mod:`simulator.hashing`, the whole seed)."""
        return uniform(hash64(self.frame["request_id"], self.seed, "split"))

    @cached_property
    def session_uniform(self) -> np.ndarray:
        """U[0, 1) per row from (seed, session_id, or request_id without one): sticky weighted splits."""
        sessions = self.frame["session_id"]
        keyed = uniform(hash64(sessions, self.seed, "session"))
        alone = self.request_uniform if sessions.isna().any() else keyed
        return np.where(sessions.isna().to_numpy(), alone, keyed)

    def request_hash(self, rows: np.ndarray) -> np.ndarray:
        """64-bit hash of (seed, request_id) of ``rows``, the source of per-attempt failure draws: each row is hashed
        once per chunk, and only when a draw asks for it (a downgrade of one model hashes that model's rows only)."""
        if self._fail_hash is None:
            self._fail_hash, self._fail_known = np.zeros(self.n, np.uint64), np.zeros(self.n, bool)
        new = rows[~self._fail_known[rows]]
        if len(new):
            self._fail_hash[new] = hash64(self.frame["request_id"].take(new), self.seed, "fail")
            self._fail_known[new] = True
        return self._fail_hash[rows]


def codes_in(column: pd.Series, vocab: list[str]) -> np.ndarray:
    """Codes of a text column in ``vocab`` (-1 where absent), per distinct value for a categorical column."""
    if len(column) == 0:
        return np.zeros(0, np.int64)
    if isinstance(column.dtype, pd.CategoricalDtype):
        mapping = pd.Index(vocab).get_indexer(column.cat.categories.astype(object))
        codes = column.cat.codes.to_numpy()
        return np.where(codes >= 0, mapping[codes], -1).astype(np.int64)
    return pd.Index(vocab).get_indexer(column.to_numpy(dtype=object)).astype(np.int64)


class Prepared(Chunk):
    """A whole in-memory table as one chunk, with facts computed from the table itself (tests, small tools)."""

    def __init__(self, traffic: Traffic, catalog: Catalog, seed: int = 0, outages: tuple[Outage, ...] = ()) -> None:
        super().__init__(traffic, Context(catalog, facts_of(traffic.frame), seed=seed, outages=outages))


@dataclasses.dataclass
class Outcome:
    """Per-request result of one candidate (arrays aligned with the chunk)."""

    name: str
    model: np.ndarray  # served model code (recorded model for blocked requests)
    changed: np.ndarray  # served by another model than recorded
    routed: np.ndarray  # matched a routing rule
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cache_read_tokens: np.ndarray
    cache_write_tokens: np.ndarray
    cache_write_1h_tokens: np.ndarray
    cost_usd: np.ndarray
    status: np.ndarray
    latency_ms: np.ndarray
    blocked: np.ndarray  # budget or rate limit stopped it
    fallback: np.ndarray  # served by a fallback (routing failure, budget or rate-limit fallback)
    attempts: np.ndarray
    retries: np.ndarray
    translation_code: np.ndarray  # int8 per row, into simulator.tokens.translator.TRANSLATIONS ("" = not moved)
    imputed: np.ndarray  # recorded as failed, served here: tokens imputed from the workflow's typical request
    service_tier: np.ndarray  # int8 code per row (simulator.pricing.tiers.TIER_CODE); recorded rows: default
    tier_latency_ms: np.ndarray | None = None  # batched rows: the synchronous latency they would have had
    cache_storage_usd: np.ndarray | None = None  # storage fee of explicit caches billed per token-hour
    assumptions: list[str] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def translation(self) -> np.ndarray:
        """Per row: "", "identity", "exact", "calibrated", ... (an object array made from ``translation_code``; write
        the codes, not this)."""
        return _TRANSLATION_LABELS[self.translation_code]

    def block(self, rows: np.ndarray, status: int) -> None:
        """Refuse ``rows`` (budget or rate limit): nothing served, nothing billed."""
        self.blocked[rows] = True
        self.status[rows] = status
        self.cost_usd[rows] = 0.0
        self.latency_ms[rows] = np.nan

    def serve_from(self, sub: Outcome, rows: np.ndarray, cost: np.ndarray) -> None:
        """Serve ``rows`` as ``sub`` does (a fallback target), at ``cost``."""
        for name in ("model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                     "cache_write_1h_tokens", "translation_code", "changed", "imputed", "service_tier"):
            getattr(self, name)[rows] = getattr(sub, name)[rows]
        self.cost_usd[rows] = cost
        self.status[rows] = 200
        self.fallback[rows] = True


_TRANSLATION_LABELS = np.array(TRANSLATIONS, dtype=object)


def identity_outcome(p: Chunk, name: str = "recorded") -> Outcome:
    """The recorded outcome of every row of a chunk."""
    n = p.n
    return Outcome(
        name=name, model=p.model.copy(), changed=np.zeros(n, bool), routed=np.zeros(n, bool),
        input_tokens=p.inp.copy(), output_tokens=p.out.copy(), cache_read_tokens=p.cr.copy(),
        cache_write_tokens=p.cw.copy(), cache_write_1h_tokens=p.cw1h.copy(), cost_usd=p.baseline_cost.copy(),
        status=p.status.copy(), latency_ms=p.latency.copy(), blocked=np.zeros(n, bool), fallback=np.zeros(n, bool),
        attempts=np.ones(n, np.int64), retries=np.zeros(n, np.int64), translation_code=np.zeros(n, np.int8),
        imputed=np.zeros(n, bool), service_tier=np.zeros(n, np.int8),
    )


class CandidateState:
    """What a candidate's replay carries from one chunk to the next: rate-limit windows, budget spend, the prompt
    cache, runaway-session detection. Start one per candidate per run; pass it to every :func:`replay_chunk` of that candidate, in time order."""

    def __init__(self, cand: Candidate, ctx: Context | None = None, *, probe: bool = False) -> None:
        self.rate_limits = RateLimitState(cand) if cand.rate_limits else None
        self.budgets = BudgetState() if cand.budgets else None
        self.cache = None
        if cand.prompt_caching:
            from simulator.state.cache_replay import CacheState

            self.cache = CacheState(cand, ctx.cache_rules if ctx is not None else None, probe=probe,
                                    translator=ctx.translator if ctx is not None else None)
        self.kill = None
        if cand.kill_runaway_sessions:
            from simulator.control.loops import LoopState, kill_rule

            self.kill = LoopState(kill_rule(cand.kill_runaway_sessions), kill=True)
        self.assumptions: list[str] = []

    def merge(self, other: CandidateState) -> CandidateState:
        """Fold in the state of another partition that held other keys (the Dask engine)."""
        for name in ("rate_limits", "budgets", "cache", "kill"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None:
                mine.merge(theirs)
        return self

    def reports(self, cand: Candidate) -> dict[str, Any]:
        """The policy fields the carried state contributes: budgets, rate_limits, caching."""
        out: dict[str, Any] = {"budgets": self.budgets.report(cand) if self.budgets else [],
                               "rate_limits": self.rate_limits.report(cand) if self.rate_limits else []}
        if self.cache is not None:
            out["caching"] = self.cache.report()
        if self.kill is not None:
            from simulator.control.loops import kill_report

            out["session_kill"] = kill_report(self.kill)
        return out


def replay_chunk(p: Chunk, cand: Candidate, state: CandidateState) -> Outcome:
    """Replay one time-ordered chunk through one candidate; ``state`` carries budgets, rate limits and the prompt
    cache into the next chunk. See the module docstring for the order of steps."""
    o = route(p, cand)
    finish(p, cand, o, state)
    return o


def route(p: Chunk, cand: Candidate) -> Outcome:
    """The stateless part of a replay: routing, failures, retries and fallbacks, token translation, pricing and
    latency. Depends on nothing but the row and the run's facts, so it may run on any partition."""
    translator = p.ctx.translator
    o = identity_outcome(p, cand.name)
    if p.n == 0:
        return o
    assigned = np.zeros(p.n, dtype=bool)
    tier_rows: list[tuple[np.ndarray, str]] = []
    for rule in cand.rules:
        mask = match(p.view, rule.when) & ~assigned
        assigned |= mask
        rows = np.flatnonzero(mask)
        if len(rows) and rule.service_tier is not None:
            tier_rows.append((rows, rule.service_tier))
        _serve_rule(p, o, rule, rows)
    for rule, rows in fallback_routing(p, cand, assigned):
        _serve_rule(p, o, rule, rows)
    o.changed = o.model != p.model
    tiered = assign_tiers(p, o, tier_rows, p.ctx.tiers) if tier_rows else np.zeros(0, np.int64)
    rescued = impute_rescued(p, o)
    moved = np.flatnonzero(o.changed)
    if len(moved):
        # Cold cache: recorded cache reads and writes become plain input on the new model.
        o.cache_read_tokens[moved] = 0
        o.cache_write_tokens[moved] = 0
        o.cache_write_1h_tokens[moved] = 0
        if translator is not None:
            translator(p, o, moved, cand)
        else:
            o.translation_code[moved] = TRANSLATION_CODE["identity"]
        o.cost_usd[moved] = _price_rows(p, o, moved)
        o.latency_ms[moved] = p.estimate_latency(o.model[moved], o.output_tokens[moved])
    stayed = rescued[~o.changed[rescued]]
    if len(stayed):  # served by a retry on the recorded model: priced like any served request
        o.cost_usd[stayed] = _price_rows(p, o, stayed)
        o.latency_ms[stayed] = p.estimate_latency(o.model[stayed], o.output_tokens[stayed])
    if len(tiered):
        kept = tiered[~o.changed[tiered]]  # same model, other tier: recorded tokens at the tier's price
        o.cost_usd[kept] = _price_rows(p, o, kept)
        batched = tiered[o.service_tier[tiered] == TIER_CODE["batch"]]
        if len(batched):
            window_latency(o, batched)
    return o


def _serve_rule(p: Chunk, o: Outcome, rule, rows: np.ndarray) -> None:
    if len(rows) == 0:
        return
    o.routed[rows] = True
    if not rule.load_balance_targets:  # a tier-only rule: the requests keep their recorded model
        return
    r = route_rule(p, rule, rows)
    moved = (r["served"] != p.model[rows]) | r["fallback"] | (r["attempts"] > 1) | r["failed"]
    # Rows served by their recorded model on the first attempt keep their recorded outcome exactly.
    idx = rows[moved]
    o.model[idx] = r["served"][moved]
    o.status[idx] = np.where(r["failed"][moved], r["status"][moved], 200)
    o.fallback[idx] = r["fallback"][moved]
    o.attempts[idx] = r["attempts"][moved]
    o.retries[idx] = r["retries"][moved]


def fallback_routing(p: Chunk, cand: Candidate, assigned: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """The load-balancing half of each budget / rate-limit fallback (:mod:`simulator.routing.fallbacks`): rows in
    the limit's scope that no candidate rule routed, per recorded model M the limit covers, with the rule that serves
    M and falls back to the fallback model on 429. Marks the rows in ``assigned`` (first match wins)."""
    out = []
    for comp in compositions(cand):
        scope = match(p.view, comp.when) & ~assigned
        for code in np.unique(p.model[scope]):
            model = p.vocab[int(code)]
            if not covers(comp, model):
                continue
            rows = np.flatnonzero(scope & (p.model == code))
            assigned[rows] = True
            out.append((composition_rule(comp, model), rows))
    return out


def impute_rescued(p: Chunk, o: Outcome) -> np.ndarray:
    """Rows recorded as failed that the candidate serves (a fallback or a retry succeeded). A failed attempt records
    no usage, so a served one would otherwise look free: missing input / output tokens take the typical values of
    the request's workflow on its recorded model (:meth:`simulator.facts.Facts.typical_tokens`), and the row is
    marked imputed. Returns the rescued rows."""
    rescued = np.flatnonzero(p.failed & (o.status < 400))
    if not len(rescued):
        return rescued
    facts = p.ctx.facts
    workflow = p.frame["workflow_tag"].iloc[rescued].to_numpy(dtype=object)
    label_codes, labels = pd.factorize(attribution_labels(workflow))
    names = [str(label) for label in labels]
    pair = label_codes.astype(np.int64) * len(p.vocab) + p.model[rescued]  # typical tokens looked up per pair
    typical = np.zeros((len(rescued), 2), dtype=np.int64)
    for key in np.unique(pair).tolist():
        typical[pair == key] = facts.typical_tokens(names[key // len(p.vocab)], p.vocab[key % len(p.vocab)])
    no_input, no_output = p.inp[rescued] == 0, p.out[rescued] == 0
    o.input_tokens[rescued[no_input]] = typical[no_input, 0]
    o.output_tokens[rescued[no_output]] = typical[no_output, 1]
    o.imputed[rescued[no_input | no_output]] = True
    return rescued


def finish(p: Chunk, cand: Candidate, o: Outcome, state: CandidateState) -> None:
    """The stateful part of a replay, in time order: prompt cache, billing of failures, rate limits, budgets."""
    if state.cache is not None and p.n:
        state.cache.apply(p, o, cand)
        o.cost_usd = p.price(o.model, o.input_tokens, o.output_tokens, o.cache_read_tokens, o.cache_write_tokens,
                             o.cache_write_1h_tokens, tiers=o.service_tier)
        if o.cache_storage_usd is not None:
            o.cost_usd = o.cost_usd + o.cache_storage_usd
    failed_attempts = o.attempts - (o.status < 400)
    o.cost_usd = np.where(o.status >= 400, 0.0, o.cost_usd)
    if cand.bill_failed_attempts and (failed_attempts > 0).any():
        # Approximation: each failed attempt bills its input tokens at the served (or last tried) model's price.
        rows = np.flatnonzero(failed_attempts > 0)
        zeros = np.zeros(len(rows), dtype=np.int64)
        input_cost = p.price(o.model[rows], o.input_tokens[rows], zeros, rows=rows, tiers=o.service_tier[rows])
        o.cost_usd[rows] += failed_attempts[rows] * input_cost
        o.assumptions.append("failed attempts billed: input tokens at the attempted model's price")

    def reroute(rows: np.ndarray, target: str):
        return _reroute_cost(p, o, rows, target, cand)

    if state.rate_limits is not None and p.n:
        state.rate_limits.apply(p, o, cand, reroute)
    if state.kill is not None and p.n:  # runaway sessions, in time order like a rate limit (simulator.control.loops)
        from simulator.control.loops import chunk_inputs, kill_in_replay

        o.block(np.flatnonzero(kill_in_replay(p.frame, o.cost_usd, o.status, o.input_tokens, o.output_tokens,
                                              o.blocked, state.kill, p.shared(chunk_inputs))), 429)
    if state.budgets is not None and p.n:
        state.budgets.apply(p, o, cand, reroute)
    o.counts = {
        **o.counts,
        "requests_changed": int(o.changed.sum()),
        "requests_blocked": int(o.blocked.sum()),
        "fallbacks": int(o.fallback.sum()),
        "failed_attempts": int((o.attempts - (o.status < 400)).clip(min=0).sum()),
        "retries": int(o.retries.sum()),
        "still_failing": int(((o.status >= 400) & ~o.blocked).sum()),
    }


def simulate(p: Chunk, cand: Candidate, translator=None, cache_sim=None) -> Outcome:
    """Replay a whole in-memory table (one chunk) through one candidate, with fresh state."""
    if translator is not None:
        p.ctx.translator = translator
    return replay_chunk(p, cand, CandidateState(cand, p.ctx))


def _price_rows(p: Chunk, o: Outcome, rows: np.ndarray) -> np.ndarray:
    return p.price(o.model[rows], o.input_tokens[rows], o.output_tokens[rows], o.cache_read_tokens[rows],
                   o.cache_write_tokens[rows], o.cache_write_1h_tokens[rows], rows=rows, tiers=o.service_tier[rows])


def _reroute_cost(p: Chunk, o: Outcome, rows: np.ndarray, target: str, cand: Candidate) -> tuple[np.ndarray, Outcome]:
    """Cost of serving ``rows`` on ``target`` instead (cold cache, translated tokens), and that outcome."""
    code = p.code(target)
    sub = _fallback_start(p, o.name)
    sub.model[rows] = code
    sub.changed = sub.model != p.model
    moved = rows[sub.changed[rows]]
    sub.cache_read_tokens[moved] = 0
    sub.cache_write_tokens[moved] = 0
    sub.cache_write_1h_tokens[moved] = 0
    if p.ctx.translator is not None and len(moved):
        p.ctx.translator(p, sub, moved, cand)
    return _price_rows(p, sub, rows), sub


def _fallback_start(p: Chunk, name: str) -> Outcome:
    """The recorded outcome as a fallback's starting point: its own arrays for what a reroute and the translator
    write (model, token counts, translation), read-only views or shared read-only zeros for the rest, which a
    fallback only reads (:meth:`Outcome.serve_from`): no copy of the recorded cost, status and latency per reroute."""
    n = p.n

    def frozen(a: np.ndarray) -> np.ndarray:
        a = a.view()
        a.flags.writeable = False
        return a

    no, zero8 = frozen(np.zeros(n, bool)), frozen(np.zeros(n, np.int8))
    return Outcome(
        name=name, model=p.model.copy(), changed=no, routed=no, input_tokens=p.inp.copy(), output_tokens=p.out.copy(),
        cache_read_tokens=p.cr.copy(), cache_write_tokens=p.cw.copy(), cache_write_1h_tokens=p.cw1h.copy(),
        cost_usd=frozen(p.baseline_cost), status=frozen(p.status), latency_ms=frozen(p.latency), blocked=no,
        fallback=no, attempts=frozen(np.ones(n, np.int64)), retries=frozen(np.zeros(n, np.int64)),
        translation_code=np.zeros(n, np.int8), imputed=no, service_tier=zero8,
    )


def check_candidate_targets(ctx: Context, cand: Candidate) -> None:
    """Resolve every target named by a candidate up front, so a typo fails before any work."""
    names = [t.target for r in cand.rules for t in r.load_balance_targets]
    names += [b.on_exceed.fallback for b in cand.budgets if not isinstance(b.on_exceed, str)]
    names += [r.fallback for r in cand.rate_limits if r.fallback]
    for name in names:
        try:
            ctx.code(name)
        except Exception as exc:  # PricingError: re-raise naming the candidate
            raise type(exc)(f"candidate '{cand.name}': {exc}") from None

