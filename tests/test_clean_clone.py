"""A clean clone of the committed tree runs README's two set-up commands (issue 20).

`.ci/run` runs them from scratch (a fresh clone, a fresh .venv). This test runs them in the suite at a fraction of
the cost: the clone reuses the environment running the tests (``TFYSIM_VENV``, nothing installed), `make review`
runs the main job in full, and `make test` runs one test file (the whole suite would run itself again).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None,
                                 reason="needs make and git"),
              pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")]


def test_a_clean_clone_runs_the_two_readme_commands(tmp_path):
    clone = tmp_path / "tfysim"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
    assert not (clone / ".venv").exists() and not (clone / "reports" / "premium-review").exists()
    env = {**os.environ, "TFYSIM_VENV": sys.prefix}
    env.pop("PYTHONPATH", None)  # the Makefile sets it to the clone
    review = subprocess.run(["make", "review"], cwd=clone, env=env, capture_output=True, text=True)
    assert review.returncode == 0, review.stderr[-2000:]
    out = clone / "reports" / "premium-review"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "premium-review" and summary["traffic"]["rows_read"] == 40_000
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert "premium-review: 40,000 requests replayed" in review.stdout
    tested = subprocess.run(["make", "test", "PYTEST_ARGS=-q -p no:cacheprovider tests/test_docs.py"], cwd=clone,
                            env=env, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout[-2000:]
    assert " passed" in tested.stdout and f"PYTHONPATH={clone}" in tested.stdout  # the clone's code was tested
