"""Fuzzing in the test suite: a hypothesis byte fuzzer over every loader (always), and each atheris target for a
few seconds when atheris is installed. Only TfysimError may come out of a loader; anything else is a crash."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
FUZZ = REPO / "tests" / "fuzz"
sys.path.insert(0, str(FUZZ))
import targets  # noqa: E402

SEEDS = {name: [p.read_bytes() for p in sorted((FUZZ / "seeds" / name).iterdir())] for name in targets.TARGETS}


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with a few random byte edits (flip, insert, delete, truncate), or random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_hypothesis_byte_fuzzer(name):
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=mutated(SEEDS[name]))
    def fuzz(data):
        targets.check(targets.TARGETS[name], data)

    fuzz()


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_seeds_load(name):
    for seed in SEEDS[name]:
        targets.check(targets.TARGETS[name], seed)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed (pip install atheris)")
@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_atheris_target_briefly(name, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    work = tmp_path / "corpus"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(FUZZ / f"fuzz_{name}.py"), str(work), str(FUZZ / "seeds" / name),
                           "-max_total_time=3", "-rss_limit_mb=4096", f"-artifact_prefix={tmp_path}/"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
