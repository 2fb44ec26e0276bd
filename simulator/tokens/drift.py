"""Tokenizer drift: what a model's traffic would count, and cost, on another model's tokenizer.

``drift_report(df, from_model, to_model)`` takes the rows served by ``from_model``, translates their input and output
tokens to ``to_model`` (``simulator.tokens.translate``: exact re-tokenization where both tokenizers are public and
prompt text is present, else calibrated ratios fitted from ``df`` itself, else shipped defaults), and summarises
tokens before and after, overall and per group, optionally priced. The result is a plain JSON-ready dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from simulator.errors import InputError, did_you_mean
from simulator.pricing.model_ids import split_model_id
from simulator.tokens.calibration import ALL, Calibration, calibrate_from_traffic
from simulator.tokens.content import UNKNOWN
from simulator.tokens.counting import CountCache
from simulator.tokens.registry import DEFAULT_REGISTRY, Registry
from simulator.tokens.translate import METHODS, token_ratios

BY_CHOICES = ("workflow_tag", "team", "project", "content_type")
NO_GROUP = "(none)"
DAYS_PER_MONTH = 30
CACHE_COLUMNS = ("cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")

PriceFn = Callable[[str, pd.DataFrame], np.ndarray]


def _select_rows(df: pd.DataFrame, model: str) -> pd.DataFrame:
    models = df["model"].astype(str)
    mask = models == model
    if not mask.any() and "/" not in model:  # a bare model name matches any provider account
        mask = models.map(lambda m: split_model_id(m)[1]) == model
    if not mask.any():
        found = sorted(models.unique())
        raise InputError(
            f"--from model '{model}' serves no request in the traffic.{did_you_mean(model, found)} "
            f"Models found: {', '.join(found[:10])}{' ...' if len(found) > 10 else ''}."
        )
    return df[mask.to_numpy()]


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _weakest(methods: np.ndarray) -> str:
    present = set(methods.tolist())
    return max(present, key=METHODS.index) if present else METHODS[0]


def _summary(
    input_from: np.ndarray,
    input_to: np.ndarray,
    output_from: np.ndarray,
    output_to: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    methods: np.ndarray,
    row_ratio: np.ndarray,
) -> dict:
    total_from, total_to = int(input_from.sum()), int(input_to.sum())
    ratio = total_to / total_from if total_from else math.nan
    # Token-weighted bounds of the per-row ratios (errors assumed fully correlated: conservative), taken relative to
    # the per-row ratios and applied to the realised ratio, so the interval always contains its estimate (rounding
    # the translated counts moves the estimate off the unrounded ratios).
    weights = input_from.astype(np.float64)
    central = float(weights @ row_ratio)
    has_ci = total_from > 0 and central > 0 and bool(np.isfinite(low).all() and np.isfinite(high).all())
    return {
        "requests": int(input_from.size),
        "input_tokens_from": total_from,
        "input_tokens_to": total_to,
        "output_tokens_from": int(output_from.sum()),
        "output_tokens_to": int(output_to.sum()),
        "ratio": _number(ratio),
        "ratio_ci_low": _number(ratio * float(weights @ low) / central) if has_ci else None,
        "ratio_ci_high": _number(ratio * float(weights @ high) / central) if has_ci else None,
        "method": _weakest(methods),
        "methods": {m: int((methods == m).sum()) for m in METHODS if (methods == m).any()},
    }


def _window_days(rows: pd.DataFrame) -> float | None:
    if "timestamp" not in rows.columns or rows["timestamp"].isna().all():
        return None
    span = (rows["timestamp"].max() - rows["timestamp"].min()).total_seconds() / 86400
    return span if span > 0 else None


def _translated_frame(rows: pd.DataFrame, to_model: str, ratio: np.ndarray, input_to, output_to) -> pd.DataFrame:
    frame = rows.copy()
    frame["model"] = to_model
    frame["input_tokens"] = input_to
    frame["output_tokens"] = output_to
    for column in CACHE_COLUMNS:  # cache sub-counts scale with the input and never exceed it
        if column in frame.columns:
            scaled = np.rint(frame[column].to_numpy(dtype=np.float64) * ratio).astype(np.int64)
            frame[column] = np.minimum(scaled, input_to)
    return frame


def drift_report(
    df: pd.DataFrame,
    from_model: str,
    to_model: str,
    by: str | None = None,
    price_fn: PriceFn | None = None,
    calibration: Calibration | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    cache: CountCache | None = None,
) -> dict:
    """Token drift of ``from_model``'s traffic moved to ``to_model``, overall and per ``by`` group.

    ``price_fn(model_id, frame) -> cost_usd array`` prices a canonical-table frame; with it the report adds cost per
    request at each model's price and the monthly impact (traffic window scaled to 30 days). ``calibration``
    defaults to ratios fitted from ``df`` (every calibrated model in it with prompt text), then shipped defaults.
    Keys: ``input_tokens_from``, ``input_tokens_to``, ``ratio``, ``ratio_ci_low``/``high`` (None without an
    interval), ``method`` (the weakest used), ``methods`` (requests per method), ``groups`` and ``cost``.
    """
    if by is not None and by not in BY_CHOICES:
        raise InputError(f"--by must be one of {', '.join(BY_CHOICES)}. Got '{by}' instead.{did_you_mean(by, BY_CHOICES)}")
    if by is not None and by != "content_type" and by not in df.columns:
        raise InputError(f"--by {by}: the traffic has no '{by}' column. Use one of the columns present.")
    rows = _select_rows(df, from_model)
    if calibration is None:
        calibration = calibrate_from_traffic(df, registry, cache)
    prompts = rows["prompt"].to_numpy(dtype=object) if "prompt" in rows.columns else None
    input_from = rows["input_tokens"].to_numpy(dtype=np.int64)
    ratios = token_ratios(from_model, to_model, len(rows), prompts, None, calibration, registry, cache, input_from)

    output_from = rows["output_tokens"].to_numpy(dtype=np.int64)
    identity = ratios.method == "identity"
    input_to = np.where(identity, input_from, np.rint(input_from * ratios.ratio)).astype(np.int64)
    output_to = np.where(identity, output_from, np.rint(output_from * ratios.ratio)).astype(np.int64)
    low, high = ratios.ratio_low, ratios.ratio_high  # NaN for identity: an assumption has no interval

    report = {
        "from_model": from_model,
        "to_model": to_model,
        "tokenizer_from": registry.tokenizer_id_for_model(from_model),
        "tokenizer_to": registry.tokenizer_id_for_model(to_model),
        **_summary(input_from, input_to, output_from, output_to, low, high, ratios.method, ratios.ratio),
    }

    cost_from = cost_to = None
    if price_fn is not None:
        cost_from = np.asarray(price_fn(from_model, rows), dtype=np.float64)
        frame_to = _translated_frame(rows, to_model, ratios.ratio, input_to, output_to)
        cost_to = np.asarray(price_fn(to_model, frame_to), dtype=np.float64)
        report["cost"] = _cost(cost_from, cost_to, _window_days(rows))

    report["by"] = by
    report["groups"] = []
    if by is not None:
        if by == "content_type":
            keys = np.where(ratios.content_type == ALL, UNKNOWN, ratios.content_type).astype(str)
        else:
            keys = rows[by].astype(object).where(rows[by].notna(), NO_GROUP).astype(str).to_numpy()
        for key in sorted(set(keys.tolist())):
            at = keys == key
            group = {"group": key}
            group.update(
                _summary(input_from[at], input_to[at], output_from[at], output_to[at], low[at], high[at],
                         ratios.method[at], ratios.ratio[at])
            )
            if cost_from is not None:
                group["cost"] = _cost(cost_from[at], cost_to[at], _window_days(rows))
            report["groups"].append(group)
    return report


def _cost(cost_from: np.ndarray, cost_to: np.ndarray, window_days: float | None) -> dict:
    total_from, total_to = float(np.nansum(cost_from)), float(np.nansum(cost_to))
    n = cost_from.size
    monthly = DAYS_PER_MONTH / window_days if window_days else None
    return {
        "cost_usd_from": total_from,
        "cost_usd_to": total_to,
        "cost_per_request_usd_from": total_from / n if n else None,
        "cost_per_request_usd_to": total_to / n if n else None,
        "window_days": window_days,
        "monthly_cost_usd_from": total_from * monthly if monthly else None,
        "monthly_cost_usd_to": total_to * monthly if monthly else None,
        "monthly_cost_impact_usd": (total_to - total_from) * monthly if monthly else None,
    }
