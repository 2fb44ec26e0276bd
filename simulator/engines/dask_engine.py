"""Dask engine: the one replay core run per partition on a Dask cluster; the same outputs as the local engine.

1. **Read** each Parquet row group, or each CSV / JSON Lines / JSON file, adapt and validate it
   (:func:`simulator.io.traffic.normalize`) on a worker. A request id repeated across them keeps the copy the local
   engine keeps (earliest timestamp, then request id, content, source, row). Consecutive ones are joined into one
   partition per worker thread, kept in cluster memory: every later step is one task per worker.
2. **Facts** (:mod:`simulator.facts`) are gathered per partition and merged on the client, then sent to every task
   once (one graph key), with the token calibration, the eval samples and the premium models.
3. **Baseline and stateless candidates** (no rate limits, budgets or prompt caching) are replayed per partition with
   :func:`simulator.core.replay_chunk`.
4. **Stateful candidates**: the rows are shuffled so that each partition holds whole state components
   (:mod:`simulator.engines.components`: rows sharing a rate-limit slot, budget slots or a cached prefix), each
   partition is sorted by (timestamp, request_id) and replayed by the same core with fresh state (every partition
   in slices of :data:`simulator.api.REPLAY_CHUNK_ROWS` rows, the state carried); per-key state
   reports merge because partitions hold disjoint keys. A global budget or rate limit makes one component of all
   the rows it covers: that candidate's stateful replay then runs on one worker. With control-room panels every
   candidate is replayed after one shuffle by all the state keys and the panels' (sessions, workflows, projects),
   and each partition's :class:`~simulator.control.room.ControlRoom` observes every replay; the rooms merge.
5. **Aggregates** are merged from partition partials (:mod:`simulator.summary.accumulate`); latency percentiles are
   exact without moving the values (a histogram of the top bits, then the values of the target bins).

Counts, labels, orders, budget and rate-limit decisions equal the local engine's; money totals are summed per
partition, so they can differ in the last bits. Per-request outputs (``--write-requests``) are not written by this
engine.
"""

from __future__ import annotations

import logging
import operator
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.api import REPLAY_CHUNK_ROWS, RunResult, catalog_for, resolve_candidates
from simulator.core import CandidateState, Chunk, Context, identity_outcome, replay_chunk
from simulator.engines.driver import CacheVariants, Pass, conclude, prepare
from simulator.errors import InputError, ScenarioError
from simulator.facts import FactsBuilder, model_latencies
from simulator.hashing import hash64
from simulator.io.readers import detect_format, expand_paths
from simulator.io.traffic import request_ids, time_order
from simulator.routing.scenario import Scenario, load_scenario
from simulator.routing.tiers import TierSettings
from simulator.summary import weekly
from simulator.summary.accumulate import (BaselineAccumulator, Breakdowns, FixedQuantiles, PolicyAccumulator,
                                          attribution, block_keys, day_labels, histogram, in_bins,
                                          merged_percentiles)
from simulator.summary.plan import Overlaps

_REJECT_COLUMNS = ["source", "row", "request_id", "reason"]


def run_dask(scenario: Scenario | str | Path, *, traffic=None, evals=None, scheduler: str | None = None,
             client=None, observers=(), previous: str | Path | None = None) -> RunResult:
    """Replay the scenario's traffic on a Dask cluster; ``summary`` matches :func:`simulator.api.run`'s.

    ``scheduler``: address of an existing scheduler (``tcp://host:8786``); without it a local cluster of 2 worker
    threads in this process (:func:`local_cluster`) is started and closed. ``client``: an open
    ``distributed.Client`` to use instead.
    """
    if observers:
        raise ScenarioError("per-request outputs (--write-requests, --focus-out) are not written by the Dask engine. "
                            "Use --engine local or --engine streaming for them.")
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    candidates = resolve_candidates(scenario)
    paths = list(traffic) if traffic else scenario.paths("traffic")
    if not paths:
        raise InputError("no traffic given: name files in the scenario's traffic: or with --traffic PATH.")
    files = expand_paths(list(paths))
    eval_paths = list(evals) if evals else scenario.paths("evals")
    before = (str(previous), weekly.read_previous(previous)) if previous else None
    if client is not None:
        return _run(scenario, candidates, files, eval_paths, client, before)
    import dask
    from distributed import Client

    if scheduler:
        with Client(scheduler) as own:
            return _run(scenario, candidates, files, eval_paths, own, before)
    with dask.config.set(_QUIET_CLUSTER), local_cluster() as cluster, Client(cluster) as own:
        return _run(scenario, candidates, files, eval_paths, own, before)


def local_cluster():
    """The cluster tfysim starts without ``scheduler`` or ``client``: 2 workers of 1 thread each, as threads of this
    process (``processes=False``: in-process transport, rows handed over without pickling). Worker processes would
    each start Python, import tfysim and load the numba kernels again, and every shuffle would pickle its rows
    between processes: measured at 1 M rows that costs more than the two threads lose to the GIL (README "Dask").
    The scheduler and workers still open their HTTP endpoints (health, metrics); they listen on 127.0.0.1 only.
    No memory limit (``memory_limit=0``, as the local engine has none): both workers would measure the whole
    process's RSS against half the machine's memory each, and pause or spill at about half what worker processes
    would."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, worker_dashboard_address="127.0.0.1:0",
                        memory_limit=0, silence_logs=logging.ERROR)


#: Settings of the local cluster tfysim starts. The workers' statistical profiler (a stack sample every 10 ms) and
#: the system monitor (CPU, disk and network counters read from /proc twice a second) feed a dashboard this cluster
#: does not have; measured at 1 M rows they cost each worker about 4% of a core for the whole run. The memory
#: monitor (spilling, pausing) is off: the workers have no memory limit (see local_cluster).
_QUIET_CLUSTER = {"distributed.worker.profile.enabled": False,
                  "distributed.admin.system-monitor.interval": "60s",
                  "distributed.admin.system-monitor.disk": False,
                  "distributed.admin.system-monitor.gil.enabled": False}


# -- reading ----------------------------------------------------------------------------------------------------
def _partitions(files: list[Path]) -> list[tuple[str, int | None]]:
    """(file, Parquet row group) per partition; other formats are one partition per file."""
    import pyarrow.parquet as pq

    parts: list[tuple[str, int | None]] = []
    for f in files:
        if detect_format(f) == "parquet" and f.suffix.lower() != ".gz":
            try:
                groups = pq.ParquetFile(f).num_row_groups
            except Exception:  # noqa: BLE001 - the reader reports an unreadable file with a proper message
                groups = 0
            if groups > 1:
                parts += [(str(f), g) for g in range(groups)]
                continue
        parts.append((str(f), None))
    return parts


def _load(part: tuple[str, int | None], plan: dict) -> dict:
    """Read, adapt and validate one partition as the local engine reads a file (:func:`normalize_raw`): the
    normalised rows and what was rejected."""
    from simulator.engines.chunks import read_row_group
    from simulator.io.adapters import collect_notes
    from simulator.io.readers import read_any
    from simulator.io.traffic import normalize_raw

    path, group = Path(part[0]), part[1]
    with collect_notes() as notes:
        raw = read_any(path) if group is None else read_row_group(path, group)
        rejects = [{"source": str(path), "row": r["row"], "request_id": None, "reason": r["reason"]}
                   for r in raw.rejects]
        good, bad = None, []
        if raw.num_rows:
            good, bad = normalize_raw(raw, adapter=plan["adapter"], mapping=plan["mapping"], where=str(path),
                                      timezone=plan["timezone"], now=plan["now"])
    return {"frame": good, "rejects": rejects + bad, "rows_read": raw.rows_read, "notes": notes}


def _id_hashes(loaded: dict) -> np.ndarray:
    f = loaded["frame"]
    if f is None:
        return np.zeros(0, np.uint64)
    return hash64(request_ids(f), 0, "request_id")  # as streaming's duplicate set keys ids


def _copies(loaded: dict, h: np.ndarray, repeated: np.ndarray, part: int) -> pd.DataFrame:
    """The rows of a partition whose id hash (``h``: :func:`_id_hashes`) repeats across partitions, with what
    decides which copy is kept."""
    f = loaded["frame"]
    if f is None or not len(repeated):
        return pd.DataFrame(columns=["part", "pos", "hash", "ts", "request_id", "content"])
    pos = np.flatnonzero(np.isin(h, repeated))
    sub = f.iloc[pos]
    content = pd.util.hash_pandas_object(sub.astype(object).astype(str), index=False).to_numpy()
    return pd.DataFrame({"part": part, "pos": pos, "hash": h[pos], "ts": sub["timestamp"].array.asi8,
                         "request_id": sub["request_id"].to_numpy(dtype=object), "content": content})


def _drop(loaded: dict, positions: np.ndarray) -> dict:
    if not len(positions):
        return loaded
    f = loaded["frame"]
    dropped = f.iloc[positions]
    keep = np.ones(len(f), bool)
    keep[positions] = False
    rejects = loaded["rejects"] + [{"source": "traffic", "row": None, "request_id": rid,
                                    "reason": "duplicate request_id (an earlier row has the same id)"}
                                   for rid in dropped["request_id"].to_numpy(dtype=object)]
    return {**loaded, "frame": f[keep].reset_index(drop=True), "rejects": rejects}


# -- worker-side context ------------------------------------------------------------------------------------------
_WORKER_CONTEXT: dict[int, tuple[str, Context]] = {}


def _context(plan: dict) -> Context:
    """One replay context per worker thread and run (tokenizers and prices load once per worker). Per thread, not
    per process: a context is changed while in use (the caching sensitivity swaps its translator), and the workers of
    an in-process cluster are threads of one process."""
    token, thread = plan["token"], threading.get_ident()
    held = _WORKER_CONTEXT.get(thread)
    if held is None or held[0] != token:  # an earlier run's context is not needed any more
        from simulator.tokens.translator import Translator

        translator = Translator(plan["scenario"], plan.get("eval_samples"), plan["calibration"])
        ctx = Context(plan["catalog"], plan["facts"], seed=plan["scenario"].seed,
                      outages=tuple(plan["scenario"].outages), translator=translator,
                      tiers=TierSettings.of(plan["scenario"]), vocab=plan["vocab"])
        held = _WORKER_CONTEXT[thread] = (token, ctx)
    return held[1]


def _facts(loaded: dict, plan: dict) -> FactsBuilder:
    from simulator.tokens.translator import Translator

    builder = FactsBuilder(Translator(plan["scenario"]).registry, plan["want_prompts"], latency_values=False)
    if loaded["frame"] is not None:
        builder.add(loaded["frame"])
    builder.registry = None  # tokenizers stay on the worker; the client counts the (bounded) calibration sample
    return builder


def _latencies_of(loaded: dict, model: str) -> np.ndarray:
    f = loaded["frame"]
    if f is None:
        return np.zeros(0)
    return model_latencies(f, model)


# -- replay -------------------------------------------------------------------------------------------------------
class Partial:
    """What one partition adds to the summary: accumulators, carried-state reports, latency values kept here."""

    def __init__(self, plan: dict) -> None:
        self.overlaps = None
        self.base: BaselineAccumulator | None = None
        self.breakdowns = Breakdowns(len(plan["candidates"]))
        self.accs: dict[int, PolicyAccumulator] = {}
        self.states: dict[int, CandidateState] = {}
        self.variants: dict[int, CacheVariants] = {}
        self.room = None  # the control room of the panel pass's partition (simulator.control.room.ControlRoom)

    def light(self) -> Partial:
        """A copy without latency values (what the client gathers)."""
        import copy

        out = copy.copy(self)
        out.breakdowns = copy.copy(self.breakdowns).without_row_codes()
        if self.base is not None:
            out.base = copy.copy(self.base)
            out.base.latency = None
        out.accs = {}
        for k, acc in self.accs.items():
            out.accs[k] = copy.copy(acc)
            out.accs[k].latency = None
        return out

    def latency(self, k: int | None) -> np.ndarray:
        acc = self.base if k is None else self.accs.get(k)
        return acc.latency.values() if acc is not None else np.zeros(0)


def _replay_partition(loaded: dict, plan: dict, ks: list[int], with_baseline: bool, room: bool = False) -> Partial:
    """The core over one partition: baseline and the candidates ``ks`` (fresh state; the partition holds whole
    state components), in time-ordered slices of :data:`simulator.api.REPLAY_CHUNK_ROWS` rows with the state carried
    from slice to slice, as the local engine replays its table. ``room``: the control-room panels observe the
    slices (``ks`` is then every candidate, the partition holds whole panel components too)."""
    out = Partial(plan)
    f = loaded["frame"]
    if f is None or len(f) == 0:
        return out
    ctx = _context(plan)
    scenario = plan["scenario"]
    n_written = plan.get("n_written", len(plan["candidates"]))
    for k in ks:
        cand = plan["candidates"][k]
        out.states[k] = CandidateState(cand, ctx, probe=k >= n_written)
        out.accs[k] = PolicyAccumulator(plan["premium"], None)
        if cand.prompt_caching and k < n_written:  # as the driver: no sensitivity replays for probes
            out.variants[k] = CacheVariants(cand, ctx)
    if room:
        import copy

        out.room = copy.deepcopy(plan["room"])  # a fresh room (the outcome table read once, on the client)
    if with_baseline:
        if not plan.get("baseline_done"):
            out.base = BaselineAccumulator(plan["premium"], None)
        if plan.get("overlap_names") is not None:
            out.overlaps = Overlaps(plan["overlap_names"])
    for start in range(0, len(f), REPLAY_CHUNK_ROWS):
        piece = f if len(f) <= REPLAY_CHUNK_ROWS else f.iloc[start:start + REPLAY_CHUNK_ROWS].reset_index(drop=True)
        p = Chunk(piece, ctx)
        days = day_labels(p.ts)
        base = identity_outcome(p)
        block = block_keys(p, scenario.bootstrap.unit, plan["facts"].ts_min)
        if with_baseline:
            if out.base is not None:
                out.base.add(p, base, days, block)
            out.breakdowns.add_baseline(p, base)
            if out.overlaps is not None:
                out.overlaps.add(p, plan["candidates"])
        workflow = attribution(p.frame, "workflow_tag")
        outcomes = []
        for k in ks:
            cand = plan["candidates"][k]
            o = replay_chunk(p, cand, out.states[k])
            out.accs[k].add(p, o, base.cost_usd, block, days, workflow, ctx.translator, cand.name)
            if k in out.variants:
                out.variants[k].replay(p, cand)
            out.breakdowns.add_candidate(k, o, None if with_baseline else p)
            if out.room is not None and k < n_written:
                outcomes.append(o)
        if out.room is not None:
            out.room.observe(p, base, outcomes)
    for k in ks:  # the partition is done: only the sums travel
        for state in [out.states[k], *(out.variants[k].states.values() if k in out.variants else ())]:
            if state.cache is not None:
                state.cache.release()
    return out


def _anchors(loaded: dict, plan: dict, ks: list[int], panels: bool = False) -> tuple:
    """:func:`simulator.engines.components.anchors` of one partition under the candidates ``ks`` (their state keys;
    ``panels``: the control-room panels' keys too), kept on the worker for :func:`_split`."""
    from simulator.engines.components import Rows, anchors, merged_keys, panel_keys, row_keys, state_keys

    f = loaded["frame"]
    if f is None:
        return anchors(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype=object))
    rows = Rows(f)
    distinct = {state_keys(plan["candidates"][k]): k for k in reversed(ks)}  # the first candidate of each
    keys = [row_keys(rows, plan["candidates"][k]) for k in sorted(distinct.values())]
    if panels:
        keys.append(panel_keys(rows, plan["scenario"]))
    return anchors(*(keys[0] if len(keys) == 1 else merged_keys(*keys)))


def _targets(loaded: dict, found: tuple, anchor_part: dict[str, int], own: int, n_parts: int) -> np.ndarray | None:
    """Partition of every row of one partition under a candidate's components (kept on the worker and reused by
    every candidate with the same :func:`~simulator.engines.components.state_keys`)."""
    from simulator.engines.components import targets

    f = loaded["frame"]
    return None if f is None else targets(len(f), found[0], found[1], found[4], anchor_part, own, n_parts)


def _split(loaded: dict, target: np.ndarray | None, n_parts: int) -> list:
    f = loaded["frame"]
    if f is None:
        return [None] * n_parts
    order = np.argsort(target, kind="stable")
    bounds = np.searchsorted(target[order], np.arange(n_parts + 1))
    return [f.take(order[bounds[j]:bounds[j + 1]]) for j in range(n_parts)]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one table stacked; a label column stays categorical over the union of the frames' labels (sorted:
    the same categories whichever frames meet), so the replay keeps working on integer codes."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    frames = [f.copy(deep=False) for f in frames]
    for name, dtype in frames[0].dtypes.items():
        if not isinstance(dtype, pd.CategoricalDtype):
            continue
        labels = [f[name].cat.categories for f in frames]
        if any(not x.equals(labels[0]) for x in labels[1:]):
            union = pd.Index(sorted(set().union(*labels)))
            for f in frames:
                f[name] = f[name].cat.set_categories(union)
    return pd.concat(frames, ignore_index=True)


def _gather(pieces: list) -> dict:
    frames = [x for x in pieces if x is not None and len(x)]
    if not frames:
        return {"frame": None}
    f = _concat(frames)
    order = time_order(f["timestamp"].array.asi8, request_ids(f))
    return {"frame": f.take(order).reset_index(drop=True)}


def _counts(loaded: dict) -> tuple[int, list[dict], int, list[str]]:
    """(valid rows, rejects, rows read, notes) of one read partition."""
    rows = 0 if loaded["frame"] is None else len(loaded["frame"])
    return rows, loaded["rejects"], loaded["rows_read"], loaded["notes"]


def _coalesce(*parts: dict) -> dict:
    """Several read partitions as one, in their order (a pass then has one task per worker, not per row group)."""
    frames = [x["frame"] for x in parts if x["frame"] is not None and len(x["frame"])]
    return {"frame": _concat(frames) if frames else None}


def _groups(rows: list[int], n: int) -> list[list[int]]:
    """``rows`` (rows per partition) cut into at most ``n`` runs of consecutive partitions with about equal rows."""
    total = sum(rows)
    if n <= 1 or total == 0:
        return [list(range(len(rows)))]
    groups: list[list[int]] = [[]]
    done = 0
    for i, r in enumerate(rows):
        if groups[-1] and done + r / 2 > total * len(groups) / n and len(groups) < n:
            groups.append([])
        groups[-1].append(i)
        done += r
    return groups


# -- the run ------------------------------------------------------------------------------------------------------
def _run(scenario: Scenario, candidates: list, files: list[Path], eval_paths: list, client,
         previous: tuple[str, dict] | None = None) -> RunResult:
    import dask
    from dask import delayed

    catalog = catalog_for(scenario)
    plan0 = {"scenario": scenario, "adapter": scenario.adapter_options(), "mapping": scenario.columns or None,
             "timezone": scenario.timezone, "now": pd.Timestamp.now(tz="UTC"), "want_prompts": bool(eval_paths)}
    plan0_d = delayed(plan0, traverse=False)
    parts = _partitions(files)
    loaded = list(dask.persist(*[delayed(_load)(part, plan0_d) for part in parts]))
    loaded = _deduplicate(loaded)
    rows, raw_rejects, rows_read, part_notes = zip(*dask.compute(*[delayed(_counts)(x) for x in loaded]))
    threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    groups = _groups(list(rows), max(1, threads))
    frames = loaded if len(groups) == len(loaded) else list(dask.persist(
        *[delayed(_coalesce)(*[loaded[i] for i in g]) for g in groups]))
    del loaded  # the cluster keeps the coalesced partitions only
    builders = dask.compute(*[delayed(_facts)(x, plan0_d) for x in frames])
    builder = builders[0]
    for other in builders[1:]:
        builder.merge(other)
    if builder.n == 0:
        top = next((r[0]["reason"] for r in raw_rejects if r), "no rows")
        raise InputError(f"{', '.join(map(str, files))}: no valid rows (e.g. {top}).")
    medians = {}
    for m, sums in builder.lat.items():
        if sums.needs_median:
            medians[m] = _percentiles([delayed(_latencies_of)(x, m) for x in frames], [50])[0]
    from simulator.tokens.translator import Translator

    translator = Translator(scenario)
    builder.registry = translator.registry  # counts the calibration sample's reference tokens
    facts = builder.finish(medians)
    setup = prepare(scenario, candidates, catalog, facts, eval_paths, translator)
    ctx, levers, eval_data = setup.ctx, setup.levers, setup.eval_data
    everything = levers.candidates
    from simulator.control.room import ControlRoom, wanted

    plan = {"token": uuid.uuid4().hex, "scenario": scenario, "catalog": catalog, "facts": facts, "vocab": ctx.vocab,
            "calibration": translator.calibration, "eval_samples": eval_data.samples if eval_data else None,
            "candidates": everything, "n_written": len(candidates), "premium": setup.premium,
            "overlap_names": levers.overlaps.names,
            "room": ControlRoom(scenario, len(candidates)) if wanted(scenario) else None}
    shuffles: dict[str, list] = {}  # state keys -> row targets per partition, shared by the main and plan passes
    rooms: list = []
    main = _replay_all(client, frames, plan, with_baseline=True, shuffles=shuffles, rooms=rooms)
    room = rooms[0] if rooms else None
    main.states = [s if s is not None else CandidateState(cand, ctx, probe=levers.is_probe(k))
                   for k, (s, cand) in enumerate(zip(main.states, everything))]
    if main.overlaps is not None:
        levers.overlaps.merge(main.overlaps)
    rejects = pd.DataFrame([r for x in raw_rejects for r in x], columns=_REJECT_COLUMNS)
    rejects = rejects.sort_values(["source", "row"], kind="stable", na_position="last").reset_index(drop=True)
    reasons = {str(k): int(v) for k, v in rejects["reason"].astype(str).value_counts(sort=False).items()}
    notes: list[str] = []
    for got in part_notes:
        notes += [n for n in got if n not in notes]

    def replay_plan(cand):
        done = _replay_all(client, frames, {**plan, "token": uuid.uuid4().hex, "candidates": [cand], "n_written": 1,
                                            "overlap_names": None, "baseline_done": True, "room": None},
                           with_baseline=True, shuffles=shuffles)
        done.states = [s if s is not None else CandidateState(cand, ctx) for s in done.states]
        return done

    rows_read = int(sum(rows_read))
    counts = {"rows_read": rows_read, "rows_replayed": facts.n, "rows_rejected": len(rejects)}
    summary = conclude(scenario, candidates, setup, main, counts, reasons, notes, replay_plan, previous, room)
    return RunResult(scenario, summary, rejects, rows_read, len(rejects), engine="dask")


def _replay_all(client, loaded: list, plan: dict, with_baseline: bool, shuffles: dict[str, list],
                rooms: list | None = None) -> Pass:
    """Every candidate of ``plan`` over the persisted partitions: stateless ones per partition, stateful ones after
    a shuffle by state component (one per distinct :func:`~simulator.engines.components.state_keys`; ``shuffles``
    keeps each one's row targets per partition for later passes, e.g. the plan's); the partials merged on the client
    (latency percentiles exact). With the control-room panels (``plan["room"]``) every candidate is replayed after
    one shuffle by all their state keys and the panels' (:func:`~simulator.engines.components.panel_keys`), so each
    partition's room sees every replay of whole sessions, workflows and projects; the rooms merged are appended to
    ``rooms``."""
    import dask
    from dask import delayed

    from simulator.engines.components import Components, state_keys

    candidates = plan["candidates"]
    premium = plan["premium"]
    plan_d = client.scatter(plan, broadcast=True, hash=False)  # sent to every worker once
    panels = plan.get("room") is not None
    stateful = [k for k, c in enumerate(candidates)
                if panels or c.rate_limits or c.budgets or c.prompt_caching or c.kill_runaway_sessions]
    stateless = [k for k in range(len(candidates)) if k not in stateful]
    # a pass of stateful candidates only whose baseline was accumulated before (the plan's) adds the baseline
    # breakdowns in its first shuffled replay instead of in a pass of its own
    baseline_later = (with_baseline and bool(stateful) and not stateless and bool(plan.get("baseline_done"))
                      and plan.get("overlap_names") is None)
    partials = [] if baseline_later else list(
        dask.persist(*[delayed(_replay_partition)(x, plan_d, stateless, with_baseline) for x in loaded]))
    n_parts = len(loaded)
    groups: dict[str, list[int]] = {}  # candidates with the same state keys share one shuffle and one replay
    for k in stateful:
        groups.setdefault("panels" if panels else state_keys(candidates[k]), []).append(k)
    if panels:
        groups.setdefault("panels", [])  # the panels' pass even without candidates
    for i, (keys, ks) in enumerate(groups.items()):
        if keys not in shuffles:
            found = dask.persist(*[delayed(_anchors)(x, plan_d, ks, panels) for x in loaded])
            links = dask.compute(*[delayed(operator.getitem)(x, slice(2, 4)) for x in found])
            anchor_part = Components().assign([e for e, _ in links], [c for _, c in links], n_parts)
            # in a list: scatter spreads a dict's items (and fails on an empty one)
            anchor_d = client.scatter([anchor_part], broadcast=True, hash=False)[0]
            shuffles[keys] = list(dask.persist(*[delayed(_targets)(x, a, anchor_d, j, n_parts)
                                                 for j, (x, a) in enumerate(zip(loaded, found))]))
        split = [delayed(_split)(x, t, n_parts) for x, t in zip(loaded, shuffles[keys])]
        shuffled = [delayed(_gather)([delayed(operator.getitem)(s, j) for s in split]) for j in range(n_parts)]
        partials += list(dask.persist(*[delayed(_replay_partition)(x, plan_d, ks, baseline_later and i == 0, panels)
                                        for x in shuffled]))
    light = dask.compute(*[delayed(Partial.light)(x) for x in partials])
    base = BaselineAccumulator(premium, None)
    breakdowns = Breakdowns(len(candidates))
    accs = [PolicyAccumulator(premium, None) for _ in candidates]
    states: list[CandidateState | None] = [None] * len(candidates)
    variants: dict[int, CacheVariants] = {}
    overlaps = room = None
    for part in light:
        if part.room is not None:
            room = part.room if room is None else room.merge(part.room)
        for k, v in part.variants.items():
            variants[k] = v if k not in variants else variants[k].merge(v)
        if part.base is not None:
            base.merge(part.base)
        if part.overlaps is not None:
            overlaps = part.overlaps if overlaps is None else overlaps.merge(part.overlaps)
        breakdowns.merge(part.breakdowns)
        for k, acc in part.accs.items():
            accs[k].merge(acc)
            states[k] = part.states[k] if states[k] is None else states[k].merge(part.states[k])
    if not plan.get("baseline_done"):
        base.latency = FixedQuantiles(_percentiles([delayed(Partial.latency)(x, None) for x in partials], [50, 95]))
    for k, acc in enumerate(accs):
        acc.latency = FixedQuantiles(_percentiles([delayed(Partial.latency)(x, k) for x in partials], [50, 95]))
    if rooms is not None and room is not None:
        rooms.append(room)
    return Pass(base, accs, states, breakdowns, overlaps, variants)


def _deduplicate(loaded: list) -> list:
    """Drop copies of a request id found in several partitions, keeping the copy the local engine keeps."""
    import dask
    from dask import delayed

    # A partition's ids are distinct (the reader rejects repeats within it), so a hash found twice is in two
    # partitions, or two ids share a 64-bit hash: their copies below compare the ids themselves.
    hashes = dask.persist(*[delayed(_id_hashes)(x) for x in loaded])
    got = dask.compute(*hashes)
    values, parts = np.unique(np.concatenate(got) if got else np.zeros(0, np.uint64), return_counts=True)
    del got
    repeated = values[parts > 1]
    if not len(repeated):
        return loaded
    copies = pd.concat(dask.compute(*[delayed(_copies)(x, h, repeated, i)
                                      for i, (x, h) in enumerate(zip(loaded, hashes))]), ignore_index=True)
    copies = copies.sort_values(["request_id", "ts", "content", "part", "pos"], kind="stable")
    losers = copies[copies.duplicated("request_id", keep="first")]
    out = []
    for i, x in enumerate(loaded):
        positions = np.sort(losers.loc[losers["part"] == i, "pos"].to_numpy(dtype=np.int64))
        out.append(delayed(_drop)(x, positions) if len(positions) else x)
    return list(dask.persist(*out))


def _percentiles(sources: list, qs: list[float]) -> list[float | None]:
    """Exact percentiles of values held by tasks (``sources``: delayed arrays), moving only two small summaries."""
    import dask
    from dask import delayed

    hists = dask.compute(*[delayed(histogram)(s) for s in sources])

    def fetch(wanted: np.ndarray) -> np.ndarray:
        got = dask.compute(*[delayed(in_bins)(s, wanted) for s in sources])
        return np.concatenate(got) if got else np.zeros(0)

    return merged_percentiles(list(hists), fetch, qs)


__all__ = ["local_cluster", "run_dask"]
