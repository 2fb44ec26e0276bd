"""Routing semantics, each with a hand-computed expectation.

Prices used (genai-prices, 2026-11): gpt-4o $2.50 in / $10 out per M; gpt-4o-mini $0.15 / $0.60;
claude-haiku-4-5 $1 / $5. Most requests below carry exactly 1 M input tokens so their cost is the input price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import prepared, req, scenario
from simulator.core import CandidateState, replay_chunk, simulate

GPT4O, MINI, HAIKU = "openai-main/gpt-4o", "openai-main/gpt-4o-mini", "anthropic-main/claude-haiku-4-5"


def cand(sc, i=0):
    return sc.candidates[i]


def test_downgrade_moves_every_matching_request_and_keeps_the_rest():
    p = prepared([
        req(1, "2026-11-16T09:00:00Z", workflow_tag="classify-intent"),
        req(2, "2026-11-16T09:01:00Z", workflow_tag="classify-intent", cache_read_tokens=500_000),
        req(3, "2026-11-16T09:02:00Z", workflow_tag="rag-chat"),
        req(4, "2026-11-16T09:03:00Z", model=HAIKU, workflow_tag="classify-intent"),
    ])
    sc = scenario([{"name": "down", "rules": [{
        "id": "ci", "when": {"models": [GPT4O], "metadata": {"workflow_tag": "classify-intent"}},
        "load_balance_targets": [{"target": MINI, "weight": 100}]}]}])
    o = simulate(p, cand(sc))
    # r1, r2 move (r2's cache reads become plain input: cold cache); r3 other workflow; r4 other model.
    assert o.changed.tolist() == [True, True, False, False]
    assert o.cost_usd == pytest.approx([0.15, 0.15, 2.50, 1.00])
    # r2 baseline: 500k plain x 2.50 + 500k read x 1.25 = 1.875
    assert p.baseline_cost == pytest.approx([2.50, 1.875, 2.50, 1.00])


def test_bare_model_name_in_when_matches_any_account():
    p = prepared([req(1, "2026-11-16T09:00:00Z"), req(2, "2026-11-16T09:00:01Z", model="openai-dev/gpt-4o")])
    sc = scenario([{"name": "d", "rules": [{"id": "r", "when": {"models": ["gpt-4o"]},
                                           "load_balance_targets": [{"target": MINI}]}]}])
    assert simulate(p, cand(sc)).changed.tolist() == [True, True]


def test_candidate_identical_to_recorded_routing_saves_exactly_zero():
    p = prepared([req(i, f"2026-11-16T09:{i:02d}:00Z", status_code=503 if i == 3 else 200) for i in range(10)])
    sc = scenario([
        {"name": "none"},
        {"name": "same", "rules": [{"id": "r", "load_balance_targets": [{"target": GPT4O, "weight": 100}]}]},
    ])
    for c in sc.candidates:
        o = simulate(p, c)
        assert (o.cost_usd == p.baseline_cost).all()
        assert float((p.baseline_cost - o.cost_usd).sum()) == 0.0
        assert not o.changed.any()


def test_weighted_split_is_deterministic_and_converges_to_weights():
    records = [req(i, "2026-11-16T09:00:00Z", inp=100) for i in range(20_000)]
    p = prepared(records, seed=3)
    sc = scenario([{"name": "ab", "rules": [{"id": "ab", "load_balance_targets": [
        {"target": MINI, "weight": 70}, {"target": HAIKU, "weight": 30}]}]}])
    a = simulate(p, cand(sc))
    b = simulate(prepared(records, seed=3), cand(sc))
    names = np.array(p.vocab)[a.model]
    share = (names == MINI).mean()
    # Binomial sd at n=20,000 is 0.0032: 0.7 +- 0.013 is a 4-sigma band.
    assert abs(share - 0.70) < 0.013
    assert (a.model == b.model).all()
    c = simulate(prepared(records, seed=4), cand(sc))
    assert (a.model != c.model).any()


def test_sticky_routing_keeps_a_session_on_one_target():
    records = [req(i, "2026-11-16T09:00:00Z", inp=100, session_id=f"s{i % 50}") for i in range(1000)]
    p = prepared(records)
    sc = scenario([{"name": "ab", "rules": [{"id": "ab", "sticky_routing": {"ttl_seconds": 3600},
                                            "load_balance_targets": [{"target": MINI, "weight": 50},
                                                                     {"target": HAIKU, "weight": 50}]}]}])
    o = simulate(p, cand(sc))
    frame = pd.DataFrame({"s": p.traffic.frame["session_id"], "m": o.model})
    assert (frame.groupby("s")["m"].nunique() == 1).all()
    assert frame["m"].nunique() == 2


OUTAGE = [{"target": GPT4O, "start": "2026-11-16T10:00:00Z", "end": "2026-11-16T10:30:00Z", "status": 503}]


def _outage_traffic():
    # 6 requests on gpt-4o, 10 minutes apart from 09:40: r2, r3, r4 (10:00, 10:10, 10:20) fall in the outage.
    return [req(i, f"2026-11-16T{9 + (40 + 10 * i) // 60:02d}:{(40 + 10 * i) % 60:02d}:00Z") for i in range(6)]


def test_priority_fallback_during_outage():
    p = prepared(_outage_traffic(), outages=tuple(scenario([], outages=OUTAGE).outages))
    sc = scenario([{"name": "fb", "rules": [{"id": "fb", "type": "priority-based-routing", "load_balance_targets": [
        {"target": GPT4O, "priority": 0}, {"target": MINI, "priority": 1}]}]}], outages=OUTAGE)
    o = simulate(p, cand(sc))
    names = np.array(p.vocab)[o.model].tolist()
    assert names == [GPT4O, GPT4O, MINI, MINI, MINI, GPT4O]
    assert o.fallback.tolist() == [False, False, True, True, True, False]
    assert o.counts["fallbacks"] == 3 and o.counts["still_failing"] == 0
    assert o.counts["failed_attempts"] == 3  # one failed gpt-4o attempt each, billed nothing
    assert o.cost_usd == pytest.approx([2.5, 2.5, 0.15, 0.15, 0.15, 2.5])


def test_retries_then_fallback_and_codes_that_do_not_fall_back():
    outages = tuple(scenario([], outages=OUTAGE).outages)
    p = prepared(_outage_traffic(), outages=outages)
    sc = scenario([
        {"name": "retry", "rules": [{"id": "r", "type": "priority-based-routing", "load_balance_targets": [
            {"target": GPT4O, "priority": 0, "retry_config": {"attempts": 2, "on_status_codes": ["503"]}},
            {"target": MINI, "priority": 1}]}]},
        {"name": "nofall", "rules": [{"id": "r", "type": "priority-based-routing", "load_balance_targets": [
            {"target": GPT4O, "priority": 0, "fallback_status_codes": ["429"]},
            {"target": MINI, "priority": 1}]}]},
    ], outages=OUTAGE)
    retry = simulate(p, sc.candidates[0])
    assert retry.counts["retries"] == 6  # 3 requests x 2 retries, all still in the outage
    assert retry.counts["failed_attempts"] == 9 and retry.counts["fallbacks"] == 3
    nofall = simulate(p, sc.candidates[1])
    assert nofall.counts["still_failing"] == 3 and nofall.counts["fallbacks"] == 0
    assert nofall.status.tolist() == [200, 200, 503, 503, 503, 200]
    assert nofall.cost_usd == pytest.approx([2.5, 2.5, 0, 0, 0, 2.5])


def test_budget_ceiling_blocks_once_spend_reaches_the_limit_and_resets_daily():
    # 4 requests per day for project p1 at $2.50 each; limit $6/day: spend before the 3rd is $5 (< 6) -> allowed;
    # before the 4th it is $7.50 (>= 6) -> blocked. Project p2 is not covered. Next day starts at 0 again.
    records = []
    for d in (16, 17):
        for i in range(4):
            records.append(req(d * 10 + i, f"2026-11-{d}T0{i}:00:00Z", project="p1"))
    records.append(req(999, "2026-11-16T05:00:00Z", project="p2"))
    p = prepared(records)
    sc = scenario([
        {"name": "cap", "budgets": [{"id": "cap", "when": {"metadata": {"project": "p1"}}, "limit_to": 6,
                                     "unit": "cost_per_day", "budget_applies_per": ["metadata.project"]}]},
        {"name": "capfb", "budgets": [{"id": "cap", "when": {"metadata": {"project": "p1"}}, "limit_to": 6,
                                       "unit": "cost_per_day", "on_exceed": {"fallback": MINI}}]},
    ])
    state = CandidateState(sc.candidates[0], p.ctx)
    o = replay_chunk(p, sc.candidates[0], state)
    f = p.traffic.frame
    blocked = set(f["request_id"][o.blocked])
    assert blocked == {"r00163", "r00173"}
    assert o.cost_usd.sum() == pytest.approx(2.5 * 6 + 2.5)
    rep = {r["key"]: r for r in state.budgets.report(sc.candidates[0])}["p1"]
    assert rep["requests_blocked"] == 2 and rep["spend_avoided_usd"] == pytest.approx(5.0)
    assert rep["ceiling_reached_at"] == "2026-11-16T02:00:00+00:00"  # third request brings spend to $7.50
    fb = simulate(p, sc.candidates[1])
    assert not fb.blocked.any() and fb.fallback.sum() == 2
    assert fb.cost_usd.sum() == pytest.approx(2.5 * 6 + 2.5 + 2 * 0.15)


def test_budget_weekly_window_starts_monday_utc():
    # 2026-11-22 is a Sunday, 2026-11-23 a Monday.
    records = [req(1, "2026-11-22T23:00:00Z"), req(2, "2026-11-22T23:30:00Z"), req(3, "2026-11-23T00:00:00Z")]
    p = prepared(records)
    sc = scenario([{"name": "w", "budgets": [{"id": "w", "limit_to": 2.5, "unit": "cost_per_week"}]}])
    o = simulate(p, cand(sc))
    assert o.blocked.tolist() == [False, True, False]


def test_rate_limit_per_user_per_minute():
    records = [
        req(1, "2026-11-16T09:00:01Z", user_id="a"), req(2, "2026-11-16T09:00:02Z", user_id="a"),
        req(3, "2026-11-16T09:00:03Z", user_id="a"), req(4, "2026-11-16T09:00:04Z", user_id="b"),
        req(5, "2026-11-16T09:01:00Z", user_id="a"),
    ]
    p = prepared(records)
    sc = scenario([
        {"name": "rl", "rate_limits": [{"id": "u", "limit_to": 2, "unit": "requests_per_minute",
                                        "rate_limit_applies_per": ["user"]}]},
        {"name": "rlfb", "rate_limits": [{"id": "u", "limit_to": 2, "unit": "requests_per_minute",
                                          "rate_limit_applies_per": ["user"], "fallback": MINI}]},
    ])
    o = simulate(p, sc.candidates[0])
    assert o.blocked.tolist() == [False, False, True, False, False]
    assert o.status.tolist() == [200, 200, 429, 200, 200]
    fb = simulate(p, sc.candidates[1])
    assert fb.cost_usd == pytest.approx([2.5, 2.5, 0.15, 2.5, 2.5])


def test_token_rate_limit_counts_input_and_output():
    records = [req(i, f"2026-11-16T09:00:0{i}Z", inp=600, out=400) for i in range(4)]
    p = prepared(records)
    sc = scenario([{"name": "t", "rate_limits": [{"id": "t", "limit_to": 2500, "unit": "tokens_per_minute"}]}])
    o = simulate(p, cand(sc))
    # used before each: 0, 1000, 2000 (< 2500, allowed), 3000 (>= 2500, limited)
    assert o.blocked.tolist() == [False, False, False, True]


def test_budget_fallback_is_replayed_as_the_gateway_composes_it():
    """A budget with on_exceed fallback = a blocking budget + a rule serving each model that falls back on 429.

    Project p1, limit $6/day, fallback gpt-4o-mini. Hand-computed, in time order:
    r0 gpt-4o $2.50 (spend 0 -> allowed, 2.50); r1 recorded 429 on gpt-4o: the fallback rule sends it to mini,
    where it is served; a failed attempt records no tokens, so it takes the typical successful request of its
    workflow on gpt-4o (1 M input tokens): $0.15 on mini, counted by the budget it is exempt from (2.65); r2 gpt-4o
    $2.50 (2.65 -> 5.15); r3 gpt-4o $2.50 (5.15 < 6 -> 7.65); r4 gpt-4o: spend 7.65 >= 6 -> the budget's 429 -> mini,
    $0.15; r5 already on mini: the exemption rule decides for it, never blocked nor rerouted, $0.15; r6 project p2:
    outside the scope, its recorded 429 stays.
    """
    records = [req(0, "2026-11-16T00:00:00Z", project="p1"),
               req(1, "2026-11-16T00:30:00Z", project="p1", inp=0, status_code=429),
               req(2, "2026-11-16T01:00:00Z", project="p1"), req(3, "2026-11-16T02:00:00Z", project="p1"),
               req(4, "2026-11-16T03:00:00Z", project="p1"), req(5, "2026-11-16T04:00:00Z", model=MINI, project="p1"),
               req(6, "2026-11-16T05:00:00Z", project="p2", inp=0, status_code=429)]
    p = prepared(records)
    sc = scenario([{"name": "capfb", "budgets": [{"id": "cap", "when": {"metadata": {"project": "p1"}},
                                                  "limit_to": 6, "unit": "cost_per_day",
                                                  "on_exceed": {"fallback": MINI}}]}])
    state = CandidateState(cand(sc), p.ctx)
    o = replay_chunk(p, cand(sc), state)
    vocab = np.array(p.vocab, dtype=object)
    assert vocab[o.model].tolist() == [GPT4O, MINI, GPT4O, GPT4O, MINI, MINI, GPT4O]
    assert o.status.tolist() == [200, 200, 200, 200, 200, 200, 429]
    assert o.fallback.tolist() == [False, True, False, False, True, False, False]
    assert o.attempts.tolist() == [1, 2, 1, 1, 1, 1, 1]  # r1: its recorded 429, then mini
    assert o.cost_usd == pytest.approx([2.5, 0.15, 2.5, 2.5, 0.15, 0.15, 0.0])
    assert o.imputed.tolist() == [False, True, False, False, False, False, False]
    rep = state.budgets.report(cand(sc))[0]
    assert rep["requests_rerouted"] == 1 and rep["requests_blocked"] == 0
    assert rep["spend_avoided_usd"] == pytest.approx(2.5 - 0.15)


def test_budget_fallback_prices_feed_the_other_rules_from_the_first_fallback_on():
    """Fallback prices are needed only from a chunk's first fallback on, and then count against every matching rule.

    Rule A: project p1, $4/day, fallback gpt-4o-mini; rule B: every request, $5.25/day, blocks. Hand-computed, in
    time order (A decides for p1, B for p2): r0 $2.50 (A 2.50, B 2.50); r1 $2.50 (A 5.00, B 5.00); r2 A 5.00 >= 4
    -> mini $0.15 (A 5.15, B 5.15); r3 -> mini $0.15 (A 5.30, B 5.30); r4 (p2) B 5.30 >= 5.25 -> 429; r5 (p2) 429.
    Had the fallbacks cost nothing, B would stand at 5.00 and r4 would be served.
    """
    records = [req(i, f"2026-11-16T0{i}:00:00Z", project="p1") for i in range(4)]
    records += [req(4, "2026-11-16T05:00:00Z", project="p2"), req(5, "2026-11-16T06:00:00Z", project="p2")]
    p = prepared(records)
    sc = scenario([{"name": "two", "budgets": [
        {"id": "a", "when": {"metadata": {"project": "p1"}}, "limit_to": 4, "unit": "cost_per_day",
         "on_exceed": {"fallback": MINI}},
        {"id": "b", "limit_to": 5.25, "unit": "cost_per_day"}]}])
    state = CandidateState(cand(sc), p.ctx)
    o = replay_chunk(p, cand(sc), state)
    assert np.array(p.vocab, dtype=object)[o.model].tolist() == [GPT4O, GPT4O, MINI, MINI, GPT4O, GPT4O]
    assert o.fallback.tolist() == [False, False, True, True, False, False]
    assert o.blocked.tolist() == [False, False, False, False, True, True]
    assert o.cost_usd == pytest.approx([2.5, 2.5, 0.15, 0.15, 0.0, 0.0])
    reports = {r["id"]: r for r in state.budgets.report(cand(sc))}
    assert reports["a"]["requests_rerouted"] == 2 and reports["b"]["requests_blocked"] == 2


def test_rate_limit_fallback_also_reroutes_recorded_429s_in_its_scope():
    # limit 1 request per minute on gpt-4o; r0 allowed; r1 over the limit -> mini; r2 (next minute) has a recorded
    # 429 from the provider: the composition's rule falls back on it to mini as well.
    records = [req(0, "2026-11-16T09:00:01Z"), req(1, "2026-11-16T09:00:02Z"),
               req(2, "2026-11-16T09:01:00Z", inp=0, status_code=429)]
    p = prepared(records)
    sc = scenario([{"name": "r", "rate_limits": [{"id": "r", "when": {"models": [GPT4O]}, "limit_to": 1,
                                                  "unit": "requests_per_minute", "fallback": MINI}]}])
    o = simulate(p, cand(sc))
    assert np.array(p.vocab, dtype=object)[o.model].tolist() == [GPT4O, MINI, MINI]
    assert o.status.tolist() == [200, 200, 200]


def test_unique_inverse_equals_numpy_unique():
    from simulator.state.slots import unique_inverse

    rng = np.random.default_rng(5)
    for values in (rng.integers(0, 50, 1000), rng.integers(0, 2**40, 1000), np.array([7]), np.zeros(0, np.int64),
                   rng.integers(0, 5000, 1000)):
        uniq, inverse = unique_inverse(values.astype(np.int64))
        want_uniq, want_inverse = np.unique(values, return_inverse=True)
        np.testing.assert_array_equal(uniq, want_uniq)
        np.testing.assert_array_equal(inverse, want_inverse.reshape(-1))
        assert inverse.dtype == np.int64


def test_failure_draw_hashes_are_per_row_whatever_rows_ask_first():
    """``Chunk.request_hash(rows)`` hashes only the rows asked for, once each: any order of asking gives every row
    the hash of its own request id (expected: hash64 over the whole column, computed here)."""
    from simulator.hashing import hash64

    records = [req(i, f"2026-11-16T09:{i:02d}:00Z") for i in range(40)]
    p = prepared(records, seed=5)
    whole = hash64(pd.Series([r["request_id"] for r in records]), 5, "fail")
    assert p.request_hash(np.array([7, 3, 3])).tolist() == whole[[7, 3, 3]].tolist()
    assert p.request_hash(np.arange(0, 40, 2)).tolist() == whole[0::2].tolist()
    assert p.request_hash(np.arange(40)[::-1]).tolist() == whole[::-1].tolist()
    assert p.request_hash(np.zeros(0, np.int64)).tolist() == []


def test_request_view_isin_reads_each_rows_label_and_leaves_absent_rows_out():
    from simulator.routing.matching import RequestView

    models = pd.Categorical(["openai-main/gpt-4o", None, "azure/gpt-4o", "openai-main/gpt-4o-mini", None])
    view = RequestView(pd.DataFrame({"model": models}))
    assert view.isin("model", ["openai-main/gpt-4o"]).tolist() == [True, False, False, False, False]
    assert view.isin("model", ["gpt-4o"], bare=True).tolist() == [True, False, True, False, False]
    assert view.isin("model", ["nothing/else"]).tolist() == [False] * 5
    empty = RequestView(pd.DataFrame({"model": pd.Categorical([None, None], categories=[])}))
    assert empty.isin("model", ["openai-main/gpt-4o"]).tolist() == [False, False]
