"""Budget ceilings in time order (``gateway-budget-config``), with their state carried across chunks.

Spend is tracked against every matching rule; the first matching rule decides (block with a 429, fall back to its
``on_exceed`` target, or only count in ``audit_mode``). Windows reset in UTC: daily at midnight, weekly on Monday
00:00, monthly on the 1st, quarterly. Budgets see the executed model and cost (after routing, caching and rate
limits), as the gateway does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from simulator.routing.matching import match
from simulator.state import kernels
from simulator.state.slots import Slots

_NS_PER_DAY = 86_400 * 10**9


def budget_window(ts: np.ndarray, unit: str) -> np.ndarray:
    """UTC window index: day from midnight, week from Monday 00:00, month from the 1st, quarter."""
    days = ts // _NS_PER_DAY
    period = unit.split("_per_")[1]
    if period == "day":
        return days
    if period == "week":
        return (days + 3) // 7  # 1970-01-01 was a Thursday; +3 makes weeks start on Monday
    months = pd.DatetimeIndex(ts.astype("datetime64[ns]"))
    month_index = (months.year.to_numpy() - 1970) * 12 + months.month.to_numpy() - 1
    return month_index if period == "month" else month_index // 3


@dataclasses.dataclass
class BudgetMatches:
    """Which (rule, key) slots each row matches, in rule order, as a CSR layout for :mod:`simulator.state.kernels`."""

    ptr: np.ndarray  # row i matches entries ptr[i]:ptr[i+1]
    slot: np.ndarray
    window: np.ndarray
    limit: np.ndarray
    audit: np.ndarray
    has_fallback: np.ndarray
    tokens: np.ndarray  # the rule counts tokens, not USD
    deciding_rule: np.ndarray  # per row: index of the first matching rule (the one that decides), -1 for none

    def decider(self) -> np.ndarray:
        """The deciding (first matching) slot per row, or 0 for rows without any."""
        has = self.ptr[1:] > self.ptr[:-1]
        out = np.zeros(len(self.ptr) - 1, dtype=np.int64)
        out[has] = self.slot[self.ptr[:-1][has]]
        return out


def budget_matches(ts: np.ndarray, budgets, masks: list[np.ndarray], rule_slots: list[np.ndarray]) -> BudgetMatches:
    """The CSR of matches from each rule's row mask and per-row slot ids."""
    n = len(ts)
    counts = np.sum(masks, axis=0).astype(np.int64) if masks else np.zeros(n, np.int64)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    total = int(ptr[-1])
    out = BudgetMatches(ptr, np.zeros(total, np.int64), np.zeros(total, np.int64), np.zeros(total, np.float64),
                        np.zeros(total, bool), np.zeros(total, bool), np.zeros(total, bool),
                        np.full(n, -1, dtype=np.int64))
    fill = ptr[:-1].copy()
    for b_i, (b, mask) in enumerate(zip(budgets, masks)):
        rows = np.flatnonzero(mask)
        pos = fill[rows]
        out.slot[pos] = rule_slots[b_i][rows]
        out.window[pos] = budget_window(ts[rows], b.unit)
        out.limit[pos] = b.limit_to
        out.audit[pos] = b.audit_mode
        out.has_fallback[pos] = not isinstance(b.on_exceed, str)
        out.tokens[pos] = b.unit.startswith("tokens")
        first_here = out.deciding_rule[rows] < 0
        out.deciding_rule[rows[first_here]] = b_i
        fill[rows] += 1
    return out


def exempt_fallback_rows(p, o, cand, csr: BudgetMatches) -> None:
    """A request already served by its deciding budget's fallback model is never blocked by that budget (the
    gateway's audit-mode exemption rule decides for it, :mod:`simulator.routing.fallbacks`); its spend still
    counts. Updates ``csr.audit``."""
    for b_i, b in enumerate(cand.budgets):
        if isinstance(b.on_exceed, str):
            continue
        rows = np.flatnonzero((csr.deciding_rule == b_i) & (o.model == p.code(b.on_exceed.fallback)))
        csr.audit[csr.ptr[:-1][rows]] = True


class BudgetState:
    """Per-slot spend, window and counters for one candidate over successive chunks."""

    def __init__(self) -> None:
        self.slots = Slots(spent=(np.float64, 0.0), current=(np.int64, -1), reached_at=(np.int64, -1),
                           reached_ts=(np.int64, -1), blocked=(np.int64, 0), rerouted=(np.int64, 0),
                           avoided=(np.float64, 0.0))
        self.rows_done = 0

    def apply(self, p, o, cand, reroute) -> None:
        """Decide this chunk's live requests of ``o`` in time order; ``reroute(rows, target)`` prices a fallback."""
        budgets = cand.budgets
        live = ~o.blocked
        masks = [match(p.view, b.when) & live for b in budgets]
        rule_slots = []
        for b_i, (b, mask) in enumerate(zip(budgets, masks)):
            rows = np.flatnonzero(mask)
            keys = np.full(p.n, -1, dtype=np.int64)
            if len(rows):
                keys[rows] = self.slots.get(b_i, p.view, b.budget_applies_per, rows)
            rule_slots.append(keys)
        s = self.slots
        csr = budget_matches(p.ts, budgets, masks, rule_slots)
        exempt_fallback_rows(p, o, cand, csr)
        fallback_cost = np.zeros(p.n)
        fallback_tokens = np.zeros(p.n)
        tokens = (o.input_tokens + o.output_tokens).astype(np.float64)
        cost_now = np.where(o.blocked, 0.0, o.cost_usd)
        # The pass reads a row's fallback price only from the chunk's first fallback on: find that row with a dry
        # run on copies of the state (identical up to there, whatever the prices), then price the rows after it.
        first = 0
        if any(not isinstance(b.on_exceed, str) for b in budgets):
            dry = kernels.budget_step(csr.ptr, csr.slot, csr.window, csr.limit, csr.audit, csr.has_fallback,
                                      cost_now, fallback_cost, tokens, fallback_tokens, csr.tokens, s.spent.copy(),
                                      s.current.copy(), s.reached_at.copy(), self.rows_done)
            fell = np.flatnonzero(dry == kernels.FALLBACK)
            first = int(fell[0]) if len(fell) else p.n
        subs = []
        for b_i, b in enumerate(budgets):  # each row's deciding-rule fallback, priced before the pass
            if isinstance(b.on_exceed, str):
                continue
            rows = np.flatnonzero(csr.deciding_rule[first:] == b_i) + first
            if len(rows):
                cost, sub = reroute(rows, b.on_exceed.fallback)
                fallback_cost[rows] = cost
                fallback_tokens[rows] = sub.input_tokens[rows] + sub.output_tokens[rows]
                subs.append((rows, sub, cost))
        action = kernels.budget_step(csr.ptr, csr.slot, csr.window, csr.limit, csr.audit, csr.has_fallback, cost_now,
                                     fallback_cost, tokens, fallback_tokens, csr.tokens, s.spent, s.current,
                                     s.reached_at, self.rows_done)
        blocked_rows = np.flatnonzero(action == kernels.BLOCK)
        fell = action == kernels.FALLBACK
        fb_rows = np.flatnonzero(fell)
        decider = csr.decider()
        np.add.at(s.blocked, decider[blocked_rows], 1)
        np.add.at(s.avoided, decider[blocked_rows], o.cost_usd[blocked_rows])
        np.add.at(s.avoided, decider[fb_rows], o.cost_usd[fb_rows] - fallback_cost[fb_rows])
        np.add.at(s.rerouted, decider[fb_rows], 1)
        for rows, sub, cost in subs:
            take = fell[rows]
            if take.any():
                o.serve_from(sub, rows[take], cost[take])
                o.latency_ms[rows[take]] = p.estimate_latency(o.model[rows[take]], o.output_tokens[rows[take]])
        o.block(blocked_rows, 429)
        new = (s.reached_at >= self.rows_done) & (s.reached_ts < 0)
        s.reached_ts[new] = p.ts[s.reached_at[new] - self.rows_done]
        self.rows_done += p.n

    def merge(self, other: BudgetState) -> BudgetState:
        """Fold in the state of another partition holding other keys (the Dask engine)."""
        self.slots.merge(other.slots, add=("blocked", "rerouted", "avoided"), earliest=("reached_ts",))
        return self

    def report(self, cand) -> list[dict[str, Any]]:
        """Per (rule, key): when the ceiling was reached, requests blocked or rerouted, spend avoided."""
        s = self.slots
        out = []
        for slot in s.order():
            b_i, _, label = s.names[slot]
            b = cand.budgets[b_i]
            reached = int(s.reached_ts[slot])
            missing = label is None or (isinstance(label, float) and label != label)  # None or NaN: no value
            key = None if label == "*" or missing else str(label)  # raw: summary.privacy labels it
            out.append({
                "id": b.id, "key": key, "limit_to": b.limit_to, "unit": b.unit,
                "ceiling_reached_at": pd.Timestamp(reached, tz="UTC").isoformat() if reached >= 0 else None,
                "requests_blocked": int(s.blocked[slot]), "requests_rerouted": int(s.rerouted[slot]),
                "spend_avoided_usd": round(float(s.avoided[slot]), 6), "audit_mode": b.audit_mode,
            })
        return out
