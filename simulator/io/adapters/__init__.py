"""Adapters: map a log source's export to the canonical traffic table's names (values are validated later).

One module per source; :func:`apply_adapter` is the one entry point (detection, ``--map`` renames, the expected-
columns check) and ``ADAPTERS`` the registry. Each adapter returns canonical columns plus ``_reject`` (a reason for
rows that are not requests, e.g. gateway cache hits or agent spans) and ``_row``.

| adapter | detected by | module |
|---|---|---|
| ``canonical`` | ``request_id``, ``timestamp``, ``model`` | the table as it is |
| ``truefoundry`` | ``ModelName`` | :mod:`.truefoundry` (analytics export) |
| ``truefoundry-spans`` | ``spanAttributes`` | :mod:`.truefoundry` (spans query API) |
| ``otel`` | OTLP ``resourceSpans`` | :mod:`.otel` |
| ``litellm`` | ``startTime`` with ``spend`` or ``model_group`` | :mod:`.litellm` |
| ``langfuse`` | ``usage_details`` or ``provided_model_name`` | :mod:`.langfuse` |
| ``helicone`` | ``response_status`` with ``request_created_at`` or ``response_created_at`` | :mod:`.helicone` |
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator

import pandas as pd

from simulator.errors import InputError
from simulator.io.adapters import helicone, langfuse, litellm, otel, truefoundry
from simulator.io.adapters.common import (
    ATTRIBUTION_KEYS, CANONICAL_COLUMNS, DEFAULT_TAG_PREFIXES, GATEWAY_CACHE_HIT, NOT_INFERENCE, REQUIRED, AdapterOptions, IngestNote,
)
from simulator.io.adapters.otel import expand_otlp_lines, is_otlp_lines, otlp_records

__all__ = ["ADAPTERS", "ATTRIBUTION_KEYS", "AdapterOptions", "DEFAULT_TAG_PREFIXES", "GATEWAY_CACHE_HIT",
           "IngestNote", "NOT_INFERENCE", "REQUIRED", "apply_adapter", "collect_notes", "detect_adapter",
           "not_model_calls", "expand_otlp_lines",
           "is_otlp_lines", "otlp_records"]


@dataclasses.dataclass(frozen=True)
class Adapter:
    """One log source: its function, a name for messages, the source columns it reads, and for tabular exports
    the columns that must exist (canonical name -> alternatives)."""

    fn: Callable[[pd.DataFrame, AdapterOptions], pd.DataFrame]
    label: str
    columns: tuple[str, ...] = ()
    needs: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _canonical(frame: pd.DataFrame, options: AdapterOptions) -> pd.DataFrame:
    return frame.copy()


ADAPTERS: dict[str, Adapter] = {
    "canonical": Adapter(_canonical, "canonical traffic table"),
    "truefoundry": Adapter(truefoundry.analytics, "TrueFoundry analytics export", truefoundry.COLUMNS,
                           truefoundry.NEEDS),
    "truefoundry-spans": Adapter(truefoundry.spans, "TrueFoundry spans API export", truefoundry.SPAN_COLUMNS),
    "otel": Adapter(otel.otel, "OpenTelemetry OTLP trace export"),
    "litellm": Adapter(litellm.litellm, "LiteLLM SpendLogs export", litellm.COLUMNS, litellm.NEEDS),
    "langfuse": Adapter(langfuse.langfuse, "Langfuse observations export", langfuse.COLUMNS, langfuse.NEEDS),
    "helicone": Adapter(helicone.helicone, "Helicone export", helicone.COLUMNS, helicone.NEEDS),
}
_INTERNAL = {"_row", "_source", "_otlp"}


def detect_adapter(columns: set[str]) -> str | None:
    """The adapter whose marker columns the export has, or None."""
    if "_otlp" in columns or "resourceSpans" in columns or "resource_spans" in columns:
        return "otel"
    if {"request_id", "timestamp", "model"} <= columns:
        return "canonical"
    if "ModelName" in columns:
        return "truefoundry"
    if "spanAttributes" in columns:
        return "truefoundry-spans"
    if "startTime" in columns and ({"spend", "model_group"} & columns):
        return "litellm"
    if {"usage_details", "provided_model_name"} & columns:
        return "langfuse"
    if "response_status" in columns and {"request_created_at", "response_created_at"} & columns:
        return "helicone"
    return None


def _shown(columns: list[str], limit: int = 12) -> str:
    """Column names safe to echo in an error (identifier-like names only, truncated; never a header's raw values)."""
    from simulator.io.readers import shown_columns

    return shown_columns(columns, limit)


def _check_needs(name: str, columns: set[str], mapped: set[str], unused: list[str], where: str) -> None:
    adapter = ADAPTERS[name]
    lacking = [" or ".join(alts) for canon, alts in adapter.needs.items()
               if canon not in mapped and not set(alts) & columns]
    if not lacking:
        return
    hint = f" Columns not used: {_shown(unused)}." if unused else ""
    looks = detect_adapter(columns)
    if looks and looks != name:
        hint += f" The columns look like a {ADAPTERS[looks].label}: try --adapter {looks} (or leave --adapter out)."
    raise InputError(
        f"{where}: read as a {adapter.label} (adapter '{name}') but it has no {', '.join(lacking)} column. "
        f"The {name} adapter reads: {', '.join(adapter.columns)}.{hint} Rename the columns, map them with "
        f"--map CANONICAL=SOURCE (e.g. --map request_id=RequestId), or choose another --adapter "
        f"({', '.join(ADAPTERS)}).")


def apply_adapter(frame: pd.DataFrame, name: AdapterOptions | str | None, mapping: dict[str, str] | None,
                  where: str) -> pd.DataFrame:
    """Rename by ``mapping`` (canonical name -> source column), pick the adapter, and return canonical names.

    ``name`` is an adapter name or :class:`AdapterOptions` (None: detect from the columns). Mapped columns win over
    what the adapter derives. With a mapping, the source columns no one reads are named in an :class:`IngestNote`.
    """
    options = AdapterOptions.of(name)
    mapping = dict(mapping or {})
    if mapping:
        missing = [src for src in mapping.values() if src not in frame.columns]
        if missing:
            raise InputError(f"{where}: column mapping names '{missing[0]}', which is not a column of the file "
                             f"(columns: {_shown(sorted(c for c in frame.columns if c not in _INTERNAL))}).")
        frame = frame.rename(columns={src: dst for dst, src in mapping.items()})
    columns = set(frame.columns)
    chosen = options.name or detect_adapter(columns)
    if chosen is None:
        absent = [c for c in REQUIRED if c not in columns]
        shown = _shown(sorted(c for c in columns if c not in _INTERNAL), 8)
        hint = ""
        named = [str(c) for c in columns if c not in _INTERNAL]
        if len(named) == 1 and any(d in named[0] for d in ";\t|"):
            hint = " The header looks like it uses another delimiter; export with commas."
        raise InputError(
            f"{where}: missing required column(s) {', '.join(absent)} (found: {shown}).{hint} "
            f"Rename them, pass --map canonical=source, or choose --adapter {'|'.join(ADAPTERS)}."
        )
    if chosen not in ADAPTERS:
        from simulator.errors import did_you_mean

        raise InputError(f"unknown adapter '{chosen}'.{did_you_mean(chosen, ADAPTERS)} "
                         f"Choose one of: {', '.join(ADAPTERS)}.")
    adapter = ADAPTERS[chosen]
    if chosen == "otel" and is_otlp_lines(frame):
        frame, _ = expand_otlp_lines(frame)  # a caller that did not expand OTLP lines itself
    read = set(adapter.columns) if chosen != "canonical" else set(REQUIRED) | set(CANONICAL_COLUMNS)
    unused = sorted(c for c in frame.columns if c not in read and c not in mapping and c not in _INTERNAL)
    if chosen == "canonical":
        absent = [c for c in REQUIRED if c not in columns]
        if absent:  # a whole missing column is a file problem, not one reject per row
            hint = f" Columns not used: {_shown(unused)}." if unused else ""
            raise InputError(f"{where}: missing required column(s) {', '.join(absent)} "
                             f"(found: {_shown(sorted(c for c in columns if c not in _INTERNAL), 8)}).{hint} "
                             "Rename them or pass --map canonical=source.")
    elif adapter.needs:
        _check_needs(chosen, columns, set(mapping), unused, where)
    if mapping and unused and (adapter.columns or chosen == "canonical"):
        warnings.warn(f"--map: {where}: columns not used by the {chosen} adapter: {_shown(unused)}", IngestNote,
                      stacklevel=2)
    out = adapter.fn(frame, options)
    for canon in mapping:
        if chosen != "canonical" and canon in frame.columns:
            out[canon] = frame[canon]
    if "_row" not in out.columns and "_row" in frame.columns:
        out["_row"] = frame["_row"]
    out["_source"] = frame["_source"].iloc[0] if "_source" in frame.columns and len(frame) else where
    return out




@contextlib.contextmanager
def collect_notes() -> Iterator[list[str]]:
    """Collect the :class:`IngestNote` messages raised while reading (each distinct note once, in order)."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IngestNote)
        yield notes
    for w in caught:
        if issubclass(w.category, IngestNote) and str(w.message) not in notes:
            notes.append(str(w.message))
        elif not issubclass(w.category, IngestNote):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def not_model_calls(reasons) -> int:
    """How many reject reasons mark rows that are not model calls by design (agent and tool spans, gateway cache
    hits): they stay in ``rows_rejected`` so ``rows_read == rows_replayed + rows_rejected`` holds, and are reported
    apart from defects (``--strict`` ignores them)."""
    return sum(1 for r in reasons if isinstance(r, str) and r.startswith((NOT_INFERENCE, GATEWAY_CACHE_HIT)))
