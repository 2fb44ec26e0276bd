"""Prompt-caching rules, kernel, analysis and the Mooncake importer. Expectations are worked out by hand or from raw data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.state.caching.analysis import cache_costs, cache_summary, genai_unit_prices, simulate_frame, ttl_break_even
from simulator.state.caching.kernel import simulate_cache
from simulator.state.caching.prefixes import SOURCE_HASH, SOURCE_NONE, SOURCE_PROMPT, build_prefix_blocks
from simulator.state.caching.rules import CacheRules
from simulator.errors import InputError, ScenarioError
from simulator.io.importers.mooncake import import_mooncake

MOONCAKE = Path("/work/shared/data/mooncake-synthetic/synthetic_trace.jsonl")
MIN = 60_000
T5 = 5 * MIN
H1 = 60 * MIN


@pytest.fixture(scope="module")
def rules():
    return CacheRules.load()


def run(ts_ms, blocks, block_tokens, input_tokens, *, mode, ttl=T5, min_tokens=1024, inc=1, refresh=True, models=None):
    """Kernel on a small hand-written trace: ``blocks`` is a list of block-id lists, one per request."""
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    return simulate_cache(
        ts_ms, models if models is not None else np.zeros(len(ts_ms)), offsets, [x for b in blocks for x in b],
        block_tokens, input_tokens, True, mode, ttl, min_tokens, inc, refresh,
    )


def table(rows):
    """Canonical-table rows from (minute, model, prefix_hash, prefix_tokens, input_tokens, output_tokens, workflow)."""
    t0 = pd.Timestamp("2026-12-01T00:00:00Z")
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(rows))],
        "timestamp": pd.DatetimeIndex([t0 + pd.Timedelta(minutes=r[0]) for r in rows]).as_unit("ns"),
        "model": [r[1] for r in rows],
        "prefix_hash": [r[2] for r in rows],
        "prefix_tokens": np.array([r[3] for r in rows], np.int64),
        "input_tokens": np.array([r[4] for r in rows], np.int64),
        "output_tokens": np.array([r[5] for r in rows], np.int64),
        "workflow_tag": [r[6] for r in rows],
    })


# -- kernel semantics -----------------------------------------------------------------------------------------------
def test_explicit_hit_within_ttl_and_miss_just_after():
    # write at 0; hit exactly at the TTL (live while ts <= expiry = 300000), refreshed to 600000; miss at 600001
    r = run([0, T5, 2 * T5 + 1], [[7], [7], [7]], [5000] * 3, [6000] * 3, mode=1)
    assert r.cache_write_tokens.tolist() == [5000, 0, 5000]
    assert r.cache_read_tokens.tolist() == [0, 5000, 0]
    assert r.hit.tolist() == [False, True, False]


def test_refresh_on_hit_extends_the_ttl_only_when_the_rule_says_so():
    ts = [0, 4 * MIN, 8 * MIN]  # 8 min: within 5 min of the 4-min hit, not of the write at 0
    refreshed = run(ts, [[1]] * 3, [2000] * 3, [3000] * 3, mode=1, refresh=True)
    assert refreshed.cache_read_tokens.tolist() == [0, 2000, 2000]
    fixed = run(ts, [[1]] * 3, [2000] * 3, [3000] * 3, mode=1, refresh=False)
    assert fixed.cache_read_tokens.tolist() == [0, 2000, 0]
    assert fixed.cache_write_tokens.tolist() == [2000, 0, 2000]


def test_prefix_below_minimum_is_flagged_and_never_cached():
    # 4,095 tokens on a 4,096 minimum: nothing written, nothing read, even when repeated
    r = run([0, MIN], [[3], [3]], [4095, 4095], [5000, 5000], mode=1, min_tokens=4096)
    assert r.below_minimum.tolist() == [True, True]
    assert r.cache_write_tokens.tolist() == [0, 0] and r.cache_read_tokens.tolist() == [0, 0]
    ok = run([0, MIN], [[3], [3]], [4096, 4096], [5000, 5000], mode=1, min_tokens=4096)
    assert ok.cache_write_tokens.tolist() == [4096, 0] and ok.cache_read_tokens.tolist() == [0, 4096]


def test_openai_rounding_1024_then_128_steps():
    # blocks of 1000 + 500 tokens both seen -> 1500 -> 1024 + floor(476 / 128) * 128 = 1408
    r = run([0, MIN], [[1, 2], [1, 2]], [1000, 500, 1000, 500], [2000, 2000], mode=0, min_tokens=1024, inc=128)
    assert r.cache_read_tokens.tolist() == [0, 1408]
    assert r.cache_write_tokens.tolist() == [0, 0]  # automatic mode: no write premium
    # a 1000-token run is below 1024: zero, but the 1500-token prefix is not below the minimum
    r = run([0, MIN], [[1, 2], [1, 9]], [1000, 500, 1000, 500], [2000, 2000], mode=0, min_tokens=1024, inc=128)
    assert r.cache_read_tokens.tolist() == [0, 0] and not r.below_minimum.any()
    # the read never exceeds input_tokens: 1500 cached prefix, 1300 input -> 1024 + 2 * 128 = 1280
    r = run([0, MIN], [[1, 2], [1, 2]], [1000, 500, 1000, 500], [2000, 1300], mode=0, min_tokens=1024, inc=128)
    assert r.cache_read_tokens.tolist() == [0, 1280]


def test_partial_prefix_match_counts_the_leading_run_only():
    blocks = [[10, 11, 12, 13], [10, 11, 20, 21], [20, 11, 12, 13]]
    r = run([0, MIN, 2 * MIN], blocks, [512] * 12, [2048] * 3, mode=0, min_tokens=512, inc=1)
    # request 2 shares blocks 10, 11 -> 1024; request 3 starts with a different block -> nothing, positions matter
    assert r.cache_read_tokens.tolist() == [0, 1024, 0]


def test_automatic_mode_every_use_refreshes_the_blocks():
    # uses at 0, 4 and 8 min: each within 5 min of the previous use, so both later requests hit
    r = run([0, 4 * MIN, 8 * MIN], [[1, 2]] * 3, [512] * 6, [1024] * 3, mode=0, min_tokens=1024, inc=128)
    assert r.cache_read_tokens.tolist() == [0, 1024, 1024]
    r = run([0, 6 * MIN], [[1, 2]] * 2, [512] * 4, [1024] * 2, mode=0, min_tokens=1024, inc=128)
    assert r.cache_read_tokens.tolist() == [0, 0]


def test_cold_cache_after_a_model_switch():
    # same prefix: model 0 writes, model 1 starts cold (writes again), model 0 is still warm at 2 min
    r = run([0, MIN, 2 * MIN], [[5]] * 3, [3000] * 3, [4000] * 3, mode=1, models=np.array([0, 1, 0]))
    assert r.cache_write_tokens.tolist() == [3000, 3000, 0]
    assert r.cache_read_tokens.tolist() == [0, 0, 3000]


def test_1h_writes_are_recorded_separately():
    r = run([0, 30 * MIN], [[5]] * 2, [3000] * 2, [4000] * 2, mode=1, ttl=H1)
    assert r.cache_write_1h_tokens.tolist() == [3000, 0] and r.cache_read_tokens.tolist() == [0, 3000]


def test_disabled_rows_and_rows_without_prefix():
    r = simulate_cache([0, 1, 2], 0, [0, 1, 1, 2], [4, 4], [2000, 2000], [3000] * 3, [True, True, False], 1, T5, 1024, 1, True)
    assert r.no_prefix_info.tolist() == [False, True, False]
    assert r.cache_write_tokens.tolist() == [2000, 0, 0]


def test_unsorted_timestamps_are_rejected():
    with pytest.raises(InputError, match="sorted"):
        run([5, 1], [[1], [1]], [2000, 2000], [3000, 3000], mode=1)


# -- rules ---------------------------------------------------------------------------------------------------------
def test_rules_resolve_by_provider_and_longest_prefix(rules):
    assert rules.resolve("anthropic-main/claude-haiku-4-5-20251001").min_tokens == 4096
    assert rules.resolve("anthropic-main/claude-opus-4-7").min_tokens == 2048
    assert rules.resolve("anthropic-main/claude-opus-4-20250514").min_tokens == 1024
    openai = rules.resolve("openai/gpt-4o-mini")
    assert (openai.mode, openai.min_tokens, openai.increment_tokens, openai.write_multiplier) == ("automatic", 1024, 128, {})
    assert rules.resolve("openai/gpt-4.1").read_multiplier == 0.25  # "." normalised to "-"
    assert rules.resolve("openai/gpt-4o").read_multiplier == 0.5  # `gpt-4` keys would not swallow gpt-4o
    assert rules.resolve("bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0").provider == "aws"
    anthropic = rules.resolve("anthropic/claude-sonnet-4-5")
    assert anthropic.write_multiplier == {T5: 1.25, H1: 2.0} and anthropic.refresh_on_hit


def test_rules_dated_history(rules):
    # Opus 4.7: 4,096 in the June 2026 list, 2,048 in the list checked 2026-11-26
    assert rules.resolve("anthropic/claude-opus-4-7", at="2026-07-01T12:00:00Z").min_tokens == 4096
    assert rules.resolve("anthropic/claude-opus-4-7", at="2026-12-01").min_tokens == 2048
    p = rules.params(["anthropic/claude-opus-4-7"] * 2, ["2026-07-01", "2026-12-01"])
    assert p["min_tokens"].tolist() == [4096, 2048]


def test_rules_errors_are_one_line_and_helpful(rules, tmp_path):
    with pytest.raises(ScenarioError, match="Did you mean 'claude-haiku-4-5'"):
        rules.resolve("anthropic/claude-haiku-4-6")
    with pytest.raises(ScenarioError, match="no prompt-caching rules for provider 'mistral'"):
        rules.resolve("mistral/mistral-large")
    with pytest.raises(ScenarioError, match="not allowed"):
        rules.params(["openai/gpt-4o"], ttl="2h")
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "schema_version: 1\nsources: {a: https://x}\nproviders:\n  openai:\n    defaults:\n"
        "      min_tokns: {value: 1, since: 2026-01-01, source: a}\n"
    )
    with pytest.raises(ScenarioError) as err:
        CacheRules.load(bad)
    assert "providers.openai.defaults.min_tokns" in str(err.value) and "Did you mean 'min_tokens'" in str(err.value)
    assert "\n" not in str(err.value)
    bad.write_text("schema_version: 1\nsources: {a: https://x}\nproviders:\n  openai:\n    defaults:\n      min_tokens: {value: 1}\n")
    with pytest.raises(ScenarioError, match="needs `since`"):
        CacheRules.load(bad)


# -- prefixes from the table -----------------------------------------------------------------------------------------
def test_prefix_blocks_from_hash_prompt_and_nothing():
    df = pd.DataFrame({
        "prefix_hash": ["sys-a", None, None],
        "prefix_tokens": [1500, 0, 0],
        "prompt": [None, "You are a bot.\n\nEarlier turn.\n\nNew question", "single segment"],
    })
    b = build_prefix_blocks(df)
    assert b.source.tolist() == [SOURCE_HASH, SOURCE_PROMPT, SOURCE_NONE]
    assert b.offsets.tolist() == [0, 1, 3, 3]
    # ceil(len("You are a bot.\n\n") / 4) = ceil(16 / 4) = 4; ceil(len("Earlier turn.\n\n") / 4) = ceil(15 / 4) = 4
    assert b.tokens.tolist() == [1500, 4, 4]
    assert b.approximate.tolist() == [False, True, False]
    counted = build_prefix_blocks(df, count_tokens=lambda texts: [7] * len(texts))
    assert counted.tokens.tolist() == [1500, 7, 7] and not counted.approximate.any()


def test_prefix_blocks_column_wise_hash_rows_among_other_sources():
    """Plain hash rows (category column, as ingest makes it) are built column-wise; the rest row by row. Ids are
    blake2b-64 of the text, computed here by hand."""
    import hashlib

    def blake(text):
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)

    df = pd.DataFrame({
        "prefix_blocks": [["a", "b"], None, None, None, None],
        "block_tokens": [10, 0, 0, 0, 0],
        "prefix_hash": pd.Categorical([None, "sys", "", "sys", "sys"]),
        "prefix_tokens": [0, 5, 5, 0, 7],
        "prompt": [None, None, "x\n\ny", None, "ignored\n\nwhen a hash is usable"],
    })
    b = build_prefix_blocks(df)
    assert b.source.tolist() == [1, SOURCE_HASH, SOURCE_PROMPT, SOURCE_NONE, SOURCE_HASH]
    assert b.offsets.tolist() == [0, 2, 3, 4, 4, 5]
    assert b.ids.tolist() == [blake("a"), blake("b"), blake("sys"), blake("x"), blake("sys")]
    assert b.tokens.tolist() == [10, 10, 5, 1, 7]  # "x\n\n" is 3 characters: ceil(3 / 4) = 1
    assert b.approximate.tolist() == [False, False, True, False, False]


# -- costs and summaries -------------------------------------------------------------------------------------------
def test_genai_prices_regression_example(rules):
    # reference doc: Opus 4.7, 1,000 input of which 300 read and 100 written (5 min), 200 output = $0.008775
    df = table([(0, "anthropic/claude-opus-4-7", None, 0, 1000, 200, "w")])
    sim = pd.DataFrame({"cache_read_tokens": [300], "cache_write_tokens": [100], "cache_write_1h_tokens": [0]})
    cost = cache_costs(df, sim, rules)
    assert cost["cost_with_cache_usd"].iloc[0] == pytest.approx(0.008775, rel=1e-12)
    assert cost["cost_without_cache_usd"].iloc[0] == pytest.approx((1000 * 5 + 200 * 25) / 1e6, rel=1e-12)


def test_5m_vs_1h_write_premium(rules):
    # Haiku 4.5, a 10,000-token prefix in a 12,000-token prompt, 100 output, used at 0 and 20 min.
    # 5m: two writes at 1.25 x $1 = $1.25/M: 2 x (10,000 x 1.25 + 2,000 x 1 + 100 x 5) / 1e6 = 0.03
    # 1h: write at 2 x $1 then a read at 0.1 x $1: (10,000 x 2 + 2,500) + (10,000 x 0.1 + 2,500) = 26,000 / 1e6
    df = table([(0, "anthropic/claude-haiku-4-5", "sys", 10_000, 12_000, 100, "w"),
                (20, "anthropic/claude-haiku-4-5", "sys", 10_000, 12_000, 100, "w")])
    be = ttl_break_even(df, rules)
    assert be.loc["(all)", "cost_5m_usd"] == pytest.approx(0.03, rel=1e-12)
    assert be.loc["(all)", "cost_1h_usd"] == pytest.approx(0.026, rel=1e-12)
    assert be.loc["(all)", "cheaper_ttl"] == "1h" and be.loc["(all)", "gaps_5m_to_1h"] == 1

    # without a 1 h price in the catalog, the rules' 2x multiplier applies: same answer
    def no_1h(model_id, ts):
        return {"input_mtok": 1.0, "output_mtok": 5.0, "cache_read_mtok": 0.1, "cache_write_mtok": 1.25, "cache_write_1h_mtok": None}

    sim = simulate_frame(df, rules, ttl="1h")
    assert cache_costs(df, sim, rules, unit_prices=no_1h)["cost_with_cache_usd"].sum() == pytest.approx(0.026, rel=1e-12)


def test_summary_per_workflow_and_below_minimum(rules):
    # classify: 3,000-token system prompt on Haiku 4.5 (minimum 4,096) -> silently skipped; chat: hits once
    df = table([(0, "anthropic/claude-haiku-4-5", "short", 3000, 3500, 10, "classify"),
                (1, "anthropic/claude-haiku-4-5", "short", 3000, 3500, 10, "classify"),
                (0, "anthropic/claude-haiku-4-5", "long", 5000, 6000, 10, "chat"),
                (2, "anthropic/claude-haiku-4-5", "long", 5000, 6000, 10, "chat")])
    sim = simulate_frame(df, rules)
    s = cache_summary(df, sim, cache_costs(df, sim, rules))
    assert s.loc["classify", "below_minimum_requests"] == 2 and s.loc["classify", "hits"] == 0
    assert s.loc["chat", "hits"] == 1 and s.loc["chat", "hit_rate"] == 0.5
    assert s.loc["chat", "cache_write_tokens"] == 5000 and s.loc["chat", "cache_read_tokens"] == 5000
    # chat: 2 x (6000 x 1 + 10 x 5) = 12,100 without; 5000 x 1.25 + 1000 + 50 + 5000 x 0.1 + 1000 + 50 = 8,850 with
    assert s.loc["chat", "cost_without_cache_usd"] == pytest.approx(12_100 / 1e6, rel=1e-12)
    assert s.loc["chat", "cost_with_cache_usd"] == pytest.approx(8_850 / 1e6, rel=1e-12)
    assert s.loc["(all)", "requests"] == 4


# -- Mooncake importer ---------------------------------------------------------------------------------------------
def test_mooncake_rejects_malformed_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [
        {"timestamp": 5, "input_length": 600, "output_length": 3, "hash_ids": [1, 2]},
        "not json",
        {"timestamp": 1, "input_length": 10, "output_length": 1},
        {"timestamp": -1, "input_length": 10, "output_length": 1, "hash_ids": [1]},
        {"timestamp": 5, "input_length": 1025, "output_length": 1, "hash_ids": [1, 2]},
        {"timestamp": 5, "input_length": 100, "output_length": 1, "hash_ids": [3]},
    ]
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    df, rejects = import_mooncake(path, "openai/gpt-4o", start="2026-03-01T10:00:00")
    assert [(r["line"], r["reason"].split(" ")[0]) for r in rejects] == [(2, "not"), (3, "missing"), (4, "timestamp"), (5, "hash_ids")]
    assert df["request_id"].tolist() == ["t:1", "t:6"]  # equal timestamps keep file order
    assert df["timestamp"].iloc[0] == pd.Timestamp("2026-03-01T10:00:00.005Z")
    assert df["block_tokens"].tolist() == [512, 512] and df["prefix_blocks"].iloc[0] == [1, 2]
    with pytest.raises(InputError, match="gateway id"):
        import_mooncake(path, "gpt-4o")


@pytest.mark.skipif(not MOONCAKE.exists(), reason=f"Mooncake trace not found at {MOONCAKE}")
def test_mooncake_trace_against_raw_jsonl():
    raw = [json.loads(line) for line in MOONCAKE.read_text().splitlines() if line.strip()]
    df, rejects = import_mooncake(MOONCAKE, "openai/gpt-4o")
    assert len(df) == 3993 and rejects == []
    assert df["timestamp"].is_monotonic_increasing
    assert df["input_tokens"].sum() == sum(r["input_length"] for r in raw)
    assert (df["timestamp"].iloc[-1] - df["timestamp"].iloc[0]) == pd.Timedelta(milliseconds=1_022_025)

    # independent expectation: with a TTL longer than the trace, no minimum and 1-token steps, a request reads the
    # tokens of its longest leading block run seen as a prefix of an earlier request (in time order, file order on ties)
    order = sorted(range(len(raw)), key=lambda i: raw[i]["timestamp"])
    seen, first_block_seen, expected_read = set(), 0, []
    for i in order:
        ids = tuple(raw[i]["hash_ids"])
        run = 0
        while run < len(ids) and ids[: run + 1] in seen:
            run += 1
        first_block_seen += run > 0
        expected_read.append(min(run * 512, raw[i]["input_length"]))
        seen.update(ids[: k + 1] for k in range(len(ids)))
    b = build_prefix_blocks(df)
    ts_ms = pd.DatetimeIndex(df["timestamp"]).as_unit("ns").asi8 // 1_000_000
    r = simulate_cache(ts_ms, 0, b.offsets, b.ids, b.tokens, df["input_tokens"], True, 0, 2 * H1, 1, 1, True)
    assert int(r.hit.sum()) == first_block_seen
    assert r.cache_read_tokens.tolist() == expected_read


def test_cache_costs_price_each_model_on_its_own_utc_day(rules):
    # Two models over a UTC midnight; the price list doubles from 2026-12-02. Rows 23:59 and 00:01 fall on
    # different days; the timestamps are written in UTC-5 to check that the day is the UTC one.
    asked = []

    def prices(model_id, ts):
        asked.append((model_id, ts.strftime("%Y-%m-%d")))
        day2 = ts.strftime("%Y-%m-%d") == "2026-12-02"
        base = {"anthropic/claude-haiku-4-5": 1.0, "anthropic/claude-opus-4-7": 5.0}[model_id] * (2 if day2 else 1)
        return {"input_mtok": base, "output_mtok": 10 * base, "cache_read_mtok": None, "cache_write_mtok": None,
                "cache_write_1h_mtok": None}

    minutes = [23 * 60 + 59, 24 * 60 + 1, 23 * 60 + 58, 24 * 60 + 2, 24 * 60 + 3]
    models = ["anthropic/claude-haiku-4-5", "anthropic/claude-haiku-4-5", "anthropic/claude-opus-4-7",
              "anthropic/claude-opus-4-7", "anthropic/claude-haiku-4-5"]
    df = table([(m, model, None, 0, 1_000_000, 100_000, "w") for m, model in zip(minutes, models)])
    df["timestamp"] = df["timestamp"].dt.tz_convert("America/New_York")
    sim = simulate_frame(df, rules)
    got = cache_costs(df, sim, rules, unit_prices=prices)
    # 1 M input + 0.1 M output at (base, 10 x base): 2 x base dollars; Haiku base 1 then 2, Opus 5 then 10
    assert got["cost_without_cache_usd"].tolist() == [2.0, 4.0, 10.0, 20.0, 4.0]
    assert got["cost_with_cache_usd"].tolist() == [2.0, 4.0, 10.0, 20.0, 4.0]
    # one price look-up per (model, UTC day), in order of first appearance
    assert asked == [("anthropic/claude-haiku-4-5", "2026-12-01"), ("anthropic/claude-haiku-4-5", "2026-12-02"),
                     ("anthropic/claude-opus-4-7", "2026-12-01"), ("anthropic/claude-opus-4-7", "2026-12-02")]
