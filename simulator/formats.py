"""Numbers as a person writes them, in every text output (console, report, gate, configs' comments).

``-$5.29`` (the sign before the currency), never ``$-5.29`` or ``-$0.00``; percentages and percentage points to one
decimal, never ``-0.0``; timestamps to the minute. JSON keeps numbers: :func:`round_floats` rounds them to the
precision the text shows.
"""

from __future__ import annotations

from typing import Any


def money(usd: Any, digits: int = 2) -> str:
    """``$1,234.50``; ``-$5.29``; ``n/a`` for None. A value that rounds to zero prints as ``$0.00``."""
    if usd is None:
        return "n/a"
    usd = round(float(usd), digits)
    return ("-" if usd < 0 else "") + f"${abs(usd):,.{digits}f}"


def money_range(ci: Any, digits: int = 2) -> str:
    """An interval ``[low, high]`` in dollars: ``$1.00 to $2.50``; ``n/a`` when it is missing or has no low end."""
    return "n/a" if not ci or ci[0] is None else f"{money(ci[0], digits)} to {money(ci[1], digits)}"


def signed_money(usd: Any, digits: int = 2) -> str:
    """``+$5.29`` / ``-$5.29`` / ``$0.00``: a change."""
    text = money(usd, digits)
    return text if text.startswith(("-", "n")) or round(float(usd), digits) == 0 else "+" + text


def percent(value: Any, digits: int = 1, signed: bool = False) -> str:
    """A value already in percent: ``12.5%``; ``+12.5%`` when ``signed``; never ``-0.0%``."""
    if value is None:
        return "n/a"
    value = round(float(value), digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:+.{digits}f}%" if signed and value != 0 else f"{value:.{digits}f}%"


def points(value: Any, digits: int = 1) -> str:
    """Percentage points, signed: ``+1.2 pp``, ``-0.4 pp``, ``0.0 pp`` (never ``-0.0 pp``)."""
    if value is None:
        return "n/a"
    value = round(float(value), digits) + 0.0
    return f"{value:+.{digits}f} pp" if value != 0 else f"{0:.{digits}f} pp"


def minute(ts: Any) -> str:
    """An ISO timestamp (or pandas Timestamp) as ``2026-11-16 09:05 UTC``."""
    import pandas as pd

    if ts is None:
        return "n/a"
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"{stamp:%Y-%m-%d %H:%M} UTC"


def _places(key: str, digits: int) -> int:
    base = key[: -len("_ci95")] if key.endswith("_ci95") else key
    if base.endswith("_usd") or base.startswith("monthly_"):
        return 2  # money to the cent (intervals of monthly figures too)
    if base.endswith(("_pct", "_pp")) or base.startswith("accuracy_delta"):
        return 1  # percentages and percentage points to 0.1
    if base.endswith("_ms"):
        return 1
    return digits


def round_floats(obj: Any, digits: int = 4, key: str = "") -> Any:
    """A JSON-ready copy with floats rounded to the precision the text shows: money (``*_usd``, ``monthly_*`` and
    their ``*_ci95`` intervals) to the cent, ``*_pct`` / ``*_pp`` / accuracy changes to 0.1, ``*_ms`` to 0.1 ms, other
    floats (shares, ratios, days) to ``digits`` decimals; a list takes its key's precision; -0.0 becomes 0.0."""
    if isinstance(obj, dict):
        return {k: round_floats(v, digits, str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits, key) for v in obj]
    if isinstance(obj, float) and obj == obj and abs(obj) != float("inf"):
        return round(obj, _places(key, digits)) + 0.0
    return obj
