"""Langfuse observations export (blob storage ``observations/`` and enriched ``observations_v2/``, UI export).

Columns read: ``id``, ``trace_id``, ``type`` (GENERATION and EMBEDDING are model calls; SPAN, EVENT, AGENT, TOOL,
CHAIN, ... are listed as "not an inference span"), ``start_time`` / ``end_time`` (``YYYY-MM-DD HH:MM:SS.ffffff`` in
UTC, read as UTC), ``provided_model_name`` (else ``model``), ``usage_details`` (``input`` excludes cached tokens:
input tokens are the sum of the ``input*`` keys, cache reads ``input_cached_tokens`` / ``input_cache_read``, cache
writes ``input_cache_creation`` / ``input_cache_write``; output the sum of the ``output*`` keys), ``total_cost``
(else ``cost_details.total``), ``level`` (ERROR is a failure; a 4xx/5xx code in ``status_message`` is kept),
``user_id``, ``session_id``, ``tags`` (``project:x``, ``workflow:y``, ``team:z``), ``metadata`` (scalar keys),
``trace_name`` (workflow when no tag or metadata gives one), ``latency`` (seconds, when there is no end time).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from simulator.io.adapters.common import (
    NOT_INFERENCE, AdapterOptions, col, first, json_obj, number, reject_where, tags_to_attribution,
)
from simulator.io.adapters.litellm import utc_span

COLUMNS = ("id", "trace_id", "type", "start_time", "end_time", "provided_model_name", "model", "usage_details",
           "cost_details", "total_cost", "level", "status_message", "user_id", "session_id", "tags", "metadata",
           "trace_name", "latency")
NEEDS = {"request_id": ("id",), "timestamp": ("start_time",), "model": ("provided_model_name", "model"),
         "input_tokens": ("usage_details", "usage"), "output_tokens": ("usage_details", "usage")}
MODEL_CALLS = ("GENERATION", "EMBEDDING")
UTC_NOTE = "langfuse: start_time/end_time without a time zone read as UTC (Langfuse exports UTC)"
_CODE = re.compile(r"\b([45]\d\d)\b")


def _usage(value: Any) -> dict[str, float]:
    obj = json_obj(value) or {}
    return {str(k): float(v) for k, v in obj.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _sum(usage: dict[str, float], test) -> float | None:
    keys = [k for k in usage if test(k)]
    return sum(usage[k] for k in keys) if keys else None


def _status(level: Any, message: Any) -> int:
    if str(level).upper() != "ERROR":
        return 200
    match = _CODE.search(str(message or ""))
    if match:
        return int(match.group(1))
    return 429 if "rate limit" in str(message or "").lower() else 500


def langfuse(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = col(frame, "id")
    out["timestamp"], latency = utc_span(col(frame, "start_time"), col(frame, "end_time"), UTC_NOTE)
    out["latency_ms"] = latency.where(latency.notna(), number(col(frame, "latency")) * 1000.0)
    out["model"] = first(col(frame, "provided_model_name"), col(frame, "model"))
    usage = first(col(frame, "usage_details"), col(frame, "usage")).map(_usage)
    out["input_tokens"] = usage.map(lambda u: _sum(u, lambda k: k.startswith("input") or k == "prompt_tokens"))
    out["output_tokens"] = usage.map(lambda u: _sum(u, lambda k: k.startswith("output") or k == "completion_tokens"))
    out["cache_read_tokens"] = usage.map(lambda u: _sum(u, lambda k: k in (
        "input_cached_tokens", "input_cache_read", "cache_read_input_tokens")))
    out["cache_write_tokens"] = usage.map(lambda u: _sum(u, lambda k: k in (
        "input_cache_creation", "input_cache_write", "cache_creation_input_tokens")))
    cost_total = col(frame, "cost_details").map(lambda c: (json_obj(c) or {}).get("total"))
    out["cost_usd"] = first(col(frame, "total_cost"), cost_total)
    status = pd.Series([_status(lv, m) for lv, m in zip(col(frame, "level"), col(frame, "status_message"))],
                       index=frame.index)
    out["status_code"] = status
    failed = (status >= 400).to_numpy()
    for name in ("input_tokens", "output_tokens"):
        out[name] = out[name].where(~(failed & out[name].isna().to_numpy()), 0)
    is_embedding = col(frame, "type").astype(object).str.upper().eq("EMBEDDING").to_numpy(dtype=bool, na_value=False)
    out["output_tokens"] = out["output_tokens"].where(~(is_embedding & out["output_tokens"].isna().to_numpy()), 0)
    meta = col(frame, "metadata").map(lambda m: {k: v for k, v in (json_obj(m) or {}).items()
                                                 if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
    tagged = tags_to_attribution(col(frame, "tags"), options.tag_prefixes)
    none = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    out["user_id"] = col(frame, "user_id")
    out["session_id"] = col(frame, "session_id")
    out["team"] = first(tagged.get("team", none), meta.map(lambda m: m.get("team")))
    out["project"] = first(tagged.get("project", none), meta.map(lambda m: m.get("project")))
    out["workflow_tag"] = first(tagged.get("workflow_tag", none), meta.map(lambda m: m.get("workflow_tag")),
                                col(frame, "trace_name"))
    out["metadata"] = meta
    kind = col(frame, "type").astype(object)
    model_call = kind.isna() | kind.astype(str).str.upper().isin(MODEL_CALLS)
    out["_reject"] = reject_where(len(frame), (~model_call.to_numpy(dtype=bool),
                                               f"{NOT_INFERENCE} (Langfuse observation type is not GENERATION or "
                                               "EMBEDDING)"))
    out["_row"] = frame["_row"]
    return out
