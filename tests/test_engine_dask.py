"""The Dask engine gives the local engine's summary.json on a 2-worker LocalCluster with several partitions.

Counts, labels, orders, budget and rate-limit decisions must match exactly; money totals are summed per partition
(another float addition order), so floats are compared as in tests/test_engines.py:
``math.isclose(rel_tol=1e-12, abs_tol=1.01e-6)`` after 6-decimal rounding.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator.api import run
from simulator.cli import cli
from simulator.routing.scenario import load_scenario
from simulator.synth.generator import generate
from tests.test_engines import HAIKU, OPUS, SONNET, assert_same

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_network():
    """Overrides the conftest fixture that blocks socket creation: a LocalCluster's scheduler and workers talk over
    loopback sockets (127.0.0.1 only, asserted below). tfysim itself still never reaches the network."""
    yield


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:
        assert c.scheduler_info()["address"].startswith(("tcp://127.0.0.1", "inproc"))
        yield c


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dask")
    traffic, _ = generate(days=2, requests=5000, seed=1)
    # Rows dealt round-robin over 4 files (row groups of 700): every partition spans the whole window, so budget
    # and rate-limit slots are spread over all partitions and only the shuffle brings them together.
    (folder / "traffic").mkdir()
    for i in range(4):
        traffic.iloc[i::4].to_parquet(folder / "traffic" / f"part-{i}.parquet", row_group_size=700)
    data = {
        "schema_version": 1, "name": "dask", "traffic": "traffic", "seed": 3,
        "bootstrap": {"unit": "hour", "draws": 200},
        "candidates": [
            {"name": "downgrade", "rules": [{"id": "d", "when": {"models": [OPUS]}, "type": "weight-based-routing",
                                             "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]},
            {"name": "ab-split", "rules": [{"id": "ab", "when": {"models": [OPUS, SONNET]},
                                            "type": "weight-based-routing",
                                            "load_balance_targets": [{"target": OPUS, "weight": 50},
                                                                     {"target": HAIKU, "weight": 50}]}]},
            {"name": "budget", "budgets": [{"id": "team-day", "limit_to": 2.0, "unit": "cost_per_day",
                                            "budget_applies_per": ["team"], "on_exceed": {"fallback": HAIKU}}]},
            {"name": "rate-limits", "rate_limits": [
                {"id": "tokens", "when": {"metadata": {"team": "platform"}}, "limit_to": 20_000,
                 "unit": "tokens_per_minute", "fallback": HAIKU},
                {"id": "per-user", "limit_to": 3, "unit": "requests_per_minute",
                 "rate_limit_applies_per": ["user", "model"]}]},
            {"name": "limit-then-budget",
             "rate_limits": [{"id": "user-rpm", "limit_to": 3, "unit": "requests_per_minute",
                              "rate_limit_applies_per": ["user"], "fallback": HAIKU}],
             "budgets": [{"id": "user-day", "limit_to": 0.5, "unit": "cost_per_day",
                          "budget_applies_per": ["user"]}]},
        ],
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_dask_equals_local(scenario, client):
    from simulator.engines.dask_engine import run_dask

    expected = run(scenario).summary
    result = run_dask(scenario, client=client)
    assert result.engine == "dask"
    assert_same(expected, result.summary)
    policies = {p["name"]: p for p in expected["policies"]}
    # the scenario exercises what it claims: moves, budget reroutes, rate-limit blocks and reroutes
    assert policies["downgrade"]["requests_changed"] > 0 and policies["ab-split"]["requests_changed"] > 0
    assert sum(b["requests_rerouted"] for b in policies["budget"]["budgets"]) > 0
    limits = policies["rate-limits"]["rate_limits"]
    assert limits[0]["requests_rerouted"] > 0 and limits[1]["requests_blocked"] > 0
    assert sum(b["requests_blocked"] for b in policies["limit-then-budget"]["budgets"]) > 0
    keys = [b["key"] for b in policies["limit-then-budget"]["budgets"]]
    assert keys and all(re.fullmatch(r"u-[0-9a-f]{12}", k) for k in keys)  # salted hashes, never user ids


def test_cli_engine_dask_with_scheduler(scenario, client, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(scenario), "--engine", "dask", "--scheduler",
                                      client.scheduler_info()["address"], "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["traffic"]["rows_replayed"] == 5000 and len(summary["policies"]) == 5


def every_feature_scenario(tmp_path: Path) -> Path:
    """Several budget rules (one global: a single component), prompt caching (with its sensitivity replays),
    session bootstrap, evals, a JSON Lines file next to Parquet, and request ids repeated across files (20 of them):
    everything the local engine does."""
    traffic, evals = generate(days=2, requests=3000, seed=5)
    (tmp_path / "t").mkdir()
    traffic.iloc[0::2].to_parquet(tmp_path / "t" / "a.parquet", row_group_size=500)
    jsonl = traffic.iloc[1::2].copy()
    again = traffic.iloc[0:40:2].copy()  # the same ids as rows of a.parquet, one hour later: dropped as duplicates
    again["timestamp"] = again["timestamp"] + pd.Timedelta(hours=1)
    jsonl = pd.concat([jsonl, again])
    jsonl["timestamp"] = jsonl["timestamp"].map(lambda t: t.isoformat())
    jsonl.to_json(tmp_path / "t" / "b.jsonl", orient="records", lines=True)
    evals.to_parquet(tmp_path / "evals.parquet")
    data = {
        "schema_version": 1, "name": "every", "traffic": "t", "evals": "evals.parquet", "seed": 3,
        "bootstrap": {"unit": "session", "draws": 200},
        "candidates": [
            {"name": "budgets", "budgets": [
                {"id": "support-fb", "when": {"metadata": {"team": "support"}}, "limit_to": 2.0,
                 "unit": "cost_per_day", "on_exceed": {"fallback": HAIKU}},
                {"id": "team-day", "limit_to": 1.5, "unit": "cost_per_day", "budget_applies_per": ["team"]},
                {"id": "all-tokens", "limit_to": 2_000_000, "unit": "tokens_per_day", "audit_mode": True}]},
            {"name": "downgrade-then-cache", "rules": [
                {"id": "d", "when": {"models": [OPUS]}, "type": "weight-based-routing",
                 "load_balance_targets": [{"target": HAIKU, "weight": 100}]}],
             "prompt_caching": [{"when": {}, "mode": "explicit", "ttl": "5m"}]},
            {"name": "cache-auto", "prompt_caching": [{"when": {}, "mode": "automatic"}]},
            {"name": "kill", "kill_runaway_sessions": {"window": "5m", "multiplier": 1.5, "min_baseline_samples": 5}},
        ],
    }
    path = tmp_path / "every.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_dask_equals_local_with_every_feature(scenario, client, tmp_path):
    from simulator.engines.dask_engine import run_dask

    path = every_feature_scenario(tmp_path)
    expected = run(path)
    got = run_dask(path, client=client)
    assert expected.rows_rejected == got.rows_rejected == 20
    assert_same(expected.summary, got.summary)
    policies = {p["name"]: p for p in expected.summary["policies"]}
    assert sum(b["requests_blocked"] + b["requests_rerouted"] for b in policies["budgets"]["budgets"]) > 0
    assert policies["downgrade-then-cache"]["caching"]["requests_covered"] > 0
    assert policies["downgrade-then-cache"]["accuracy_delta_pp"] is not None


def test_dask_equals_local_with_levers(client, tmp_path):
    # probes (model and cache opportunities), service tiers, breakpoints, the plan's second pass, week over week
    from simulator.engines.dask_engine import run_dask
    from tests.test_engines import levers_scenario

    path = levers_scenario(tmp_path)
    first = run(path)
    (tmp_path / "previous.json").write_text(json.dumps(first.summary))
    expected = run(path, previous=tmp_path / "previous.json").summary
    assert "plan" in expected and "opportunities" in expected and "since_last_week" in expected
    assert_same(expected, run_dask(path, client=client, previous=tmp_path / "previous.json").summary)


def test_strict_fails_the_same_on_dask(client, tmp_path):
    from tests.test_cli import strict_failure

    strict_failure(tmp_path, "--engine", "dask", "--scheduler", client.scheduler_info()["address"])


def test_dask_equals_local_with_tied_timestamps_and_disjoint_labels(client, tmp_path):
    # Timestamps cut to the minute (many requests share one) and users, teams and projects that only some files
    # hold: the files are joined into one partition per worker and shuffled, so label columns must keep one
    # category set and rows of equal timestamp must replay in request-id order, as the local engine orders them.
    # A 1-per-minute rate limit blocks a different request when that order changes.
    from simulator.engines.dask_engine import run_dask

    traffic, _ = generate(days=1, requests=4000, seed=7)
    traffic["timestamp"] = traffic["timestamp"].dt.floor("min")
    assert traffic["timestamp"].duplicated().sum() > 1000
    (tmp_path / "t").mkdir()
    for i in range(5):
        part = traffic.iloc[i::5].copy()
        part["user_id"] = part["user_id"].astype(str) + f"-f{i % 3}"  # users of file i exist in files i, i+3 only
        part["project"] = f"project-{i}"
        part.to_parquet(tmp_path / "t" / f"part-{i}.parquet", row_group_size=300)
    data = {
        "schema_version": 1, "name": "ties", "traffic": "t", "seed": 3, "bootstrap": {"unit": "hour", "draws": 200},
        "candidates": [
            {"name": "rate", "rate_limits": [{"id": "user", "limit_to": 1, "unit": "requests_per_minute",
                                              "rate_limit_applies_per": ["user"], "fallback": HAIKU}]},
            {"name": "budget", "budgets": [{"id": "project", "limit_to": 0.5, "unit": "cost_per_day",
                                            "budget_applies_per": ["project"]}]},
        ],
    }
    path = tmp_path / "ties.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    expected = run(path).summary
    assert_same(expected, run_dask(path, client=client).summary)
    policies = {p["name"]: p for p in expected["policies"]}
    assert policies["rate"]["rate_limits"][0]["requests_rerouted"] > 0
    assert sum(b["requests_blocked"] for b in policies["budget"]["budgets"]) > 0


def test_own_cluster_is_two_threads_in_process():
    # Without --scheduler the engine starts its workers as threads of this process (in-process transport); the
    # HTTP endpoints distributed always opens listen on loopback only.
    from distributed import Client

    from simulator.engines.dask_engine import local_cluster

    with local_cluster() as cluster, Client(cluster) as c:
        info = c.scheduler_info()
        assert info["address"].startswith("inproc://")
        assert sorted(w["nthreads"] for w in info["workers"].values()) == [1, 1]
        assert set(c.run(os.getpid).values()) == {os.getpid()}
        servers = [cluster.scheduler.http_server] + [w.http_server for w in cluster.workers.values()]
        assert [s.address for s in servers] == ["127.0.0.1"] * 3
        # one process: a per-worker memory limit would compare the whole process's RSS against half of it each
        assert [w["memory_limit"] for w in info["workers"].values()] == [0, 0]


def test_own_threaded_cluster_equals_local_with_every_feature(tmp_path):
    # The same replay with the engine's own cluster (worker threads sharing one process): each thread keeps its own
    # replay context, since the caching sensitivity replays swap the context's translator while they run.
    from simulator.engines.dask_engine import run_dask

    path = every_feature_scenario(tmp_path)
    expected = run(path)
    got = run_dask(path)
    assert expected.rows_rejected == got.rows_rejected == 20
    assert_same(expected.summary, got.summary)
    policies = {p["name"]: p for p in expected.summary["policies"]}
    assert policies["downgrade-then-cache"]["caching"]["requests_covered"] > 0
    assert policies["cache-auto"]["caching"]["requests_covered"] > 0


def test_candidates_with_the_same_state_keys_share_one_shuffle(scenario, client, tmp_path):
    # Two per-team budgets of different sizes and a per-team budget behind a routing rule have the same state keys
    # (team slots), so their rows are shuffled once; a per-user rate limit needs its own shuffle. Results as local.
    from distributed import get_task_stream

    from simulator.engines.components import state_keys
    from simulator.engines.dask_engine import run_dask
    from simulator.routing.scenario import load_scenario

    team = {"budget_applies_per": ["team"], "unit": "cost_per_day", "on_exceed": {"fallback": HAIKU}}
    data = yaml.safe_load(scenario.read_text())
    data["traffic"] = str(scenario.parent / "traffic")
    data["opportunities"] = {"cache": False}  # no caching probes: the only state keys are the candidates' below
    data["candidates"] = [
        {"name": "team-2", "budgets": [{"id": "t", "limit_to": 2.0, **team}]},
        {"name": "team-1", "budgets": [{"id": "t", "limit_to": 1.0, **team}]},
        {"name": "downgrade-team-1", "rules": [{"id": "d", "when": {"models": [OPUS]}, "type": "weight-based-routing",
                                                "load_balance_targets": [{"target": SONNET}]}],
         "budgets": [{"id": "t", "limit_to": 1.0, **team}]},
        {"name": "user-rpm", "rate_limits": [{"id": "u", "limit_to": 3, "unit": "requests_per_minute",
                                              "rate_limit_applies_per": ["user"]}]},
    ]
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cands = load_scenario(path).candidates
    assert state_keys(cands[0]) == state_keys(cands[1]) == state_keys(cands[2]) != state_keys(cands[3])
    expected = run(path).summary
    with get_task_stream(client) as stream:
        got = run_dask(path, client=client).summary
    assert_same(expected, got)
    anchors = {str(r["key"][0] if isinstance(r["key"], tuple) else r["key"]) for r in stream.data
               if "_anchors" in str(r["key"])}
    n_parts = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    # one shuffle for the three team budgets (and the plan's pass, when it combines them), one for the user limit
    assert len(anchors) == 2 * n_parts
    budgets = {p["name"]: sum(b["requests_rerouted"] for b in p["budgets"]) for p in expected["policies"]}
    assert budgets["team-1"] > budgets["team-2"] > 0


PANELS = ("loops", "alerts", "outcomes", "leverage", "adoption")


def _panel_scenario(scenario: Path, tmp_path: Path, kind: str) -> Path:
    """The traffic of ``scenario`` dealt round-robin in time order with control-room panels: ``sessions`` (loop
    detection, outcomes, adoption), ``outcomes`` (outcomes and adoption: no loop rule, so no session-kill probe
    whose workflow keys would group the sessions without the panels' own keys) or ``alerts`` (budget ceilings per
    project, untagged spend); a routing candidate, and for ``alerts`` a budget per team too."""
    data = yaml.safe_load(scenario.read_text())
    traffic = pd.concat([pd.read_parquet(p) for p in sorted((scenario.parent / "traffic").glob("*.parquet"))])
    # without prompts and prefixes: the caching probes' prefix keys would group each workflow's sessions as well
    traffic = traffic.drop(columns=["prompt", "prefix_hash", "prefix_tokens"])
    traffic = traffic.sort_values(["timestamp", "request_id"], ignore_index=True)
    (tmp_path / "traffic").mkdir()
    for i in range(4):  # consecutive requests in different files: a session's requests land in several partitions
        traffic.iloc[i::4].to_parquet(tmp_path / "traffic" / f"part-{i}.parquet", row_group_size=700)
    data["traffic"] = str(tmp_path / "traffic")
    keep = ("downgrade", "budget") if kind == "alerts" else ("downgrade",)
    data["candidates"] = [c for c in data["candidates"] if c["name"] in keep]
    if kind in ("sessions", "outcomes"):
        sessions = sorted(traffic["session_id"].dropna().unique())
        pd.DataFrame({"session_id": sessions[::7] + sessions[::11] + ["not-in-the-traffic"],
                      "outcome": ["pr_merged"] * len(sessions[::7]) + ["eval_failed"] * len(sessions[::11])
                      + ["ticket_closed"],
                      "timestamp": "2026-03-02T15:00:00Z"}).to_csv(tmp_path / "outcomes.csv", index=False)
        data |= {"outcomes": str(tmp_path / "outcomes.csv"), "adoption": {"min_users": 2}}
        if kind == "sessions":
            data["loop_detection"] = {"window": "5m", "multiplier": 1.5, "min_baseline_samples": 5,
                                      "identical_requests": 3, "retry_storm": 2}
    else:
        data["alerts"] = {"runaway_agent": {"enabled": False},
                          "budget_near_ceiling": {"ceilings": [{"project": "*", "limit_to": 0.5,
                                                                "unit": "cost_per_day"}]},
                          "untagged_spend_spike": {"threshold_usd": 0.05, "window": "1h"}}
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("kind", ["sessions", "outcomes", "alerts"])
def test_dask_control_room_equals_local(scenario, client, tmp_path, kind):
    """The control-room panels on Dask: each partition's room holds whole sessions, workflows and projects (the
    traffic's rows are dealt round-robin over 4 files, so only the shuffle brings them together) and the merged
    rooms give the local engine's sections and per-candidate fields, exactly (the local engine is the expectation)."""
    from simulator.engines.components import Components, Rows, anchors, panel_keys
    from simulator.engines.dask_engine import run_dask
    from simulator.io.traffic import load_traffic

    path = _panel_scenario(scenario, tmp_path, kind)
    loaded = load_scenario(path)
    # the panels' keys make several components, so two partitions each hold a room and the rooms are merged
    _, _, links, counts, _ = anchors(*panel_keys(Rows(load_traffic(loaded.paths("traffic")).frame), loaded))
    assert len(set(Components().assign([links], [counts], 2).values())) == 2
    expected = run(path).summary
    got = run_dask(path, client=client).summary
    assert_same(expected, got)
    shown = [k for k in PANELS if k in expected]
    assert shown == {"sessions": ["loops", "outcomes", "leverage", "adoption"],
                     "outcomes": ["outcomes", "leverage", "adoption"], "alerts": ["alerts"]}[kind]
    assert {k: got[k] for k in shown} == {k: expected[k] for k in shown}  # exact, money included
    for mine, theirs in zip(got["policies"], expected["policies"]):
        assert {k: mine.get(k) for k in ("alerts", "outcomes")} == {k: theirs.get(k) for k in ("alerts", "outcomes")}
    if kind != "alerts":  # the panels found something to report
        assert expected["outcomes"]["outcomes_matched"] > 0
        assert any(c["active_users"] for c in expected["adoption"]["cells"])
    if kind == "sessions":
        assert expected["loops"]["sessions_flagged"] > 0
    if kind == "alerts":
        fires = {a["alert"]: a["fires"] for a in expected["alerts"]["backtest"]}
        assert fires["budget_near_ceiling"] > 0 and fires["untagged_spend_spike"] > 0


def test_dask_kill_candidate_keeps_a_session_that_spans_two_workflows_together(client, tmp_path):
    # Session S: six identical requests (claude-haiku-4-5, 1,000,000 input tokens = $1 each, no prompt or prefix)
    # 60 s apart from 12:00, tagged alpha, beta, alpha, beta, alpha, beta; session U: three beta requests. The kill
    # candidate's rule is 4 identical requests only (the rate rule needs 20 baseline samples: none here). At the
    # start of S's request k=4 (12:04) its 4 earlier requests were identical: S is flagged there (workflow alpha, of
    # its first request), requests 4 and 5 are blocked ($2). alpha alone holds 3 of S's requests and beta 3: a
    # replay that splits S by workflow never reaches 4. No panels (no loop_detection), so only the candidate's keys
    # decide the partitions; the rows are dealt over 2 files, so only the shuffle brings a session together.
    from simulator.engines.dask_engine import run_dask

    t0 = pd.Timestamp("2026-03-02T12:00:00Z")
    rows = [("S", ("alpha", "beta")[k % 2], t0 + pd.Timedelta(seconds=60 * k)) for k in range(6)]
    rows += [("U", "beta", t0 + pd.Timedelta(seconds=30 + 60 * k)) for k in range(3)]
    rows.sort(key=lambda r: r[2])
    traffic = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(rows))], "timestamp": [r[2] for r in rows],
                            "model": "anthropic-main/claude-haiku-4-5", "input_tokens": 1_000_000,
                            "output_tokens": 0, "session_id": [r[0] for r in rows],
                            "workflow_tag": [r[1] for r in rows]})
    (tmp_path / "t").mkdir()
    for i in range(2):
        traffic.iloc[i::2].to_parquet(tmp_path / "t" / f"part-{i}.parquet")
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump({
        "schema_version": 1, "name": "kill", "traffic": "t", "seed": 3,
        "candidates": [{"name": "kill", "kill_runaway_sessions": {"identical_requests": 4, "retry_storm": 0}}]}))
    expected = run(path).summary
    got = run_dask(path, client=client).summary
    for summary in (expected, got):  # the hand-worked figures, on both engines
        (policy,) = summary["policies"]
        assert policy["requests_blocked"] == 2 and policy["spend_prevented_usd"] == pytest.approx(2.0)
        kill = policy["session_kill"]
        assert kill["sessions_killed"] == 1 and kill["requests_blocked"] == 2
        assert kill["sessions"] == [{"session_id": "S", "workflow_tag": "alpha", "team": None,
                                     "detected_at": "2026-03-02T12:04:00+00:00", "rule": "identical_requests",
                                     "requests_after_detection": 2, "cost_after_detection_usd": 2.0}]
    assert_same(expected, got)
