"""Small column helpers every adapter uses, and the options a scenario passes to adapters."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from simulator.io.options import DEFAULT_TAG_PREFIXES, AdapterOptions  # noqa: F401 (re-exported)

#: Attribution keys promoted from metadata objects by validation (see ``simulator.io.traffic``).
ATTRIBUTION_KEYS = ("user_id", "team", "project", "workflow_tag", "session_id")
#: Canonical columns every adapter must produce.
REQUIRED = ("request_id", "timestamp", "model", "input_tokens", "output_tokens")
#: Reason prefix of rows that are not model calls by design (agent, tool, chain spans): counted apart from defects.
NOT_INFERENCE = "not an inference span"
GATEWAY_CACHE_HIT = "gateway cache hit"


class IngestNote(UserWarning):
    """Something an adapter assumed about a whole export (shown with the data-quality counts)."""


def json_obj(value: Any) -> dict[str, Any] | None:
    """A JSON object given as a dict, an Arrow map (list of pairs) or JSON text; else None."""
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


def json_list(value: Any) -> list[Any]:
    """A list exported as a list, JSON text, Postgres array text (``{a,b}``) or ClickHouse Array text (``['a']``)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if text.startswith("{") and text.endswith("}") and ":" not in text:  # Postgres text[] literal
        return [t.strip().strip('"') for t in text[1:-1].split(",") if t.strip()]
    if not text.startswith("["):
        return [text]
    try:
        out = json.loads(text)
    except json.JSONDecodeError:
        try:
            out = ast.literal_eval(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            return []
    return list(out) if isinstance(out, (list, tuple)) else []


def col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-None when the export has no such column."""
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def first(*series: pd.Series) -> pd.Series:
    """Element-wise first non-blank value."""
    out = series[0].astype(object).copy()
    for s in series[1:]:
        out = out.where(~blank(out), s.astype(object))
    return out


def blank(values: pd.Series) -> pd.Series:
    obj = values.astype(object)
    return obj.isna() | obj.map(lambda v: isinstance(v, str) and (not v.strip() or v.strip() == "\\N"))


def number(values: pd.Series) -> pd.Series:
    """Numbers as float (blank, ``\\N`` and text that is not a number become NaN)."""
    return pd.to_numeric(values.astype(object).where(~blank(values)), errors="coerce")


def truthy(values: pd.Series) -> pd.Series:
    """Booleans as exported: true/false, 1/0, and LiteLLM's strings "True"/"False"."""
    def one(v: Any) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return v == 1
        return isinstance(v, str) and v.strip().lower() in ("true", "1", "t", "yes")
    return values.astype(object).map(one).astype(bool)


def first_item(value: Any) -> Any:
    """First element of a list exported as a list, JSON text, or ClickHouse Array text (``['a','b']``)."""
    if isinstance(value, str) and not value.strip().startswith("["):
        return value.strip() or None
    items = json_list(value) if isinstance(value, (str, list, tuple, np.ndarray)) else None
    if items is None:
        return value
    return str(items[0]) if items else None


def meta_key(meta: pd.Series, key: str) -> pd.Series:
    """``meta[key]`` of parsed metadata objects (None when absent or empty)."""
    return meta.map(lambda m: m.get(key) if isinstance(m, dict) and m.get(key) not in (None, "") else None)


def attr(attrs: Any, *keys: str) -> Any:
    """The first non-empty of ``keys`` in an attribute dict."""
    if not isinstance(attrs, dict):
        return None
    for key in keys:
        if attrs.get(key) not in (None, ""):
            return attrs[key]
    return None


def usage_zero_on_failure(out: pd.DataFrame, failed: pd.Series) -> None:
    """Failed attempts often carry no usage at all; they consumed nothing billable, so count 0 tokens."""
    failed = np.asarray(failed, dtype=bool)
    for name in ("input_tokens", "output_tokens"):
        out[name] = out[name].astype(object).where(~(failed & blank(out[name]).to_numpy()), 0)


def tags_to_attribution(tags: pd.Series, prefixes: Mapping[str, str]) -> dict[str, pd.Series]:
    """Attribution from tag lists by the prefix convention: ``project:x`` -> project x (first tag wins)."""
    out = {}
    for key, prefix in prefixes.items():
        if not prefix:
            continue

        def pick(items: Any, prefix: str = prefix) -> str | None:
            for tag in json_list(items):
                if isinstance(tag, str) and tag.startswith(prefix) and tag[len(prefix):].strip():
                    return tag[len(prefix):].strip()
            return None
        out[key] = tags.map(pick)
    return out


def split_model(provider: pd.Series, model: pd.Series) -> list[Any]:
    """``provider/model`` unless the model already names its provider (has a ``/``)."""
    return [f"{p}/{m}" if isinstance(p, str) and p and isinstance(m, str) and m and "/" not in m else m
            for p, m in zip(provider.astype(object), model.astype(object))]


def nan_to_none(values: pd.Series) -> pd.Series:
    obj = values.astype(object)
    return obj.where(~blank(obj), None)


def reject_where(n: int, *rules: tuple[Any, str]) -> np.ndarray:
    """Per row, the reason of the first rule whose mask is true (None where none is)."""
    out = np.full(n, None, dtype=object)
    for mask, reason in rules:
        mask = np.asarray(mask, dtype=bool) & pd.isna(out)
        out[mask] = reason
    return out


def gateway_cache_rule(hit: pd.Series, options: AdapterOptions, how: str) -> tuple[Any, str]:
    """The cache-hit reject rule under ``options.gateway_cache_hits`` (``replay`` keeps the rows)."""
    keep = options.gateway_cache_hits == "replay"
    return (np.zeros(len(hit), bool) if keep else hit.to_numpy(dtype=bool),
            f"{GATEWAY_CACHE_HIT} ({how}): answered by the gateway cache without a model call; "
            "set gateway_cache_hits: replay to price it as a cache miss")


#: The canonical table's column names (``simulator.io.traffic.COLUMNS`` is the contract; a test keeps them equal).
CANONICAL_COLUMNS = ("request_id", "timestamp", "model", "requested_model", "input_tokens", "output_tokens",
                     "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cost_usd", "latency_ms",
                     "status_code", "user_id", "team", "project", "workflow_tag", "session_id", "metadata", "prompt",
                     "prefix_hash", "prefix_tokens", "prefix_blocks", "block_tokens")
