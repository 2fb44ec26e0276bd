"""The ``service_tiers`` section of a policy in summary.json: what moving requests to batch, flex or priority
processing costs, what it does to latency, and what has to change to do it (a request parameter a gateway target
can set, or a client change no routing rule can make)."""

from __future__ import annotations

from typing import Any

from simulator.pricing.tiers import default_tiers
from simulator.summary.metrics import r6


def how_to_apply(tier) -> str:
    """The change that selects a tier, in one sentence."""
    if tier.client_change:
        return f"client change: {tier.client_change}"
    if tier.request_param:
        params = ", ".join(f"{k}: {v}" for k, v in tier.request_param.items())
        return (f"request parameter {{{params}}}: set it in the client, or on the gateway target "
                f"(TrueFoundry override_params)")
    return "nothing: the default tier"


def latency_text(tier, mean_ms: float | None) -> str:
    """The latency consequence of a tier for requests whose synchronous latency averaged ``mean_ms``."""
    before = f"{mean_ms:,.0f} ms on average" if mean_ms is not None else "not recorded"
    if tier.completion == "window":
        typical = f" ({tier.typical})" if tier.typical else ""
        return (f"results within {tier.window_text}{typical} instead of a synchronous answer ({before}); left out "
                "of the latency percentiles")
    if tier.latency == "unpublished":
        return f"kept as recorded ({before}); the provider publishes no latency figure for this tier"
    return f"kept as recorded ({before})"


def tier_report(acc, flex_unavailable_rate: float = 0.0) -> dict[str, Any] | None:
    """From a :class:`~simulator.summary.accumulate.PolicyAccumulator`; None when no rule changed a tier.
    ``flex_unavailable_rate``: the scenario's assumed share of flex requests refused (stated in the report)."""
    labels, sums = acc.tiers.sorted()
    ineligible = acc.counts.get("batch_ineligible", 0)
    unavailable = acc.counts.get("flex_unavailable", 0)
    if not len(labels) and not ineligible and not unavailable:
        return None
    tiers = default_tiers()
    rows = []
    for key, (requests, cost, default_cost, lat_sum, lat_n) in zip(labels, sums):
        name, model = str(key).split("|", 1)
        tier = tiers.tier(name)
        mean = float(lat_sum / lat_n) if lat_n else None
        rows.append({
            "service_tier": name, "model": model, "requests": int(requests), "cost_usd": r6(cost),
            "cost_at_default_tier_usd": r6(default_cost), "savings_usd": r6(default_cost - cost),
            "synchronous_latency_mean_ms": round(mean, 3) if mean is not None else None,
            "latency": latency_text(tier, mean),
            "completion_window": tier.window_text,
            "price_source": sorted(acc.tier_origins.get(str(key), ())),
            "how_to_apply": how_to_apply(tier),
        })
    out: dict[str, Any] = {"by_tier": rows, "batch_ineligible_requests": int(ineligible),
                           "flex_unavailable_requests": int(unavailable),
                           "flex_unavailable_rate": float(flex_unavailable_rate)}
    if ineligible:
        out["note"] = (f"{ineligible:,} request(s) matched a batch rule but are interactive (workflow not marked "
                       "interactive: false, or metadata says so): they stay on the default tier")
    return out


__all__ = ["how_to_apply", "latency_text", "tier_report"]
