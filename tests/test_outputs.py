"""Report, CI gate and diff outputs: sections present, privacy (no user ids, no prompt text in any output),
JUnit XML with failures, gate exit codes and the GitHub step summary, ``tfysim diff`` figures by hand."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from conftest import SMALL_TRAFFIC
from simulator.api import run
from simulator.cli import cli
from simulator.outputs.report.content import build_document
from simulator.outputs.report.document import to_markdown
from simulator.routing.scenario import parse_scenario
from simulator.outputs.requests import RequestsWriter
from simulator.outputs.writer import write_run

OPUS, HAIKU, GPT4O, MINI = ("anthropic-main/claude-opus-4-7", "anthropic-main/claude-haiku-4-5",
                            "openai-main/gpt-4o", "openai-main/gpt-4o-mini")
SPLIT = {"name": "split", "rules": [{"id": "opus", "when": {"models": [OPUS]},
                                     "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]}


def write_scenario(tmp_path: Path, **data) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({"name": "gate-test", "traffic": str(SMALL_TRAFFIC), **data}))
    return path


# -- report ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    sc = parse_scenario({"name": "weekly", "traffic": str(SMALL_TRAFFIC), "gates": {"min_monthly_savings_usd": 0},
                         "candidates": [SPLIT, {"name": "none"}]}, "weekly.yaml", out)
    write_run(run(sc), out)
    return out


def test_report_sections_present(run_folder):
    md = (run_folder / "report.md").read_text()
    for heading in ("## Headline", "**What to do next**", "## Spend by model, team, project and workflow",
                    "## Candidate comparison", "## Data quality", "## Assumptions", "**Spend by workflow**",
                    "**Premium-model share of spend per day**", "**Pricing drift by identity replay"):
        assert heading in md, heading
    assert "| UNTAGGED (attribution gap) | 1 |" in md  # r04 has no project
    # A 1-day window extrapolated 29x to a month: warned about in the headline, and never applied from.
    assert "**Warning: the traffic window is only 24.50 hours" in md
    assert "Replay a week of traffic before applying `split`" in md and "Apply `split`" not in md
    assert "Tag untagged traffic" in md and "has no project" in md
    for chart in ("spend-by-model", "spend-by-workflow_tag", "premium-share-per-day", "candidates"):
        assert f"(report_files/{chart}.png)" in md
        assert (run_folder / "report_files" / f"{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (run_folder / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 4
    assert "<strong>What to do next</strong>" in html


@pytest.mark.parametrize("rotation", [0, 30])
def test_chart_labels_fit_inside_the_png(rotation):
    """Margins are set from font metrics, not a layout engine: matplotlib's own measure of every label drawn
    (a tick label of 60 characters, the most a chart label keeps; a two-line axis label; rotated x labels; the
    title) must lie inside the figure."""
    from simulator.outputs.report import render_png
    from simulator.outputs.report.document import Chart

    figs = []
    names = [("anthropic-main/claude-sonnet-4-6-" + "x" * 60)[:60], "M" * 30, "short"]

    def draw(fig):
        ax = fig.add_subplot(111)
        ax.barh(names, [1_000_000.0, 2.5, 30_000.0])
        ax.set_xlabel("cost in the window (USD)")
        ax.set_ylabel("first line\nsecond line")
        ax.set_title("Spend by a long label")
        ax.tick_params(axis="x", rotation=rotation)
        figs.append(fig)

    png = render_png(Chart("labels", "labels", draw))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figs
    ax = fig.axes[0]
    width, height = fig.bbox.width, fig.bbox.height
    texts = [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    texts += [ax.xaxis.label, ax.yaxis.label, ax.title]
    assert len(texts) >= 3 + 3 + 2
    for t in texts:
        box = t.get_window_extent()
        if t in ax.get_xticklabels() and not 0 <= t.get_position()[0] <= 1_000_000.0:
            continue  # a tick beyond the view is not drawn
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (t.get_text()[:12], box)


def test_a_chart_with_labels_wider_than_the_figure_keeps_its_plot():
    from simulator.outputs.report import render_png
    from simulator.outputs.report.document import Chart

    figs = []

    def draw(fig):
        ax = fig.add_subplot(111)
        ax.barh(["W" * 60], [1.0])
        figs.append(fig)

    render_png(Chart("wide", "wide", draw))
    assert figs[0].axes[0].get_position().width >= 1 / 3 - 1e-9


def test_chart_png_has_the_pixels_matplotlib_saves():
    """The PNG is written by Pillow from the drawn canvas, as RGB because the figure is opaque: decoded, it has
    exactly the pixels matplotlib's own savefig writes (RGBA) for the same figure, and no metadata but the dpi."""
    import io

    import matplotlib
    import numpy as np
    from PIL import Image

    from simulator.outputs.report import render_png
    from simulator.outputs.report.document import Chart

    figs = []

    def draw(fig):
        ax = fig.add_subplot(111)
        ax.barh(["a", "b $x$"], [3.0, 1.5], color=["#cf222e", "#0969da"], alpha=0.85)
        ax.plot([0, 3], [0, 1], "--o")
        ax.set_title("Spend")
        figs.append(fig)

    image = Image.open(io.BytesIO(render_png(Chart("px", "px", draw))))
    assert image.mode == "RGB" and image.size == (900, 420)
    assert set(image.info) == {"dpi"} and round(image.info["dpi"][0]) == 100
    buf = io.BytesIO()
    with matplotlib.rc_context({"text.parse_math": False}):
        figs[0].savefig(buf, format="png")
    saved = np.asarray(Image.open(buf))
    assert saved.shape == (420, 900, 4) and (saved[..., 3] == 255).all()
    assert (np.asarray(image) == saved[..., :3]).all()


def test_charts_are_drawn_with_the_cyclic_gc_paused(run_folder, tmp_path, monkeypatch):
    """matplotlib's import and artists would otherwise trigger full collections over the replay's heap."""
    import gc

    import simulator.outputs.report as report
    from simulator.outputs.report import write_report

    enabled = []
    render = report.render_png
    monkeypatch.setattr(report, "render_png", lambda chart: enabled.append(gc.isenabled()) or render(chart))
    sc = parse_scenario({"name": "weekly", "traffic": str(SMALL_TRAFFIC), "candidates": [SPLIT]}, "w.yaml", tmp_path)
    write_report(run(sc), tmp_path)
    assert enabled and not any(enabled)
    assert gc.isenabled()


def test_no_cyclic_gc_restores_the_collector():
    import gc

    from simulator.memory import no_cyclic_gc

    assert gc.isenabled()
    with no_cyclic_gc():
        assert not gc.isenabled()
        with no_cyclic_gc():
            pass
        assert not gc.isenabled()  # an inner block leaves the outer pause in place
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), no_cyclic_gc():
        1 / 0
    assert gc.isenabled()
    gc.disable()
    try:
        with no_cyclic_gc():
            pass
        assert not gc.isenabled()  # a collector disabled before the block stays disabled
    finally:
        gc.enable()


def test_report_is_deterministic(run_folder, tmp_path):
    sc = parse_scenario({"name": "weekly", "traffic": str(SMALL_TRAFFIC), "gates": {"min_monthly_savings_usd": 0},
                         "candidates": [SPLIT, {"name": "none"}]}, "weekly.yaml", tmp_path)
    write_run(run(sc), tmp_path)
    for name in ("report.md", "report.html", "routing/split.truefoundry.yaml"):
        assert (tmp_path / name).read_bytes() == (run_folder / name).read_bytes(), name


def test_optional_sections_render_and_drop_private_keys(run_folder):
    result = run(parse_scenario({"name": "w", "traffic": str(SMALL_TRAFFIC), "candidates": [SPLIT]}, "w.yaml", "."))
    day = {"virtual_model": "opus", "requests": 10, "user_id": "zed@corp.example"}
    result.summary["drift"] = {"tokens_per_request_by_day": [  # opus-4-7 replaces 4-6 on the second day
        {**day, "model": "claude-opus-4-6", "day": "2026-11-16", "input_tokens_per_request": 100.0},
        {**day, "model": "claude-opus-4-7", "day": "2026-11-17", "input_tokens_per_request": 135.0}]}
    result.summary["policies"][0]["caching"] = {"workflows": [{"workflow_tag": "support-summarize", "hits": 3,
                                                               "prompt": "SYSTEM PROMPT TEXT"}]}
    result.summary["policies"][0]["accuracy_delta_pp"] = -0.5
    result.summary["policies"][0]["accuracy_delta_ci95"] = [-1.5, 0.5]
    md = to_markdown(build_document(result), {})
    assert "## Tokenizer drift" in md and "## Cache opportunities" in md and "## Cost-quality curve" in md
    assert "| opus | claude-opus-4-7 | 2026-11-17 to 2026-11-17 | 10 | 135 |" in md and "| support-summarize | 3 |" in md
    assert "zed@corp.example" not in md and "SYSTEM PROMPT TEXT" not in md
    assert "-0.50 pp (95% CI -1.50 to +0.50)" in md


def test_no_user_ids_or_prompt_text_in_any_output(tmp_path):
    frame = pd.read_csv(SMALL_TRAFFIC)
    frame["prompt"] = [f"Please summarise ticket {i}: customer shouted about invoice QX{i:03d}" for i in range(len(frame))]
    frame["metadata"] = [json.dumps({"conversation_id": f"conv-{i}", "email": f"person{i}@corp.example"})
                         for i in range(len(frame))]
    bad = frame.iloc[[0]].copy()
    bad["request_id"], bad["input_tokens"], bad["user_id"] = "bad1", -5, "mallory@corp.example"
    traffic = tmp_path / "traffic.csv"
    pd.concat([frame, bad]).to_csv(traffic, index=False)
    sc = parse_scenario({"name": "privacy", "traffic": str(traffic), "gates": {"min_monthly_savings_usd": 0},
                         "candidates": [SPLIT, {"name": "caps", "budgets": [
                             {"id": "per-user", "limit_to": 0.01, "unit": "cost_per_day",
                              "budget_applies_per": ["user"]}],
                             "rate_limits": [{"id": "rpm", "limit_to": 1, "unit": "requests_per_minute",
                                              "rate_limit_applies_per": ["user"]}]}]},
                        "privacy.yaml", tmp_path)
    out = tmp_path / "out"
    requests = RequestsWriter()
    write_run(run(sc, observers=[requests]), out, requests=requests)
    secrets = sorted(set(frame["user_id"]) | {"mallory@corp.example"}) + ["customer shouted", "invoice QX0",
                                                                          "corp.example"]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"report.md", "report.html", "summary.json", "rejects.jsonl"}
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} in {path.relative_to(out)}"


# -- gate --------------------------------------------------------------------------------------------------------
def test_gate_passes_with_exit_0(tmp_path):
    path = write_scenario(tmp_path, candidates=[SPLIT], gates={"min_monthly_savings_usd": 0.5})
    result = CliRunner().invoke(cli, ["gate", str(path)])
    assert result.exit_code == 0, result.output
    # the savings gate and the default error-rate gate (max_error_rate_increase_pp 0.5)
    assert "gate-test: all 2 gate(s) passed." in result.output


def test_gate_fails_with_exit_1_and_junit_failures(tmp_path):
    # split saves $1.05..$1.40/month on this traffic: a $1,000 minimum must fail; max_error_rate 0.5 must pass.
    path = write_scenario(tmp_path, candidates=[{**SPLIT, "gates": {"min_monthly_savings_usd": 1000}}],
                          gates={"max_error_rate": 0.5})
    junit = tmp_path / "gate.xml"
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    result = CliRunner(env={"GITHUB_STEP_SUMMARY": str(summary)}).invoke(
        cli, ["gate", str(path), "--junit", str(junit), "--github-summary"])
    assert result.exit_code == 1, result.output
    assert "FAIL  split / min_monthly_savings_usd" in result.output
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite.get("name") == "tfysim.gate-test" and suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"min_monthly_savings_usd", "max_error_rate", "max_error_rate_increase_pp"}
    assert cases["max_error_rate"].find("failure") is None
    failure = cases["min_monthly_savings_usd"].find("failure")
    assert cases["min_monthly_savings_usd"].get("classname") == "tfysim.gate-test.split"
    assert "vs minimum $1,000.00" in failure.get("message")
    md = summary.read_text()
    assert md.startswith("earlier step\n### tfysim gate: `gate-test`: **1 of 3 gate(s) failed**")
    assert "| split | min_monthly_savings_usd | :x: FAIL |" in md


def test_gate_bad_input_exits_2_with_one_line(tmp_path):
    path = write_scenario(tmp_path, candidates=[{"name": "x", "rulez": []}])
    result = CliRunner().invoke(cli, ["gate", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "unknown key 'rulez'. Did you mean 'rules'?" in result.output
    missing = CliRunner().invoke(cli, ["gate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2


def test_gate_without_github_env_warns_and_still_decides(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    path = write_scenario(tmp_path, candidates=[SPLIT], gates={"min_monthly_savings_usd": 0})
    result = CliRunner().invoke(cli, ["gate", str(path), "--github-summary"])
    assert result.exit_code == 0
    assert "GITHUB_STEP_SUMMARY is not set" in result.output


# -- diff --------------------------------------------------------------------------------------------------------
def test_diff_prints_cost_change_computed_by_hand(tmp_path):
    # Three gpt-4o requests of 1 M input tokens: $2.50 each on gpt-4o, $0.15 each on gpt-4o-mini.
    traffic = tmp_path / "t.csv"
    pd.DataFrame({"request_id": ["a", "b", "c"],
                  "timestamp": ["2026-11-16T09:00:00Z", "2026-11-16T10:00:00Z", "2026-11-16T11:00:00Z"],
                  "model": [GPT4O] * 3, "input_tokens": [1_000_000] * 3, "output_tokens": [0] * 3,
                  "latency_ms": [900, 1000, 1100]}).to_csv(traffic, index=False)
    current, proposed = tmp_path / "current.yaml", tmp_path / "proposed.yaml"
    body = ("name: prod\ntype: gateway-load-balancing-config\nrules:\n- id: main\n  when: {{models: [{m}]}}\n"
            "  load_balance_targets:\n  - {{target: {t}, weight: 100}}\n")
    current.write_text(body.format(m=GPT4O, t=GPT4O))
    proposed.write_text(body.format(m=GPT4O, t=MINI))
    result = CliRunner().invoke(cli, ["diff", str(current), str(proposed), "--traffic", str(traffic), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["current_figures"]["cost_usd"] == pytest.approx(7.50)
    assert report["proposed_figures"]["cost_usd"] == pytest.approx(0.45)
    # the vocabulary of `tfysim run`: savings = current minus proposed (7.50 - 0.45)
    assert report["schema_version"] == 1
    assert report["savings"]["savings_usd"] == pytest.approx(7.05)
    assert report["savings"]["savings_pct"] == pytest.approx(94.0)
    assert "monthly_savings_ci95" in report["savings"] and "cost_usd" not in report["change"]
    assert report["requests_routed_differently"] == 3
    assert f"-  - {{target: {GPT4O}, weight: 100}}" in report["yaml_diff"]
    text = CliRunner().invoke(cli, ["diff", str(current), str(proposed), "--traffic", str(traffic)]).output
    assert "cost in the window" in text and "-$7.05 (-94.0%)" in text and "n/a (give --evals)" in text


def test_diff_needs_traffic(tmp_path):
    result = CliRunner().invoke(cli, ["diff", "a.yaml", "b.yaml"])
    assert result.exit_code == 2 and "--traffic" in result.output


def test_action_queue_applies_one_file_per_tenant_config_type_and_names_what_it_replaces():
    from simulator.outputs.report.content import action_queue

    def policy(name, saving):
        return {"name": name, "monthly_savings_usd": saving, "monthly_savings_ci95": [saving / 2, saving * 2],
                "gates": [], "requests_changed": 0, "accuracy_delta_pp": None}

    lb, budget = "gateway-load-balancing-config", "gateway-budget-config"
    routing_files = {
        "full-move": {"files": ["full-move.truefoundry.yaml"], "config_types": {"full-move.truefoundry.yaml": lb}},
        "ab-10pct": {"files": ["ab-10pct.truefoundry.yaml"], "config_types": {"ab-10pct.truefoundry.yaml": lb}},
        "cap": {"files": ["cap.truefoundry.yaml"], "config_types": {"cap.truefoundry.yaml": budget},
                "merged_into": {"cap.truefoundry.yaml": "budgets.yaml"}},
    }
    summary = {"policies": [policy("ab-10pct", 50.0), policy("full-move", 500.0), policy("cap", 100.0)]}
    actions = action_queue(summary, {}, routing_files)
    assert actions[0] == ("Apply `full-move`: `tfy apply -f routing/full-move.truefoundry.yaml --dry-run --show-diff`, "
                          "then apply. Saves $500.00/month (95% CI $250.00 to $1,000.00); accuracy not measured. "
                          "Applying it replaces the tenant's current gateway-load-balancing-config.")
    assert actions[1].startswith("Apply `cap`: `tfy apply -f routing/cap.truefoundry.yaml --dry-run --show-diff`, "
                                 "then apply. Saves $100.00/month")
    assert actions[1].endswith("The file is the tenant's current config (budgets.yaml) merged with it.")
    assert actions[2] == ("Not applied: `ab-10pct` ($50.00/month) is an alternative to `full-move`: its "
                          "gateway-load-balancing-config would replace `full-move`'s (TrueFoundry keeps one per "
                          "tenant and type). To apply both, put their rules in one candidate.")
    assert sum(a.startswith("Apply") for a in actions) == 2
