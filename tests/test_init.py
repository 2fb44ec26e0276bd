"""`tfysim init`: a commented starter scenario for one's own export (issue 20)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO, SMALL_TRAFFIC
from simulator.cli import cli
from simulator.routing.scenario import load_scenario

EXAMPLES = REPO / "datasets" / "examples"
ADAPTER_OF = {"helicone_export.jsonl": "helicone", "langfuse_observations.jsonl": "langfuse",
              "litellm_spendlogs.csv": "litellm", "otel_collector.jsonl": "otel",
              "truefoundry_analytics.csv": "truefoundry", "truefoundry_spans.json": "truefoundry-spans"}


def _init(tmp_path, *args: str):
    return CliRunner().invoke(cli, ["init", *args])


def _listed(text: str) -> dict[str, int]:
    """model -> requests from the scenario's model comment lines."""
    return {m: int(n.replace(",", "")) for m, n in re.findall(r"^#   (\S+)\s+([\d,]+) requests", text, re.M)}


def test_canonical_export_lists_what_pandas_counts(tmp_path):
    out = tmp_path / "scenario.yaml"
    result = _init(tmp_path, str(SMALL_TRAFFIC), "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    raw = pd.read_csv(SMALL_TRAFFIC)
    assert _listed(text) == raw["model"].value_counts().to_dict()
    flows = ", ".join(f"{k} ({v})" for k, v in raw["workflow_tag"].value_counts().sort_index()
                      .sort_values(ascending=False, kind="stable").items())
    assert f"# Workflows (workflow_tag), requests: {flows}\n" in text
    teams = ", ".join(f"{k} ({v})" for k, v in raw["team"].value_counts().sort_index()
                      .sort_values(ascending=False, kind="stable").items())
    assert f"# Teams, requests: {teams}\n" in text
    scenario = load_scenario(out)
    assert scenario.adapter == "canonical" and scenario.paths("traffic") == [SMALL_TRAFFIC]
    # one candidate: the largest workflow on the priciest model (Opus 4.7, $25/M output; its only workflow)
    rule = scenario.candidates[0].rules[0]
    opus = raw[raw["model"] == "anthropic-main/claude-opus-4-7"]
    assert rule.when.models == ["anthropic-main/claude-opus-4-7"]
    assert rule.when.metadata == {"workflow_tag": opus["workflow_tag"].mode()[0]}
    # the cheapest model of the traffic (no other Anthropic model there): gpt-4o-mini, $0.60/M output
    assert [t.target for t in rule.load_balance_targets] == ["openai-main/gpt-4o-mini"]
    assert CliRunner().invoke(cli, ["validate", str(out)]).exit_code == 0
    again = _init(tmp_path, str(SMALL_TRAFFIC), "--out", str(out))
    assert again.exit_code == 2 and again.stderr == f"Error: {out} already exists; choose another --out or remove it.\n"


@pytest.mark.parametrize("name", sorted(ADAPTER_OF))
def test_every_example_export_gets_a_scenario_that_validates(tmp_path, name):
    out = tmp_path / "s.yaml"
    extra = ["--timezone", "UTC"] if ADAPTER_OF[name] == "truefoundry" else []
    result = _init(tmp_path, str(EXAMPLES / name), "--out", str(out), *extra)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    data = yaml.safe_load(text)
    assert data["adapter"] == ADAPTER_OF[name]
    assert "# detected from the columns" in text
    found = re.search(r"Found ([\d,]+) rows \(([\d,]+) rejected\)", text)
    read, rejected = (int(g.replace(",", "")) for g in found.groups())
    assert read == 300 and sum(_listed(text).values()) == read - rejected
    check = CliRunner().invoke(cli, ["validate", str(out), "--json"])
    assert check.exit_code == 0, check.output


def test_truefoundry_export_without_timezone_says_so(tmp_path):
    result = _init(tmp_path, str(EXAMPLES / "truefoundry_analytics.csv"), "--out", str(tmp_path / "s.yaml"))
    assert result.exit_code == 2
    assert "needs --timezone, e.g. --timezone UTC." in result.stderr


def test_unknown_model_is_listed_to_map(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text(SMALL_TRAFFIC.read_text().replace("openai-main/gpt-4o-mini", "acme/house-model"))
    (tmp_path / "conf").mkdir()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "conf" / "s.yaml"
    assert _init(tmp_path, "t.csv", "--out", "conf/s.yaml").exit_code == 0
    text = out.read_text()
    assert re.search(r"^#   acme/house-model\s+\d+ requests  not in the catalog", text, re.M)
    assert '#   "acme/house-model": "provider:model"\n' in text
    assert load_scenario(out).traffic == "../t.csv"  # a relative path stays relative, to the scenario's folder
