"""Helpers shared by the privacy and determinism tests: every file a run writes, as bytes."""

from __future__ import annotations

from pathlib import Path

TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".md", ".html", ".csv", ".txt", ".svg"}


def output_files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder`` (all of them, so new outputs are covered too)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def text_outputs(folder: Path) -> dict[str, bytes]:
    return {name: data for name, data in output_files(folder).items() if Path(name).suffix.lower() in TEXT_SUFFIXES}
