"""FinOps FOCUS 1.2 cost rows for the baseline (the traffic as recorded, repriced) and every candidate.

AI usage goes in FOCUS's generic columns: ``ServiceCategory`` "AI and Machine Learning", ``ServiceSubcategory``
"Generative AI", one row per (provider account, model, workflow, UTC day, token type) with ``ConsumedQuantity`` in
``Tokens`` (``Requests`` for per-request fees), ``SkuMeter`` the token type and ``SkuPriceDetails`` the model
(``ModelDeveloper``, ``ModelId``). tfysim's own columns: ``x_Scenario``, ``x_Candidate`` ("baseline" for the
recorded routing), ``x_Workflow``, ``x_ModelId`` (the gateway model id), ``x_TokenType``. Costs are simulated at
catalog prices, so BilledCost = EffectiveCost = ListCost = ContractedCost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: token type -> (SkuMeter, ConsumedUnit); the order is the row order within a group.
TOKEN_TYPES = {
    "input": ("Input Tokens", "Tokens"),
    "cache_read": ("Cache Read Input Tokens", "Tokens"),
    "cache_write": ("Cache Write Input Tokens", "Tokens"),
    "cache_write_1h": ("Cache Write 1h Input Tokens", "Tokens"),
    "output": ("Output Tokens", "Tokens"),
    "request": ("Requests", "Requests"),
}
FOCUS_COLUMNS = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
    "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName", "ServiceProviderName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "Tags", "x_Scenario", "x_Candidate", "x_Workflow", "x_ModelId", "x_TokenType",
)
_DAY_NS = 86_400 * 10**9


def usage_table(model_ids: np.ndarray, ts_ns: np.ndarray, workflow: np.ndarray,
                tokens_by_type: Mapping[str, np.ndarray], cost_by_type: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Quantity and cost per (model, workflow, UTC day, token type) from per-request arrays.

    ``model_ids``: gateway model id per request; ``ts_ns``: UTC nanoseconds; ``workflow``: workflow tag (None ->
    "UNTAGGED"); ``tokens_by_type`` / ``cost_by_type``: token type (see ``TOKEN_TYPES``) -> per-request quantity /
    USD. Rows with neither quantity nor cost are dropped. Partial tables add up: feed chunks and sum by the keys.
    """
    n = len(model_ids)
    wf = pd.Series(np.asarray(workflow, dtype=object)).where(lambda s: s.notna(), "UNTAGGED").to_numpy(dtype=object)
    day = np.asarray(ts_ns, dtype=np.int64) // _DAY_NS
    parts = []
    for kind in TOKEN_TYPES:
        if kind not in tokens_by_type and kind not in cost_by_type:
            continue
        parts.append(pd.DataFrame({
            "model_id": np.asarray(model_ids, dtype=object), "workflow": wf, "day": day,
            "token_type": kind,
            "quantity": np.asarray(tokens_by_type.get(kind, np.zeros(n)), dtype=np.float64),
            "cost_usd": np.asarray(cost_by_type.get(kind, np.zeros(n)), dtype=np.float64),
        }))
    if not parts:
        return pd.DataFrame(columns=["model_id", "workflow", "day", "token_type", "quantity", "cost_usd"])
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[(frame["quantity"] != 0) | (frame["cost_usd"] != 0)]
    order = {k: i for i, k in enumerate(TOKEN_TYPES)}
    out = frame.groupby(["model_id", "workflow", "day", "token_type"], sort=False, as_index=False)[
        ["quantity", "cost_usd"]].sum()
    out["_order"] = out["token_type"].map(order)
    return out.sort_values(["day", "model_id", "workflow", "_order"], kind="stable").drop(columns="_order") \
        .reset_index(drop=True)


def outcome_usage(p: Any, outcome: Any) -> pd.DataFrame:
    """:func:`usage_table` of one local-run outcome: tokens per type and their catalog cost (failed and blocked
    requests bill nothing; whatever the token split does not explain, e.g. per-request fees, is the ``request``
    type, so the rows add up to the outcome's cost)."""
    vocab = np.array(p.vocab, dtype=object)
    inp, cr = outcome.input_tokens.astype(np.float64), outcome.cache_read_tokens.astype(np.float64)
    cw, cw1h = outcome.cache_write_tokens.astype(np.float64), outcome.cache_write_1h_tokens.astype(np.float64)
    out = outcome.output_tokens.astype(np.float64)
    billed = outcome.cost_usd != 0
    unit = p.catalog.unit_prices_codes(outcome.model, vocab, p.ts, inp)
    tokens = {"input": inp - cr - cw, "cache_read": cr, "cache_write": cw - cw1h, "cache_write_1h": cw1h,
              "output": out}
    tokens = {k: np.where(billed, v, 0.0) for k, v in tokens.items()}
    cost = {k: unit[:, i + 1] * tokens[k] for i, k in enumerate(("input", "cache_read", "cache_write",
                                                                 "cache_write_1h", "output"))}
    explained = sum(cost.values())
    cost["request"] = np.where(billed, outcome.cost_usd - explained, 0.0)
    cost["request"][np.abs(cost["request"]) < 1e-12] = 0.0
    tokens["request"] = np.where(cost["request"] != 0, 1.0, 0.0)
    workflow = p.frame["workflow_tag"].to_numpy(dtype=object)
    return usage_table(vocab[outcome.model], p.ts, workflow, tokens, cost)


def focus_frame(usage: pd.DataFrame, scenario: str, candidate: str, provider_of: Mapping[str, str]) -> pd.DataFrame:
    """FOCUS 1.2 rows of one :func:`usage_table` (``provider_of``: gateway model id -> provider id)."""
    n = len(usage)
    model_id = usage["model_id"].astype(str)
    account = model_id.map(lambda m: m.split("/", 1)[0] if "/" in m else m)
    model = model_id.map(lambda m: m.split("/", 1)[1] if "/" in m else m)
    provider = model_id.map(lambda m: provider_of.get(m) or (m.split("/", 1)[0] if "/" in m else "unknown"))
    start = pd.to_datetime(usage["day"].to_numpy(dtype=np.int64) * _DAY_NS, unit="ns", utc=True)
    end = start + pd.Timedelta(days=1)
    month = start.tz_localize(None).to_period("M")
    bill_start = month.to_timestamp().tz_localize("UTC")
    bill_end = (month + 1).to_timestamp().tz_localize("UTC")
    iso = lambda values: values.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    meter = usage["token_type"].map(lambda k: TOKEN_TYPES[k][0])
    unit = usage["token_type"].map(lambda k: TOKEN_TYPES[k][1])
    qty = usage["quantity"].to_numpy(dtype=np.float64)
    per_million = unit.eq("Tokens").to_numpy()
    pricing_qty = np.where(per_million, qty / 1e6, qty)
    cost = usage["cost_usd"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit_price = np.where(pricing_qty > 0, cost / pricing_qty, 0.0)
    sku = provider + ":" + model + ":" + usage["token_type"]
    out = pd.DataFrame({
        "BilledCost": cost, "BillingAccountId": f"tfysim:{scenario}", "BillingAccountName": scenario,
        "BillingCurrency": "USD", "BillingPeriodEnd": iso(bill_end), "BillingPeriodStart": iso(bill_start),
        "ChargeCategory": "Usage", "ChargeClass": None,
        "ChargeDescription": (meter + " of " + model + " (" + candidate + ")").to_numpy(),
        "ChargeFrequency": "Usage-Based", "ChargePeriodEnd": iso(end), "ChargePeriodStart": iso(start),
        "ConsumedQuantity": qty, "ConsumedUnit": unit.to_numpy(), "ContractedCost": cost,
        "ContractedUnitPrice": unit_price, "EffectiveCost": cost, "InvoiceIssuerName": provider.to_numpy(),
        "ListCost": cost, "ListUnitPrice": unit_price, "PricingCategory": "Standard", "PricingCurrency": "USD",
        "PricingQuantity": pricing_qty, "PricingUnit": np.where(per_million, "1M Tokens", "Requests"),
        "ProviderName": provider.to_numpy(), "PublisherName": provider.to_numpy(),
        "ServiceCategory": "AI and Machine Learning", "ServiceName": (provider + " models").to_numpy(),
        "ServiceProviderName": provider.to_numpy(), "ServiceSubcategory": "Generative AI", "SkuId": sku.to_numpy(),
        "SkuMeter": meter.to_numpy(),
        "SkuPriceDetails": [json.dumps({"ModelDeveloper": p, "ModelId": m, "TokenType": t}, sort_keys=True)
                            for p, m, t in zip(provider, model, usage["token_type"])],
        "SkuPriceId": sku.to_numpy(), "SubAccountId": account.to_numpy(), "SubAccountName": account.to_numpy(),
        "Tags": [json.dumps({"workflow": w}, sort_keys=True) for w in usage["workflow"]],
        "x_Scenario": scenario, "x_Candidate": candidate, "x_Workflow": usage["workflow"].to_numpy(),
        "x_ModelId": model_id.to_numpy(), "x_TokenType": usage["token_type"].to_numpy(),
    }, index=range(n))
    return out[list(FOCUS_COLUMNS)]


class FocusUsage:
    """A replay observer: the usage tables of the baseline and every candidate, summed over chunks (every engine
    that replays in chunks can write FOCUS rows)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pd.DataFrame]] = {}
        self.provider_of: dict[str, str] = {}

    def __call__(self, p, base, outcomes) -> None:
        for name, outcome in [("baseline", base)] + [(o.name, o) for o in outcomes]:
            self.parts.setdefault(name, []).append(outcome_usage(p, outcome))
        for m in p.vocab:
            if m not in self.provider_of:
                self.provider_of[m] = p.catalog.resolve(m).provider_id or ""

    def frame(self, scenario: str) -> pd.DataFrame:
        """FOCUS rows: the baseline (recorded routing), then each candidate in scenario order."""
        order = {k: i for i, k in enumerate(TOKEN_TYPES)}
        frames = []
        for name, parts in self.parts.items():
            usage = pd.concat(parts, ignore_index=True).groupby(
                ["model_id", "workflow", "day", "token_type"], sort=False, as_index=False)[["quantity", "cost_usd"]].sum()
            usage["_order"] = usage["token_type"].map(order)
            usage = usage.sort_values(["day", "model_id", "workflow", "_order"], kind="stable").drop(columns="_order")
            frames.append(focus_frame(usage.reset_index(drop=True), scenario, name, self.provider_of))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FOCUS_COLUMNS))


def write_focus(path: str | Path, usage: FocusUsage, scenario: str) -> Path:
    """Write the FOCUS rows of a run as CSV (Parquet when the name ends in .parquet)."""
    from simulator.outputs.files import write_parquet, write_text

    frame = usage.frame(scenario)
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return write_parquet(path, frame)
    return write_text(path, frame.to_csv(index=False, float_format="%.17g", lineterminator="\n"))
