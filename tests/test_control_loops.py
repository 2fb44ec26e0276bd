"""Runaway sessions: the loop rules on hand-built sessions (expectations worked out by hand in the comments), the
kill lever, state carried across chunks, and the default rule's recall and false flags on the sample week."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator.api import run
from simulator.cli import cli
from simulator.control.loops import LoopState, SessionIndex, apply_session_kill, chunk_inputs, fingerprints, loop_inputs
from simulator.control.settings import LoopDetection
from simulator.synth.generator import generate_week

ROOT = Path(__file__).resolve().parents[1]
T0 = pd.Timestamp("2026-03-02T12:00:00Z").value  # a Monday, on a 5-minute boundary
S = 10**9


def _baseline_rows():
    """20 sessions of workflow `wf`, one request each, costs 1..20, in distinct 5-minute buckets from 10:00 to
    11:35 (all complete before 12:00): baseline samples 1, 2, ..., 20."""
    ts = [T0 - 2 * 3600 * S + i * 300 * S for i in range(20)]
    return ts, [f"base-{i}" for i in range(20)], [float(i + 1) for i in range(20)]


def _arrays(ts, sessions, cost, fp=None, failed=None):
    n = len(ts)
    return {"ts": np.asarray(ts, dtype=np.int64), "session_id": np.asarray(sessions, dtype=object),
            "workflow_tag": np.full(n, "wf", dtype=object), "team": np.full(n, "t", dtype=object),
            "weight": np.asarray(cost, dtype=np.float64), "tokens": np.asarray(cost, dtype=np.float64) * 1000,
            "cost": np.asarray(cost, dtype=np.float64),
            "fingerprint": np.asarray(fp if fp is not None else np.arange(1, n + 1), dtype=np.int64),
            "failed": np.asarray(failed if failed is not None else np.zeros(n, bool), dtype=bool)}


def _runaway(n_requests: int):
    """Session R from 12:00:00, one $10 request every 30 s. The rate before request k is the spend of R's requests
    in (t_k - 300 s, t_k): requests k-9 .. k-1 (k-10 sits exactly 300 s back and is out), so 10 * min(k, 9)."""
    ts, sessions, cost = _baseline_rows()
    ts += [T0 + 30 * S * k for k in range(n_requests)]
    sessions += ["R"] * n_requests
    cost += [10.0] * n_requests
    return ts, sessions, cost


def test_rate_rule_fires_at_the_hand_computed_minute():
    # p95 of 1..20 (linear): position 0.95 * 19 = 18.05 -> 19 + 0.05 * (20 - 19) = 19.05; threshold 3x = 57.15.
    # Rate 10 * min(k, 9) first exceeds 57.15 at k = 6 (60 > 57.15): 12:03:00 = first excess, pending starts.
    # `for: 1m`: the alert fires at the first request at least 60 s later with the rate still above: k = 8, 12:04:00.
    state = LoopState(LoopDetection())
    fired, killed = state.step(**_arrays(*_runaway(12)))
    assert not killed.any()
    assert state.threshold(0, T0) == pytest.approx(57.15)
    (session,) = state.sessions()
    assert session["session_id"] == "R" and session["rule"] == "rate"
    assert session["detected_at"] == "2026-03-02T12:04:00+00:00"
    assert session["detection_delay_s"] == 60.0
    # requests k = 8..11 run after detection: 4 x $10
    assert session["requests_after_detection"] == 4 and session["cost_after_detection_usd"] == 40.0
    assert np.flatnonzero(fired).tolist() == [20 + 8]
    summary = state.summary()
    assert summary["sessions_flagged"] == 1 and summary["cost_after_detection_usd"] == 40.0
    assert summary["detection_delay_s_p50"] == 60.0 and summary["detection_delay_s_max"] == 60.0


def test_for_zero_fires_at_the_first_excess_and_too_few_samples_never_fire():
    state = LoopState(LoopDetection(**{"for": "0s"}))
    state.step(**_arrays(*_runaway(12)))
    (session,) = state.sessions()
    assert session["detected_at"] == "2026-03-02T12:03:00+00:00" and session["detection_delay_s"] == 0.0
    # 21 samples are needed; 20 complete ones exist at 12:00: no rate alert at all
    state = LoopState(LoopDetection(min_baseline_samples=21, identical_requests=0))
    state.step(**_arrays(*_runaway(12)))
    assert state.sessions() == []


def test_multiplier_and_quantile_are_configurable():
    # p50 of 1..20 = 10.5; 2x = 21: rate 10 * min(k, 9) > 21 first at k = 3 (12:01:30); for 1m -> k = 5, 12:02:30
    state = LoopState(LoopDetection(quantile=0.5, multiplier=2))
    state.step(**_arrays(*_runaway(12)))
    assert state.sessions()[0]["detected_at"] == "2026-03-02T12:02:30+00:00"


def test_kill_blocks_the_session_from_detection_on_like_a_rate_limit():
    arrays = _arrays(*_runaway(12))
    blocked_in = np.zeros(32, dtype=bool)
    blocked_in[3] = True  # a baseline row already blocked by something else stays blocked
    state = LoopState(LoopDetection(), kill=True)
    out = apply_session_kill(**arrays, blocked=blocked_in, state=state)
    assert np.flatnonzero(out).tolist() == [3] + list(range(28, 32))  # R's requests k = 8..11
    assert state.sessions()[0]["cost_after_detection_usd"] == 40.0


def test_state_carries_across_chunks():
    arrays = _arrays(*_runaway(40))
    whole = LoopState(LoopDetection())
    whole.step(**arrays)
    for size in (1, 7, 23):
        chunked = LoopState(LoopDetection())
        for i in range(0, 60, size):
            chunked.step(**{k: v[i:i + size] for k, v in arrays.items()})
        assert json.dumps(chunked.summary()) == json.dumps(whole.summary())


def test_identical_consecutive_requests():
    # session I: 7 requests 100 s apart (no cost, so no rate alert), the same fingerprint from the 2nd on; the
    # failed attempt at row 4 (fingerprint 0) neither breaks nor extends the run. Identical successful requests
    # before each row: row 5 sees 3 (rows 1-3), row 6 sees 4 (rows 1, 2, 3, 5): the rule (4) fires at row 6.
    ts = [T0 + 100 * S * i for i in range(7)]
    fp = [11, 22, 22, 22, 0, 22, 22]
    failed = [False, False, False, False, True, False, False]
    state = LoopState(LoopDetection(identical_requests=4, retry_storm=0))
    state.step(**_arrays(ts, ["I"] * 7, [0.0] * 7, fp, failed))
    (session,) = state.sessions()
    assert session["rule"] == "identical_requests"
    # row 6 is at T0 + 600 s; the run started at row 1 (T0 + 100 s): delay 500 s
    assert session["detected_at"] == "2026-03-02T12:10:00+00:00"
    assert session["detection_delay_s"] == 500.0
    # fingerprints: (prefix hash, input tokens, prompt); failed rows and rows without input tokens are 0
    fps = fingerprints(np.array(["p", "p", "p", "p"], dtype=object), np.array([5, 5, 5, 0]),
                       np.array(["a", "a", "b", "a"], dtype=object), np.array([False, True, False, False]))
    assert fps[1] == 0 and fps[3] == 0 and fps[0] != fps[2] and fps[0] != 0


def test_retry_storm_within_one_window():
    # 5 failed attempts 30 s apart (span 120 s <= 300 s), then a 6th request: flagged at the 6th (T0 + 150 s),
    # onset = the first failure (T0).
    ts = [T0 + 30 * S * i for i in range(6)]
    state = LoopState(LoopDetection(identical_requests=0, retry_storm=5))
    state.step(**_arrays(ts, ["F"] * 6, [0.0] * 6, [0] * 6, [True] * 5 + [False]))
    (session,) = state.sessions()
    assert (session["rule"], session["detected_at"], session["detection_delay_s"]) == (
        "retry_storm", "2026-03-02T12:02:30+00:00", 150.0)
    # the same 5 failures 90 s apart span 360 s > 300 s: not a storm; a success in between resets the count
    for gap, failed in ((90, [True] * 5 + [False]), (30, [True, True, False, True, True, True])):
        state = LoopState(LoopDetection(identical_requests=0, retry_storm=5))
        state.step(**_arrays([T0 + gap * S * i for i in range(6)], ["F"] * 6, [0.0] * 6, [0] * 6, failed))
        assert state.sessions() == []


def _cache_scenario(tmp_path: Path, weight: str) -> dict:
    """Priced by the catalog (claude-sonnet-4-6: $3 / M input, $0.30 / M cache read, $15 / M output).

    20 baseline sessions at 10:00-11:35 (one request each, 20,000 input + 100 output tokens: $0.0615 and 20,100
    tokens); then session C from 12:00, a request every 30 s with 100,000 input tokens of which 95,000 are cache
    reads and 100 output tokens: 5,000 x 3 + 95,000 x 0.30 + 100 x 15 = $0.045 per request, 100,100 tokens.
    By tokens, C's rate (100,100 x min(k, 9)) passes 3 x 20,100 = 60,300 at k = 1 and the rule (for 1m) fires at
    k = 3; by cost, C's rate reaches at most 9 x $0.045 = $0.405 > 3 x $0.0615 = $0.1845 at k = 5: fires at k = 7.
    With 4 requests C is a loop by token count only."""
    rows = [{"request_id": f"b{i}", "timestamp": pd.Timestamp(T0 - 2 * 3600 * S + i * 300 * S, tz="UTC").isoformat(),
             "model": "anthropic-main/claude-sonnet-4-6", "input_tokens": 20_000, "output_tokens": 100,
             "session_id": f"base-{i}", "workflow_tag": "agent"} for i in range(20)]
    rows += [{"request_id": f"c{k}", "timestamp": pd.Timestamp(T0 + 30 * S * k, tz="UTC").isoformat(),
              "model": "anthropic-main/claude-sonnet-4-6", "input_tokens": 100_000, "cache_read_tokens": 95_000,
              "output_tokens": 100, "session_id": "C", "workflow_tag": "agent"} for k in range(4)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "cache", "traffic": "t.csv",
                                                    "loop_detection": {"weight": weight}}))
    return run(tmp_path / "s.yaml").summary["loops"]


def test_price_weighting_counts_cache_reads_at_their_cost(tmp_path):
    by_tokens = _cache_scenario(tmp_path, "tokens")
    assert [s["session_id"] for s in by_tokens["sessions"]] == ["C"]
    assert by_tokens["sessions"][0]["detected_at"] == pd.Timestamp(T0 + 90 * S, tz="UTC").isoformat()
    by_cost = _cache_scenario(tmp_path, "cost")
    assert by_cost["sessions"] == []
    baseline = {b["workflow_tag"]: b for b in by_cost["baselines"]}["agent"]
    assert baseline["quantile_per_window"] == pytest.approx(0.0615)  # 20 equal samples: their value


def test_kill_candidate_in_the_replay(tmp_path):
    ts, sessions, cost = _runaway(12)
    # the same traffic priced by the catalog: claude-haiku-4-5 at $1 per million input tokens, so c x 1,000,000
    # input tokens cost $c (baseline sessions $1..$20, R's requests $10)
    rows = [{"request_id": f"r{i:03d}", "timestamp": pd.Timestamp(t, tz="UTC").isoformat(),
             "model": "anthropic-main/claude-haiku-4-5", "input_tokens": int(c * 1_000_000), "output_tokens": 0,
             "session_id": s, "workflow_tag": "wf"} for i, (t, s, c) in enumerate(zip(ts, sessions, cost))]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    # R's requests are also identical (same input tokens, no prefix or prompt): with the identical-requests rule
    # on, 5 of them (k = 0..4) flag R at k = 5 (7 requests blocked, $70); with it off, the rate rule at k = 8.
    for identical, blocked, rule in ((0, 4, "rate"), (5, 7, "identical_requests")):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({
            "name": "kill", "traffic": "t.csv", "loop_detection": {"identical_requests": identical},
            "candidates": [{"name": "kill", "kill_runaway_sessions": True}]}))
        summary = run(tmp_path / "s.yaml").summary
        policy = summary["policies"][0]
        assert policy["requests_blocked"] == policy["requests_refused"] == blocked
        # a killed request is refused: spend prevented, never a routing saving
        assert policy["spend_prevented_usd"] == pytest.approx(10.0 * blocked) and policy["savings_usd"] == 0.0
        kill = policy["session_kill"]
        assert kill["sessions_killed"] == 1 and kill["spend_avoided_usd"] == pytest.approx(10.0 * blocked)
        assert kill["sessions"][0]["rule"] == rule
        assert summary["loops"]["sessions"][0]["detected_at"] == kill["sessions"][0]["detected_at"]


def test_scenario_rejects_bad_loop_settings(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "x", "traffic": "t.csv",
                                                    "loop_detection": {"window": "5 minutes"}}))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert "loop_detection.window: must be a duration like 30s, 5m, 1h or 7d" in result.stderr
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "x", "traffic": "t.csv",
                                                    "loop_detection": {"multiplyer": 3}}))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2 and "unknown key 'multiplyer'. Did you mean 'multiplier'?" in result.stderr


def test_generated_runaways_are_found_and_chunking_changes_nothing():
    week = generate_week(days=3, requests=20_000, seed=3)
    frame = week.traffic
    rule = LoopDetection()
    status = frame["status_code"].to_numpy()
    arrays = loop_inputs(frame, frame["cost_usd"].to_numpy(), status, frame["input_tokens"].to_numpy(),
                         frame["output_tokens"].to_numpy(), rule)
    whole = LoopState(rule)
    whole.step(**arrays)
    truth = set(week.runaway_sessions["session_id"])
    scored = whole.summary(truth)["truth"]
    assert scored["labeled_runaway"] == 2 and scored["recall"] == 1.0
    chunked = LoopState(rule)
    for i in range(0, len(frame), 1777):
        chunked.step(**{k: v[i:i + 1777] for k, v in arrays.items()})
    assert json.dumps(chunked.summary(truth)) == json.dumps(whole.summary(truth))


def test_replays_sharing_their_sessions_equal_replays_on_their_own():
    # The control room numbers a chunk's sessions once for the recorded replay and every candidate. Two replays of
    # the same chunks with different costs (the second pays 40x on one workflow, so its flags differ) must give,
    # each, exactly what a state with its own sessions gives.
    week = generate_week(days=3, requests=20_000, seed=3)
    frame = week.traffic
    rule = LoopDetection()
    status = frame["status_code"].to_numpy()
    costs = [frame["cost_usd"].to_numpy(),
             np.where(frame["workflow_tag"].to_numpy(dtype=object) == frame["workflow_tag"].iloc[0], 40.0, 1.0)
             * frame["cost_usd"].to_numpy()]
    index = SessionIndex()
    shared = [LoopState(rule, index=index) for _ in costs]
    alone = [LoopState(rule) for _ in costs]
    for i in range(0, len(frame), 4999):
        part = frame.iloc[i:i + 4999]
        chunk = chunk_inputs(part)
        chunk["slots"] = index.slots(chunk["session_keys"], chunk["session_id"], chunk["workflow_tag"],
                                     chunk["team"], chunk["ts"])
        for k, cost in enumerate(costs):
            args = (part, cost[i:i + 4999], status[i:i + 4999], part["input_tokens"].to_numpy(),
                    part["output_tokens"].to_numpy(), rule)
            shared[k].step(**loop_inputs(*args, chunk))
            alone[k].step(**loop_inputs(*args))
    summaries = [json.dumps(state.summary()) for state in shared]
    assert summaries == [json.dumps(state.summary()) for state in alone]
    assert summaries[0] != summaries[1]
    assert shared[0].sessions_key() == shared[1].sessions_key() != alone[0].sessions_key()
    pd.testing.assert_frame_equal(shared[1].session_table(), alone[1].session_table())


def test_recall_and_false_flags_on_the_sample_week_match_the_readme():
    result = CliRunner().invoke(cli, ["loops", str(ROOT / "datasets/sample/traffic.parquet"), "--truth",
                                      str(ROOT / "datasets/sample/runaway_sessions.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    truth = json.loads(result.stdout)["truth"]
    assert truth["labeled_runaway"] == 4 and truth["true_flags"] == 4 and truth["recall"] == 1.0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"recall \*\*(\d+)%\*\* \((\d) of (\d)\), false-flag rate \*\*([\d.]+)%\*\* \((\d+) of "
                       r"([\d,]+) other sessions\)", readme)
    assert stated, "README must state the default rule's recall and false-flag rate on the sample week"
    assert int(stated.group(1)) == round(100 * truth["recall"])
    assert (int(stated.group(2)), int(stated.group(3))) == (truth["true_flags"], truth["labeled_runaway"])
    assert int(stated.group(5)) == truth["false_flags"]
    negatives = int(stated.group(6).replace(",", ""))
    assert stated.group(4) == f"{100 * truth['false_flags'] / negatives:.3f}"


def test_old_baseline_samples_leave_the_window_across_chunks():
    # baseline_days 1. Two days before T0 (outside the window at 12:00): 20 sessions of $100 (samples 100 x 20);
    # two hours before T0: 20 sessions of $1..$20. At T0 the window holds only 1..20: p95 19.05, 3x = 57.15, so R
    # ($10 every 30 s) fires at 12:04:00 as in test_rate_rule_fires_at_the_hand_computed_minute. Were the old samples
    # still counted (40 samples: 1..20 and twenty 100s), the p95 would be 100 and nothing would fire (rate <= 90).
    old_ts = [T0 - 2 * 86_400 * S + i * 300 * S for i in range(20)]
    ts, sessions, cost = _runaway(12)
    ts, sessions, cost = old_ts + ts, [f"old-{i}" for i in range(20)] + sessions, [100.0] * 20 + cost
    arrays = _arrays(ts, sessions, cost)
    rule = LoopDetection(baseline_days=1, identical_requests=0)
    for size in (52, 1, 5, 21, 30):
        state = LoopState(rule)
        for i in range(0, 52, size):
            state.step(**{k: v[i:i + size] for k, v in arrays.items()})
        (session,) = state.sessions()
        assert (session["session_id"], session["detected_at"]) == ("R", "2026-03-02T12:04:00+00:00")
    # with the old samples inside the window (baseline_days 7) the bar is 3 x 100 and R stays below it
    state = LoopState(LoopDetection(baseline_days=7, identical_requests=0))
    state.step(**arrays)
    assert state.sessions() == []
    # at the end of the traffic (12:10, R's buckets flagged and left out) the 1-day baseline is the 20 recent samples
    state = LoopState(rule)
    state.step(**arrays)
    (base,) = state.baselines()
    assert base["samples"] == 20 and base["quantile_per_window"] == 19.05


def test_chunk_inputs_shared_per_chunk_object():
    # Kill candidates and the control room take a chunk's session keys and text hashes from Chunk.shared: made once
    # per chunk, and never another chunk's (two chunks of different rows, the same function).
    from simulator.core import Chunk, Context
    from simulator.facts import facts_of
    from simulator.pricing.catalog import Catalog

    frame = generate_week(days=1, requests=600, seed=5).traffic
    calls = []

    def make(f):
        calls.append(len(f))
        return chunk_inputs(f)

    ctx = Context(Catalog(), facts_of(frame))
    first, second = (Chunk(part.reset_index(drop=True), ctx) for part in (frame.iloc[:200], frame.iloc[200:]))
    a = first.shared(make)
    assert first.shared(make) is a and calls == [200]
    b = second.shared(make)
    assert calls == [200, len(frame) - 200]
    assert list(a["session_id"]) == list(frame["session_id"].iloc[:200].to_numpy(dtype=object))
    assert list(b["session_id"]) == list(frame["session_id"].iloc[200:].to_numpy(dtype=object))
    assert not a["text_hash"].flags.writeable  # shared by every replay: nobody writes into it
