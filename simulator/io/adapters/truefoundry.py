"""TrueFoundry AI Gateway: the analytics export (``gateway_model_metrics``) and the spans query API JSON.

Analytics export columns read: ``TraceId``, ``SpanId``, ``CreatedAt``, ``ConversationId``, ``ModelName`` (resolved),
``RequestedModelName``, ``VirtualModelName``, ``InputTokens`` (assumed to include cached tokens; the identity
replay flags a mismatch with ``CostInUSD``), ``OutputTokens``, ``CostInUSD``, ``LatencyMs``, ``HttpStatusCode``,
``IsFailure`` (500 when true but the code is NULL or < 400), ``CacheHit`` (gateway cache), ``Metadata``
(``X-TFY-METADATA``: team, project, workflow_tag, session_id, user_id keys win over ``CreatedBySubjectSlug``, the
first of ``Teams``, ``ConversationId``).

Virtual-model summary rows (``VirtualModelName`` set, with per-target rows of the same trace present) are rejected
so attempts are never counted twice. Failed attempts without usage count zero tokens.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.io.adapters.common import (
    AdapterOptions, attr, blank, col, first, first_item, gateway_cache_rule, json_obj, meta_key, number,
    reject_where, truthy, usage_zero_on_failure,
)

#: Columns of the analytics export this adapter reads (README and error messages list them).
COLUMNS = ("TraceId", "SpanId", "CreatedAt", "ConversationId", "ModelName", "RequestedModelName", "VirtualModelName",
           "InputTokens", "OutputTokens", "CostInUSD", "LatencyMs", "HttpStatusCode", "IsFailure", "CacheHit",
           "Metadata", "CreatedBySubjectSlug", "Teams")
#: canonical column -> the source columns that can give it (one must exist).
NEEDS = {"request_id": ("SpanId", "TraceId"), "timestamp": ("CreatedAt",), "model": ("ModelName",),
         "input_tokens": ("InputTokens",), "output_tokens": ("OutputTokens",)}
VIRTUAL = "virtual-model summary row; its target attempts are counted instead"


def analytics(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = first(col(frame, "SpanId"), col(frame, "TraceId"))
    out["timestamp"] = col(frame, "CreatedAt")
    out["model"] = col(frame, "ModelName")
    out["requested_model"] = first(col(frame, "VirtualModelName"), col(frame, "RequestedModelName"))
    out["input_tokens"] = col(frame, "InputTokens")
    out["output_tokens"] = col(frame, "OutputTokens")
    out["cost_usd"] = col(frame, "CostInUSD")
    out["latency_ms"] = col(frame, "LatencyMs")
    # X-TFY-METADATA keys are explicit attribution and win over the caller's subject, team membership and
    # conversation id (Teams lists every team of the subject; the first one is only a fallback).
    meta = col(frame, "Metadata").map(json_obj)
    out["user_id"] = first(meta_key(meta, "user_id"), col(frame, "CreatedBySubjectSlug"))
    out["session_id"] = first(meta_key(meta, "session_id"), col(frame, "ConversationId"))
    out["team"] = first(meta_key(meta, "team"), col(frame, "Teams").map(first_item))
    out["metadata"] = col(frame, "Metadata")
    # Gateway rejections (budget, rate limit) may be logged with HTTP 200 or NULL: IsFailure is the truth.
    failed = truthy(col(frame, "IsFailure"))
    code = number(col(frame, "HttpStatusCode"))
    out["status_code"] = col(frame, "HttpStatusCode").astype(object).where(~(failed & ~(code >= 400)), 500)
    usage_zero_on_failure(out, failed)
    out["_row"] = frame["_row"]
    dup = np.zeros(len(frame), dtype=bool)
    if "VirtualModelName" in frame.columns and "TraceId" in frame.columns:
        virtual = ~blank(frame["VirtualModelName"])
        dup = (virtual & frame["TraceId"].isin(set(frame.loc[~virtual, "TraceId"]))).to_numpy()
    out["_reject"] = reject_where(len(frame), (dup, VIRTUAL),
                                  gateway_cache_rule(truthy(col(frame, "CacheHit")), options, "CacheHit true"))
    return out


# -- spans query API (``{"data": [TraceSpan]}``) ----------------------------------------------------------------
SPAN_COLUMNS = ("spanId", "traceId", "parentSpanId", "timestamp", "durationNs", "statusCode", "spanAttributes")
NOT_MODEL = "not an inference span (tfy.span_type is not Model); usage and cost are counted on Model spans"


def _inherit_request_attributes(frame: pd.DataFrame, attrs: pd.Series) -> pd.Series:
    """Fill missing ``tfy.request.*`` attributes of a span from its ancestors in the same export.

    Request attributes (metadata, caller, requested model) may sit only on the ChatCompletion span while usage and
    cost sit on its Model child; without this the Model span would lose its attribution.
    """
    ids = col(frame, "spanId").tolist()
    by_id = dict(zip(ids, attrs))
    parent_of = dict(zip(ids, col(frame, "parentSpanId")))
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


def spans(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    attrs = frame["spanAttributes"].map(lambda a: a if isinstance(a, dict) else (json_obj(a) or {}))
    attrs = _inherit_request_attributes(frame, attrs)
    get = lambda *keys: attrs.map(lambda a: attr(a, *keys))  # noqa: E731
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = first(col(frame, "spanId"), col(frame, "traceId"))
    out["timestamp"] = col(frame, "timestamp")
    out["model"] = get("tfy.model.name", "tfy.model.fqn", "gen_ai.response.model")
    out["requested_model"] = get("tfy.request.model_name", "gen_ai.request.model")
    inp = number(get("tfy.model.metric.input_tokens", "gen_ai.usage.input_tokens"))
    read = number(get("tfy.model.metric.cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens")).fillna(0)
    write = number(get("tfy.model.metric.cache_creation_input_tokens", "gen_ai.usage.cache_write.input_tokens",
                       "gen_ai.usage.cache_creation.input_tokens")).fillna(0)
    # Unpublished convention: when input < cache counts, input must exclude them (Anthropic style); add them back.
    exclusive = inp.notna() & (inp < read + write)
    out["input_tokens"] = inp.where(~exclusive, inp + read + write)
    out["cache_read_tokens"] = read
    out["cache_write_tokens"] = write
    out["output_tokens"] = get("tfy.model.metric.output_tokens", "gen_ai.usage.output_tokens")
    out["cost_usd"] = get("tfy.model.metric.cost_in_usd")
    latency = number(get("tfy.model.metric.latency_in_ms"))
    duration = number(col(frame, "durationNs")) / 1e6
    out["latency_ms"] = latency.where(latency.notna(), duration)
    code = get("http.response.status_code")
    span_error = col(frame, "statusCode").isin(["STATUS_CODE_ERROR", "ERROR", 2])
    out["status_code"] = code.where(~(blank(code) & span_error), 500)
    usage_zero_on_failure(out, span_error | (number(code) >= 400))
    meta = get("tfy.request.metadata").map(json_obj)  # metadata keys win, as in the analytics table
    out["user_id"] = first(meta_key(meta, "user_id"), get("tfy.request.created_by_subject"))
    out["session_id"] = first(meta_key(meta, "session_id"),
                              get("tfy.request.conversation_id", "gen_ai.conversation.id"))
    out["metadata"] = get("tfy.request.metadata")
    span_type = get("tfy.span_type")
    is_model = (span_type.isna() | (span_type == "Model")).to_numpy()
    out["_reject"] = reject_where(len(frame), (~is_model, NOT_MODEL))
    out["_row"] = frame["_row"]
    return out
