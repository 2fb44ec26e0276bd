"""OTel GenAI traces written by the real opentelemetry-sdk and its OTLP encoder, in every form tfysim reads.

The spans (an agent run with chat, tool, embeddings and a rate-limited call, plus spans with the older attribute
names) are declared below; the expected totals are summed from that declaration, never from tfysim.
"""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")

from google.protobuf import json_format  # noqa: E402
from opentelemetry import trace as otel_trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from simulator.io.traffic import load_traffic  # noqa: E402

T0 = 1_794_000_000_000_000_000  # 2026-11-06T21:20:00Z in ns
NOW = pd.Timestamp("2026-11-26T00:00:00Z")
AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "refund-agent",
         "gen_ai.conversation.id": "conv-7", "user.id": "u-0042@example.com", "gen_ai.provider.name": "anthropic",
         # the run's summed usage: counting it as a request would double-count its children
         "gen_ai.usage.input_tokens": 9_999, "gen_ai.usage.output_tokens": 999}
# (name, attributes, start offset ms, duration ms, child of the agent span)
CALLS = [
    ("chat claude-sonnet-4-5", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                "gen_ai.request.model": "claude-sonnet-4-5",
                                "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                                "gen_ai.usage.input_tokens": 3200, "gen_ai.usage.output_tokens": 410,
                                "gen_ai.usage.cache_read.input_tokens": 2048,
                                "gen_ai.usage.cache_write.input_tokens": 512}, 10, 2100, True),
    ("execute_tool lookup_order", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
     2200, 300, True),
    ("embeddings text-embedding-3-small", {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
                                           "gen_ai.request.model": "text-embedding-3-small",
                                           "gen_ai.usage.input_tokens": 96}, 2600, 80, True),
    ("chat claude-sonnet-4-5", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                "gen_ai.request.model": "claude-sonnet-4-5", "error.type": "429"}, 2700, 150, True),
    ("chat claude-sonnet-4-5", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                "gen_ai.request.model": "claude-sonnet-4-5",
                                "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                                "gen_ai.usage.input_tokens": 3900, "gen_ai.usage.output_tokens": 620,
                                "gen_ai.usage.cache_read.input_tokens": 2560}, 3000, 2600, True),
    # older attribute names, outside any agent
    ("chat gpt-4o-mini", {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
                          "gen_ai.usage.prompt_tokens": 700, "gen_ai.usage.completion_tokens": 55,
                          "gen_ai.usage.cache_creation.input_tokens": 0, "user.id": "u-0007@example.com"},
     9000, 640, False),
]
INFERENCE = [c for c in CALLS if c[1].get("gen_ai.operation.name") != "execute_tool"]


def _spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.genai")
    agent = tracer.start_span("invoke_agent refund-agent", kind=otel_trace.SpanKind.INTERNAL, start_time=T0,
                              attributes=AGENT)
    ctx = otel_trace.set_span_in_context(agent)
    for name, attrs, offset_ms, duration_ms, child in CALLS:
        start = T0 + offset_ms * 1_000_000
        span = tracer.start_span(name, context=ctx if child else None, kind=otel_trace.SpanKind.CLIENT,
                                 start_time=start, attributes=attrs)
        if "error.type" in attrs:
            span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR))
        span.end(end_time=start + duration_ms * 1_000_000)
    agent.end(end_time=T0 + 6_000_000_000)
    return exporter.get_finished_spans()


def _proto_json(request) -> dict:
    """The proto3 JSON mapping exactly as ``MessageToJson`` writes it (ids base64)."""
    return json.loads(json_format.MessageToJson(request))


def _hex_ids(doc: dict) -> dict:
    """OTLP/JSON as the spec and the Collector write it: trace and span ids as hex."""
    import base64

    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return doc


def _write(tmp_path, form: str):
    spans = _spans()
    if form == "json":
        path = tmp_path / "traces.json"
        path.write_text(json.dumps(_proto_json(encode_spans(spans)), indent=2))
    elif form == "jsonl":  # Collector file exporter: one ExportTraceServiceRequest per line (here: one per span)
        path = tmp_path / "traces.jsonl"
        path.write_text("".join(json.dumps(_hex_ids(_proto_json(encode_spans([s])))) + "\n" for s in spans))
    elif form == "json.gz":
        path = tmp_path / "traces.json.gz"
        path.write_bytes(gzip.compress(json.dumps(_hex_ids(_proto_json(encode_spans(spans)))).encode()))
    else:
        path = tmp_path / "traces.jsonl.gz"
        lines = [json.dumps(_hex_ids(_proto_json(encode_spans(spans[:3])))),
                 json.dumps(_hex_ids(_proto_json(encode_spans(spans[3:]))))]
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


@pytest.mark.parametrize("form", ["json", "jsonl", "json.gz", "jsonl.gz"])
def test_sdk_traces_token_totals_equal_the_billable_truth(tmp_path, form):
    t = load_traffic([_write(tmp_path, form)], now=NOW)
    f = t.frame
    # billable truth: the inference spans only (the agent span's summed usage and the tool span are not requests)
    assert len(f) == len(INFERENCE) == 5
    assert f["input_tokens"].sum() == sum(a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens", 0))
                                          for _, a, *_ in INFERENCE) == 3200 + 96 + 3900 + 700
    assert f["output_tokens"].sum() == 410 + 620 + 55
    assert f["cache_read_tokens"].sum() == 2048 + 2560
    assert f["cache_write_tokens"].sum() == 512
    assert (f["session_id"] == "conv-7").sum() == 4  # parent links hold in every id encoding
    assert t.rows_read == t.rows_replayed + t.rows_rejected == len(CALLS) + 1
    reasons = sorted(t.rejects["reason"])
    assert len(reasons) == 2 and all(r.startswith("not an inference span (gen_ai.operation.name ") for r in reasons)
    assert {r.split(")")[0].rsplit(" ", 1)[1] for r in reasons} == {"invoke_agent", "execute_tool"}


def test_agent_context_status_and_embeddings(tmp_path):
    f = load_traffic([_write(tmp_path, "jsonl")], now=NOW).frame.set_index("model", drop=False)
    agent_rows = f[f["session_id"].notna()]
    # the four model calls inside the agent run take its conversation (session), agent name (workflow) and user
    assert len(agent_rows) == 4
    assert set(agent_rows["session_id"]) == {"conv-7"}
    assert set(agent_rows["workflow_tag"]) == {"refund-agent"}
    assert set(agent_rows["user_id"]) == {"u-0042@example.com"}
    embed = f.loc["openai/text-embedding-3-small"]
    assert (embed["input_tokens"], embed["output_tokens"], embed["latency_ms"]) == (96, 0, 80.0)
    failed = f[f["status_code"] != 200]
    assert failed["status_code"].tolist() == [429] and failed["input_tokens"].tolist() == [0]
    old = f.loc["openai/gpt-4o-mini"]  # gen_ai.system + prompt/completion_tokens, no agent around it
    assert (old["input_tokens"], old["output_tokens"], old["user_id"]) == (700, 55, "u-0007@example.com")
    assert pd.isna(old["session_id"])
    assert set(f["request_id"].str.len()) == {16}  # hex span ids, whichever id encoding the file used
