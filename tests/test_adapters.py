"""Each adapter on a small hand-written export; expected values are read off the fixture by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.errors import InputError
from simulator.io.traffic import load_traffic

FIXTURES = Path(__file__).parent / "fixtures" / "adapters"
TF_CSV = FIXTURES / "truefoundry_model_metrics.csv"
TF_SPANS = FIXTURES / "truefoundry_spans.json"
OTLP = FIXTURES / "otlp_genai_traces.json"
LITELLM_CSV = FIXTURES / "litellm_spendlogs.csv"
LITELLM_JSON = FIXTURES / "litellm_spendlogs.json"
NOW = pd.Timestamp("2026-11-26T00:00:00Z")  # fixtures are from 2026-11-02; keep the "future" check stable
NAN = math.nan

COLS = ["request_id", "timestamp", "model", "requested_model", "input_tokens", "output_tokens", "cache_read_tokens",
        "cache_write_tokens", "cost_usd", "latency_ms", "status_code", "user_id", "team", "project", "workflow_tag",
        "session_id", "metadata"]


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def check(traffic, rows: list[tuple]) -> None:
    """Compare the canonical frame with expected rows (tuples in COLS order), in the table's sorted order."""
    columns = dict(zip(COLS, zip(*rows)))
    want = pd.DataFrame({name: pd.Series(list(values), dtype=object) for name, values in columns.items()})
    want["timestamp"] = pd.to_datetime(list(columns["timestamp"])).astype("datetime64[ns, UTC]")
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "status_code"):
        want[name] = want[name].astype(np.int64)
    for name in ("cost_usd", "latency_ms"):
        want[name] = want[name].astype(np.float64)
    got = traffic.frame[COLS].copy()
    for name in got.columns:  # categories and Arrow text compared as plain values, missing as None
        if isinstance(got[name].dtype, (pd.CategoricalDtype, pd.StringDtype)):
            got[name] = pd.Series([None if pd.isna(v) else v for v in got[name]], dtype=object)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    assert traffic.rows_read == traffic.rows_replayed + traffic.rows_rejected


def rejects(traffic) -> list[tuple[int, str, str]]:
    return [(int(r.row), r.request_id, r.reason) for r in traffic.rejects.itertuples()]


# -- TrueFoundry gateway_model_metrics (analytics table) -------------------------------------------------------
VIRTUAL = "virtual-model summary row; its target attempts are counted instead"


def test_truefoundry_analytics_csv():
    t = load_traffic([TF_CSV], timezone="UTC", now=NOW)
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (9, 7, 2)
    check(t, [
        ("00f067aa0ba902b7", ts("2026-11-02 09:00:01.250"), "openai-main/gpt-4o", "openai-main/gpt-4o",
         1200, 150, 0, 0, 0.0045, 812.5, 200, "alice@example.com", "search", "platform-search", "classify-intent",
         "sess-a1", '{"env": "prod"}'),
        # target attempt 1 of the virtual model: rate limited, LatencyMs NULL
        ("a1b2c3d4e5f60002", ts("2026-11-02 09:05:00.020"), "openai-main/gpt-4o", "support-routing/triage-chat",
         0, 0, 0, 0, 0.0, NAN, 429, "bob@example.com", "support", "helpdesk", "ticket-triage", None, "{}"),
        ("a1b2c3d4e5f60003", ts("2026-11-02 09:05:00.240"), "anthropic-main/claude-sonnet-4-5",
         "support-routing/triage-chat", 2400, 300, 0, 0, 0.0117, 2710.0, 200, "bob@example.com", "support",
         "helpdesk", "ticket-triage", None, "{}"),
        # a gateway rejection logged with HttpStatusCode NULL and IsFailure true: a failure, not a 200
        ("b2c3d4e5f6a70001", ts("2026-11-02 09:10:30"), "openai-main/gpt-4o-mini", "openai-main/gpt-4o-mini",
         0, 0, 0, 0, 0.0, NAN, 500, "carol@example.com", "growth", "campaigns", None, None, "{}"),
        ("c3d4e5f6a7b80002", ts("2026-11-02 09:20:00.015"), "openai-main/gpt-4o-mini", "support-routing/triage-chat",
         900, 60, 0, 0, 0.000171, 625.0, 200, "bob@example.com", "support", "helpdesk", "ticket-triage", "sess-b7",
         "{}"),
        # no team in Metadata: first of Teams; ConversationId is the session
        ("d4e5f6a7b8c90001", ts("2026-11-02 09:31:15.500"), "openai-main/gpt-4o", "openai-main/gpt-4o",
         3100, 420, 0, 0, 0.01195, 4100.75, 200, "ci-bot", "ml-platform", "ml-eval", "judge", "conv-42", "{}"),
        # Metadata team wins over the subject's Teams membership
        ("e5f6a7b8c9d00001", ts("2026-11-02 09:45:00"), "openai-main/text-embedding-3-small",
         "openai-main/text-embedding-3-small", 512, 0, 0, 0, 0.00001024, 95.0, 200, "dave@example.com", "checkout",
         "catalog-search", None, None, "{}"),
    ])
    assert rejects(t) == [(3, "a1b2c3d4e5f60001", VIRTUAL), (7, "c3d4e5f6a7b80001", VIRTUAL)]
    assert t.rejects["source"].tolist() == [str(TF_CSV)] * 2


def test_truefoundry_analytics_needs_a_zone_for_clickhouse_timestamps():
    with pytest.raises(InputError, match=r"no valid rows \(9 rejected; e\.g\. timestamp has no time zone"):
        load_traffic([TF_CSV], now=NOW)


def test_truefoundry_virtual_row_without_its_targets_is_kept(tmp_path):
    lines = TF_CSV.read_text().splitlines()
    path = tmp_path / "window_cut.csv"
    path.write_text("\n".join([lines[0], lines[6]]) + "\n")  # the summary row of trace 7e3a...; targets cut off
    t = load_traffic([path], timezone="UTC", now=NOW, adapter="truefoundry")
    assert t.frame["request_id"].tolist() == ["c3d4e5f6a7b80001"]
    assert t.frame["requested_model"].tolist() == ["support-routing/triage-chat"]
    assert t.rows_rejected == 0


def test_truefoundry_teams_as_clickhouse_array_and_failure_flags(tmp_path):
    path = tmp_path / "tf.csv"
    path.write_text(
        "SpanId,TraceId,CreatedAt,ModelName,InputTokens,OutputTokens,HttpStatusCode,IsFailure,Teams,Metadata\n"
        "s1,t1,2026-11-02T09:00:00Z,openai-main/gpt-4o,10,1,200,1,\"['infra','search']\",\n"
        "s2,t2,2026-11-02T09:00:01Z,openai-main/gpt-4o,10,1,503,true,[],\n"
        "s3,t3,2026-11-02T09:00:02Z,openai-main/gpt-4o,10,1,200,0,\"[\"\"ml\"\"]\",\"{\"\"team\"\":\"\"\"\"}\"\n"
        "s4,t4,2026-11-02T09:00:03Z,openai-main/gpt-4o,,,,true,,\n"
    )
    t = load_traffic([path], now=NOW)
    assert t.frame["status_code"].tolist() == [500, 503, 200, 500]
    assert [None if pd.isna(v) else v for v in t.frame["team"]] == ["infra", None, "ml", None]
    # a failed attempt without usage counts zero tokens instead of being rejected
    assert t.frame["input_tokens"].tolist() == [10, 10, 10, 0]


# -- TrueFoundry spans query API ------------------------------------------------------------------------------
NOT_MODEL = "not an inference span (tfy.span_type is not Model); usage and cost are counted on Model spans"


def test_truefoundry_spans_api_json():
    t = load_traffic([TF_SPANS], now=NOW)
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (6, 3, 3)
    check(t, [
        # request attributes live on the parent ChatCompletion span; metadata session_id wins over conversation_id
        ("m100000000000001", ts("2026-11-02T10:00:00.012"), "openai-main/gpt-4o", "openai-main/gpt-4o",
         1800, 220, 1024, 0, 0.00677, 950.0, 200, "alice@example.com", "search", "platform-search", "rerank", "s-9",
         '{"tier": "gold"}'),
        # Anthropic-style counts (input 300 < cache 2000 + 500) are made inclusive: 300 + 2000 + 500
        ("m200000000000002", ts("2026-11-02T10:01:00.030"), "anthropic-main/claude-sonnet-4-5",
         "support-routing/triage-chat", 2800, 400, 2000, 500, 0.0126375, 3010.5, 200, "bob@example.com", "support",
         "helpdesk", "ticket-triage", None, "{}"),
        # no latency metric: durationNs 30e9 ns
        ("m300000000000003", ts("2026-11-02T10:02:00.005"), "openai-main/gpt-4o-mini", "openai-main/gpt-4o-mini",
         0, 0, 0, 0, 0.0, 30000.0, 503, "carol@example.com", None, None, None, None, None),
    ])
    assert rejects(t) == [(1, "c100000000000001", NOT_MODEL), (3, "c200000000000002", NOT_MODEL),
                          (5, "c300000000000003", NOT_MODEL)]


def test_truefoundry_spans_explicit_adapter_and_span_error_status(tmp_path):
    path = tmp_path / "spans.json"
    path.write_text(
        '{"data": [{"spanId": "a", "traceId": "t", "timestamp": "2026-11-02T10:00:00Z", "durationNs": 5000000,'
        ' "statusCode": "STATUS_CODE_ERROR", "spanAttributes": {"tfy.span_type": "Model",'
        ' "tfy.model.name": "openai-main/gpt-4o"}}], "pagination": {}}'
    )
    t = load_traffic([path], adapter="truefoundry-spans", now=NOW)
    row = t.frame.iloc[0]
    assert (row.status_code, row.input_tokens, row.output_tokens, row.latency_ms) == (500, 0, 0, 5.0)


# -- OpenTelemetry GenAI spans (OTLP JSON) ----------------------------------------------------------------------
def test_otlp_genai_spans():
    t = load_traffic([OTLP], now=NOW)
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (5, 4, 1)
    check(t, [
        # startTimeUnixNano 1793613600000000000 = 2026-11-02T10:00:00Z; end 1.25 s later; tokens given as strings
        ("eee19b7ec3c1b174", ts("2026-11-02T10:00:00"), "openai/gpt-4o-2024-08-06", "gpt-4o",
         1500, 200, 1024, 0, NAN, 1250.0, 200, None, "checkout", "cart-assistant", None, "conv-1", None),
        # input_tokens 3000 already includes cache read 2000 + creation 600: kept as is
        ("fff2ac8fd4d2c285", ts("2026-11-02T10:00:05.5"), "anthropic/claude-sonnet-4-5-20250929",
         "claude-sonnet-4-5", 3000, 500, 2000, 600, NAN, 3500.0, 200, None, None, None, "refund-check", None, None),
        # gen_ai.system (old name) for the provider; http.response.status_code 429; no usage on failure
        ("aaa3bd90e5e3d396", ts("2026-11-02T10:01:00"), "openai/gpt-4o-mini", "gpt-4o-mini",
         0, 0, 0, 0, NAN, 400.0, 429, None, None, None, None, None, None),
        # status code written as the enum name, no error.type: still a failure
        ("bbb4ce01f6f4e4a7", ts("2026-11-02T10:02:00"), "openai/gpt-4o-mini", "gpt-4o-mini",
         0, 0, 0, 0, NAN, 30000.0, 500, None, None, None, None, None, None),
    ])
    assert rejects(t) == [
        (2, "eee19b7ec3c1b173", "not an inference span (no gen_ai.operation.name, usage or request model)")]


# -- LiteLLM SpendLogs ------------------------------------------------------------------------------------------
LITELLM_ROWS = [
    # OpenAI reports cache reads as prompt_tokens_details.cached_tokens; tags from spend_logs_metadata
    ("chatcmpl-9f1c2d3e4a5b", ts("2026-11-02 11:00:00"), "openai/gpt-4o-2024-08-06", "gpt-4o",
     1200, 125, 1024, 0, 0.0041, 1234.0, 200, "alice@example.com", "search", "platform-search",
     "classify-intent", None,
     '{"user_api_key_alias": "search-svc", "user_api_key_team_alias": "search", '
     '"user_api_key_team_id": "team-search"}'),
    ("chatcmpl-a0b1c2d3e4f5", ts("2026-11-02 11:05:00.500"), "anthropic/claude-sonnet-4-5-20250929", "claude-sonnet",
     2600, 300, 1800, 600, 0.01029, 2500.0, 200, "bob@example.com", "team-support", "helpdesk", "ticket-triage",
     "sess-77", '{"user_api_key_alias": "support-svc", "user_api_key_team_id": "team-support"}'),
    # status failure; metadata.error_information.error_code 429 gives the status
    ("chatcmpl-c2d3e4f5a6b7", ts("2026-11-02 11:15:00"), "openai/gpt-4o-mini", "gpt-4o-mini",
     0, 0, 0, 0, 0.0, 30000.0, 429, "carol@example.com", "growth", None, None, None,
     '{"user_api_key_team_alias": "growth"}'),
    # no user: end_user; no team_id: team from spend_logs_metadata
    ("chatcmpl-d3e4f5a6b7c8", ts("2026-11-02 11:20:00"), "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
     "claude-haiku", 800, 40, 0, 0, 0.00025, 750.0, 200, "customer-981", "data-science", "churn-model", None, None,
     None),
]
CACHE_HIT = ("gateway cache hit (LiteLLM cache_hit True): answered by the gateway cache without a model call; "
             "set gateway_cache_hits: replay to price it as a cache miss")


def test_litellm_spendlogs_csv():
    t = load_traffic([LITELLM_CSV], timezone="UTC", now=NOW)  # Postgres timestamp(3) export: UTC without a zone
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (5, 4, 1)
    check(t, LITELLM_ROWS)
    assert rejects(t) == [(4, "chatcmpl-b1c2d3e4f5a6", CACHE_HIT)]  # CSV line 4: header is line 1


def test_litellm_spendlogs_json():
    t = load_traffic([LITELLM_JSON], now=NOW)
    assert (t.rows_read, t.rows_replayed, t.rows_rejected) == (5, 4, 1)
    check(t, LITELLM_ROWS)
    assert rejects(t) == [(3, "chatcmpl-b1c2d3e4f5a6", CACHE_HIT)]  # third record of the array


def test_litellm_cache_hit_false_string_is_not_a_hit(tmp_path):
    path = tmp_path / "spend.csv"
    path.write_text("request_id,startTime,endTime,model,custom_llm_provider,spend,prompt_tokens,completion_tokens,"
                    "cache_hit,status\n"
                    "r1,2026-11-02T11:00:00Z,2026-11-02T11:00:01Z,gpt-4o,openai,0.001,10,1,False,success\n"
                    "r2,2026-11-02T11:00:00Z,2026-11-02T11:00:01Z,gpt-4o,openai,0,10,1,True,success\n"
                    "r3,2026-11-02T11:00:00Z,2026-11-02T11:00:01Z,gpt-4o,openai,0.001,10,1,,error\n")
    t = load_traffic([path], now=NOW)
    assert t.frame["request_id"].tolist() == ["r1", "r3"]
    assert t.frame["status_code"].tolist() == [200, 500]
    assert rejects(t) == [(3, "r2", CACHE_HIT)]


def test_all_fixtures_together_keep_every_row():
    t = load_traffic([TF_CSV, TF_SPANS, OTLP, LITELLM_CSV], timezone="UTC", now=NOW)
    assert t.rows_read == 9 + 6 + 5 + 5
    assert (t.rows_replayed, t.rows_rejected) == (7 + 3 + 4 + 4, 2 + 3 + 1 + 1)
    assert t.frame["timestamp"].is_monotonic_increasing
