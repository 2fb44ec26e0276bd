"""Import RouteLLM's evaluation layout (lm-sys/RouteLLM ``routellm/evals``) into long eval samples.

Layout under ``DIR``: ``mmlu/responses/mmlu_<subject>.csv`` and ``gsm8k/gsm8k_responses.csv`` carry one
``"True"``/``"False"`` correctness column per model; ``mt_bench/judgements.jsonl`` carries GPT-4 judge scores
1-10 per (question, turn, model). Each benchmark also ships ``contaminated_prompts.jsonl`` (prompts that overlap
RouteLLM's router training data); like RouteLLM's own ``benchmarks.py``, matching prompts are excluded by default.

Sample ids are stable across runs and machines: ``mmlu/<subject>/<row>``, ``gsm8k/<row>``,
``mt-bench/<question_id>/turn<turn>`` (rows 0-based in file order). MT-Bench scores map to 0..1 as
``(score - 1) / 9`` so the judge's 1-10 scale spans [0, 1]; ``score == -1`` (judge output not parsed) is dropped and counted.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pandas as pd

from simulator.errors import InputError
from simulator.evals.load import normalise_samples

# RouteLLM prompts carry long quoted fields with newlines; the default 128 KiB field limit is too small.
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
_META_COLUMNS = {"prompt"}


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    csv.field_size_limit(_FIELD_LIMIT)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InputError(f"`{path}`: empty file. Expected a header `prompt,<model>,...`.")
        return header, list(reader)


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    out = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                out.add(str(json.loads(line)["eval_prompt"]).strip())
    return out


def _correctness_file(path: Path, sample_prefix: str, tag: str, exclude: set[str], stats: dict) -> list[dict]:
    header, rows = _read_csv_rows(path)
    if "prompt" not in header:
        raise InputError(f"`{path}`: column `prompt` is missing. Expected RouteLLM's `prompt,<model>,...` layout.")
    p = header.index("prompt")
    # Model columns are the correctness columns; `<model>_response` columns hold response text.
    models = [(i, name) for i, name in enumerate(header) if name not in _META_COLUMNS and not name.endswith("_response")]
    out = []
    for row_no, row in enumerate(rows):
        stats["rows_read"] += 1
        if len(row) != len(header):
            stats["rows_malformed"] += 1
            continue
        prompt = row[p]
        if prompt.strip() in exclude:
            stats["rows_contaminated"] += 1
            continue
        for i, model in models:
            value = row[i].strip()
            if value not in ("True", "False"):
                stats["cells_invalid"] += 1
                continue
            correct = 1.0 if value == "True" else 0.0
            out.append({"sample_id": f"{sample_prefix}/{row_no}", "model": model, "correct": correct,
                        "score": correct, "workflow_tag": tag, "prompt": prompt})
    return out


def _mt_bench(root: Path, exclude: set[str], stats: dict) -> list[dict]:
    questions = {}
    with open(root / "question.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                q = json.loads(line)
                questions[int(q["question_id"])] = q
    out = []
    with open(root / "judgements.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            stats["rows_read"] += 1
            j = json.loads(line)
            qid, turn = int(j["question_id"]), int(j["turn"])
            question = questions.get(qid)
            # RouteLLM routes on the first turn, so contamination is judged on turn 1 for both turns.
            if question is None or str(question["turns"][0]).strip() in exclude:
                stats["rows_contaminated" if question is not None else "rows_malformed"] += 1
                continue
            score = float(j["score"])
            if score == -1:
                stats["scores_unparsed_dropped"] += 1
                continue
            if not 1 <= score <= 10:
                stats["cells_invalid"] += 1
                continue
            out.append({"sample_id": f"mt-bench/{qid}/turn{turn}", "model": str(j["model"]), "correct": float("nan"),
                        "score": (score - 1.0) / 9.0, "workflow_tag": "mt-bench",
                        "prompt": str(question["turns"][turn - 1]), "category": question.get("category")})
    return out


def import_routellm(directory, *, exclude_contaminated: bool = True) -> tuple[pd.DataFrame, dict]:
    """Read a RouteLLM evals directory into long eval samples plus counts.

    Returns ``(samples, stats)``; stats has ``rows_read``, ``rows_contaminated``, ``scores_unparsed_dropped``,
    ``cells_invalid``, ``rows_malformed``, ``samples`` and per-benchmark ``rows_by_benchmark``.
    Example: ``samples, stats = import_routellm("shared/data/routellm-evals")``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"`{root}`: not a directory. Give the RouteLLM evals folder (with mmlu/, gsm8k/, mt_bench/).")
    stats = {"rows_read": 0, "rows_contaminated": 0, "scores_unparsed_dropped": 0, "cells_invalid": 0, "rows_malformed": 0}
    rows: list[dict] = []
    by_bench = {}
    mmlu_files = sorted((root / "mmlu" / "responses").glob("mmlu_*.csv"))
    if mmlu_files:
        exclude = _contaminated(root / "mmlu" / "contaminated_prompts.jsonl") if exclude_contaminated else set()
        before = len(rows)
        for path in mmlu_files:
            subject = path.stem[len("mmlu_"):]
            part = _correctness_file(path, f"mmlu/{subject}", "mmlu", exclude, stats)
            for r in part:
                r["category"] = subject
            rows += part
        by_bench["mmlu"] = len(rows) - before
    gsm8k = root / "gsm8k" / "gsm8k_responses.csv"
    if gsm8k.exists():
        exclude = _contaminated(root / "gsm8k" / "contaminated_prompts.jsonl") if exclude_contaminated else set()
        before = len(rows)
        rows += _correctness_file(gsm8k, "gsm8k", "gsm8k", exclude, stats)
        by_bench["gsm8k"] = len(rows) - before
    mt = root / "mt_bench"
    if (mt / "judgements.jsonl").exists() and (mt / "question.jsonl").exists():
        exclude = _contaminated(mt / "contaminated_prompts.jsonl") if exclude_contaminated else set()
        before = len(rows)
        rows += _mt_bench(mt, exclude, stats)
        by_bench["mt-bench"] = len(rows) - before
    if not by_bench:
        raise InputError(
            f"`{root}`: no RouteLLM eval files found. Expected mmlu/responses/mmlu_*.csv, "
            "gsm8k/gsm8k_responses.csv or mt_bench/judgements.jsonl under it."
        )
    stats["samples"] = len(rows)
    stats["rows_by_benchmark"] = by_bench
    return normalise_samples(pd.DataFrame(rows)), stats
