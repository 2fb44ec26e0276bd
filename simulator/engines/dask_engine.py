"""Dask engine: replay a partitioned dataset on a Dask cluster; same summary.json as :func:`simulator.api.run`.

1. **Read** with ``dask.dataframe.read_parquet`` (one partition per row group) or ``read_csv`` (one per file);
   each partition is adapted and validated by :func:`simulator.io.traffic.normalize` and kept in cluster memory.
2. **Global facts**, reduced from per-partition partials and broadcast once to every task (one graph key): the model
   vocabulary, the traffic window, failure counts per (model, 5-minute bucket, status), the exact latency-fit sums
   (:class:`simulator.summary.exact_sums.LatencySums`), token-calibration rows, request-id hashes (duplicates across
   partitions are refused).
3. **Stateless replay per partition** (:func:`simulator.core.simulate` without budgets and rate limits, on a
   :class:`simulator.engines.streaming.ChunkPrepared` that carries the global facts). Candidates without budgets
   or rate limits reduce to partials right there.
4. **Stateful work after a shuffle**: candidates with rate limits or a budget emit one row per request (outcome,
   slot key, the pre-priced fallback alternative); the rows are shuffled by a hash of the rate-limit slot key
   (rule + ``rate_limit_applies_per`` values), then, for budgets, by the budget key; each shuffled partition is
   sorted by (timestamp, request_id) and runs :func:`simulator.state.kernels.rate_limit_pass` /
   :func:`simulator.state.kernels.budget_pass` over the slots it holds (a slot's rows are all in one partition, in the
   in-memory order, so slot decisions and per-slot sums are identical).
5. **Aggregates** are summed from partition partials; latency p50/p95 are exact (a histogram of the top 20 bits of
   the values, then the values of the target bins, as :mod:`simulator.engines.quantiles` does on disk).

Counts, labels, orders, budget and rate-limit decisions are identical to the local engine; money totals are summed
per partition, so they can differ in the last bits (and print 1e-6 apart on a rounding boundary).

Refused with a one-line :class:`~simulator.errors.ScenarioError` (use ``--engine local`` or ``streaming``):
``prompt_caching``; more than one budget rule in a candidate (a request matching several rules is decided across
keys); ``bootstrap.unit: session``; eval samples (accuracy gates). JSONL/JSON traffic is refused as well
(:class:`~simulator.errors.InputError`): convert it to Parquet.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import uuid
from typing import Any

import numpy as np
import pandas as pd

from simulator.state import kernels

from simulator.summary import metrics
from simulator.api import SCHEMA_VERSION, _catalog, alias_drift, alias_drift_sums, resolve_candidates
from simulator.summary import intervals
from simulator.summary.fidelity import finish_policy, policy_interval
from simulator.summary.moves import add_moves, moves_frame, moves_from_outcome
from simulator.engines.quantiles import _keys, lerp, order_positions
from simulator.engines.streaming import (_EMPTY_REJECTS, ChunkPrepared, Vocabulary, _calibration,
                                         _calibration_rows, _EmptyPrepared, _joined)
from simulator.errors import InputError, ScenarioError
from simulator.summary.exact_sums import LatencySums
from simulator.routing.matching import match
from simulator.summary.privacy import output_label
from simulator.io.readers import detect_format, expand_paths
from simulator.core import (_FAIL_BUCKET_NS, _reroute_cost, budget_window, check_candidate_targets,
                              identity_outcome, rate_window, simulate)
from simulator.routing.scenario import Scenario, load_scenario
from simulator.io.traffic import Traffic, normalize
from simulator.tokens.translator import Translator

_BITS = 20  # histogram bits of the exact-percentile selection


@dataclasses.dataclass
class DaskResult:
    """What a Dask run produced: the summary (summary.json) and the row counts."""

    scenario: Scenario
    summary: dict[str, Any]
    rows_read: int
    rows_rejected: int
    scheduler: str

    @property
    def gates_passed(self) -> bool:
        return all(g["passed"] for p in self.summary["policies"] for g in p["gates"])


def run_dask(scenario: Scenario | str, *, traffic=None, evals=None, scheduler: str | None = None,
             client=None) -> DaskResult:
    """Replay the scenario's traffic on a Dask cluster; ``summary`` matches :func:`simulator.api.run`'s.

    ``scheduler``: address of an existing scheduler (``tcp://host:8786``); without it a local cluster of 2 worker
    processes (1 thread each) is started and closed. ``client``: an open ``distributed.Client`` to use instead.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    candidates = resolve_candidates(scenario)
    _refuse(scenario, candidates, evals)
    paths = list(traffic) if traffic else scenario.paths("traffic")
    if not paths:
        raise InputError("no traffic given: name files in the scenario's traffic: or with --traffic PATH.")
    files = expand_paths(list(paths))
    if client is not None:
        return _run_on(scenario, candidates, files, client)
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as own:
            return _run_on(scenario, candidates, files, own)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1", silence_logs=logging.ERROR) as cluster, Client(cluster) as own:
        return _run_on(scenario, candidates, files, own)


def _run_on(scenario, candidates, files, client) -> DaskResult:
    import dask

    # Keep text columns as the in-memory reader gives them (no dask-side conversion to pyarrow strings).
    with dask.config.set({"dataframe.convert-string": False}):
        try:
            return _run(scenario, candidates, files, client)
        except pd.errors.ParserError as exc:
            raise InputError(f"traffic CSV: {str(exc).strip().splitlines()[0]}. The Dask engine does not skip "
                             f"malformed lines; fix them, or use --engine local (which rejects and counts them)."
                             ) from None


def _refuse(scenario: Scenario, candidates, evals) -> None:
    for cand in candidates:
        if cand.prompt_caching:
            raise ScenarioError(f"candidate '{cand.name}': prompt_caching is not supported by the Dask engine "
                                f"(cache state spans prefixes and time). Use --engine local or --engine streaming.")
        if len(cand.budgets) > 1:
            raise ScenarioError(f"candidate '{cand.name}': the Dask engine replays one budget rule per candidate "
                                f"(got {len(cand.budgets)}; a request matching several rules is decided across "
                                f"keys). Split the rules into candidates, or use --engine local or streaming.")
    if scenario.bootstrap.unit == "session":
        raise ScenarioError("bootstrap.unit: session is not supported by the Dask engine (sessions span "
                            "partitions). Use unit: hour or day, or --engine local.")
    if evals or scenario.paths("evals"):
        raise ScenarioError("eval samples (accuracy gates) are not supported by the Dask engine yet. "
                            "Use --engine local or --engine streaming.")


# -- reading ----------------------------------------------------------------------------------------------------
def _read(files) -> Any:
    import dask.dataframe as dd

    kinds = {detect_format(f) for f in files}
    if any(f.suffix.lower() == ".gz" for f in files) or not kinds <= {"parquet", "csv"} or len(kinds) > 1:
        raise InputError(f"{files[0]}: the Dask engine reads Parquet or CSV files (all of one kind, not gzipped). "
                         f"Convert the traffic to Parquet, or use --engine local or streaming.")
    names = [str(f) for f in files]
    if kinds == {"parquet"}:
        return dd.read_parquet(names, split_row_groups=True)
    return dd.read_csv(names, dtype=str, keep_default_na=False, na_values=[], blocksize=None,
                       skip_blank_lines=True, encoding="utf-8", on_bad_lines="error")


def _normalise(raw: pd.DataFrame, adapter, mapping, timezone, now) -> tuple[pd.DataFrame, int]:
    """(validated rows sorted by time, rows read) of one partition."""
    from simulator.io.adapters import apply_adapter

    raw = raw.reset_index(drop=True)
    raw["_row"] = np.arange(1, len(raw) + 1, dtype=np.int64)
    raw["_source"] = ""
    if len(raw) == 0:
        return raw, 0
    good, _ = normalize(apply_adapter(raw, adapter, mapping, "traffic partition"), timezone=timezone, now=now)
    return good, len(raw)


# -- facts ------------------------------------------------------------------------------------------------------
def _facts_partial(f: pd.DataFrame, plan_min: dict) -> dict:
    if len(f) == 0:
        return {"n": 0}
    model = f["model"].to_numpy(dtype=object)
    ts = f["timestamp"].array.asi8
    status = f["status_code"].to_numpy(np.int64)
    failed = status >= 400
    frame = pd.DataFrame({"m": model, "b": ts // _FAIL_BUCKET_NS, "f": failed, "s": status})
    fail_n = frame.groupby(["m", "b"], sort=False)["f"].agg(["size", "sum"])
    fail_status = frame[failed].groupby(["m", "b", "s"], sort=False).size()
    latency = f["latency_ms"].to_numpy(np.float64)
    ok = ~failed & np.isfinite(latency)
    out_tokens = f["output_tokens"].to_numpy(np.int64)
    lat = {m: LatencySums().add(out_tokens[ok & (model == m)], latency[ok & (model == m)])
           for m in pd.unique(model[ok])}
    calib = _calibration_rows(f, _translator(plan_min).registry) if f["prompt"].notna().any() else None
    ids = pd.util.hash_array(f["request_id"].to_numpy(dtype=object), categorize=False)
    drift = alias_drift_sums(f["requested_model"].to_numpy(dtype=object), model, ts,
                             f["input_tokens"].to_numpy(np.int64), out_tokens, status)
    return {"n": len(f), "models": set(pd.unique(model)), "ts_min": int(ts.min()), "ts_max": int(ts.max()),
            "fail_n": fail_n, "fail_status": fail_status, "lat": lat, "calib": calib, "ids": ids, "drift": drift}


def _reduce_facts(parts: list[dict]) -> dict:
    parts = [p for p in parts if p["n"]]
    ids = np.concatenate([p["ids"] for p in parts])
    _, counts = np.unique(ids, return_counts=True)
    repeated = int((counts > 1).sum())
    if repeated:
        raise InputError(f"traffic: {repeated} request_id value(s) occur more than once (the Dask engine does not "
                         f"deduplicate). Deduplicate the traffic, or use --engine local or streaming, which keep "
                         f"the first copy.")
    fail_n = pd.concat([p["fail_n"] for p in parts]).groupby(level=[0, 1]).sum()
    statuses = [p["fail_status"] for p in parts if len(p["fail_status"])]
    fail_status = pd.concat(statuses).groupby(level=[0, 1, 2]).sum() if statuses else pd.Series(dtype=np.int64)
    vocab = sorted(set().union(*(p["models"] for p in parts)))
    code = {m: i for i, m in enumerate(vocab)}
    best: dict[tuple[str, int], tuple[int, int]] = {}
    for (m, b, s), cnt in sorted(fail_status.items()):
        if (m, b) not in best or cnt > best[(m, b)][0]:
            best[(m, b)] = (int(cnt), int(s))
    buckets = {(code[m], int(b)): (int(fails) / int(cnt), best[(m, b)][1])
               for (m, b), (cnt, fails) in fail_n[["size", "sum"]].iterrows() if fails}
    lat: dict[str, LatencySums] = {}
    for p in parts:
        for m, sums in p["lat"].items():
            lat.setdefault(m, LatencySums()).merge(sums)
    return {"models": vocab, "ts_min": min(p["ts_min"] for p in parts), "ts_max": max(p["ts_max"] for p in parts),
            "n": sum(p["n"] for p in parts), "failure_buckets": buckets, "lat": lat,
            "calibration_rows": [p["calib"] for p in parts if p["calib"] is not None],
            "drift": alias_drift(pd.concat([p["drift"] for p in parts]))}


def _model_latencies(f: pd.DataFrame, model: str) -> np.ndarray:
    sel = (f["status_code"].to_numpy(np.int64) < 400) & (f["model"].to_numpy(dtype=object) == model)
    return f["latency_ms"].to_numpy(np.float64)[sel]


# -- exact percentiles over partitions -------------------------------------------------------------------------
def _hist(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = values[np.isfinite(values)] + 0.0
    return np.unique((_keys(values) >> np.uint64(64 - _BITS)).astype(np.int64), return_counts=True)


def _in_bins(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    values = values[np.isfinite(values)] + 0.0
    return values[np.isin((_keys(values) >> np.uint64(64 - _BITS)).astype(np.int64), wanted)]


def _percentiles(sources: list, qs: list[float]) -> list[float | None]:
    """``np.percentile(all finite values, qs)`` to the last bit; ``sources``: delayed arrays, one per partition."""
    import dask

    hists = dask.compute(*[dask.delayed(_hist)(s) for s in sources])
    hist = np.zeros(1 << _BITS, np.int64)
    for bins, counts in hists:
        np.add.at(hist, bins, counts)
    n = int(hist.sum())
    if n == 0:
        return [None for _ in qs]
    cum = np.cumsum(hist)
    ranks = sorted({r for q in qs for r in order_positions(n, q)[:2]})
    bins = {r: int(np.searchsorted(cum, r, side="right")) for r in ranks}
    wanted = np.array(sorted(set(bins.values())), dtype=np.int64)
    kept = np.concatenate(dask.compute(*[dask.delayed(_in_bins)(s, wanted) for s in sources]))
    kept_bins = (_keys(kept) >> np.uint64(64 - _BITS)).astype(np.int64)
    value_at = {}
    for r, b in bins.items():
        in_bin = np.sort(kept[kept_bins == b])
        value_at[r] = float(in_bin[r - (int(cum[b - 1]) if b > 0 else 0)])
    out = []
    for q in qs:
        lo, hi, t = order_positions(n, q)
        out.append(lerp(value_at[lo], value_at[hi], t))
    return out


# -- the plan every task shares ---------------------------------------------------------------------------------
_WORKER_CACHE: dict[tuple[str, str], Any] = {}


def _translator(plan: dict) -> Translator:
    """One Translator per worker process and run (tokenizers load once)."""
    key = (plan["token"], "calibration" in plan)
    if key not in _WORKER_CACHE:
        t = Translator(plan["scenario"], _EmptyPrepared())
        if "calibration" in plan:
            t.__dict__["calibration"] = plan["calibration"]
        for old in [k for k in _WORKER_CACHE if k[0] != plan["token"]]:
            del _WORKER_CACHE[old]  # an earlier run's tokenizers are not needed any more
        _WORKER_CACHE[key] = t
    return _WORKER_CACHE[key]


def _shared(plan: dict) -> Vocabulary:
    shared = Vocabulary([], plan["catalog"], plan["ts_min"], plan["n"])
    shared.vocab = list(plan["vocab"])  # sorted models, then targets: already complete (checked on the client)
    shared._code = {m: i for i, m in enumerate(shared.vocab)}
    return shared


def _labels(p, f: pd.DataFrame, base_model: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for by in metrics.BREAKDOWNS:
        if by == "model":
            out[by] = np.array(p.vocab, dtype=object)[base_model]
        else:
            keys = f[by].to_numpy(dtype=object)
            out[by] = np.where(pd.isna(keys), metrics.UNTAGGED, keys)
    return out


def _outcome_partial(o: dict, base_cost: np.ndarray, block: np.ndarray, labels: dict, premium: np.ndarray) -> dict:
    """What one outcome (arrays) of one partition adds to summary.json."""
    blocked = o["blocked"]
    is_premium = premium[o["model"]] & ~blocked
    cost = o["cost"]
    savings = base_cost - cost
    changed = o["changed"]
    methods, counts = np.unique(o["translation"][changed].astype(str), return_counts=True)
    status = o["status"]
    return {
        "n": len(cost), "cost": float(cost.sum()), "errors": int((status >= 400).sum()),
        "premium_requests": int(is_premium.sum()), "premium_cost": float(cost[is_premium].sum()),
        "savings": float(savings.sum()), "blocks": pd.Series(savings).groupby(block).sum(),
        "counts": {"requests_changed": int(changed.sum()), "requests_blocked": int(blocked.sum()),
                   "fallbacks": int(o["fallback"].sum()),
                   "failed_attempts": int((o["attempts"] - (status < 400)).clip(min=0).sum()),
                   "retries": int(o["retries"].sum()), "still_failing": int(((status >= 400) & ~blocked).sum())},
        "translation": {str(m): int(c) for m, c in zip(methods, counts)},
        "breakdowns": {by: pd.DataFrame({"cost": cost, "changed": changed.astype(np.float64)})
                       .groupby(labels[by]).sum() for by in metrics.BREAKDOWNS},
    }


_OUTCOME = ("model", "cost", "status", "blocked", "changed", "fallback", "attempts", "retries", "translation",
            "latency", "inp", "out")


def _arrays(o) -> dict[str, np.ndarray]:
    return {"model": o.model, "cost": o.cost_usd, "status": o.status, "blocked": o.blocked, "changed": o.changed,
            "fallback": o.fallback, "attempts": o.attempts, "retries": o.retries, "translation": o.translation,
            "latency": o.latency_ms, "inp": o.input_tokens, "out": o.output_tokens}


def _alternative(p, o, rows: np.ndarray, target: str, translator, cand, prefix: str, cols: dict) -> None:
    """Columns describing how ``rows`` would be served on a fallback ``target`` (priced now, applied later)."""
    n = p.n
    cols[prefix + "model"] = np.full(n, -1, np.int64)
    cols[prefix + "inp"] = np.zeros(n, np.int64)
    cols[prefix + "out"] = np.zeros(n, np.int64)
    cols[prefix + "cost"] = np.zeros(n)
    cols[prefix + "changed"] = np.zeros(n, bool)
    cols[prefix + "translation"] = np.full(n, "", dtype=object)
    cols[prefix + "latency"] = np.full(n, np.nan)
    cols[prefix + "cost_lo"], cols[prefix + "cost_hi"] = np.ones(n), np.ones(n)
    if len(rows) == 0:
        return
    cost, sub = _reroute_cost(p, o, rows, target, translator, cand)
    low, high = translator.cost_bounds(cand.name, p, sub.model, sub.changed)
    cols[prefix + "cost_lo"][rows], cols[prefix + "cost_hi"][rows] = low[rows], high[rows]
    cols[prefix + "model"][rows] = sub.model[rows]
    cols[prefix + "inp"][rows] = sub.input_tokens[rows]
    cols[prefix + "out"][rows] = sub.output_tokens[rows]
    cols[prefix + "cost"][rows] = cost
    cols[prefix + "changed"][rows] = sub.changed[rows]
    cols[prefix + "translation"][rows] = sub.translation[rows]
    cols[prefix + "latency"][rows] = p.estimate_latency(sub.model[rows], sub.output_tokens[rows])


def _hash(keys: np.ndarray) -> np.ndarray:
    return pd.util.hash_array(np.asarray(keys, dtype=object), categorize=True).view(np.int64)


def _stateful_rows(p, o, cand, translator, ctx: dict) -> pd.DataFrame:
    """One row per request: outcome so far, context for the aggregates, slot keys and fallback alternatives."""
    n = p.n
    cols: dict[str, Any] = {"ts": p.ts, "rid": p.traffic.frame["request_id"].to_numpy(dtype=object),
                            "block": ctx["block"], "base_cost": ctx["base_cost"]}
    cols.update({f"lab_{by}": v for by, v in ctx["labels"].items()})
    cols.update(_arrays(o))
    cols.update(rec_inp=p.inp, rec_out=p.out, rec_cache=p.cr + p.cw)
    cols["cost_lo"], cols["cost_hi"] = translator.cost_bounds(cand.name, p, o.model, o.changed)
    rule_of = np.full(n, -1, np.int64)
    rl_key = np.full(n, "", dtype=object)
    rl_window = np.zeros(n, np.int64)
    rl_amount = np.zeros(n)
    rl_fb_target = np.full(n, -1, np.int64)
    for r_i, rule in enumerate(cand.rate_limits):
        rows = np.flatnonzero(match(p.view, rule.when) & (rule_of < 0))
        if len(rows) == 0:
            continue
        rule_of[rows] = r_i
        rl_key[rows] = _joined(p, rule.rate_limit_applies_per, rows)
        rl_window[rows] = rate_window(p.ts[rows], rule.unit)
        rl_amount[rows] = (o.input_tokens[rows] + o.output_tokens[rows]) if rule.unit.startswith("tokens") else 1.0
        if rule.fallback is not None:
            rl_fb_target[rows] = r_i
    cols.update(rl_rule=rule_of, rl_key=rl_key, rl_window=rl_window, rl_amount=rl_amount)
    for r_i, rule in enumerate(cand.rate_limits):
        if rule.fallback is not None:
            _alternative(p, o, np.flatnonzero(rl_fb_target == r_i), rule.fallback, translator, cand,
                         f"rl{r_i}_", cols)
    if cand.budgets:
        b = cand.budgets[0]
        mask = match(p.view, b.when)
        rows = np.flatnonzero(mask)
        key = np.full(n, "", dtype=object)
        label = np.full(n, "*", dtype=object)
        key[rows] = _joined(p, b.budget_applies_per, rows)
        if b.budget_applies_per:
            label[rows] = np.asarray(p.view.applies_per(b.budget_applies_per[0])[rows], dtype=object)
        cols.update(b_match=mask, b_key=key, b_label=label, b_window=budget_window(p.ts, b.unit))
        if not isinstance(b.on_exceed, str):
            _alternative(p, o, rows, b.on_exceed.fallback, translator, cand, "b_", cols)
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) if np.asarray(v).dtype == object else v
                          for k, v in cols.items()})
    rid_hash = _hash(cols["rid"])
    # Rows outside every slot spread by request id, so no partition collects them all.
    frame["_h_rl"] = np.where(rule_of >= 0, _hash(np.char.add(rule_of.astype(str), rl_key.astype(str))), rid_hash)
    if cand.budgets:
        frame["_h_b"] = np.where(cols["b_match"], _hash(cols["b_key"]), rid_hash)
    return frame


def _replay_partition(f: pd.DataFrame, plan: dict) -> dict:
    """Stateless replay of one partition: partials for the baseline and stateless candidates, latency values,
    and per-request rows for the candidates with rate limits or budgets."""
    out: dict[str, Any] = {"partials": {}, "latency": {}, "rows": {}}
    if len(f) == 0:
        return out
    shared = _shared(plan)
    p = ChunkPrepared(Traffic(f, _EMPTY_REJECTS, len(f), []), shared, plan, plan["scenario"].seed,
                      plan["scenario"].outages)
    translator = _translator(plan)
    translator.p = p
    translator.prompts = f["prompt"].to_numpy(dtype=object)
    translator.unknown = {}  # per partition, as one in-memory run starts with none (the notes are unioned later)
    premium = plan["premium_mask"]
    base = identity_outcome(p)
    block = (p.ts - plan["ts_min"]) // plan["block_ns"]
    labels = _labels(p, f, base.model)
    is_premium = premium[base.model]
    finite = np.isfinite(p.recorded_cost)
    out["partials"]["base"] = {
        "n": p.n, "cost": float(base.cost_usd.sum()), "errors": int((base.status >= 400).sum()),
        "premium_requests": int(is_premium.sum()), "premium_cost": float(base.cost_usd[is_premium].sum()),
        "recorded": float(np.nansum(p.recorded_cost)), "has_recorded": bool(finite.any()),
        "breakdowns": {by: pd.DataFrame({"requests": np.ones(p.n, np.int64), "cost": base.cost_usd})
                       .groupby(labels[by]).sum() for by in metrics.BREAKDOWNS},
    }
    out["latency"]["base"] = base.latency_ms
    ctx = {"block": block, "base_cost": base.cost_usd, "labels": labels}
    for k, cand in enumerate(plan["candidates"]):
        stateless = cand.model_copy(update={"rate_limits": [], "budgets": []})
        o = simulate(p, stateless, translator, None)
        if cand.rate_limits or cand.budgets:
            out["rows"][k] = _stateful_rows(p, o, cand, translator, ctx)
            out["partials"][k] = {}
            continue
        part = _outcome_partial(_arrays(o), base.cost_usd, block, labels, premium)
        part["moves"] = moves_from_outcome(p, o, base.cost_usd, translator, cand.name)
        out["partials"][k] = part
        out["latency"][k] = np.where(o.blocked, np.nan, o.latency_ms)
    return out


# -- stateful stages (after a shuffle) ---------------------------------------------------------------------------
def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    order = np.lexsort((frame["rid"].to_numpy(dtype=object).astype(str), frame["ts"].to_numpy(np.int64)))
    return frame.iloc[order].reset_index(drop=True)


def _serve_alternative(frame: pd.DataFrame, rows: np.ndarray, prefix: str, latency: bool = True) -> None:
    for name in ("model", "inp", "out", "cost", "changed", "translation", "cost_lo", "cost_hi"):
        frame.loc[rows, name] = frame[prefix + name].to_numpy()[rows]
    frame.loc[rows, "status"] = 200
    frame.loc[rows, "fallback"] = True
    if latency:
        frame.loc[rows, "latency"] = frame[prefix + "latency"].to_numpy()[rows]


def _block_rows(frame: pd.DataFrame, rows: np.ndarray) -> None:
    frame.loc[rows, "blocked"] = True
    frame.loc[rows, "status"] = 429
    frame.loc[rows, "cost"] = 0.0
    frame.loc[rows, "latency"] = np.nan


def _rate_stage(frame: pd.DataFrame, plan: dict, k: int) -> tuple[pd.DataFrame, list[dict]]:
    cand = plan["candidates"][k]
    frame = _sorted(frame)
    rule_of = frame["rl_rule"].to_numpy(np.int64)
    matched = rule_of >= 0
    slot = np.full(len(frame), -1, np.int64)
    keys = frame["rl_key"].to_numpy(dtype=object)[matched].astype(str)
    codes, uniques = pd.factorize(np.char.add(np.char.add(rule_of[matched].astype(str), "\x1e"), keys))
    slot[matched] = codes
    limit = np.zeros(len(frame))
    has_fb = np.zeros(len(frame), bool)
    for r_i, rule in enumerate(cand.rate_limits):
        limit[rule_of == r_i] = rule.limit_to
        has_fb[rule_of == r_i] = rule.fallback is not None
    action = kernels.rate_limit_pass(slot, frame["rl_window"].to_numpy(np.int64),
                                     frame["rl_amount"].to_numpy(np.float64), limit, has_fb, max(len(uniques), 1))
    report = []
    cost = frame["cost"].to_numpy(np.float64).copy()
    for r_i, rule in enumerate(cand.rate_limits):
        limited = (rule_of == r_i) & (action != kernels.ALLOW)
        blocked_rows = np.flatnonzero(limited & (action == kernels.BLOCK))
        fb_rows = np.flatnonzero(limited & (action == kernels.FALLBACK))
        avoided = float(cost[blocked_rows].sum())
        if len(fb_rows):
            avoided += float(cost[fb_rows].sum() - frame[f"rl{r_i}_cost"].to_numpy()[fb_rows].sum())
            _serve_alternative(frame, fb_rows, f"rl{r_i}_")
        _block_rows(frame, blocked_rows)
        report.append({"limited": int(limited.sum()), "blocked": len(blocked_rows), "rerouted": len(fb_rows),
                       "avoided": avoided})
    return frame, report


def _budget_stage(frame: pd.DataFrame, plan: dict, k: int) -> tuple[pd.DataFrame, list[dict]]:
    b = plan["candidates"][k].budgets[0]
    frame = _sorted(frame)
    n = len(frame)
    blocked = frame["blocked"].to_numpy(bool)
    mask = frame["b_match"].to_numpy(bool) & ~blocked
    rows = np.flatnonzero(mask)
    codes, uniques = pd.factorize(frame["b_key"].to_numpy(dtype=object)[rows])
    ptr = np.concatenate([[0], np.cumsum(mask.astype(np.int64))])
    m = len(rows)
    has_fb = not isinstance(b.on_exceed, str)
    cost = frame["cost"].to_numpy(np.float64)
    fb_cost = frame["b_cost"].to_numpy(np.float64) if has_fb else np.zeros(n)
    fb_tokens = ((frame["b_inp"] + frame["b_out"]).to_numpy(np.float64) if has_fb else np.zeros(n))
    tokens = (frame["inp"] + frame["out"]).to_numpy(np.float64)
    action, _, reached_at = kernels.budget_pass(
        ptr, codes.astype(np.int64), frame["b_window"].to_numpy(np.int64)[rows], np.full(m, float(b.limit_to)),
        np.full(m, b.audit_mode), np.full(m, has_fb), np.where(blocked, 0.0, cost), fb_cost, tokens, fb_tokens,
        np.full(m, b.unit.startswith("tokens")), max(len(uniques), 1))
    slot_of = np.zeros(n, np.int64)
    slot_of[rows] = codes
    blocked_rows = np.flatnonzero(action == kernels.BLOCK)
    fb_rows = np.flatnonzero(action == kernels.FALLBACK)
    n_slots = max(len(uniques), 1)
    avoided = np.zeros(n_slots)
    # the in-memory engine's order: blocked rows first, then rerouted ones, each in time order
    np.add.at(avoided, slot_of[blocked_rows], cost[blocked_rows])
    np.add.at(avoided, slot_of[fb_rows], cost[fb_rows] - fb_cost[fb_rows])
    n_blocked = np.bincount(slot_of[blocked_rows], minlength=n_slots)
    n_rerouted = np.bincount(slot_of[fb_rows], minlength=n_slots)
    first = np.zeros(len(uniques), np.int64)
    first[codes[::-1]] = rows[::-1]
    ts = frame["ts"].to_numpy(np.int64)
    labels = frame["b_label"].to_numpy(dtype=object)
    report = [{"key": str(key), "label": str(labels[first[s]]),
               "reached_ts": int(ts[reached_at[s]]) if reached_at[s] >= 0 else None,
               "blocked": int(n_blocked[s]), "rerouted": int(n_rerouted[s]), "avoided": float(avoided[s])}
              for s, key in enumerate(uniques)]
    if len(fb_rows):
        _serve_alternative(frame, fb_rows, "b_")
    _block_rows(frame, blocked_rows)
    return frame, report


def _frame_partial(frame: pd.DataFrame, plan: dict) -> dict:
    if len(frame) == 0:
        return {"n": 0}
    o = {name: frame[name].to_numpy() for name in _OUTCOME}
    o["translation"] = frame["translation"].to_numpy(dtype=object)
    for name in ("blocked", "changed", "fallback"):
        o[name] = o[name].astype(bool)
    for name in ("model", "status", "attempts", "retries"):
        o[name] = o[name].astype(np.int64)
    labels = {by: frame[f"lab_{by}"].to_numpy(dtype=object) for by in metrics.BREAKDOWNS}
    part = _outcome_partial(o, frame["base_cost"].to_numpy(np.float64), frame["block"].to_numpy(np.int64), labels,
                            plan["premium_mask"])
    part["moves"] = moves_frame(
        labels["workflow_tag"], labels["model"], np.array(plan["vocab"], dtype=object)[o["model"]], o["translation"],
        o["changed"] & ~o["blocked"], input_tokens_recorded=frame["rec_inp"].to_numpy(),
        output_tokens_recorded=frame["rec_out"].to_numpy(), cache_tokens_recorded=frame["rec_cache"].to_numpy(),
        input_tokens=o["inp"], output_tokens=o["out"], recorded_cost_usd=frame["base_cost"].to_numpy(np.float64),
        cost_usd=o["cost"], cost_low=frame["cost_lo"].to_numpy(np.float64),
        cost_high=frame["cost_hi"].to_numpy(np.float64))
    return part


def _frame_latency(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["blocked"].to_numpy(bool), np.nan, frame["latency"].to_numpy(np.float64))


# -- the run ----------------------------------------------------------------------------------------------------
def _run(scenario: Scenario, candidates, files, client) -> DaskResult:
    import dask
    import dask.dataframe as dd
    from dask import delayed

    now = pd.Timestamp.now(tz="UTC")
    raw = _read(files)
    normalised = [delayed(_normalise)(part, scenario.adapter, scenario.columns or None, scenario.timezone, now)
                  for part in raw.to_delayed()]
    normalised = dask.persist(*normalised)
    frames = [delayed(operator.getitem)(x, 0) for x in normalised]
    rows_read = sum(dask.compute(*[delayed(operator.getitem)(x, 1) for x in normalised]))
    token = uuid.uuid4().hex
    plan_min = {"token": token, "scenario": scenario}
    facts = _reduce_facts(list(dask.compute(*[delayed(_facts_partial)(f, plan_min) for f in frames])))
    if facts["n"] == 0:
        raise InputError(f"{', '.join(map(str, files))}: no valid rows ({rows_read} rejected).")
    catalog = _catalog(scenario)
    shared = Vocabulary(facts["models"], catalog, facts["ts_min"], facts["n"])
    for cand in candidates:
        check_candidate_targets(shared, cand)
    latency_model = {}
    for m, sums in sorted(facts["lat"].items()):
        median = (_percentiles([delayed(_model_latencies)(f, m) for f in frames], [50])[0]
                  if sums.needs_median else None)
        latency_model[shared._code[m]] = sums.fit(median)
    premium = metrics.premium_models(shared, scenario.premium_models)
    size = intervals.BLOCK_NS  # per-minute savings sums: summary.intervals builds its blocks from them
    plan = {**plan_min, "catalog": catalog, "vocab": list(shared.vocab), "ts_min": facts["ts_min"], "n": facts["n"],
            "failure_buckets": facts["failure_buckets"], "latency_model": latency_model,
            "calibration": _calibration(facts["calibration_rows"]), "candidates": candidates,
            "premium_mask": np.isin(np.array(shared.vocab, dtype=object), list(premium)), "block_ns": size}
    plan_d = delayed(plan, pure=False)  # one graph key: shipped to each worker once
    replays = dask.persist(*[delayed(_replay_partition)(f, plan_d) for f in frames])
    del normalised, frames
    small = dask.compute(*[delayed(_dig)(r, ("partials",)) for r in replays])  # one small dict per partition
    keep = [i for i, part in enumerate(small) if part]  # partitions left empty by validation add nothing
    replays, small = [replays[i] for i in keep], [small[i] for i in keep]
    get = lambda x, *keys: _dig(x, keys)  # noqa: E731
    base_partials = [part["base"] for part in small]
    cand_partials, cand_latency, reports = [], [], []
    for k, cand in enumerate(candidates):
        if not (cand.rate_limits or cand.budgets):
            cand_partials.append([part[k] for part in small])
            cand_latency.append([delayed(get)(r, "latency", k) for r in replays])
            reports.append({})
            continue
        parts = [delayed(get)(r, "rows", k) for r in replays]
        rep: dict[str, Any] = {}
        for stage, key, fn in (("rate", "_h_rl", _rate_stage), ("budget", "_h_b", _budget_stage)):
            if (stage == "rate" and not cand.rate_limits) or (stage == "budget" and not cand.budgets):
                continue
            meta = dask.compute(delayed(_head)(parts[0]))[0]
            ddf = dd.from_delayed(parts, meta=meta, verify_meta=False)
            shuffled = ddf.shuffle(on=key, npartitions=len(parts))
            staged = dask.persist(*[delayed(fn)(part, plan_d, k) for part in shuffled.to_delayed()])
            rep[stage] = dask.compute(*[delayed(operator.getitem)(s, 1) for s in staged])
            parts = [delayed(operator.getitem)(s, 0) for s in staged]
        stats = dask.compute(*[delayed(_frame_partial)(part, plan_d) for part in parts])
        cand_partials.append(list(stats))
        cand_latency.append([delayed(_frame_latency)(part) for part in parts])
        reports.append(rep)
    base_latency = _percentiles([delayed(get)(r, "latency", "base") for r in replays], [50, 95])
    latencies = [_percentiles(srcs, [50, 95]) for srcs in cand_latency]
    summary = _summary(scenario, candidates, facts, rows_read, shared, premium, base_partials, base_latency,
                       cand_partials, latencies, reports)
    return DaskResult(scenario, metrics.clean(summary), rows_read, rows_read - facts["n"],
                      client.scheduler_info()["address"])


def _head(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


def _dig(x, keys):
    for key in keys:
        x = x[key] if not isinstance(x, dict) or key in x else None
        if x is None:
            return None
    return x


# -- summary ----------------------------------------------------------------------------------------------------
def _sum_frames(frames: list) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames).groupby(level=0).sum().sort_index(kind="stable")


def _stats(parts: list[dict], latency: list) -> dict[str, Any]:
    n = sum(p["n"] for p in parts)
    cost = sum(p["cost"] for p in parts if p["n"])
    errors = sum(p["errors"] for p in parts if p["n"])
    premium_requests = sum(p["premium_requests"] for p in parts if p["n"])
    premium_cost = sum(p["premium_cost"] for p in parts if p["n"])
    p50, p95 = latency
    return {
        "cost_usd": cost,
        "error_rate": round(errors / n, 6) if n else 0.0,
        "latency_p50_ms": round(p50, 3) if p50 is not None else None,
        "latency_p95_ms": round(p95, 3) if p95 is not None else None,
        "premium_share_requests": round(premium_requests / n, 6) if n else 0.0,
        "premium_share_cost": round(float(premium_cost / cost), 6) if cost else 0.0,
    }


def _breakdown(by: str, base: pd.DataFrame, cand: pd.DataFrame | None) -> list[dict[str, Any]]:
    labels = base.index.to_numpy(dtype=object)
    if cand is None:
        return metrics.breakdown_rows(by, labels, base["requests"].to_numpy(np.int64), base["cost"].to_numpy())
    cand = cand.reindex(base.index, fill_value=0.0)
    return metrics.breakdown_rows(by, labels, base["requests"].to_numpy(np.int64), base["cost"].to_numpy(),
                                  cand["cost"].to_numpy(), cand["changed"].to_numpy())


def _summary(scenario, candidates, facts, rows_read, shared, premium, base_parts, base_latency, cand_parts,
             latencies, reports) -> dict[str, Any]:
    base_parts = [p for p in base_parts if p]
    days = max(float(facts["ts_max"] - facts["ts_min"]), 1e9) / metrics._NS_PER_DAY
    before = _stats(base_parts, base_latency)
    base_total = before["cost_usd"]
    recorded = sum(p["recorded"] for p in base_parts)
    tables = {by: _sum_frames([p["breakdowns"][by] for p in base_parts]) for by in metrics.BREAKDOWNS}
    by_model = {r["model"]: r["requests"] for r in _breakdown("model", tables["model"], None)}
    registry = Translator(scenario, _EmptyPrepared())  # model -> tokenizer for the interval's assumption terms
    policies = []
    for k, cand in enumerate(candidates):
        parts = [p for p in cand_parts[k] if p]
        live = [p for p in parts if p.get("n")]
        after = _stats(live, latencies[k])
        savings = sum(p["savings"] for p in live)
        blocks = pd.concat([p["blocks"] for p in live]).groupby(level=0).sum().sort_index()
        counts: dict[str, int] = {}
        translation: dict[str, int] = {}
        for p in live:
            for key, v in p["counts"].items():
                counts[key] = counts.get(key, 0) + v
            for key, v in p["translation"].items():
                translation[key] = translation.get(key, 0) + v
        moves = add_moves([p.get("moves") for p in live])
        interval = policy_interval(blocks.index.to_numpy(np.int64), blocks.to_numpy(np.float64), facts["ts_min"],
                                   facts["ts_max"], scenario, moves, registry)
        policy = metrics.policy_record(
            cand.name, facts["n"], after["cost_usd"], base_total, days, interval["monthly_savings_ci95"],
            counts, before, after, translation)
        policy.update({
            "budgets": _budget_rows(cand, reports[k].get("budget", ())),
            "rate_limits": _rate_rows(cand, reports[k].get("rate", ())),
            "breakdowns": {by: _breakdown(by, tables[by], _sum_frames([p["breakdowns"][by] for p in live]))
                           for by in metrics.BREAKDOWNS},
        })
        gates = metrics.candidate_gates(scenario, cand)
        policy["gates"] = metrics.evaluate_gates(policy, gates, before)
        policies.append(finish_policy(
            policy, moves=moves, interval=interval, candidate=cand, days=days, candidate_cost_usd=after["cost_usd"],
            base_cost_usd=base_total, recorded_requests_by_model=by_model,
            evaluate_gates=lambda rec, gates=gates: metrics.evaluate_gates(rec, gates, before)))
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "traffic": {"rows_read": rows_read, "rows_replayed": facts["n"], "rows_rejected": rows_read - facts["n"],
                    "start": pd.Timestamp(facts["ts_min"], tz="UTC").isoformat(),
                    "end": pd.Timestamp(facts["ts_max"], tz="UTC").isoformat(), "days": round(days, 6)},
        "baseline": {
            "requests": facts["n"],
            "cost_usd": metrics.r6(base_total),
            "recorded_cost_usd": metrics.r6(recorded) if any(p["has_recorded"] for p in base_parts) else None,
            "monthly_cost_usd": metrics.r6(base_total * metrics.MONTH_DAYS / max(days, 1e-9)),
            **{k: v for k, v in before.items() if k != "cost_usd"},
            "premium_models": sorted(premium),
            "breakdowns": {by: _breakdown(by, tables[by], None) for by in metrics.BREAKDOWNS},
        },
        "policies": policies,
    }
    if facts.get("drift"):
        summary["drift"] = facts["drift"]
    return summary


def _rate_rows(cand, parts) -> list[dict[str, Any]]:
    if not cand.rate_limits:
        return []
    out = []
    for r_i, rule in enumerate(cand.rate_limits):
        reps = [p[r_i] for p in parts]
        out.append({"id": rule.id, "requests_limited": sum(r["limited"] for r in reps),
                    "requests_blocked": sum(r["blocked"] for r in reps),
                    "requests_rerouted": sum(r["rerouted"] for r in reps),
                    "spend_avoided_usd": round(sum(r["avoided"] for r in reps), 6)})
    return out


def _budget_rows(cand, parts) -> list[dict[str, Any]]:
    if not cand.budgets:
        return []
    b = cand.budgets[0]
    slots = sorted((s for p in parts for s in p), key=lambda s: s["key"])  # each slot lives in one partition
    spec = b.budget_applies_per[0] if b.budget_applies_per else ""
    out = []
    for s in slots:
        # As in simulator.core: a person's id is reported as a stable salted hash, never as itself.
        label = output_label(spec, s["label"])
        out.append({
            "id": b.id, "key": label if label != "*" else None, "limit_to": b.limit_to, "unit": b.unit,
            "ceiling_reached_at": (pd.Timestamp(s["reached_ts"], tz="UTC").isoformat()
                                   if s["reached_ts"] is not None else None),
            "requests_blocked": s["blocked"], "requests_rerouted": s["rerouted"],
            "spend_avoided_usd": round(s["avoided"], 6), "audit_mode": b.audit_mode,
        })
    return out
