"""The streaming engine gives the in-memory engine's summary.json: counts exactly, money to its last printed digit.

Money totals are summed per chunk by the streaming engine and pairwise over the whole table in memory; the float
addition order differs, the sums differ in the last bits, and a sum on a 6-decimal rounding boundary prints 1e-6
apart (seen here: 53.356937 vs 53.356936 with 997-row chunks). Floats are therefore compared with
``math.isclose(rel_tol=1e-12, abs_tol=1.01e-6)``. With one chunk the summaries are identical (tested exactly).
Per-label, per-block and per-slot sums are added in row order by both engines and are bit-equal, and so are the
bootstrap intervals; counts, labels and orders must match exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.api import run
from simulator.engines.chunks import Stream
from simulator.engines.streaming import run_streaming
from simulator.errors import InputError, ScenarioError
from simulator.synth.generator import generate

ROOT = Path(__file__).resolve().parents[1]
OPUS, HAIKU, SONNET = ("anthropic-main/claude-opus-4-7", "anthropic-main/claude-haiku-4-5",
                       "anthropic-main/claude-sonnet-4-6")


def assert_same(a, b, path="summary", abs_tol=1.01e-6):
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}", abs_tol)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]", abs_tol)
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=abs_tol), f"{path}: {a!r} != {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def synth_scenario(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("engines")
    traffic, _ = generate(days=2, requests=5000, seed=1)
    traffic.to_parquet(folder / "traffic.parquet")
    scenario = {
        "schema_version": 1, "name": "engines", "traffic": "traffic.parquet", "seed": 3,
        "bootstrap": {"unit": "hour", "draws": 200},
        "candidates": [
            {"name": "downgrade", "rules": [{"id": "d", "when": {"models": [OPUS]}, "type": "weight-based-routing",
                                             "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]},
            {"name": "ab-split", "rules": [{"id": "ab", "when": {"models": [OPUS, SONNET]},
                                            "type": "weight-based-routing",
                                            "load_balance_targets": [{"target": OPUS, "weight": 50},
                                                                     {"target": HAIKU, "weight": 50}]}]},
            {"name": "budgets", "budgets": [
                {"id": "support-fb", "when": {"metadata": {"team": "support"}}, "limit_to": 3.0,
                 "unit": "cost_per_day", "on_exceed": {"fallback": HAIKU}},
                {"id": "team-day", "limit_to": 2.0, "unit": "cost_per_day", "budget_applies_per": ["team"]},
                {"id": "all-tokens", "limit_to": 4_000_000, "unit": "tokens_per_day", "audit_mode": True}]},
            {"name": "rate-limits", "rate_limits": [
                {"id": "tokens", "when": {"metadata": {"team": "platform"}}, "limit_to": 20_000,
                 "unit": "tokens_per_minute", "fallback": HAIKU},
                {"id": "per-user", "limit_to": 3, "unit": "requests_per_minute",
                 "rate_limit_applies_per": ["user", "model"]}]},
        ],
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


@pytest.mark.parametrize("chunk_rows", [5000, 997, 250])
def test_streaming_equals_in_memory_on_generated_data(synth_scenario, chunk_rows):
    expected = run(synth_scenario).summary
    got = run_streaming(synth_scenario, chunk_rows=chunk_rows).summary
    if chunk_rows >= 5000:
        assert got == expected  # one chunk: the same additions in the same order, bit for bit
    assert_same(expected, got)
    budgets = {p["name"]: p for p in expected["policies"]}["budgets"]
    # the scenario exercises what it claims: a budget ceiling is reached and blocks/reroutes rows
    assert any(b["requests_blocked"] for b in budgets["budgets"])
    assert any(b["requests_rerouted"] for b in budgets["budgets"])
    limits = {p["name"]: p for p in expected["policies"]}["rate-limits"]["rate_limits"]
    assert limits[0]["requests_rerouted"] > 0 and limits[1]["requests_blocked"] > 0


def test_chunks_split_budget_windows(synth_scenario):
    # 250-row chunks cut every day (a budget window) into ~10 chunks: state must carry across them
    stream = Stream([synth_scenario.parent / "traffic.parquet"], chunk_rows=250)
    days = [np.unique(f["timestamp"].array.asi8 // 86_400_000_000_000) for f in stream]
    assert len(days) >= 19 and sum(len(d) == 1 for d in days) >= 15


@pytest.mark.slow
def test_streaming_equals_in_memory_on_sample_scenario():
    scenario = ROOT / "scenarios" / "premium-review.yaml"
    assert_same(run(scenario).summary, run_streaming(scenario, chunk_rows=7000).summary)


def test_csv_and_jsonl_chunks_read_like_parquet(synth_scenario, tmp_path):
    frame = pd.read_parquet(synth_scenario.parent / "traffic.parquet").head(600)
    frame["timestamp"] = frame["timestamp"].map(lambda t: t.isoformat())
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    for name in ("t.csv", "t.jsonl"):
        rows = pd.concat(list(Stream([tmp_path / name], chunk_rows=64)), ignore_index=True)
        assert rows["request_id"].tolist() == sorted(frame["request_id"].tolist(),
                                                      key=lambda r: (frame.set_index("request_id").loc[r, "timestamp"], r))
        assert rows["input_tokens"].sum() == frame["input_tokens"].sum()


def test_duplicates_across_chunks_are_rejected(tmp_path):
    frame = pd.DataFrame({"request_id": ["a", "b", "a", "c"], "model": ["openai/gpt-4o"] * 4,
                          "timestamp": ["2026-01-01T00:00:0%dZ" % i for i in range(4)],
                          "input_tokens": [1, 2, 3, 4], "output_tokens": [1, 1, 1, 1]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    stream = Stream([tmp_path / "t.csv"], chunk_rows=1)
    ids = [r for f in stream for r in f["request_id"]]
    assert ids == ["a", "b", "c"] and stream.rows_rejected == 1 and stream.rows_read == 4


def test_unordered_input_is_a_clear_error(tmp_path):
    # the first row is emitted once a later one arrives; the third is earlier than it
    frame = pd.DataFrame({"request_id": ["a", "b", "c"], "model": ["openai/gpt-4o"] * 3,
                          "timestamp": ["2026-01-01T00:00:05Z", "2026-01-01T00:00:06Z", "2026-01-01T00:00:01Z"],
                          "input_tokens": [1, 2, 3], "output_tokens": [1, 1, 1]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="not in time order across chunks.*Sort the traffic by timestamp"):
        list(Stream([tmp_path / "t.csv"], chunk_rows=1))


@pytest.mark.parametrize("chunk_rows", [997, 250])
def test_streaming_equals_in_memory_with_caching_and_session_bootstrap(tmp_path, synth_scenario, chunk_rows):
    # Prompt-cache tables, the 5 m / 1 h break-even simulations and the last use of each prefix carry across
    # chunks; session bootstrap blocks span chunks. Both must give the in-memory figures.
    data = yaml.safe_load(synth_scenario.read_text())
    data["traffic"] = str(synth_scenario.parent / "traffic.parquet")
    data["bootstrap"] = {"unit": "session", "draws": 200}
    data["candidates"] = [
        {"name": "downgrade-then-cache", "rules": [
            {"id": "d", "when": {"models": [OPUS]}, "type": "weight-based-routing",
             "load_balance_targets": [{"target": HAIKU, "weight": 100}]}],
         "prompt_caching": [{"when": {}, "mode": "explicit", "ttl": "5m"}]},
        {"name": "cache-auto", "prompt_caching": [{"when": {}, "mode": "automatic"}]},
        {"name": "kill", "kill_runaway_sessions": {"multiplier": 1.5, "min_baseline_samples": 5}},
    ]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    expected = run(path).summary
    caching = {p["name"]: p["caching"] for p in expected["policies"] if "caching" in p}
    # the scenario exercises what it claims: hits and writes across the window
    assert caching["downgrade-then-cache"]["requests_covered"] > 1000
    overall = {r["workflow_tag"]: r for r in caching["downgrade-then-cache"]["by_workflow"]}["(all)"]
    assert overall["hits"] > 0 and overall["cache_write_tokens"] > 0
    kill = {p["name"]: p for p in expected["policies"]}["kill"]["session_kill"]
    assert kill["sessions_killed"] > 0 and kill["requests_blocked"] > 0
    assert_same(expected, run_streaming(path, chunk_rows=chunk_rows).summary)


def levers_scenario(folder: Path) -> Path:
    """Generated traffic with every lever: eval samples (model opportunities), prefixes from prompt segments on half
    the rows (cache opportunities, several breakpoints with the lookback), a non-interactive workflow moved to batch,
    flex processing, and a plan of the passing candidates."""
    traffic, evals = generate(days=2, requests=3000, seed=5)
    traffic.loc[traffic.index % 2 == 0, "prefix_hash"] = None  # prompt segments become the prefix blocks
    traffic.to_parquet(folder / "traffic.parquet")
    evals.to_parquet(folder / "evals.parquet")
    data = {
        "schema_version": 1, "name": "levers", "traffic": "traffic.parquet", "evals": "evals.parquet", "seed": 3,
        "bootstrap": {"unit": "hour", "draws": 200}, "workflows": {"content-gen": {"interactive": False}},
        "gates": {"max_accuracy_drop_pp": 2},
        "candidates": [
            {"name": "downgrade", "rules": [{"id": "d", "when": {"models": [OPUS], "metadata": {
                "workflow_tag": "classify-intent"}}, "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]},
            {"name": "tiers", "rules": [
                {"id": "batch", "when": {"metadata": {"workflow_tag": "content-gen"}}, "service_tier": "batch"},
                {"id": "flex", "when": {"models": ["openai-main/gpt-5-mini"]}, "service_tier": "flex"}]},
            {"name": "breakpoints", "prompt_caching": [
                {"when": {"models": [SONNET, OPUS], "metadata": {"workflow_tag": "agent-session"}}, "mode": "explicit",
                 "breakpoints": [{"at": 0, "ttl": "1h"}, {"at": -1, "ttl": "5m"}]}]},
        ],
    }
    path = folder / "levers.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_streaming_equals_in_memory_with_levers(tmp_path):
    path = levers_scenario(tmp_path)
    expected = run(path).summary
    for key in ("opportunities", "cache_opportunities", "plan"):
        assert key in expected, key
    assert len(expected["plan"]["components"]) >= 2 and expected["plan"]["policy"]["requests_changed"] > 0
    policies = {p["name"]: p for p in expected["policies"]}
    assert policies["tiers"]["service_tiers"]["by_tier"] and policies["breakpoints"]["caching"]["requests_covered"]
    (tmp_path / "previous.json").write_text(__import__("json").dumps(expected))
    expected = run(path, previous=tmp_path / "previous.json").summary
    assert expected["since_last_week"]["flagged"] == []  # the same week again: nothing moved
    assert_same(expected, run_streaming(path, chunk_rows=997, previous=tmp_path / "previous.json").summary)
