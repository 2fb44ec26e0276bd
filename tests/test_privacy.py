"""Privacy: no output of any example scenario, nor of a fixture with distinctive user ids and prompts, contains a
user id or prompt text (budget reports keyed per user show a salted hash); console output neither."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
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


def run_and_scan(scenario: Path, out: Path, secrets: set[str], *extra: str) -> dict[str, bytes]:
    result = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(out), "--write-requests", *extra])
    assert result.exit_code == 0, result.output
    files = output_files(out)
    assert "summary.json" in files
    console = (result.stdout + result.stderr).encode()
    for name, data in {**files, "<console>": console}.items():
        leaked = [s for s in secrets if s.encode() in data]
        assert not leaked, f"{name} contains {leaked[:3]}"
    return files


def test_fixture_outputs_hold_no_user_ids_or_prompts(tmp_path):
    raw = pd.read_json(FIXTURE.parent / "traffic.jsonl", lines=True)
    secrets = secrets_of(raw)
    assert "rejected.rowena@privacy-fixture.example" in secrets  # the rejected row is scanned for too
    files = run_and_scan(FIXTURE, tmp_path / "out", secrets)
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
