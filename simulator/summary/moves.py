"""The moves table: what a candidate did to the requests it moved to another model, summed per group.

One row per (workflow_tag, from_model, to_model, translation) with additive sums, so chunked and distributed engines
build it per chunk or partition and add the parts (:func:`add_moves`). Every engine produces the same table, and the
accuracy impact (``simulator.evals``), the translation summary, the assumption lines, the savings interval's
assumption terms and the sensitivity checks are all computed from it:

| column | meaning |
|---|---|
| ``requests`` | moved requests (served by another model than recorded, not blocked) |
| ``input_tokens_recorded`` / ``output_tokens_recorded`` | their recorded token counts |
| ``cache_tokens_recorded`` | recorded cache reads + writes (billed as plain input on a cold target) |
| ``input_tokens`` / ``output_tokens`` | their token counts on the target, after translation |
| ``recorded_cost_usd`` | what they cost as recorded (the baseline) |
| ``cost_usd`` | what they cost on the target |
| ``cost_low_usd`` / ``cost_high_usd`` | ``cost_usd`` with every translation assumption at the low / high end of its interval |
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.summary.privacy import UNTAGGED, attribution_labels

KEYS = ["workflow_tag", "from_model", "to_model", "translation"]
SUMS = ["requests", "input_tokens_recorded", "output_tokens_recorded", "cache_tokens_recorded", "input_tokens",
        "output_tokens", "recorded_cost_usd", "cost_usd", "cost_low_usd", "cost_high_usd"]


def empty_moves() -> pd.DataFrame:
    return pd.DataFrame({**{k: pd.Series([], dtype=object) for k in KEYS},
                         **{c: pd.Series([], dtype=np.float64) for c in SUMS}})


def moves_frame(workflow_tag, from_model, to_model, translation, moved, *, input_tokens_recorded,
                output_tokens_recorded, cache_tokens_recorded, input_tokens, output_tokens, recorded_cost_usd,
                cost_usd, cost_low, cost_high) -> pd.DataFrame:
    """Group one chunk's moved rows (``moved``: bool per row) into the moves table; arrays are per row.

    ``cost_low`` / ``cost_high``: per-row factors on ``cost_usd`` at the ends of the translation intervals
    (``Translator.cost_bounds``).
    """
    moved = np.asarray(moved, dtype=bool)
    if not moved.any():
        return empty_moves()
    keys = [_factorize(np.asarray(column, dtype=object)[moved]) for column in (from_model, to_model)]
    return _moves_table(attribution_labels(np.asarray(workflow_tag, dtype=object)[moved]), *keys,
                        np.asarray(translation, dtype=object)[moved],
                        input_tokens_recorded=np.asarray(input_tokens_recorded)[moved],
                        output_tokens_recorded=np.asarray(output_tokens_recorded)[moved],
                        cache_tokens_recorded=np.asarray(cache_tokens_recorded)[moved],
                        input_tokens=np.asarray(input_tokens)[moved], output_tokens=np.asarray(output_tokens)[moved],
                        recorded_cost_usd=np.asarray(recorded_cost_usd)[moved],
                        cost_usd=np.asarray(cost_usd)[moved], cost_low=np.asarray(cost_low)[moved],
                        cost_high=np.asarray(cost_high)[moved])


def _moves_table(workflow_tag, from_model, to_model, translation, **columns) -> pd.DataFrame:
    """:func:`moves_frame` of moved rows only: workflow labels (attribution applied) as values or ``(codes,
    labels)``, the two model columns as ``(codes, names)``."""
    cost = np.asarray(columns["cost_usd"], dtype=np.float64)
    # Group on one integer key built from the codes of the four key columns (strings are hashed once per column,
    # not per group key); sums run in row order within a group, as a groupby on the strings does.
    methods, names = translation if isinstance(translation, tuple) else _factorize(translation)
    if isinstance(workflow_tag, tuple):  # (codes, labels): merge equal labels
        codes, labels = workflow_tag
        merged, uniques = _factorize(np.asarray(labels, dtype=object))
        workflow = (merged[codes], uniques)
    else:
        workflow = _factorize(workflow_tag)
    parts = [workflow, from_model, to_model, (methods, np.array([str(m) for m in names], dtype=object))]
    key = np.zeros(len(cost), dtype=np.int64)
    for codes, uniques in parts:
        key = key * len(uniques) + codes
    frame = pd.DataFrame({
        "key": key,
        "requests": np.ones(len(key)),
        **{name: np.asarray(columns[name], dtype=np.float64) for name in SUMS[1:7]},
        "cost_usd": cost,
        "cost_low_usd": cost * np.asarray(columns["cost_low"], dtype=np.float64),
        "cost_high_usd": cost * np.asarray(columns["cost_high"], dtype=np.float64),
    })
    sums = frame.groupby("key", sort=True)[SUMS].sum()
    rest = sums.index.to_numpy()
    keys = {}
    for name, (_, uniques) in zip(reversed(KEYS), reversed(parts)):
        keys[name] = uniques[rest % len(uniques)]
        rest = rest // len(uniques)
    out = pd.DataFrame({**{name: keys[name] for name in KEYS}, **{c: sums[c].to_numpy() for c in SUMS}})
    return out.sort_values(KEYS, kind="stable", ignore_index=True)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def add_moves(frames) -> pd.DataFrame:
    """Sum moves tables of several chunks or partitions (same keys add up)."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return empty_moves()
    return pd.concat(frames, ignore_index=True).groupby(KEYS, as_index=False, sort=True)[SUMS].sum()


def moves_from_outcome(p, o, base_cost: np.ndarray, translator=None, cand_name: str = "",
                       workflow: np.ndarray | None = None,
                       methods: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """The moves table of one replayed outcome (a chunk of traffic and its ``Outcome``).

    ``translator``: the run's ``Translator`` (for the cost bounds of the translation intervals; without it they are 1);
    ``workflow``: the chunk's workflow label per row (:func:`simulator.summary.accumulate.attribution`: missing
    -> ``UNTAGGED``), an array or a ``pd.Categorical`` (labelled from the chunk's frame when not given);
    ``methods``: ``o.translation`` as (code per row, distinct values), when already factorized.
    """
    vocab = np.array(p.vocab, dtype=object)
    moved = o.changed & ~o.blocked
    low = high = np.ones(p.n)
    if translator is not None and hasattr(translator, "cost_bounds"):
        low, high = translator.cost_bounds(cand_name or o.name, p, o.model, moved)
    if workflow is None:
        frame = p.frame if hasattr(p, "frame") else p.traffic.frame
        workflow = attribution_labels(frame["workflow_tag"].to_numpy(dtype=object))
    rows = np.flatnonzero(moved)  # only the moved rows are ever read
    if not len(rows):
        return empty_moves()
    if isinstance(workflow, pd.Categorical):
        workflow = (workflow.codes[rows].astype(np.int64), np.asarray(workflow.categories, dtype=object))
    else:
        workflow = np.asarray(workflow, dtype=object)[rows]
    return _moves_table(
        workflow, (p.model[rows], vocab), (o.model[rows], vocab),
        (methods[0][rows], methods[1]) if methods is not None else o.translation[rows],
        input_tokens_recorded=p.inp[rows], output_tokens_recorded=p.out[rows],
        cache_tokens_recorded=p.cr[rows] + p.cw[rows], input_tokens=o.input_tokens[rows],
        output_tokens=o.output_tokens[rows], recorded_cost_usd=base_cost[rows], cost_usd=o.cost_usd[rows],
        cost_low=low[rows], cost_high=high[rows])


def accuracy_moves(moves: pd.DataFrame) -> pd.DataFrame:
    """``workflow_tag, from_model, to_model, requests`` (int): the table ``simulator.evals`` takes."""
    if moves.empty:
        return pd.DataFrame({"workflow_tag": [], "from_model": [], "to_model": [], "requests": []})
    out = moves.groupby(["workflow_tag", "from_model", "to_model"], as_index=False, sort=True)["requests"].sum()
    out["requests"] = out["requests"].round().astype(np.int64)
    return out


def translation_pairs(moves: pd.DataFrame) -> list[dict]:
    """Per (from, to, method): requests, token ratios realised and the cost range of the translation assumptions."""
    if moves.empty:
        return []
    g = moves.groupby(["from_model", "to_model", "translation"], sort=True)[SUMS].sum()
    rows = []
    for (src, dst, method), r in g.iterrows():
        rows.append({
            "from_model": src, "to_model": dst, "method": method, "requests": int(round(r["requests"])),
            "input_tokens_ratio": _ratio(r["input_tokens"], r["input_tokens_recorded"]),
            "output_tokens_ratio": _ratio(r["output_tokens"], r["output_tokens_recorded"]),
            "cost_usd": round(float(r["cost_usd"]), 6) + 0.0,
            "cost_range_usd": ([round(float(r["cost_low_usd"]), 6) + 0.0, round(float(r["cost_high_usd"]), 6) + 0.0]
                               if r["cost_low_usd"] != r["cost_usd"] or r["cost_high_usd"] != r["cost_usd"] else None),
        })
    return rows


def _ratio(num: float, den: float) -> float | None:
    return round(float(num) / float(den), 6) if den else None
