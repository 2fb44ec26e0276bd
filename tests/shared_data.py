"""Locate the project's shared datasets: ``../shared/data`` beside the repo, else ``/work/shared/data``."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def shared_data(name: str) -> Path:
    for root in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (root / name).is_dir():
            return root / name
    pytest.skip(f"shared dataset {name!r} not found in ../shared/data or /work/shared/data; copy shared/ beside the clone")
