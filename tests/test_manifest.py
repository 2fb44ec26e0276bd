"""datasets/MANIFEST.sha256 pins every committed data file."""

from __future__ import annotations

import hashlib
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
UNPINNED = {"README.md", "MANIFEST.sha256"}


def _manifest() -> dict[str, str]:
    entries = {}
    for number, line in enumerate((DATASETS / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        assert sep and len(digest) == 64, f"MANIFEST.sha256 line {number} is not in sha256sum format: {line!r}"
        entries[name] = digest
    return entries


def test_manifest_hashes_match_files():
    for name, digest in _manifest().items():
        path = DATASETS / name
        assert path.is_file(), f"{name} is listed in MANIFEST.sha256 but missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{name} changed; update MANIFEST.sha256"


def test_every_data_file_is_pinned():
    on_disk = {p.relative_to(DATASETS).as_posix() for p in DATASETS.rglob("*") if p.is_file()} - UNPINNED
    assert on_disk == set(_manifest())
