"""Rate limits in time order (``gateway-rate-limiting-config``), with their state carried across chunks.

Only the first matching rule applies to a request. Windows are fixed UTC minutes, hours or days per (rule, key) slot;
a request is limited when its slot's usage in the current window already reached the limit (requests count 1, token
limits count input + output tokens); limited requests use nothing and get a 429, or go to the rule's fallback.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.routing.matching import match
from simulator.state import kernels
from simulator.state.slots import Slots

_NS = {"minute": 60 * 10**9, "hour": 3600 * 10**9, "day": 86_400 * 10**9}


def rate_window(ts: np.ndarray, unit: str) -> np.ndarray:
    """Fixed UTC window index of each timestamp (ns) for a rate-limit unit such as ``tokens_per_minute``."""
    return ts // _NS[unit.split("_per_")[1]]


class RateLimitState:
    """Per-slot usage and window, plus per-rule counters, for one candidate over successive chunks."""

    def __init__(self, cand) -> None:
        self.slots = Slots(used=(np.float64, 0.0), current=(np.int64, -1))
        self.totals = [{"limited": 0, "blocked": 0, "rerouted": 0, "avoided": 0.0} for _ in cand.rate_limits]

    def apply(self, p, o, cand, reroute) -> None:
        """Limit this chunk's live requests of ``o`` in time order; ``reroute(rows, target)`` prices a fallback."""
        slot = np.full(p.n, -1, dtype=np.int64)
        window = np.zeros(p.n, dtype=np.int64)
        amount = np.zeros(p.n, dtype=np.float64)
        limit = np.zeros(p.n, dtype=np.float64)
        has_fb = np.zeros(p.n, dtype=bool)
        rule_of = np.full(p.n, -1, dtype=np.int64)
        live = ~o.blocked
        for r_i, rule in enumerate(cand.rate_limits):
            rows = np.flatnonzero(match(p.view, rule.when) & (rule_of < 0) & live)
            if len(rows) == 0:
                continue
            slot[rows] = self.slots.get(r_i, p.view, rule.rate_limit_applies_per, rows)
            rule_of[rows] = r_i
            window[rows] = rate_window(p.ts[rows], rule.unit)
            tokens = rule.unit.startswith("tokens")
            amount[rows] = (o.input_tokens[rows] + o.output_tokens[rows]) if tokens else 1.0
            limit[rows] = rule.limit_to
            has_fb[rows] = rule.fallback is not None
        s = self.slots
        action = kernels.rate_limit_step(slot, window, amount, limit, has_fb, s.used, s.current)
        for r_i, rule in enumerate(cand.rate_limits):
            limited = (rule_of == r_i) & (action != kernels.ALLOW)
            blocked_rows = np.flatnonzero(limited & (action == kernels.BLOCK))
            fb_rows = np.flatnonzero(limited & (action == kernels.FALLBACK))
            avoided = float(o.cost_usd[blocked_rows].sum())
            if len(fb_rows):
                cost, sub = reroute(fb_rows, rule.fallback)
                avoided += float(o.cost_usd[fb_rows].sum() - cost.sum())
                o.serve_from(sub, fb_rows, cost)
                o.latency_ms[fb_rows] = p.estimate_latency(o.model[fb_rows], o.output_tokens[fb_rows])
            o.block(blocked_rows, 429)
            t = self.totals[r_i]
            t["limited"] += int(limited.sum())
            t["blocked"] += len(blocked_rows)
            t["rerouted"] += len(fb_rows)
            t["avoided"] += avoided

    def merge(self, other: RateLimitState) -> RateLimitState:
        """Fold in the counters of another partition holding other keys (the Dask engine)."""
        for mine, theirs in zip(self.totals, other.totals):
            for k in mine:
                mine[k] += theirs[k]
        return self

    def report(self, cand) -> list[dict[str, Any]]:
        """Per rule: requests limited, blocked, rerouted, and the spend they avoided."""
        return [{"id": rule.id, "requests_limited": t["limited"], "requests_blocked": t["blocked"],
                 "requests_rerouted": t["rerouted"], "spend_avoided_usd": round(t["avoided"], 6)}
                for rule, t in zip(cand.rate_limits, self.totals)]
