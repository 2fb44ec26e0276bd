"""FOCUS 1.2: `tfysim run --focus-out` rows checked against FOCUS's column rules (written out here from the spec,
not taken from tfysim), their totals against summary.json, and the round trip write -> read -> reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from simulator.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "downgrade-classify-intent.yaml"
SAMPLE = ROOT / "datasets" / "sample" / "traffic.parquet"
# FOCUS 1.2 columns a cost-and-usage dataset must have (mandatory), and the allowed values used here.
MANDATORY = ["BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
             "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
             "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
             "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName"]
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


@pytest.fixture(scope="module")
def focus(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    path = out / "focus.csv"
    result = CliRunner().invoke(cli, ["run", str(SCENARIO), "--out", str(out), "--focus-out", str(path)])
    assert result.exit_code in (0, 1), result.output
    summary = json.loads((out / "summary.json").read_text())
    return pd.read_csv(path, keep_default_na=False, na_values=[""]), summary, path


def test_focus_column_rules(focus):
    f, _, _ = focus
    assert not [c for c in MANDATORY if c not in f.columns]
    custom = [c for c in f.columns if c not in MANDATORY and not c[0].isupper()]
    assert all(c.startswith("x_") for c in custom)
    assert set(f["ServiceCategory"]) == {"AI and Machine Learning"}
    assert set(f["ServiceSubcategory"]) == {"Generative AI"}
    assert set(f["ChargeCategory"]) <= CHARGE_CATEGORIES and f["ChargeClass"].isna().all()
    assert set(f["BillingCurrency"]) == {"USD"}
    for name in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"):
        assert f[name].str.match(ISO_UTC).all(), name
    start, end = pd.to_datetime(f["ChargePeriodStart"]), pd.to_datetime(f["ChargePeriodEnd"])
    assert ((end - start) == pd.Timedelta(days=1)).all()
    assert (pd.to_datetime(f["BillingPeriodStart"]) <= start).all() and (pd.to_datetime(f["BillingPeriodEnd"]) >= end).all()
    tokens = f["ConsumedUnit"] == "Tokens"
    assert set(f["ConsumedUnit"]) <= {"Tokens", "Requests"}
    assert (f["ConsumedQuantity"] >= 0).all() and (f["BilledCost"] >= 0).all()
    assert np.allclose(f.loc[tokens, "PricingQuantity"] * 1e6, f.loc[tokens, "ConsumedQuantity"])
    # ListCost = ListUnitPrice x PricingQuantity; EffectiveCost is the billed cost here
    assert np.allclose(f["ListUnitPrice"] * f["PricingQuantity"], f["ListCost"], rtol=1e-9, atol=1e-12)
    assert np.allclose(f["EffectiveCost"], f["BilledCost"])
    details = f["SkuPriceDetails"].map(json.loads)
    assert (details.map(lambda d: d["ModelId"]) == f["x_ModelId"].str.split("/", n=1).str[1]).all()
    assert {"baseline"} < set(f["x_Candidate"]) and f["x_Workflow"].notna().all() and f["x_Scenario"].nunique() == 1


def test_focus_totals_match_summary_and_tokens(focus):
    f, summary, _ = focus
    cost = f.groupby("x_Candidate")["BilledCost"].sum()
    assert cost["baseline"] == pytest.approx(summary["baseline"]["cost_usd"], abs=1e-5)
    for policy in summary["policies"]:
        assert cost[policy["name"]] == pytest.approx(policy["cost_usd"], abs=1e-5)
    # baseline token rows add up to the billable tokens of the raw sample (failed requests bill nothing)
    raw = pd.read_parquet(SAMPLE)
    ok = raw[raw["status_code"] < 400]
    base = f[f["x_Candidate"] == "baseline"].groupby("x_TokenType")["ConsumedQuantity"].sum()
    assert base["output"] == ok["output_tokens"].sum()
    assert base["cache_read"] == ok["cache_read_tokens"].sum()
    assert base["input"] + base["cache_read"] + base["cache_write"] + base.get("cache_write_1h", 0) == \
        ok["input_tokens"].sum()


def test_focus_round_trip_reconciles_to_zero(focus):
    _, _, path = focus
    result = CliRunner().invoke(cli, ["reconcile", str(SAMPLE), "--focus", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert round(report["gap_pct"], 2) == 0.0 and report["unbilled_requests"] == 0
    assert all(round(r["gap_pct"], 2) == 0.0 for r in report["rows"] if r["gap_pct"] is not None)
    days = pd.read_parquet(SAMPLE)["timestamp"].dt.date.nunique()
    assert len({r["period_start"] for r in report["rows"]}) == days
    text = CliRunner().invoke(cli, ["reconcile", str(SAMPLE), "--focus", str(path)]).output
    assert "gap +0.00%" in text


def test_reconcile_reports_a_real_gap(tmp_path, focus):
    f, _, _ = focus
    billed = f[f["x_Candidate"] == "baseline"].copy()
    opus = billed["x_ModelId"] == "anthropic-main/claude-opus-4-7"
    billed.loc[opus, "BilledCost"] *= 1.10  # the provider billed 10% more for one model
    path = tmp_path / "bill.csv"
    billed.to_csv(path, index=False)
    report = json.loads(CliRunner().invoke(cli, ["reconcile", str(SAMPLE), "--focus", str(path), "--json"]).stdout)
    gaps = {r["gap_pct"] for r in report["rows"] if r["model"] == "claude-opus-4-7" and r["gap_pct"] is not None}
    assert gaps and all(abs(g - 10.0) < 1e-6 for g in gaps)


def test_reconcile_needs_model_detail(tmp_path):
    path = tmp_path / "bill.csv"
    path.write_text("BilledCost,ChargePeriodStart,ProviderName\n1.0,2026-11-16T00:00:00Z,Anthropic\n")
    result = CliRunner().invoke(cli, ["reconcile", str(SAMPLE), "--focus", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}: not FOCUS billing data with model detail: no SkuPriceDetails "
                                    "(with ModelId) or x_ModelId column")
