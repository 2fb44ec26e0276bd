"""The one way through a run: facts (pass 1), then every chunk through every candidate (pass 2), then the summary.

Engines differ only in where chunks come from: the local engine hands over its in-memory table (as one chunk or in
slices), the streaming engine reads time-ordered chunks from disk twice. Both go through :func:`replay_source`; the
Dask engine runs the same core per partition (:mod:`simulator.engines.dask_engine`). Every engine sets up the replay
after the facts with :func:`prepare` and builds summary.json from its passes with :func:`conclude`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import pandas as pd

from simulator.core import CandidateState, Chunk, Context, check_candidate_targets, identity_outcome, replay_chunk
from simulator.engines.levers import Levers
from simulator.facts import Facts, FactsBuilder, model_latencies
from simulator.routing.scenario import Scenario
from simulator.routing.tiers import TierSettings
from simulator.summary import metrics, weekly
from simulator.summary.accumulate import (BaselineAccumulator, Breakdowns, PolicyAccumulator,
                                          attribution_keys, block_keys, day_labels)
from simulator.summary.build import build_summary, data_quality, policy_summary, pricing_drift, traffic_counts
from simulator.summary.quantiles import Quantiles
from simulator.tokens.translator import Translator

#: Observers see every chunk with all outcomes: fn(chunk, baseline, outcomes) (``--write-requests``, ``diff``).
Observer = Callable[[Chunk, Any, list], None]


class ChunkSource(Protocol):
    """Time-ordered, validated chunks of one traffic table; iterable once per pass."""

    def chunks(self) -> Iterator[pd.DataFrame]: ...

    def counts(self) -> dict[str, int]: ...

    def reject_reasons(self) -> dict[str, int]: ...

    def notes(self) -> list[str]: ...


@dataclasses.dataclass
class Replayed:
    """What a replay produced: summary.json and what the outputs need besides it."""

    scenario: Scenario
    summary: dict[str, Any]
    facts: Facts
    context: Context

    @property
    def gates_passed(self) -> bool:
        return all(g["passed"] for p in self.summary["policies"] for g in p["gates"])


def gather_facts(scenario: Scenario, source: ChunkSource, translator: Translator, want_prompts: bool,
                 spill_dir: str | None) -> Facts:
    """Pass 1 over the source. A model whose latency fit falls back to the median (few rows, one output length, a
    negative slope) has its latencies read in one more pass; no latency is kept for the others."""
    builder = FactsBuilder(translator.registry, want_prompts, latency_values=False)
    for frame in source.chunks():
        builder.add(frame)
    needing = sorted(m for m, sums in builder.lat.items() if sums.needs_median)
    medians = {}
    if needing:
        values = {m: Quantiles(spill_dir) for m in needing}
        for frame in source.chunks():
            for m in needing:
                values[m].add(model_latencies(frame, m))
        medians = {m: values[m].median() for m in needing}
        for q in values.values():
            q.close()
    return builder.finish(medians)


@dataclasses.dataclass
class Setup:
    """What every engine builds between the facts (pass 1) and the replay (pass 2)."""

    translator: Translator
    ctx: Context
    eval_data: Any  # simulator.evals.load.EvalLoad, or None without eval samples
    premium: set[str]
    levers: Levers


def prepare(scenario: Scenario, candidates: list, catalog, facts: Facts, eval_paths: list,
            translator: Translator) -> Setup:
    """Calibrate ``translator`` on the facts, build the replay context, check every candidate's targets (probes
    included), load the eval samples and find the premium models and the levers' probes."""
    from simulator.tokens import calibrate_from_rows

    translator.calibration = calibrate_from_rows(facts.calibration_rows)
    ctx = Context(catalog, facts, seed=scenario.seed, outages=tuple(scenario.outages), translator=translator,
                  tiers=TierSettings.of(scenario))
    for cand in candidates:
        check_candidate_targets(ctx, cand)
    eval_data = None
    if eval_paths:
        from simulator.evals.policy import load_evals

        eval_data = load_evals(eval_paths, ctx)
        translator.eval_samples = eval_data.samples
    premium = metrics.premium_models(catalog, ctx.vocab, facts.ts_min, scenario.premium_models)
    levers = Levers(scenario, candidates, ctx, facts, eval_data)
    for cand in levers.probe_candidates:
        check_candidate_targets(ctx, cand)
    return Setup(translator, ctx, eval_data, premium, levers)


def replay_source(scenario: Scenario, candidates: list, catalog, source: ChunkSource, eval_paths: list, *,
                  facts: Facts | None = None, spill_dir: str | None = None, observers: Iterable[Observer] = (),
                  progress=None, previous: tuple[str, dict] | None = None) -> Replayed:
    """Replay ``source`` through ``candidates`` and build summary.json (see the module docstring).

    ``facts`` may be given when the caller already has them (one in-memory table); ``spill_dir`` moves latency
    values to disk (exact percentiles in bounded memory); ``previous``: (path, last week's summary.json) adds the
    ``since_last_week`` section.
    """
    translator = Translator(scenario)
    if facts is None:
        facts = gather_facts(scenario, source, translator, bool(eval_paths), spill_dir)
    setup = prepare(scenario, candidates, catalog, facts, eval_paths, translator)
    ctx, premium, levers = setup.ctx, setup.premium, setup.levers
    everything = levers.candidates
    observers = list(observers)
    from simulator.control.room import ControlRoom, wanted

    room = ControlRoom(scenario, len(candidates)) if wanted(scenario) else None
    if room is not None:
        observers.append(room.observe)
    main = replay_pass(source, ctx, scenario, everything, premium, spill_dir, observers=observers,
                       observed=len(candidates), progress=progress, probe=levers.is_probe, overlaps=levers.overlaps)
    summary = conclude(scenario, candidates, setup, main, source.counts(), source.reject_reasons(), source.notes(),
                       lambda cand: replay_pass(source, ctx, scenario, [cand], premium, spill_dir, baseline=main.base),
                       previous, room)
    return Replayed(scenario, summary, facts, ctx)


def conclude(scenario: Scenario, candidates: list, setup: Setup, main: Pass, counts: dict[str, int],
             reasons: dict[str, int], notes: list[str], replay_plan, previous: tuple[str, dict] | None = None,
             room=None) -> dict[str, Any]:
    """summary.json from the main pass over every candidate and probe (``counts``: rows read / replayed /
    rejected; ``reasons``: reject reason -> rows): the data quality, the policies, the control-room panels
    (``room``), the levers and the plan (``replay_plan(candidate)`` runs the plan's pass), last week's comparison."""
    facts, translator, eval_data, levers = setup.ctx.facts, setup.translator, setup.eval_data, setup.levers
    try:
        drift_models = pricing_drift(main.base, setup.ctx.catalog)
        drift_error = None
    except Exception as exc:  # noqa: BLE001 - a report section must not sink the run; say why it is missing
        drift_models, drift_error = [], f"pricing drift check skipped: {type(exc).__name__}"
    counts = traffic_counts(counts, reasons, notes)
    quality = data_quality(counts, reasons, drift_models, drift_error)
    reports = [main.states[k].reports(cand) for k, cand in enumerate(levers.candidates)]
    tables = main.breakdowns.tables()
    summary = build_summary(scenario, facts, counts, main.base, candidates, main.accs[:len(candidates)],
                            reports[:len(candidates)], tables, eval_data, quality, translator, main.variant_ends())
    if room is not None:
        summary.update(room.sections())
        for k, policy in enumerate(summary["policies"]):
            policy.update(room.policy_fields(k))
        summary = metrics.clean(summary)
    finish_levers(summary, levers, scenario, facts, main.base, main.accs, reports, tables, eval_data, translator,
                  replay_plan)
    if previous is not None:
        path, data = previous
        weekly.attach(summary, main.base, data, path, scenario, facts)
    return summary


BEFORE_KEYS = ("cost_usd", "error_rate", "latency_p50_ms", "latency_p95_ms", "premium_share_requests",
               "premium_share_cost")


@dataclasses.dataclass
class Pass:
    """What one pass over the chunks accumulated."""

    base: BaselineAccumulator
    accs: list
    states: list
    breakdowns: Breakdowns
    overlaps: Any = None  # the Dask engine's merged Overlaps (the other engines count into Levers.overlaps)
    variants: dict = dataclasses.field(default_factory=dict)  # candidate index -> CacheVariants (sensitivity)

    def variant_ends(self) -> dict:
        return {k: v.ends() for k, v in self.variants.items()}


def replay_pass(source: ChunkSource, ctx: Context, scenario: Scenario, candidates: list, premium: set[str],
                spill_dir: str | None, *, observers: Iterable[Observer] = (), observed: int = 0, progress=None,
                probe=lambda k: False, overlaps=None, baseline: BaselineAccumulator | None = None) -> Pass:
    """One pass over the source: every chunk through every candidate (state carried from chunk to chunk).

    Observers see the outcomes of the first ``observed`` candidates; ``probe(k)`` marks candidates whose state
    reports are probe reports; ``overlaps`` counts the requests candidates' rules share; ``baseline``: the recorded
    outcome was accumulated by an earlier pass (it is not accumulated again)."""
    facts = ctx.facts
    unit = scenario.bootstrap.unit
    base_acc = baseline if baseline is not None else BaselineAccumulator(premium, spill_dir)
    accs = [PolicyAccumulator(premium, spill_dir) for _ in candidates]
    states = [CandidateState(cand, ctx, probe=probe(k)) for k, cand in enumerate(candidates)]
    # probes report per (workflow, model) only: the translation-sensitivity replays are for what a user may apply
    variants = {k: CacheVariants(cand, ctx) for k, cand in enumerate(candidates)
                if cand.prompt_caching and not probe(k)}
    breakdowns = Breakdowns(len(candidates))
    observers = list(observers)
    translator = ctx.translator
    for frame in source.chunks():
        p = Chunk(frame, ctx)
        if p.n == 0:
            continue
        days = day_labels(p.ts)
        base = identity_outcome(p)
        block = block_keys(p, unit, facts.ts_min)
        if baseline is None:
            base_acc.add(p, base, days, block)
        breakdowns.add_baseline(p, base)
        if overlaps is not None:
            overlaps.add(p, candidates)
        workflow = attribution_keys(p.frame, "workflow_tag")
        steps = progress(list(enumerate(candidates)), "replaying candidates") if progress else enumerate(candidates)
        outcomes = []
        for k, cand in steps:
            o = replay_chunk(p, cand, states[k])
            accs[k].add(p, o, base.cost_usd, block, days, workflow, translator, cand.name)
            if k in variants:
                variants[k].replay(p, cand)
            breakdowns.add_candidate(k, o)
            if observers and k < observed:
                outcomes.append(o)
        for observe in observers:
            observe(p, base, outcomes)
    return Pass(base_acc, accs, states, breakdowns, variants=variants)


def finish_levers(summary: dict, levers: Levers, scenario: Scenario, facts: Facts, base: BaselineAccumulator,
                  accs: list, reports: list, tables, eval_data, translator, replay_plan) -> None:
    """Add the opportunity sections and the plan to ``summary`` (the probes are candidates ``len(written)`` on);
    ``replay_plan(candidate)`` runs the plan's pass and returns its :class:`Pass` (every engine has its own)."""
    before = {k: summary["baseline"][k] for k in BEFORE_KEYS}
    probe_policies, probe_reports = {}, {}
    for k, cand in enumerate(levers.candidates):
        if levers.is_probe(k):
            probe_reports[cand.name] = reports[k].get("caching") or {}
            if not levers.is_cache_probe(k):
                probe_policies[cand.name] = policy_summary(scenario, cand, accs[k], reports[k], before, base, facts,
                                                           tables, k, eval_data, translator)
    summary.update(metrics.clean(levers.sections(summary, probe_policies, probe_reports)))
    plan = levers.plan_candidate
    policy = None
    if plan is not None:
        done = replay_plan(plan)
        policy = policy_summary(scenario, plan, done.accs[0], done.states[0].reports(plan), before, base, facts,
                                done.breakdowns.tables(), 0, eval_data, translator, done.variant_ends().get(0))
    policies = {p["name"]: p for p in summary["policies"]} | probe_policies
    section = levers.plan_summary(policy, policies)
    components = section.get("components") or []
    # A plan of one written candidate combines nothing: that candidate's own figures and configs stand.
    if len(components) > 1 or (components and components[0]["source"] != "candidate"):
        summary["plan"] = metrics.clean(section)


class CacheVariants:
    """A caching candidate replayed twice more, with every translation at the low and at the high end of its
    interval (``Translator.at_end``): whether its caching verdict holds across the assumption (the sensitivity
    check). State is carried like the candidate's own."""

    def __init__(self, cand, ctx: Context) -> None:
        self.states = {end: CandidateState(cand, ctx) for end in ("low", "high")}
        self.cost = {"low": 0.0, "high": 0.0}

    def replay(self, p: Chunk, cand) -> None:
        main = p.ctx.translator
        if main is None:
            return
        for end, state in self.states.items():
            p.ctx.translator = main.at_end(end)
            try:
                self.cost[end] += float(replay_chunk(p, cand, state).cost_usd.sum())
            finally:
                p.ctx.translator = main

    def merge(self, other: CacheVariants) -> CacheVariants:
        for end in self.states:
            self.states[end].merge(other.states[end])
            self.cost[end] += other.cost[end]
        return self

    def ends(self) -> dict[str, tuple[float, dict]]:
        """end -> (candidate cost in the window, caching report)."""
        return {end: (self.cost[end], state.cache.report() if state.cache else {})
                for end, state in self.states.items()}


class InMemorySource:
    """A loaded :class:`~simulator.io.traffic.Traffic` table as chunks (the whole table, or slices of it)."""

    def __init__(self, traffic, chunk_rows: int | None = None, notes: list[str] | None = None) -> None:
        self.traffic = traffic
        self.chunk_rows = chunk_rows
        self._notes = list(notes or [])

    def chunks(self) -> Iterator[pd.DataFrame]:
        frame = self.traffic.frame
        if not self.chunk_rows or len(frame) <= self.chunk_rows:
            yield frame
            return
        for start in range(0, len(frame), self.chunk_rows):
            yield frame.iloc[start:start + self.chunk_rows].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return self.traffic.counts()

    def reject_reasons(self) -> dict[str, int]:
        rejects = self.traffic.rejects
        if not len(rejects):
            return {}
        return {str(k): int(v) for k, v in rejects["reason"].astype(str).value_counts(sort=False).items()}

    def notes(self) -> list[str]:
        return self._notes


def spill_folder(rows: int, threshold: int = 2_000_000):
    """A temporary folder for spilled latency values when the traffic is large, else a no-op context."""
    import contextlib

    if rows <= threshold:
        return contextlib.nullcontext(None)
    return tempfile.TemporaryDirectory(prefix="tfysim-spill-")


__all__ = ["CacheVariants", "ChunkSource", "InMemorySource", "Pass", "Replayed", "Setup", "conclude",
           "finish_levers", "gather_facts", "prepare", "replay_pass", "replay_source", "spill_folder"]
