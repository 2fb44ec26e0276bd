"""Small builders for tests: traffic tables from records, scenarios from dicts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from simulator.pricing.catalog import Catalog
from simulator.core import Prepared
from simulator.routing.scenario import parse_scenario
from simulator.io.traffic import Traffic, normalize


def traffic(records: list[dict[str, Any]]) -> Traffic:
    raw = pd.DataFrame.from_records(records)
    raw["_source"] = "test"
    raw["_row"] = range(1, len(raw) + 1)
    frame, rejects = normalize(raw)
    assert not rejects, rejects
    return Traffic(frame, pd.DataFrame(rejects, columns=["source", "row", "request_id", "reason"]), len(raw), ["test"])


def scenario(candidates: list[dict[str, Any]], **extra: Any):
    return parse_scenario({"name": "t", "candidates": candidates, **extra}, "test.yaml", ".")


def prepared(records: list[dict[str, Any]], **kwargs: Any) -> Prepared:
    return Prepared(traffic(records), Catalog(), **kwargs)


def req(i: int, ts: str, model: str = "openai-main/gpt-4o", inp: int = 1_000_000, out: int = 0, **kw: Any) -> dict:
    return {"request_id": f"r{i:05d}", "timestamp": ts, "model": model, "input_tokens": inp, "output_tokens": out,
            **kw}
