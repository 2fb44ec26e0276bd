"""Adapters: map a raw export's columns to the canonical traffic table's names (values are validated later).

| adapter | recognised by | what it maps | what it cannot know |
|---|---|---|---|
| ``canonical`` | request_id, timestamp, model columns | names as they are; a ``--map canonical=source`` mapping renames first | |
| ``truefoundry`` | ``ModelName`` (``gateway_model_metrics`` / analytics table) | SpanId/TraceId, CreatedAt, ModelName, RequestedModelName / VirtualModelName, InputTokens, OutputTokens, CostInUSD, LatencyMs, HttpStatusCode (500 when IsFailure is true but the code is NULL or < 400), Metadata (team, project, workflow_tag, session_id, user_id keys promoted; they win over CreatedBySubjectSlug, the first of Teams, ConversationId) | whether InputTokens includes cached tokens (assumed inclusive; the identity replay flags a mismatch with CostInUSD); cache token split; gateway cache hits (CacheHit) are kept as ordinary rows |
| ``truefoundry-spans`` | ``spanAttributes`` (spans query API) | Model spans: ``tfy.model.*``, ``tfy.model.metric.*`` or ``gen_ai.usage.*``, ``tfy.request.*`` (own, else inherited from ancestor spans in the same file), ``http.response.status_code`` (500 for ``STATUS_CODE_ERROR`` without one) | non-Model spans carry no billable usage and are rejected with that reason; ancestors in another file |
| ``otel`` | OTLP JSON (``resourceSpans``) | ``gen_ai.provider.name``/``gen_ai.system`` + ``gen_ai.response.model`` (else request model) as ``provider/model``, ``gen_ai.usage.*`` (inclusive input), start/end time, ``gen_ai.conversation.id``, ``error.type`` or span status ERROR (2 or the enum name) as 500 | cost; attribution unless exported as attributes ``tfy.metadata.*`` or plain ``team``/``project``/``workflow_tag`` |
| ``litellm`` | ``spend`` and ``startTime`` (``LiteLLM_SpendLogs``) | request_id, startTime, endTime-startTime, ``custom_llm_provider/model``, model_group, spend, prompt_tokens (inclusive), completion_tokens, user, team_id, metadata (cache counts from ``additional_usage_values``, OpenAI's ``prompt_tokens_details.cached_tokens``; caller tags from ``spend_logs_metadata``), status (failure: ``error_information.error_code``, else 500); ``cache_hit`` "True" rows are rejected (no model call) | the provider account name (the provider stands in for it); whether prompt_tokens included Anthropic cache writes in old LiteLLM versions |

Virtual-model summary rows in TrueFoundry analytics (VirtualModelName set, with per-target rows of the same trace
present) are rejected with that reason so attempts are never counted twice. Failed attempts that carry no usage
count zero tokens rather than being rejected.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import InputError
from simulator.io.readers import shown_columns

ATTRIBUTION_KEYS = ("user_id", "team", "project", "workflow_tag", "session_id")
REQUIRED = ("request_id", "timestamp", "model", "input_tokens", "output_tokens")


def _json_obj(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        return dict(value)  # Arrow map columns arrive as lists of (key, value)
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            obj = json.loads(value)
        except json.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _first(*series: pd.Series) -> pd.Series:
    out = series[0].copy()
    for s in series[1:]:
        missing = out.isna() | (out.astype(object) == "")
        out = out.where(~missing, s)
    return out


def _blank(values: pd.Series) -> pd.Series:
    obj = values.astype(object)
    return obj.isna() | obj.map(lambda v: isinstance(v, str) and not v.strip())


def _truthy(values: pd.Series) -> pd.Series:
    """Booleans as exported: true/false, 1/0, and LiteLLM's strings "True"/"False" (a non-empty string is truthy)."""
    def one(v: Any) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return v == 1
        return isinstance(v, str) and v.strip().lower() in ("true", "1", "t", "yes")
    return values.astype(object).map(one).astype(bool)


def _first_item(value: Any) -> Any:
    """First element of a list exported as a list, JSON text, or ClickHouse Array text (``['a','b']``)."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return text or None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, RecursionError, MemoryError):
                return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return str(value[0]) if len(value) else None
    return value


def _meta_key(meta: pd.Series, key: str) -> pd.Series:
    return meta.map(lambda m: m.get(key) if isinstance(m, dict) and m.get(key) not in (None, "") else None)


def _usage_zero_on_failure(out: pd.DataFrame, failed: pd.Series) -> None:
    """Failed attempts often carry no usage at all; they consumed nothing billable, so count 0 tokens."""
    for name in ("input_tokens", "output_tokens"):
        out[name] = out[name].astype(object).where(~(failed.to_numpy(dtype=bool) & _blank(out[name])), 0)


def _promote_metadata(out: pd.DataFrame, meta: pd.Series) -> None:
    """Keep the raw metadata; validation parses it and promotes attribution keys (see simulator.io.traffic)."""
    out["metadata"] = meta


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.copy()


def truefoundry(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = _first(_col(frame, "SpanId"), _col(frame, "TraceId"))
    out["timestamp"] = _col(frame, "CreatedAt")
    out["model"] = _col(frame, "ModelName")
    out["requested_model"] = _first(_col(frame, "VirtualModelName"), _col(frame, "RequestedModelName"))
    out["input_tokens"] = _col(frame, "InputTokens")
    out["output_tokens"] = _col(frame, "OutputTokens")
    out["cost_usd"] = _col(frame, "CostInUSD")
    out["latency_ms"] = _col(frame, "LatencyMs")
    out["status_code"] = _col(frame, "HttpStatusCode")
    # X-TFY-METADATA keys are explicit attribution and win over the caller's subject, team membership and
    # conversation id (Teams lists every team of the subject; the first one is only a fallback).
    meta = _col(frame, "Metadata").map(_json_obj)
    out["user_id"] = _first(_meta_key(meta, "user_id"), _col(frame, "CreatedBySubjectSlug"))
    out["session_id"] = _first(_meta_key(meta, "session_id"), _col(frame, "ConversationId"))
    out["team"] = _first(_meta_key(meta, "team"), _col(frame, "Teams").map(_first_item))
    _promote_metadata(out, _col(frame, "Metadata"))
    # Gateway rejections (budget, rate limit) may be logged with HTTP 200 or NULL: IsFailure is the truth.
    failed = _truthy(_col(frame, "IsFailure"))
    code = pd.to_numeric(_col(frame, "HttpStatusCode").astype(object).where(~_blank(_col(frame, "HttpStatusCode"))),
                         errors="coerce")
    out["status_code"] = out["status_code"].astype(object).where(~(failed & ~(code >= 400)), 500)
    _usage_zero_on_failure(out, failed)
    out["_row"] = frame["_row"]
    # Virtual-model summary rows duplicate their per-target attempt rows.
    if "VirtualModelName" in frame.columns and "TraceId" in frame.columns:
        virtual = frame["VirtualModelName"].notna() & (frame["VirtualModelName"].astype(object) != "")
        target_traces = set(frame.loc[~virtual, "TraceId"])
        dup = virtual & frame["TraceId"].isin(target_traces)
        out["_reject"] = np.where(dup, "virtual-model summary row; its target attempts are counted instead", None)
    return out


def _attr(attrs: Any, *keys: str) -> Any:
    if not isinstance(attrs, dict):
        return None
    for key in keys:
        if attrs.get(key) not in (None, ""):
            return attrs[key]
    return None


def _inherit_request_attributes(frame: pd.DataFrame, attrs: pd.Series) -> pd.Series:
    """Fill missing ``tfy.request.*`` attributes of a span from its ancestors in the same export.

    Request attributes (metadata, caller, requested model) may sit only on the ChatCompletion span while usage and
    cost sit on its Model child; without this the Model span would lose its attribution.
    """
    ids = _col(frame, "spanId").tolist()
    by_id = dict(zip(ids, attrs))
    parent_of = dict(zip(ids, _col(frame, "parentSpanId")))
    merged_all = []
    for span_id, own in zip(ids, attrs):
        merged, seen, cur = dict(own), set(), parent_of.get(span_id)
        while isinstance(cur, str) and cur and cur not in seen and cur in by_id:
            seen.add(cur)
            for key, value in by_id[cur].items():
                if key.startswith("tfy.request.") and merged.get(key) in (None, ""):
                    merged[key] = value
            cur = parent_of.get(cur)
        merged_all.append(merged)
    return pd.Series(merged_all, index=frame.index, dtype=object)


def truefoundry_spans(frame: pd.DataFrame) -> pd.DataFrame:
    attrs = frame["spanAttributes"].map(lambda a: a if isinstance(a, dict) else (_json_obj(a) or {}))
    attrs = _inherit_request_attributes(frame, attrs)
    get = lambda *keys: attrs.map(lambda a: _attr(a, *keys))  # noqa: E731
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = _first(_col(frame, "spanId"), _col(frame, "traceId"))
    out["timestamp"] = _col(frame, "timestamp")
    out["model"] = get("tfy.model.name", "tfy.model.fqn", "gen_ai.response.model")
    out["requested_model"] = get("tfy.request.model_name", "gen_ai.request.model")
    inp = pd.to_numeric(get("tfy.model.metric.input_tokens", "gen_ai.usage.input_tokens"), errors="coerce")
    read = pd.to_numeric(get("tfy.model.metric.cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
                         errors="coerce").fillna(0)
    write = pd.to_numeric(get("tfy.model.metric.cache_creation_input_tokens",
                              "gen_ai.usage.cache_creation.input_tokens"), errors="coerce").fillna(0)
    # Unpublished convention: when input < cache counts, input must exclude them (Anthropic style); add them back.
    exclusive = inp.notna() & (inp < read + write)
    out["input_tokens"] = inp.where(~exclusive, inp + read + write)
    out["cache_read_tokens"] = read
    out["cache_write_tokens"] = write
    out["output_tokens"] = get("tfy.model.metric.output_tokens", "gen_ai.usage.output_tokens")
    out["cost_usd"] = get("tfy.model.metric.cost_in_usd")
    latency = pd.to_numeric(get("tfy.model.metric.latency_in_ms"), errors="coerce")
    duration = pd.to_numeric(_col(frame, "durationNs"), errors="coerce") / 1e6
    out["latency_ms"] = latency.where(latency.notna(), duration)
    code = get("http.response.status_code")
    span_error = _col(frame, "statusCode").isin(["STATUS_CODE_ERROR", "ERROR", 2])
    out["status_code"] = code.where(~(_blank(code) & span_error), 500)
    failed = span_error | (pd.to_numeric(code, errors="coerce") >= 400)
    _usage_zero_on_failure(out, failed)
    meta = get("tfy.request.metadata").map(_json_obj)  # metadata keys win, as in the analytics table
    out["user_id"] = _first(_meta_key(meta, "user_id"), get("tfy.request.created_by_subject"))
    out["session_id"] = _first(_meta_key(meta, "session_id"),
                               get("tfy.request.conversation_id", "gen_ai.conversation.id"))
    _promote_metadata(out, get("tfy.request.metadata"))
    span_type = get("tfy.span_type")
    is_model = span_type.isna() | (span_type == "Model")
    out["_reject"] = np.where(is_model, None, "not a Model span; usage and cost are counted on Model spans")
    out["_row"] = frame["_row"]
    return out


def _otlp_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return value[key]
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def otlp_records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten an OTLP JSON trace export into one record per span with an ``attributes`` dict."""
    records = []
    for resource_spans in doc.get("resourceSpans") or []:
        resource = {a["key"]: _otlp_value(a.get("value", {})) for a in
                    (resource_spans.get("resource") or {}).get("attributes", []) if isinstance(a, dict) and "key" in a}
        for scope in resource_spans.get("scopeSpans") or []:
            for span in scope.get("spans") or []:
                if not isinstance(span, dict):
                    records.append(span)
                    continue
                attrs = dict(resource)
                attrs.update({a["key"]: _otlp_value(a.get("value", {})) for a in span.get("attributes", [])
                              if isinstance(a, dict) and "key" in a})
                records.append({
                    "_otlp": True, "spanId": span.get("spanId"), "traceId": span.get("traceId"),
                    "startTimeUnixNano": span.get("startTimeUnixNano"), "endTimeUnixNano": span.get("endTimeUnixNano"),
                    "status": span.get("status") or {}, "attributes": attrs,
                })
    return records


def otel(frame: pd.DataFrame) -> pd.DataFrame:
    attrs = frame["attributes"].map(lambda a: a if isinstance(a, dict) else {})
    get = lambda *keys: attrs.map(lambda a: _attr(a, *keys))  # noqa: E731
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = _first(_col(frame, "spanId"), _col(frame, "traceId"))
    start = pd.to_numeric(_col(frame, "startTimeUnixNano"), errors="coerce")
    end = pd.to_numeric(_col(frame, "endTimeUnixNano"), errors="coerce")
    # Beyond int64 nanoseconds (found by fuzzing) becomes NaT, which validation rejects as a missing timestamp.
    out["timestamp"] = pd.to_datetime(start.where(start.abs() < 9.2e18), unit="ns", utc=True)
    provider = get("gen_ai.provider.name", "gen_ai.system")
    served = _first(get("gen_ai.response.model"), get("gen_ai.request.model"))
    out["model"] = [f"{p}/{m}" if p and m and "/" not in str(m) else m for p, m in zip(provider, served)]
    out["requested_model"] = get("gen_ai.request.model")
    out["input_tokens"] = get("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    out["output_tokens"] = get("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    out["cache_read_tokens"] = get("gen_ai.usage.cache_read.input_tokens")
    out["cache_write_tokens"] = get("gen_ai.usage.cache_creation.input_tokens")
    out["latency_ms"] = (end - start) / 1e6
    code = get("http.response.status_code")
    # OTLP JSON writes the status code as a number (2) or as the enum name.
    errored = get("error.type").notna() | frame["status"].map(
        lambda s: isinstance(s, dict) and s.get("code") in (2, "2", "STATUS_CODE_ERROR"))
    out["status_code"] = code.where(code.notna(), np.where(errored, 500, 200))
    _usage_zero_on_failure(out, errored | (pd.to_numeric(code, errors="coerce") >= 400))
    out["session_id"] = get("gen_ai.conversation.id")
    for key in ("user_id", "team", "project", "workflow_tag"):
        out[key] = get(f"tfy.metadata.{key}", key)
    is_genai = get("gen_ai.operation.name").notna() | get("gen_ai.request.model").notna()
    out["_reject"] = np.where(is_genai, None, "not a GenAI span (no gen_ai.operation.name or gen_ai.request.model)")
    out["_row"] = frame["_row"]
    return out


def litellm(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = _col(frame, "request_id")
    out["timestamp"] = _col(frame, "startTime")
    start = pd.to_datetime(_col(frame, "startTime"), utc=True, errors="coerce", format="ISO8601")
    end = pd.to_datetime(_col(frame, "endTime"), utc=True, errors="coerce", format="ISO8601")
    out["latency_ms"] = (end - start).dt.total_seconds() * 1000.0
    provider = _col(frame, "custom_llm_provider")
    model = _col(frame, "model")
    out["model"] = [f"{p}/{m}" if isinstance(p, str) and p and isinstance(m, str) and "/" not in m else m
                    for p, m in zip(provider, model)]
    out["requested_model"] = _col(frame, "model_group")
    out["input_tokens"] = _col(frame, "prompt_tokens")
    out["output_tokens"] = _col(frame, "completion_tokens")
    out["cost_usd"] = _col(frame, "spend")
    meta = _col(frame, "metadata").map(_json_obj)
    usage = meta.map(lambda m: (m or {}).get("additional_usage_values") or {})
    # Anthropic-style counts when present; OpenAI reports cache reads only as prompt_tokens_details.cached_tokens.
    out["cache_read_tokens"] = usage.map(lambda u: u.get("cache_read_input_tokens")
                                         if u.get("cache_read_input_tokens") is not None
                                         else (u.get("prompt_tokens_details") or {}).get("cached_tokens"))
    out["cache_write_tokens"] = usage.map(lambda u: u.get("cache_creation_input_tokens"))
    status = _col(frame, "status").astype(object)
    failed = status.isin(["failure", "error"])
    error_code = pd.to_numeric(meta.map(lambda m: ((m or {}).get("error_information") or {}).get("error_code")),
                               errors="coerce")
    known = (error_code >= 400) & (error_code <= 599)
    out["status_code"] = np.where(failed, np.where(known, error_code.fillna(500), 500), 200).astype(np.int64)
    out["user_id"] = _first(_col(frame, "user"), _col(frame, "end_user"))
    out["team"] = _col(frame, "team_id")

    def flat(m: dict[str, Any] | None) -> dict[str, Any]:
        # spend_logs_metadata holds the caller's own tags (e.g. project, workflow_tag); keep scalars only.
        m = m or {}
        tags = m.get("spend_logs_metadata") if isinstance(m.get("spend_logs_metadata"), dict) else {}
        both = {**m, **tags}
        return {k: v for k, v in both.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}

    _promote_metadata(out, meta.map(flat))
    # A LiteLLM cache hit was answered by the proxy without a model call: nothing to reprice or reroute.
    out["_reject"] = np.where(_truthy(_col(frame, "cache_hit")), "LiteLLM cache hit (cache_hit True): answered by "
                              "the proxy cache without a model call", None)
    out["_row"] = frame["_row"]
    return out


ADAPTERS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "canonical": canonical,
    "truefoundry": truefoundry,
    "truefoundry-spans": truefoundry_spans,
    "otel": otel,
    "litellm": litellm,
}


def detect_adapter(columns: set[str]) -> str | None:
    if {"request_id", "timestamp", "model"} <= columns:
        return "canonical"
    if "_otlp" in columns:
        return "otel"
    if "ModelName" in columns:
        return "truefoundry"
    if "spanAttributes" in columns:
        return "truefoundry-spans"
    if {"spend", "startTime"} <= columns:
        return "litellm"
    return None


def apply_adapter(frame: pd.DataFrame, name: str | None, mapping: dict[str, str] | None, where: str) -> pd.DataFrame:
    """Rename by ``mapping`` (canonical name -> source column), pick the adapter, and return canonical names."""
    if mapping:
        missing = [src for src in mapping.values() if src not in frame.columns]
        if missing:
            raise InputError(f"{where}: column mapping names '{missing[0]}', which is not a column of the file.")
        frame = frame.rename(columns={src: dst for dst, src in mapping.items()})
    columns = set(frame.columns)
    name = name or detect_adapter(columns)
    if name is None:
        absent = [c for c in REQUIRED if c not in columns]
        shown = shown_columns(columns)
        hint = ""
        named = [str(c) for c in columns if not str(c).startswith("_")]
        if len(named) == 1 and any(d in named[0] for d in ";\t|"):
            hint = " The header looks like it uses another delimiter; export with commas."
        raise InputError(
            f"{where}: missing required column(s) {', '.join(absent)} (found: {shown}).{hint} "
            "Rename them, pass --map canonical=source, or choose --adapter truefoundry|truefoundry-spans|otel|litellm."
        )
    if name not in ADAPTERS:
        raise InputError(f"unknown adapter '{name}'. Choose one of: {', '.join(ADAPTERS)}.")
    absent = [c for c in REQUIRED if c not in columns]
    if name == "canonical" and absent:
        # A whole missing column is a file problem, not one reject per row.
        shown = shown_columns(columns)
        raise InputError(f"{where}: missing required column(s) {', '.join(absent)} (found: {shown}). "
                         "Rename them or pass --map canonical=source.")
    out = ADAPTERS[name](frame)
    out["_source"] = frame["_source"].iloc[0] if len(frame) else where
    return out
