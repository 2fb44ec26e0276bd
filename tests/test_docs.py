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


def test_readme_setup_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    install = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"'
    assert install in README
    assert install.replace("pip install -e", "pip install -q -e") in ci
    assert "python -m pytest" in README and "\npython -m pytest\n" in ci


def test_readme_provider_table_matches_the_gateway_writers():
    from simulator.outputs.gateways.common import LITELLM_PREFIX, PORTKEY_PROVIDER

    table = README.split("<!-- providers:start -->")[1].split("<!-- providers:end -->")[0]
    rows = [line.split("|")[1:4] for line in table.strip().splitlines()[2:]]
    documented = {cells[0].split()[0].strip(): (cells[1].strip(" `").rstrip("/"), cells[2].strip(" `"))
                  for cells in rows}
    assert documented == {k: (LITELLM_PREFIX[k], PORTKEY_PROVIDER[k]) for k in LITELLM_PREFIX}
