"""Example exports: a slice of the sample week written in each log source's own export format.

Each writer takes canonical traffic rows and writes what that tool's exporter would (column names, id formats,
time formats, token conventions), so every adapter has a committed example that ``tfysim replay`` reads with 0
rejects. Nothing in the pipeline imports this module.

Regenerate: ``python -m simulator.synth.exports datasets/sample/traffic.parquet datasets/examples``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

#: gateway account -> provider id as each tool writes it
LITELLM_PROVIDER = {"anthropic-main": "anthropic", "openai-main": "openai", "google-vertex": "vertex_ai"}
OTEL_PROVIDER = {"anthropic-main": "anthropic", "openai-main": "openai", "google-vertex": "gcp.vertex_ai"}
HELICONE_PROVIDER = {"anthropic-main": "ANTHROPIC", "openai-main": "OPENAI", "google-vertex": "VERTEXAI"}
ROWS = 300


def example_slice(traffic: pd.DataFrame, rows: int = ROWS) -> pd.DataFrame:
    """``rows`` requests spread evenly over the week, failures included, in time order."""
    step = max(len(traffic) // rows, 1)
    return traffic.sort_values(["timestamp", "request_id"]).iloc[::step].head(rows).reset_index(drop=True)


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _split(model: str) -> tuple[str, str]:
    account, _, name = model.partition("/")
    return account, name


def _meta(row) -> dict:
    meta = json.loads(row.metadata) if isinstance(row.metadata, str) and row.metadata else {}
    for key in ("team", "project", "workflow_tag", "session_id"):
        value = getattr(row, key)
        if isinstance(value, str) and value:
            meta[key] = value
    return meta


def _ts(value: pd.Timestamp, sep: str = " ", digits: int = 3) -> str:
    """UTC wall time without a zone (how ClickHouse and Postgres export DateTime64 / TIMESTAMP)."""
    text = value.tz_convert("UTC").tz_localize(None).isoformat(sep=sep, timespec="microseconds")
    return text[: len(text) - (6 - digits)] if digits < 6 else text


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _failed(row) -> bool:
    return int(row.status_code) >= 400


def truefoundry_analytics(f: pd.DataFrame) -> str:
    """``gateway_model_metrics`` rows as the analytics CSV export writes them."""
    out = []
    for row in f.itertuples(index=False):
        account, name = _split(row.model)
        failed = _failed(row)
        out.append({
            "TraceId": _hex(row.request_id + "t", 32), "SpanId": _hex(row.request_id, 16),
            "CreatedAt": _ts(row.timestamp), "ConversationId": row.session_id or "",
            "ModelId": f"{account}:{name}", "ModelName": row.model, "RequestedModelName": row.requested_model,
            "VirtualModelName": "", "RequestType": "chat",
            "InputTokens": "" if failed else int(row.input_tokens),
            "OutputTokens": "" if failed else int(row.output_tokens),
            "CostInUSD": repr(float(row.cost_usd)), "LatencyMs": "" if failed else repr(float(row.latency_ms)),
            "HttpStatusCode": int(row.status_code), "IsFailure": "true" if failed else "false",
            "CacheHit": "false", "Metadata": json.dumps(_meta(row), sort_keys=True),
            "CreatedBySubjectSlug": row.user_id, "CreatedBySubjectType": "user", "Teams": json.dumps([row.team]),
        })
    return _csv(out)


def truefoundry_spans(f: pd.DataFrame) -> str:
    """Spans query API pages (``{"data": [TraceSpan]}``) queried with a ``tfy.span_type = Model`` filter: the Model
    span of each request, carrying its request attributes."""
    data = []
    for row in f.itertuples(index=False):
        trace, parent, child = _hex(row.request_id + "t", 32), _hex(row.request_id + "p", 16), _hex(row.request_id, 16)
        when = row.timestamp.tz_convert("UTC").isoformat().replace("+00:00", "Z")
        request = {"tfy.span_type": "ChatCompletion", "tfy.request.model_name": row.requested_model,
                   "tfy.request.created_by_subject": row.user_id,
                   "tfy.request.metadata": json.dumps(_meta(row), sort_keys=True)}
        model = {"tfy.span_type": "Model", "tfy.model.name": row.model,
                 "tfy.model.metric.input_tokens": int(row.input_tokens),
                 "tfy.model.metric.output_tokens": int(row.output_tokens),
                 "tfy.model.metric.cache_read_input_tokens": int(row.cache_read_tokens),
                 "tfy.model.metric.cache_creation_input_tokens": int(row.cache_write_tokens),
                 "tfy.model.metric.cost_in_usd": float(row.cost_usd),
                 "tfy.model.metric.latency_in_ms": float(row.latency_ms),
                 "http.response.status_code": int(row.status_code)}
        base = {"traceId": trace, "timestamp": when, "durationNs": int(row.latency_ms * 1e6),
                "statusCode": "STATUS_CODE_ERROR" if _failed(row) else "STATUS_CODE_OK"}
        data.append({**base, "spanId": child, "parentSpanId": parent, "spanName": "model",
                     "spanAttributes": {**request, **model}})
    return json.dumps({"data": data, "pagination": {}}, indent=1) + "\n"


def _kv(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, (int, np.integer)):
        return {"key": key, "value": {"intValue": str(int(value))}}  # int64 as a string (proto3 JSON)
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def otel_jsonl(f: pd.DataFrame, per_line: int = 25) -> str:
    """The Collector ``file`` exporter: one OTLP/JSON ``ExportTraceServiceRequest`` (hex ids) per line."""
    lines = []
    for start in range(0, len(f), per_line):
        spans = []
        for row in f.iloc[start:start + per_line].itertuples(index=False):
            account, name = _split(row.model)
            t0 = int(row.timestamp.value)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": OTEL_PROVIDER.get(account, account),
                     "gen_ai.request.model": name, "gen_ai.response.model": name, "user.id": row.user_id}
            if row.session_id:
                attrs["gen_ai.conversation.id"] = row.session_id
            for key in ("team", "project", "workflow_tag"):
                if getattr(row, key):
                    attrs[f"tfy.metadata.{key}"] = getattr(row, key)
            if _failed(row):
                attrs["error.type"] = str(int(row.status_code))
            else:
                attrs.update({"gen_ai.usage.input_tokens": int(row.input_tokens),
                              "gen_ai.usage.output_tokens": int(row.output_tokens),
                              "gen_ai.usage.cache_read.input_tokens": int(row.cache_read_tokens),
                              "gen_ai.usage.cache_write.input_tokens": int(row.cache_write_tokens)})
            spans.append({"traceId": _hex(row.request_id + "t", 32), "spanId": _hex(row.request_id, 16),
                          "name": f"chat {name}", "kind": 3, "startTimeUnixNano": str(t0),
                          "endTimeUnixNano": str(t0 + int(round(row.latency_ms * 1e6))),
                          "attributes": [_kv(k, v) for k, v in attrs.items()],
                          "status": {"code": 2} if _failed(row) else {}})
        lines.append(json.dumps({"resourceSpans": [{
            "resource": {"attributes": [_kv("service.name", "gateway-clients")]},
            "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.genai"}, "spans": spans}]}]},
            separators=(",", ":")))
    return "\n".join(lines) + "\n"


def litellm_spendlogs(f: pd.DataFrame) -> str:
    """``LiteLLM_SpendLogs`` as ``\\copy ... TO CSV HEADER`` writes it (TIMESTAMP(3) without a zone, JSON as text)."""
    out = []
    for row in f.itertuples(index=False):
        account, name = _split(row.model)
        failed = _failed(row)
        usage = {"cache_read_input_tokens": int(row.cache_read_tokens),
                 "cache_creation_input_tokens": int(row.cache_write_tokens)}
        meta = {"user_api_key_alias": f"{row.team}-svc", "user_api_key_team_alias": row.team,
                "user_api_key_team_id": _hex(row.team or "", 8) + "-team", "additional_usage_values": usage,
                "status": "failure" if failed else "success",
                "error_information": {"error_code": str(int(row.status_code))} if failed else None}
        tags = [f"project:{row.project}"] if row.project else []
        tags += [f"workflow:{row.workflow_tag}"] if row.workflow_tag else []
        end = row.timestamp + pd.Timedelta(milliseconds=float(row.latency_ms))
        out.append({
            "request_id": _hex(row.request_id, 24), "call_type": "acompletion", "api_key": _hex(row.user_id, 64),
            "spend": repr(float(row.cost_usd)), "total_tokens": int(row.input_tokens + row.output_tokens),
            "prompt_tokens": int(row.input_tokens), "completion_tokens": int(row.output_tokens),
            "startTime": _ts(row.timestamp), "endTime": _ts(end), "model": name,
            "model_id": _hex(row.model, 12), "model_group": row.requested_model,
            "custom_llm_provider": LITELLM_PROVIDER.get(account, account), "api_base": "", "user": row.user_id,
            "metadata": json.dumps(meta), "cache_hit": "False", "cache_key": "Cache OFF",
            "request_tags": json.dumps(tags), "team_id": _hex(row.team or "", 8) + "-team", "end_user": "",
            "session_id": row.session_id or "", "status": "failure" if failed else "success",
        })
    return _csv(out)


def langfuse_observations(f: pd.DataFrame) -> str:
    """Blob-storage ``observations_v2`` JSON Lines: GENERATION rows with trace context (UTC, no zone)."""
    out = []
    for row in f.itertuples(index=False):
        _, name = _split(row.model)
        cached = int(row.cache_read_tokens)
        written = int(row.cache_write_tokens)
        plain = int(row.input_tokens) - cached - written
        usage = {"input": plain, "output": int(row.output_tokens)}
        if cached:
            usage["input_cache_read"] = cached
        if written:
            usage["input_cache_creation"] = written
        usage["total"] = int(row.input_tokens + row.output_tokens)
        end = row.timestamp + pd.Timedelta(milliseconds=float(row.latency_ms))
        tags = [f"project:{row.project}"] if row.project else []
        tags += [f"team:{row.team}"] if row.team else []
        out.append({
            "id": _hex(row.request_id, 16), "trace_id": _hex(row.request_id + "t", 32), "type": "GENERATION",
            "name": "chat", "start_time": _ts(row.timestamp, digits=6), "end_time": _ts(end, digits=6),
            "provided_model_name": name, "usage_details": usage,
            "cost_details": {"total": float(row.cost_usd)}, "total_cost": float(row.cost_usd),
            "level": "ERROR" if _failed(row) else "DEFAULT",
            "status_message": f"Error code: {int(row.status_code)}" if _failed(row) else None,
            "user_id": row.user_id, "session_id": row.session_id, "tags": tags,
            "trace_name": row.workflow_tag, "environment": "production",
        })
    return "".join(json.dumps(o) + "\n" for o in out)


def helicone_jsonl(f: pd.DataFrame) -> str:
    """``npx @helicone/export --format jsonl``: Helicone request records (Anthropic prompt_tokens exclude cache)."""
    out = []
    for row in f.itertuples(index=False):
        account, name = _split(row.model)
        provider = HELICONE_PROVIDER.get(account, account.upper())
        cached, written = int(row.cache_read_tokens), int(row.cache_write_tokens)
        prompt = int(row.input_tokens) - (cached + written if provider == "ANTHROPIC" else 0)
        props = {"Project": row.project, "Workflow": row.workflow_tag, "Team": row.team,
                 "Helicone-Session-Id": row.session_id}
        when = row.timestamp.tz_convert("UTC").isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out.append({
            "request_id": _hex(row.request_id, 8) + "-" + _hex(row.request_id + "r", 4) + "-4" +
            _hex(row.request_id + "s", 3) + "-8" + _hex(row.request_id + "u", 3) + "-" + _hex(row.request_id, 12),
            "request_created_at": when, "response_status": int(row.status_code), "model": name,
            "request_model": name, "provider": provider, "prompt_tokens": prompt,
            "completion_tokens": int(row.output_tokens), "prompt_cache_read_tokens": cached,
            "prompt_cache_write_tokens": written, "total_tokens": prompt + int(row.output_tokens),
            "costUSD": float(row.cost_usd), "delay_ms": float(row.latency_ms), "request_user_id": row.user_id,
            "request_properties": {k: v for k, v in props.items() if v},
            "cache_reference_id": "00000000-0000-0000-0000-000000000000",
        })
    return "".join(json.dumps(o) + "\n" for o in out)


#: file name -> writer; the adapter that reads each is in the README's adapter table.
EXPORTS: dict[str, Callable[[pd.DataFrame], str]] = {
    "truefoundry_analytics.csv": truefoundry_analytics,
    "truefoundry_spans.json": truefoundry_spans,
    "otel_collector.jsonl": otel_jsonl,
    "litellm_spendlogs.csv": litellm_spendlogs,
    "langfuse_observations.jsonl": langfuse_observations,
    "helicone_export.jsonl": helicone_jsonl,
}


def write_examples(traffic: str | Path, folder: str | Path, rows: int = ROWS) -> list[Path]:
    """Write every example export of a slice of ``traffic`` (a canonical Parquet file) into ``folder``."""
    frame = example_slice(pd.read_parquet(traffic), rows)
    for name in ("session_id", "project", "workflow_tag", "team", "user_id"):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, writer in EXPORTS.items():
        path = folder / name
        path.write_text(writer(frame), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":  # pragma: no cover - regeneration entry point
    for p in write_examples(sys.argv[1], sys.argv[2]):
        print(p)
