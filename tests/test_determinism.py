"""Determinism: the same scenario gives byte-identical outputs in-process twice, and in a subprocess with another
PYTHONHASHSEED and single-threaded numeric libraries (every text output in the folder is compared)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from simulator.cli import cli
from tests.outputs_scan import text_outputs

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "tests" / "fixtures" / "privacy" / "scenario.yaml"  # routing split, budgets, rate limits, a reject


def _run_in_process(out: Path) -> dict[str, bytes]:
    result = CliRunner().invoke(cli, ["run", str(SCENARIO), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return text_outputs(out)


def test_two_runs_are_byte_identical(tmp_path):
    first, second = _run_in_process(tmp_path / "a"), _run_in_process(tmp_path / "b")
    assert "summary.json" in first and "rejects.jsonl" in first
    assert first == second


def test_other_hash_seed_and_thread_count_give_the_same_bytes(tmp_path):
    expected = _run_in_process(tmp_path / "a")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "4242", "OMP_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(SCENARIO), "--out", str(tmp_path / "b")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert text_outputs(tmp_path / "b") == expected
