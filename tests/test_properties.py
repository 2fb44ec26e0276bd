"""Property-based tests over the loaders and the replay: nothing lost, order-free, split-free, identity saves 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.api import run
from simulator.errors import InputError
from simulator.routing.scenario import parse_scenario
from simulator.io.traffic import load_traffic

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER = ["request_id", "timestamp", "model", "input_tokens", "output_tokens", "cost_usd", "user_id", "team"]
MODELS = ["openai-main/gpt-4o", "openai-main/gpt-4o-mini", "anthropic-main/claude-haiku-4-5"]

good_ts = st.integers(0, 2 * 24 * 3600).map(
    lambda s: f"2026-11-16T{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z".replace(
        "2026-11-16", "2026-11-17" if s >= 24 * 3600 else "2026-11-16"))
bad_ts = st.sampled_from(["2026-11-16T09:00:00", "yesterday", "2099-01-01T00:00:00Z", "0001-01-01T00:00:00Z", ""])
good_tokens = st.integers(0, 20_000).map(str)
bad_tokens = st.sampled_from(["-3", "2.5", "many", "", "1e30"])
costs = st.one_of(st.just(""), st.floats(0, 1, allow_nan=False).map(lambda x: f"{x:.6f}"),
                  st.sampled_from(["NaN", "inf", "-1"]))


def row(valid_only: bool):
    ts = good_ts if valid_only else st.one_of(good_ts, good_ts, good_ts, bad_ts)
    tokens = good_tokens if valid_only else st.one_of(good_tokens, good_tokens, good_tokens, bad_tokens)
    cost = st.just("") if valid_only else costs
    return st.tuples(st.integers(0, 40).map(lambda i: f"r{i}"), ts, st.sampled_from(MODELS), tokens, tokens, cost,
                     st.sampled_from(["u1", "u2", ""]), st.sampled_from(["search", "support", ""]))


def write_csv(path: Path, rows) -> Path:
    path.write_text("\n".join([",".join(HEADER)] + [",".join(r) for r in rows]) + "\n", encoding="utf-8")
    return path


def unique_ids(rows):
    return [(f"r{i}", *r[1:]) for i, r in enumerate(rows)]


def scenario(paths: list[Path]):
    return parse_scenario({
        "name": "props", "traffic": [str(p) for p in paths], "bootstrap": {"unit": "hour", "draws": 100},
        "candidates": [{
            "name": "split-4o",
            "rules": [{"id": "r", "when": {"models": ["openai-main/gpt-4o"]}, "load_balance_targets": [
                {"target": "openai-main/gpt-4o-mini", "weight": 60},
                {"target": "anthropic-main/claude-haiku-4-5", "weight": 40}]}],
            "budgets": [{"id": "b", "limit_to": 0.02, "unit": "cost_per_day", "budget_applies_per": ["user"]}],
        }],
    }, "props.yaml", ".")


def summary_text(paths: list[Path]) -> str:
    return json.dumps(run(scenario(paths)).summary, sort_keys=True)


@SETTINGS
@given(rows=st.lists(row(valid_only=False), min_size=1, max_size=40), as_jsonl=st.booleans())
def test_no_row_is_lost(tmp_path, rows, as_jsonl):
    if as_jsonl:
        path = tmp_path / "t.jsonl"
        path.write_text("".join(json.dumps(dict(zip(HEADER, r))) + "\n" for r in rows), encoding="utf-8")
    else:
        path = write_csv(tmp_path / "t.csv", rows)
    try:
        loaded = load_traffic([path])
    except InputError as exc:  # only "every row rejected" may stop a load of well-formed files
        assert "no valid rows" in str(exc), exc
        return
    assert loaded.rows_read == len(rows)
    assert loaded.rows_read == loaded.rows_replayed + loaded.rows_rejected
    assert loaded.frame["request_id"].is_unique
    first_line = 1 if as_jsonl else 2  # CSV line 1 is the header
    assert loaded.rejects["row"].is_unique
    assert set(loaded.rejects["row"]) <= set(range(first_line, first_line + len(rows)))


@SETTINGS
@given(rows=st.lists(row(valid_only=False), min_size=2, max_size=30), data=st.data())
def test_permuting_rows_changes_nothing(tmp_path, rows, data):
    # one valid row, and a same-id same-time copy with other content: which copy survives must not depend on order
    rows = rows + [("r999", "2026-11-16T12:00:00Z", MODELS[0], "100", "10", "", "u1", "search"),
                   ("r999", "2026-11-16T12:00:00Z", MODELS[1], "900", "90", "", "u2", "support")]
    permuted = data.draw(st.permutations(rows))
    assert summary_text([write_csv(tmp_path / "a.csv", rows)]) == summary_text([write_csv(tmp_path / "b.csv", permuted)])


@SETTINGS
@given(rows=st.lists(row(valid_only=True), min_size=2, max_size=30), data=st.data())
def test_splitting_a_file_changes_nothing(tmp_path, rows, data):
    cut = data.draw(st.integers(1, len(rows) - 1))
    whole = summary_text([write_csv(tmp_path / "whole.csv", rows)])
    parts = summary_text([write_csv(tmp_path / "part1.csv", rows[:cut]), write_csv(tmp_path / "part2.csv", rows[cut:])])
    assert whole == parts


@SETTINGS
@given(rows=st.lists(row(valid_only=True), min_size=1, max_size=30).map(unique_ids))
def test_identity_candidate_saves_exactly_zero(tmp_path, rows):
    path = write_csv(tmp_path / "t.csv", rows)
    identity = [{"id": f"keep-{i}", "when": {"models": [m]}, "load_balance_targets": [{"target": m}]}
                for i, m in enumerate(MODELS)]
    scen = parse_scenario({"name": "identity", "traffic": str(path), "bootstrap": {"draws": 100},
                           "candidates": [{"name": "same", "rules": identity}]}, "identity.yaml", ".")
    policy = run(scen).summary["policies"][0]
    assert policy["savings_usd"] == 0.0 and policy["monthly_savings_usd"] == 0.0
    assert policy["requests_changed"] == 0
    assert policy["monthly_savings_ci95"] == [0.0, 0.0]


@pytest.mark.parametrize("rows", [[("r1", "2026-11-16T09:00:00Z", MODELS[0], "10", "1", "", "u1", "search")] * 3])
def test_exact_duplicates_keep_one(tmp_path, rows):
    loaded = load_traffic([write_csv(tmp_path / "t.csv", rows)])
    assert (loaded.rows_replayed, loaded.rows_rejected) == (1, 2)
