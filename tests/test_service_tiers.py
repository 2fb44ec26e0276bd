"""Service tiers: batch for non-interactive workflows, flex and priority, priced from genai-prices' variants or the
dated fallbacks in pricing/service-tiers.yaml. Expected costs are computed by hand from the providers' published
per-million-token prices (quoted in each test)."""

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
from simulator.errors import PricingError
from simulator.outputs.writer import write_run
from simulator.pricing.tiers import ServiceTiers
from simulator.routing.scenario import parse_scenario

REPO = Path(__file__).resolve().parents[1]
HAIKU = "anthropic-main/claude-haiku-4-5"
MINI5 = "openai-main/gpt-5-mini"
MINI4O = "openai-main/gpt-4o-mini"


def write_traffic(path: Path, rows: list[dict]) -> Path:
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return path


def row(i: int, ts: str, model: str, inp: int, out: int, workflow: str, latency: float = 1000.0, **kw) -> dict:
    return {"request_id": f"r{i:03d}", "timestamp": ts, "model": model, "input_tokens": inp, "output_tokens": out,
            "latency_ms": latency, "status_code": 200, "workflow_tag": workflow, **kw}


def scenario(tmp_path: Path, rows: list[dict], candidates: list[dict], **extra):
    traffic = write_traffic(tmp_path / "t.csv", rows)
    return parse_scenario({"name": "tiers", "traffic": str(traffic), "seed": 1, "candidates": candidates, **extra},
                          "tiers.yaml", tmp_path)


def policy(result, name: str) -> dict:
    return {p["name"]: p for p in result.summary["policies"]}[name]


def test_batch_moves_only_non_interactive_requests_at_the_batch_price(tmp_path):
    # Claude Haiku 4.5: $1 / $5 per M standard, $0.50 / $2.50 per M on Message Batches (anthropic.com pricing).
    rows = [
        row(1, "2026-11-16T01:00:00Z", HAIKU, 10_000, 1_000, "nightly-report", latency=4000),
        row(2, "2026-11-16T01:05:00Z", HAIKU, 20_000, 2_000, "nightly-report", latency=6000),
        row(3, "2026-11-16T09:00:00Z", HAIKU, 10_000, 1_000, "chat", latency=900),
        # an interactive workflow, but this request says nobody waits on it
        row(4, "2026-11-16T09:10:00Z", HAIKU, 10_000, 1_000, "chat", latency=1100,
            metadata=json.dumps({"interactive": "false"})),
    ]
    sc = scenario(tmp_path, rows, [{"name": "to-batch", "rules": [{"id": "all", "service_tier": "batch"}]}],
                  workflows={"nightly-report": {"interactive": False}})
    result = run(sc)
    p = policy(result, "to-batch")
    standard = [(10_000 * 1 + 1_000 * 5) / 1e6, (20_000 * 1 + 2_000 * 5) / 1e6, (10_000 * 1 + 1_000 * 5) / 1e6,
                (10_000 * 1 + 1_000 * 5) / 1e6]
    batch = [(10_000 * 0.5 + 1_000 * 2.5) / 1e6, (20_000 * 0.5 + 2_000 * 2.5) / 1e6, None,
             (10_000 * 0.5 + 1_000 * 2.5) / 1e6]
    assert result.summary["baseline"]["cost_usd"] == pytest.approx(sum(standard))
    assert p["cost_usd"] == pytest.approx(batch[0] + batch[1] + standard[2] + batch[3])
    tiers = p["service_tiers"]
    assert tiers["batch_ineligible_requests"] == 1  # row 3: interactive chat
    (entry,) = tiers["by_tier"]
    assert (entry["service_tier"], entry["model"], entry["requests"]) == ("batch", HAIKU, 3)
    assert entry["cost_at_default_tier_usd"] == pytest.approx(standard[0] + standard[1] + standard[3])
    assert entry["synchronous_latency_mean_ms"] == pytest.approx((4000 + 6000 + 1100) / 3)
    assert entry["completion_window"] == "24h" and "within 24h" in entry["latency"]
    assert entry["price_source"] == ["genai-prices batch variant"]
    assert entry["how_to_apply"].startswith("client change: submit these requests through the provider's batch API")
    # batched requests leave the synchronous latency percentiles: only row 3 (900 ms) is left
    assert p["latency_p50_ms_after"] == 900.0 and p["latency_p95_ms_after"] == 900.0
    assert any(a.startswith("batch: prices of the batch tier") for a in p["assumptions"])


def test_batch_before_genai_prices_models_it_uses_the_dated_fallback(tmp_path):
    # genai-prices' Anthropic batch variants start on 2026-10-14; earlier traffic takes pricing/service-tiers.yaml's
    # 0.5 multiplier of the standard price (every token class).
    rows = [row(1, "2026-03-02T01:00:00Z", HAIKU, 10_000, 1_000, "nightly"),
            row(2, "2026-11-02T01:00:00Z", HAIKU, 10_000, 1_000, "nightly")]
    sc = scenario(tmp_path, rows, [{"name": "b", "rules": [{"id": "b", "service_tier": "batch"}]}],
                  workflows={"nightly": {"interactive": False}})
    p = policy(run(sc), "b")
    assert p["cost_usd"] == pytest.approx(2 * (10_000 * 0.5 + 1_000 * 2.5) / 1e6)
    sources = p["service_tiers"]["by_tier"][0]["price_source"]
    assert sources == ["0.5 x standard price (pricing/service-tiers.yaml, "
                       "https://platform.claude.com/docs/en/build-with-claude/batch-processing)",
                       "genai-prices batch variant"]


def test_flex_and_priority_prices_and_flex_refusals(tmp_path):
    # GPT-5 mini: $0.25 / $2 standard, $0.125 / $1 flex; GPT-4o mini: $0.15 / $0.60 standard, $0.25 / $1 priority.
    rows = [row(i, f"2026-11-16T10:{i:02d}:00Z", MINI5, 100_000, 10_000, "ci") for i in range(40)]
    rows += [row(100 + i, f"2026-11-16T11:{i:02d}:00Z", MINI4O, 100_000, 10_000, "chat") for i in range(10)]
    cands = [{"name": "flex", "rules": [{"id": "f", "when": {"models": [MINI5]}, "service_tier": "flex"}]},
             {"name": "priority", "rules": [{"id": "p", "when": {"models": [MINI4O]}, "service_tier": "priority"}]}]
    result = run(scenario(tmp_path, rows, cands, service_tiers={"flex_unavailable_rate": 0.25}))
    standard5, flex5 = (100_000 * 0.25 + 10_000 * 2) / 1e6, (100_000 * 0.125 + 10_000 * 1) / 1e6
    standard4o, priority4o = (100_000 * 0.15 + 10_000 * 0.6) / 1e6, (100_000 * 0.25 + 10_000 * 1) / 1e6
    flex = policy(result, "flex")
    refused = flex["service_tiers"]["flex_unavailable_requests"]
    assert 0 < refused < 40  # a quarter of 40 drawn by hash, retried on the default tier
    assert flex["cost_usd"] == pytest.approx((40 - refused) * flex5 + refused * standard5 + 10 * standard4o)
    assert flex["service_tiers"]["by_tier"][0]["requests"] == 40 - refused
    prio = policy(result, "priority")
    assert prio["cost_usd"] == pytest.approx(40 * standard5 + 10 * priority4o)
    assert prio["savings_usd"] == pytest.approx(10 * (standard4o - priority4o))  # negative: priority costs more
    assert prio["latency_p95_ms_after"] == prio["latency_p95_ms_before"]  # no published figure: recorded kept


def test_a_tier_the_provider_does_not_offer_is_one_clear_error(tmp_path):
    rows = [row(1, "2026-11-16T10:00:00Z", HAIKU, 1_000, 100, "chat")]
    sc = scenario(tmp_path, rows, [{"name": "f", "rules": [{"id": "f", "service_tier": "flex"}]}])
    with pytest.raises(PricingError, match=r"no flex price for model 'anthropic-main/claude-haiku-4-5'"):
        run(sc)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "tiers", "traffic": "t.csv", "candidates": [
        {"name": "f", "rules": [{"id": "f", "service_tier": "flex"}]}]}))
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and r.stderr.startswith("Error: no flex price for model") and r.stderr.count("\n") == 1


def test_configs_state_the_client_change_and_round_trip_flex(tmp_path):
    rows = [row(i, f"2026-11-16T10:{i:02d}:00Z", MINI5, 10_000, 1_000, "ci") for i in range(5)]
    rows += [row(10 + i, f"2026-11-16T11:{i:02d}:00Z", HAIKU, 10_000, 1_000, "nightly") for i in range(5)]
    cands = [{"name": "flex", "rules": [{"id": "f", "when": {"models": [MINI5]}, "service_tier": "flex"}]},
             {"name": "batch", "rules": [{"id": "b", "when": {"metadata": {"workflow_tag": "nightly"}},
                                          "service_tier": "batch"}]}]
    sc = scenario(tmp_path, rows, cands, workflows={"nightly": {"interactive": False}})
    first = run(sc)
    write_run(first, tmp_path / "out")
    index = json.loads((tmp_path / "out" / "routing" / "index.json").read_text())
    assert index["batch"]["files"] == [] and "the change is in the client" in index["batch"]["note"]
    assert index["batch"]["client_changes"][0].startswith("rule 'b': service_tier batch is a client change, not a "
                                                          "routing rule")
    text = (tmp_path / "out" / "routing" / "flex.truefoundry.yaml").read_text()
    manifest = yaml.safe_load(text)
    assert manifest["rules"][0]["load_balance_targets"] == [
        {"target": MINI5, "weight": 100, "override_params": {"service_tier": "flex"}}]
    # read back: the target's override_params put the rule on the flex tier again
    again = sc.model_copy(update={"candidates": [sc.candidates[0].model_copy(update={
        "rules": [], "truefoundry_config": str(tmp_path / "out" / "routing" / "flex.truefoundry.yaml")})]})
    assert policy(run(again), "flex")["cost_usd"] == policy(first, "flex")["cost_usd"]


def test_tier_data_file_is_dated_and_sourced():
    tiers = ServiceTiers.load()
    batch = tiers.tier("batch")
    assert batch.window_ms == 24 * 3_600_000 and batch.interactive_ok is False and batch.client_change
    assert all(url.startswith("https://") for url in batch.sources.values())
    with pytest.raises(PricingError, match=r"needs `source` \(every value is dated and sourced\)"):
        ServiceTiers({"schema_version": 1, "sources": {}, "tiers": {
            "default": {"completion": {"value": "synchronous", "since": "2026-11-26"}}}}, "x.yaml")


def test_batch_scenario_runs(tmp_path):
    result = run(REPO / "scenarios" / "batch-non-interactive.yaml")
    p = policy(result, "offline-workflows-to-batch")
    assert {r["model"] for r in p["service_tiers"]["by_tier"]} >= {"anthropic-main/claude-sonnet-4-6"}
    assert p["savings_usd"] > 0 and p["service_tiers"]["batch_ineligible_requests"] == 0
    everything = policy(result, "everything-to-batch")
    # only sql-gen and content-gen are marked non-interactive: the rest of the week stays synchronous
    frame = pd.read_parquet(REPO / "datasets" / "sample" / "traffic.parquet")
    offline = frame["workflow_tag"].isin(["sql-gen", "content-gen"]) & (frame["status_code"] < 400)
    assert sum(r["requests"] for r in everything["service_tiers"]["by_tier"]) == int(offline.sum())
    assert everything["service_tiers"]["batch_ineligible_requests"] == int((~frame["workflow_tag"].isin(
        ["sql-gen", "content-gen"]) & (frame["status_code"] < 400)).sum())
    assert np.isclose(everything["savings_usd"], p["savings_usd"])
