"""``tfysim validate``: everything ``run`` would reject, found before replaying and reported all at once.

:func:`check_scenario` never stops at the first problem: the scenario's schema (every key), the files it names
(traffic, evals, pricing, configs, tokenizers, outcomes), the traffic itself (read as ``run`` reads it: adapter,
rejects, the window), every model of the traffic and every target priced, every target's tokenizer, eval model ids
that match no gateway id, and rules that match nothing in the traffic (a warning: ``run`` accepts them, but they are
usually a typo). It imports no replay code (no numba, no engines, no matplotlib).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from simulator.errors import TfysimError

SCHEMA_VERSION = 1


@dataclasses.dataclass
class Validation:
    """The problems (``run`` would fail) and warnings (``run`` would accept, probably not what you meant)."""

    scenario: str
    problems: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    traffic: dict[str, Any] | None = None
    models: int = 0
    candidates: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "scenario": self.scenario, "ok": self.ok,
                "problems": self.problems, "warnings": self.warnings, "traffic": self.traffic,
                "models_priced": self.models, "candidates": self.candidates}

    def text(self) -> str:
        """Console lines; problems and warnings quote file values, so each is one escaped terminal line."""
        from simulator.outputs.escape import terminal

        lines = []
        if self.ok:
            t = self.traffic or {}
            lines.append(f"{self.scenario}: ok. {t.get('rows_replayed', 0):,} rows ({t.get('rows_rejected', 0):,} "
                         f"rejected), {self.models} models priced, {self.candidates} candidate(s).")
        else:
            lines.append(f"{self.scenario}: {len(self.problems)} problem(s); `tfysim run` would stop at the first:")
            lines += [f"  - {terminal(p)}" for p in self.problems]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += [f"  - {terminal(w)}" for w in self.warnings]
        return "\n".join(lines)


def _try(problems: list[str], fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except TfysimError as exc:
        problems.append(str(exc).rstrip("."))
        return None


def _exists(problems: list[str], where: str, key: str, path: Path, glob_ok: bool = False) -> bool:
    if glob_ok and any(c in str(path) for c in "*?["):
        import glob

        if not glob.glob(str(path), recursive=True):
            problems.append(f"{where}: {key}: '{path}' matches no file")
            return False
        return True
    if not path.exists():
        problems.append(f"{where}: {key}: file '{path}' does not exist")
        return False
    return True


def check_scenario(path: str | Path) -> Validation:
    """Every problem of a scenario and its files, without replaying (see the module docstring)."""
    import pydantic

    from simulator.io.yamlio import read_yaml
    from simulator.errors import ScenarioError
    from simulator.routing.scenario import Scenario, validation_problems

    where = str(path)
    report = Validation(where)
    data = _try(report.problems, read_yaml, path, ScenarioError)
    if data is None:
        return report
    if not isinstance(data, dict):
        report.problems.append(f"{where}: a scenario must be a YAML mapping with at least 'name' and 'traffic'")
        return report
    base = Path(path).parent
    try:
        scenario = Scenario.model_validate({**data, "base_dir": str(base)})
    except pydantic.ValidationError as exc:
        report.problems += [p.rstrip(".") for p in validation_problems(exc, where)]
        _raw_files(report, data, base)
        return report
    report.candidates = len(scenario.candidates)
    files_ok = _files(report, scenario)
    if files_ok:
        _contents(report, scenario)
    return report


def _raw_files(report: Validation, data: dict, base: Path) -> None:
    """File checks on a scenario that failed its schema (so the next round trip fixes both)."""
    for key in ("traffic", "evals"):
        value = data.get(key)
        for i, item in enumerate([value] if isinstance(value, str) else value or []):
            if isinstance(item, str):
                _exists(report.problems, report.scenario, key if isinstance(value, str) else f"{key}[{i}]",
                        _resolve(base, item), glob_ok=True)
    if isinstance(data.get("pricing"), str):
        _exists(report.problems, report.scenario, "pricing", _resolve(base, data["pricing"]))


def _resolve(base: Path, value: str) -> Path:
    from simulator.routing.scenario import resolve_path

    return resolve_path(base, value)


def _files(report: Validation, scenario) -> bool:
    """Every file the scenario names exists; returns whether the traffic and evals can be read."""
    where, before = report.scenario, len(report.problems)
    if not scenario.traffic:
        report.problems.append(f"{where}: traffic: required key is missing (a path, a list, a directory or a glob)")
    for key in ("traffic", "evals"):
        value = getattr(scenario, key)
        for i, p in enumerate(scenario.paths(key)):
            _exists(report.problems, where, key if isinstance(value, str) else f"{key}[{i}]", p, glob_ok=True)
    data_ok = len(report.problems) == before
    for key, value in scenario.config_paths():
        _exists(report.problems, where, key, _resolve(Path(scenario.base_dir), value))
    outcomes = scenario.outcomes
    files = [outcomes] if isinstance(outcomes, str) else outcomes if isinstance(outcomes, list) else \
        list(getattr(outcomes, "files", []) or [])
    for i, value in enumerate(files):
        _exists(report.problems, where, f"outcomes[{i}]" if len(files) > 1 else "outcomes",
                _resolve(Path(scenario.base_dir), value), glob_ok=True)
    return data_ok


def _targets(candidate) -> list[tuple[str, str]]:
    """(dotted key, model) of every model a candidate sends requests to."""
    out = []
    for r, rule in enumerate(candidate.rules):
        out += [(f"rules[{r}].load_balance_targets[{t}].target", t_.target)
                for t, t_ in enumerate(rule.load_balance_targets)]
    for b, budget in enumerate(candidate.budgets):
        if not isinstance(budget.on_exceed, str):
            out.append((f"budgets[{b}].on_exceed.fallback", budget.on_exceed.fallback))
    for k, limit in enumerate(candidate.rate_limits):
        if limit.fallback:
            out.append((f"rate_limits[{k}].fallback", limit.fallback))
    return out


def _contents(report: Validation, scenario) -> None:
    from simulator.io.adapters import collect_notes
    from simulator.io.traffic import check_traffic
    from simulator.pricing.catalog import Catalog
    from simulator.routing.truefoundry_config import candidate_from_config

    where, problems = report.scenario, report.problems
    catalog = _try(problems, Catalog.load, scenario.path(scenario.pricing), scenario.models)
    with collect_notes() as notes:
        loaded = _try(problems, check_traffic, scenario.paths("traffic"), adapter=scenario.adapter_options(),
                      mapping=scenario.columns or None, timezone=scenario.timezone)
    report.warnings += [n for n in notes]
    candidates = []
    for i, cand in enumerate(scenario.candidates):
        if cand.truefoundry_config:
            cand = _try(problems, candidate_from_config, cand, scenario.path(cand.truefoundry_config))
        if cand is not None:
            candidates.append((i, cand))
    models: list[str] = []
    if loaded is not None:
        report.traffic = {**loaded.counts(), "start": iso_utc(loaded.start_ns), "end": iso_utc(loaded.end_ns)}
        models = list(loaded.values["model"])
        if loaded.rows_rejected:
            top = loaded.rejects["reason"].value_counts()
            report.warnings.append(f"{loaded.rows_rejected:,} of {loaded.rows_read:,} rows rejected (`tfysim run` "
                                   f"writes them to rejects.jsonl); most common: {top.index[0]} ({top.iloc[0]:,})")
    if catalog is not None and models:
        _try(problems, catalog.check_known, models)
        report.models = sum(1 for m in models if _priced(catalog, m))
    targets = [(f"candidates[{i}].{key}", model) for i, cand in candidates for key, model in _targets(cand)]
    if catalog is not None:
        unknown = {}
        for key, model in targets:
            if model not in models and not _priced(catalog, model):
                unknown.setdefault(model, key)
        for model, key in unknown.items():
            try:
                catalog.resolve(model)
            except TfysimError as exc:
                problems.append(f"{where}: {key}: {getattr(exc, 'detail', str(exc))}; map it in models: or price it "
                                "in pricing:")
    _tokenizers(report, scenario, sorted({m for _, m in targets}))
    if loaded is not None:
        _matching(report, loaded.values, candidates)
    if scenario.evals:
        _evals(report, scenario, models, [m for _, m in targets])


def _priced(catalog, model: str) -> bool:
    try:
        catalog.resolve(model)
    except TfysimError:
        return False
    return True


def _tokenizers(report: Validation, scenario, targets: list[str]) -> None:
    """Every target needs a tokenizer (counts are translated when a request moves to it)."""
    from simulator.tokens.registry import Registry

    registry = Registry()
    for i, entry in enumerate(scenario.tokenizers):
        path = scenario.path(entry.path)
        if path is not None and path.exists():
            _try(report.problems, registry.register_file, entry.name, path, entry.models)
    for model in targets:
        try:
            registry.tokenizer_id_for_model(model)
        except TfysimError as exc:
            report.problems.append(f"{report.scenario}: target '{model}': {str(exc).rstrip('.')}")


def iso_utc(ns: int) -> str:
    """A time in ns since 1970 as ISO-8601 UTC, as ``pandas.Timestamp(ns, tz="UTC").isoformat()`` writes it
    (fraction digits only as many as needed: none, 6 or 9)."""
    import datetime as dt

    seconds, nanos = divmod(ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat()  # ends in +00:00
    if nanos:
        text = text[:-6] + (f".{nanos // 1000:06d}" if nanos % 1000 == 0 else f".{nanos:09d}") + text[-6:]
    return text


def _matching(report: Validation, labels: dict[str, list[str]], candidates) -> None:
    """Rules whose model or workflow condition matches no request of the traffic (usually a typo)."""
    from simulator.pricing.model_ids import split_model_id

    seen = set(labels["model"]) | set(labels["requested_model"])
    names = {split_model_id(m)[1] for m in seen}
    values = {key: set(labels[key]) for key in ("workflow_tag", "team", "project")}
    for i, cand in candidates:
        for r, rule in enumerate(cand.rules):
            where = f"{report.scenario}: candidates[{i}].rules[{r}] ('{rule.id}')"
            for model in rule.when.models:
                if model not in seen and model not in names:
                    report.warnings.append(f"{where}: when.models '{model}' matches no request of the traffic"
                                           + _close(model, seen | names))
            for key, value in (rule.when.metadata or {}).items():
                if key in values and str(value) not in values[key]:
                    report.warnings.append(f"{where}: when.metadata.{key} '{value}' matches no request of the "
                                           f"traffic" + _close(str(value), values[key]))


def _close(given: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(given, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _evals(report: Validation, scenario, models: list[str], targets: list[str]) -> None:
    """Eval model ids that match no gateway id, and moves whose target or source has no eval model."""
    from simulator.evals.matching import eval_mismatch, match_eval_model
    from simulator.evals.load import load_eval_samples

    eval_models = _try(report.problems, _eval_models, scenario.paths("evals"), load_eval_samples)
    if not eval_models:
        return
    gateway = sorted(set(models) | set(targets))
    matched = {match_eval_model(g, eval_models) for g in gateway}
    for model in eval_models:
        if model not in matched:
            report.warnings.append(f"{report.scenario}: evals: eval model '{model}' matches no gateway model of the "
                                   f"traffic or the targets (its samples are unused)")
    for model in sorted(set(targets)):
        if match_eval_model(model, eval_models) is None:
            report.warnings.append(f"{report.scenario}: evals: target {eval_mismatch(model, eval_models)}; the "
                                   "accuracy change of moves to it cannot be measured")


def _eval_models(paths: list[Path], load_eval_samples) -> list[str]:
    """The distinct eval model ids. A Parquet file is read for its ``model`` column only (after checking the
    required columns, as the loader does); other formats go through the loader."""
    import pyarrow.parquet as pq

    from simulator.errors import InputError
    from simulator.evals.load import OUTCOME, REQUIRED

    models: set[str] = set()
    others = []
    for path in paths:
        if path.suffix != ".parquet":
            others.append(path)
            continue
        names = set(pq.read_schema(path).names)
        missing = [c for c in REQUIRED if c not in names]
        if missing or not set(OUTCOME) & names:
            raise InputError(f"{path}: eval samples need columns {', '.join(REQUIRED)} and one of "
                             f"{' or '.join(OUTCOME)} (missing: {', '.join(missing) or ' or '.join(OUTCOME)})")
        models |= {str(m) for m in pq.read_table(path, columns=["model"]).column("model").unique().to_pylist()
                   if m is not None}
    if others:
        models |= set(map(str, load_eval_samples(others).samples["model"].unique()))
    return sorted(models)
