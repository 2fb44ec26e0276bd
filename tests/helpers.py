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


class Captured:
    """A run with its per-request arrays kept: the replay observer sees the whole table as one chunk (the local
    engine), so ``prepared`` and ``outcomes`` are that chunk and each candidate's outcome over it."""

    def __init__(self, scenario, **kwargs: Any) -> None:
        from simulator.api import run

        self.chunks: list = []
        self.result = run(scenario, observers=[lambda p, base, outcomes: self.chunks.append((p, base, outcomes))],
                          **kwargs)
        assert len(self.chunks) == 1, "the local engine replays a loaded table as one chunk"
        self.summary = self.result.summary
        self.scenario = self.result.scenario

    prepared = property(lambda self: self.chunks[0][0])
    baseline = property(lambda self: self.chunks[0][1])
    outcomes = property(lambda self: self.chunks[0][2])
