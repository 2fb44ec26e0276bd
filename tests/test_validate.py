"""`tfysim validate`: every problem `run` would stop at, reported at once, before any replay (issue 20)."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from conftest import REPO, SMALL_TRAFFIC
from simulator.cli import cli


def _validate(*args: str):
    return CliRunner().invoke(cli, ["validate", *args])


def test_schema_mistakes_and_missing_files_are_listed_together(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "name: My Review\n"                    # a space and capitals: not a valid name
        "traffic: week.csv\n"                  # does not exist
        "evals: evals/none.parquet\n"          # does not exist
        "pricing: prices.yaml\n"               # does not exist
        "candidates:\n"
        "  - name: split\n"
        "    rules:\n"
        "      - id: ab\n"
        "        load_balance_targets: [{target: openai-main/gpt-4o, weight: 80},"
        " {target: openai-main/gpt-4o-mini, weight: 30}]\n"
        "    budgetz: []\n")
    result = _validate(str(tmp_path / "s.yaml"))
    assert result.exit_code == 2
    where = str(tmp_path / "s.yaml")
    expected = [
        f"{where}: name: must be 1 to 63 characters: lower-case letters, digits, '-', '_' and '.', starting with a "
        "letter or digit. Got 'My Review' instead",
        f"{where}: candidates[0].rules[0]: rule 'ab': target weights sum to 110, not 100 (the gateway splits by "
        "percent); e.g. 73/27 instead of 80/30",
        f"{where}: candidates[0].budgetz: unknown key 'budgetz'. Did you mean 'budgets'?",
        f"{where}: traffic: file '{tmp_path / 'week.csv'}' does not exist",
        f"{where}: evals: file '{tmp_path / 'evals/none.parquet'}' does not exist",
        f"{where}: pricing: file '{tmp_path / 'prices.yaml'}' does not exist",
    ]
    for line in expected:
        assert f"  - {line}\n" in result.stderr, line
    assert f"{where}: 6 problem(s); `tfysim run` would stop at the first:" in result.stderr
    assert result.stderr.rstrip().endswith(f"Error: {where}: 6 problem(s); fix them and validate again.")
    assert "Traceback" not in result.stderr and "^[a-z0-9]" not in result.stderr  # words, not the regex


def test_models_targets_and_eval_ids_are_all_checked(tmp_path):
    traffic = SMALL_TRAFFIC.read_text().replace("openai-main/gpt-4o-mini", "openai-main/superfast-1")
    (tmp_path / "t.csv").write_text(traffic)
    (tmp_path / "evals.jsonl").write_text("".join(
        json.dumps({"sample_id": f"s{i}", "model": m, "correct": 1, "workflow_tag": "classify-intent"}) + "\n"
        for i in range(3) for m in ("gpt-4o", "gpt-4o-mini", "llama-7b")))
    (tmp_path / "s.yaml").write_text(
        "name: check\ntraffic: t.csv\nevals: evals.jsonl\ncandidates:\n"
        "  - name: a\n    rules:\n      - id: r\n"
        "        when: {models: [openai-main/gpt-4o], metadata: {workflow_tag: clasify-intent}}\n"
        "        load_balance_targets: [{target: openai-main/gpt-4o-mni}]\n"
        "  - name: b\n    rules:\n      - id: r\n"
        "        load_balance_targets: [{target: anthropic-main/claude-haiku-4-5}]\n")
    result = _validate(str(tmp_path / "s.yaml"), "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1 and report["ok"] is False
    assert report["traffic"]["rows_read"] == 8 and report["traffic"]["rows_rejected"] == 0
    problems, warnings = report["problems"], report["warnings"]
    assert len(problems) == 2, problems
    # the traffic's unknown model, with no made-up neighbour
    assert problems[0].startswith("model 'openai-main/superfast-1' is not in the genai-prices catalog")
    assert "no catalog model has a similar name" in problems[0]
    # the unknown target, named by its dotted key, with its real neighbour
    assert problems[1].startswith(f"{tmp_path / 's.yaml'}: candidates[0].rules[0].load_balance_targets[0].target: "
                                  "model 'openai-main/gpt-4o-mni' is not in the genai-prices catalog")
    assert "openai:gpt-4o-mini" in problems[1]
    # a workflow condition that matches nothing, and an eval model no gateway id matches
    assert any("when.metadata.workflow_tag 'clasify-intent' matches no request of the traffic; did you mean "
               "'classify-intent'?" in w for w in warnings), warnings
    assert any("eval model 'llama-7b' matches no gateway model" in w for w in warnings), warnings
    assert any("target gateway model 'anthropic-main/claude-haiku-4-5' matches no eval model" in w for w in warnings)


@pytest.mark.parametrize("name", ["premium-review.yaml", "budget-ceilings.yaml"])
def test_example_scenarios_validate(name):
    result = _validate(str(REPO / "scenarios" / name), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["problems"] == [] and report["traffic"]["rows_read"] == 40_000


def test_validate_imports_no_replay_code():
    """validate answers before any replay: neither the core nor numba nor scipy.stats is imported."""
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from simulator.cli import cli; "
            f"r = CliRunner().invoke(cli, ['validate', {str(REPO / 'scenarios' / 'ab-test.yaml')!r}]); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('simulator.core', 'numba', 'scipy.stats', 'simulator.engines.driver') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.strip() == "[]"


def test_a_pydantic_pattern_error_is_in_words(tmp_path):
    shutil.copy(SMALL_TRAFFIC, tmp_path / "t.csv")
    (tmp_path / "s.yaml").write_text("name: ok\ntraffic: t.csv\ncandidates:\n  - name: a\n    rules:\n"
                                     "      - id: 9lives\n        load_balance_targets: [{target: openai-main/gpt-4o}]\n")
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {tmp_path / 's.yaml'}: candidates[0].rules[0].id: must be 1 to 62 characters: "
                             "letters, digits, '-' and '_', starting with a letter and ending with a letter or digit. "
                             "Got '9lives' instead.\n")


def test_a_glob_that_matches_nothing_is_a_problem_and_one_that_matches_is_read(tmp_path):
    (tmp_path / "week").mkdir()
    shutil.copy(SMALL_TRAFFIC, tmp_path / "week" / "day-1.csv")
    (tmp_path / "s.yaml").write_text("name: g\ntraffic: week/*.csv\nevals: evals/*.jsonl\n")
    report = json.loads(_validate(str(tmp_path / "s.yaml"), "--json").stdout)
    assert report["problems"] == [f"{tmp_path / 's.yaml'}: evals: '{tmp_path / 'evals/*.jsonl'}' matches no file"]
    (tmp_path / "s.yaml").write_text("name: g\ntraffic: week/*.csv\n")
    report = json.loads(_validate(str(tmp_path / "s.yaml"), "--json").stdout)
    assert report["ok"] and report["traffic"]["rows_read"] == 8


@pytest.mark.parametrize("ns", [0, 1_763_000_000_000_000_000, 1_763_000_000_123_000_000, 1_763_000_000_000_000_001,
                                1_763_000_000_999_999_999, -1_500_000_000, 4_102_444_800_000_001_000])
def test_times_are_written_as_pandas_writes_them(ns):
    """The traffic span in ``validate``'s report: pandas' own isoformat is the expectation (fraction digits: none,
    6 or 9)."""
    import pandas as pd

    from simulator.validation import iso_utc

    assert iso_utc(ns) == pd.Timestamp(ns, tz="UTC").isoformat()
