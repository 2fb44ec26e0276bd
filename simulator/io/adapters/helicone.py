"""Helicone request export (``npx @helicone/export --format json|jsonl|csv``).

JSON and JSON Lines hold Helicone's request records: ``request_id``, ``request_created_at``, ``response_status``,
``model`` (else ``response_model``, ``request_model``), ``provider`` (``provider/model``), ``prompt_tokens``,
``completion_tokens``, ``prompt_cache_read_tokens``, ``prompt_cache_write_tokens``, ``costUSD`` / ``cost``,
``delay_ms`` / ``latency``, ``request_user_id``, ``request_properties`` / ``properties`` (custom
``Helicone-Property-*`` headers: ``Project``, ``Workflow``, ``Team`` give attribution, ``Helicone-Session-Id`` the
session), ``cache_reference_id`` (a Helicone cache hit when it is not the all-zero id). The CSV export has
``response_id`` (the request id), ``response_created_at``, ``response_status``, ``request_created_at``,
``request_properties``, ``request_user_id``, ``model``, ``prompt_tokens``, ``completion_tokens``, ``latency`` (ms),
``cost``. Anthropic's ``prompt_tokens`` exclude cache tokens; they are added back.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from simulator.io.adapters.common import (
    AdapterOptions, IngestNote, blank, col, first, gateway_cache_rule, json_obj, number, reject_where, split_model,
    usage_zero_on_failure,
)
from simulator.io.adapters.litellm import utc_if_naive

COLUMNS = ("request_id", "response_id", "request_created_at", "response_created_at", "response_status", "model",
           "response_model", "request_model", "provider", "prompt_tokens", "completion_tokens",
           "prompt_cache_read_tokens", "prompt_cache_write_tokens", "costUSD", "cost", "delay_ms", "latency",
           "request_user_id", "request_properties", "properties", "cache_reference_id")
NEEDS = {"request_id": ("request_id", "response_id"), "timestamp": ("request_created_at",),
         "model": ("model", "response_model", "request_model"), "input_tokens": ("prompt_tokens",),
         "output_tokens": ("completion_tokens",)}
NO_CACHE = "00000000-0000-0000-0000-000000000000"
UTC_NOTE = "helicone: request_created_at without a time zone read as UTC (Helicone stores UTC)"
#: Helicone custom property (lower-cased) -> canonical attribution key.
PROPERTIES = {"project": "project", "workflow": "workflow_tag", "workflow_tag": "workflow_tag", "team": "team",
              "helicone-session-id": "session_id", "session": "session_id"}


def _properties(value) -> dict:
    props = json_obj(value) or {}
    out = {}
    for key, v in props.items():
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            k = str(key).lower().removeprefix("helicone-property-")
            out[PROPERTIES.get(k, k)] = v
    return out


def helicone(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["request_id"] = first(col(frame, "request_id"), col(frame, "response_id"))
    start, naive = utc_if_naive(col(frame, "request_created_at"))
    if naive:
        warnings.warn(UTC_NOTE, IngestNote, stacklevel=2)
    out["timestamp"] = start
    provider = col(frame, "provider").map(lambda p: p.lower() if isinstance(p, str) and p.strip() else None)
    served = first(col(frame, "model"), col(frame, "response_model"), col(frame, "request_model"))
    out["model"] = split_model(provider, served)
    out["requested_model"] = col(frame, "request_model")
    inp = number(col(frame, "prompt_tokens"))
    read = number(col(frame, "prompt_cache_read_tokens")).fillna(0)
    write = number(col(frame, "prompt_cache_write_tokens")).fillna(0)
    exclusive = (provider == "anthropic") | (inp < read + write)
    out["input_tokens"] = inp.where(~exclusive, inp + read + write)
    out["output_tokens"] = col(frame, "completion_tokens")
    out["cache_read_tokens"] = read
    out["cache_write_tokens"] = write
    out["cost_usd"] = first(col(frame, "costUSD"), col(frame, "cost"))
    out["latency_ms"] = first(col(frame, "delay_ms"), col(frame, "latency"))
    status = number(col(frame, "response_status"))
    # Helicone logs -1 / 0 for requests that never got a response (timeouts, network errors).
    out["status_code"] = status.where(~(status < 100), 500)
    usage_zero_on_failure(out, (number(out["status_code"]) >= 400).to_numpy())
    out["user_id"] = col(frame, "request_user_id")
    out["metadata"] = first(col(frame, "request_properties"), col(frame, "properties")).map(_properties)
    ref = col(frame, "cache_reference_id")
    hit = ~blank(ref) & (ref.astype(object) != NO_CACHE)
    out["_reject"] = reject_where(len(frame), gateway_cache_rule(hit, options, "cache_reference_id set"))
    out["_row"] = frame["_row"]
    return out
