"""The CLI contract: exit codes, exact one-line errors, outputs of run and replay, the golden summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, REPO, SMALL_TRAFFIC
from simulator.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def scenario_text(extra: str = "", traffic: str = str(SMALL_TRAFFIC)) -> str:
    return f"name: t\ntraffic: {traffic}\n{extra}"


def test_missing_scenario_file(tmp_path):
    r = invoke("run", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2
    assert r.stderr == f"Error: {tmp_path / 'nope.yaml'}: file not found.\n"


def test_unknown_key_names_path_and_closest(tmp_path):
    path = write(tmp_path, "s.yaml", scenario_text(
        "candidates:\n  - name: a\n    rules:\n      - id: r\n        load_balance_targts: []\n"))
    r = invoke("run", str(path))
    assert r.exit_code == 2
    assert r.stderr == (f"Error: {path}: candidates[0].rules[0].load_balance_targts: unknown key "
                        "'load_balance_targts'. Did you mean 'load_balance_targets'?\n")


def test_unknown_target_model_is_one_line_with_closest_ids(tmp_path):
    path = write(tmp_path, "s.yaml", scenario_text(
        "candidates:\n  - name: a\n    rules:\n      - id: r\n        load_balance_targets: [{target: openai/gpt-4o-minii}]\n"))
    r = invoke("run", str(path))
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: candidate 'a': model 'openai/gpt-4o-minii' is not in the genai-prices catalog")
    assert "openai:gpt-4o-mini" in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_weights_summing_to_zero(tmp_path):
    path = write(tmp_path, "s.yaml", scenario_text(
        "candidates:\n  - name: a\n    rules:\n      - id: r\n        load_balance_targets:\n"
        "          - {target: openai/gpt-4o, weight: 0}\n          - {target: openai/gpt-4o-mini, weight: 0}\n"))
    r = invoke("run", str(path))
    assert r.exit_code == 2
    assert r.stderr == f"Error: {path}: candidates[0].rules[0]: rule 'r': target weights sum to 0; give at least one a positive weight.\n"


def test_run_writes_summary_with_the_contract(tmp_path):
    path = write(tmp_path, "s.yaml", scenario_text(
        "candidates:\n  - name: down\n    rules:\n      - id: r\n        when: {models: [openai-main/gpt-4o]}\n"
        "        load_balance_targets: [{target: openai-main/gpt-4o-mini}]\n"))
    r = invoke("run", str(path), "--out", str(tmp_path / "out"), "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert json.loads(r.stdout) == summary
    assert summary["schema_version"] == 1 and summary["scenario"] == "t"
    assert set(summary["traffic"]) >= {"rows_read", "rows_replayed", "rows_rejected", "start", "end", "days"}
    t = summary["traffic"]
    assert t["rows_read"] == t["rows_replayed"] + t["rows_rejected"] == 8
    policy = summary["policies"][0]
    for key in ("name", "requests", "requests_changed", "cost_usd", "savings_usd", "savings_pct",
                "monthly_savings_usd", "monthly_savings_ci95", "accuracy_delta_pp", "accuracy_delta_ci95", "gates"):
        assert key in policy
    assert not (tmp_path / "out" / "rejects.jsonl").exists()


def test_strict_fails_on_rejects_and_rejects_are_written(tmp_path):
    traffic = write(tmp_path, "t.csv", SMALL_TRAFFIC.read_text() + "r99,2026-11-16T09:00:00Z,openai-main/gpt-4o,,-5,1,0,,,200,,,,,\n")
    path = write(tmp_path, "s.yaml", scenario_text(traffic=str(traffic)))
    r = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert r.exit_code == 0
    rejects = [json.loads(line) for line in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert rejects == [{"source": str(traffic), "row": 10, "request_id": "r99", "reason": "input_tokens must be >= 0"}]
    r = invoke("run", str(path), "--out", str(tmp_path / "o2"), "--strict")
    assert r.exit_code == 2
    assert r.stderr == f"Error: 1 row(s) rejected in {path} and --strict is set; see rejects.jsonl.\n"


def strict_failure(tmp_path, *engine_args: str) -> None:
    """A failed --strict run: exit 2, the one line, rejects.jsonl and nothing else (checked on every engine)."""
    traffic = write(tmp_path, "t.csv", SMALL_TRAFFIC.read_text() + "r99,2026-11-16T09:00:00Z,openai-main/gpt-4o,,-5,1,0,,,200,,,,,\n")
    path = write(tmp_path, "s.yaml", scenario_text(traffic=str(traffic)))
    out = tmp_path / "o"
    r = invoke("run", str(path), "--out", str(out), "--strict", *engine_args)
    assert r.exit_code == 2, r.output
    assert r.stderr.splitlines()[-1] == f"Error: 1 row(s) rejected in {path} and --strict is set; see rejects.jsonl."
    assert sorted(p.name for p in out.iterdir()) == ["rejects.jsonl"]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert rejects == [{"source": str(traffic), "row": 10, "request_id": "r99", "reason": "input_tokens must be >= 0"}]


def test_strict_fails_the_same_on_the_streaming_engine(tmp_path):
    strict_failure(tmp_path, "--engine", "streaming", "--chunk-rows", "3")  # the Dask case: tests/test_engine_dask.py


def test_replay_json_reports_drift_per_model():
    r = invoke("replay", str(SMALL_TRAFFIC), "--json")
    assert r.exit_code == 0
    report = json.loads(r.stdout)
    assert {"rows_read", "rows_replayed", "rows_rejected", "cost_usd", "recorded_cost_usd", "models"} <= set(report)
    by_model = {m["model"]: m for m in report["models"]}
    # Opus 4.7 rows: (2000x5 + 400x25) + (1000x5 + 200x25) + (3000x5 + 500x25) per M = 0.0575, recorded exactly.
    assert by_model["anthropic-main/claude-opus-4-7"]["cost_usd"] == pytest.approx(0.0575)
    assert by_model["anthropic-main/claude-opus-4-7"]["flagged"] is False
    # gpt-4o recorded 0.004 + 0.002595 + 0.0035 on rows costing 0.004 + (476x2.5 + 1024x1.25 + 80x10)/1e6 + 0.0035
    catalog = 0.004 + (476 * 2.5 + 1024 * 1.25 + 80 * 10) / 1e6 + 0.0035
    assert by_model["openai-main/gpt-4o"]["drift_pct"] == pytest.approx(100 * (0.010095 - catalog) / catalog, abs=1e-3)
    assert by_model["openai-main/gpt-4o"]["flagged"] is True


def test_schema_validates_every_example_scenario():
    import jsonschema
    import yaml

    r = invoke("schema")
    schema = json.loads(r.stdout)
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_no_traceback_in_a_real_process(tmp_path):
    bad = write(tmp_path, "bad.yaml", "name: [unclosed\n")
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(bad)], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_golden_summary(tmp_path):
    """summary.json for a fixed scenario on the committed fixture, byte for byte (regenerate deliberately)."""
    scenario = FIXTURES / "golden_scenario.yaml"
    r = invoke("run", str(scenario), "--out", str(tmp_path / "g"))
    assert r.exit_code == 0, r.stderr
    got = (tmp_path / "g" / "summary.json").read_text()
    want = (FIXTURES / "golden_summary.json").read_text()
    assert got == want
    summary = json.loads(got)
    # Independent check of the headline: downgrading the gpt-4o classify-intent rows to gpt-4o-mini.
    # Baseline: opus 0.0575 + gpt-4o (0.004 + (476x2.5 + 1024x1.25 + 80x10)/1e6 + 0 [r06 failed] + 0.0035) + mini
    assert summary["baseline"]["cost_usd"] == pytest.approx(0.0575 + 0.004 + 0.00327 + 0.0035 + 0.00015)


@pytest.mark.parametrize("args, message", [
    (["run", "--bogus", "x"], "Error: No such option '--bogus'."),
    (["nope"], "Error: No such command 'nope'. (see `tfysim --help`)"),
    (["replay"], "Error: Missing argument 'TRAFFIC...'. (see `tfysim replay --help`)"),
])
def test_usage_errors_are_one_line(args, message):
    r = CliRunner().invoke(cli, args, prog_name="tfysim")
    assert r.exit_code == 2
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1 and "Usage:" not in r.stderr
