"""LiteLLM SpendLogs rows built by litellm's own ``get_logging_payload``, exported as Postgres writes them.

``startTime`` is ``TIMESTAMP(3)`` without a zone (LiteLLM stores UTC), JSON columns are JSON text. Expected spend
is priced in the test with genai-prices directly; attribution is read off the declared calls.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: the packaged cost map
spend_tracking = pytest.importorskip("litellm.proxy.spend_tracking.spend_tracking_utils",
                                     reason="litellm proxy extras not installed")
litellm = pytest.importorskip("litellm")
from genai_prices import Usage, calc_price  # noqa: E402

from simulator.api import identity_replay  # noqa: E402
from simulator.io.traffic import load_traffic  # noqa: E402
from simulator.pricing.catalog import Catalog  # noqa: E402

NOW = pd.Timestamp("2026-11-26T00:00:00Z")
T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=timezone.utc)
# provider, model, model_group, prompt, completion, cache read, cache write, tags, team alias, status code (0 = ok)
CALLS = [
    ("openai", "gpt-4o-mini", "fast-chat", 1200, 100, 1024, 0, ["project:web", "workflow:faq"], "search", 0),
    ("openai", "gpt-4o-mini", "fast-chat", 640, 80, 0, 0, ["project:web", "workflow:faq"], "search", 0),
    ("anthropic", "claude-sonnet-4-5-20250929", "smart-chat", 5200, 420, 4096, 512, ["project:helpdesk",
                                                                                     "workflow:triage"], "support", 0),
    ("anthropic", "claude-sonnet-4-5-20250929", "smart-chat", 800, 0, 0, 0, ["project:helpdesk", "workflow:triage"],
     "support", 429),
    ("openai", "gpt-4o", "smart-chat", 2300, 310, 0, 0, ["workflow:summarise"], None, 0),
    ("anthropic", "claude-haiku-4-5", "fast-chat", 900, 60, 0, 0, ["project:growth", "team:marketing"], "growth", 0),
]


def _payload(i: int, call) -> dict:
    provider, model, group, prompt, completion, read, write, tags, alias, code = call
    start = T0 + timedelta(minutes=7 * i, milliseconds=125 * i)
    end = start + timedelta(milliseconds=800 + 150 * i)
    usage = litellm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                          prompt_tokens_details={"cached_tokens": read},
                          **({"cache_read_input_tokens": read, "cache_creation_input_tokens": write}
                             if provider == "anthropic" else {}))
    metadata = {"user_api_key": "sk-test-key", "user_api_key_team_id": f"0f9c{i:04d}-team-uuid",
                "user_api_key_team_alias": alias, "user_api_key_user_id": f"u-{i:04d}@example.com",
                "tags": tags, "model_group": group, "model_info": {"id": f"deploy-{model}"}}
    response = litellm.ModelResponse(id=f"chatcmpl-{i:04d}", model=model, usage=usage)
    spend = 0.0
    if code:
        metadata.update(status="failure", error_information={"error_code": str(code), "error_class": "RateLimitError"})
        response = None
    else:
        spend = float(calc_price(Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=read,
                                       cache_write_tokens=write), model_ref=model, provider_id=provider,
                                 genai_request_timestamp=start).total_price)
    kwargs = {"model": model, "custom_llm_provider": provider, "call_type": "acompletion", "cache_hit": False,
              "litellm_params": {"metadata": metadata, "api_base": f"https://api.{provider}.com"},
              "response_cost": spend, "litellm_call_id": f"call-{i:04d}"}
    row = dict(spend_tracking.get_logging_payload(kwargs, response, start, end))
    if code:
        row["request_id"] = f"failed-{i:04d}"
    return row


def _postgres_ts(value: datetime, sep: str) -> str:
    """TIMESTAMP(3) as Postgres prints it: UTC wall time, no zone, trailing zeros of the fraction dropped."""
    text = value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=sep, timespec="milliseconds")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _rows():
    rows = [_payload(i, c) for i, c in enumerate(CALLS)]
    cached = dict(rows[0], request_id="cached-0001", cache_hit="True", spend=0.0)  # served by the proxy cache
    return rows + [cached]


def _write_csv(path, rows):
    keys = [k for k in rows[0] if k not in ("messages", "response", "proxy_server_request")]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow(["" if r[k] is None else _postgres_ts(r[k], " ") if isinstance(r[k], datetime) else r[k]
                        for k in keys])


def _write_json(path, rows):
    path.write_text(json.dumps([{k: _postgres_ts(v, "T") if isinstance(v, datetime) else v for k, v in r.items()}
                                for r in rows]))


@pytest.mark.parametrize("form", ["csv", "json"])
def test_litellm_payload_rows_read_as_the_proxy_wrote_them(tmp_path, form):
    rows = _rows()
    path = tmp_path / f"spendlogs.{form}"
    (_write_csv if form == "csv" else _write_json)(path, rows)
    t = load_traffic([path], now=NOW)  # no --timezone: zone-less startTime is UTC for this adapter
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (7, 6, 1)
    assert t.rejects["reason"].iloc[0].startswith("gateway cache hit (LiteLLM cache_hit True)")
    f = t.frame.sort_values("timestamp").reset_index(drop=True)
    assert f["timestamp"].iloc[1] == pd.Timestamp("2026-11-02T09:07:00.125Z")
    assert f["model"].tolist() == [f"{c[0]}/{c[1]}" for c in CALLS]
    assert f["requested_model"].tolist() == [c[2] for c in CALLS]
    missing_as_none = lambda col: [None if pd.isna(v) else v for v in f[col]]  # noqa: E731 - categories read NaN
    assert missing_as_none("project") == ["web", "web", "helpdesk", "helpdesk", None, "growth"]
    assert missing_as_none("workflow_tag") == ["faq", "faq", "triage", "triage", "summarise", None]
    # team_alias wins over the team_id UUID; a team: tag over both
    assert f["team"].tolist() == ["search", "search", "support", "support", "0f9c0004-team-uuid", "marketing"]
    assert f["status_code"].tolist() == [200, 200, 200, 429, 200, 200]
    assert f["cache_read_tokens"].tolist() == [c[5] if not c[9] else 0 for c in CALLS]
    assert f["input_tokens"].sum() == sum(c[3] for c in CALLS if not c[9])
    assert f["latency_ms"].tolist() == [800.0 + 150 * i for i in range(len(CALLS))]
    assert not f["metadata"].str.contains("sk-test-key|u-000|user_api_key_user_id", regex=True).any()


def test_litellm_spend_reconciles_to_the_catalog(tmp_path):
    path = tmp_path / "spendlogs.csv"
    _write_csv(path, _rows())
    report = identity_replay(load_traffic([path], now=NOW), Catalog.load())
    truth = sum(r["spend"] for r in _rows()[:-1])
    assert report["recorded_cost_usd"] == pytest.approx(truth, abs=1e-9)
    assert report["cost_usd"] == pytest.approx(truth, rel=1e-9)
    assert all(abs(m["drift_pct"]) < 0.005 for m in report["models"] if m["drift_pct"] is not None)
