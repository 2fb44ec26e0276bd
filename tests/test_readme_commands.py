"""README's commands are executed: every `tfysim` command of the Commands table and of its shell and console blocks
runs (outputs go to a temporary folder), and every repository file the README names exists (issue 20)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, shared_data
from simulator.cli import cli

README = (REPO / "README.md").read_text(encoding="utf-8")
#: options whose value is a file or folder the command writes
OUTPUT_OPTIONS = {"--out", "--junit", "--focus-out", "--rejects"}
#: exit codes a command may end with in its README example (a gate that fails is the example's point)
ALLOWED_EXIT = {"gate": {0, 1}}


def readme_commands() -> list[str]:
    """The Commands table's examples, then `tfysim` lines of bash and console blocks, in README order."""
    table = README.split("## Commands\n")[1].split("\n- ")[0]
    commands = re.findall(r"^\| `tfysim [^`]+` \| `(tfysim [^`]+)` \|$", table, re.M)
    for block in re.findall(r"```(?:bash|console)\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("tfysim "):
                commands.append(line)
    return list(dict.fromkeys(commands))


def _args(command: str, tmp: Path, written: dict[str, Path]) -> list[str] | None:
    """argv for the CLI: optional [...] parts and a `> file` redirection dropped, outputs moved into ``tmp``,
    inputs written by an earlier command read from there, ../shared/data mapped (None when it is absent)."""
    command = re.sub(r"\s\[[^\]]*\]", "", command).split(" > ")[0]
    words = shlex.split(command)[1:]
    out: list[str] = []
    for i, word in enumerate(words):
        if i and words[i - 1] in OUTPUT_OPTIONS:
            written[word] = tmp / Path(word).name
            word = str(written[word])
        elif word in written:
            word = str(written[word])
        elif word.startswith("../shared/data/"):
            data = shared_data()
            if data is None:
                return None
            word = str(data / word.removeprefix("../shared/data/"))
        out.append(word)
    if out[0] in ("run", "gate") and "--out" not in out:
        out += ["--out", str(tmp / f"{out[0]}-{len(written)}")]
    return out


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "step-summary.md"))
    commands = readme_commands()
    assert any(c.startswith("tfysim init ") for c in commands) and any(c.startswith("tfysim diff ") for c in commands)
    written: dict[str, Path] = {}
    ran = []
    for command in commands:
        args = _args(command, tmp_path, written)
        if args is None:
            continue  # names ../shared/data, which this checkout does not have
        result = CliRunner().invoke(cli, args)
        allowed = ALLOWED_EXIT.get(args[0], {0})
        assert result.exit_code in allowed, (command, result.output, result.exception)
        assert "Traceback" not in result.output
        for name, path in written.items():
            if name in command.split():
                assert path.exists(), f"`{command}` did not write {name}"
        ran.append(command)
    assert len(ran) >= 15, ran


def readme_paths() -> list[str]:
    """Repository files and folders the README names in backticks or links (no placeholders, globs or outputs)."""
    roots = r"(?:scenarios|datasets|examples|pricing|tests|simulator|reports|\.ci)/"
    names = re.findall(rf"[`(\s]({roots}[A-Za-z0-9_./\-]+)", README)
    return sorted({n.rstrip(".,)") for n in names
                   if not re.search(r"[<*{]|day=|reports/(?!README)", n) and not n.endswith("/")})


@pytest.mark.parametrize("name", readme_paths())
def test_every_file_the_readme_names_exists(name):
    assert (REPO / name).exists(), f"README names {name}, which does not exist"


def test_the_path_scan_sees_the_paths_the_readme_names():
    """The scan is not vacuous: it finds the files of the set-up, the diff example and the example exports."""
    assert {"scenarios/premium-review.yaml", "examples/routing/current.truefoundry.yaml",
            "examples/routing/proposed.truefoundry.yaml", "datasets/examples/litellm_spendlogs.csv",
            ".ci/run"} <= set(readme_paths())
