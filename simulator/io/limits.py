"""Resource limits and plausible ranges for traffic input (documented in the README, section "Input limits").

A file beyond a whole-file limit is an ``InputError`` (one line, exit 2); a row beyond a per-value limit is rejected
with a reason naming the limit. Every default can be overridden with an environment variable of the same name in
upper case with a ``TFYSIM_`` prefix (``TFYSIM_MAX_FILE_BYTES=20e9``), or by passing ``Limits(...)`` to
:func:`simulator.io.traffic.load_traffic`.
"""

from __future__ import annotations

import dataclasses
import os

import pandas as pd

from simulator.errors import InputError


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-file and per-value bounds; see the module docstring."""

    #: decompressed bytes of one CSV/JSON/JSONL file; decoded bytes of plain text columns of one Parquet file
    max_file_bytes: int = 2 * 1024**3
    #: columns in one file (a CSV header line longer than 1 MiB is refused as well)
    max_columns: int = 1000
    #: bytes of one text value (ids, model names, attribution, metadata JSON); ``prompt`` has its own limit
    max_value_bytes: int = 64 * 1024
    #: bytes of one ``prompt`` value
    max_prompt_bytes: int = 16 * 1024**2
    #: nesting depth of the ``metadata`` JSON object (an object holding an object is depth 2)
    max_metadata_depth: int = 32
    #: tokens in one count column of one request (input, output, cache, prefix, block)
    max_tokens: int = 1_000_000_000
    #: recorded cost of one request, USD
    max_cost_usd: float = 100_000.0
    #: recorded latency of one request, ms (7 days: batch APIs report up to 24 h)
    max_latency_ms: float = 7 * 24 * 3600 * 1000.0
    #: earliest plausible request time (no hosted LLM gateway traffic before it), ISO-8601 UTC
    min_timestamp: str = "2020-01-01T00:00:00Z"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """Defaults, overridden by ``TFYSIM_<FIELD>`` environment variables."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"TFYSIM_{f.name.upper()}")
            if raw is None:
                continue
            try:
                if f.type == "str":
                    pd.Timestamp(raw)
                    values[f.name] = raw
                else:
                    number = float(raw)
                    if not number > 0:
                        raise ValueError
                    values[f.name] = int(number) if f.type == "int" else number
            except (ValueError, OverflowError):
                kind = "an ISO-8601 time" if f.type == "str" else "a number > 0"
                raise InputError(f"TFYSIM_{f.name.upper()} must be {kind}. Got {raw!r} instead.") from None
        return cls(**values)

    @property
    def min_timestamp_ns(self) -> int:
        ts = pd.Timestamp(self.min_timestamp)
        return (ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).value
