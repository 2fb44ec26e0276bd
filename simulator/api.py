"""The library API behind the CLI: ``run`` a scenario, ``identity_replay`` traffic. No click in here.

``run`` is the local engine: the traffic is loaded and validated in memory (any input order, exact duplicate
detection), then replayed by the same driver the streaming engine uses (:mod:`simulator.engines.driver`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.engines.driver import InMemorySource, Observer, replay_source, spill_folder
from simulator.pricing.catalog import Catalog
from simulator.routing.scenario import Candidate, Scenario, load_scenario
from simulator.summary.build import DRIFT_FLAG_PCT, pricing_drift
from simulator.summary import metrics

SCHEMA_VERSION = 1


@dataclasses.dataclass
class RunResult:
    """What a run produced: summary.json, the rejected rows, and the row counts (every engine returns one)."""

    scenario: Scenario
    summary: dict[str, Any]
    rejects: pd.DataFrame
    rows_read: int
    rows_rejected: int
    engine: str = "local"

    @property
    def gates_passed(self) -> bool:
        return all(g["passed"] for p in self.summary["policies"] for g in p["gates"])


def catalog_for(scenario: Scenario | None, pricing: str | Path | None = None) -> Catalog:
    """The price catalog of a scenario (its overrides and models map), or of an overrides file."""
    if scenario is not None:
        return Catalog.load(scenario.path(scenario.pricing), scenario.models)
    return Catalog.load(pricing)


def identity_replay(traffic, catalog: Catalog) -> dict[str, Any]:
    """Reprice every request as recorded and compare with the recorded cost_usd, per model."""
    from simulator.core import Chunk, Context
    from simulator.facts import facts_of
    from simulator.summary.accumulate import BaselineAccumulator, day_labels
    from simulator.core import identity_outcome

    ctx = Context(catalog, facts_of(traffic.frame))
    p = Chunk(traffic, ctx)
    acc = BaselineAccumulator(set(), None)
    acc.add(p, identity_outcome(p), day_labels(p.ts))
    return {
        **traffic.counts(),
        "cost_usd": metrics.r6(acc.cost),
        "recorded_cost_usd": metrics.r6(acc.recorded) if acc.has_recorded else None,
        "drift_flag_pct": DRIFT_FLAG_PCT,
        "models": pricing_drift(acc, catalog),
    }


def resolve_candidates(scenario: Scenario) -> list[Candidate]:
    """Candidates with ``truefoundry_config:`` files read into rules/budgets/rate limits."""
    from simulator.control.room import resolve_kill

    out = []
    for cand in scenario.candidates:
        if cand.truefoundry_config:
            from simulator.routing.truefoundry_config import candidate_from_config

            cand = candidate_from_config(cand, scenario.path(cand.truefoundry_config))
        out.append(resolve_kill(cand, scenario))
    return out


#: Rows per slice of the loaded table in the local engine's replay (state is carried across slices as in streaming).
REPLAY_CHUNK_ROWS = 500_000


def run(
    scenario: Scenario | str | Path,
    *,
    traffic: Sequence[str | Path] | None = None,
    evals: Sequence[str | Path] | None = None,
    progress=None,
    observers: Iterable[Observer] = (),
    chunk_rows: int | None = None,
    previous: str | Path | None = None,
) -> RunResult:
    """Replay the scenario's traffic through its candidates in memory; returns summary.json and the rejects.

    ``progress(items, label)`` may wrap the candidate loop (the CLI passes a progress bar on a terminal);
    ``observers`` see every chunk's outcomes (per-request outputs); ``chunk_rows`` replays the loaded table in
    slices of that many rows (default :data:`REPLAY_CHUNK_ROWS`: the per-request arrays of the replay stay bounded
    while the table is in memory; the same figures); ``previous``: last week's summary.json, for the
    ``since_last_week`` section.
    """
    from simulator.io.adapters import collect_notes
    from simulator.io.traffic import load_traffic

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    before = None
    if previous:
        from simulator.summary.weekly import read_previous

        before = (str(previous), read_previous(previous))
    catalog = catalog_for(scenario)
    paths = list(traffic) if traffic else scenario.paths("traffic")
    with collect_notes() as notes:
        loaded = load_traffic(paths, adapter=scenario.adapter_options(), mapping=scenario.columns or None,
                              timezone=scenario.timezone)
    candidates = resolve_candidates(scenario)
    eval_paths = list(evals) if evals else scenario.paths("evals")
    with spill_folder(loaded.rows_replayed) as spill:
        source = InMemorySource(loaded, chunk_rows or REPLAY_CHUNK_ROWS, notes)
        replayed = replay_source(scenario, candidates, catalog, source, eval_paths, spill_dir=spill,
                                 observers=observers, progress=progress, previous=before)
    return RunResult(scenario, replayed.summary, loaded.rejects, loaded.rows_read, loaded.rows_rejected)
