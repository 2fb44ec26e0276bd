"""Shared fixtures: no network for any test, repository paths, the shared data folder."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SMALL_TRAFFIC = FIXTURES / "small_traffic.csv"


def shared_data() -> Path | None:
    """../shared/data beside the clone (CI), else /work/shared/data; None when absent."""
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return None


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with socket creation failing: tfysim must never reach the network."""

    def refuse(*args, **kwargs):
        raise NetworkBlocked("network access attempted during a test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture
def chdir_repo(monkeypatch):
    monkeypatch.chdir(REPO)
    return REPO


os.environ.setdefault("MPLBACKEND", "Agg")
