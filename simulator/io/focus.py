"""Read FinOps FOCUS 1.2 billing data (CSV, JSON or Parquet, as cloud and gateway exports write it) as billed cost
per (provider, model, charge period).

Provider: ``x_ProviderId``, else ``ServiceProviderName``, else ``ProviderName`` (lower-cased). Model: ``x_ModelId``
(the part after ``/``), else ``SkuPriceDetails.ModelId``, else ``x_Model``. Only AI rows count
(``ServiceCategory`` "AI and Machine Learning" when the column exists) and only ``ChargeCategory`` "Usage" rows (when
it exists); a file with tfysim's ``x_Candidate`` column contributes its "baseline" rows only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError
from simulator.io.adapters.common import col, first, json_obj, number

BILLED_COLUMNS = ("provider", "model", "period_start", "period_end", "billed_cost_usd")


def _tail(value: object) -> object:
    return value.split("/", 1)[1] if isinstance(value, str) and "/" in value else value


def read_focus(path: str | Path) -> pd.DataFrame:
    """Billed cost per (provider, model, charge period start, end) of a FOCUS file (see the module docstring)."""
    from simulator.io.readers import read_any

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found.")
    raw = read_any(path).frame
    need = [c for c in ("BilledCost", "ChargePeriodStart") if c not in raw.columns]
    if not {"x_ProviderId", "ServiceProviderName", "ProviderName"} & set(raw.columns):
        need.append("ServiceProviderName or ProviderName")
    if not {"x_ModelId", "SkuPriceDetails", "x_Model"} & set(raw.columns):
        need.append("SkuPriceDetails (with ModelId) or x_ModelId")
    if need:
        shown = ", ".join(sorted(c for c in raw.columns if not c.startswith("_"))[:10])
        raise InputError(f"{path}: not FOCUS billing data with model detail: no {', '.join(need)} column "
                         f"(found: {shown}).")
    keep = np.ones(len(raw), dtype=bool)
    if "ServiceCategory" in raw.columns:
        keep &= (raw["ServiceCategory"].astype(object) == "AI and Machine Learning").to_numpy()
    if "ChargeCategory" in raw.columns:
        keep &= (raw["ChargeCategory"].astype(object) == "Usage").to_numpy()
    if "x_Candidate" in raw.columns:
        keep &= (raw["x_Candidate"].astype(object) == "baseline").to_numpy()
    f = raw[keep]
    details = col(f, "SkuPriceDetails").map(lambda d: (json_obj(d) or {}).get("ModelId"))
    out = pd.DataFrame({
        "provider": first(col(f, "x_ProviderId"), col(f, "ServiceProviderName"), col(f, "ProviderName"))
        .map(lambda p: str(p).strip().lower() if isinstance(p, str) else None),
        "model": first(col(f, "x_ModelId").map(_tail), details, col(f, "x_Model")),
        "period_start": pd.to_datetime(f["ChargePeriodStart"], utc=True, errors="coerce", format="ISO8601"),
        "period_end": pd.to_datetime(col(f, "ChargePeriodEnd"), utc=True, errors="coerce", format="ISO8601"),
        "billed_cost_usd": number(f["BilledCost"]),
    })
    bad = out["period_start"].isna() | out["billed_cost_usd"].isna() | out["model"].isna() | out["provider"].isna()
    if bad.any():
        first_bad = int(f["_row"].to_numpy()[np.flatnonzero(bad.to_numpy())[0]])
        raise InputError(f"{path} row {first_bad}: FOCUS row without a provider, model, ChargePeriodStart or numeric "
                         f"BilledCost ({int(bad.sum())} such rows). Fix or filter them before reconciling.")
    out["period_end"] = out["period_end"].fillna(out["period_start"] + pd.Timedelta(days=1))
    return out.groupby(["provider", "model", "period_start", "period_end"], as_index=False, sort=True)[
        "billed_cost_usd"].sum()
