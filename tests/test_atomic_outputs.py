"""Atomic outputs: a run that fails while writing leaves no half-written summary.json or YAML, and no temp files;
one output folder per run (issue 17 item 16): the run is built beside ``--out`` and swapped in whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import simulator.outputs.files as output
from simulator.cli import cli
from simulator.outputs.writer import WRITERS
from tests.outputs_scan import output_files

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "tests" / "fixtures" / "privacy" / "scenario.yaml"


def _run(out: Path):
    return CliRunner().invoke(cli, ["run", str(SCENARIO), "--out", str(out)])


def test_failure_after_the_temp_file_is_written_leaves_no_summary(tmp_path, monkeypatch):
    real_replace = os.replace

    def fail_on_summary(src, dst):
        if Path(dst).name == "summary.json":
            assert Path(src).read_bytes().endswith(b"}\n")  # the temporary file was written in full
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(output.os, "replace", fail_on_summary)
    result = _run(tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and "No space left on device" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no out, no building folder, no .summary.json.* temp


def test_failure_mid_write_keeps_the_previous_complete_file(tmp_path, monkeypatch):
    assert _run(tmp_path / "out").exit_code == 0
    before = (tmp_path / "out" / "summary.json").read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(output.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    result = _run(tmp_path / "out")
    assert result.exit_code == 2 and "Input/output error" in result.stderr
    assert (tmp_path / "out" / "summary.json").read_bytes() == before
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_a_later_writer_failing_leaves_the_previous_run_whole(tmp_path, monkeypatch):
    """A failure after this run's summary.json was written: --out still holds the previous run, every file of it
    (never this run's summary beside the previous run's report and configs)."""
    assert _run(tmp_path / "out").exit_code == 0
    before = output_files(tmp_path / "out")

    def yaml_writer(result, folder, include_prompts):
        path = Path(folder) / "gateway.yaml"

        def boom(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(output.os, "replace", boom)
        output.write_text(path, "routing: {}\n" * 1000)
        return [path]

    monkeypatch.setattr("simulator.outputs.writer.WRITERS", [*WRITERS, yaml_writer])
    result = _run(tmp_path / "out")
    assert result.exit_code == 2
    assert output_files(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the building folder is gone


@pytest.mark.parametrize("name", ["summary.json", "x.yaml"])
def test_write_text_is_all_or_nothing(tmp_path, monkeypatch, name):
    monkeypatch.setattr(output.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(Exception, match="cannot write"):
        output.write_text(tmp_path / name, "x" * 10_000)
    assert list(tmp_path.iterdir()) == []
