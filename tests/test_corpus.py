"""The bad-input corpus (tests/corpus/cases.yaml): every case exits with its code and exact one-line `Error:`, or
sends the bad row to rejects.jsonl with its reason; nothing prints a traceback. A few cases also run in a real
subprocess (``python -m simulator``) to prove no traceback reaches stderr outside click's test runner."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simulator.cli import cli

REPO = Path(__file__).resolve().parents[1]
CORPUS = yaml.safe_load((REPO / "tests" / "corpus" / "cases.yaml").read_text(encoding="utf-8"))
CASES = {case["id"]: case for case in CORPUS["cases"]}
HEADER, OK_ROW = CORPUS["header"], CORPUS["ok_row"]
JSONL_OK = ('{"request_id":"r1","timestamp":"2026-11-16T09:00:00Z","model":"openai-main/gpt-4o",'
            '"input_tokens":10,"output_tokens":1}\n')


def _laughs(levels: int, first_line: str) -> str:
    lines = [first_line, "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _generate(name: str, path: Path) -> None:
    """Inputs that are binary, large, or not files at all: made at test time instead of committed."""
    if name == "truncated_gzip":
        data = gzip.compress((HEADER + "\n" + OK_ROW + "\n").encode())
        path.write_bytes(data[: len(data) // 2])
    elif name == "non_utf8_csv":
        path.write_bytes(f"{HEADER}\n{OK_ROW}\n".encode() + b"r2,2026-11-16T09:00:00Z,openai-main/gpt-4o,1,1,0.1,\xff\xfe\n")
    elif name == "non_utf8_jsonl":
        path.write_bytes(JSONL_OK.encode() + b'{"request_id":"r\xff2"}\n')
    elif name == "non_utf8_yaml":
        path.write_bytes(b"name: corp\xe9s\n")
    elif name == "ten_mb_line":
        big = '{"request_id":"big","prompt":"' + "x" * (10 * 1024 * 1024) + '"}\n'
        path.write_text(JSONL_OK + big, encoding="utf-8")
    elif name == "deep_json_line":
        path.write_text(JSONL_OK + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    elif name == "huge_yaml":  # 17 MiB of comments: over the 16 MiB cap before any parsing
        path.write_text("name: corpus\n" + ("# " + "x" * 1022 + "\n") * (17 * 1024), encoding="utf-8")
    elif name == "deep_yaml":
        path.write_text("name: corpus\nx: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    elif name in ("parquet_bad_pandas_metadata", "parquet_truncated"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"request_id": ["r1"], "timestamp": ["2026-11-16T09:00:00Z"], "model": ["openai-main/gpt-4o"],
                          "input_tokens": [10], "output_tokens": [1]})
        if name == "parquet_bad_pandas_metadata":  # found by the atheris parquet target
            table = table.replace_schema_metadata({b"pandas": b'{"columns": [oops'})
        pq.write_table(table, path)
        if name == "parquet_truncated":
            path.write_bytes(path.read_bytes()[:-20])
    elif name == "parquet_invalid_utf8":  # found by the atheris parquet target
        import pyarrow as pa
        import pyarrow.parquet as pq

        bad = pa.array([b"r\xff1"], type=pa.binary()).view(pa.string())
        pq.write_table(pa.table({"request_id": bad, "timestamp": ["2026-11-16T09:00:00Z"],
                                 "model": ["openai-main/gpt-4o"], "input_tokens": [10], "output_tokens": [1]}), path)
    elif name == "parquet_garbage":
        path.write_bytes(b"PAR1 this is not parquet")
    elif name == "deep_metadata_csv":  # deeper than json's recursion limit: RecursionError on main
        meta = '{"a":' * 1200 + "1" + "}" * 1200
        path.write_text(f'{HEADER},metadata\n{OK_ROW},\nr2,2026-11-16T09:00:00Z,openai-main/gpt-4o,1,1,0.1,u,"'
                        + meta.replace('"', '""') + '"\n', encoding="utf-8")
    elif name == "deep_metadata_jsonl":
        meta = '{"a":' * 40 + "1" + "}" * 40
        path.write_text(JSONL_OK + '{"request_id":"r2","timestamp":"2026-11-16T09:00:00Z","model":"openai-main/gpt-4o",'
                        '"input_tokens":1,"output_tokens":1,"metadata":' + meta + "}\n", encoding="utf-8")
    elif name == "gzip_bomb":  # 2 MB of valid rows in a few KB
        rows = "".join(f"r{i},2026-11-16T09:00:00Z,openai-main/gpt-4o,10,1,0.1,u\n" for i in range(40_000))
        path.write_bytes(gzip.compress((HEADER + "\n" + rows).encode()))
    elif name in ("parquet_repeated_prompt", "parquet_repeated_id"):  # a 1 MB value stored once, used 3,000 times
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = 3000
        big = pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), ["x" * (1 << 20)])
        if name == "parquet_repeated_id":  # 3,000 rows with the 1 MB id, one good row
            ids = pa.chunked_array([big, pa.array(["r-ok"]).dictionary_encode()])
            n += 1
        else:
            ids = pa.array([f"r{i}" for i in range(n)])
        columns = {"request_id": ids, "timestamp": ["2026-11-16T09:00:00Z"] * n, "model": ["openai-main/gpt-4o"] * n,
                   "input_tokens": [10] * n, "output_tokens": [1] * n}
        if name == "parquet_repeated_prompt":
            columns["prompt"] = big
        pq.write_table(pa.table(columns), path)
    elif name == "dev_zero_link":
        path.symlink_to("/dev/zero")
    elif name == "fifo":
        os.mkfifo(path)
    elif name == "wide_csv":
        names = ["request_id", "timestamp", "model", "input_tokens", "output_tokens"] + [f"c{i}" for i in range(1000)]
        path.write_text(",".join(names) + "\n" + ",".join(["x"] * len(names)) + "\n", encoding="utf-8")
    elif name == "huge_header_csv":
        path.write_text(",".join(f"column_{i}" for i in range(120_000)) + "\n1\n", encoding="utf-8")
    elif name == "wide_parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({f"c{i}": [1] for i in range(1001)}), path)
    elif name == "long_value_csv":
        path.write_text(f"{HEADER}\n{OK_ROW}\nr2,2026-11-16T09:00:00Z,openai-main/gpt-4o,1,1,0.1,{'u' * 70_000}\n",
                        encoding="utf-8")
    elif name == "billion_laughs_scenario":
        path.write_text(_laughs(13, "name: corpus"), encoding="utf-8")
    elif name == "billion_laughs_overrides":
        path.write_text(_laughs(13, "# overrides"), encoding="utf-8")
    elif name == "symlink_outside":
        outside = path.parent.parent / "outside.yaml"
        outside.write_text("models: {}\n", encoding="utf-8")
        path.symlink_to(outside)
    else:  # pragma: no cover - a typo in cases.yaml
        raise AssertionError(f"unknown generator {name}")


def materialise(case: dict, root: Path) -> Path:
    """Write a case's files under ``root/case`` and return that folder (the working directory for the run)."""
    folder = root / "case"
    folder.mkdir(parents=True)
    for name, content in (case.get("files") or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            _generate(content["generate"], path)
        else:
            path.write_text(content.replace("{H}", HEADER).replace("{OK}", OK_ROW), encoding="utf-8")
    return folder


def _args(case: dict) -> list[str]:
    args = list(case["args"])
    if args[0] == "replay":
        args += ["--json", "--rejects", "rejects.jsonl"]
    return args


def check_outcome(case: dict, folder: Path, exit_code: int, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stderr and "Traceback" not in stdout
    # a real process logs one progress line per finished stage on a non-terminal stderr (issue 16)
    stderr = "".join(line for line in stderr.splitlines(keepends=True) if not line.startswith("tfysim: "))
    assert exit_code == case["exit"], (exit_code, stderr)
    if "error" in case:
        assert stderr == f"Error: {case['error']}\n"
        return
    assert stderr == ""
    if "rows" not in case:
        return
    if case["args"][0] == "replay":
        counts = json.loads(stdout)
        rejects_path = folder / "rejects.jsonl"
    else:
        counts = json.loads((folder / "out" / "summary.json").read_text())["traffic"]
        rejects_path = folder / "out" / "rejects.jsonl"
    read, replayed, rejected = case["rows"]
    assert (counts["rows_read"], counts["rows_replayed"], counts["rows_rejected"]) == (read, replayed, rejected)
    assert counts["rows_read"] == counts["rows_replayed"] + counts["rows_rejected"]
    if rejected:
        rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
        assert len(rejects) == rejected
        assert case["reject"] in {r["reason"] for r in rejects}
        assert all(set(r) == {"source", "row", "request_id", "reason"} and r["row"] >= 1 for r in rejects)


def test_corpus_is_large_and_ids_unique():
    assert len(CORPUS["cases"]) == len(CASES) >= 40


@pytest.mark.parametrize("case_id", list(CASES))
def test_corpus_case(case_id, tmp_path, monkeypatch):
    case = CASES[case_id]
    folder = materialise(case, tmp_path)
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(cli, _args(case), env=case.get("env"))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash: show it
    check_outcome(case, folder, result.exit_code, result.stdout, result.stderr)


SUBPROCESS_CASES = ["gzip-truncated", "csv-missing-required-column", "jsonl-deeply-nested", "scenario-billion-laughs",
                    "scenario-deeply-nested", "scenario-pricing-escapes-with-symlink", "overrides-negative-price",
                    "timestamp-year-1", "metadata-nested-past-recursion-limit", "gzip-expands-past-the-byte-limit",
                    "dev-zero-behind-a-csv-name", "fifo-as-traffic", "two-costs-of-1e308-do-not-overflow"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_corpus_case_in_subprocess(case_id, tmp_path):
    case = CASES[case_id]
    folder = materialise(case, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           **case.get("env", {})}
    proc = subprocess.run([sys.executable, "-m", "simulator", *_args(case)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    check_outcome(case, folder, proc.returncode, proc.stdout, proc.stderr)
