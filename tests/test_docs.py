"""The README is checked against the code: commands, options, columns and scenarios it names must exist."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from conftest import REPO
from simulator.cli import cli
from simulator.io.traffic import COLUMNS

README = (REPO / "README.md").read_text(encoding="utf-8")


def _command(path: list[str]) -> click.Command | None:
    cmd: click.Command = cli
    for name in path:
        if not isinstance(cmd, click.Group) or name not in cmd.commands:
            return None
        cmd = cmd.commands[name]
    return cmd


def _snippets() -> list[str]:
    """Every `tfysim ...` invocation in the README: inline code spans and code-block lines."""
    spans = re.findall(r"`(tfysim [^`]+)`", README)
    blocks = [line.strip() for line in README.splitlines() if line.strip().startswith("tfysim ")]
    return sorted(set(spans + blocks))


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    path: list[str] = []
    cmd: click.Command = cli
    for word in words:
        if isinstance(cmd, click.Group) and word in cmd.commands:
            path.append(word)
            cmd = cmd.commands[word]
        else:
            break
    return cmd, path


@pytest.mark.parametrize("snippet", _snippets())
def test_every_readme_command_and_option_exists(snippet):
    words = shlex.split(snippet.replace("...", "").replace("[", " ").replace("]", " ").replace("|", " "))
    assert words[0] == "tfysim"
    cmd, path = _resolve(words[1:])
    assert path, f"README names `{snippet}`, but there is no such command"
    options = {opt for param in cmd.params for opt in getattr(param, "opts", [])}
    options |= {opt for param in cli.params for opt in getattr(param, "opts", [])} | {"--help", "-h"}
    for word in words:
        if word.startswith("--"):
            name = word.split("=")[0]
            assert name in options, f"README documents {name} for `tfysim {' '.join(path)}`, which has no such option"


def test_every_command_is_documented_and_has_help():
    def walk(group: click.Group, prefix: list[str]):
        for name, cmd in group.commands.items():
            yield prefix + [name], cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, prefix + [name])

    for path, cmd in walk(cli, []):
        assert (cmd.help or "").strip(), f"tfysim {' '.join(path)} has no help text"
        if not isinstance(cmd, click.Group):
            assert f"tfysim {' '.join(path)}" in README, f"README does not document `tfysim {' '.join(path)}`"


def test_readme_columns_table_matches_the_contract():
    block = README.split("<!-- columns:start -->")[1].split("<!-- columns:end -->")[0]
    rows = [line for line in block.strip().splitlines()[2:]]
    parsed = []
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        parsed.append((cells[0].strip("`"), cells[1], cells[2] == "yes", cells[3]))
    expected = [(name, kind, required, meaning) for name, (kind, required, _, meaning) in COLUMNS.items()]
    assert parsed == expected


def test_readme_lists_every_example_scenario_and_each_exists():
    listed = set(re.findall(r"`(scenarios/[a-z0-9\-]+\.yaml)`", README))
    on_disk = {f"scenarios/{p.name}" for p in (REPO / "scenarios").glob("*.yaml")}
    assert listed == on_disk


def _setup_commands() -> list[str]:
    """The code blocks of README's "Set up" section, one command each (the first two are the set-up)."""
    section = README.split("## Set up\n")[1].split("\n## ")[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_setup_is_two_commands_and_ci_runs_them_as_written():
    blocks = _setup_commands()
    assert blocks[:2] == ["make review", "make test"]
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci_lines.index("make review") < ci_lines.index("make test")  # exactly as README shows them


def _make_dry_run(target: str, env: dict[str, str]) -> list[str]:
    import os
    import subprocess

    outer = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTEST_ARGS")}
    # an outer `make test PYTEST_ARGS=...` (the clean-clone test) must not leak into this make
    proc = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), target], capture_output=True,
                          text=True, env={**outer, **env}, check=True)
    return proc.stdout.splitlines()


@pytest.mark.skipif(__import__("shutil").which("make") is None, reason="make is not installed")
def test_make_creates_or_reuses_the_environment(tmp_path):
    """Without TFYSIM_VENV the target installs into .venv (unless already installed for this pyproject.toml);
    with it, nothing is installed and the worktree's package is imported from PYTHONPATH."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(__import__("sys").executable)
    reused = _make_dry_run("review", {"TFYSIM_VENV": str(venv)})
    assert not any("pip install" in line or "-m venv" in line for line in reused)
    assert reused[-1] == (f"PYTHONPATH={REPO} {venv}/bin/python -m simulator run scenarios/premium-review.yaml "
                          "--out reports/premium-review")
    tested = _make_dry_run("test", {"TFYSIM_VENV": str(venv), "PYTEST_ARGS": "-q tests/test_docs.py"})
    assert tested[-1] == f"PYTHONPATH={REPO} {venv}/bin/python -m pytest -q tests/test_docs.py"
    if not (REPO / ".venv" / ".tfysim-installed").exists():
        fresh = _make_dry_run("test", {"TFYSIM_VENV": ""})
        assert 'test -x .venv/bin/python || python3 -m venv .venv' in fresh
        assert '.venv/bin/python -m pip install -q -e ".[test]"' in fresh


def test_readme_provider_table_matches_the_gateway_writers():
    from simulator.outputs.gateways.common import LITELLM_PREFIX, PORTKEY_PROVIDER

    table = README.split("<!-- providers:start -->")[1].split("<!-- providers:end -->")[0]
    rows = [line.split("|")[1:4] for line in table.strip().splitlines()[2:]]
    documented = {cells[0].split()[0].strip(): (cells[1].strip(" `").rstrip("/"), cells[2].strip(" `"))
                  for cells in rows}
    assert documented == {k: (LITELLM_PREFIX[k], PORTKEY_PROVIDER[k]) for k in LITELLM_PREFIX}


def test_readme_yaml_caps_match_the_reader():
    from simulator.io import yamlio

    line = re.search(r"at most (\d+) MiB\s+and (\d+) aliases each", README)
    assert line, "README states the YAML caps"
    assert int(line.group(1)) * 1024**2 == yamlio.MAX_YAML_BYTES and int(line.group(2)) == yamlio.MAX_ALIASES
