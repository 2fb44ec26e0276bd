"""Fuzz entry points: feed bytes to one loader; a ``TfysimError`` is a correct answer, anything else is a crash.

Used by the atheris targets (``fuzz_*.py``, coverage-guided) and by ``tests/test_fuzz_smoke.py`` (hypothesis bytes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from simulator.errors import TfysimError

NOW = pd.Timestamp("2027-01-01", tz="UTC")  # fixed clock: the "future" check must not depend on the day
_DIR = Path(tempfile.mkdtemp(prefix="tfysim-fuzz-"))


def _file(name: str, data: bytes) -> Path:
    path = _DIR / name
    path.write_bytes(data)
    return path


def _traffic(name: str, data: bytes) -> None:
    from simulator.io.traffic import load_traffic

    loaded = load_traffic([_file(name, data)], now=NOW)
    assert loaded.rows_read == loaded.rows_replayed + loaded.rows_rejected
    assert loaded.frame["request_id"].is_unique


def csv(data: bytes) -> None:
    _traffic("t.csv", data)


def jsonl(data: bytes) -> None:
    _traffic("t.jsonl", data)


def json_otlp(data: bytes) -> None:
    _traffic("t.json", data)


def parquet(data: bytes) -> None:
    _traffic("t.parquet", data)


def metadata(data: bytes) -> None:
    """The bytes as the metadata of one row, in a CSV cell and as a raw JSON value in JSONL, under small limits so
    the depth and length limits are reached often. A kept row's metadata must be a JSON object within them."""
    import json

    from simulator.io.columns import json_depth
    from simulator.io.limits import Limits
    from simulator.io.traffic import load_traffic

    limits = Limits(max_metadata_depth=8, max_value_bytes=2048)
    text = data.decode("utf-8", errors="replace").replace("\x00", "")
    good = "ok,2026-11-16T09:00:00Z,m/a,1,1,\n"
    csv_text = ("request_id,timestamp,model,input_tokens,output_tokens,metadata\n" + good +
                'r,2026-11-16T09:00:01Z,m/a,1,1,"' + text.replace('"', '""') + '"\n')
    line = '{"request_id":"r","timestamp":"2026-11-16T09:00:01Z","model":"m/a","input_tokens":1,"output_tokens":1,'
    jsonl_text = (line.replace('"r"', '"ok"') + '"metadata":null}\n' + line + '"metadata":' +
                  text.replace("\n", " ") + "}\n")
    for name, body in (("m.csv", csv_text), ("m.jsonl", jsonl_text)):
        loaded = load_traffic([_file(name, body.encode("utf-8"))], now=NOW, limits=limits)
        assert loaded.rows_read == loaded.rows_replayed + loaded.rows_rejected
        for value in loaded.frame["metadata"].dropna():
            parsed = json.loads(value)
            assert isinstance(parsed, dict) and json_depth(parsed) <= limits.max_metadata_depth


#: Small limits for the adapter and scenario targets, so the value, depth and token limits are reached often.
def _small_limits():
    from simulator.io.limits import Limits

    return Limits(max_value_bytes=2048, max_metadata_depth=8, max_columns=64, max_tokens=10**7)


def otel(data: bytes) -> None:
    """The bytes through the OTel adapter under small limits: as OTLP JSON (``ExportTraceServiceRequest``) and as
    one Collector file-exporter line each (JSON Lines); every kept row must be a model call with its counts."""
    from simulator.io.traffic import load_traffic

    lines = b"\n".join(line for line in data.replace(b"\r", b"").split(b"\n") if line.strip()) + b"\n"
    for name, body in (("o.json", data), ("o.jsonl", lines)):
        loaded = load_traffic([_file(name, body)], adapter="otel", now=NOW, limits=_small_limits())
        assert loaded.rows_read == loaded.rows_replayed + loaded.rows_rejected
        assert loaded.frame["request_id"].is_unique
        frame = loaded.frame
        assert frame["model"].notna().all() and (frame["input_tokens"] >= 0).all()


#: The traffic the scenario target's scenarios name (one good row, one row past the small limits).
_SCENARIO_TRAFFIC = ("request_id,timestamp,model,input_tokens,output_tokens,user_id,workflow_tag,metadata\n"
                     'a,2026-11-16T09:00:00Z,openai-main/gpt-4o,10,1,u,x,"{""workflow_tag"": ""x""}"\n'
                     "b,2026-11-16T09:00:01Z,openai-main/gpt-4o,99999999999,1,u,x,\n")


def scenario_with_traffic(data: bytes) -> None:
    """The bytes as a scenario whose traffic (``t.csv``) is loaded with the scenario's own ingest options (adapter,
    columns, timezone) under small limits: a scenario cannot lift the limits or crash the ingest."""
    from simulator.io.traffic import load_traffic
    from simulator.routing.scenario import load_scenario

    _file("t.csv", _SCENARIO_TRAFFIC.encode())
    scenario = load_scenario(_file("s.yaml", data))
    paths = scenario.paths("traffic")
    if not paths or any(p.resolve().parent != _DIR.resolve() for p in paths):
        return  # traffic elsewhere on the machine: not this target's business
    loaded = load_traffic(paths, adapter=scenario.adapter, mapping=scenario.columns or None,
                          timezone=scenario.timezone, now=NOW, limits=_small_limits())
    assert loaded.rows_read == loaded.rows_replayed + loaded.rows_rejected
    assert (loaded.frame["input_tokens"] <= 10**7).all()


def scenario_yaml(data: bytes) -> None:
    from simulator.routing.scenario import load_scenario

    load_scenario(_file("s.yaml", data))


def overrides_yaml(data: bytes) -> None:
    from simulator.pricing.overrides import load_overrides

    load_overrides(_file("p.yaml", data))


TARGETS = {"csv": csv, "jsonl": jsonl, "json": json_otlp, "parquet": parquet, "metadata": metadata,
           "otel": otel, "scenario": scenario_yaml, "scenario_traffic": scenario_with_traffic,
           "overrides": overrides_yaml}


def check(target, data: bytes) -> None:
    """Run one input; only TfysimError may escape the loader (re-raised here as success)."""
    try:
        target(data)
    except TfysimError:
        pass


def atheris_main(name: str) -> None:  # pragma: no cover - run as a script
    import sys

    import atheris

    target = TARGETS[name]

    def one_input(data: bytes) -> None:
        check(target, data)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    atheris.instrument_all() if os.environ.get("TFYSIM_FUZZ_INSTRUMENT_ALL") else None
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
