"""The ``tfysim`` command line: each command parses options, makes one library call and prints the result.

Errors: every ``TfysimError`` becomes one ``Error: ...`` line on stderr in :meth:`TfysimGroup.invoke` (exit 2, or 1
for a failed gate); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from simulator.errors import StrictModeError, TfysimError

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


class TfysimGroup(click.Group):
    """A click group that turns tfysim errors into one-line messages in one place."""

    def invoke(self, ctx: click.Context):
        debug = "--debug" in sys.argv or bool(ctx.meta.get("debug"))
        try:
            return super().invoke(ctx)
        except TfysimError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPT)


@click.group(cls=TfysimGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfysim")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """tfysim: replay LLM-gateway traffic through candidate routing policies, offline."""
    ctx.meta["debug"] = debug


def _echo_json(obj) -> None:
    from simulator.output import dumps

    click.echo(dumps(obj), nl=False)


def _strict(rejected: int, strict: bool, where: str) -> None:
    if strict and rejected:
        raise StrictModeError(f"{rejected} row(s) rejected in {where} and --strict is set; see rejects.jsonl.")


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--traffic", "traffic", multiple=True, help="Traffic file, directory or glob (replaces the scenario's).")
@click.option("--evals", "evals", multiple=True, help="Eval samples file (replaces the scenario's).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) when any row is rejected.")
@click.option("--write-requests", is_flag=True, help="Also write per-request outcomes as Parquet.")
@click.option("--include-prompts", is_flag=True, help="Allow prompt text in outputs (off by default).")
def run(scenario, traffic, evals, out, as_json, strict, write_requests, include_prompts) -> None:
    """Replay a scenario's traffic through its candidate policies and write the reports.

    Example: tfysim run scenarios/premium-review.yaml --out reports/weekly
    """
    from simulator.api import run as run_scenario
    from simulator.writer import write_run

    result = run_scenario(scenario, traffic=list(traffic) or None, evals=list(evals) or None)
    folder = out or Path("reports") / result.scenario.name
    written = write_run(result, folder, write_requests=write_requests, include_prompts=include_prompts)
    _strict(result.traffic.rows_rejected, strict, str(scenario))
    if as_json:
        _echo_json(result.summary)
    else:
        from simulator.writer import console_summary

        click.echo(console_summary(result, written))
    if not result.gates_passed:
        sys.exit(EXIT_GATE)


@cli.command()
@click.argument("traffic", nargs=-1, required=True)
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), help="Price-override YAML.")
@click.option("--adapter", type=click.Choice(["canonical", "truefoundry", "truefoundry-spans", "otel", "litellm"]),
              help="Input format (default: detected from the columns).")
@click.option("--map", "mapping", multiple=True, metavar="CANONICAL=SOURCE", help="Rename a source column.")
@click.option("--timezone", help="IANA zone for timestamps without an offset.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rejected rows here (JSON lines).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) when any row is rejected.")
def replay(traffic, pricing, adapter, mapping, timezone, rejects_path, as_json, strict) -> None:
    """Reprice traffic as recorded and compare with its recorded cost (pricing drift).

    Example: tfysim replay datasets/sample/traffic.parquet --json
    """
    from simulator.api import identity_replay
    from simulator.pricing import Catalog
    from simulator.traffic import load_traffic

    loaded = load_traffic(list(traffic), adapter=adapter, mapping=_parse_map(mapping), timezone=timezone)
    report = identity_replay(loaded, Catalog.load(pricing))
    if rejects_path and loaded.rows_rejected:
        from simulator.output import write_rejects

        write_rejects(rejects_path, loaded.rejects)
    _strict(loaded.rows_rejected, strict, ", ".join(traffic))
    if as_json:
        _echo_json(report)
        return
    from simulator.writer import replay_table

    click.echo(replay_table(report))


def _parse_map(pairs: tuple[str, ...]) -> dict[str, str] | None:
    from simulator.errors import InputError
    from simulator.traffic import COLUMNS

    out = {}
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        if not sep or canonical not in COLUMNS:
            raise InputError(f"--map {pair}: expected CANONICAL=SOURCE with CANONICAL one of {', '.join(COLUMNS)}.")
        out[canonical] = source
    return out or None


@cli.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editor completion).

    Example: tfysim schema > scenario.schema.json
    """
    from simulator.scenario import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
def validate(scenario) -> None:
    """Check a scenario, its files, models and prices without replaying.

    Example: tfysim validate scenarios/premium-review.yaml
    """
    from simulator.api import validate_scenario

    click.echo(validate_scenario(scenario))



# -- outputs: tfysim diff / tfysim gate ----------------------------------------------------------------------------
@cli.command("diff")
@click.argument("current", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("proposed", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--traffic", "traffic", multiple=True, required=True, help="Traffic file, directory or glob.")
@click.option("--evals", "evals", multiple=True, help="Eval samples file (for the accuracy difference).")
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), help="Price-override YAML.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weighted routing and intervals.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-yaml-diff", is_flag=True, help="Leave the unified YAML diff out of the text output.")
def diff_command(current, proposed, traffic, evals, pricing, seed, as_json, no_yaml_diff) -> None:
    """Replay the CURRENT and PROPOSED TrueFoundry configs over traffic; print cost, accuracy and latency changes.

    Example: tfysim diff routing/current.yaml routing/proposed.yaml --traffic exports/last-week.parquet
    """
    from simulator.compare import compare_configs, diff_text

    report = compare_configs(current, proposed, list(traffic), evals=list(evals), pricing=pricing, seed=seed)
    if as_json:
        _echo_json(report)
    else:
        click.echo(diff_text(report, show_yaml=not no_yaml_diff))


@cli.command("gate")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--traffic", "traffic", multiple=True, help="Traffic file, directory or glob (replaces the scenario's).")
@click.option("--evals", "evals", multiple=True, help="Eval samples file (replaces the scenario's).")
@click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--github-summary", is_flag=True, help="Append a Markdown table to $GITHUB_STEP_SUMMARY.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the run folder (summary, report, routing configs) here.")
def gate_command(scenario, traffic, evals, junit, github_summary, out) -> None:
    """Run a scenario and check its gates: exit 0 when all pass, 1 when any fails, 2 on bad input.

    Example: tfysim gate scenarios/premium-review.yaml --junit gate.xml --github-summary
    """
    import os

    from simulator.api import run as run_scenario
    from simulator.gate import console_table, github_summary as summary_md, junit_xml
    from simulator.output import write_text

    result = run_scenario(scenario, traffic=list(traffic) or None, evals=list(evals) or None)
    if out:
        from simulator.writer import write_run

        write_run(result, out)
    if junit:
        write_text(junit, junit_xml(result.summary))
    if github_summary:
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(summary_md(result.summary))
        else:
            click.echo("Warning: --github-summary: GITHUB_STEP_SUMMARY is not set (not running in GitHub Actions); "
                       "no summary written.", err=True)
    click.echo(console_table(result.summary))
    if not result.gates_passed:
        sys.exit(EXIT_GATE)


def main() -> None:  # pragma: no cover - console entry point
    cli()
