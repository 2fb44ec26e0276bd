"""Issue 20, outputs a person can act on: numbers as people write them, the console headline, --json everywhere."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import REPO, SMALL_TRAFFIC
from simulator.cli import cli
from simulator.formats import minute, money, money_range, percent, points, round_floats, signed_money


def test_numbers_as_people_write_them():
    assert money(-5.289) == "-$5.29" and money(1234.5) == "$1,234.50" and money(None) == "n/a"
    assert money(-0.004) == "$0.00"  # never -$0.00
    assert signed_money(5.29) == "+$5.29" and signed_money(-5.29) == "-$5.29" and signed_money(0.001) == "$0.00"
    assert percent(-0.04) == "0.0%" and percent(12.34) == "12.3%" and percent(-3.25, signed=True) == "-3.2%"
    assert points(-0.04) == "0.0 pp" and points(-2.46) == "-2.5 pp" and points(1.25) == "+1.2 pp"
    assert minute("2026-11-16T00:02:59.9+00:00") == "2026-11-16 00:02 UTC"
    assert minute("2026-11-16T01:02:00+01:00") == "2026-11-16 00:02 UTC"
    assert money_range([-1.004, 1234.5]) == "-$1.00 to $1,234.50" and money_range([-0.001, 0.004]) == "$0.00 to $0.00"
    assert money_range(None) == "n/a" and money_range([None, None]) == "n/a"


def test_json_floats_are_rounded_to_what_the_text_shows():
    got = round_floats({"monthly_savings_usd": 486.157891, "monthly_savings_ci95": [464.4712, -0.0001],
                        "savings_pct": 12.5271, "accuracy_delta_moved_pp": -0.0412, "latency_p95_ms": 15725.694,
                        "premium_share_cost": 0.95678912, "requests": 7, "name": "x"})
    assert got == {"monthly_savings_usd": 486.16, "monthly_savings_ci95": [464.47, 0.0], "savings_pct": 12.5,
                   "accuracy_delta_moved_pp": 0.0, "latency_p95_ms": 15725.7, "premium_share_cost": 0.9568,
                   "requests": 7, "name": "x"}
    assert str(got["accuracy_delta_moved_pp"]) == "0.0"  # not -0.0


def _scenario(tmp_path, candidates: str) -> str:
    shutil.copy(SMALL_TRAFFIC, tmp_path / "t.csv")
    (tmp_path / "s.yaml").write_text(f"name: hour\ntraffic: t.csv\ncandidates:\n{candidates}")
    return str(tmp_path / "s.yaml")


def test_a_candidate_that_costs_more_says_why(tmp_path):
    # An A/B rule without when.models matches every request, the gpt-4o-mini ones too: half of them go to Opus.
    path = _scenario(tmp_path, "  - name: ab\n    rules:\n      - id: ab\n        load_balance_targets:\n"
                               "          - {target: openai-main/gpt-4o-mini, weight: 50}\n"
                               "          - {target: anthropic-main/claude-opus-4-7, weight: 50}\n")
    result = CliRunner().invoke(cli, ["run", path, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    policy = summary["policies"][0]
    assert policy["savings_usd"] < 0
    raised = policy["cost_increase"]
    assert raised and all(r["to_model"] == "anthropic-main/claude-opus-4-7" and r["extra_cost_usd"] > 0
                          for r in raised)
    line = next(line for line in result.output.splitlines() if line.startswith("  ab: "))
    assert line.startswith(f"  ab: costs {money(-policy['monthly_savings_usd'])}/month MORE than recorded")
    assert "Why: " in line and raised[0]["reason"] in line
    assert "$-" not in result.output


def test_refused_requests_are_spend_prevented_not_savings(tmp_path):
    # A $0.001 daily cap per project blocks every later request of the project that day.
    path = _scenario(tmp_path, "  - name: cap\n    budgets:\n      - id: cap\n        limit_to: 0.001\n"
                               "        unit: cost_per_day\n        budget_applies_per: [metadata.project]\n")
    result = CliRunner().invoke(cli, ["run", path, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    policy = json.loads((tmp_path / "out" / "summary.json").read_text())["policies"][0]
    assert policy["requests_refused"] > 0
    line = next(line for line in result.output.splitlines() if line.startswith("  cap: "))
    assert (f"; {policy['requests_refused']:,} requests refused: {money(policy['spend_prevented_usd'])} of spend "
            "prevented in the window (not a saving: those requests go unanswered)") in line
    first = pd.read_csv(SMALL_TRAFFIC)["timestamp"].min()
    assert f"from {minute(first)} to " in result.output.splitlines()[0]


def test_streaming_prints_the_same_headline_as_local(tmp_path):
    path = _scenario(tmp_path, "  - name: down\n    rules:\n      - id: d\n        when: {models: [openai-main/gpt-4o]}\n"
                               "        load_balance_targets: [{target: openai-main/gpt-4o-mini}]\n")
    heads = []
    for engine in ("local", "streaming"):
        result = CliRunner().invoke(cli, ["run", path, "--engine", engine, "--chunk-rows", "3",
                                          "--out", str(tmp_path / engine)])
        assert result.exit_code == 0, result.output
        heads.append([line for line in result.output.splitlines() if not line.startswith("wrote ")])
    assert heads[0] == heads[1] and len(heads[0]) == 2


def test_every_json_command_has_a_schema_version(tmp_path):
    out = CliRunner().invoke(cli, ["drift", "--traffic", str(SMALL_TRAFFIC), "--from", "openai-main/gpt-4o",
                                   "--to", "anthropic-main/claude-haiku-4-5", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["schema_version"] == 1
    path = _scenario(tmp_path, "  - name: down\n    rules:\n      - id: d\n        when: {models: [openai-main/gpt-4o]}\n"
                               "        load_balance_targets: [{target: openai-main/gpt-4o-mini}]\n"
                               "    gates: {min_monthly_savings_usd: 0.01}\n")
    gate = CliRunner().invoke(cli, ["gate", path, "--json", "--allow-outside"])
    assert gate.exit_code == 0, gate.output
    report = json.loads(gate.stdout)
    assert report["schema_version"] == 1 and report["passed"] is True and report["gates_failed"] == 0
    assert "min_monthly_savings_usd" in [g["gate"] for g in report["gates"]]
    policy = report["policies"][0]
    assert set(policy) >= {"name", "monthly_savings_usd", "monthly_savings_ci95", "savings_pct"}
    assert policy["monthly_savings_usd"] == round(policy["monthly_savings_usd"], 2)
    valid = CliRunner().invoke(cli, ["validate", path, "--json"])
    assert json.loads(valid.stdout)["schema_version"] == 1


def test_a_wrong_adapter_names_the_columns_it_expected():
    result = CliRunner().invoke(cli, ["replay", str(SMALL_TRAFFIC), "--adapter", "litellm"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert ("read as a LiteLLM SpendLogs export (adapter 'litellm') but it has no startTime, prompt_tokens, "
            "completion_tokens column. The litellm adapter reads: request_id, startTime,") in result.stderr
    assert "The columns look like a canonical traffic table: try --adapter canonical" in result.stderr
    assert "timestamp is missing" not in result.stderr


def test_replay_table_never_truncates_model_ids(tmp_path):
    long_id = "azure-openai-westeurope-production/gpt-4o-mini-2024-07-18-deployment"
    (tmp_path / "t.csv").write_text(SMALL_TRAFFIC.read_text().replace("openai-main/gpt-4o-mini", long_id))
    (tmp_path / "p.yaml").write_text(f"models:\n  {long_id}: {{input_mtok: 0.15, output_mtok: 0.6}}\n")
    result = CliRunner().invoke(cli, ["replay", str(tmp_path / "t.csv"), "--pricing", str(tmp_path / "p.yaml")])
    assert result.exit_code == 0, result.output
    assert any(line.startswith(long_id + " ") for line in result.output.splitlines())


def test_report_shows_budget_keys_untagged_the_recommended_candidate_and_scrolls(tmp_path):
    # Two candidates: the bigger saving fails its gate, so the recommended one (premium-share chart) is the other.
    # A per-project daily budget: the row without a project is the UNTAGGED key, never "nan".
    traffic = pd.read_csv(SMALL_TRAFFIC)
    traffic.loc[traffic.index[-1], "project"] = None
    traffic.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "name: hour\ntraffic: t.csv\ncandidates:\n"
        "  - name: all-to-mini\n    rules:\n      - id: all\n        when: {models: [anthropic-main/claude-opus-4-7, "
        "openai-main/gpt-4o]}\n        load_balance_targets: [{target: openai-main/gpt-4o-mini}]\n"
        "    gates: {min_monthly_savings_usd: 1000000}\n"
        "  - name: opus-to-mini\n    rules:\n      - id: opus\n        when: {models: [anthropic-main/claude-opus-4-7]}\n"
        "        load_balance_targets: [{target: openai-main/gpt-4o-mini}]\n"
        "  - name: cap\n    budgets:\n      - id: cap\n        limit_to: 0.001\n        unit: cost_per_day\n"
        "        budget_applies_per: [metadata.project]\n")
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    report = (tmp_path / "out" / "report.md").read_text()
    budgets = next(p for p in summary["policies"] if p["name"] == "cap")["budgets"]
    keys = {b["key"] for b in budgets}
    assert "UNTAGGED" in keys and "nan" not in keys
    assert set(traffic["project"].dropna()) | {"UNTAGGED"} == keys
    for b in budgets:
        reached = minute(b["ceiling_reached_at"]) if b["ceiling_reached_at"] else "not reached"
        assert (f"| cap | cap | {b['key']} | $0.0010 per day | {reached} | {b['requests_blocked']} | 0 | "
                f"{money(b['spend_avoided_usd'])} |") in report
    share = report.split("**Premium-model share of spend per day**")[1].split("\n\n")[1]
    assert share.splitlines()[0] == "| day | recorded | opus-to-mini |"
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<table>") == html.count('<div class="scroll"><table>') > 0
    assert "overflow-x:auto" in html
