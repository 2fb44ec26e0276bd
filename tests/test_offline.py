"""Offline: the CLI works in a subprocess whose sockets cannot be created (a sitecustomize blocks them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "tests" / "fixtures" / "privacy" / "scenario.yaml"
BLOCKER = '''
import socket

def _refuse(*args, **kwargs):
    raise OSError("tfysim offline test: network access attempted")


class _NoSocket(socket.socket):  # a class, so modules that subclass socket.socket (ssl) still import
    def __init__(self, *args, **kwargs):
        _refuse()


socket.socket = _NoSocket
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


def _env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _tfysim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *args], env=_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_the_blocker_blocks(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import socket; socket.socket()"], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "network access attempted" in proc.stderr


def test_cli_runs_with_sockets_blocked(tmp_path):
    for args in (["validate", str(SCENARIO)],
                 ["run", str(SCENARIO), "--out", str(tmp_path / "out"), "--json"],
                 ["replay", str(SCENARIO.parent / "traffic.jsonl"), "--json"],
                 ["drift", "--traffic", str(SCENARIO.parent / "traffic.jsonl"), "--from", "openai-main/gpt-4o",
                  "--to", "anthropic-main/claude-haiku-4-5", "--json"]):
        proc = _tfysim(tmp_path, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "summary.json").is_file()
