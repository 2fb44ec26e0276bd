"""Import RouterBench-style wide tables (withmartian/routerbench) into long eval samples.

A wide row is one prompt: ``sample_id``, ``prompt``, ``eval_name`` (becomes ``workflow_tag``), one score column
per model (0/1 or 0..1), and per model ``<model>|total_cost`` (USD) and ``<model>|model_response``. Cells may be
Python-list strings such as ``"['What is 2+2?']"`` or ``"[1.0]"``; they are parsed with ``ast.literal_eval``
(literals only, never code). Rows whose every score is empty are dropped and counted.

Files: CSV, JSONL or Parquet (``.gz`` allowed). RouterBench ships pickles; unpickling runs arbitrary code, so
convert them first (``pd.read_pickle(p).to_parquet(q)`` in a trusted session).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError
from simulator.evals.load import normalise_samples

_RESERVED = {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to", "workflow_tag"}


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    try:
        if stem.endswith(".csv"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
        if stem.endswith(".jsonl") or stem.endswith(".ndjson"):
            return pd.read_json(path, lines=True, dtype=False, compression="infer")
        if stem.endswith(".parquet"):
            return pd.read_parquet(path)
    except FileNotFoundError:
        raise InputError(f"`{path}`: file not found. Check the path.") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"`{path}`: cannot be read ({type(exc).__name__}). Expected a valid CSV, JSONL or Parquet file.") from None
    raise InputError(
        f"`{path}`: unsupported RouterBench file type. Expected .csv, .jsonl or .parquet; "
        "convert a .pkl with pandas in a trusted session first."
    )


def literal_cell(value):
    """A cell with Python-list strings unwrapped: ``"['a']"`` -> ``'a'``, ``"[0.5, 1.0]"`` -> ``[0.5, 1.0]``."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "[(" and text[-1:] in "])":
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple) and len(value) == 1:
        return value[0]
    return value


def _score(value) -> float:
    """NaN for an empty cell; ValueError for anything but a number in [0, 1] (lists of turns are averaged)."""
    value = literal_cell(value)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return float("nan")
    if isinstance(value, list | tuple):
        numbers = [_score(v) for v in value]
        numbers = [v for v in numbers if not math.isnan(v)]
        return float(np.mean(numbers)) if numbers else float("nan")
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return 1.0 if value.strip().lower() == "true" else 0.0
    score = float(value)
    if math.isnan(score):
        return score
    if not 0.0 <= score <= 1.0:
        raise ValueError(score)
    return score


def _text(value) -> str | None:
    value = literal_cell(value)
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _cost(value) -> float:
    value = literal_cell(value)
    try:
        cost = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return cost if cost >= 0 else float("nan")


def model_columns(columns) -> list[str]:
    """Score columns: those with a ``<model>|...`` sibling, else every non-reserved column without ``|``."""
    columns = [str(c) for c in columns]
    with_sibling = sorted({c.split("|", 1)[0] for c in columns if "|" in c} & set(columns))
    if with_sibling:
        return [c for c in columns if c in with_sibling]
    return [c for c in columns if "|" not in c and c not in _RESERVED]


def import_routerbench(paths) -> tuple[pd.DataFrame, dict]:
    """Read RouterBench-style wide tables into long eval samples plus counts.

    Returns ``(samples, stats)``; stats has ``rows_read``, ``rows_all_scores_empty`` (dropped),
    ``cells_invalid`` (score outside [0, 1] or not a number; that model's cell is skipped), ``samples``, ``models``.
    ``sample_id`` is the file's ``sample_id`` when present, else ``<eval_name>/<row>`` (0-based row).
    Example: ``samples, stats = import_routerbench(["routerbench_0shot.parquet"])``.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    stats = {"rows_read": 0, "rows_all_scores_empty": 0, "cells_invalid": 0}
    rows: list[dict] = []
    all_models: list[str] = []
    for raw in paths:
        path = Path(raw)
        table = _read_table(path)
        if "eval_name" not in table.columns:
            raise InputError(f"`{path}`: column `eval_name` is missing. Expected RouterBench's wide layout "
                             "(sample_id, prompt, eval_name, one score column per model).")
        models = model_columns(table.columns)
        if not models:
            raise InputError(f"`{path}`: no model score columns found. Expected one 0/1 column per model "
                             "next to `<model>|total_cost`.")
        all_models += [m for m in models if m not in all_models]
        for row_no, record in enumerate(table.to_dict("records")):
            stats["rows_read"] += 1
            tag = _text(record.get("eval_name"))
            sample_id = _text(record.get("sample_id")) or f"{tag}/{row_no}"
            prompt = _text(record.get("prompt"))
            found = []
            for model in models:
                try:
                    score = _score(record.get(model))
                except (TypeError, ValueError):
                    stats["cells_invalid"] += 1
                    continue
                if math.isnan(score):
                    continue
                found.append({
                    "sample_id": sample_id, "model": model,
                    "correct": score if score in (0.0, 1.0) else float("nan"), "score": score,
                    "workflow_tag": tag, "prompt": prompt, "cost_usd": _cost(record.get(f"{model}|total_cost")),
                })
            if not found:
                stats["rows_all_scores_empty"] += 1
                continue
            rows += found
    samples = normalise_samples(pd.DataFrame(rows))
    # A graded eval (any fractional score) must not mix binary and graded rows within one workflow.
    graded = samples.groupby("workflow_tag", dropna=False)["correct"].transform(lambda s: s.isna().any())
    samples.loc[graded.to_numpy(dtype=bool), "correct"] = np.nan
    stats["samples"] = len(samples)
    stats["models"] = all_models
    return samples, stats
