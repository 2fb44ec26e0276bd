"""Per-request outcomes as Parquet (``--write-requests``): one file per candidate, written chunk by chunk.

No user ids and no prompt text: the columns say what happened to each request, not who sent it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.pricing.tiers import TIERS


def requests_frame(p, base, outcome) -> pd.DataFrame:
    """Per-request outcomes of one candidate over one chunk."""
    vocab = np.array(p.vocab, dtype=object)
    f = p.frame
    return pd.DataFrame({
        "request_id": f["request_id"].to_numpy(dtype=object),
        "timestamp": f["timestamp"].to_numpy(),
        "recorded_model": vocab[p.model],
        "model": vocab[outcome.model],
        "changed": outcome.changed,
        "blocked": outcome.blocked,
        "fallback": outcome.fallback,
        "status_code": outcome.status,
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "cache_read_tokens": outcome.cache_read_tokens,
        "cache_write_tokens": outcome.cache_write_tokens,
        "baseline_cost_usd": base.cost_usd,
        "cost_usd": outcome.cost_usd,
        "latency_ms": outcome.latency_ms,
        "token_translation": outcome.translation.astype(str),
        "service_tier": np.array(TIERS, dtype=object)[outcome.service_tier],
        "team": f["team"].to_numpy(dtype=object),
        "project": f["project"].to_numpy(dtype=object),
        "workflow_tag": f["workflow_tag"].to_numpy(dtype=object),
    })


def _schema():
    import pyarrow as pa

    text, i64, f64, flag = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    return pa.schema([
        ("request_id", text), ("timestamp", pa.timestamp("ns", tz="UTC")), ("recorded_model", text), ("model", text),
        ("changed", flag), ("blocked", flag), ("fallback", flag), ("status_code", i64), ("input_tokens", i64),
        ("output_tokens", i64), ("cache_read_tokens", i64), ("cache_write_tokens", i64), ("baseline_cost_usd", f64),
        ("cost_usd", f64), ("latency_ms", f64), ("token_translation", text), ("service_tier", text), ("team", text), ("project", text),
        ("workflow_tag", text),
    ])


class RequestsWriter:
    """A replay observer that appends every chunk's outcomes to ``<candidate>.parquet`` in a temporary folder;
    :meth:`files` lists them once the replay is done (the run's writer moves them into the output folder)."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="tfysim-requests-")
        self._writers: dict[str, object] = {}

    def __call__(self, p, base, outcomes) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema()
        for o in outcomes:
            frame = requests_frame(p, base, o)
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            writer = self._writers.get(o.name)
            if writer is None:
                writer = self._writers[o.name] = pq.ParquetWriter(
                    Path(self.folder.name) / f"{o.name}.parquet", schema, compression="zstd")
            writer.write_table(table)

    def files(self) -> list[Path]:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        return sorted(Path(self.folder.name).glob("*.parquet"))
