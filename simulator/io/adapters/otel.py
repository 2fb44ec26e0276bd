"""OpenTelemetry GenAI spans: OTLP/JSON trace exports and the Collector file exporter's JSON Lines.

Reads the OTLP/JSON encoding (proto3 JSON mapping: lowerCamelCase or original field names, int64 as strings, enums
as numbers or names; trace and span ids as the spec's hex or, from a plain ``MessageToJson``, base64). One
``ExportTraceServiceRequest`` per file (``.json``) or per line (``.jsonl``, the Collector's ``file`` exporter), either
optionally gzip-compressed.

Only inference operations are requests: ``gen_ai.operation.name`` in chat, text_completion, generate_content,
embeddings, or a span without an operation name that carries GenAI usage or a request model. Agent and tool spans
(``invoke_agent``, ``create_agent``, ``execute_tool``, ...) are listed under the reason "not an inference span" —
an ``invoke_agent`` span may carry the summed usage of its children, so counting it would double-count — and give
their ``gen_ai.conversation.id`` (session), ``gen_ai.agent.name`` (workflow) and ``user.id`` to descendant
inference spans that lack them.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import numpy as np
import pandas as pd

from simulator.io.adapters.common import (
    NOT_INFERENCE, AdapterOptions, attr, blank, col, first, number, split_model, usage_zero_on_failure,
)

INFERENCE_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings")
#: Attributes read (current name first, older names after it).
ATTRIBUTES = {
    "operation": ("gen_ai.operation.name",),
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "request_model": ("gen_ai.request.model",),
    "response_model": ("gen_ai.response.model",),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_tokens": ("gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
                           "gen_ai.usage.cache_creation_input_tokens"),
    "session_id": ("gen_ai.conversation.id", "session.id"),
    "agent": ("gen_ai.agent.name",),
    "user_id": ("user.id", "enduser.id"),
    "status_code": ("http.response.status_code", "http.status_code"),
    "error": ("error.type",),
}
#: Attributes a descendant inference span inherits from its nearest ancestor that has them.
INHERITED = ("gen_ai.conversation.id", "session.id", "gen_ai.agent.name", "user.id", "enduser.id", "team", "project",
             "workflow_tag")
_HEX = re.compile(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}")


def hex_id(value: Any) -> Any:
    """A trace or span id as lowercase hex: OTLP/JSON writes hex, a plain proto3 ``MessageToJson`` base64."""
    if not isinstance(value, str) or not value:
        return value or None
    if _HEX.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return raw.hex() if len(raw) in (8, 16) else value


def _any_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    for key in ("stringValue", "string_value", "boolValue", "bool_value", "doubleValue", "double_value"):
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            try:
                return int(value[key])  # int64 is a JSON string in the proto3 mapping
            except (TypeError, ValueError):
                return value[key]
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [_any_value(v) for v in (value[key] or {}).get("values", [])]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return _attributes((value[key] or {}).get("values", []))
    return None


def _attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {a["key"]: _any_value(a.get("value")) for a in items if isinstance(a, dict) and isinstance(a.get("key"), str)}


def _get(obj: dict, camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def otlp_records(doc: dict[str, Any]) -> list[Any]:
    """Flatten one ``ExportTraceServiceRequest`` into one record per span (resource attributes merged under span
    attributes); a span that is not a JSON object is passed through for the reader to reject."""
    records: list[Any] = []
    for resource_spans in _get(doc, "resourceSpans", "resource_spans") or []:
        if not isinstance(resource_spans, dict):
            continue
        resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope in _get(resource_spans, "scopeSpans", "scope_spans") or []:
            for span in (scope.get("spans") if isinstance(scope, dict) else None) or []:
                if not isinstance(span, dict):
                    records.append(span)
                    continue
                status = span.get("status") if isinstance(span.get("status"), dict) else {}
                records.append({
                    "_otlp": True,
                    "spanId": hex_id(_get(span, "spanId", "span_id")),
                    "traceId": hex_id(_get(span, "traceId", "trace_id")),
                    "parentSpanId": hex_id(_get(span, "parentSpanId", "parent_span_id")),
                    "name": span.get("name"),
                    "startTimeUnixNano": _get(span, "startTimeUnixNano", "start_time_unix_nano"),
                    "endTimeUnixNano": _get(span, "endTimeUnixNano", "end_time_unix_nano"),
                    "status": status.get("code"),
                    "attributes": {**resource, **_attributes(span.get("attributes"))},
                })
    return records


def is_otlp_lines(frame: pd.DataFrame) -> bool:
    """A JSON-lines frame whose records are ``ExportTraceServiceRequest`` objects (Collector file exporter)."""
    return "resourceSpans" in frame.columns or "resource_spans" in frame.columns


def expand_otlp_lines(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """One row per span from one ``ExportTraceServiceRequest`` per row; ``_row`` stays the line number.

    Returns the span frame and the rejects of spans that are not JSON objects.
    """
    key = "resourceSpans" if "resourceSpans" in frame.columns else "resource_spans"
    spans, rows, rejects = [], [], []
    for line, value in zip(frame["_row"].tolist(), frame[key].tolist()):
        for rec in otlp_records({"resourceSpans": value if isinstance(value, list) else []}):
            if isinstance(rec, dict):
                spans.append(rec)
                rows.append(line)
            else:
                rejects.append({"row": line, "reason": f"expected a JSON object, got {type(rec).__name__}"})
    out = pd.DataFrame.from_records(spans) if spans else pd.DataFrame({"_otlp": []})
    out["_row"] = np.asarray(rows, dtype=np.int64)
    for name in ("_source",):
        if name in frame.columns and len(frame):
            out[name] = frame[name].iloc[0]
    return out, rejects


def _inherit(frame: pd.DataFrame, attrs: pd.Series) -> pd.Series:
    """Attributes with the context keys (``INHERITED``) filled from the nearest ancestor span that has them."""
    keys = list(zip(col(frame, "traceId"), col(frame, "spanId")))
    by_key = dict(zip(keys, attrs))
    parent = {k: (k[0], p) for k, p in zip(keys, col(frame, "parentSpanId")) if isinstance(p, str) and p}
    out = []
    for k, own in zip(keys, attrs):
        merged, seen, cur = dict(own), {k}, parent.get(k)
        while cur is not None and cur not in seen and cur in by_key:
            seen.add(cur)
            for name in INHERITED:
                if merged.get(name) in (None, "") and by_key[cur].get(name) not in (None, ""):
                    merged[name] = by_key[cur][name]
            cur = parent.get(cur)
        out.append(merged)
    return pd.Series(out, index=frame.index, dtype=object)


def _status(code: pd.Series, error: pd.Series, span_status: pd.Series) -> pd.Series:
    """HTTP status: ``http.response.status_code``, else ``error.type`` (a numeric code as given, rate-limit names
    429, timeouts 504, anything else 500), else the span status (ERROR -> 500), else 200."""
    def from_error(e: Any) -> int | None:
        if e is None or (isinstance(e, float) and np.isnan(e)) or e == "":
            return None
        text = str(e).strip()
        if text.isdigit() and 100 <= int(text) <= 599:
            return int(text)
        low = text.lower().replace("_", "").replace(" ", "")
        if "ratelimit" in low or "toomanyrequests" in low:
            return 429
        if "timeout" in low:
            return 504
        return 500
    errored = span_status.isin([2, "2", "STATUS_CODE_ERROR", "ERROR"])
    by_error = error.map(from_error)
    fallback = pd.Series(np.where(errored, 500, 200), index=code.index)
    return first(code, by_error, fallback)


def otel(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    attrs = _inherit(frame, col(frame, "attributes").map(lambda a: a if isinstance(a, dict) else {}))
    get = lambda name: attrs.map(lambda a: attr(a, *ATTRIBUTES[name]))  # noqa: E731
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = first(col(frame, "spanId"), col(frame, "traceId"))
    start, end = number(col(frame, "startTimeUnixNano")), number(col(frame, "endTimeUnixNano"))
    # Beyond int64 nanoseconds (found by fuzzing) becomes NaT, which validation rejects as a missing timestamp.
    out["timestamp"] = pd.to_datetime(start.where(start.abs() < 9.2e18), unit="ns", utc=True)
    served = first(get("response_model"), get("request_model"))
    out["model"] = split_model(get("provider"), served)
    out["requested_model"] = get("request_model")
    operation = get("operation")
    inp, read, write = number(get("input_tokens")), number(get("cache_read_tokens")), number(get("cache_write_tokens"))
    # The conventions count cached tokens inside input_tokens; Anthropic's native count excludes them, and some
    # instrumentations pass it through: input below its own cache parts can only be that, so add them back.
    parts = read.fillna(0) + write.fillna(0)
    out["input_tokens"] = inp.where(~(inp < parts), inp + parts)
    output = number(get("output_tokens"))
    out["output_tokens"] = output.where(~(output.isna() & (operation == "embeddings")), 0)  # embeddings: no output
    out["cache_read_tokens"] = read
    out["cache_write_tokens"] = write
    out["latency_ms"] = (end - start) / 1e6
    out["status_code"] = _status(get("status_code"), get("error"), col(frame, "status"))
    usage_zero_on_failure(out, number(out["status_code"]) >= 400)
    out["session_id"] = get("session_id")
    out["user_id"] = get("user_id")
    for key in ("team", "project", "workflow_tag"):
        out[key] = attrs.map(lambda a, key=key: attr(a, f"tfy.metadata.{key}", key))
    out["workflow_tag"] = first(out["workflow_tag"], get("agent"))
    has_usage = ~blank(get("input_tokens")) | ~blank(get("output_tokens")) | ~blank(get("request_model"))
    inference = operation.isin(INFERENCE_OPERATIONS) | (blank(operation) & has_usage)
    reason = np.array([f"{NOT_INFERENCE} (gen_ai.operation.name {op}); its model calls are counted on their own spans"
                       if isinstance(op, str) and op else
                       f"{NOT_INFERENCE} (no gen_ai.operation.name, usage or request model)" for op in operation],
                      dtype=object)
    out["_reject"] = np.where(inference.to_numpy(dtype=bool), None, reason)
    out["_row"] = frame["_row"]
    return out
