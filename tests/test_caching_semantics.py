"""The complete prompt-caching semantics, each on a hand-computed case: Anthropic explicit caching with several
breakpoints, the 20-block lookback and mixed 5-minute / 1-hour TTLs; OpenAI extended retention (24 h); Gemini
explicit cached contents with their storage fee per token-hour. Prices are the providers' published rates per
million tokens, quoted where used; the carried-state contract (a chunked replay equals one pass) is checked for the
new modes too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.errors import ScenarioError
from simulator.state.caching.analysis import cache_costs, simulate_frame
from simulator.state.caching.kernel import NO_BREAKPOINT, KernelState, simulate_cache
from simulator.state.caching.rules import CacheRules

MIN = 60_000
H1 = 60 * MIN
NB = NO_BREAKPOINT


@pytest.fixture(scope="module")
def rules():
    return CacheRules.load()


def kernel(ts_ms, blocks, tokens, inp, bps, ttls, *, lookback=20, min_tokens=1024, storage=False, state=None,
           refresh=True):
    """Explicit-mode kernel on hand-written requests: ``blocks`` are block-id lists, every block ``tokens`` long."""
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    return simulate_cache(ts_ms, np.zeros(len(ts_ms)), offsets, [x for b in blocks for x in b],
                          np.full(offsets[-1], tokens), inp, True, 1, 5 * MIN, min_tokens, 1, refresh, state,
                          breakpoints=np.array(bps, np.int64), breakpoint_ttl_ms=np.array(ttls, np.int64),
                          lookback_blocks=lookback, storage=storage)


def test_two_breakpoints_mixed_ttls_and_the_lookback():
    # 2,000-token blocks A B C D. Request 1 (t=0): [A B], breakpoints after A (1 h) and at the end (5 min): nothing
    # cached yet, so A is written at the 1-hour rate and B at the 5-minute rate.
    # Request 2 (t=10 min): [A B C]. A's 1-hour entry is live (read 2,000); AB expired at 5 min; B and C are written
    # at the end breakpoint's 5-minute rate (4,000).
    # Request 3 (t=12 min): [A B C D], one breakpoint at the end: D is new, but the lookback finds ABC (written at
    # 10 min, live until 15 min) one block back: read 6,000, write 2,000.
    # Request 4 (t=13 min): the same prefix as request 3 without lookback: its own entry ABCD is live (read 8,000).
    blocks = [[1, 2], [1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]]
    bps = [[0, -1, NB, NB], [0, -1, NB, NB], [-1, NB, NB, NB], [-1, NB, NB, NB]]
    ttls = [[H1, 5 * MIN, 0, 0], [H1, 5 * MIN, 0, 0], [5 * MIN] * 4, [5 * MIN] * 4]
    r = kernel([0, 10 * MIN, 12 * MIN, 13 * MIN], blocks, 2000, [9000] * 4, bps, ttls)
    assert r.cache_read_tokens.tolist() == [0, 2000, 6000, 8000]
    assert r.cache_write_tokens.tolist() == [4000, 4000, 2000, 0]
    assert r.cache_write_1h_tokens.tolist() == [2000, 0, 0, 0]
    # Without the lookback, request 3 cannot see ABC: it writes its whole prefix.
    r0 = kernel([0, 10 * MIN, 12 * MIN], blocks[:3], 2000, [9000] * 3, bps[:3], ttls[:3], lookback=0)
    assert r0.cache_read_tokens.tolist() == [0, 2000, 0]
    assert r0.cache_write_tokens.tolist() == [4000, 4000, 8000]


def test_lookback_is_limited_to_20_blocks():
    # 100-token blocks: request 1 caches 2 blocks (AB) at its end breakpoint; request 2 extends them by 21 blocks:
    # AB sits 21 blocks before the end, out of reach; with 20 extra blocks it is found.
    base = [1, 2]
    far, near = base + list(range(10, 31)), base + list(range(10, 30))
    bps, ttls = [[-1, NB, NB, NB]] * 2, [[5 * MIN] * 4] * 2
    got_far = kernel([0, MIN], [base, far], 100, [10_000] * 2, bps, ttls, min_tokens=100)
    got_near = kernel([0, MIN], [base, near], 100, [10_000] * 2, bps, ttls, min_tokens=100)
    assert got_far.cache_read_tokens.tolist() == [0, 0] and got_far.cache_write_tokens.tolist() == [200, 2300]
    assert got_near.cache_read_tokens.tolist() == [0, 200] and got_near.cache_write_tokens.tolist() == [200, 2000]


def test_longer_ttls_must_come_first_and_below_minimum_breakpoints_are_skipped():
    # A 5-minute breakpoint before a 1-hour one: the later TTL is cut to 5 minutes (no 1-hour writes).
    r = kernel([0], [[1, 2]], 2000, [5000], [[0, 1, NB, NB]], [[5 * MIN, H1, 0, 0]])
    assert r.cache_write_tokens.tolist() == [4000] and r.cache_write_1h_tokens.tolist() == [0]
    # The first breakpoint (500 tokens) is under the 1,024 minimum: it is silently skipped, and the prefix up to
    # the second one (1,000 + 500 + ... = 1,500 tokens) is written as one 5-minute segment.
    r = kernel([0], [[1, 2, 3]], 500, [5000], [[0, 2, NB, NB]], [[H1, 5 * MIN, 0, 0]])
    assert r.cache_write_tokens.tolist() == [1500] and r.cache_write_1h_tokens.tolist() == [0]


def frame(rows, model):
    """(minute, prefix_blocks, block_tokens, input, output) rows on one model, one workflow."""
    t0 = pd.Timestamp("2026-11-16T00:00:00Z")
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(rows))],
        "timestamp": pd.DatetimeIndex([t0 + pd.Timedelta(minutes=r[0]) for r in rows]).as_unit("ns"),
        "model": model, "prefix_blocks": [r[1] for r in rows], "block_tokens": [r[2] for r in rows],
        "input_tokens": np.array([r[3] for r in rows], np.int64),
        "output_tokens": np.array([r[4] for r in rows], np.int64), "workflow_tag": "w",
    })


def test_anthropic_breakpoints_priced_by_hand(rules):
    # Claude Sonnet 4.6: input $3, 5-minute write $3.75, 1-hour write $6, read $0.30, output $15 per M.
    df = frame([(0, [1, 2], 2000, 5000, 100), (10, [1, 2, 3], 2000, 7000, 100)], "anthropic-main/claude-sonnet-4-6")
    sim = simulate_frame(df, rules, mode="explicit", ttl="5m", breakpoints=[(0, "1h"), (-1, "5m")])
    assert sim["cache_read_tokens"].tolist() == [0, 2000]
    assert sim["cache_write_tokens"].tolist() == [4000, 4000]
    assert sim["cache_write_1h_tokens"].tolist() == [2000, 0]
    costs = cache_costs(df, sim, rules)["cost_with_cache_usd"].tolist()
    assert costs[0] == pytest.approx((1000 * 3 + 2000 * 6 + 2000 * 3.75 + 100 * 15) / 1e6)
    assert costs[1] == pytest.approx((1000 * 3 + 2000 * 0.30 + 4000 * 3.75 + 100 * 15) / 1e6)


def test_breakpoint_errors_are_one_line(rules):
    df = frame([(0, [1, 2], 2000, 5000, 100)], "anthropic-main/claude-sonnet-4-6")
    with pytest.raises(ScenarioError, match=r"breakpoints: at most 4 per request. Got 5 instead"):
        simulate_frame(df, rules, mode="explicit", breakpoints=[(i, None) for i in range(5)])
    flash = frame([(0, [1, 2], 2000, 5000, 100)], "google-vertex/gemini-2.5-flash")
    with pytest.raises(ScenarioError, match=r"'google-vertex/gemini-2.5-flash' \(google\) takes at most 1 explicit "
                                            r"breakpoint\(s\). Got 2 instead"):
        simulate_frame(flash, rules, mode="explicit", ttl="1h", breakpoints=[(0, None), (-1, None)])
    with pytest.raises(ScenarioError, match=r"breakpoint ttl '24h' is not allowed .* allowed: 5m, 1h"):
        simulate_frame(df, rules, mode="explicit", breakpoints=[(0, "24h")])
    gemini3 = frame([(0, [1], 5000, 6000, 10)], "google-vertex/gemini-3-pro")
    with pytest.raises(ScenarioError, match="bills storage per token-hour, but pricing/cache-rules.yaml has no "
                                            "storage_mtok_hour"):
        simulate_frame(gemini3, rules, mode="explicit", ttl="1h")


def test_openai_extended_retention_24h(rules):
    # GPT-5.1, one 3,000-token prefix used at 0, 2 h and 30 h. In-memory retention (5 min) never hits; 24 h
    # retention hits at 2 h (rounded to 1,024 + 15 x 128 = 2,944 tokens) and misses at 30 h (28 h after the last
    # use). GPT-5.1 cached input is $0.125 vs $1.25 per M: the hit saves 2,944 x 1.125 / 1e6.
    df = frame([(0, [7], 3000, 4000, 10), (120, [7], 3000, 4000, 10), (1800, [7], 3000, 4000, 10)],
               "openai-main/gpt-5.1")
    short = simulate_frame(df, rules, mode="automatic", ttl="5m")
    long = simulate_frame(df, rules, mode="automatic", ttl="24h")
    assert short["cache_read_tokens"].tolist() == [0, 0, 0]
    assert long["cache_read_tokens"].tolist() == [0, 2944, 0]
    saved = (cache_costs(df, short, rules)["cost_with_cache_usd"].sum()
             - cache_costs(df, long, rules)["cost_with_cache_usd"].sum())
    assert saved == pytest.approx(2944 * (1.25 - 0.125) / 1e6)
    with pytest.raises(ScenarioError, match=r"ttl '24h' is not allowed for 'openai-main/gpt-4o-mini' \(openai\); "
                                            r"allowed: 5m, 10m, 1h"):
        simulate_frame(df.assign(model="openai-main/gpt-4o-mini"), rules, mode="automatic", ttl="24h")


def test_gemini_explicit_cached_contents_bill_storage(rules):
    # Gemini 2.5 Flash: input $0.30, cached $0.03, output $2.50 per M; cached-content storage $1.00 per M tokens
    # per hour. A 10,000-token prefix with a 1-hour TTL used at 0, 30 and 70 minutes: written at 0 (stored 1 h),
    # read at 30 (a hit does not extend the TTL), expired at 60, written again at 70 (stored another hour).
    df = frame([(0, [9], 10_000, 12_000, 100), (30, [9], 10_000, 12_000, 100), (70, [9], 10_000, 12_000, 100)],
               "google-vertex/gemini-2.5-flash")
    sim = simulate_frame(df, rules, mode="explicit", ttl="1h")
    assert sim["cache_read_tokens"].tolist() == [0, 10_000, 0]
    assert sim["cache_write_tokens"].tolist() == [10_000, 0, 10_000]
    assert sim["storage_token_hours"].tolist() == [10_000.0, 0.0, 10_000.0]
    assert sim["cache_storage_usd"].tolist() == pytest.approx([0.01, 0.0, 0.01])
    costs = cache_costs(df, sim, rules)["cost_with_cache_usd"].tolist()
    write_row = (12_000 * 0.30 + 100 * 2.5) / 1e6 + 0.01  # writes cost the plain input price, plus storage
    read_row = (2_000 * 0.30 + 10_000 * 0.03 + 100 * 2.5) / 1e6
    assert costs == pytest.approx([write_row, read_row, write_row])


def test_chunked_equals_one_pass_for_the_new_modes(rules):
    # Multi-turn sessions growing by one block per turn, several breakpoints and the lookback; Gemini storage.
    rng = np.random.default_rng(4)
    rows = []
    for turn in range(60):
        session = int(rng.integers(0, 6))
        rows.append((turn * 2, [100 + session] + [1000 * session + k for k in range(turn % 7 + 1)], 900,
                     20_000, 50))
    for model, kw in (("anthropic-main/claude-sonnet-4-6", {"breakpoints": [(0, "1h"), (2, "5m"), (-1, "5m")]}),
                      ("google-vertex/gemini-2.5-flash", {"ttl": "1h"})):
        df = frame(rows, model)
        codes = np.zeros(len(df), np.int64)
        whole = simulate_frame(df, rules, mode="explicit", model_codes=codes, **kw)
        state = KernelState()
        parts = [simulate_frame(df.iloc[a:b], rules, mode="explicit", model_codes=codes[a:b], state=state, **kw)
                 for a, b in ((0, 17), (17, 18), (18, 60))]
        pd.testing.assert_frame_equal(pd.concat(parts), whole)
        assert whole["cache_read_tokens"].sum() > 0 and whole["cache_write_tokens"].sum() > 0


def test_gemini_implicit_caching_has_no_write_premium_and_no_storage(rules):
    # Gemini 2.5 Flash implicit caching (automatic): the provider caches the prefix itself; a hit reads it at the
    # cached rate ($0.03 vs $0.30 per M), a miss costs the plain input price, nothing is stored or billed per hour.
    df = frame([(0, [9], 10_000, 12_000, 100), (3, [9], 10_000, 12_000, 100), (30, [9], 10_000, 12_000, 100)],
               "google-vertex/gemini-2.5-flash")
    sim = simulate_frame(df, rules, mode="automatic", ttl="5m")
    assert sim["cache_read_tokens"].tolist() == [0, 10_000, 0]  # 30 min: 27 min after the last use, expired
    assert sim["cache_write_tokens"].tolist() == [0, 0, 0] and sim["storage_token_hours"].tolist() == [0, 0, 0]
    costs = cache_costs(df, sim, rules)["cost_with_cache_usd"].tolist()
    plain = (12_000 * 0.30 + 100 * 2.5) / 1e6
    assert costs == pytest.approx([plain, (2_000 * 0.30 + 10_000 * 0.03 + 100 * 2.5) / 1e6, plain])


def test_caching_breakpoints_scenario_runs():
    from pathlib import Path

    from simulator.api import run

    s = run(Path(__file__).resolve().parents[1] / "scenarios" / "caching-breakpoints.yaml").summary
    caching = {p["name"]: {r["workflow_tag"]: r for r in p["caching"]["by_workflow"]}["(all)"] for p in s["policies"]}
    end_only, head = caching["sonnet-end-breakpoint-5m"], caching["sonnet-head-1h-end-5m"]
    # the 1-hour breakpoint on the shared head makes later requests hit where the end breakpoint alone misses
    assert head["hits"] > end_only["hits"] and head["cache_write_1h_tokens"] > 0 == end_only["cache_write_1h_tokens"]
    assert caching["gemini-explicit-cached-contents"]["cache_storage_usd"] > 0
    assert "cache_storage_usd" not in caching["gemini-implicit"]
    assert caching["gpt-5-1-retention-24h"]["hits"] >= caching["gpt-5-1-in-memory"]["hits"]
