"""Eval samples in long format: one row per (sample_id, model) with an outcome.

Columns (the contract): ``sample_id`` str, ``model`` str, ``correct`` float64 (0/1, NaN for graded rows),
``score`` float64 in [0, 1] (equal to ``correct`` for binary rows), ``workflow_tag`` str or None, and the
optional ``prompt``, ``input_tokens``/``output_tokens`` (Int64), ``cost_usd`` (float64). Other columns pass through.

Bad rows never stop a load: each goes to ``rejects`` as ``{source, row, reason}`` (row is 1-based: the data row
of a CSV/Parquet file, the line of a JSONL file) and ``rows_read == rows_loaded + rows_rejected`` always holds.
A missing required column is an ``InputError``.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError, did_you_mean

REQUIRED = ("sample_id", "model")
OUTCOME = ("correct", "score")
OPTIONAL = ("workflow_tag", "prompt", "input_tokens", "output_tokens", "cost_usd")
COLUMNS = ("sample_id", "model", "correct", "score", "workflow_tag", "prompt", "input_tokens", "output_tokens", "cost_usd")

_TRUE = {"1", "1.0", "true", "t", "yes"}
_FALSE = {"0", "0.0", "false", "f", "no"}


@dataclass
class EvalLoad:
    """Result of loading eval samples: the table plus the reject accounting."""

    samples: pd.DataFrame
    rejects: list[dict] = field(default_factory=list)
    rows_read: int = 0

    @property
    def rows_loaded(self) -> int:
        return len(self.samples)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)


def _is_blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _blank_values(series: pd.Series) -> np.ndarray:
    """:func:`_is_blank` per value. In a text column only a missing value, an empty text or one whose first
    character is whitespace can be blank: the others are ruled out by their first character (each distinct one
    tested once with ``str.isspace``) and the few left are tested one by one."""
    if not isinstance(series.dtype, pd.StringDtype):
        return np.fromiter(map(_is_blank, series.tolist()), dtype=bool, count=len(series))
    first_codes, firsts = pd.factorize(series.str.slice(0, 1))
    opens_blank = np.array([c == "" or c.isspace() for c in firsts] + [True], dtype=bool)  # code -1: missing
    out = opens_blank[first_codes]
    maybe = np.flatnonzero(out)
    if len(maybe):
        out[maybe] = [_is_blank(v) for v in series.iloc[maybe].tolist()]
    return out


def _parse_correct(value) -> float:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return float(value)
    if isinstance(value, float | np.floating) and value in (0.0, 1.0):
        return float(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    raise ValueError(f"correct must be 0/1 or true/false. Got {str(value)[:20]!r} instead.")


def _parse_score(value) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"score must be a number in [0, 1]. Got {str(value)[:20]!r} instead.") from None
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be a number in [0, 1]. Got {score:g} instead.")
    return score


def _parse_count(name: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 0 and number == int(number)):
        raise ValueError(f"{name} must be an integer >= 0. Got {str(value)[:20]!r} instead.")
    return int(number)


def _parse_cost(value) -> float:
    try:
        cost = float(value)
    except (TypeError, ValueError):
        cost = float("nan")
    if not cost >= 0:
        raise ValueError(f"cost_usd must be a number >= 0. Got {str(value)[:20]!r} instead.")
    return cost


def _read_records(path: Path) -> tuple[list[tuple[int, dict | None, str | None]] | pd.DataFrame, list[str]]:
    """Rows as (row number, record or None, parse error) plus the column names seen; a CSV or Parquet file as its
    frame (:func:`_frame_rows` turns it into rows)."""
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    try:
        if stem.endswith(".jsonl") or stem.endswith(".ndjson"):
            opener = gzip.open if name.endswith(".gz") else open
            rows, columns = [], {}
            with opener(path, "rt", encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        rows.append((line_no, None, f"not valid JSON ({exc.msg})"))
                        continue
                    except RecursionError:
                        rows.append((line_no, None, "not valid JSON (nested too deeply)"))
                        continue
                    if not isinstance(record, dict):
                        rows.append((line_no, None, "must be a JSON object"))
                        continue
                    columns.update(dict.fromkeys(record))
                    rows.append((line_no, record, None))
            return rows, list(columns)
        if stem.endswith(".csv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
        elif stem.endswith(".parquet"):
            frame = pd.read_parquet(path)
        else:
            raise InputError(
                f"`{path}`: unknown eval-sample file type. Expected .csv, .jsonl or .parquet (optionally .gz)."
            )
    except FileNotFoundError:
        raise InputError(f"`{path}`: file not found. Check the path.") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"`{path}`: empty file. Expected a header row and eval samples.") from None
    except EOFError:
        raise InputError(f"`{path}`: truncated gzip file. Re-export or re-compress it.") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"`{path}`: cannot be read ({type(exc).__name__}). Expected a valid CSV, JSONL or Parquet file.") from None
    return frame, list(frame.columns)


def _frame_rows(frame: pd.DataFrame) -> list[tuple[int, dict | None, str | None]]:
    return [(i, rec, None) for i, rec in enumerate(frame.to_dict("records"), start=1)]


def _check_columns(path: Path, columns: list[str], n_rows: int) -> None:
    if n_rows == 0:
        return
    for col in REQUIRED:
        if col not in columns:
            raise InputError(
                f"`{path}`: required column `{col}` is missing; found {', '.join(map(str, columns[:8])) or 'none'}."
                f"{did_you_mean(col, map(str, columns))} Rename the column or re-export the samples."
            )
    if not any(col in columns for col in OUTCOME):
        raise InputError(
            f"`{path}`: needs a `correct` (0/1) or `score` (0..1) column; found {', '.join(map(str, columns[:8]))}."
            f"{did_you_mean('correct', map(str, columns))} Add one of them."
        )


def _validate(record: dict) -> dict:
    """One clean output row, or ValueError with the reason."""
    out = {}
    for col in REQUIRED:
        value = record.get(col)
        if _is_blank(value):
            raise ValueError(f"{col} is empty.")
        out[col] = str(value)
    correct = record.get("correct")
    score = record.get("score")
    if not _is_blank(correct):
        out["correct"] = _parse_correct(correct)
        out["score"] = out["correct"]
        if not _is_blank(score) and _parse_score(score) != out["correct"]:
            raise ValueError("correct and score disagree; give one of them.")
    elif not _is_blank(score):
        out["correct"] = float("nan")
        out["score"] = _parse_score(score)
    else:
        raise ValueError("both correct and score are empty.")
    tag = record.get("workflow_tag")
    out["workflow_tag"] = None if _is_blank(tag) else str(tag)
    prompt = record.get("prompt")
    out["prompt"] = None if _is_blank(prompt) else str(prompt)
    for col in ("input_tokens", "output_tokens"):
        value = record.get(col)
        out[col] = None if _is_blank(value) else _parse_count(col, value)
    cost = record.get("cost_usd")
    out["cost_usd"] = float("nan") if _is_blank(cost) else _parse_cost(cost)
    for key, value in record.items():
        if key not in out:
            out[key] = value
    return out


def load_eval_samples(paths) -> EvalLoad:
    """Load eval samples from CSV/JSONL/Parquet files (``.gz`` allowed).

    Rejected rows (bad values, duplicate ``(sample_id, model)``) land in ``EvalLoad.rejects``; a missing
    required column raises ``InputError``. Example: ``load_eval_samples(["evals.parquet"]).samples``.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files = []
    for raw_path in paths:
        path = Path(raw_path)
        rows, columns = _read_records(path)
        n_rows = len(rows) if isinstance(rows, pd.DataFrame) else sum(rec is not None for _, rec, _ in rows)
        _check_columns(path, columns, n_rows)
        files.append((path, rows, columns))
    fast = _load_columns(files)
    if fast is not None:
        return fast
    clean, rejects, rows_read = [], [], 0
    seen: set[tuple[str, str]] = set()
    for path, rows, _ in files:
        if isinstance(rows, pd.DataFrame):
            rows = _frame_rows(rows)
        for row_no, record, error in rows:
            rows_read += 1
            if error is None:
                try:
                    out = _validate(record)
                except ValueError as exc:
                    error = str(exc)
                else:
                    key = (out["sample_id"], out["model"])
                    if key in seen:
                        error = _duplicate(out["sample_id"], out["model"])
                    else:
                        seen.add(key)
                        clean.append(out)
                        continue
            rejects.append({"source": str(path), "row": row_no, "reason": error})
    return EvalLoad(samples=normalise_samples(pd.DataFrame(clean)), rejects=rejects, rows_read=rows_read)


def _duplicate(sample_id: str, model: str) -> str:
    return f"duplicate sample_id {sample_id!r} for model {model!r}; the first row is kept."


_CONTRACT = ("sample_id", "model", "correct", "score", "workflow_tag", "prompt", "input_tokens", "output_tokens",
             "cost_usd")  # the columns :func:`_validate` writes, in its order


def _load_columns(files) -> EvalLoad | None:
    """:func:`load_eval_samples` column by column, for CSV/Parquet files with the same columns whose rows all pass
    :func:`_validate` (duplicates aside): the same samples and rejects, without a dict per row. None otherwise (the
    caller validates row by row, giving each bad row its exact reason)."""
    if not files or any(not isinstance(rows, pd.DataFrame) for _, rows, _ in files):
        return None
    columns = files[0][2]
    if any(cols != columns for _, _, cols in files) or not sum(len(rows) for _, rows, _ in files):
        return None
    parts = [_validate_columns(rows) for _, rows, _ in files]
    if any(part is None for part in parts):
        return None
    rest = [c for c in columns if c not in _CONTRACT]
    values = {c: [v for part in parts for v in part[c]] for c in (*_CONTRACT, *rest)}
    row = sum(len(rows) for _, rows, _ in files)
    # a repeated (sample_id, model) after its first row is rejected, in row order
    dup = pd.DataFrame({"sample_id": values["sample_id"], "model": values["model"]}).duplicated().to_numpy()
    rejects = []
    if dup.any():
        ends = np.cumsum([len(rows) for _, rows, _ in files])
        for i in np.flatnonzero(dup).tolist():
            f = int(np.searchsorted(ends, i, side="right"))
            rejects.append({"source": str(files[f][0]), "row": i - (int(ends[f - 1]) if f else 0) + 1,
                            "reason": _duplicate(values["sample_id"][i], values["model"][i])})
        keep = np.flatnonzero(~dup).tolist()
        values = {c: [v[i] for i in keep] for c, v in values.items()}
    return EvalLoad(samples=normalise_samples(pd.DataFrame(values)), rejects=rejects, rows_read=row)


def _numeric(series: pd.Series | None) -> bool:
    return series is not None and isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf"


def _validate_columns(frame: pd.DataFrame) -> dict[str, list] | None:
    """What :func:`_validate` gives for every row of ``frame``, as columns (lists in row order, pass-through
    columns included); None if any row would be rejected. Plain numpy columns are checked with numpy, anything
    else value by value with the same parsers."""
    n = len(frame)

    def get(name):
        return frame[name] if name in frame.columns else None

    def blanks(series) -> np.ndarray:
        if series is None:
            return np.ones(n, dtype=bool)
        if _numeric(series):
            return np.isnan(series.to_numpy()) if series.dtype.kind == "f" else np.zeros(n, dtype=bool)
        return _blank_values(series)

    def parsed(series, blank, parse, fill) -> list:
        values = series.tolist() if series is not None else [None] * n
        return [fill if b else parse(v) for v, b in zip(values, blank.tolist())]

    out: dict[str, list] = {}
    try:
        for name in REQUIRED:
            series = get(name)
            if blanks(series).any():
                return None
            out[name] = [str(v) for v in series.tolist()]
        correct, score = get("correct"), get("score")
        c_blank, s_blank = blanks(correct), blanks(score)
        if (c_blank & s_blank).any():
            return None
        c_value = _parsed_numbers(correct, c_blank, _parse_correct, _correct_numbers)
        s_value = _parsed_numbers(score, s_blank, _parse_score, _score_numbers)
        if c_value is None or s_value is None or np.any(~c_blank & ~s_blank & (s_value != c_value)):
            return None
        out["correct"] = c_value.tolist()
        out["score"] = np.where(c_blank, s_value, c_value).tolist()
        for name in ("workflow_tag", "prompt"):
            series = get(name)
            out[name] = parsed(series, blanks(series), str, None)
        for name in ("input_tokens", "output_tokens"):
            series = get(name)
            if _numeric(series) and series.dtype.kind in "iu" and (series.to_numpy() < 2**53).all():
                if (series.to_numpy() < 0).any():
                    return None
                out[name] = series.tolist()  # exact in float64, as _parse_count reads them
            else:
                out[name] = parsed(series, blanks(series), lambda v, name=name: _parse_count(name, v), None)
        cost = get("cost_usd")
        out["cost_usd"] = parsed(cost, blanks(cost), _parse_cost, float("nan"))
    except (ValueError, TypeError, OverflowError):
        return None  # a bad value: the row-by-row path gives its reason
    for name in frame.columns:
        if name not in out:
            out[name] = frame[name].tolist()
    return out


def _parsed_numbers(series, blank, parse, numbers) -> np.ndarray | None:
    """float64 values of an outcome column (NaN where blank); None if a non-blank value is bad."""
    if series is None:
        return np.full(len(blank), np.nan)
    if _numeric(series):
        return numbers(series.to_numpy(), blank)
    values = series.tolist()
    return np.array([math.nan if b else parse(v) for v, b in zip(values, blank.tolist())], dtype=np.float64)


def _correct_numbers(values: np.ndarray, blank: np.ndarray) -> np.ndarray | None:
    out = values.astype(np.float64)
    if values.dtype.kind != "b" and not np.all(blank | (out == 0.0) | (out == 1.0)):
        return None
    return out


def _score_numbers(values: np.ndarray, blank: np.ndarray) -> np.ndarray | None:
    out = values.astype(np.float64)
    if not np.all(blank | ((out >= 0.0) & (out <= 1.0))):
        return None
    return out


def normalise_samples(frame: pd.DataFrame) -> pd.DataFrame:
    """Give an eval-sample frame the contract's columns and dtypes (missing optional columns added empty)."""
    frame = frame.copy()
    n = len(frame)
    for col in COLUMNS:
        if col not in frame.columns:
            frame[col] = [None] * n if col in ("workflow_tag", "prompt", "input_tokens", "output_tokens") else np.nan
    frame["sample_id"] = frame["sample_id"].astype(str)
    frame["model"] = frame["model"].astype(str)
    frame["correct"] = pd.to_numeric(frame["correct"]).astype("float64")
    frame["score"] = pd.to_numeric(frame["score"]).astype("float64")
    frame["cost_usd"] = pd.to_numeric(frame["cost_usd"]).astype("float64")
    for col in ("input_tokens", "output_tokens"):
        frame[col] = pd.array(pd.to_numeric(frame[col]), dtype="Int64")
    for col in ("workflow_tag", "prompt"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    rest = [c for c in frame.columns if c not in COLUMNS]
    return frame[list(COLUMNS) + rest].reset_index(drop=True)
