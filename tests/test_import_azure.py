"""simulator.io.importers.azure against the full trace (from shared/data) and the committed slice."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from simulator.errors import InputError
from simulator.io.importers.azure import import_azure

from tests.shared_data import REPO, shared_data

SLICE = REPO / "datasets" / "azure"


def _raw(path: Path):
    """Row count, token sums and first/last timestamp straight from the CSV (csv module, no pandas)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    first = datetime.strptime(rows[0]["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    last = datetime.strptime(rows[-1]["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return len(rows), sum(int(r["ContextTokens"]) for r in rows), sum(int(r["GeneratedTokens"]) for r in rows), first, last


@pytest.mark.parametrize("kind,rows", [("code", 8_819), ("conv", 19_366)])
def test_full_trace_counts_and_token_sums(kind, rows):
    path = shared_data("azure-llm-inference-2023") / f"AzureLLMInferenceTrace_{kind}.csv"  # skips when absent
    n, ctx, gen, first, last = _raw(path)
    assert n == rows
    traffic, rejects = import_azure(path, "openai-main/gpt-4o-mini")
    assert len(traffic) == rows and len(rejects) == 0
    assert int(traffic["input_tokens"].sum()) == ctx
    assert int(traffic["output_tokens"].sum()) == gen
    assert traffic["timestamp"].iloc[0] == pd.Timestamp(first)
    assert traffic["timestamp"].iloc[-1] == pd.Timestamp(last)
    assert traffic["request_id"].iloc[-1] == f"azure-{kind}-{rows:06d}"


def test_slice_fields_the_trace_lacks():
    path = SLICE / "AzureLLMInferenceTrace_code_first2000.csv"
    traffic, rejects = import_azure(path, "anthropic-main/claude-haiku-4-5")
    assert len(traffic) == 2000 and rejects.empty
    assert (traffic["status_code"] == 200).all()
    assert (traffic["model"] == "anthropic-main/claude-haiku-4-5").all()
    assert traffic["prompt"].isna().all() and traffic["session_id"].isna().all() and traffic["project"].isna().all()
    assert (traffic["metadata"] == "{}").all()
    assert traffic["cost_usd"].isna().all() and traffic["latency_ms"].isna().all()
    assert str(traffic["timestamp"].dtype) == "datetime64[ns, UTC]"
    # 2023-11-16 18:17:03.9799600 -> microseconds kept, the 7th digit dropped
    assert traffic["timestamp"].iloc[0] == pd.Timestamp("2023-11-16 18:17:03.979960", tz="UTC")
    assert traffic["request_id"].iloc[0] == "azure-code_first2000-000001"


def test_start_rebases_time_and_keeps_gaps():
    path = SLICE / "AzureLLMInferenceTrace_conv_first2000.csv"
    plain, _ = import_azure(path, "openai-main/gpt-5-mini")
    moved, _ = import_azure(path, "openai-main/gpt-5-mini", start="2026-11-16T09:00:00Z")
    assert moved["timestamp"].iloc[0] == pd.Timestamp("2026-11-16T09:00:00Z")
    assert (moved["timestamp"].diff().iloc[1:] == plain["timestamp"].diff().iloc[1:]).all()


def test_bad_rows_are_rejected_with_line_numbers(tmp_path):
    path = tmp_path / "AzureLLMInferenceTrace_code.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4808,10\n"
        "not a time,1,1\n"
        "2023-11-16 18:17:04.0319600,-5,8\n"
        "2023-11-16 18:17:05.0319600,7,x",
        encoding="utf-8",
    )
    traffic, rejects = import_azure(path, "openai-main/gpt-4o-mini")
    assert len(traffic) == 1
    assert rejects["line"].tolist() == [3, 4, 5]
    assert rejects["reason"].iloc[0].startswith("TIMESTAMP must")


def test_wrong_header_and_missing_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("time,in,out\n1,2,3\n", encoding="utf-8")
    with pytest.raises(InputError, match="columns must be TIMESTAMP, ContextTokens, GeneratedTokens"):
        import_azure(path, "openai-main/gpt-4o-mini")
    with pytest.raises(InputError, match="file not found"):
        import_azure(tmp_path / "missing.csv", "openai-main/gpt-4o-mini")
