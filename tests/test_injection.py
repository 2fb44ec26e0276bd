"""Injection (issue 17, items 5-9): a traffic or scenario value cannot add structure to any output.

Every output format has one escaping function (``simulator/outputs/escape.py``); these tests feed hostile values
(newlines, backticks, ``<script>``, ``<img onerror>``, ESC/VT, OSC hyperlinks, mathtext) through the real writers
and check the outputs with their consumers' parsers (markdown-it for report.md, html.parser for report.html,
ElementTree for gate.xml, PyYAML for YAML), never with tfysim's own code.
"""

from __future__ import annotations

import html.parser
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator.cli import cli

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
MATH = "$\\invalidcommand{x}$"
HEADING = "evil\n## Injected heading\n- injected bullet"
TICK = "tick`" + IMG + "`"
ESC = "esc\x1b[31mred\x1b]8;;http://x\x07link\x0bvt"
HOSTILE = [SCRIPT, MATH, HEADING, TICK, ESC]


# -- the escaping functions, expectations written by hand ---------------------------------------------------------
def test_escape_functions_by_hand():
    from simulator.outputs import escape

    assert escape.yaml_comment("a\nrules: []") == "a rules: []"
    assert escape.markdown("<script>`x`") == "\\<script>\\`x\\`"
    assert escape.markdown("# h") == "\\# h" and escape.markdown("1. x") == "1\\. x"
    assert escape.markdown("- b") == "\\- b" and escape.markdown("> q") == "\\> q"
    # only what would start a block is escaped: numbers and tags read as written
    assert escape.markdown("-0.34 pp") == "-0.34 pp" and escape.markdown("71.5%") == "71.5%"
    assert escape.markdown("#tag") == "#tag" and escape.markdown("###### h") == "\\###### h"
    assert escape.markdown("---") == "\\---" and escape.markdown("12) a") == "12\\) a"
    assert escape.markdown("snake_case _em_") == "snake_case \\_em\\_"
    assert escape.markdown("[a](javascript:x)") == "\\[a\\](javascript:x)"
    assert escape.markdown("a|b") == "a|b" and escape.markdown("a|b", table_cell=True) == "a\\|b"
    assert escape.markdown("# h|-", table_cell=True) == "# h\\|-"  # a cell holds inline content only
    assert escape.markdown("a\nb\x1bc") == "a b c"
    assert escape.markdown_code("x") == "`x`" and escape.markdown_code("a`b") == "`` a`b ``"
    assert escape.markdown_code("a``b\n") == "``` a``b  ```"
    assert escape.html(IMG) == "&lt;img src=x onerror=alert(1)&gt;"
    assert escape.html('"\'&') == "&quot;&#x27;&amp;"
    assert escape.xml("a\x1bb\x0bc\td") == "a\\x1bb\\x0bc\td"
    assert escape.terminal("a\x1b]8;;x\x07\nb\u202ec") == "a\\x1b]8;;x\\x07\\nb\\u202ec"
    assert escape.chart_label("a\nb") == "a b" and len(escape.chart_label("x" * 100)) == 60


@pytest.mark.parametrize("value", ["# h", "###### h", "> q", "- b", "+ b", "* b", "---", "- - -", "===", "1. x",
                                   "12) x", "<div>", "```", "~~~", "    code", "-0.34 pp", "71.5%", "#tag", "1.5"])
def test_escaped_value_starts_no_block(value):
    """markdown-it reads an escaped value at the start of a paragraph and of a bullet as one paragraph of text."""
    from markdown_it import MarkdownIt

    from simulator.outputs import escape

    md = MarkdownIt("commonmark")
    for doc, wrapper in ((escape.markdown(value), "paragraph_open"), ("- " + escape.markdown(value), "bullet_list_open")):
        kinds = [t.type for t in md.parse("intro\n\n" + doc) if t.type.endswith("_open")]
        assert kinds == ["paragraph_open", wrapper] + (["list_item_open", "paragraph_open"]
                                                       if wrapper == "bullet_list_open" else []), (doc, kinds)


# -- report.md and report.html from hostile traffic ---------------------------------------------------------------
def _hostile_run(tmp_path: Path, *extra: str):
    """A run whose workflow tags, teams and projects are hostile; one candidate moves gpt-4o to gpt-4o-mini."""
    start = pd.Timestamp("2026-11-16T09:00:00Z")
    rows = []
    for i in range(40):
        bad = HOSTILE[i % len(HOSTILE)]
        rows.append({"request_id": f"r{i}", "timestamp": (start + pd.Timedelta(minutes=37 * i)).isoformat(),
                     "model": "openai-main/gpt-4o", "input_tokens": 1000 + i, "output_tokens": 100,
                     "cost_usd": 0.0035, "status_code": 200, "workflow_tag": bad, "team": bad, "project": bad})
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "hostile", "traffic": "traffic.jsonl", "gates": {"min_monthly_savings_usd": 1e9},
        "candidates": [{"name": "to-mini", "rules": [{
            "id": "r", "when": {"models": ["openai-main/gpt-4o"]},
            "load_balance_targets": [{"target": "openai-main/gpt-4o-mini"}]}]}],
    }))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(out), *extra])
    return result, out


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(a for a, _ in attrs)


def test_hostile_traffic_values_are_text_in_report_md_and_html(tmp_path):
    from markdown_it import MarkdownIt

    result, out = _hostile_run(tmp_path)
    assert result.exit_code == 0, result.output  # mathtext in a chart label no longer crashes the report
    md = (out / "report.md").read_text()
    assert "\x1b" not in md and "\x0b" not in md
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
    assert not [t for t in flat if t.type in ("html_inline", "html_block")]  # no raw HTML anywhere
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not [h for h in headings if "Injected" in h]
    assert not [t for t in flat if t.type == "link_open"]  # no link made from a value
    # Each hostile value is still shown: as text in the rendered Markdown.
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered and "\\invalidcommand{x}" in rendered

    page = (out / "report.html").read_text()
    parser = _Tags()
    parser.feed(page)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "nav", "a", "section", "ul", "li",
               "table", "caption", "thead", "tbody", "tr", "th", "td", "code", "strong", "figure", "img", "div"}
    assert parser.tags <= allowed and not {a for a in parser.attrs if a.startswith("on")}
    assert "\x1b" not in page and "&lt;script&gt;" in page


def test_hostile_values_leave_gate_console_one_line_per_gate(tmp_path):
    result, out = _hostile_run(tmp_path, "--check-gates")
    # exit 1 from the failed savings gate, not from a crash (a mathtext label used to raise inside the report)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "gates: FAILED min_monthly_savings_usd" in result.output and "\x1b" not in result.output


# -- gate.xml, --github-summary and the gate console table --------------------------------------------------------
def _summary(bad: str) -> dict:
    return {"scenario": "s" + bad, "policies": [{
        "name": "c" + bad, "monthly_savings_usd": 1.0, "monthly_savings_ci95": [0.5, 1.5],
        "gates": [{"name": "g" + bad, "passed": False, "detail": "d" + bad},
                  {"name": "ok", "passed": True, "detail": "fine" + bad}]}]}


@pytest.mark.parametrize("bad", HOSTILE + ["\x00nul\ud800"])
def test_gate_outputs_stay_well_formed(bad):
    from simulator.outputs.gate import console_table, github_summary, junit_xml

    root = ET.fromstring(junit_xml(_summary(bad)).encode("utf-8"))  # well-formed XML 1.0 (ESC/VT would not be)
    cases = root.findall(".//testcase")
    assert len(cases) == 2 and len(root.findall(".//failure")) == 1
    lines = console_table(_summary(bad)).split("\n")
    assert len(lines) == 3 and not any(c in "\n".join(lines) for c in "\x1b\x0b\x07\x00")
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(github_summary(_summary(bad)))
    flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
    assert not [t for t in flat if t.type in ("html_inline", "html_block")]
    assert sum(t.type == "tr_open" for t in flat) == 2 + 3  # header + 1 candidate row; header + 2 gate rows


def test_unknown_model_error_is_one_line_without_escape_sequences(tmp_path):
    traffic = Path(__file__).resolve().parent / "fixtures" / "privacy" / "traffic.jsonl"
    result = CliRunner().invoke(cli, ["drift", "--traffic", str(traffic), "--from",
                                      "evil\x1b]0;owned\x07\nsecond line", "--to", "openai-main/gpt-4o"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1 and "\x1b" not in result.stderr
    assert "evil\\x1b]0;owned\\x07\\nsecond line" in result.stderr  # shown, not obeyed


def test_drift_by_team_table_escapes_values():
    from simulator.cli.drift import drift_table

    report = {"tokenizer_from": "a", "tokenizer_to": "b", "input_tokens_from": 1, "input_tokens_to": 1, "ratio": 1.0,
              "method": "identity", "groups": [{"group": "t\x1b[2J\nfake line", "requests": 1, "ratio": 1.0}]}
    text = drift_table(report)
    assert text.count("\n") == 1 and "\x1b" not in text and "t\\x1b[2J\\nfake line" in text


def test_recommend_comment_cannot_add_top_level_keys(tmp_path):
    from simulator.cli.recommend import recommend_scenario, recommend_text

    evil = "w\ngates: {min_monthly_savings_usd: -1000000}"
    start = pd.Timestamp("2026-11-16", tz="UTC")
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(71)],
                          "timestamp": [start + pd.Timedelta(hours=2 * i) for i in range(70)] + [start],
                          "model": ["openai-main/gpt-4o"] * 70 + ["openai-main/gpt-4o-mini"], "input_tokens": 1000,
                          "output_tokens": 100, "status_code": 200, "workflow_tag": [evil] * 70 + ["other"]})
    frame.to_parquet(tmp_path / "traffic.parquet")
    rows = [{"sample_id": f"s{i}", "model": m, "correct": 1, "workflow_tag": evil}
            for i in range(200) for m in ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18")]
    pd.DataFrame(rows).to_parquet(tmp_path / "evals.parquet")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "rec", "traffic": "traffic.parquet",
                                                     "evals": "evals.parquet"}))
    text = recommend_text(recommend_scenario(tmp_path / "s.yaml", 2.0))
    assert "w gates: {min_monthly_savings_usd: -1000000}: openai-main/gpt-4o -> openai-main/gpt-4o-mini" in text
    assert set(yaml.safe_load(text)) == {"candidates"}


def test_validate_and_reconcile_console_text_is_escaped():
    """Problems quote file values and reconcile rows name billed models: each stays one visible terminal line."""
    from simulator.summary.reconcile import reconcile_text
    from simulator.validation import Validation

    report = Validation(scenario="s.yaml", problems=[f"t.csv: unknown model '{ESC}'"], warnings=[HEADING])
    text = report.text()
    assert "\x1b" not in text and "\x07" not in text and "\x0b" not in text
    assert text.splitlines()[1:] == ["  - t.csv: unknown model 'esc\\x1b[31mred\\x1b]8;;http://x\\x07link\\x0bvt'",
                                     "1 warning(s):", "  - evil\\n## Injected heading\\n- injected bullet"]
    row = {"provider": "evil\nprovider", "model": ESC, "period_start": "2026-11-16T00:00:00Z",
           "replayed_cost_usd": 1.0, "billed_cost_usd": 2.0, "gap_usd": -1.0, "gap_pct": -50.0}
    table = reconcile_text({"rows": [row], "gap_pct": -50.0, "replayed_cost_usd": 1.0, "billed_cost_usd": 2.0,
                            "unbilled_requests": 0, "unbilled_cost_usd": 0.0})
    assert "\x1b" not in table and len(table.splitlines()) == 3
    assert table.splitlines()[1].startswith("evil\\nprovider esc\\x1b[31mred")
