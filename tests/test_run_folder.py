"""One output folder per run (issue 17 item 16) and where outputs and CI traffic may be (item 4, second half).

Expectations are file listings written down by hand from what each run wrote: a rerun holds exactly its own files
(removed candidates' configs and old ``requests/`` are gone), the previous run is ``<out>.previous``, a symlink
inside the output is never followed, ``--strict`` failures write only rejects.jsonl, and outputs or CI traffic in
the wrong place are refused with one ``Error:`` line (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simulator.cli import cli
from tests.outputs_scan import output_files

REPO = Path(__file__).resolve().parents[1]
TRAFFIC = REPO / "tests" / "fixtures" / "privacy" / "traffic.jsonl"
MINI, GPT4O = "openai-main/gpt-4o-mini", "openai-main/gpt-4o"


def _scenario(folder: Path, names: list[str], traffic: str | Path = TRAFFIC) -> Path:
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "folder", "traffic": str(traffic), "candidates": [
        {"name": n, "rules": [{"id": "r", "when": {"models": [GPT4O]}, "load_balance_targets": [{"target": MINI}]}]}
        for n in names]}))
    return path


def _run(*args: str):
    return CliRunner().invoke(cli, ["run", *map(str, args)])


def test_a_rerun_holds_only_its_own_files_and_keeps_the_previous_run(tmp_path):
    out = tmp_path / "out"
    assert _run(_scenario(tmp_path, ["keep", "drop"]), "--out", out, "--write-requests").exit_code == 0
    first = output_files(out)
    assert "routing/drop.truefoundry.yaml" in first and "requests/drop.parquet" in first
    assert _run(_scenario(tmp_path, ["keep"]), "--out", out).exit_code == 0
    second = output_files(out)
    assert not [n for n in second if "drop" in n or n.startswith("requests/")]
    assert "routing/keep.truefoundry.yaml" in second
    assert output_files(tmp_path / "out.previous") == first  # the run before, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.previous", "s.yaml"]


def test_building_folders_of_killed_runs_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now: a SIGKILLed run's leftover
    left = tmp_path / f".out.tfysim-{dead.pid}-abc123"
    left.mkdir()
    (left / "summary.json").write_text("{}")
    assert _run(_scenario(tmp_path, ["keep"]), "--out", tmp_path / "out").exit_code == 0
    assert not left.exists() and (tmp_path / "out" / "summary.json").is_file()


def test_a_symlink_inside_the_output_is_never_followed(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert _run(_scenario(tmp_path, ["keep"]), "--out", out).exit_code == 0
    elsewhere.mkdir()
    (elsewhere / "keep.litellm.yaml").write_text("precious: true\n")
    (elsewhere / "other.yaml").write_text("precious: true\n")
    import shutil

    shutil.rmtree(out / "routing")
    (out / "routing").symlink_to(elsewhere, target_is_directory=True)
    assert _run(_scenario(tmp_path, ["keep"]), "--out", out).exit_code == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.litellm.yaml", "other.yaml"]
    assert (elsewhere / "keep.litellm.yaml").read_text() == "precious: true\n"
    assert not (out / "routing").is_symlink() and (out / "routing" / "keep.truefoundry.yaml").is_file()


def test_out_inside_the_traffic_folder_is_refused(tmp_path):
    traffic = tmp_path / "traffic"
    traffic.mkdir()
    (traffic / "week.jsonl").write_bytes(TRAFFIC.read_bytes())
    scenario = _scenario(tmp_path, ["keep"], traffic)
    result = _run(scenario, "--out", traffic / "reports")
    assert result.exit_code == 2 and result.stderr.startswith("Error: --out ")
    assert "inside the traffic path" in result.stderr and result.stderr.count("\n") == 1
    assert not (traffic / "reports").exists()
    # a glob's folder counts too, and so does --traffic
    result = _run(scenario, "--traffic", str(traffic / "*.jsonl"), "--out", traffic / "sub" / "r")
    assert result.exit_code == 2 and "inside the traffic path" in result.stderr
    assert _run(scenario, "--out", tmp_path / "reports").exit_code == 0


def test_a_folder_that_is_not_a_run_is_never_moved_aside(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    result = _run(_scenario(tmp_path, ["keep"]), "--out", home)
    assert result.exit_code == 2 and "not a tfysim run" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "s.yaml"]
    assert [p.name for p in home.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("engine", ["local", "streaming"])
def test_strict_failure_writes_only_rejects(tmp_path, engine):
    """The fixture has one row with negative input tokens: rejected, so --strict fails (exit 2) and nothing but
    rejects.jsonl is written."""
    out = tmp_path / "out"
    result = _run(_scenario(tmp_path, ["keep"]), "--out", out, "--strict", "--engine", engine)
    assert result.exit_code == 2 and result.stderr.startswith("Error: 1 row(s) rejected")
    assert sorted(output_files(out)) == ["rejects.jsonl"]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    raw = [json.loads(line) for line in TRAFFIC.read_text().splitlines()]
    assert [r["request_id"] for r in rejects] == [r["request_id"] for r in raw if r["input_tokens"] < 0] == ["p06"]


# -- tfysim gate reads traffic from the repository only ------------------------------------------------------------
def test_gate_refuses_traffic_outside_the_repository(tmp_path, monkeypatch):
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / ".git").mkdir(parents=True)
    outside.mkdir()
    (outside / "t.jsonl").write_bytes(TRAFFIC.read_bytes())
    (repo / "inside.jsonl").write_bytes(TRAFFIC.read_bytes())
    (repo / "link.jsonl").symlink_to(outside / "t.jsonl")
    monkeypatch.chdir(repo)
    for traffic in (outside / "t.jsonl", "link.jsonl", "../outside/*.jsonl"):
        scenario = _scenario(repo, ["keep"], traffic)
        result = CliRunner().invoke(cli, ["gate", str(scenario)])
        assert result.exit_code == 2, (traffic, result.output)
        assert result.stderr.startswith("Error: traffic path ") and "--allow-outside" in result.stderr
    result = CliRunner().invoke(cli, ["gate", str(scenario), "--allow-outside"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["gate", str(_scenario(repo, ["keep"], "inside.jsonl"))])
    assert result.exit_code == 0, result.output
    assert os.path.samefile(Path.cwd(), repo)
