"""Compiled sequential passes for the time-ordered parts of a replay (budgets and rate limits).

Inputs are plain arrays in time order; state is per (rule, key) slot and resets when the slot's window changes.
Everything else in the replay is vectorised numpy.
"""

from __future__ import annotations

import numpy as np
from simulator.jit import njit

ALLOW, BLOCK, FALLBACK = 0, 1, 2


def rate_limit_pass(slot, window, amount, limit, has_fallback, n_slots):
    """Fixed-window rate limiting; ``slot`` is -1 for rows no rule matches.

    A request is limited when the amount already used in its slot's current window is >= the limit
    (requests count 1, token limits count input + output tokens). Limited requests use nothing.
    Returns the action per row: ALLOW, BLOCK (429) or FALLBACK.
    """
    used = np.zeros(n_slots, dtype=np.float64)
    current = np.full(n_slots, -1, dtype=np.int64)
    return rate_limit_step(slot, window, amount, limit, has_fallback, used, current)


@njit(cache=True, nogil=True)
def rate_limit_step(slot, window, amount, limit, has_fallback, used, current):  # pragma: no cover - compiled
    """:func:`rate_limit_pass` over one chunk; ``used`` / ``current`` (per slot) carry the state and are updated."""
    n = slot.shape[0]
    action = np.zeros(n, dtype=np.int8)
    for i in range(n):
        s = slot[i]
        if s < 0:
            continue
        if current[s] != window[i]:
            current[s] = window[i]
            used[s] = 0.0
        if used[s] >= limit[i]:
            action[i] = FALLBACK if has_fallback[i] else BLOCK
        else:
            used[s] += amount[i]
    return action


def budget_pass(match_ptr, match_slot, match_window, match_limit, decide_audit, has_fallback,
                cost, fallback_cost, tokens, fallback_tokens, is_tokens, n_slots):
    """Budget ceilings in time order.

    Row i matches the (rule, key) slots ``match_slot[match_ptr[i]:match_ptr[i+1]]`` (in rule order); the first
    one decides. Spend already accumulated in that slot's current window >= its limit -> BLOCK, or FALLBACK when the
    rule has one (audit-mode rules only count). What executes is added to every matching slot.
    Returns (action per row, spend per slot at the end, index of the row at which each slot first reached its limit).
    """
    spent = np.zeros(n_slots, dtype=np.float64)
    current = np.full(n_slots, -1, dtype=np.int64)
    reached_at = np.full(n_slots, -1, dtype=np.int64)
    action = budget_step(match_ptr, match_slot, match_window, match_limit, decide_audit, has_fallback, cost,
                         fallback_cost, tokens, fallback_tokens, is_tokens, spent, current, reached_at, 0)
    return action, spent, reached_at


@njit(cache=True, nogil=True)
def budget_step(match_ptr, match_slot, match_window, match_limit, decide_audit, has_fallback, cost, fallback_cost,
                tokens, fallback_tokens, is_tokens, spent, current, reached_at, row_base):  # pragma: no cover
    """:func:`budget_pass` over one chunk: ``spent`` / ``current`` / ``reached_at`` (per slot) carry the state and
    are updated in place; ``reached_at`` records ``row_base + i``. Returns the action per row."""
    n = match_ptr.shape[0] - 1
    action = np.zeros(n, dtype=np.int8)
    for i in range(n):
        lo = match_ptr[i]
        hi = match_ptr[i + 1]
        if lo == hi:
            continue
        for j in range(lo, hi):
            s = match_slot[j]
            if current[s] != match_window[j]:
                current[s] = match_window[j]
                spent[s] = 0.0
        first = match_slot[lo]
        executed = cost[i]
        used = tokens[i]
        if spent[first] >= match_limit[lo] and not decide_audit[lo]:
            if has_fallback[lo]:
                action[i] = FALLBACK
                executed = fallback_cost[i]
                used = fallback_tokens[i]
            else:
                action[i] = BLOCK
                executed = 0.0
                used = 0.0
        for j in range(lo, hi):
            s = match_slot[j]
            before = spent[s]
            spent[s] += used if is_tokens[j] else executed
            if before < match_limit[j] <= spent[s] and reached_at[s] < 0:
                reached_at[s] = row_base + i
    return action
