"""The drift section: tokens per request per day behind virtual models served by several model versions."""

from __future__ import annotations

from typing import Any

import pandas as pd


def alias_drift_sums(requested, model, ts, inp, out, status) -> pd.DataFrame:
    """Per (virtual model, model, UTC day): requests and token sums of successful requests behind an alias.

    Partial sums add up across chunks, so both engines report the same drift section.
    """
    ok = (status < 400) & (requested != model)
    frame = pd.DataFrame({"virtual_model": requested[ok], "model": model[ok], "day": ts[ok] // (86_400 * 10**9),
                          "requests": 1, "inp": inp[ok], "out": out[ok]})
    return frame.groupby(["virtual_model", "model", "day"], sort=True)[["requests", "inp", "out"]].sum()


def alias_drift(sums: pd.DataFrame) -> dict[str, Any] | None:
    """Tokens per request per day for each virtual model served by more than one model version in the window.

    A provider release behind an alias (same prompts, new tokenizer) shows as a step in tokens per request.
    """
    if sums.empty:
        return None
    sums = sums.groupby(level=[0, 1, 2], sort=True).sum()
    versions = sums.reset_index().groupby("virtual_model")["model"].nunique()
    aliases = set(versions[versions > 1].index)
    rows = [{"virtual_model": alias, "model": model,
             "day": pd.Timestamp(int(day) * 86_400 * 10**9, tz="UTC").date().isoformat(),
             "requests": int(r["requests"]), "input_tokens_per_request": round(float(r["inp"] / r["requests"]), 1),
             "output_tokens_per_request": round(float(r["out"] / r["requests"]), 1)}
            for (alias, model, day), r in sums.iterrows() if alias in aliases]
    if not rows:
        return None
    return {"note": "virtual models served by several model versions: a step in tokens per request at a version "
                    "change with unchanged prompts is tokenizer drift (see `tfysim drift`)",
            "tokens_per_request_by_day": rows}
