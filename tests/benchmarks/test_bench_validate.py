"""`tfysim validate` on the main job's scenario (40,000 requests, 4 candidates, evals): a fresh process, imports
included, as a user runs it. Issue 20 asks for under 1.5 s on an idle machine; the reference is `tfysim --help`
in the same run (interpreter and CLI start-up), so the ratio says what validating itself costs.

Run: ``PYTHONPATH=$PWD python -m pytest tests/benchmarks/test_bench_validate.py -o addopts="" --benchmark-only``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _tfysim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "simulator", *args], cwd=REPO, env=ENV, check=True, capture_output=True)


@pytest.mark.benchmark(group="validate")
def test_bench_help(benchmark):
    benchmark.pedantic(_tfysim, args=("--help",), rounds=3, iterations=1)


@pytest.mark.benchmark(group="validate")
def test_bench_validate_premium_review(benchmark):
    benchmark.pedantic(_tfysim, args=("validate", "scenarios/premium-review.yaml"), rounds=3, iterations=1)
