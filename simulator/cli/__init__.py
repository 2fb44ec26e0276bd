"""The ``tfysim`` command line: each command parses options, makes one library call and prints the result.

Errors: every ``TfysimError`` becomes one ``Error: ...`` line on stderr in :meth:`TfysimGroup.invoke` (exit 2, or 1
for a failed gate); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import click

from simulator.errors import StrictModeError, TfysimError
from simulator.memory import imports_done, imports_kept

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130


class TfysimGroup(click.Group):
    """A click group that turns tfysim errors into one-line messages in one place."""

    def invoke(self, ctx: click.Context):
        debug = "--debug" in sys.argv or bool(ctx.meta.get("debug"))
        try:
            with imports_kept():  # a command's imports stay out of the collector's way (simulator.memory)
                return super().invoke(ctx)
        except TfysimError as exc:
            if debug:
                raise
            from simulator.outputs.escape import terminal

            click.echo(f"Error: {terminal(exc)}", err=True)  # one line: a value in the message cannot add one
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPT)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors (unknown option, missing argument, bad choice) as one ``Error:`` line too, exit 2."""
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            from simulator.outputs.escape import terminal

            click.echo(f"Error: {terminal(exc.format_message())}{where}", err=True)
            code = EXIT_USAGE
        except click.exceptions.Abort:
            click.echo("Error: interrupted.", err=True)
            code = EXIT_INTERRUPT
        code = code if isinstance(code, int) else EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=TfysimGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfysim")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """tfysim: replay LLM-gateway traffic through candidate routing policies, offline."""
    ctx.meta["debug"] = debug


def _echo_json(obj) -> None:
    from simulator.outputs.files import dumps

    click.echo(dumps(obj), nl=False)


#: version of the --json objects of gate, validate, recommend, diff and drift
JSON_SCHEMA_VERSION = 1


def _echo_report(obj: dict) -> None:
    """A command's --json object: ``schema_version`` first, floats rounded to the precision the text shows."""
    from simulator.formats import round_floats

    _echo_json({"schema_version": JSON_SCHEMA_VERSION, **round_floats({k: v for k, v in obj.items()
                                                                       if k != "schema_version"})})


def _log_lines() -> bool:
    """Whether stderr is a log (a pipe or file, as in CI), where progress is one line per stage, not a bar."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # click's test runner and other in-memory streams: no progress
        return False
    return not sys.stderr.isatty()


def _progress():
    """A progress wrapper ``progress(items, label)``: the bar when stderr is a terminal, one line per stage when it
    is a log, else None."""
    if sys.stderr.isatty():
        def bar(items, label):
            with click.progressbar(list(items), label=label, file=sys.stderr) as wrapped:
                yield from wrapped

        return bar
    if not _log_lines():
        return None

    def lines(items, label):
        with _stage(label) as counted:
            for item in items:
                counted[0] += 1
                yield item

    return lines


@contextlib.contextmanager
def _stage(label: str):
    """On a log stderr, ``tfysim: <label>: done in <s> s`` (with the count of items, if counted) when it ends."""
    counted = [0]
    start = time.perf_counter()
    yield counted
    if _log_lines():
        items = f"{counted[0]} " if counted[0] else ""
        click.echo(f"tfysim: {label}: {items}done in {time.perf_counter() - start:.1f} s", err=True)


def _run_engine(engine: str, scenario, traffic, evals, chunk_rows: int, scheduler, observers=(), previous=None):
    """One run on the chosen engine; every engine returns a :class:`simulator.api.RunResult`."""
    observers = list(observers)
    kwargs = {"traffic": list(traffic) or None, "evals": list(evals) or None, "previous": previous}
    if engine == "dask":
        from simulator.engines.dask_engine import run_dask

        return run_dask(scenario, scheduler=scheduler, observers=observers, **kwargs)
    if engine == "streaming":
        from simulator.engines.streaming import run_streaming

        return run_streaming(scenario, chunk_rows=chunk_rows, observers=observers, **kwargs)
    from simulator.api import run as run_scenario

    return run_scenario(scenario, progress=_progress(), observers=observers, **kwargs)


ADAPTER_NAMES = ("canonical", "truefoundry", "truefoundry-spans", "otel", "litellm", "langfuse", "helicone")


def _scenario_inputs(command):
    """SCENARIO, ``--traffic`` and ``--evals``: a scenario and the files that replace its own (run, plan, gate)."""
    command = click.option("--evals", "evals", multiple=True, help="Eval samples file (replaces the scenario's).")(
        command)
    command = click.option("--traffic", "traffic", multiple=True,
                           help="Traffic file, directory or glob (replaces the scenario's).")(command)
    return click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))(command)


def _ingest_options(command):
    """``--adapter``, ``--map`` and ``--timezone``: how traffic files are read (they override the scenario's)."""
    command = click.option("--timezone", help="IANA zone for timestamps without an offset.")(command)
    command = click.option("--map", "mapping", multiple=True, metavar="CANONICAL=SOURCE",
                           help="Read canonical column CANONICAL from source column SOURCE (repeatable).")(command)
    return click.option("--adapter", type=click.Choice(ADAPTER_NAMES),
                        help="Log source of the traffic (default: detected from the columns).")(command)


def _engine_options(command):
    """``--engine``, ``--chunk-rows`` and ``--scheduler``: where a run replays."""
    command = click.option("--scheduler", help="Dask scheduler address for --engine dask (default: a local 2-worker "
                                               "cluster).")(command)
    command = click.option("--chunk-rows", type=click.IntRange(1), default=1_000_000, show_default=True,
                           help="Rows per chunk for --engine streaming.")(command)
    return click.option("--engine", type=click.Choice(["local", "streaming", "dask"]), default="local",
                        show_default=True, help="local: in memory; streaming: time-ordered chunks in bounded memory; "
                        "dask: partitions on a Dask cluster. Every engine writes the same outputs.")(command)


def _scenario_with(path: Path, adapter: str | None, mapping: tuple[str, ...], timezone: str | None):
    """The scenario path, or the loaded scenario with the command line's ingest options applied."""
    if not (adapter or mapping or timezone):
        return path
    from simulator.routing.scenario import load_scenario

    scenario = load_scenario(path)
    update: dict = {}
    if adapter:
        update["adapter"] = adapter
    if mapping:
        update["columns"] = {**scenario.columns, **(_parse_map(mapping) or {})}
    if timezone:
        update["timezone"] = timezone
    return scenario.model_copy(update=update)


def _echo_notes(notes) -> None:
    for note in notes or ():
        from simulator.outputs.escape import terminal

        click.echo(f"Note: {terminal(note)}.", err=True)


def _strict(rejected: int, strict: bool, where: str) -> None:
    if strict and rejected:
        raise StrictModeError(f"{rejected} row(s) rejected in {where} and --strict is set; see rejects.jsonl.")


def _traffic_paths(scenario, traffic: tuple[str, ...]) -> list:
    """The traffic a run reads: ``--traffic`` when given, else the scenario's (loaded here to know it up front)."""
    if traffic:
        return list(traffic)
    from simulator.routing.scenario import Scenario, load_scenario

    return (scenario if isinstance(scenario, Scenario) else load_scenario(scenario)).paths("traffic")


@cli.command()
@_scenario_inputs
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) when any row is rejected.")
@click.option("--write-requests", is_flag=True, help="Also write per-request outcomes as Parquet.")
@click.option("--include-prompts", is_flag=True, help="Allow prompt text in outputs (off by default).")
@click.option("--check-gates", is_flag=True, help="Exit 1 when a gate fails (as `tfysim gate` does).")
@_engine_options
@click.option("--focus-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write baseline and candidate costs as FOCUS 1.2 rows (CSV, or Parquet by extension).")
@click.option("--previous", type=click.Path(dir_okay=False, path_type=Path),
              help="Last week's summary.json: add 'since last week' figures, flagging changes beyond their interval.")
@_ingest_options
def run(scenario, traffic, evals, out, as_json, strict, write_requests, include_prompts, check_gates, engine,
        chunk_rows, scheduler, focus_out, previous, adapter, mapping, timezone) -> None:
    """Replay a scenario's traffic through its candidate policies and write the reports.

    Gate verdicts are reported; `--check-gates` (or `tfysim gate`) turns a failed gate into exit code 1.

    Example: tfysim run scenarios/premium-review.yaml --out reports/weekly
    """
    from simulator.outputs.folder import check_out_folder
    from simulator.outputs.writer import console_summary, write_rejects_only, write_run

    imports_done()  # pandas, pyarrow, the scenario model: 600 modules
    where = str(scenario)
    scenario = _scenario_with(scenario, adapter, mapping, timezone)
    if out:
        check_out_folder(out, _traffic_paths(scenario, traffic))
    observers, requests, focus = [], None, None
    if write_requests:
        from simulator.outputs.requests import RequestsWriter

        requests = RequestsWriter()
        observers.append(requests)
    if focus_out:
        from simulator.outputs.focus import FocusUsage

        focus = FocusUsage()
        observers.append(focus)
    with _stage(f"replay ({engine} engine)"):
        result = _run_engine(engine, scenario, traffic, evals, chunk_rows, scheduler, observers, previous)
    folder = out or Path("reports") / result.scenario.name
    if not out:
        check_out_folder(folder, list(traffic) or result.scenario.paths("traffic"))
    _echo_notes(result.summary["traffic"].get("notes"))
    defects = result.rows_rejected - result.summary["traffic"].get("rows_not_model_calls", 0)
    if strict and defects:  # a failed --strict run writes rejects.jsonl and nothing else
        write_rejects_only(result, folder)
        _strict(defects, strict, where)
    with _stage("writing summary, report and configs"):
        written = write_run(result, folder, requests=requests, include_prompts=include_prompts)
    if focus is not None:
        from simulator.outputs.focus import write_focus

        written.append(write_focus(focus_out, focus, result.scenario.name))
    if as_json:
        _echo_json(result.summary)
    else:
        click.echo(console_summary(result, written))
    if check_gates and not result.gates_passed:
        sys.exit(EXIT_GATE)


@cli.command()
@click.argument("traffic", nargs=-1, required=True)
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), help="Price-override YAML.")
@_ingest_options
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write rejected rows here (JSON lines).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) when any row is rejected.")
def replay(traffic, pricing, adapter, mapping, timezone, rejects_path, as_json, strict) -> None:
    """Reprice traffic as recorded and compare with its recorded cost (pricing drift).

    Example: tfysim replay datasets/sample/traffic.parquet --json
    """
    from simulator.api import identity_replay
    from simulator.pricing.catalog import OPTION_FIX, Catalog
    from simulator.io.traffic import load_traffic

    from simulator.io.adapters import collect_notes, not_model_calls

    with collect_notes() as notes:
        loaded = load_traffic(list(traffic), adapter=adapter, mapping=_parse_map(mapping), timezone=timezone)
    _echo_notes(notes)
    report = identity_replay(loaded, Catalog.load(pricing, fix=OPTION_FIX))
    if rejects_path and loaded.rows_rejected:
        from simulator.outputs.files import write_rejects

        write_rejects(rejects_path, loaded.rejects)
    _strict(loaded.rows_rejected - not_model_calls(loaded.rejects["reason"]), strict, ", ".join(traffic))
    if as_json:
        _echo_json(report)
        return
    from simulator.outputs.writer import replay_table

    click.echo(replay_table(report))


@cli.command()
@click.argument("traffic", nargs=-1, required=True)
@click.option("--focus", "focus", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="FOCUS 1.2 billing file (CSV, JSON or Parquet) with the billed truth.")
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), help="Price-override YAML.")
@_ingest_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def reconcile(traffic, focus, pricing, adapter, mapping, timezone, as_json) -> None:
    """Compare the identity replay of TRAFFIC with the billed cost in a FOCUS file, per provider, model and day.

    Example: tfysim reconcile exports/last-week.parquet --focus billing/focus-2026-11.csv
    """
    from simulator.io.adapters import collect_notes
    from simulator.io.focus import read_focus
    from simulator.io.traffic import load_traffic
    from simulator.pricing.catalog import OPTION_FIX, Catalog
    from simulator.summary.reconcile import reconcile as reconcile_costs, reconcile_text

    with collect_notes() as notes:
        loaded = load_traffic(list(traffic), adapter=adapter, mapping=_parse_map(mapping), timezone=timezone)
    _echo_notes(notes)
    report = reconcile_costs(loaded, Catalog.load(pricing, fix=OPTION_FIX), read_focus(focus))
    if as_json:
        _echo_json(report)
    else:
        click.echo(reconcile_text(report))


def _parse_map(pairs: tuple[str, ...]) -> dict[str, str] | None:
    from simulator.errors import InputError
    from simulator.io.traffic import COLUMNS

    out = {}
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        if not sep or canonical not in COLUMNS:
            raise InputError(f"--map {pair}: expected CANONICAL=SOURCE with CANONICAL one of {', '.join(COLUMNS)}.")
        out[canonical] = source
    return out or None


@cli.command()
@click.argument("traffic", nargs=-1, required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("scenario.yaml"),
              show_default=True, help="Scenario file to write (never overwritten).")
@click.option("--name", help="Scenario name (default: from the traffic file's name).")
@_ingest_options
def init(traffic, out, name, adapter, mapping, timezone) -> None:
    """Write a commented starter scenario for your own export: the adapter detected, the models, workflows and
    teams found, and one candidate to edit.

    Example: tfysim init datasets/examples/litellm_spendlogs.csv --out my-scenario.yaml
    """
    from simulator.errors import InputError
    from simulator.outputs.files import write_text
    from simulator.outputs.starter import inspect_export, starter_yaml

    if out.exists():
        raise InputError(f"{out} already exists; choose another --out or remove it.")
    columns = _parse_map(mapping)
    from simulator.io.adapters import collect_notes

    with collect_notes() as notes:
        found = inspect_export(list(traffic), adapter=adapter, mapping=columns, timezone=timezone)
    _echo_notes(notes)
    write_text(out, starter_yaml(found, list(traffic), out, name=name, timezone=timezone, mapping=columns))
    models = len(found.models)
    click.echo(f"wrote {out}: {found.adapter} export, {found.rows_read:,} rows, {models} model(s), "
               f"{len(found.labels['workflow_tag'])} workflow(s), {len(found.labels['team'])} team(s). "
               f"Next: tfysim validate {out}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editor completion).

    Example: tfysim schema > scenario.schema.json
    """
    from simulator.routing.scenario import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema_version, ok, problems, warnings).")
def validate(scenario, as_json) -> None:
    """Check a scenario, its files, traffic, models, targets, tokenizers and eval ids without replaying; every
    problem at once. Exit 2 when there is one.

    Example: tfysim validate scenarios/premium-review.yaml
    """
    from simulator.validation import check_scenario

    report = check_scenario(scenario)
    if as_json:
        _echo_report(report.to_json())
    else:
        click.echo(report.text(), err=not report.ok)
    if not report.ok:
        click.echo(f"Error: {scenario}: {len(report.problems)} problem(s); fix them and validate again.", err=True)
        sys.exit(EXIT_USAGE)


@cli.group("import")
def import_group() -> None:
    """Convert public traces and eval sets into tfysim's tables (Parquet)."""


def _write_import(frame, out: Path, rejects, stats: dict | None = None) -> None:
    from simulator.outputs.files import write_parquet

    write_parquet(out, frame)
    n_rej = len(rejects) if rejects is not None else 0
    extra = "".join(f", {k}={v}" for k, v in (stats or {}).items() if isinstance(v, int) and k != "rows_read")
    click.echo(f"wrote {out}: {len(frame):,} rows, {n_rej:,} rejected{extra}")


@import_group.command("azure")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="Gateway model id to assign (the trace has none).")
@click.option("--start", help="Re-base the trace to start at this ISO time (default: its own timestamps, UTC).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output Parquet file.")
def import_azure_cmd(file, model, start, out) -> None:
    """Azure LLM inference trace 2023 CSV (CC-BY-4.0) -> canonical traffic.

    Example: tfysim import azure AzureLLMInferenceTrace_conv.csv --model openai-main/gpt-4o --out conv.parquet
    """
    from simulator.io.importers.azure import import_azure

    frame, rejects = import_azure(file, model, start)
    _write_import(frame, out, rejects)


@import_group.command("mooncake")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="Gateway model id to assign (the trace has none).")
@click.option("--start", help="ISO time of the trace's millisecond 0 (default 2024-01-01T00:00:00Z).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output Parquet file.")
def import_mooncake_cmd(file, model, start, out) -> None:
    """Mooncake-format JSONL (hash_ids of 512-token blocks) -> canonical traffic with prefix_blocks.

    Example: tfysim import mooncake synthetic_trace.jsonl --model anthropic-main/claude-haiku-4-5 --out mc.parquet
    """
    from simulator.io.importers.mooncake import import_mooncake

    frame, rejects = import_mooncake(file, model, start)
    _write_import(frame, out, rejects)


@import_group.command("routellm")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output Parquet file.")
@click.option("--keep-contaminated", is_flag=True, help="Keep prompts that overlap RouteLLM's training data.")
def import_routellm_cmd(directory, out, keep_contaminated) -> None:
    """RouteLLM evaluation layout (MMLU, GSM8K, MT-Bench) -> long eval samples.

    Example: tfysim import routellm ../shared/data/routellm-evals --out evals.parquet
    """
    from simulator.io.importers.routellm import import_routellm

    frame, stats = import_routellm(directory, exclude_contaminated=not keep_contaminated)
    _write_import(frame, out, None, stats)


@import_group.command("routerbench")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output Parquet file.")
def import_routerbench_cmd(files, out) -> None:
    """RouterBench-style wide tables (one score column per model) -> long eval samples.

    Example: tfysim import routerbench routerbench_0shot.csv --out evals.parquet
    """
    from simulator.io.importers.routerbench import import_routerbench

    frame, stats = import_routerbench(list(files))
    _write_import(frame, out, None, stats)


@import_group.command("github-prs")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--session-id-from", type=click.Choice(["label", "trailer", "branch"]), default="trailer",
              show_default=True, help="Where the pull request carries the session id.")
@click.option("--label-prefix", default="session:", show_default=True, help="Label <prefix><session id>.")
@click.option("--trailer", default="TFY-Session-Id", show_default=True, help="Body line '<trailer>: <session id>'.")
@click.option("--branch-pattern", help="Regex on the head branch with a group 'session' (default: .../session-<id>).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output Parquet file.")
def import_github_cmd(files, session_id_from, label_prefix, trailer, branch_pattern, out) -> None:
    """GitHub pull_request webhook payloads -> outcomes (merged pull requests as pr_merged, per session id).

    Example: tfysim import github-prs deliveries.jsonl --session-id-from label --out outcomes.parquet
    """
    from simulator.control.outcomes import import_github_prs

    frame, rejects, skipped = import_github_prs(list(files), session_id_from, label_prefix, trailer, branch_pattern)
    _write_import(frame, out, rejects, {"skipped": skipped})


@cli.group("datasets")
def datasets_group() -> None:
    """Bundled and generated data sets."""


@datasets_group.command("generate")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366), help="Days of traffic.")
@click.option("--requests", "requests", default=40_000, show_default=True, type=click.IntRange(1),
              help="Number of requests.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Random seed.")
@click.option("--start", default="2026-11-16T00:00:00Z", show_default=True, help="ISO start (UTC).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
def datasets_generate(days, requests, seed, start, out) -> None:
    """Generate a realistic gateway week (traffic, eval samples, system prompts) as Parquet.

    Example: tfysim datasets generate --days 7 --requests 40000 --seed 0 --out /tmp/week
    """
    from simulator.synth.generator import write_dataset

    paths = write_dataset(out, days=days, requests=requests, seed=seed, start=start)
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@cli.command()
@click.option("--traffic", "traffic", multiple=True, required=True, help="Traffic file, directory or glob.")
@click.option("--from", "from_model", required=True, help="Model id the traffic was recorded on.")
@click.option("--to", "to_model", required=True, help="Model id to translate to.")
@click.option("--by", type=click.Choice(["workflow_tag", "team", "project", "content_type"]), help="Group by.")
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), help="Price-override YAML.")
@click.option("--timezone", help="IANA zone for timestamps without an offset.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def drift(traffic, from_model, to_model, by, pricing, timezone, as_json) -> None:
    """Tokenizer drift: the same prompts counted on another model version, and what it costs.

    Example: tfysim drift --traffic datasets/sample/traffic.parquet --from anthropic-main/claude-opus-4-6
    --to anthropic-main/claude-opus-4-7 --by content_type
    """
    from simulator.cli.drift import drift_command

    report = drift_command(list(traffic), from_model, to_model, by, pricing, timezone)
    if as_json:
        _echo_report(report)
        return
    from simulator.cli.drift import drift_table

    click.echo(drift_table(report))


@cli.command()
@click.argument("traffic", nargs=-1)
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path),
              help="Take the loop_detection rule, pricing (and traffic, when none is named) from this scenario.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path),
              help="Sessions labelled runaway (a table with session_id): prints recall and false flags.")
@click.option("--weight", type=click.Choice(["cost", "tokens"]), help="Rate weighting (default: the rule's, cost).")
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), help="Price-override YAML.")
@click.option("--timezone", help="IANA zone for timestamps without an offset.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def loops(traffic, scenario, truth, weight, pricing, timezone, as_json) -> None:
    """Runaway sessions: the loop rules replayed over traffic in time order, with what a kill would have saved.

    Example: tfysim loops datasets/sample/traffic.parquet --truth datasets/sample/runaway_sessions.parquet
    """
    from simulator.cli.loops import loops_command, loops_table

    report = loops_command(list(traffic), scenario, truth, weight, pricing, timezone)
    if as_json:
        _echo_json(report)
    else:
        click.echo(loops_table(report))


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-accuracy-drop-pp", type=click.FloatRange(0), help="Non-inferiority margin (default: the "
              "scenario's gate, else 2).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the candidate YAML here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the candidate and every decision).")
def recommend(scenario, max_accuracy_drop_pp, out, as_json) -> None:
    """Per workflow, the cheapest target with eval evidence whose non-inferiority holds, as a candidate.

    Example: tfysim recommend scenarios/premium-review.yaml --max-accuracy-drop-pp 2
    """
    from simulator.cli.recommend import recommend_scenario, recommend_text

    report = recommend_scenario(scenario, max_accuracy_drop_pp)
    text = recommend_text(report)
    if out:
        from simulator.outputs.files import write_text

        write_text(out, text)
        click.echo(f"wrote {out}", err=as_json)
    if as_json:
        _echo_report(report)
    elif not out:
        click.echo(text, nl=False)


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
@_ingest_options
def diff_command(current, proposed, traffic, evals, pricing, seed, as_json, no_yaml_diff, adapter, mapping,
                 timezone) -> None:
    """Replay the CURRENT and PROPOSED TrueFoundry configs over traffic; print cost, accuracy and latency changes.

    Example: tfysim diff routing/current.yaml routing/proposed.yaml --traffic exports/last-week.parquet
    """
    from simulator.summary.compare import compare_configs, diff_text

    report = compare_configs(current, proposed, list(traffic), evals=list(evals), pricing=pricing, seed=seed,
                             adapter=adapter, columns=_parse_map(mapping), timezone=timezone)
    if as_json:
        _echo_report(report)
    else:
        click.echo(diff_text(report, show_yaml=not no_yaml_diff))


@cli.command("plan")
@_scenario_inputs
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan section of summary.json.")
@click.option("--check-gates", is_flag=True, help="Exit 1 when a gate of the plan fails.")
@_engine_options
@click.option("--previous", type=click.Path(dir_okay=False, path_type=Path), help="Last week's summary.json.")
@_ingest_options
def plan_command(scenario, traffic, evals, out, as_json, check_gates, engine, chunk_rows, scheduler, previous,
                 adapter, mapping, timezone) -> None:
    """Combine the passing candidates and opportunities whose rules never claim the same request into one plan,
    replay it, and write one config per config type (the whole run folder is written too).

    Example: tfysim plan scenarios/premium-review.yaml --out reports/weekly
    """
    from simulator.outputs.report.levers import plan_passed, plan_text
    from simulator.outputs.writer import write_run

    from simulator.outputs.folder import check_out_folder
    from simulator.routing.scenario import Scenario, load_scenario

    imports_done()
    scenario = _scenario_with(scenario, adapter, mapping, timezone)
    scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    folder = out or Path("reports") / scenario.name
    check_out_folder(folder, list(traffic) or scenario.paths("traffic"))
    with _stage(f"replay ({engine} engine)"):
        result = _run_engine(engine, scenario, traffic, evals, chunk_rows, scheduler, (), previous)
    with _stage("writing summary, report and configs"):
        write_run(result, folder)
    index = folder / "routing" / "index.json"
    routing = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else {}
    if as_json:
        _echo_json(result.summary.get("plan") or {})
    else:
        click.echo(plan_text(result.summary, routing))
    if check_gates and not plan_passed(result.summary):
        sys.exit(EXIT_GATE)


@cli.command("gate")
@_scenario_inputs
@click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--github-summary", is_flag=True, help="Append a Markdown table to $GITHUB_STEP_SUMMARY.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the run folder (summary, report, routing configs) here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every gate, each candidate's figures).")
@click.option("--allow-outside", is_flag=True,
              help="Read traffic paths that resolve outside the repository (refused by default).")
@_ingest_options
def gate_command(scenario, traffic, evals, junit, github_summary, out, as_json, allow_outside, adapter, mapping,
                 timezone) -> None:
    """Run a scenario and check its gates: exit 0 when all pass, 1 when any fails, 2 on bad input.

    Traffic paths must resolve (symlinks followed) inside the repository holding the current folder, unless
    --allow-outside is given: a pull request cannot point CI at files elsewhere on the runner.

    Example: tfysim gate scenarios/premium-review.yaml --junit gate.xml --github-summary
    """
    import os

    from simulator.api import run as run_scenario
    from simulator.outputs.folder import check_inside_repository, check_out_folder, repository_root
    from simulator.outputs.gate import console_table, github_summary as summary_md, junit_xml
    from simulator.outputs.files import write_text

    loaded = _scenario_with(scenario, adapter, mapping, timezone)
    paths = _traffic_paths(loaded, traffic)
    if not allow_outside:
        check_inside_repository(paths, repository_root())
    if out:
        check_out_folder(out, paths)
    with _stage("replay"):
        result = run_scenario(loaded, traffic=list(traffic) or None, evals=list(evals) or None,
                              progress=_progress())
    _echo_notes(result.summary["traffic"].get("notes"))
    if out:
        from simulator.outputs.writer import write_run

        with _stage("writing summary, report and configs"):
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
    if as_json:
        from simulator.outputs.gate import gate_report

        _echo_report(gate_report(result.summary))
    else:
        click.echo(console_table(result.summary))
    if not result.gates_passed:
        sys.exit(EXIT_GATE)


def main() -> None:  # pragma: no cover - console entry point
    cli()


if __name__ == "__main__":  # pragma: no cover - `python -m simulator.cli`
    main()
