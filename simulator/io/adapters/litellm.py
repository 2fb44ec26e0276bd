"""LiteLLM proxy ``LiteLLM_SpendLogs`` rows, as the proxy's Postgres schema stores them, exported as CSV or JSON.

Columns read: ``request_id``, ``startTime`` / ``endTime`` (``TIMESTAMP(3)`` without a zone: LiteLLM stores UTC, so
zone-less values are read as UTC), ``model``, ``custom_llm_provider`` (``provider/model``), ``model_group``
(requested), ``spend``, ``prompt_tokens`` (includes cached tokens), ``completion_tokens``, ``user``, ``end_user``,
``team_id``, ``session_id``, ``request_tags``, ``cache_hit`` (the string "True": answered by the proxy cache),
``status``, and ``metadata``: ``user_api_key_team_alias`` (preferred to ``team_id``), ``user_api_key_user_id``,
``user_api_key_project_alias``, ``spend_logs_metadata`` (the caller's own keys, e.g. project, workflow_tag),
``tags``, ``additional_usage_values`` (cache counts), ``error_information.error_code`` (status of a failure).

Attribution from tags: ``project:x``, ``workflow:y`` and ``team:z`` in ``request_tags`` or ``metadata.tags`` (the
prefixes are the scenario's ``tag_prefixes:``); explicit ``spend_logs_metadata`` keys win over tags.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from simulator.io.adapters.common import (
    AdapterOptions, IngestNote, col, first, gateway_cache_rule, json_list, json_obj, meta_key, reject_where,
    split_model, tags_to_attribution, truthy,
)

COLUMNS = ("request_id", "startTime", "endTime", "model", "custom_llm_provider", "model_group", "spend",
           "prompt_tokens", "completion_tokens", "user", "end_user", "team_id", "session_id", "request_tags",
           "cache_hit", "status", "metadata")
NEEDS = {"request_id": ("request_id",), "timestamp": ("startTime",), "model": ("model",),
         "input_tokens": ("prompt_tokens",), "output_tokens": ("completion_tokens",)}
PRIVATE = {"user_id", "team", "project", "workflow_tag", "session_id", "user_api_key", "user_api_key_hash",
           "user_api_key_user_id", "user_api_key_user_email", "user_api_key_end_user_id", "requester_ip_address",
           "verified_human_user_id"}
UTC_NOTE = ("litellm: startTime/endTime without a time zone read as UTC (LiteLLM_SpendLogs stores UTC in "
            "TIMESTAMP(3) columns)")


def utc_if_naive(values: pd.Series) -> tuple[pd.Series, int]:
    """Zone-less ISO date-times as UTC (``+00:00`` appended); values with a zone or not text are left as they are.

    Returns the values and how many were zone-less.
    """
    def one(v: Any) -> tuple[Any, bool]:
        if isinstance(v, pd.Timestamp):
            return (v.tz_localize("UTC"), True) if v.tzinfo is None else (v, False)
        if not isinstance(v, str) or not v.strip() or v.strip()[-1] in "zZ" or v.strip()[-6:-5] in ("+", "-") \
                or v.strip()[-5:-4] in ("+", "-") or v.strip()[-3:-2] in ("+", "-"):
            return v, False
        text = v.strip()
        if len(text) >= 10 and text[4] == "-" and text[7] == "-":
            return text + "+00:00", True
        return v, False
    pairs = values.astype(object).map(one)
    return pairs.map(lambda p: p[0]), int(pairs.map(lambda p: p[1]).sum())


def utc_span(start: pd.Series, end: pd.Series, note: str) -> tuple[pd.Series, pd.Series]:
    """(start values with zone-less ones as UTC, end - start in ms); warns ``note`` when any were zone-less."""
    start, naive = utc_if_naive(start)
    end, _ = utc_if_naive(end)
    if naive:
        warnings.warn(note, IngestNote, stacklevel=3)
    t0 = pd.to_datetime(start, utc=True, errors="coerce", format="ISO8601")
    t1 = pd.to_datetime(end, utc=True, errors="coerce", format="ISO8601")
    return start, (t1 - t0).dt.total_seconds() * 1000.0


def litellm(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = col(frame, "request_id")
    out["timestamp"], span_ms = utc_span(col(frame, "startTime"), col(frame, "endTime"), UTC_NOTE)
    duration = pd.to_numeric(col(frame, "request_duration_ms"), errors="coerce")
    out["latency_ms"] = duration.where(duration.notna(), span_ms)
    out["model"] = split_model(col(frame, "custom_llm_provider"), col(frame, "model"))
    out["requested_model"] = col(frame, "model_group")
    out["input_tokens"] = col(frame, "prompt_tokens")
    out["output_tokens"] = col(frame, "completion_tokens")
    out["cost_usd"] = col(frame, "spend")
    meta = col(frame, "metadata").map(lambda m: json_obj(m) or {})
    usage = meta.map(lambda m: m.get("additional_usage_values") or {})
    usage = usage.map(lambda u: u if isinstance(u, dict) else {})
    # Anthropic-style counts when present; OpenAI reports cache reads only as prompt_tokens_details.cached_tokens.
    out["cache_read_tokens"] = usage.map(lambda u: u.get("cache_read_input_tokens")
                                         if u.get("cache_read_input_tokens") is not None
                                         else ((u.get("prompt_tokens_details") or {}).get("cached_tokens")))
    out["cache_write_tokens"] = usage.map(lambda u: u.get("cache_creation_input_tokens"))
    failed = col(frame, "status").astype(object).isin(["failure", "error"])
    error_code = pd.to_numeric(meta.map(lambda m: (m.get("error_information") or {}).get("error_code")),
                               errors="coerce")
    known = (error_code >= 400) & (error_code <= 599)
    out["status_code"] = np.where(failed, np.where(known, error_code.fillna(500), 500), 200).astype(np.int64)
    own = meta.map(lambda m: m.get("spend_logs_metadata") if isinstance(m.get("spend_logs_metadata"), dict) else {})
    tags = pd.Series([json_list(a) + [t for t in json_list(m.get("tags")) if t not in json_list(a)]
                      for a, m in zip(col(frame, "request_tags"), meta)], index=frame.index, dtype=object)
    tagged = tags_to_attribution(tags, options.tag_prefixes)
    none = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    out["user_id"] = first(col(frame, "user"), meta_key(meta, "user_api_key_user_id"), col(frame, "end_user"))
    out["team"] = first(meta_key(own, "team"), tagged.get("team", none), meta_key(meta, "user_api_key_team_alias"),
                        col(frame, "team_id"), meta_key(meta, "user_api_key_team_id"))
    out["project"] = first(meta_key(own, "project"), tagged.get("project", none),
                           meta_key(meta, "user_api_key_project_alias"))
    out["workflow_tag"] = first(meta_key(own, "workflow_tag"), tagged.get("workflow_tag", none))
    out["session_id"] = first(meta_key(own, "session_id"), col(frame, "session_id"))
    # Other scalar metadata (key alias, team alias, the caller's own keys) is kept for when.metadata rules; user
    # identifiers and the hashed key never are.
    out["metadata"] = [{k: v for k, v in {**m, **o}.items() if k not in PRIVATE and isinstance(v, (str, int, float))
                        and not isinstance(v, bool)} for m, o in zip(meta, own)]
    # A LiteLLM cache hit was answered by the proxy without a model call: nothing to reprice or reroute.
    out["_reject"] = reject_where(len(frame), gateway_cache_rule(truthy(col(frame, "cache_hit")), options,
                                                                 "LiteLLM cache_hit True"))
    out["_row"] = frame["_row"]
    return out

