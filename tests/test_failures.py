"""Failures are never savings: equal-service savings, unserved and rescued requests, refusals, the default error gate.

Prices (genai-prices, 2026-11): gpt-4o $2.50 in / $10 out per M; gpt-4o-mini $0.15 in / $0.60 out per M. Both use
the o200k tokenizer, so token counts do not change between them and every figure below is hand-computed.
"""

from __future__ import annotations

import pytest

from helpers import req
from simulator.api import run
from simulator.routing.scenario import parse_scenario

GPT4O, MINI = "openai-main/gpt-4o", "openai-main/gpt-4o-mini"
DOWNGRADE = {"name": "down", "rules": [{"id": "d", "when": {"models": [GPT4O]},
                                        "load_balance_targets": [{"target": MINI, "weight": 100}]}]}


def _run(tmp_path, records, candidates, **extra):
    import pandas as pd

    path = tmp_path / "traffic.parquet"
    frame = pd.DataFrame.from_records(records)
    frame.to_parquet(path)
    data = {"name": "f", "traffic": str(path), "bootstrap": {"unit": "hour", "draws": 200},
            "candidates": candidates, **extra}
    return run(parse_scenario(data, str(tmp_path / "s.yaml"), tmp_path)).summary


def _ten_hours():
    # one gpt-4o request per hour, 1 M input tokens each: $2.50 recorded, $0.15 on gpt-4o-mini
    return [req(i, f"2026-11-16T{i:02d}:30:00Z") for i in range(10)]


def test_an_outage_of_the_target_lowers_savings_and_fails_the_default_gate(tmp_path):
    clean = _run(tmp_path, _ten_hours(), [DOWNGRADE])["policies"][0]
    assert clean["savings_usd"] == pytest.approx(10 * (2.50 - 0.15))
    outage = {"target": MINI, "start": "2026-11-16T05:00:00Z", "end": "2026-11-16T10:00:00Z", "status": 503}
    hit = _run(tmp_path, _ten_hours(), [DOWNGRADE], outages=[outage])["policies"][0]
    # 5 requests fail on gpt-4o-mini (one target: no fallback). They save nothing; before this fix they "saved"
    # their whole $2.50 each (a failed request bills $0).
    assert hit["requests_unserved"] == 5
    assert hit["unserved_recorded_cost_usd"] == pytest.approx(5 * 2.50)
    assert hit["savings_usd"] == pytest.approx(5 * (2.50 - 0.15))
    assert hit["savings_usd"] < clean["savings_usd"]
    assert hit["error_rate_before"] == 0.0 and hit["error_rate_after"] == pytest.approx(0.5)
    gate = {g["name"]: g for g in hit["gates"]}["max_error_rate_increase_pp"]
    assert gate["passed"] is False and "(+50.0 pp;" in gate["detail"]
    assert {g["name"]: g for g in clean["gates"]}["max_error_rate_increase_pp"]["passed"] is True


def test_the_default_error_gate_can_be_turned_off_or_changed(tmp_path):
    outage = {"target": MINI, "start": "2026-11-16T05:00:00Z", "end": "2026-11-16T10:00:00Z", "status": 503}
    off = dict(DOWNGRADE, name="off", gates={"max_error_rate_increase_pp": None})
    loose = dict(DOWNGRADE, name="loose", gates={"max_error_rate_increase_pp": 60})
    policies = _run(tmp_path, _ten_hours(), [DOWNGRADE, off, loose], outages=[outage])["policies"]
    names = {p["name"]: [g["name"] for g in p["gates"]] for p in policies}
    assert "max_error_rate_increase_pp" in names["down"] and "max_error_rate_increase_pp" not in names["off"]
    assert {g["name"]: g["passed"] for g in policies[2]["gates"]}["max_error_rate_increase_pp"] is True


def test_a_rescued_failed_request_is_priced_from_its_workflow_median(tmp_path):
    # classify: three successful gpt-4o requests (inputs 100k, 200k, 900k; outputs 10k, 20k, 90k): medians 200k
    # and 20k. A fourth failed with 503 and recorded no tokens. The candidate sends classify to gpt-4o-mini, where
    # it is served: it costs 200k x $0.15 + 20k x $0.60 per M = $0.042, never $0.
    records = [req(1, "2026-11-16T01:00:00Z", inp=100_000, out=10_000, workflow_tag="classify"),
               req(2, "2026-11-16T02:00:00Z", inp=200_000, out=20_000, workflow_tag="classify"),
               req(3, "2026-11-16T03:00:00Z", inp=900_000, out=90_000, workflow_tag="classify"),
               req(4, "2026-11-16T04:00:00Z", inp=0, out=0, status_code=503, workflow_tag="classify"),
               req(5, "2026-11-17T04:00:00Z", inp=1_000_000, out=0, workflow_tag="other")]
    pol = _run(tmp_path, records, [{"name": "down", "rules": [{
        "id": "d", "when": {"metadata": {"workflow_tag": "classify"}},
        "load_balance_targets": [{"target": MINI, "weight": 100}]}]}])["policies"][0]
    assert pol["requests_rescued"] == 1 and pol["requests_imputed"] == 1
    rescued_cost = (200_000 * 0.15 + 20_000 * 0.60) / 1e6
    served_base = sum((i * 2.50 + o * 10.0) / 1e6 for i, o in ((100_000, 10_000), (200_000, 20_000),
                                                               (900_000, 90_000)))
    served_cand = sum((i * 0.15 + o * 0.60) / 1e6 for i, o in ((100_000, 10_000), (200_000, 20_000),
                                                               (900_000, 90_000)))
    assert pol["savings_usd"] == pytest.approx(served_base - served_cand - rescued_cost)
    assert pol["cost_usd"] == pytest.approx(served_cand + rescued_cost + 2.50)
    # the rescue lowers the error rate honestly: the request is served, and paid for
    assert pol["error_rate_before"] == pytest.approx(0.2) and pol["error_rate_after"] == 0.0


def test_refused_requests_are_spend_prevented_not_savings(tmp_path):
    # $3/day cap on gpt-4o at $2.50 each: the 1st passes (spend 0 < 3), the 2nd too (2.50 < 3), then 8 are refused.
    cap = {"name": "cap", "budgets": [{"id": "cap", "limit_to": 3, "unit": "cost_per_day"}]}
    pol = _run(tmp_path, _ten_hours(), [cap])["policies"][0]
    assert pol["requests_refused"] == 8 and pol["requests_blocked"] == 8
    assert pol["spend_prevented_usd"] == pytest.approx(8 * 2.50)
    assert pol["savings_usd"] == 0.0 and pol["monthly_savings_usd"] == 0.0
    assert pol["cost_usd"] == pytest.approx(2 * 2.50)
    assert pol["error_rate_after"] == 0.0  # refusals are counted apart from failures
