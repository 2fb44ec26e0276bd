"""Privacy: no output of any example scenario, nor of a fixture with distinctive user ids and prompts, contains a
user id or prompt text (budget reports keyed per user show a salted hash); console output neither."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator.cli import cli
from simulator.summary.privacy import hash_id
from simulator.io.traffic import load_traffic
from tests.outputs_scan import output_files

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "privacy" / "scenario.yaml"
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def secrets_of(traffic: pd.DataFrame) -> set[str]:
    """User ids, and prompt snippets long enough to be unmistakable."""
    users = {str(u) for u in traffic["user_id"].dropna().unique() if len(str(u)) >= 4}
    prompts = set()
    for text in traffic["prompt"].dropna().unique()[:2000]:
        text = str(text).strip()
        if len(text) >= 24:
            prompts.add(text[:24])
            prompts.add(text[-24:])
    return users | prompts


ENGINES = ["local", "streaming", "dask"]


@pytest.fixture(autouse=True)
def no_network(request, monkeypatch):
    """conftest's network block, except in Dask runs: a LocalCluster's scheduler and workers talk over loopback
    (127.0.0.1, asserted in ``dask_scheduler``); tfysim itself never reaches the network."""
    import socket

    callspec = getattr(request.node, "callspec", None)
    if not (callspec and callspec.params.get("engine") == "dask"):
        def refuse(*args, **kwargs):
            raise RuntimeError("network access attempted during a test")

        monkeypatch.setattr(socket, "socket", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture(scope="module")
def dask_scheduler():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        address = client.scheduler_info()["address"]
        assert address.startswith("tcp://127.0.0.1")
        yield address


@pytest.fixture
def engine_args(request):
    """``--engine E`` (and the 2-worker LocalCluster's address for ``dask``) for a test parametrized by engine."""
    engine = request.node.callspec.params["engine"]
    if engine == "dask":
        return ["--engine", "dask", "--scheduler", request.getfixturevalue("dask_scheduler")]
    return ["--engine", engine, "--chunk-rows", "2"]


def run_and_scan(scenario: Path, out: Path, secrets: set[str], *extra: str) -> dict[str, bytes]:
    requests = [] if "dask" in extra else ["--write-requests"]  # the Dask engine writes no per-request files
    result = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(out), *requests, *extra])
    assert result.exit_code == 0, result.output
    files = output_files(out)
    assert "summary.json" in files
    console = (result.stdout + result.stderr).encode()
    for name, data in {**files, "<console>": console}.items():
        leaked = [s for s in secrets if s.encode() in data]
        assert not leaked, f"{name} contains {leaked[:3]}"
    return files


@pytest.mark.parametrize("engine", ENGINES)
def test_fixture_outputs_hold_no_user_ids_or_prompts(tmp_path, engine, engine_args):
    """Every engine (issue 17 item 1: streaming wrote raw user ids as budget keys)."""
    raw = pd.read_json(FIXTURE.parent / "traffic.jsonl", lines=True)
    secrets = secrets_of(raw)
    assert "rejected.rowena@privacy-fixture.example" in secrets  # the rejected row is scanned for too
    files = run_and_scan(FIXTURE, tmp_path / "out", secrets, *engine_args)
    assert "rejects.jsonl" in files
    # The per-user budget is reported, keyed by a stable salted hash of each user (computed by hand here).
    summary = json.loads(files["summary.json"])
    keys = {b["key"] for b in summary["policies"][0]["budgets"]}
    expected = {"u-" + __import__("hashlib").sha256(f"tfysim-id-v1\x1f{u}".encode()).hexdigest()[:12]
                for u in ("zelda.quartermain@privacy-fixture.example", "ulysses.oakenfold@privacy-fixture.example")}
    assert keys == expected
    assert hash_id("zelda.quartermain@privacy-fixture.example", salt="other") not in keys


def test_parquet_requests_output_has_no_user_or_prompt_columns(tmp_path):
    run_and_scan(FIXTURE, tmp_path / "out", set())
    frame = pd.read_parquet(tmp_path / "out" / "requests" / "cap-users.parquet")
    assert not {"user_id", "prompt"} & set(frame.columns)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_example_scenario_outputs_hold_no_user_ids_or_prompts(scenario, tmp_path):
    from simulator.routing.scenario import load_scenario

    loaded = load_traffic(load_scenario(scenario).paths("traffic"))
    secrets = secrets_of(loaded.frame)  # may be empty (public traces carry no users); the fixture test covers that
    run_and_scan(scenario, tmp_path / "out", secrets)


def _by_hand(value: str) -> str:
    return "u-" + __import__("hashlib").sha256(f"tfysim-id-v1\x1f{value}".encode()).hexdigest()[:12]


def _metadata_fixture(tmp_path: Path, budget_key: str, **extra) -> Path:
    """The privacy fixture with metadata: a userId e-mail, the literal strings "None" and "UNTAGGED", or none."""
    rows = [json.loads(line) for line in (FIXTURE.parent / "traffic.jsonl").read_text().splitlines()]
    meta = [{"userId": rows[0]["user_id"], "env": "prod"}, {"userId": "None", "env": "UNTAGGED"}, None,
            {"userId": rows[3]["user_id"], "env": "prod"}, {"userId": "None", "env": "UNTAGGED"}, None]
    for row, m in zip(rows, meta):
        if m is not None:
            row["metadata"] = m
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "meta", "traffic": "traffic.jsonl", **extra,
        "candidates": [{"name": "cap", "budgets": [{"id": "b", "limit_to": 1.0, "unit": "cost_per_day",
                                                   "budget_applies_per": [budget_key]}]}]}))
    return tmp_path / "s.yaml"


@pytest.mark.parametrize("engine", ENGINES)
def test_metadata_budget_keys_are_hashed_unless_declared_non_personal(tmp_path, engine, engine_args):
    """Item 2 (allowlist): metadata.userId is hashed; item 15: "None" is a value, a missing key reads UNTAGGED."""
    scenario = _metadata_fixture(tmp_path, "metadata.userId")
    raw = pd.read_json(tmp_path / "traffic.jsonl", lines=True)
    files = run_and_scan(scenario, tmp_path / "out", secrets_of(raw), *engine_args)
    keys = {b["key"] for b in json.loads(files["summary.json"])["policies"][0]["budgets"]}
    # rows 1 and 4 carry "None", rows 3 and 6 no metadata (row 6 is rejected: no model), rows 1 and 4 the e-mails
    assert keys == {_by_hand("zelda.quartermain@privacy-fixture.example"),
                    _by_hand("ulysses.oakenfold@privacy-fixture.example"), _by_hand("None"), "UNTAGGED"}


def test_declared_non_personal_metadata_key_is_in_clear_and_literal_untagged_apart(tmp_path):
    scenario = _metadata_fixture(tmp_path, "metadata.env", non_personal_metadata=["env"])
    result = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    keys = {b["key"] for b in summary["policies"][0]["budgets"]}
    assert keys == {"prod", '"UNTAGGED" (literal value)', "UNTAGGED"}
    # Not declared: the same key is hashed.
    scenario = _metadata_fixture(tmp_path, "metadata.env")
    result = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(tmp_path / "out2")])
    summary = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert {b["key"] for b in summary["policies"][0]["budgets"]} == {_by_hand("prod"), _by_hand("UNTAGGED"),
                                                                      "UNTAGGED"}


def test_literal_untagged_team_is_not_merged_with_missing_attribution(tmp_path):
    rows = [json.loads(line) for line in (FIXTURE.parent / "traffic.jsonl").read_text().splitlines()][:4]
    rows[0]["team"], rows[1]["team"] = "UNTAGGED", None
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "t", "traffic": "traffic.jsonl"}))
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    teams = {r["team"]: r["requests"] for r in
             json.loads((tmp_path / "out" / "summary.json").read_text())["baseline"]["breakdowns"]["team"]}
    assert teams["UNTAGGED"] == 1 and teams['"UNTAGGED" (literal value)'] == 1 and sum(teams.values()) == 4


def test_user_subjects_are_hashed_everywhere_but_the_truefoundry_config(tmp_path, monkeypatch):
    """Item 3: report.md/html, routing/index.json, summary.json, gate.xml, the step summary and the console hold
    a hash; only the TrueFoundry config (which must match on it) holds the id."""
    user = "zelda.quartermain@privacy-fixture.example"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "subj", "traffic": str(FIXTURE.parent / "traffic.jsonl"), "gates": {"min_monthly_savings_usd": 1e9},
        "candidates": [{"name": "c", "rules": [{
            "id": "r", "when": {"subjects": [f"user:{user}", "team:search"], "models": ["openai-main/gpt-4o"]},
            "load_balance_targets": [{"target": "openai-main/gpt-4o-mini"}]}]}]}))
    step = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["gate", str(tmp_path / "s.yaml"), "--out", str(out), "--junit",
                                      str(tmp_path / "gate.xml"), "--github-summary"])
    assert result.exit_code == 1, result.output  # the savings gate fails
    files = {**output_files(out), "gate.xml": (tmp_path / "gate.xml").read_bytes(), "step.md": step.read_bytes(),
             "<console>": (result.stdout + result.stderr).encode()}
    holding = sorted(name for name, data in files.items() if user.encode() in data)
    assert holding == ["routing/c.truefoundry.yaml"]
    assert _by_hand(user).encode() in files["routing/index.json"]
    assert yaml.safe_load(files["routing/c.truefoundry.yaml"].decode().split("\n---")[0]) is not None
