"""Replay recorded traffic through a candidate routing policy.

Order of a replay, per candidate (each step documented in the README's "Semantics" section):
1. routing rules, first match wins; weighted targets by a seeded hash of request_id (or session_id when sticky);
2. failures of the chosen target (declared outages, else the target's failure rate observed in the same
   5-minute bucket), retries on the same target, then fallbacks in priority / weight order;
3. token translation for requests that changed model, cold cache (recorded cache reads become plain input)
   unless prompt caching is simulated;
4. pricing at each request's timestamp;
5. rate limits, then budget ceilings, in time order (compiled passes in :mod:`simulator.state.kernels`).

Requests that match no rule, or whose target is the model they were recorded on, keep their recorded outcome
exactly, so a candidate identical to the recorded routing saves exactly 0.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from simulator.state import kernels
from simulator.summary.exact_sums import LatencySums
from simulator.routing.matching import RequestView, match
from simulator.pricing.catalog import Catalog
from simulator.summary.privacy import output_label
from simulator.routing.scenario import Candidate, Outage, Rule
from simulator.io.traffic import Traffic

_FAIL_BUCKET_NS = 5 * 60 * 10**9
_NS_PER_DAY = 86_400 * 10**9
_WINDOW_NS = {"minute": 60 * 10**9, "hour": 3600 * 10**9, "day": _NS_PER_DAY}


def mix_uniform(hashes: np.ndarray, stream: int) -> np.ndarray:
    """Another independent U[0, 1) per row from 64-bit hashes (splitmix64 finaliser of hash + stream)."""
    with np.errstate(over="ignore"):
        z = hashes + np.uint64((0x9E3779B97F4A7C15 * (stream + 1)) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def hashed_uniform(keys: np.ndarray, seed: int, salt: str = "") -> np.ndarray:
    """Deterministic U[0, 1) per key from (seed, salt, key): same inputs, same numbers, on every machine."""
    hash_key = f"{seed:08d}{salt}"[:16].ljust(16, "0")
    h = pd.util.hash_array(np.asarray(keys, dtype=object), hash_key=hash_key, categorize=True)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


@dataclasses.dataclass
class Prepared:
    """Everything shared by all candidates over one traffic table: arrays, codes, baseline cost."""

    traffic: Traffic
    catalog: Catalog
    seed: int = 0
    outages: tuple[Outage, ...] = ()

    def __post_init__(self) -> None:
        f = self.traffic.frame
        self.n = len(f)
        self.view = RequestView(f)
        self.ts = f["timestamp"].array.asi8.copy() if self.n else np.zeros(0, np.int64)
        self.vocab: list[str] = sorted(set(f["model"]))
        self._code = {m: i for i, m in enumerate(self.vocab)}
        self.model = np.array([self._code[m] for m in f["model"]], dtype=np.int64) if self.n else np.zeros(0, np.int64)
        self.inp = f["input_tokens"].to_numpy(np.int64)
        self.out = f["output_tokens"].to_numpy(np.int64)
        self.cr = f["cache_read_tokens"].to_numpy(np.int64)
        self.cw = f["cache_write_tokens"].to_numpy(np.int64)
        self.cw1h = f["cache_write_1h_tokens"].to_numpy(np.int64)
        self.status = f["status_code"].to_numpy(np.int64)
        self.latency = f["latency_ms"].to_numpy(np.float64)
        self.recorded_cost = f["cost_usd"].to_numpy(np.float64)
        # Failed attempts (status >= 400) bill nothing: providers do not charge for them.
        self.baseline_cost = np.where(
            self.status >= 400, 0.0, self.price(self.model, self.inp, self.out, self.cr, self.cw, self.cw1h))

    def code(self, model_id: str) -> int:
        """Integer code of a model id, extending the vocabulary with targets not seen in traffic."""
        if model_id not in self._code:
            self.catalog.resolve(model_id)  # unknown targets fail early with the catalog's message
            self._code[model_id] = len(self.vocab)
            self.vocab.append(model_id)
        return self._code[model_id]

    def price(self, codes, inp, out, cr=None, cw=None, cw1h=None) -> np.ndarray:
        return self.catalog.cost_usd_codes(codes, np.array(self.vocab, dtype=object), self.ts, inp, out, cr, cw, cw1h)

    @cached_property
    def request_uniform(self) -> np.ndarray:
        return hashed_uniform(self.traffic.frame["request_id"].to_numpy(dtype=object), self.seed)

    @cached_property
    def session_uniform(self) -> np.ndarray:
        sessions = self.traffic.frame["session_id"].to_numpy(dtype=object)
        keys = np.where(pd.isna(sessions), self.traffic.frame["request_id"].to_numpy(dtype=object), sessions)
        return hashed_uniform(keys, self.seed, "s")

    @cached_property
    def request_hash(self) -> np.ndarray:
        """64-bit hash of (seed, request_id) per row, the source of per-attempt failure draws."""
        return pd.util.hash_array(self.traffic.frame["request_id"].to_numpy(dtype=object),
                                  hash_key=f"{self.seed:08d}fail"[:16].ljust(16, "0"), categorize=True)

    @cached_property
    def failed(self) -> np.ndarray:
        return self.status >= 400

    def failure_table(self, code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted 5-minute buckets, failure rate, failure status) observed for one model, for vectorised lookup."""
        tables = self.__dict__.setdefault("_failure_tables", {})
        if code not in tables:
            items = sorted((b, v) for (c, b), v in self.failure_buckets.items() if c == code)
            tables[code] = (np.array([b for b, _ in items], dtype=np.int64),
                            np.array([v[0] for _, v in items], dtype=np.float64),
                            np.array([v[1] for _, v in items], dtype=np.int64))
        return tables[code]

    @cached_property
    def failure_buckets(self) -> dict[tuple[int, int], tuple[float, int]]:
        """Observed failure rate and most common failure status per (model, 5-minute bucket)."""
        bucket = self.ts // _FAIL_BUCKET_NS
        out: dict[tuple[int, int], tuple[float, int]] = {}
        if not self.failed.any():
            return out
        totals = pd.DataFrame({"m": self.model, "b": bucket}).value_counts()
        failing = pd.DataFrame({"m": self.model[self.failed], "b": bucket[self.failed], "s": self.status[self.failed]})
        counts = failing.value_counts().rename("n").reset_index()
        # Most common failure status per bucket; ties go to the lowest code (sort, then keep the first maximum).
        counts = counts.sort_values(["m", "b", "n", "s"], ascending=[True, True, False, True], kind="stable")
        common = counts.drop_duplicates(["m", "b"])
        failed_n = failing.groupby(["m", "b"]).size()
        for m, b, status in common[["m", "b", "s"]].itertuples(index=False):
            out[(int(m), int(b))] = (float(failed_n[(m, b)] / totals[(m, b)]), int(status))
        return out

    @cached_property
    def latency_model(self) -> dict[int, tuple[float, float]]:
        """Per model: (ms per request, ms per output token) fitted on recorded successful requests.

        Exact least squares (:class:`simulator.summary.exact_sums.LatencySums`), so chunked engines fit the same numbers.
        """
        out: dict[int, tuple[float, float]] = {}
        ok = ~self.failed & np.isfinite(self.latency)
        for code in np.unique(self.model[ok]):
            sel = ok & (self.model == code)
            sums = LatencySums().add(self.out[sel], self.latency[sel])
            out[int(code)] = sums.fit(float(np.median(self.latency[sel])) if sums.needs_median else None)
        return out

    def estimate_latency(self, codes: np.ndarray, out_tokens: np.ndarray) -> np.ndarray:
        est = np.full(len(codes), np.nan)
        for code, (base, per_token) in self.latency_model.items():
            sel = codes == code
            est[sel] = base + per_token * out_tokens[sel]
        return est


@dataclasses.dataclass
class Outcome:
    """Per-request result of one candidate (arrays aligned with the traffic table)."""

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
    translation: np.ndarray  # per row: "", "identity", "exact", "calibrated", ...
    budget_report: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rate_limit_report: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    assumptions: list[str] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


def identity_outcome(p: Prepared, name: str = "recorded") -> Outcome:
    n = p.n
    return Outcome(
        name=name, model=p.model.copy(), changed=np.zeros(n, bool), routed=np.zeros(n, bool),
        input_tokens=p.inp.copy(), output_tokens=p.out.copy(), cache_read_tokens=p.cr.copy(),
        cache_write_tokens=p.cw.copy(), cache_write_1h_tokens=p.cw1h.copy(), cost_usd=p.baseline_cost.copy(),
        status=p.status.copy(), latency_ms=p.latency.copy(), blocked=np.zeros(n, bool), fallback=np.zeros(n, bool),
        attempts=np.ones(n, np.int64), retries=np.zeros(n, np.int64), translation=np.full(n, "", dtype=object),
    )


# -- routing --------------------------------------------------------------------------------------------------
def _target_order(rule: Rule) -> list[int]:
    """Indices of a rule's targets in fallback order: priority (then listed order), or weight descending."""
    targets = rule.load_balance_targets
    if rule.type == "priority-based-routing":
        return sorted(range(len(targets)), key=lambda i: (targets[i].priority or 0, i))
    return sorted(range(len(targets)), key=lambda i: (-(targets[i].weight or 0), i))


def _first_choice(p: Prepared, rule: Rule, rows: np.ndarray) -> np.ndarray:
    """Index (into the rule's targets) of the first target tried for each row."""
    targets = rule.load_balance_targets
    k = len(targets)
    eligible = np.ones((len(rows), k), dtype=bool)
    for j, t in enumerate(targets):
        for key, value in t.metadata_match.items():
            eligible[:, j] &= p.view.key(key)[rows] == value
    if rule.type == "weight-based-routing":
        weights = np.array([t.weight if t.weight is not None else 100 for t in targets], dtype=np.float64)
        w = eligible * weights
        total = w.sum(axis=1)
        u = (p.session_uniform if rule.sticky_routing else p.request_uniform)[rows]
        cum = np.cumsum(w, axis=1)
        choice = (cum <= (u * total)[:, None]).sum(axis=1)
        choice = np.minimum(choice, k - 1)
        choice[total == 0] = -1
        return choice
    if rule.type == "latency-based-routing":
        # Lowest estimated time per output token among eligible targets (static: recorded latency per model).
        speed = []
        for t in targets:
            base, per_token = p.latency_model.get(p.code(t.target), (np.inf, np.inf))
            speed.append(per_token if np.isfinite(per_token) and per_token > 0 else base)
        order = np.argsort(np.array(speed), kind="stable")
    else:
        order = np.array(_target_order(rule))
    choice = np.full(len(rows), -1, dtype=np.int64)
    for j in order[::-1]:
        choice = np.where(eligible[:, j], j, choice)
    return choice


def _failure(p: Prepared, code: int, rows: np.ndarray, attempt: int, stays: np.ndarray) -> np.ndarray:
    """Status of an attempt on model ``code`` (0 = success): outages first, then observed failures."""
    status = np.zeros(len(rows), dtype=np.int64)
    ts = p.ts[rows]
    model_id = p.vocab[code]
    for outage in p.outages:
        if outage.target == model_id:
            start, end = pd.Timestamp(outage.start).value, pd.Timestamp(outage.end).value
            status = np.where((status == 0) & (ts >= start) & (ts < end), outage.status, status)
    # A request that stays on its recorded model fails as it was recorded (first attempt only).
    if attempt == 0:
        recorded = stays & p.failed[rows]
        status = np.where((status == 0) & recorded, p.status[rows], status)
    buckets, rates, statuses = p.failure_table(code)
    if len(buckets):
        bucket = ts // _FAIL_BUCKET_NS
        pos = np.minimum(np.searchsorted(buckets, bucket), len(buckets) - 1)
        hit = buckets[pos] == bucket
        rate = np.where(hit, rates[pos], 0.0)
        u = mix_uniform(p.request_hash[rows], attempt)
        observed = (status == 0) & (u < rate) & ~(stays if attempt == 0 else np.zeros(len(rows), bool))
        status = np.where(observed, statuses[pos], status)
    return status


def _route_rule(p: Prepared, rule: Rule, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Serve one rule's rows: first choice, retries, fallbacks. Returns per-row served code, status, counters."""
    targets = rule.load_balance_targets
    codes = np.array([p.code(t.target) for t in targets], dtype=np.int64)
    order = _target_order(rule)
    first = _first_choice(p, rule, rows)
    m = len(rows)
    served = np.full(m, -1, dtype=np.int64)
    status = np.zeros(m, dtype=np.int64)
    attempts = np.zeros(m, dtype=np.int64)
    retries = np.zeros(m, dtype=np.int64)
    fallback = np.zeros(m, dtype=bool)
    no_target = first < 0
    status[no_target] = 503  # no eligible target (metadata_match excluded all)
    pending = ~no_target
    current = first.copy()
    tried = np.zeros((m, len(targets)), dtype=bool)
    for step in range(len(targets)):
        if not pending.any():
            break
        # Snapshot: a row that falls back in this step is tried on its next target in the next step.
        at_step, choice_at_step = pending.copy(), current.copy()
        for j in range(len(targets)):
            sel = at_step & (choice_at_step == j)
            if not sel.any():
                continue
            idx = np.flatnonzero(sel)
            tried[idx, j] = True
            stays = codes[j] == p.model[rows[idx]]
            st = _failure(p, int(codes[j]), rows[idx], 0, stays)
            attempts[idx] += 1
            t = targets[j]
            if t.retry_config is not None and t.retry_config.attempts > 0:
                retry_codes = np.array([int(c) for c in t.retry_config.on_status_codes])
                for a in range(1, t.retry_config.attempts + 1):
                    again = np.isin(st, retry_codes)
                    if not again.any():
                        break
                    attempts[idx[again]] += 1
                    retries[idx[again]] += 1
                    st[again] = _failure(p, int(codes[j]), rows[idx[again]], a, np.zeros(again.sum(), bool))
            ok = st == 0
            served[idx[ok]] = codes[j]
            fallback[idx[ok]] = step > 0
            pending[idx[ok]] = False
            status[idx] = st
            # Fallback only on listed codes, to the next untried target that may serve as a fallback.
            fall_codes = np.array([int(c) for c in t.fallback_status_codes] + [408])
            can_fall = ~ok & np.isin(st, fall_codes)
            pending[idx[~ok & ~can_fall]] = False
            nxt = np.full(len(idx), -1, dtype=np.int64)
            for cand in order[::-1]:
                if targets[cand].fallback_candidate:
                    nxt = np.where(~tried[idx, cand], cand, nxt)
            current[idx] = nxt
            stop = can_fall & (nxt < 0)
            pending[idx[stop]] = False
    failed = served < 0
    return {"served": np.where(failed, codes[np.maximum(first, 0)], served), "status": status,
            "attempts": attempts, "retries": retries, "fallback": fallback, "failed": failed}


# -- time windows -------------------------------------------------------------------------------------------
def budget_window(ts: np.ndarray, unit: str) -> np.ndarray:
    """UTC window index: day from midnight, week from Monday 00:00, month from the 1st, quarter."""
    days = ts // _NS_PER_DAY
    period = unit.split("_per_")[1]
    if period == "day":
        return days
    if period == "week":
        return (days + 3) // 7  # 1970-01-01 was a Thursday; +3 makes weeks start on Monday
    months = pd.DatetimeIndex(ts.astype("datetime64[ns]"))
    month_index = (months.year.to_numpy() - 1970) * 12 + months.month.to_numpy() - 1
    return month_index if period == "month" else month_index // 3


def rate_window(ts: np.ndarray, unit: str) -> np.ndarray:
    return ts // _WINDOW_NS[unit.split("_per_")[1]]


def _slot_keys(p: Prepared, applies_per: list[str], rows: np.ndarray) -> np.ndarray:
    """Slot number per row: the rank of the row's key text (parts joined by \\x1f, absent = "None") among the
    keys present, computed on integer codes (the text is built once per distinct key, not per row)."""
    if not applies_per:
        return np.zeros(len(rows), dtype=np.int64)
    combo = np.zeros(len(rows), dtype=np.int64)
    texts = []
    for spec in applies_per:
        codes, labels = p.view.codes(p.view.applies_per_name(spec))
        combo = combo * (len(labels) + 1) + (codes[rows] + 1)
        texts.append(["None"] + [str(v) for v in labels])
    uniq, inverse = np.unique(combo, return_inverse=True)
    joined = []
    for value in uniq:
        parts = []
        for part in reversed(texts):
            value, digit = divmod(int(value), len(part))
            parts.append(part[digit])
        joined.append("\x1f".join(reversed(parts)))
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(np.array(joined, dtype=object), kind="stable")] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)]


# -- one candidate --------------------------------------------------------------------------------------------
def simulate(p: Prepared, cand: Candidate, translator=None, cache_sim=None) -> Outcome:
    """Replay all requests through one candidate; see the module docstring for the order of steps."""
    o = identity_outcome(p, cand.name)
    if p.n == 0:
        return o
    assigned = np.zeros(p.n, dtype=bool)
    for rule in cand.rules:
        mask = match(p.view, rule.when) & ~assigned
        rows = np.flatnonzero(mask)
        assigned |= mask
        if len(rows) == 0:
            continue
        r = _route_rule(p, rule, rows)
        o.routed[rows] = True
        moved = (r["served"] != p.model[rows]) | r["fallback"] | (r["attempts"] > 1) | r["failed"]
        # Rows served by their recorded model on the first attempt keep their recorded outcome exactly.
        idx = rows[moved]
        o.model[idx] = r["served"][moved]
        o.status[idx] = np.where(r["failed"][moved], r["status"][moved], 200)
        o.fallback[idx] = r["fallback"][moved]
        o.attempts[idx] = r["attempts"][moved]
        o.retries[idx] = r["retries"][moved]
    o.changed = o.model != p.model
    _translate_and_reprice(p, o, cand, translator)
    if cache_sim is not None and cand.prompt_caching:
        cache_sim(p, o, cand)
        o.cost_usd = p.price(o.model, o.input_tokens, o.output_tokens, o.cache_read_tokens, o.cache_write_tokens,
                             o.cache_write_1h_tokens)
    failed_attempts = o.attempts - (o.status < 400)
    o.cost_usd = np.where(o.status >= 400, 0.0, o.cost_usd)
    if cand.bill_failed_attempts and (failed_attempts > 0).any():
        # Approximation: each failed attempt bills its input tokens at the served (or last tried) model's price.
        rows = np.flatnonzero(failed_attempts > 0)
        zeros = np.zeros(len(rows), dtype=np.int64)
        input_cost = p.catalog.cost_usd_codes(o.model[rows], np.array(p.vocab, dtype=object), p.ts[rows],
                                              o.input_tokens[rows], zeros)
        o.cost_usd[rows] += failed_attempts[rows] * input_cost
        o.assumptions.append("failed attempts billed: input tokens at the attempted model's price")
    _latency(p, o)
    if cand.rate_limits:
        _apply_rate_limits(p, o, cand, translator)
    if cand.kill_runaway_sessions:  # runaway sessions, in time order like a rate limit (simulator.control.loops)
        from simulator.control.loops import LoopState, kill_in_replay, kill_report, kill_rule

        state = LoopState(kill_rule(cand.kill_runaway_sessions), kill=True)
        _block(o, np.flatnonzero(kill_in_replay(p.traffic.frame, o.cost_usd, o.status, o.input_tokens,
                                                o.output_tokens, o.blocked, state)), 429)
        o.extras["session_kill"] = kill_report(state)
    if cand.budgets:
        _apply_budgets(p, o, cand, translator)
    o.counts = {
        "requests_changed": int(o.changed.sum()),
        "requests_blocked": int(o.blocked.sum()),
        "fallbacks": int(o.fallback.sum()),
        "failed_attempts": int((o.attempts - (o.status < 400)).clip(min=0).sum()),
        "retries": int(o.retries.sum()),
        "still_failing": int(((o.status >= 400) & ~o.blocked).sum()),
    }
    return o


def _translate_and_reprice(p: Prepared, o: Outcome, cand: Candidate, translator) -> None:
    moved = np.flatnonzero(o.changed)
    if len(moved) == 0:
        return
    # Cold cache: recorded cache reads and writes become plain input on the new model.
    o.cache_read_tokens[moved] = 0
    o.cache_write_tokens[moved] = 0
    o.cache_write_1h_tokens[moved] = 0
    if translator is not None:
        translator(p, o, moved, cand)
    else:
        o.translation[moved] = "identity"
    o.cost_usd[moved] = _price_rows(p, o, moved)


def _price_rows(p: Prepared, o: Outcome, rows: np.ndarray) -> np.ndarray:
    return p.catalog.cost_usd_codes(
        o.model[rows], np.array(p.vocab, dtype=object), p.ts[rows], o.input_tokens[rows], o.output_tokens[rows],
        o.cache_read_tokens[rows], o.cache_write_tokens[rows], o.cache_write_1h_tokens[rows],
    )


def _latency(p: Prepared, o: Outcome) -> None:
    moved = np.flatnonzero(o.changed)
    if len(moved):
        o.latency_ms[moved] = p.estimate_latency(o.model[moved], o.output_tokens[moved])


def _reroute_cost(p: Prepared, o: Outcome, rows: np.ndarray, target: str, translator, cand) -> tuple[np.ndarray, ...]:
    """Cost and tokens of serving ``rows`` on ``target`` instead (cold cache, translated tokens)."""
    code = p.code(target)
    sub = identity_outcome(p, o.name)
    sub.model[rows] = code
    sub.changed = sub.model != p.model
    moved = rows[sub.changed[rows]]
    sub.cache_read_tokens[moved] = 0
    sub.cache_write_tokens[moved] = 0
    sub.cache_write_1h_tokens[moved] = 0
    if translator is not None and len(moved):
        translator(p, sub, moved, cand)
    cost = _price_rows(p, sub, rows)
    return cost, sub


def _apply_rate_limits(p: Prepared, o: Outcome, cand: Candidate, translator) -> None:
    slot = np.full(p.n, -1, dtype=np.int64)
    window = np.zeros(p.n, dtype=np.int64)
    amount = np.zeros(p.n, dtype=np.float64)
    limit = np.zeros(p.n, dtype=np.float64)
    has_fb = np.zeros(p.n, dtype=bool)
    rule_of = np.full(p.n, -1, dtype=np.int64)
    live = ~o.blocked
    offset = 0
    key_names: list[tuple[int, int]] = []
    for r_i, rule in enumerate(cand.rate_limits):
        rows = np.flatnonzero(match(p.view, rule.when) & (rule_of < 0) & live)
        if len(rows) == 0:
            continue
        keys = _slot_keys(p, rule.rate_limit_applies_per, rows)
        slot[rows] = offset + keys
        n_keys = int(keys.max()) + 1
        key_names.extend((r_i, k) for k in range(n_keys))
        offset += n_keys
        rule_of[rows] = r_i
        window[rows] = rate_window(p.ts[rows], rule.unit)
        tokens = rule.unit.startswith("tokens")
        amount[rows] = (o.input_tokens[rows] + o.output_tokens[rows]) if tokens else 1.0
        limit[rows] = rule.limit_to
        has_fb[rows] = rule.fallback is not None
    action = kernels.rate_limit_pass(slot, window, amount, limit, has_fb, max(offset, 1))
    for rep in apply_rate_limit_actions(p, o, cand, rule_of, action, translator):
        o.rate_limit_report.append({**rep, "spend_avoided_usd": round(rep["spend_avoided_usd"], 6)})


def apply_rate_limit_actions(p: Prepared, o: Outcome, cand: Candidate, rule_of: np.ndarray, action: np.ndarray,
                             translator) -> list[dict[str, Any]]:
    """Carry out a rate-limit pass's verdicts (429 or the rule's fallback); per rule: counts and spend avoided."""
    out = []
    for r_i, rule in enumerate(cand.rate_limits):
        limited = (rule_of == r_i) & (action != kernels.ALLOW)
        blocked_rows = np.flatnonzero(limited & (action == kernels.BLOCK))
        fb_rows = np.flatnonzero(limited & (action == kernels.FALLBACK))
        avoided = float(o.cost_usd[blocked_rows].sum())
        if len(fb_rows):
            cost, sub = _reroute_cost(p, o, fb_rows, rule.fallback, translator, cand)
            avoided += float(o.cost_usd[fb_rows].sum() - cost.sum())
            _serve_from(o, sub, fb_rows, cost)
            o.latency_ms[fb_rows] = p.estimate_latency(o.model[fb_rows], o.output_tokens[fb_rows])
        _block(o, blocked_rows, 429)
        out.append({"id": rule.id, "requests_limited": int(limited.sum()), "requests_blocked": len(blocked_rows),
                    "requests_rerouted": len(fb_rows), "spend_avoided_usd": avoided})
    return out


def _serve_from(o: Outcome, sub: Outcome, rows: np.ndarray, cost: np.ndarray) -> None:
    o.model[rows] = sub.model[rows]
    o.input_tokens[rows] = sub.input_tokens[rows]
    o.output_tokens[rows] = sub.output_tokens[rows]
    o.cache_read_tokens[rows] = sub.cache_read_tokens[rows]
    o.cache_write_tokens[rows] = sub.cache_write_tokens[rows]
    o.cache_write_1h_tokens[rows] = sub.cache_write_1h_tokens[rows]
    o.translation[rows] = sub.translation[rows]
    o.cost_usd[rows] = cost
    o.status[rows] = 200
    o.fallback[rows] = True
    o.changed[rows] = sub.changed[rows]


def _block(o: Outcome, rows: np.ndarray, status: int) -> None:
    o.blocked[rows] = True
    o.status[rows] = status
    o.cost_usd[rows] = 0.0
    o.latency_ms[rows] = np.nan


def _apply_budgets(p: Prepared, o: Outcome, cand: Candidate, translator) -> None:
    budgets = cand.budgets
    live = ~o.blocked
    masks = [match(p.view, b.when) & live for b in budgets]
    slot_base, slot_names, slots_per_rule = 0, [], []
    rule_slots = []
    for b_i, (b, mask) in enumerate(zip(budgets, masks)):
        rows = np.flatnonzero(mask)
        keys = np.full(p.n, -1, dtype=np.int64)
        if len(rows):
            k = _slot_keys(p, b.budget_applies_per, rows)
            keys[rows] = slot_base + k
            labels = (np.asarray(p.view.applies_per(b.budget_applies_per[0])[rows], dtype=object)
                      if b.budget_applies_per else np.array(["*"] * len(rows), dtype=object))
            first_label = pd.Series(labels).groupby(k).first()
            spec = b.budget_applies_per[0] if b.budget_applies_per else ""
            for kk in range(int(k.max()) + 1):
                # Reports never show a person's id: user keys are replaced by a stable salted hash.
                slot_names.append((b_i, output_label(spec, str(first_label.get(kk)))))
            slot_base += int(k.max()) + 1
        rule_slots.append(keys)
    csr = budget_matches(p, budgets, masks, rule_slots)
    fallback_cost, fallback_tokens, subs = budget_fallbacks(p, o, cand, csr.fallback_rule, translator)
    ptr, m_slot = csr.ptr, csr.slot
    tokens = (o.input_tokens + o.output_tokens).astype(np.float64)
    cost_now = np.where(o.blocked, 0.0, o.cost_usd)
    action, spent, reached_at = kernels.budget_pass(
        ptr, m_slot, csr.window, csr.limit, csr.audit, csr.has_fallback, cost_now, fallback_cost, tokens,
        fallback_tokens, csr.tokens, max(slot_base, 1))
    blocked_rows = np.flatnonzero(action == kernels.BLOCK)
    fb_rows = np.flatnonzero(action == kernels.FALLBACK)
    per_slot_blocked = np.bincount(np.where(action == kernels.BLOCK, _decider(ptr, m_slot), 0)[blocked_rows],
                                   minlength=slot_base) if len(blocked_rows) else np.zeros(slot_base, np.int64)
    decider = _decider(ptr, m_slot)
    avoided_slot = np.zeros(max(slot_base, 1))
    np.add.at(avoided_slot, decider[blocked_rows], o.cost_usd[blocked_rows])
    np.add.at(avoided_slot, decider[fb_rows], o.cost_usd[fb_rows] - fallback_cost[fb_rows])
    rerouted_slot = np.bincount(decider[fb_rows], minlength=max(slot_base, 1))
    for b_i, (rows, sub, cost) in subs.items():
        take = np.isin(rows, fb_rows)
        if take.any():
            _serve_from(o, sub, rows[take], cost[take])
            o.latency_ms[rows[take]] = p.estimate_latency(o.model[rows[take]], o.output_tokens[rows[take]])
    _block(o, blocked_rows, 429)
    ts_index = pd.DatetimeIndex(p.ts.astype("datetime64[ns]"), tz="UTC")
    for s, (b_i, label) in enumerate(slot_names):
        b = budgets[b_i]
        reached = int(reached_at[s])
        o.budget_report.append({
            "id": b.id, "key": label if label != "*" else None, "limit_to": b.limit_to, "unit": b.unit,
            "ceiling_reached_at": ts_index[reached].isoformat() if reached >= 0 else None,
            "requests_blocked": int(per_slot_blocked[s]) if s < len(per_slot_blocked) else 0,
            "requests_rerouted": int(rerouted_slot[s]), "spend_avoided_usd": round(float(avoided_slot[s]), 6),
            "audit_mode": b.audit_mode,
        })


@dataclasses.dataclass
class BudgetMatches:
    """Which (rule, key) slots each row matches, in rule order, as a CSR layout for :mod:`simulator.state.kernels`."""

    ptr: np.ndarray  # row i matches entries ptr[i]:ptr[i+1]
    slot: np.ndarray
    window: np.ndarray
    limit: np.ndarray
    audit: np.ndarray
    has_fallback: np.ndarray
    tokens: np.ndarray  # the rule counts tokens, not USD
    fallback_rule: np.ndarray  # per row: index of the first matching rule (the one that decides), -1 for none


def budget_matches(p: Prepared, budgets, masks: list[np.ndarray], rule_slots: list[np.ndarray]) -> BudgetMatches:
    """Build the CSR of matches from each rule's row mask and per-row slot ids (shared by every engine)."""
    counts = np.sum(masks, axis=0).astype(np.int64)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    total = int(ptr[-1])
    out = BudgetMatches(ptr, np.zeros(total, np.int64), np.zeros(total, np.int64), np.zeros(total, np.float64),
                        np.zeros(total, bool), np.zeros(total, bool), np.zeros(total, bool),
                        np.full(p.n, -1, dtype=np.int64))
    fill = ptr[:-1].copy()
    for b_i, (b, mask) in enumerate(zip(budgets, masks)):
        rows = np.flatnonzero(mask)
        pos = fill[rows]
        out.slot[pos] = rule_slots[b_i][rows]
        out.window[pos] = budget_window(p.ts[rows], b.unit)
        out.limit[pos] = b.limit_to
        out.audit[pos] = b.audit_mode
        out.has_fallback[pos] = not isinstance(b.on_exceed, str)
        out.tokens[pos] = b.unit.startswith("tokens")
        first_here = out.fallback_rule[rows] < 0
        out.fallback_rule[rows[first_here]] = b_i
        fill[rows] += 1
    return out


def budget_fallbacks(p: Prepared, o: Outcome, cand: Candidate, deciding_rule: np.ndarray, translator):
    """Cost and tokens of serving each row on its deciding rule's ``on_exceed`` fallback, priced before the pass."""
    fallback_cost = np.zeros(p.n)
    fallback_tokens = np.zeros(p.n)
    subs: dict[int, tuple[np.ndarray, Outcome, np.ndarray]] = {}
    for b_i, b in enumerate(cand.budgets):
        if isinstance(b.on_exceed, str):
            continue
        rows = np.flatnonzero(deciding_rule == b_i)
        if len(rows):
            cost, sub = _reroute_cost(p, o, rows, b.on_exceed.fallback, translator, cand)
            fallback_cost[rows] = cost
            fallback_tokens[rows] = sub.input_tokens[rows] + sub.output_tokens[rows]
            subs[b_i] = (rows, sub, cost)
    return fallback_cost, fallback_tokens, subs


def _decider(ptr: np.ndarray, m_slot: np.ndarray) -> np.ndarray:
    """The deciding (first matching) slot per row, or 0 for rows without any."""
    n = len(ptr) - 1
    has = ptr[1:] > ptr[:-1]
    out = np.zeros(n, dtype=np.int64)
    out[has] = m_slot[ptr[:-1][has]]
    return out


def check_candidate_targets(p: Prepared, cand: Candidate) -> None:
    """Resolve every target named by a candidate up front, so a typo fails before any work."""
    names = [t.target for r in cand.rules for t in r.load_balance_targets]
    names += [b.on_exceed.fallback for b in cand.budgets if not isinstance(b.on_exceed, str)]
    names += [r.fallback for r in cand.rate_limits if r.fallback]
    for name in names:
        try:
            p.code(name)
        except Exception as exc:  # PricingError: re-raise naming the candidate
            raise type(exc)(f"candidate '{cand.name}': {exc}") from None


__all__ = ["Prepared", "Outcome", "simulate", "identity_outcome", "hashed_uniform"]
