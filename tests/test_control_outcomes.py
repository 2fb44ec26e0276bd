"""Outcomes: cost per outcome with both denominators (hand-computed), the outcomes file contract, GitHub
pull_request webhook payloads (a real payload from octokit's examples, checked against octokit's schema), the
leverage score and the rule that nothing is grouped by user."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator.api import run
from simulator.cli import cli
from simulator.control.leverage import leverage_by_workflow, leverage_scores
from simulator.control.outcomes import cost_per_outcome, github_outcomes, read_outcome_files
from simulator.control.settings import GithubOutcomes

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / "tests" / "fixtures" / "github"
EXAMPLE = json.loads((GITHUB / "pull_request.closed.json").read_text(encoding="utf-8"))
SCHEMA = GITHUB / "node_modules" / "@octokit" / "webhooks-schemas" / "schema.json"


def _traffic(tmp_path: Path) -> Path:
    """Six requests priced by hand (recorded cost_usd): sessions a (review, $1 + $2), b (review, $3), c (review,
    $0.50), d (chat, $4); one request without a session ($10, not in any session's cost)."""
    rows = [("r1", "a", "review", 1.0), ("r2", "a", "review", 2.0), ("r3", "b", "review", 3.0),
            ("r4", "c", "review", 0.5), ("r5", "d", "chat", 4.0), ("r6", None, "review", 10.0)]
    frame = pd.DataFrame([{"request_id": r, "timestamp": f"2026-03-02T12:0{i}:00Z", "model": "openai-main/gpt-4o-mini",
                           "input_tokens": 10, "output_tokens": 10, "cost_usd": c, "session_id": s,
                           "workflow_tag": w, "user_id": f"person-{i}@example.com"}
                          for i, (r, s, w, c) in enumerate(rows)])
    frame.to_csv(tmp_path / "t.csv", index=False)
    # a: 2 merged PRs; b: 1 closed ticket; c: nothing; d: 1 eval failed (no outcome); x: a session not in the traffic
    pd.DataFrame({"session_id": ["a", "a", "b", "d", "x"],
                  "outcome": ["pr_merged", "pr_merged", "ticket_closed", "eval_failed", "pr_merged"],
                  "timestamp": ["2026-03-02T15:00:00Z"] * 5}).to_csv(tmp_path / "o.csv", index=False)
    return tmp_path


def test_cost_per_outcome_both_denominators(tmp_path):
    _traffic(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "o", "traffic": "t.csv", "outcomes": "o.csv"}))
    section = run(tmp_path / "s.yaml").summary["outcomes"]
    rows = {r["workflow_tag"]: r for r in section["by_workflow"]}
    # review: sessions a, b, c; cost 1 + 2 + 3 + 0.5 = 6.5; outcomes 2 + 1 = 3 -> 6.5 / 3 per outcome, 6.5 / 3 per
    # session too; 2 of 3 sessions produced something
    assert rows["review"] == {"workflow_tag": "review", "sessions": 3, "sessions_with_outcome": 2, "outcomes": 3,
                              "outcomes_by_kind": {"pr_merged": 2, "ticket_closed": 1}, "cost_usd": 6.5,
                              "cost_per_outcome_usd": round(6.5 / 3, 6), "cost_per_session_usd": round(6.5 / 3, 6)}
    # chat: one session, $4, an eval failure only: no outcome, so cost per outcome is n/a but per session is $4
    assert rows["chat"]["outcomes"] == 0 and rows["chat"]["cost_per_outcome_usd"] is None
    assert rows["chat"]["cost_per_session_usd"] == 4.0 and rows["chat"]["outcomes_by_kind"] == {"eval_failed": 1}
    assert section["outcomes_matched"] == 4 and section["outcomes_unmatched"] == 1
    assert section["rows_read"] == 5 and section["rows_loaded"] == 5 and section["rows_rejected"] == 0
    assert any("Join outcomes for `chat`" in a for a in section["actions"])


def test_candidates_project_cost_per_outcome(tmp_path):
    _traffic(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "o", "traffic": "t.csv", "outcomes": "o.csv",
        "candidates": [{"name": "same", "rules": [{"id": "x", "when": {"metadata": {"workflow_tag": "nothing"}},
                                                   "load_balance_targets": [{"target": "openai-main/gpt-4o"}]}]}]}))
    summary = run(tmp_path / "s.yaml").summary
    projected = {r["workflow_tag"]: r for r in summary["policies"][0]["outcomes"]}
    recorded = {r["workflow_tag"]: r for r in summary["outcomes"]["by_workflow"]}
    # a candidate that moves nothing projects exactly the recorded figures
    for wf in ("review", "chat"):
        assert projected[wf]["cost_per_outcome_usd"] == recorded[wf]["cost_per_outcome_usd"]
        assert projected[wf]["cost_per_session_usd"] == recorded[wf]["cost_per_session_usd"]


def test_outcome_rows_are_loaded_or_rejected_with_a_reason(tmp_path):
    pd.DataFrame({"session_id": ["a", "", "c", "d", "e"],
                  "outcome": ["pr_merged", "ticket_closed", "Ticket Closed!", "incident_resolved", "pr_merged"],
                  "timestamp": ["2026-03-02T15:00:00Z", "2026-03-02T15:00:00Z", "2026-03-02T15:00:00Z",
                                "2026-03-02 15:00:00", 1772463600000]}).to_csv(tmp_path / "o.csv", index=False)
    table = read_outcome_files([tmp_path / "o.csv"])
    assert table.rows_read == 5 and len(table.frame) == 2 and len(table.rejects) == 3
    reasons = {r["row"]: r["reason"] for r in table.rejects}  # CSV line numbers (header = line 1)
    assert reasons == {3: "session_id is missing",
                       4: "outcome must be a snake_case kind such as pr_merged or ticket_closed",
                       5: "timestamp must be ISO-8601 with an offset (Z, +02:00) or epoch milliseconds"}
    assert table.frame["timestamp"].tolist()[0] == pd.Timestamp("2026-03-02T15:00:00Z").value
    assert table.frame["timestamp"].tolist()[1] == 1772463600000 * 1_000_000
    (tmp_path / "bad.csv").write_text("session,kind\na,pr_merged\n")
    with pytest.raises(Exception, match="outcomes need columns session_id, outcome, timestamp"):
        read_outcome_files([tmp_path / "bad.csv"])


def _merged(**changes) -> dict:
    payload = copy.deepcopy(EXAMPLE)
    pr = payload["pull_request"]
    pr["merged"], pr["merged_at"] = True, "2026-03-02T16:30:00Z"
    for key, value in changes.items():
        pr[key] = value
    return payload


def _label(name: str) -> dict:
    return {**EXAMPLE["pull_request"]["labels"][0], "id": 4242, "name": name}


def test_github_payloads_give_merged_pull_requests_per_session(tmp_path):
    payloads = [
        _merged(labels=[EXAMPLE["pull_request"]["labels"][0], _label("session:sess-label")]),
        _merged(body="Fixes the flaky test.\n\nTFY-Session-Id: sess-trailer\n"),
        _merged(head={**EXAMPLE["pull_request"]["head"], "ref": "agents/session-sess-branch"}),
        copy.deepcopy(EXAMPLE),  # closed without merging: skipped
        _merged(),               # merged, no session id anywhere: rejected
        {"zen": "Keep it logically awesome.", "hook_id": 1},  # a ping event: rejected
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(p) for p in payloads) + "\n")
    got = {}
    for source in ("label", "trailer", "branch"):
        table = github_outcomes(GithubOutcomes(paths=str(tmp_path / "d.jsonl"), session_id_from=source))
        assert table.rows_read == 6 and len(table.frame) + len(table.rejects) + len(table.skipped) == 6
        got[source] = table.frame["session_id"].tolist()
        assert table.frame["outcome"].tolist() == ["pr_merged"]
        assert table.frame["timestamp"].tolist() == [pd.Timestamp("2026-03-02T16:30:00Z").value]
        assert [r["reason"] for r in table.skipped] == ["pull request not merged (action 'closed')"]
        assert {r["row"]: r["reason"] for r in table.rejects}[6] == "not a pull_request webhook payload"
    assert got == {"label": ["sess-label"], "trailer": ["sess-trailer"], "branch": ["sess-branch"]}
    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(cli, ["import", "github-prs", str(tmp_path / "d.jsonl"), "--session-id-from", "label",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    # by label: 1 outcome; rejected: the trailer and branch payloads (no label), the one without an id, the ping
    assert "1 rows, 4 rejected, skipped=1" in result.output
    frame = pd.read_parquet(out)
    assert frame["session_id"].tolist() == ["sess-label"] and str(frame["timestamp"].dt.tz) == "UTC"
    result = CliRunner().invoke(cli, ["import", "github-prs", str(tmp_path / "d.jsonl"), "--session-id-from", "branch",
                                      "--branch-pattern", "agents/.*", "--out", str(out)])
    assert result.exit_code == 2 and "Error: --branch-pattern: branch_pattern needs a group" in result.stderr


@pytest.mark.skipif(not SCHEMA.is_file(), reason="octokit webhook schemas not installed (npm ci in tests/fixtures/"
                                                 "github, as .ci/run does)")
def test_fixture_payloads_are_valid_github_pull_request_events():
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    closed = jsonschema.Draft7Validator({**schema, "$ref": "#/definitions/pull_request$closed"})
    for payload in (EXAMPLE, _merged(labels=[_label("session:s")]), _merged(body="TFY-Session-Id: s"),
                    _merged(head={**EXAMPLE["pull_request"]["head"], "ref": "session-s"})):
        assert not list(closed.iter_errors(payload))
    broken = _merged()
    broken["pull_request"]["merged"] = "yes"
    assert list(closed.iter_errors(broken))  # the check can fail
    # the example shipped as a fixture is octokit's own
    examples = json.loads((GITHUB / "node_modules/@octokit/webhooks-examples/api.github.com/index.json").read_text())
    closed_examples = [e for e in next(x for x in examples if x["name"] == "pull_request")["examples"]
                       if e["action"] == "closed"]
    assert EXAMPLE in closed_examples


def test_leverage_score_by_hand():
    sessions = pd.DataFrame({"session_id": ["a", "b", "c", "d"], "workflow_tag": ["w", "w", "v", "u"],
                             "cost_usd": [1.0, 32.0, 0.0, 1.0], "rate_limit_hits": [0, 2, 0, 0],
                             "retry_tokens": [0.0, 20_000.0, 0.0, 0.0], "flagged": [False, True, False, False]})
    outcomes = pd.DataFrame({"session_id": ["a", "a", "b", "c", "c", "c"],
                             "outcome": ["pr_merged", "incident_resolved", "pr_merged", "eval_passed", "eval_failed",
                                         "eval_failed"], "timestamp": [0] * 6})
    scores = leverage_scores(sessions, outcomes).tolist()
    # a: (15 + 25) / 1 ** 0.4 = 40
    # b: outcome 15; governance 2 x 1 = 2; waste 20,000 / 10,000 + 15 = 17; (15 - 2 - 17) / 32 ** 0.4 < 0 -> 0
    # c: eval pass rate 1 / 3 x 20 = 6.67; cost 0 -> dampener max(0, 0.01) = 0.01 -> 666.7, clipped to 100
    # d: nothing -> 0
    assert scores == pytest.approx([40.0, 0.0, 100.0, 0.0])
    section = leverage_by_workflow(sessions, outcomes)
    rows = {r["workflow_tag"]: r for r in section["by_workflow"]}
    assert rows["w"]["score_mean"] == 20.0 and rows["w"]["loop_flagged"] == 1
    assert section["invest"][0] == "v" and "u" not in section["invest"] + section["redesign"]
    assert any("Instrument the outcome join for `u`" in a for a in section["actions"])


def _walk_keys(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{path}.{k}", k, v
            yield from _walk_keys(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_keys(v, f"{path}[{i}]")


def test_no_output_groups_by_user(tmp_path):
    _traffic(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "o", "traffic": "t.csv", "outcomes": "o.csv",
                                                    "loop_detection": {}, "alerts": {}, "adoption": {"min_users": 1}}))
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for section in ("loops", "alerts", "outcomes", "leverage", "adoption"):
        for path, key, _ in _walk_keys(summary[section], section):
            # a grouping key naming a person would be user, user_id, username, email, subject...
            assert key not in {"user", "user_id", "username", "users", "email", "subject", "end_user"}, path
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "out").rglob("*")
             if p.is_file() and p.suffix in {".json", ".md", ".html", ".yaml", ".yml"}]
    assert texts and not any("@example.com" in t for t in texts)


def test_control_room_report_is_rendered_from_summary_json_alone(tmp_path):
    from simulator.outputs.report.control_room import control_room_section
    from simulator.outputs.report.document import Document, to_markdown

    _traffic(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "o", "traffic": "t.csv", "outcomes": "o.csv", "loop_detection": {}, "adoption": {"min_users": 1},
        "alerts": {"budget_near_ceiling": {"ceilings": [{"project": "*", "limit_to": 1, "unit": "cost_per_day"}]}},
        "candidates": [{"name": "kill", "kill_runaway_sessions": True}]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    section = control_room_section(summary)  # from the JSON file only: no arrays, no traffic
    text = to_markdown(Document("t", "", [section]), {"adoption": "report_files/adoption.png"})
    body = text.split("## Control room", 1)[1]
    report = (out / "report.md").read_text().split("## Control room", 1)[1].split("\n## ", 1)[0]
    assert body.strip() == report.strip()
    for caption in ("Alert rules backtested on the recorded traffic", "Cost per outcome by workflow",
                    "Leverage score by workflow", "Adoption by team and tool"):
        assert caption in report
    assert (out / "alerts" / "tfysim-alerts.rules.yml").is_file()
    assert (out / "routing" / "kill.session-kill.truefoundry.yaml").is_file()
    index = json.loads((out / "routing" / "index.json").read_text())
    assert any("throttles the session" in x for x in index["kill"]["not_expressible"]["truefoundry"])


def test_session_kill_rule_for_untagged_sessions_is_last():
    """The gateway applies the first matching rule: the condition-less rule of untagged sessions must come after every
    workflow's rule, or it would limit every session with the untagged threshold."""
    from simulator.control.gateway import not_expressible, session_kill_manifest

    record = {"rule": {}, "baselines": [
        {"workflow_tag": "UNTAGGED", "tokens_per_minute_limit": 100.0},
        {"workflow_tag": "code-assist", "tokens_per_minute_limit": 5000.0},
        {"workflow_tag": "support-bot", "tokens_per_minute_limit": None}]}
    rules = session_kill_manifest("kill", record)["rules"]
    assert [(r["when"], r["limit_to"]) for r in rules] == [
        ({"metadata": {"workflow_tag": "code-assist"}}, 5000), ({}, 100)]

    def first_match(workflow):  # the gateway's rule: the first rule whose metadata conditions all hold
        return next(r["limit_to"] for r in rules
                    if all(workflow == v for v in r["when"].get("metadata", {}).values()))

    assert first_match("code-assist") == 5000 and first_match(None) == 100 and first_match("support-bot") == 100
    assert any("without a workflow tag" in g for g in not_expressible(record))
    assert not any("without a workflow tag" in g for g in not_expressible({"baselines": record["baselines"][1:]}))


def test_adoption_tool_is_the_metadata_key_however_the_json_spells_it():
    from simulator.control.adoption import tools

    metadata = np.array([
        '{"tool": "cursor"}',                     # plain
        '{"\\u0074ool": "claude-code"}',          # the key written with an escape
        '{"client": "airflow"}',                  # no such key
        '{"note": "say \\"tool\\" here"}',        # the word only inside a value
        'not json "tool"',                        # not JSON
        '["tool", "x"]',                          # JSON, not an object
        '{"tool": ""}',                           # empty: falls back to the provider
        None,
        '{"outil": "vim"}',
    ], dtype=object)
    model = np.array(["openai/gpt-4o"] * 9, dtype=object)
    got, source = tools(metadata, model, "tool")
    assert got.tolist() == ["cursor", "claude-code", "openai", "openai", "openai", "openai", "openai", "openai", "openai"]
    assert source.tolist() == ["metadata", "metadata"] + ["provider"] * 7
    got, _ = tools(np.array(['{"outil": "vim"}', '{"out\\u0069l": "emacs"}', '{"outilé": "x"}'], dtype=object),
                   np.array(["openai/gpt-4o"] * 3, dtype=object), "outil")
    assert got.tolist() == ["vim", "emacs", "openai"]
    got, _ = tools(np.array(['{"outilé": "nano"}'], dtype=object), np.array(["openai/gpt-4o"], dtype=object), "outilé")
    assert got.tolist() == ["nano"]
    # Repeated texts and models, a missing model, a value that is not text: each row still gets its own answer.
    got, source = tools(np.array(['{"tool": "cursor"}', None, '{"tool": 7}', {"tool": "x"}, None, '{"tool": "cursor"}'],
                                 dtype=object),
                        np.array(["anthropic/claude-opus-4-7", "openai/gpt-4o", None, "mystery-model", None,
                                  "openai/gpt-4o"], dtype=object), "tool")
    assert got.tolist() == ["cursor", "openai", "7", "unknown", "unknown", "cursor"]
    assert source.tolist() == ["metadata", "provider", "metadata", "provider", "provider", "metadata"]
    # The loaded table's categorical column (codes read as they are, categories no row of the chunk uses never
    # parsed): the same answers as the text, written out above.
    import pandas as pd

    texts = ['{"tool": "cursor"}', None, '{"client": "airflow"}', '{"\\u0074ool": "vim"}', None, '{"tool": "cursor"}']
    column = pd.Series(pd.Categorical(texts, categories=['{"tool": "unused"}', '{"tool": "cursor"}',
                                                         '{"client": "airflow"}', '{"\\u0074ool": "vim"}']))
    models = np.array(["openai/gpt-4o", None, "anthropic/claude-opus-4-7", "openai/gpt-4o", "mystery-model",
                       "openai/gpt-4o"], dtype=object)
    got, source = tools(column.iloc[1:], models[1:], "tool")
    assert got.tolist() == ["unknown", "anthropic", "vim", "unknown", "cursor"]
    assert source.tolist() == ["provider", "provider", "metadata", "provider", "metadata"]
