"""Streaming engine: replay traffic of any size in bounded memory; the same summary.json as the local engine.

Time-ordered chunks are parsed once (:class:`simulator.engines.chunks.Stream`; later passes re-read the normalised
chunks from the spill folder): pass 1 gathers the facts
(:mod:`simulator.facts`), pass 2 replays every chunk through every candidate with the one replay core
(:func:`simulator.core.replay_chunk`), carrying budget spend, rate-limit windows and prompt-cache tables from chunk
to chunk, exactly as the local engine does over its in-memory table (:mod:`simulator.engines.driver`).

Memory: one chunk and its outcomes (and, in the replay passes, the next chunk, read ahead on a second thread), plus
per-slot, per-label and per-block state, the prompt-cache tables, the duplicate-id set (8-11 bytes per request) and,
with ``bootstrap.unit: session``, one sum per session. Latency values are spilled to disk for exact percentiles.
Totals are summed per chunk, so money totals can differ from the local engine in the last bits (float addition
order); with a single chunk they are identical.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from simulator.api import RunResult, catalog_for, resolve_candidates
from simulator.engines.chunks import ChunkSpill, Stream
from simulator.engines.driver import replay_source
from simulator.memory import steady_heap
from simulator.routing.scenario import Scenario, load_scenario
from simulator.summary.weekly import read_previous


class StreamSource:
    """A :class:`~simulator.engines.chunks.Stream` as the driver's chunk source."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def chunks(self):
        from simulator.io.adapters import collect_notes

        parsed = not self.stream.from_spill
        with collect_notes() as notes:
            yield from self.stream
        if parsed:  # a pass over spilled chunks reads no file: the notes are the first pass's
            self._notes = notes

    def counts(self) -> dict[str, int]:
        s = self.stream
        return {"rows_read": s.rows_read, "rows_replayed": s.rows_replayed, "rows_rejected": s.rows_rejected}

    def reject_reasons(self) -> dict[str, int]:
        return dict(self.stream.reject_reasons)

    def notes(self) -> list[str]:
        return list(getattr(self, "_notes", []))


def run_streaming(scenario: Scenario | str | Path, *, traffic=None, evals=None, chunk_rows: int = 1_000_000,
                  spill_dir: str | None = None, observers=(), previous: str | Path | None = None) -> RunResult:
    """Replay the scenario's traffic chunk by chunk; ``summary`` matches :func:`simulator.api.run`'s.

    ``chunk_rows``: rows per chunk read (memory is about chunk_rows x candidates x ~200 bytes plus state);
    ``spill_dir``: where latency values are spilled for exact percentiles (default: the system temp folder).
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    candidates = resolve_candidates(scenario)
    catalog = catalog_for(scenario)
    paths = list(traffic) if traffic else scenario.paths("traffic")
    eval_paths = list(evals) if evals else scenario.paths("evals")
    before = (str(previous), read_previous(previous)) if previous else None
    stream = Stream(paths, adapter=scenario.adapter_options(), mapping=scenario.columns or None,
                    timezone=scenario.timezone,
                    chunk_rows=chunk_rows)
    with tempfile.TemporaryDirectory(dir=spill_dir, prefix="tfysim-spill-") as spill, steady_heap():
        stream.spill = ChunkSpill(spill)
        replayed = replay_source(scenario, candidates, catalog, StreamSource(stream), eval_paths, spill_dir=spill,
                                 observers=observers, previous=before)
    return RunResult(scenario, replayed.summary, stream.rejects_frame(), stream.rows_read, stream.rows_rejected,
                     engine="streaming")
