"""Opportunities found without written candidates, the plan, and week over week.

Expectations come from hand computation (the interaction case, priced from published per-million prices) or from
the raw data files (eval samples and traffic read with pandas), never from the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator.api import run
from simulator.cli import cli
from simulator.errors import InputError, ScenarioError
from simulator.routing.scenario import parse_scenario

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "sample"
OPUS46, HAIKU = "anthropic-main/claude-opus-4-6", "anthropic-main/claude-haiku-4-5"


# -- the plan: interactions ---------------------------------------------------------------------------------------
def interaction_scenario(tmp_path: Path, **extra):
    # Workflow "summaries": 4 requests on Opus 4.6 at minutes 0-3, 2 on Haiku 4.5 at minutes 10 and 11, all sharing
    # a 5,000-token system prompt (6,000 input, 100 output tokens). Opus 4.6 and Haiku 4.5 share a tokenizer
    # family, so moved requests keep their token counts.
    t0 = pd.Timestamp("2026-11-16T09:00:00Z")
    rows = [{"request_id": f"r{i}", "timestamp": (t0 + pd.Timedelta(minutes=m)).isoformat(), "model": model,
             "input_tokens": 6000, "output_tokens": 100, "status_code": 200, "latency_ms": 900.0,
             "workflow_tag": "summaries", "project": "docs", "prefix_hash": "system-prompt", "prefix_tokens": 5000}
            for i, (m, model) in enumerate([(0, OPUS46), (1, OPUS46), (2, OPUS46), (3, OPUS46), (10, HAIKU),
                                            (11, HAIKU)])]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    data = {"name": "interact", "traffic": "t.csv", "seed": 1, "bootstrap": {"unit": "hour", "draws": 200},
            "opportunities": {"cache": False},
            "candidates": [
                {"name": "to-haiku", "rules": [{"id": "s", "when": {"models": [OPUS46]},
                                                "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]},
                {"name": "cache-haiku", "prompt_caching": [{"when": {"models": [HAIKU]}, "mode": "explicit",
                                                            "ttl": "5m"}]}], **extra}
    return parse_scenario(data, "interact.yaml", tmp_path)


def test_plan_combined_saving_differs_from_the_sum_of_parts_where_they_interact(tmp_path):
    # Haiku 4.5: $1 in, $5 out, 5-minute write $1.25, read $0.10 per M; Opus 4.6: $5 in, $25 out.
    opus_row = (6000 * 5 + 100 * 25) / 1e6          # 0.0325
    haiku_row = (6000 * 1 + 100 * 5) / 1e6          # 0.0065
    write_row = (1000 * 1 + 5000 * 1.25 + 100 * 5) / 1e6  # 0.00775: the prefix written
    read_row = (1000 * 1 + 5000 * 0.1 + 100 * 5) / 1e6    # 0.002: the prefix read
    baseline = 4 * opus_row + 2 * haiku_row
    alone_move = 4 * (opus_row - haiku_row)                 # caching alone sees only the recorded Haiku rows:
    alone_cache = 2 * haiku_row - (write_row + read_row)    # written at 10, read at 11
    # Together the moved rows are cached too: written at 0, read at 1-3; the entry expires 5 min after the read at 3,
    # so minute 10 writes again and minute 11 reads.
    together = baseline - (2 * write_row + 4 * read_row)
    result = run(interaction_scenario(tmp_path))
    s = result.summary
    assert s["baseline"]["cost_usd"] == pytest.approx(baseline)
    policies = {p["name"]: p for p in s["policies"]}
    assert policies["to-haiku"]["savings_usd"] == pytest.approx(alone_move)
    assert policies["cache-haiku"]["savings_usd"] == pytest.approx(alone_cache)
    plan = s["plan"]
    assert [c["name"] for c in plan["components"]] == ["to-haiku", "cache-haiku"]
    assert plan["policy"]["savings_usd"] == pytest.approx(together)
    assert together - (alone_move + alone_cache) == pytest.approx(0.01225)
    parts = policies["to-haiku"]["monthly_savings_usd"] + policies["cache-haiku"]["monthly_savings_usd"]
    assert plan["sum_of_parts_monthly_savings_usd"] == pytest.approx(parts, abs=1e-5)
    assert plan["interaction_monthly_usd"] == pytest.approx(plan["monthly_savings_usd"] - parts, abs=1e-5)
    assert plan["interaction_monthly_usd"] > 0
    assert plan["monthly_savings_ci95"][0] <= plan["monthly_savings_usd"] <= plan["monthly_savings_ci95"][1]
    assert plan["client_changes"] == ["prompt caching for all workflows on anthropic-main/claude-haiku-4-5: mark "
                                      "the prefix with cache_control breakpoints (TTL 5m)"]


def test_overlapping_candidates_are_not_combined(tmp_path):
    sc = interaction_scenario(tmp_path)
    clash = {"name": "to-haiku-too", "rules": [{"id": "t", "when": {"metadata": {"workflow_tag": "summaries"}},
                                               "load_balance_targets": [{"target": HAIKU, "weight": 100}]}]}
    sc = sc.model_copy(update={"candidates": list(sc.candidates) + [parse_scenario(
        {"name": "x", "candidates": [clash]}, "x.yaml", tmp_path).candidates[0]]})
    plan = run(sc).summary["plan"]
    names = [c["name"] for c in plan["components"]]
    assert "cache-haiku" in names and len({"to-haiku", "to-haiku-too"} & set(names)) == 1
    (left,) = [x for x in plan["skipped"] if x["name"] in ("to-haiku", "to-haiku-too")]
    # the Opus rows (4) are claimed by both routing rules
    assert "(4 routing requests)" in left["reason"]


def test_explicit_plan_names_must_exist(tmp_path):
    sc = interaction_scenario(tmp_path, plan={"candidates": ["to-haiku", "to-haku"]})
    with pytest.raises(ScenarioError, match=r"plan.candidates: 'to-haku' is not a candidate .* Did you mean 'to-haiku'"):
        run(sc)


def test_plan_command(tmp_path):
    sc = interaction_scenario(tmp_path)
    path = tmp_path / "interact.yaml"
    path.write_text(yaml.safe_dump(sc.model_dump(mode="json", exclude={"base_dir"}, exclude_defaults=True)))
    r = CliRunner().invoke(cli, ["plan", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    assert first.startswith("interact: plan 'plan' saves $") and "the parts alone" in first
    assert "  + to-haiku (candidate)" in r.stdout and "  + cache-haiku (candidate)" in r.stdout
    assert "apply: tfy apply -f routing/plan.truefoundry.yaml --dry-run --show-diff" in r.stdout
    manifest = yaml.safe_load((tmp_path / "out" / "routing" / "plan.truefoundry.yaml").read_text())
    assert manifest["type"] == "gateway-load-balancing-config" and len(manifest["rules"]) == 1
    r = CliRunner().invoke(cli, ["plan", str(path), "--out", str(tmp_path / "out"), "--json"])
    assert json.loads(r.stdout)["name"] == "plan"


# -- the premium review on the sample week -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def review(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review")
    result = run(REPO / "scenarios" / "premium-review.yaml")
    from simulator.outputs.writer import write_run

    write_run(result, folder)
    return result.summary, folder


def test_review_shows_model_opportunities_without_candidates(review):
    summary, _ = review
    evals = pd.read_parquet(SAMPLE / "evals.parquet")
    traffic = pd.read_parquet(SAMPLE / "traffic.parquet")
    by = {e["workflow_tag"]: e for e in summary["opportunities"]["by_workflow"]}
    assert set(by) == set(traffic["workflow_tag"].dropna())
    # classify-intent moves to Haiku: its evidence is the paired samples of Opus 4.7 and Haiku 4.5 in that workflow
    ci = by["classify-intent"]
    assert ci["status"] == "move" and ci["target"] == HAIKU
    wf = evals[evals["workflow_tag"] == "classify-intent"]
    pivot = wf.pivot_table(index="sample_id", columns="model", values="correct")
    paired = int(pivot[["anthropic-main/claude-opus-4-7", HAIKU]].dropna().shape[0])
    assert ci["evidence"].startswith(f"{paired} paired eval samples in classify-intent")
    delta = 100 * (pivot[HAIKU] - pivot["anthropic-main/claude-opus-4-7"]).mean()
    # the opportunity's change is traffic-weighted on the moved requests (only the Opus share moves), so it lies
    # between 0 and the raw paired delta
    assert min(0.0, delta) - 0.5 <= ci["accuracy_delta_pp"] <= max(0.0, delta) + 0.5
    assert ci["monthly_savings_ci95"][0] > 0
    # workflows without any eval sample are "label N samples"
    unlabelled = set(traffic["workflow_tag"].dropna()) - set(evals["workflow_tag"])
    assert unlabelled and all(by[w]["status"] == "label" and by[w]["samples_needed"] > 0 for w in unlabelled)
    # the failing move of code-review to Haiku is tried and rejected on accuracy
    tried = {t["target"]: t for t in by["code-review"]["tried"]}
    assert tried[HAIKU]["verdict"] == "fail" and not tried[HAIKU]["passed"]


def test_review_shows_cache_opportunities_without_candidates(review):
    summary, _ = review
    traffic = pd.read_parquet(SAMPLE / "traffic.parquet")
    rows = {(e["workflow_tag"], e["model"]): e for e in summary["cache_opportunities"]["by_workflow_model"]}
    # requests the probes simulate: served (failed ones never reached a cache), no recorded cache activity (those
    # keep it)
    fresh = traffic[(traffic["cache_read_tokens"] == 0) & (traffic["cache_write_tokens"] == 0)
                    & (traffic["status_code"] < 400)]
    for (workflow, model), sub in fresh.groupby(["workflow_tag", "model"]):
        entry = rows[(workflow, model)]
        assert entry["requests"] == len(sub)
        has = sub[sub["prefix_hash"].notna() & (sub["prefix_tokens"] > 0)]
        assert entry["requests_with_prefix"] == len(has)
        assert entry["distinct_prefixes"] == has["prefix_hash"].nunique()
        assert entry["recurring_requests"] == len(has) - has["prefix_hash"].nunique()
    kept = int((((traffic["cache_read_tokens"] > 0) | (traffic["cache_write_tokens"] > 0))
                & (traffic["status_code"] < 400)).sum())
    assert summary["cache_opportunities"]["requests_kept_recorded_cache"] == kept
    opus = rows[("code-review", "anthropic-main/claude-opus-4-7")]
    # pricing/cache-rules.yaml: Opus 4.7's minimum is 4,096 from 2026-06-01 and 2,048 from 2026-11-26; the sample
    # week (2026-11-16 to 22) is dated before the change
    assert opus["min_tokens"] == 4096 and {o["ttl"] for o in opus["options"]} == {"5m", "1h"}
    assert opus["best"]["action"].startswith("mark the prefix with cache_control breakpoints")
    gpt5 = rows[("code-review", "openai-main/gpt-5")]
    assert {(o["ttl"], o["actionable"]) for o in gpt5["options"]} == {("5m", False), ("24h", True)}


def test_review_plan_combines_the_passing_candidates(review):
    summary, folder = review
    plan = summary["plan"]
    passing = [p["name"] for p in summary["policies"]
               if all(g["passed"] for g in p["gates"]) and p["monthly_savings_usd"] > 0]
    combined = {c["name"] for c in plan["components"]}
    skipped = {s["name"] for s in plan["skipped"]}
    assert set(passing) <= combined | skipped and "classify-intent-to-haiku" in combined
    assert "code-review-to-haiku" not in combined  # its accuracy gate fails
    assert all(g["passed"] for g in plan["gates"])
    assert (folder / "routing" / "plan.truefoundry.yaml").is_file()
    report = (folder / "report.md").read_text()
    for title in ("## The plan: compatible changes combined", "## Model opportunities (found without candidates)",
                  "## Prompt-caching opportunities (found without candidates)"):
        assert title in report
    assert "- Apply the plan (" in report


# -- week over week -----------------------------------------------------------------------------------------------
def test_since_last_week_flags_changes_beyond_the_interval(tmp_path):
    golden = REPO / "tests" / "fixtures" / "golden_scenario.yaml"
    first = run(golden).summary
    previous = json.loads(json.dumps(first))
    previous["baseline"]["monthly_cost_usd"] *= 10  # far outside this week's interval
    previous["policies"][0]["monthly_savings_usd"] = first["policies"][0]["monthly_savings_usd"]  # unchanged
    (tmp_path / "prev.json").write_text(json.dumps(previous))
    s = run(golden, previous=tmp_path / "prev.json").summary
    rows = {r["metric"]: r for r in s["since_last_week"]["rows"]}
    spend = rows["spend per month"]
    assert spend["flagged"] and spend["interval_95"][0] <= spend["current_value"] <= spend["interval_95"][1]
    assert not rows["savings per month: gpt-4o-to-mini"]["flagged"]
    # untagged share of spend by project, from the fixture by hand: r04 (Opus 4.7, 1,000 in / 200 out) has no
    # project: (1000 x 5 + 200 x 25) / 1e6 over the catalog baseline
    frame = pd.read_csv(REPO / "tests" / "fixtures" / "small_traffic.csv")
    assert frame.loc[frame["project"].isna(), "request_id"].tolist() == ["r04"]
    share = rows["untagged share of spend (project)"]["current_value"]
    assert share == pytest.approx(0.01 / s["baseline"]["cost_usd"])
    assert s["since_last_week"]["flagged"] == ["spend per month"]


def test_previous_must_be_a_summary(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a tfysim summary.json"):
        run(REPO / "tests" / "fixtures" / "golden_scenario.yaml", previous=tmp_path / "x.json")
    r = CliRunner().invoke(cli, ["run", str(REPO / "tests" / "fixtures" / "golden_scenario.yaml"), "--out",
                                 str(tmp_path / "o"), "--previous", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and r.stderr.startswith("Error: ") and "file not found (--previous)" in r.stderr


def test_stacked_plan_scenario_runs():
    s = run(REPO / "scenarios" / "stacked-plan.yaml").summary
    plan = s["plan"]
    assert [c["name"] for c in plan["components"]] == ["classify-intent-to-haiku", "support-bot-daily-cap",
                                                        "cache-sql-gen", "newsletter-batch"]
    # moving classify-intent keeps support-bot under its daily cap: the budget's reroutes (and savings) vanish
    alone = {p["name"]: p for p in s["policies"]}["support-bot-daily-cap"]
    assert sum(b["requests_rerouted"] for b in alone["budgets"]) > 0
    together = plan["policy"]["budgets"]
    assert sum(b["requests_rerouted"] for b in together) < sum(b["requests_rerouted"] for b in alone["budgets"])
    assert plan["interaction_monthly_usd"] < 0
    assert not np.isclose(plan["monthly_savings_usd"], plan["sum_of_parts_monthly_savings_usd"])


# -- one interval method, one token-count interval -------------------------------------------------------------------
def test_week_over_week_intervals_use_the_savings_interval_method():
    from simulator.summary.accumulate import BLOCK_SUMS
    from simulator.summary.intervals import savings_interval
    from simulator.summary.weekly import block_intervals

    # 7 days, one block per hour (minute keys), spend that swings by day; errors exactly 10% of requests every hour.
    rng = np.random.default_rng(3)
    keys = np.arange(7 * 24) * 60
    day = keys // (24 * 60)
    cost = rng.gamma(4.0, 1.0, len(keys)) * (1.0 + 0.3 * (day % 3))
    requests = rng.integers(50, 150, len(keys)).astype(float)
    sums = np.zeros((len(keys), len(BLOCK_SUMS)))
    col = {name: i for i, name in enumerate(BLOCK_SUMS)}
    sums[:, col["cost_usd"]] = cost
    sums[:, col["requests"]] = requests
    sums[:, col["errors"]] = 0.1 * requests
    ts_min, ts_max = 0, int(keys[-1]) * 60 * 10**9 + 59 * 10**9
    days = (ts_max - ts_min) / 86_400e9
    got = block_intervals(keys, sums, ts_min, ts_max, "auto", days)
    # monthly spend: the interval a candidate saving this much per minute would get
    same = savings_interval(keys, cost, ts_min, ts_max)["monthly_savings_ci95"]
    assert got["monthly_cost_usd"] == pytest.approx(same, abs=1e-5)
    assert got["monthly_cost_usd"][0] < cost.sum() * 30 / days < got["monthly_cost_usd"][1]
    # a rate that never moves has no width: sum(errors - 0.1 requests) is 0 in every block
    assert got["error_rate"] == pytest.approx([0.1, 0.1], abs=1e-12)
    assert "premium_share_cost" in got and got["premium_share_cost"] == pytest.approx([0.0, 0.0], abs=1e-12)


def test_token_count_interval_is_the_translators_calibration_interval():
    import math

    from simulator.tokens.calibration import ALL, SOURCE_TRAFFIC, Calibration, RatioEstimate
    from simulator.tokens.intervals import count_interval
    from simulator.tokens.registry import DEFAULT_REGISTRY

    # Claude's tokenizer fitted on the traffic at 1.20 x o200k, 95% interval 1.10 to 1.32: counts may be off by
    # 1.10 / 1.20 = 0.9167 to 1.32 / 1.20 = 1.10.
    fitted = Calibration({("calibrated:claude-3-4.6", ALL): RatioEstimate(1.2, 1.1, 1.32, n=40, source=SOURCE_TRAFFIC)})
    got = count_interval("anthropic/claude-sonnet-4-5", DEFAULT_REGISTRY, fitted)
    assert (got.low, got.high, got.basis) == (pytest.approx(1.1 / 1.2), pytest.approx(1.32 / 1.2), "calibrated")
    assert got.verdict(1100, 1024) == "borderline" and got.verdict(1200, 1024) == "yes"
    assert got.verdict(900, 1024) == "no"
    assert count_interval("openai/gpt-4o", DEFAULT_REGISTRY, fitted).basis == "exact"
    # Without a fit: the shipped claude-3-4.6 / o200k ratio (pricing/tokenizer-ratios.yaml) states no range, so the
    # translator has no interval for it and the count interval falls back to the spread of its content classes:
    # prose 1.157, code 1.329, non-Latin 1.323 around all 1.269.
    assert not any(math.isfinite(b) for b in Calibration().vs_reference("calibrated:claude-3-4.6", ALL).log_bounds)
    shipped = count_interval("anthropic/claude-sonnet-4-5", DEFAULT_REGISTRY, Calibration())
    assert shipped.basis == "calibrated-default"
    assert (shipped.low, shipped.high) == (pytest.approx(1.157 / 1.269), pytest.approx(1.329 / 1.269))
    # a shipped ratio with a stated range uses that range, as the translator does: a calibration whose only
    # Claude entry is a default with a range 1.10-1.40 around 1.25
    ranged = Calibration({("calibrated:claude-3-4.6", ALL): RatioEstimate(1.25, 1.10, 1.40, source="default")})
    got = count_interval("anthropic/claude-sonnet-4-5", DEFAULT_REGISTRY, ranged)
    assert (got.low, got.high, got.basis) == (pytest.approx(1.10 / 1.25), pytest.approx(1.40 / 1.25),
                                              "calibrated-default")


def test_action_queue_puts_the_plan_first_and_its_components_with_it():
    from simulator.outputs.report.content import action_queue

    def policy(name, saving, scope):
        return {"name": name, "monthly_savings_usd": saving, "monthly_savings_ci95": [saving / 2, saving * 2],
                "gates": [], "requests_changed": 0, "accuracy_delta_pp": None, "scope": [scope]}

    lb = "gateway-load-balancing-config"
    routing_files = {name: {"files": [f"{name}.truefoundry.yaml"], "config_types": {f"{name}.truefoundry.yaml": lb}}
                     for name in ("plan", "a", "b", "c")}
    summary = {"policies": [policy("a", 300.0, "workflow:x"), policy("b", 200.0, "workflow:y"),
                            policy("c", 100.0, "workflow:z")],
               "plan": {"name": "plan", "candidate": {"name": "plan"}, "client_changes": ["mark the prefix"],
                        "components": [{"name": "a", "source": "candidate"}, {"name": "b", "source": "candidate"}],
                        "policy": policy("plan", 450.0, "workflow:x")}}
    actions = action_queue(summary, {}, routing_files)
    assert actions[0].startswith("Apply the plan (`a`, `b`): `tfy apply -f routing/plan.truefoundry.yaml --dry-run "
                                 "--show-diff`, then apply") and "Saves $450.00/month" in actions[0]
    assert actions[0].endswith(" Client changes: mark the prefix.")
    assert actions[1] == "`a` ($300.00/month alone) is applied with the plan `plan`: its rules are in the plan's files."
    assert actions[2] == "`b` ($200.00/month alone) is applied with the plan `plan`: its rules are in the plan's files."
    # c is not in the plan and its config type is the plan's: one config per tenant and type
    assert actions[3].startswith("Not applied: `c` ($100.00/month) is an alternative to `plan`")
    # a plan whose gate fails is held, and claims nothing: the candidates are judged on their own
    summary["plan"]["policy"]["gates"] = [{"name": "max_accuracy_drop_pp", "passed": False, "detail": "-3 pp"}]
    held = action_queue(summary, {}, routing_files)
    # gate details are Markdown-escaped text (document.literal); "-3" starts no block, so it reads as written
    assert held[0].startswith("Hold `plan` ($450.00/month): gate max_accuracy_drop_pp failed: -3 pp")
    assert held[0].endswith("(the plan combines `a`, `b`). Client changes: mark the prefix.")
    assert held[1].startswith("Apply `a`:")


def test_overlaps_count_the_requests_two_candidates_claim_per_kind(tmp_path):
    from types import SimpleNamespace

    from simulator.routing.matching import RequestView
    from simulator.summary.plan import Overlaps

    gpt = "openai-main/gpt-5"
    models = [OPUS46, OPUS46, HAIKU, HAIKU, HAIKU, gpt]
    frame = pd.DataFrame({"model": pd.Categorical(models), "requested_model": pd.Categorical(models)})
    to = [{"target": HAIKU, "weight": 100}]
    cands = parse_scenario({"name": "x", "candidates": [
        {"name": "a", "rules": [{"id": "a", "when": {"models": [OPUS46]}, "load_balance_targets": to}]},
        {"name": "b", "rules": [{"id": "b", "when": {"models": [OPUS46, HAIKU]}, "load_balance_targets": to}]},
        {"name": "c", "budgets": [{"id": "c", "limit_to": 1.0, "unit": "cost_per_day", "on_exceed": "block"}]},
    ]}, "x.yaml", tmp_path).candidates
    overlaps = Overlaps(["a", "b", "c"])
    chunk = SimpleNamespace(n=len(frame), view=RequestView(frame))
    overlaps.add(chunk, cands)
    overlaps.add(chunk, cands)  # a second chunk adds up
    # by hand: a claims rows 0-1 for routing, b rows 0-4, c every row (6) for budgets; two chunks
    assert overlaps.shared("a", "b") == {"routing": 4}
    assert overlaps.shared("b", "a") == {"routing": 4}
    assert overlaps.shared("b", "b") == {"routing": 10}
    assert overlaps.shared("a", "c") == {}
    assert overlaps.shared("c", "c") == {"budgets": 12}


def test_overlaps_count_shared_rows_per_kind_by_hand(monkeypatch):
    """Overlaps over two chunks: routing claimed by a and b on rows 1 and 3 of chunk 1 and row 0 of chunk 2 (3
    shared), budgets by a and c on no common row, rate limits by nobody, caching by every candidate on every row of
    chunk 2 (2 rows); the diagonal counts each candidate's own claims."""
    from types import SimpleNamespace

    import simulator.summary.plan as plan

    b = lambda *v: np.array(v, dtype=bool)  # noqa: E731
    chunks = [
        {"a": {"routing": b(0, 1, 0, 1), "budgets": b(1, 0, 0, 0), "rate_limits": b(0, 0, 0, 0),
               "prompt_caching": b(0, 0, 0, 0)},
         "b": {"routing": b(1, 1, 0, 1), "budgets": b(0, 0, 0, 0), "rate_limits": b(0, 0, 0, 0),
               "prompt_caching": b(0, 0, 0, 0)},
         "c": {"routing": b(0, 0, 0, 0), "budgets": b(0, 1, 1, 0), "rate_limits": b(0, 0, 0, 0),
               "prompt_caching": b(0, 0, 0, 0)}},
        {"a": {"routing": b(1, 0), "budgets": b(0, 0), "rate_limits": b(0, 0), "prompt_caching": b(1, 1)},
         "b": {"routing": b(1, 1), "budgets": b(0, 0), "rate_limits": b(0, 0), "prompt_caching": b(1, 1)},
         "c": {"routing": b(0, 0), "budgets": b(0, 0), "rate_limits": b(0, 0), "prompt_caching": b(1, 1)}},
    ]
    cands = [SimpleNamespace(name=n) for n in "abc"]
    overlaps = plan.Overlaps(["a", "b", "c"])
    for masks in chunks:
        monkeypatch.setattr(plan, "claims", lambda view, cand, masks=masks: masks[cand.name])
        overlaps.add(SimpleNamespace(n=len(masks["a"]["routing"]), view=None), cands)
    assert overlaps.shared("a", "b") == {"routing": 3, "prompt_caching": 2}
    assert overlaps.shared("a", "c") == {"prompt_caching": 2}
    assert overlaps.shared("b", "c") == {"prompt_caching": 2}
    assert overlaps.shared("a", "a") == {"routing": 3, "budgets": 1, "prompt_caching": 2}
    assert overlaps.shared("b", "b") == {"routing": 5, "prompt_caching": 2}
    assert overlaps.shared("c", "c") == {"budgets": 2, "prompt_caching": 2}


def test_pooled_variance_pools_paired_differences_of_first_outcomes_by_hand():
    from simulator.summary.opportunities import pooled_variance

    samples = pd.DataFrame({
        "workflow_tag": ["w", "w", "w", "w", "w", "v", "v", None],
        "sample_id": ["s2", "s1", "s1", "s2", "s1", "s1", "s1", "s1"],
        "model": ["b", "a", "b", "a", "b", "a", "c", "a"],
        "correct": [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0],
    })
    # first outcome per (workflow, sample, model): w/s1 a=1 b=1 (the later b=0 is a repeat), w/s2 a=1 b=0,
    # v/s1 a=0 c=1; the untagged row has no workflow. Pairs (a, b): 0, -1; (a, c): +1; (b, c): none.
    assert pooled_variance(samples) == pytest.approx(np.var([0.0, -1.0, 1.0]))
    assert pooled_variance(samples.iloc[[0]]) is None
