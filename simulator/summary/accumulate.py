"""Everything summary.json needs from the replayed requests, accumulated chunk by chunk.

Every engine feeds the same accumulators (chunks in time order, or partitions merged with ``merge``), so every
engine writes the same summary. Per-label and per-block sums are added in row order (``np.add.at``), which makes a
chunked replay bit-equal to a replay of the whole table in one chunk for those sums; totals are summed per chunk,
so they can differ from a one-chunk replay in the last bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulator.summary.privacy import UNTAGGED, attribution_labels
from simulator.summary.quantiles import Quantiles
from simulator.tokens.translator import TRANSLATIONS

BREAKDOWNS = ("team", "project", "workflow_tag", "model")
BLOCK_SUMS = ("cost_usd", "premium_cost_usd", "errors", "requests", "untagged_project_cost_usd",
              "untagged_team_cost_usd", "untagged_workflow_tag_cost_usd")
_NS_PER_DAY = 86_400 * 10**9
_METHODS = np.array(TRANSLATIONS, dtype=object)


class FixedQuantiles:
    """Percentiles computed elsewhere (e.g. across a cluster), presented like :class:`Quantiles`."""

    def __init__(self, values: list[float | None]) -> None:
        self.fixed = list(values)

    def percentiles(self, qs: list[float]) -> list[float | None]:
        return self.fixed[: len(qs)]


def merged_percentiles(hists: list[tuple[np.ndarray, np.ndarray]], fetch, qs: list[float]) -> list[float | None]:
    """``np.percentile`` of values held in several places, to the last bit, without moving them all: ``hists`` are
    each place's :func:`histogram`, ``fetch(wanted_bins)`` returns the values of those bins from every place."""
    from simulator.summary.quantiles import BITS, lerp, order_keys, order_positions

    hist = np.zeros(1 << BITS, np.int64)
    for bins, counts in hists:
        np.add.at(hist, bins, counts)
    n = int(hist.sum())
    if n == 0:
        return [None for _ in qs]
    cum = np.cumsum(hist)
    ranks = sorted({r for q in qs for r in order_positions(n, q)[:2]})
    bins = {r: int(np.searchsorted(cum, r, side="right")) for r in ranks}
    kept = fetch(np.array(sorted(set(bins.values())), dtype=np.int64))
    kept_bins = (order_keys(kept) >> np.uint64(64 - BITS)).astype(np.int64)
    value_at = {}
    for r, b in bins.items():
        in_bin = np.sort(kept[kept_bins == b])
        value_at[r] = float(in_bin[r - (int(cum[b - 1]) if b > 0 else 0)])
    out = []
    for q in qs:
        lo, hi, t = order_positions(n, q)
        out.append(lerp(value_at[lo], value_at[hi], t))
    return out


def histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bins, counts) of the top bits of the order-preserving keys of finite values (see :func:`merged_percentiles`)."""
    from simulator.summary.quantiles import BITS, order_keys

    values = values[np.isfinite(values)] + 0.0
    return np.unique((order_keys(values) >> np.uint64(64 - BITS)).astype(np.int64), return_counts=True)


def in_bins(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    from simulator.summary.quantiles import BITS, order_keys

    values = values[np.isfinite(values)] + 0.0
    return values[np.isin((order_keys(values) >> np.uint64(64 - BITS)).astype(np.int64), wanted)]


class Labels:
    """Per-label sums accumulated in row order (bit-equal to ``np.bincount`` over the whole table)."""

    def __init__(self, width: int) -> None:
        self.ids: dict[Any, int] = {}
        self.sums = np.zeros((0, width))

    def codes(self, keys: np.ndarray | pd.Categorical) -> np.ndarray:
        if isinstance(keys, pd.Categorical) and len(keys) and keys.codes.min() >= 0:
            # a category per distinct key already: only the categories present get an id (ids are in no particular
            # order; sums are added in row order and read through sorted()); when every category has its id from
            # an earlier chunk, no pass over the rows is needed to find the present ones
            known = [self.ids.get(u) for u in keys.categories.tolist()]
            if None not in known:
                return np.array(known, dtype=np.int64)[keys.codes]
            present = np.flatnonzero(np.bincount(keys.codes, minlength=len(keys.categories)))
            ids = np.full(len(keys.categories), -1, dtype=np.int64)
            ids[present] = [self.ids.setdefault(u, len(self.ids)) for u in keys.categories[present].tolist()]
            self._grow()
            return ids[keys.codes]
        codes, uniques = _runs(keys) if _sorted_integers(keys) else pd.factorize(keys)
        first = dict(zip(list(uniques), range(len(uniques)))) if not self.ids else {}
        if first and len(first) == len(uniques):  # the first chunk (an in-memory table's only one): in order
            self.ids = first
            ids = np.arange(len(first), dtype=np.int64)
        else:
            ids = np.array([self.ids.setdefault(u, len(self.ids)) for u in uniques], dtype=np.int64)
        self._grow()
        return ids[codes] if len(codes) else np.zeros(0, np.int64)

    def _grow(self) -> None:
        if len(self.ids) > len(self.sums):
            self.sums = np.vstack([self.sums, np.zeros((len(self.ids) - len(self.sums), self.sums.shape[1]))])

    def add(self, codes: np.ndarray, column: int, weights: np.ndarray) -> None:
        col = np.ascontiguousarray(self.sums[:, column])
        np.add.at(col, codes, weights)  # numpy >= 1.25: faster here than np.bincount over running sums + rows
        self.sums[:, column] = col

    def count(self, codes: np.ndarray, column: int, where: np.ndarray | None = None) -> None:
        """Add 1 per row (where ``where``): whole numbers, so counting per chunk equals adding in row order."""
        weights = None if where is None else where.astype(np.float64)
        self.sums[:, column] += np.bincount(codes, weights, minlength=len(self.sums))

    def merge(self, other: Labels) -> Labels:
        """Add another accumulator's sums label by label."""
        if other.ids:
            codes = self.codes(np.array(list(other.ids), dtype=object))
            np.add.at(self.sums, codes, other.sums[np.array(list(other.ids.values()))])
        return self

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        labels = np.array(list(self.ids), dtype=object)
        order = np.argsort(labels, kind="stable") if len(labels) else np.zeros(0, np.int64)
        return labels[order], self.sums[order]


def _sorted_integers(keys: Any) -> bool:
    """Integer keys in ascending order (a time-ordered chunk's interval blocks)."""
    return (isinstance(keys, np.ndarray) and keys.dtype.kind in "iu" and len(keys) > 1
            and bool((keys[1:] >= keys[:-1]).all()))


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of sorted keys (the same codes and uniques, in order of first appearance) from their runs."""
    starts = np.empty(len(keys), dtype=bool)
    starts[0] = True
    np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    return np.cumsum(starts) - 1, keys[starts]


def attribution_keys(frame: pd.DataFrame, by: str) -> np.ndarray | pd.Categorical:
    """:func:`attribution` as group keys: a categorical column stays categorical (its categories labelled once)."""
    column = frame[by]
    if isinstance(column.dtype, pd.CategoricalDtype):
        labels = np.append(attribution_labels(column.cat.categories.to_numpy(dtype=object)), UNTAGGED)
        if len(set(labels.tolist())) == len(labels):
            codes = column.cat.codes.to_numpy()
            return pd.Categorical.from_codes(np.where(codes < 0, len(labels) - 1, codes), categories=labels)
    return attribution(frame, by)


def attribution(frame: pd.DataFrame, by: str) -> np.ndarray:
    """A breakdown column with missing attribution as ``UNTAGGED`` (a literal ``UNTAGGED`` kept apart)."""
    column = frame[by]
    if isinstance(column.dtype, pd.CategoricalDtype):  # label the categories, not the rows; code -1 -> UNTAGGED
        labels = np.append(attribution_labels(column.cat.categories.to_numpy(dtype=object)), UNTAGGED)
        return labels[column.cat.codes.to_numpy()]
    return attribution_labels(column.to_numpy(dtype=object))


def day_labels(ts: np.ndarray) -> pd.Categorical:
    """UTC day of each timestamp (ns) as ``YYYY-MM-DD`` categories: only the distinct days are formatted."""
    days, inverse = np.unique(np.floor_divide(ts, _NS_PER_DAY), return_inverse=True)
    labels = pd.DatetimeIndex((days * _NS_PER_DAY).astype("datetime64[ns]")).strftime("%Y-%m-%d")
    return pd.Categorical.from_codes(inverse.reshape(-1), categories=pd.Index(labels, dtype=object))


class Totals:
    """What one outcome (the recorded one, or a candidate's) adds to the traffic-wide figures."""

    def __init__(self, premium: set[str], spill_dir: str | None) -> None:
        self.premium = premium
        self.n = self.errors = self.premium_requests = 0
        self.cost = self.premium_cost = 0.0
        self.latency = Quantiles(spill_dir)
        self.by_day = Labels(2)  # cost, premium cost per UTC day

    def add_totals(self, p, o, days: np.ndarray) -> None:
        vocab = np.array(p.vocab, dtype=object)
        is_premium = np.isin(vocab, list(self.premium))[o.model] & ~o.blocked
        self.n += p.n
        self.cost += float(o.cost_usd.sum())
        self.errors += int(((o.status >= 400) & ~o.blocked).sum())  # refusals (budgets, limits) are counted apart
        self.premium_requests += int(is_premium.sum())
        self.premium_cost += float(o.cost_usd[is_premium].sum())
        self.latency.add(np.where(o.blocked, np.nan, o.latency_ms))
        codes = self.by_day.codes(days)
        self.by_day.add(codes, 0, o.cost_usd)
        self.by_day.add(codes, 1, np.where(is_premium, o.cost_usd, 0.0))

    def merge_totals(self, other: Totals) -> None:
        self.n += other.n
        self.errors += other.errors
        self.premium_requests += other.premium_requests
        self.cost += other.cost
        self.premium_cost += other.premium_cost
        self.by_day.merge(other.by_day)

    def stats(self, percentiles: list[float | None] | None = None) -> dict[str, Any]:
        """Traffic-wide figures; ``percentiles`` (p50, p95) when the latency values are held elsewhere."""
        p50, p95 = percentiles if percentiles is not None else self.latency.percentiles([50, 95])
        return {
            "cost_usd": self.cost,
            "error_rate": round(self.errors / self.n, 6) if self.n else 0.0,
            "latency_p50_ms": round(p50, 3) if p50 is not None else None,
            "latency_p95_ms": round(p95, 3) if p95 is not None else None,
            "premium_share_requests": round(self.premium_requests / self.n, 6) if self.n else 0.0,
            "premium_share_cost": round(float(self.premium_cost / self.cost), 6) if self.cost else 0.0,
        }

    def premium_share_by_day(self) -> list[dict[str, Any]]:
        labels, sums = self.by_day.sorted()
        return [{"day": str(d), "premium_share_cost": round(float(s[1] / s[0]), 6) if s[0] > 0 else 0.0}
                for d, s in zip(labels, sums)]


class BaselineAccumulator(Totals):
    """The recorded outcome: totals plus the recorded-vs-catalog comparison per model (pricing drift)."""

    def __init__(self, premium: set[str], spill_dir: str | None) -> None:
        super().__init__(premium, spill_dir)
        self.recorded = 0.0
        self.has_recorded = False
        # per model: requests, catalog cost, recorded cost (where recorded), catalog cost there, rows recorded
        self.per_model = Labels(5)
        # per bootstrap block: what the week-over-week intervals resample (see simulator.summary.weekly)
        self.blocks = Labels(len(BLOCK_SUMS))

    def add(self, p, base, days: np.ndarray, block: np.ndarray | None = None) -> None:
        self.add_totals(p, base, days)
        if block is not None:
            self._add_blocks(p, base, block)
        finite = np.isfinite(p.recorded_cost)
        self.has_recorded |= bool(finite.any())
        self.recorded += float(np.nansum(p.recorded_cost))
        codes = self.per_model.codes(model_keys(p, p.model))
        self.per_model.count(codes, 0)
        self.per_model.add(codes, 1, p.baseline_cost)
        self.per_model.add(codes, 2, np.where(finite, p.recorded_cost, 0.0))
        self.per_model.add(codes, 3, np.where(finite, p.baseline_cost, 0.0))
        self.per_model.add(codes, 4, finite.astype(np.float64))

    def _add_blocks(self, p, base, block: np.ndarray) -> None:
        vocab = np.array(p.vocab, dtype=object)
        premium = np.isin(vocab, list(self.premium))[base.model]
        codes = self.blocks.codes(block)
        cost = base.cost_usd
        columns = {"cost_usd": cost, "premium_cost_usd": np.where(premium, cost, 0.0),
                   "errors": (base.status >= 400).astype(np.float64), "requests": np.ones(p.n)}
        for by in ("project", "team", "workflow_tag"):
            columns[f"untagged_{by}_cost_usd"] = np.where(p.frame[by].isna().to_numpy(), cost, 0.0)
        for i, name in enumerate(BLOCK_SUMS):
            self.blocks.add(codes, i, columns[name])

    def merge(self, other: BaselineAccumulator) -> BaselineAccumulator:
        self.merge_totals(other)
        self.blocks.merge(other.blocks)
        self.recorded += other.recorded
        self.has_recorded |= other.has_recorded
        self.per_model.merge(other.per_model)
        return self


class PolicyAccumulator(Totals):
    """One candidate: totals plus savings per bootstrap block, counters, token translation and moves."""

    def __init__(self, premium: set[str], spill_dir: str | None) -> None:
        super().__init__(premium, spill_dir)
        self.savings = 0.0
        self.blocks = Labels(1)
        self.counts: dict[str, int] = {}
        self.translation: dict[str, int] = {}
        self.assumptions: list[str] = []
        self.changed_any = False
        self.methods: set[str] = set()
        from simulator.summary.moves import MovesTable

        self.moved = MovesTable()  # the moves table (simulator.summary.moves), accumulated chunk by chunk
        self.extras: dict[str, Any] = {}
        self.money = {"unserved_recorded_cost_usd": 0.0, "spend_prevented_usd": 0.0}
        # per "tier|model": requests, cost, cost at the default tier, synchronous latency sum, latency count
        self.tiers = Labels(5)
        self.tier_origins: dict[str, set[str]] = {}

    def add(self, p, o, base_cost: np.ndarray, block: np.ndarray, days: np.ndarray, workflow: np.ndarray,
            translator=None, cand_name: str = "") -> None:
        """One chunk's outcome; ``translator`` (the run's) gives the cost range of each moved request's translation
        (call right after the candidate's replay of this chunk)."""
        from simulator.summary.moves import add_outcome

        self.add_totals(p, o, days)
        refused = o.blocked
        unserved = ~p.failed & (o.status >= 400) & ~refused
        rescued = p.failed & (o.status < 400) & ~refused
        # Equal-service savings: a request the candidate fails or refuses saves nothing; one it rescues costs money.
        savings = np.where(unserved | refused, 0.0, base_cost - o.cost_usd)
        self.savings += float(savings.sum())
        self.money["unserved_recorded_cost_usd"] += float(base_cost[unserved].sum())
        self.money["spend_prevented_usd"] += float(base_cost[refused].sum())
        for key, mask in (("requests_unserved", unserved), ("requests_rescued", rescued),
                          ("requests_imputed", rescued & o.imputed), ("requests_refused", refused)):
            self.counts[key] = self.counts.get(key, 0) + int(mask.sum())
        self.blocks.add(self.blocks.codes(block), 0, savings)
        for k, v in o.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        changed = o.translation_code[o.changed]
        counts = np.bincount(changed, minlength=len(TRANSLATIONS))  # per translation method
        methods = {TRANSLATIONS[c]: int(counts[c]) for c in np.flatnonzero(counts).tolist()}
        for m in sorted(methods):
            self.translation[m] = self.translation.get(m, 0) + methods[m]
        self.changed_any |= bool(o.changed.any())
        self.methods.update(methods)
        for note in o.assumptions:
            if note not in self.assumptions:
                self.assumptions.append(note)
        for key, value in o.extras.items():
            if isinstance(value, dict) and isinstance(self.extras.get(key), dict):
                self.extras[key].update(value)
            else:
                self.extras[key] = value
        self._add_tiers(p, o)
        if (o.changed & ~o.blocked).any():
            # methods coded in order of first appearance among the changed rows (the moves table's group order)
            first = sorted(np.flatnonzero(counts).tolist(), key=lambda c: int(np.argmax(changed == c)))
            rank = np.zeros(len(TRANSLATIONS), dtype=np.int64)
            rank[first] = np.arange(len(first))
            add_outcome(self.moved, p, o, base_cost, translator, cand_name or o.name, workflow=workflow,
                        methods=(rank[o.translation_code], _METHODS[first]))

    def _add_tiers(self, p, o) -> None:
        """Requests served on another service tier: cost there and at the default tier, and the latency they
        would have had synchronously (batched rows carry it in ``o.tier_latency_ms``)."""
        from simulator.pricing.tiers import TIERS

        rows = np.flatnonzero((o.service_tier != 0) & ~o.blocked & (o.status < 400))
        if not len(rows):
            return
        vocab = np.array(p.vocab, dtype=object)
        default_cost = p.price(o.model[rows], o.input_tokens[rows], o.output_tokens[rows],
                               o.cache_read_tokens[rows], o.cache_write_tokens[rows], o.cache_write_1h_tokens[rows],
                               rows=rows)
        tier_names = np.array(TIERS, dtype=object)[o.service_tier[rows]]
        keys = tier_names + "|" + vocab[o.model[rows]]
        latency = o.tier_latency_ms[rows] if o.tier_latency_ms is not None else o.latency_ms[rows]
        latency = np.where(np.isnan(latency), o.latency_ms[rows], latency)
        finite = np.isfinite(latency)
        codes = self.tiers.codes(keys)
        self.tiers.add(codes, 0, np.ones(len(rows)))
        self.tiers.add(codes, 1, o.cost_usd[rows])
        self.tiers.add(codes, 2, default_cost)
        self.tiers.add(codes, 3, np.where(finite, latency, 0.0))
        self.tiers.add(codes, 4, finite.astype(np.float64))
        days = p.ts[rows] // _NS_PER_DAY
        for key, day in set(zip(keys.tolist(), days.tolist())):
            tier, model = key.split("|", 1)
            self.tier_origins.setdefault(key, set()).add(
                p.catalog.tier_price_origin(model, tier, int(day) * _NS_PER_DAY))

    def merge(self, other: PolicyAccumulator) -> PolicyAccumulator:
        self.merge_totals(other)
        self.savings += other.savings
        self.tiers.merge(other.tiers)
        for key, origins in other.tier_origins.items():
            self.tier_origins.setdefault(key, set()).update(origins)
        for k, v in other.money.items():
            self.money[k] += v
        self.blocks.merge(other.blocks)
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        for k, v in other.translation.items():
            self.translation[k] = self.translation.get(k, 0) + v
        self.assumptions += [a for a in other.assumptions if a not in self.assumptions]
        self.changed_any |= other.changed_any
        self.methods |= other.methods
        self.moved.merge(other.moved)
        for key, value in other.extras.items():
            if isinstance(value, dict) and isinstance(self.extras.get(key), dict):
                self.extras[key].update(value)
            else:
                self.extras[key] = value
        return self

    @property
    def moves(self) -> pd.DataFrame:
        """The moves table (:mod:`simulator.summary.moves`) of the requests accumulated so far."""
        return self.moved.frame()

    def moves_table(self) -> pd.DataFrame:
        """Requests moved per (workflow_tag, from_model, to_model), sorted: the table ``simulator.evals`` takes."""
        from simulator.summary.moves import accuracy_moves

        return accuracy_moves(self.moves)


class Breakdowns:
    """Requests and cost per team, project, workflow and model: recorded, and per candidate (cost, changed)."""

    def __init__(self, candidates: int) -> None:
        self.k = candidates
        self.labels = {by: Labels(2 + 2 * candidates) for by in BREAKDOWNS}
        self._codes: dict[str, np.ndarray] = {}

    def add_baseline(self, p, base) -> None:
        for by in BREAKDOWNS:
            keys = model_keys(p, base.model) if by == "model" else attribution_keys(p.frame, by)
            codes = self._codes[by] = self.labels[by].codes(keys)
            self.labels[by].count(codes, 0)
            self.labels[by].add(codes, 1, base.cost_usd)

    def add_candidate(self, k: int, o, p=None) -> None:
        """Add candidate ``k``'s outcome; ``p`` when the chunk's baseline was added elsewhere (another partition)."""
        for by in BREAKDOWNS:
            if p is not None:
                keys = model_keys(p, p.model) if by == "model" else attribution_keys(p.frame, by)
                codes = self.labels[by].codes(keys)
            else:
                codes = self._codes[by]
            self.labels[by].add(codes, 2 + 2 * k, o.cost_usd)
            self.labels[by].count(codes, 3 + 2 * k, o.changed)

    def without_row_codes(self) -> Breakdowns:
        """This accumulator without the last chunk's per-row codes (before shipping it elsewhere)."""
        self._codes = {}
        return self

    def merge(self, other: Breakdowns) -> Breakdowns:
        for by in BREAKDOWNS:
            self.labels[by].merge(other.labels[by])
        self._codes = {}
        return self

    def tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {by: self.labels[by].sorted() for by in BREAKDOWNS}


def model_keys(p, codes: np.ndarray) -> pd.Categorical:
    """Model ids of a chunk's model codes as group keys."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(p.vocab, dtype=object))


def block_keys(p, unit: str, ts_min: int) -> np.ndarray:
    """Interval block of each row: the minute from the window start (``simulator.summary.intervals`` builds its
    day and hour blocks from minute sums), or the session (the request when it has none)."""
    from simulator.summary.intervals import BLOCK_NS

    if unit == "session":
        sessions = p.frame["session_id"].to_numpy(dtype=object)
        return np.where(pd.isna(sessions), p.frame["request_id"].to_numpy(dtype=object), sessions)
    return (p.ts - ts_min) // BLOCK_NS
