"""Dated, sourced values in tfysim's YAML data files: ``{value, since, source[, note]}`` or a list of them.

``since`` is the first UTC date a value is known to apply (the first entry also covers earlier dates); ``source`` is
a key of the file's ``sources:`` or a URL. Used by ``pricing/cache-rules.yaml`` and ``pricing/service-tiers.yaml``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from simulator.errors import did_you_mean

ENTRY_KEYS = {"value", "since", "source", "note"}


def as_date(value: Any, where: str, error: type[Exception]) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise error(f"{where}.since must be a date like 2026-11-26. Got {value!r} instead.") from None


def parse_history(spec: Any, *, origin: str, where: str, sources: dict[str, str],
                  value: Callable[[Any, str], Any], error: type[Exception]) -> list[tuple[dt.date, Any, str]]:
    """``[(since, value, source URL)]`` sorted by date; ``value(raw, dotted path)`` validates one value."""
    entries = spec if isinstance(spec, list) else [spec]
    history = []
    for i, entry in enumerate(entries):
        at = where + (f"[{i}]" if isinstance(spec, list) else "")
        if not isinstance(entry, dict) or "value" not in entry:
            raise error(f"`{origin}: {at}` must be {{value, since, source}}. Got {entry!r} instead.")
        for key in entry:
            if key not in ENTRY_KEYS:
                raise error(f"`{origin}: {at}.{key}` is not a known key; expected one of {sorted(ENTRY_KEYS)}."
                            + did_you_mean(str(key), ENTRY_KEYS))
        for required in ("since", "source"):
            if required not in entry:
                raise error(f"`{origin}: {at}` needs `{required}` (every value is dated and sourced).")
        source = str(entry["source"])
        url = sources.get(source, source)
        if not url.startswith("http"):
            raise error(f"`{origin}: {at}.source` must be a key of `sources` or a URL. Got {source!r} instead."
                        + did_you_mean(source, sources))
        history.append((as_date(entry["since"], f"`{origin}: {at}`", error), value(entry["value"], at), url))
    history.sort(key=lambda item: item[0])
    if len({h[0] for h in history}) != len(history):
        raise error(f"`{origin}: {where}` has two entries with the same `since` date.")
    return history


__all__ = ["ENTRY_KEYS", "as_date", "parse_history"]
