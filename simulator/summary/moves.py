"""The moves table: what a candidate did to the requests it moved to another model, summed per group.

One row per (workflow_tag, from_model, to_model, translation) with additive sums, so chunked and distributed engines
build it per chunk or partition and add the parts (:class:`MovesTable`). Every engine produces the same table, and the
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
    table = MovesTable()
    if moved.any():
        cost = np.asarray(cost_usd, dtype=np.float64)[moved]
        keys = [_factorize(np.asarray(column, dtype=object)[moved]) for column in (from_model, to_model, translation)]
        table.add(_factorize(attribution_labels(np.asarray(workflow_tag, dtype=object)[moved])), *keys,
                  input_tokens_recorded=np.asarray(input_tokens_recorded)[moved],
                  output_tokens_recorded=np.asarray(output_tokens_recorded)[moved],
                  cache_tokens_recorded=np.asarray(cache_tokens_recorded)[moved],
                  input_tokens=np.asarray(input_tokens)[moved], output_tokens=np.asarray(output_tokens)[moved],
                  recorded_cost_usd=np.asarray(recorded_cost_usd)[moved], cost_usd=cost,
                  cost_low_usd=cost * np.asarray(cost_low, dtype=np.float64)[moved],
                  cost_high_usd=cost * np.asarray(cost_high, dtype=np.float64)[moved])
    return table.frame()


class MovesTable:
    """The moves table accumulated chunk by chunk (or partition by partition, :meth:`merge`), on integer codes.

    Per chunk, each group is summed as a pandas group-by sum does (compensated, in row order; counts and token sums
    are whole numbers, so exact in any order), and the chunk's sums are added to the running ones: the table the
    engines always built, without a frame per chunk. Label strings are touched once per distinct key per chunk.
    """

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, str, str], int] = {}
        self.sums = np.zeros((len(SUMS), 0))  # one row per column of SUMS, one column per group
        self._frame: pd.DataFrame | None = None

    def add(self, workflow_tag, from_model, to_model, translation, **columns) -> None:
        """Add moved rows: the four key columns each as ``(code per row, labels)`` (equal labels merge; groups are
        ordered by the codes), the sums (``SUMS`` but ``requests``) as arrays over the same rows."""
        parts = []
        for codes, labels in (workflow_tag, from_model, to_model, translation):
            merged, uniques = _factorize(np.array([str(x) for x in labels], dtype=object))
            parts.append((merged[np.asarray(codes, dtype=np.int64)], uniques))
        n = len(parts[0][0])
        if n == 0:
            return
        key = np.zeros(n, dtype=np.int64)
        width = 1
        for codes, labels in parts:  # each step keeps the key dense: ranks of the distinct keys so far
            key, width = _dense(key * len(labels) + codes, width * len(labels))
        chunk = np.empty((len(SUMS), width))
        chunk[0] = np.bincount(key, minlength=width)
        for j, name in enumerate(SUMS[1:6], start=1):  # whole numbers: exact in any order
            chunk[j] = np.bincount(key, np.asarray(columns[name], dtype=np.float64), minlength=width)
        money = pd.DataFrame({name: np.asarray(columns[name], dtype=np.float64) for name in SUMS[6:]})
        chunk[6:] = money.groupby(key, sort=True).sum().to_numpy().T
        row_of = np.zeros(width, dtype=np.int64)
        row_of[key] = np.arange(n)  # a row of each key (every rank below width occurs), to read its labels
        group = np.array([self.ids.setdefault(tuple(labels[codes[row]] for codes, labels in parts), len(self.ids))
                          for row in row_of.tolist()], dtype=np.int64)
        if len(self.ids) > self.sums.shape[1]:
            self.sums = np.hstack([self.sums, np.zeros((len(SUMS), len(self.ids) - self.sums.shape[1]))])
        self.sums[:, group] += chunk
        self._frame = None

    def merge(self, other: MovesTable) -> MovesTable:
        """Add another table's sums group by group (a partition of other rows)."""
        for labels, k in other.ids.items():
            mine = self.ids.setdefault(labels, len(self.ids))
            if mine >= self.sums.shape[1]:
                self.sums = np.hstack([self.sums, np.zeros((len(SUMS), 1))])
            self.sums[:, mine] += other.sums[:, k]
        self._frame = None
        return self

    def frame(self) -> pd.DataFrame:
        """The table: one row per (workflow_tag, from_model, to_model, translation), sorted by them."""
        if self._frame is None:
            if not self.ids:
                self._frame = empty_moves()
            else:
                order = sorted(self.ids)
                at = np.array([self.ids[labels] for labels in order], dtype=np.int64)
                keys = np.array(order, dtype=object).reshape(len(order), len(KEYS))
                self._frame = pd.DataFrame({**{name: keys[:, i] for i, name in enumerate(KEYS)},
                                            **{name: self.sums[j, at] for j, name in enumerate(SUMS)}})
        return self._frame


def _dense(key: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """Codes 0..k-1 of non-negative ``key`` < ``width`` (k distinct values, in ascending order), and k."""
    if width <= 4 * len(key) + 1024:
        present = np.bincount(key, minlength=width) > 0
        return (np.cumsum(present) - 1)[key], int(present.sum())
    uniq, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(uniq)


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
    """The moves table of one replayed outcome (a chunk of traffic and its ``Outcome``); see :func:`add_outcome`."""
    table = MovesTable()
    add_outcome(table, p, o, base_cost, translator, cand_name, workflow, methods)
    return table.frame()


def add_outcome(table: MovesTable, p, o, base_cost: np.ndarray, translator=None, cand_name: str = "",
                workflow: np.ndarray | None = None, methods: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Add the moved requests of one replayed outcome (a chunk of traffic and its ``Outcome``) to ``table``.

    ``translator``: the run's ``Translator`` (for the cost bounds of the translation intervals; without it they are 1);
    ``workflow``: the chunk's workflow label per row (:func:`simulator.summary.accumulate.attribution`: missing
    -> ``UNTAGGED``), an array or a ``pd.Categorical`` (labelled from the chunk's frame when not given);
    ``methods``: ``o.translation`` as (code per row, distinct values), when already factorized.
    """
    vocab = np.array(p.vocab, dtype=object)
    moved = o.changed & ~o.blocked
    rows = np.flatnonzero(moved)  # only the moved rows are ever read
    if not len(rows):
        return
    low = high = np.ones(p.n)
    if translator is not None and hasattr(translator, "cost_bounds"):
        low, high = translator.cost_bounds(cand_name or o.name, p, o.model, moved)
    if workflow is None:
        frame = p.frame if hasattr(p, "frame") else p.traffic.frame
        workflow = attribution_labels(frame["workflow_tag"].to_numpy(dtype=object)[rows])
    elif isinstance(workflow, pd.Categorical):
        workflow = (workflow.codes[rows], np.asarray(workflow.categories, dtype=object))
    else:
        workflow = np.asarray(workflow, dtype=object)[rows]
    if not isinstance(workflow, tuple):
        workflow = _factorize(workflow)
    method = (methods[0][rows], methods[1]) if methods is not None else _factorize(np.asarray(o.translation[rows],
                                                                                              dtype=object))
    cost = o.cost_usd[rows]
    table.add(workflow, (p.model[rows], vocab), (o.model[rows], vocab),
              (method[0], np.array([str(m) for m in method[1]], dtype=object)),
              input_tokens_recorded=p.inp[rows], output_tokens_recorded=p.out[rows],
              cache_tokens_recorded=p.cr[rows] + p.cw[rows], input_tokens=o.input_tokens[rows],
              output_tokens=o.output_tokens[rows], recorded_cost_usd=base_cost[rows], cost_usd=cost,
              cost_low_usd=cost * low[rows], cost_high_usd=cost * high[rows])


def group_sums(frame: pd.DataFrame, keys: list, columns: list[str]) -> tuple[list[tuple], np.ndarray]:
    """``frame.groupby(keys, sort=True)[columns].sum()`` of a small table (a moves table has a row per group) as
    (sorted key tuples, one row of sums per key): pandas' numbers, a compensated (Kahan) sum per group in row order
    with missing values skipped, without a group-by's fixed cost (about a millisecond, several per policy). A key is
    a column name or a sequence of values per row. Text keys and float columns only: anything else, or a missing
    key, goes through the pandas group-by itself."""
    key_values = [frame[k].tolist() if isinstance(k, str) else list(k) for k in keys]
    labels = list(zip(*key_values)) if len(frame) else []
    plain = all(isinstance(v, str) for key in labels for v in key)
    if not plain or not all(frame[c].dtype == np.float64 for c in columns):
        by = [k if isinstance(k, str) else np.asarray(v, dtype=object) for k, v in zip(keys, key_values)]
        g = frame.groupby(by, sort=True)[columns].sum()
        return [k if isinstance(k, tuple) else (k,) for k in g.index], g.to_numpy(np.float64)
    rows = np.column_stack([frame[c].to_numpy(np.float64) for c in columns]).tolist()
    sums: dict[tuple, list[float]] = {}
    compensation: dict[tuple, list[float]] = {}
    for key, row in zip(labels, rows):
        if key not in sums:
            sums[key], compensation[key] = [0.0] * len(columns), [0.0] * len(columns)
        s, c = sums[key], compensation[key]
        for j, value in enumerate(row):
            if value != value:
                continue
            y = value - c[j]
            t = s[j] + y
            c[j] = t - s[j] - y
            if c[j] != c[j]:  # an infinite value: keep the sum infinite, not NaN (as pandas does)
                c[j] = 0.0
            s[j] = t
    order = sorted(sums)
    return order, np.array([sums[k] for k in order], dtype=np.float64).reshape(len(order), len(columns))


def accuracy_moves(moves: pd.DataFrame) -> pd.DataFrame:
    """``workflow_tag, from_model, to_model, requests`` (int): the table ``simulator.evals`` takes."""
    if moves.empty:
        return pd.DataFrame({"workflow_tag": [], "from_model": [], "to_model": [], "requests": []})
    keys = ["workflow_tag", "from_model", "to_model"]
    groups, sums = group_sums(moves, keys, ["requests"])
    return pd.DataFrame({**{name: [g[i] for g in groups] for i, name in enumerate(keys)},
                         "requests": np.round(sums[:, 0]).astype(np.int64)})


def translation_pairs(moves: pd.DataFrame) -> list[dict]:
    """Per (from, to, method): requests, token ratios realised and the cost range of the translation assumptions."""
    if moves.empty:
        return []
    groups, sums = group_sums(moves, ["from_model", "to_model", "translation"], SUMS)
    rows = []
    for (src, dst, method), values in zip(groups, sums):
        r = dict(zip(SUMS, values))
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
