"""Where a routed request goes: rule targets, the first choice, failures of an attempt, retries and fallbacks.

Pure functions of a chunk (:class:`simulator.core.Chunk`) and a rule; no state is carried between requests.
Failures of an attempt come, in order, from declared ``outages:``, from the recorded status when the request stays on
its recorded model (first attempt only), and from the failure rate its target showed in the same 5-minute bucket of
the recorded traffic (drawn from a hash of the request, so the same request fails the same way in every run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.routing.scenario import Rule

FAIL_BUCKET_NS = 5 * 60 * 10**9


def mix_uniform(hashes: np.ndarray, stream: int) -> np.ndarray:
    """Another independent U[0, 1) per row from 64-bit hashes (splitmix64 finaliser of hash + stream)."""
    with np.errstate(over="ignore"):
        z = hashes + np.uint64((0x9E3779B97F4A7C15 * (stream + 1)) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def target_order(rule: Rule) -> list[int]:
    """Indices of a rule's targets in fallback order: priority (then listed order), or weight descending."""
    targets = rule.load_balance_targets
    if rule.type == "priority-based-routing":
        return sorted(range(len(targets)), key=lambda i: (targets[i].priority or 0, i))
    return sorted(range(len(targets)), key=lambda i: (-(targets[i].weight or 0), i))


def first_choice(p, rule: Rule, rows: np.ndarray) -> np.ndarray:
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
        if k == 1:  # one target takes every row it may take: no draw (u < 1), so no hash of every request id
            return np.where(total == 0, -1, 0)
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
        order = np.array(target_order(rule))
    choice = np.full(len(rows), -1, dtype=np.int64)
    for j in order[::-1]:
        choice = np.where(eligible[:, j], j, choice)
    return choice


def attempt_status(p, code: int, rows: np.ndarray, attempt: int, stays: np.ndarray) -> np.ndarray:
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
        # only rows that may fail here draw (and hash their request id): not failed yet, not staying on their
        # recorded model's first attempt, and in a bucket where the model failed
        may = np.flatnonzero((status == 0) & ~stays) if attempt == 0 else np.flatnonzero(status == 0)
        bucket = ts[may] // FAIL_BUCKET_NS
        pos = np.minimum(np.searchsorted(buckets, bucket), len(buckets) - 1)
        rate = np.where(buckets[pos] == bucket, rates[pos], 0.0)
        draw = rate > 0
        observed = mix_uniform(p.request_hash(rows[may[draw]]), attempt) < rate[draw]
        status[may[draw][observed]] = statuses[pos[draw][observed]]
    return status


def route_rule(p, rule: Rule, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Serve one rule's rows: first choice, retries, fallbacks. Returns per-row served code, status, counters."""
    targets = rule.load_balance_targets
    codes = np.array([p.code(t.target) for t in targets], dtype=np.int64)
    order = target_order(rule)
    first = first_choice(p, rule, rows)
    m = len(rows)
    served = np.full(m, -1, dtype=np.int64)
    status = np.zeros(m, dtype=np.int64)
    attempts = np.zeros(m, dtype=np.int64)
    retries = np.zeros(m, dtype=np.int64)
    fallback = np.zeros(m, dtype=bool)
    no_target = first < 0
    status[no_target] = 503  # no eligible target (metadata_match excluded all)
    pending = ~no_target
    # A row whose first choice is its recorded model, recorded as served, with no outage declared for that model, is
    # served there on the first attempt (its attempt draws nothing): settled without the attempt loop.
    outaged = {outage.target for outage in p.outages}
    plain = np.array([t.target not in outaged for t in targets])[np.maximum(first, 0)]
    settled = pending & plain & (codes[np.maximum(first, 0)] == p.model[rows]) & ~p.failed[rows]
    served[settled] = codes[first[settled]]
    attempts[settled] = 1
    pending &= ~settled
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
            st = attempt_status(p, int(codes[j]), rows[idx], 0, stays)
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
                    st[again] = attempt_status(p, int(codes[j]), rows[idx[again]], a, np.zeros(again.sum(), bool))
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
