"""Outcomes joined to sessions: cost per outcome with both denominators, and GitHub pull requests as outcomes.

An outcomes file (CSV, JSONL, JSON or Parquet, optionally gzipped) has one row per outcome: ``session_id``,
``outcome`` (``pr_merged``, ``ticket_closed``, ``incident_resolved``, ``eval_passed``; other kinds are kept as they
are; ``eval_failed`` rows count for the eval pass rate only, never as an outcome) and ``timestamp`` (ISO-8601 with an
offset, or epoch milliseconds). Every row is loaded or rejected with its file, row and reason.

GitHub ``pull_request`` webhook payloads (a JSON object, an array of them, or JSON lines) become ``pr_merged``
outcomes at ``merged_at`` when ``action`` is ``closed`` and ``pull_request.merged`` is true; the session id is read
from a label (``<label_prefix><id>``), a body trailer line (``<trailer>: <id>``) or the head branch name (a regex).
Payloads of other events or actions are counted as skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import zlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.control.settings import GithubOutcomes, Outcomes
from simulator.errors import InputError
from simulator.io.readers import expand_paths, parse_jsonl_line, read_any

KNOWN_KINDS = ("pr_merged", "ticket_closed", "incident_resolved", "eval_passed")
NOT_OUTCOMES = frozenset({"eval_failed"})  # signals used for the eval pass rate, not things a session produced
COLUMNS = ("session_id", "outcome", "timestamp", "source")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclasses.dataclass
class OutcomeTable:
    """Loaded outcomes (``session_id``, ``outcome``, ``timestamp`` as UTC ns, ``source``) and the accounting."""

    frame: pd.DataFrame
    rows_read: int = 0
    rejects: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    skipped: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        reasons = Counter(r["reason"] for r in self.rejects)
        skipped = Counter(r["reason"] for r in self.skipped)
        return {"rows_read": self.rows_read, "rows_loaded": len(self.frame), "rows_rejected": len(self.rejects),
                "rows_skipped": len(self.skipped),
                "rejected_by_reason": [{"reason": k, "rows": v} for k, v in sorted(reasons.items(),
                                                                                  key=lambda kv: (-kv[1], kv[0]))],
                "skipped_by_reason": [{"reason": k, "rows": v} for k, v in sorted(skipped.items(),
                                                                                 key=lambda kv: (-kv[1], kv[0]))]}


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"session_id": pd.Series([], dtype=object), "outcome": pd.Series([], dtype=object),
                         "timestamp": np.zeros(0, np.int64), "source": pd.Series([], dtype=object)})


def parse_times(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(UTC ns, ok) for ISO-8601 text with an offset, epoch milliseconds, or tz-aware datetimes."""
    n = len(values)
    out = np.zeros(n, dtype=np.int64)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        ok = values.notna().to_numpy()
        out[ok] = pd.DatetimeIndex(values[ok]).as_unit("ns").asi8
        return out, ok
    ok = np.zeros(n, dtype=bool)
    for i, v in enumerate(values.astype(object)):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            if 1e11 <= float(v) < 1e14:
                out[i], ok[i] = int(round(float(v) * 1e6)), True
            continue
        text = str(v).strip()
        if re.fullmatch(r"\d{12,14}", text) and 1e11 <= float(text) < 1e14:  # epoch milliseconds as text
            out[i], ok[i] = int(text) * 1_000_000, True
            continue
        if not re.search(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$", text):
            continue
        try:
            out[i], ok[i] = pd.Timestamp(text).tz_convert("UTC").as_unit("ns").value, True
        except (ValueError, TypeError):
            continue
    return out, ok


def read_outcome_files(paths: list[str | Path]) -> OutcomeTable:
    """Outcome rows from CSV/JSONL/JSON/Parquet files; each row loaded or rejected with its reason."""
    frames, rejects, read = [], [], 0
    for path in expand_paths(list(paths)):
        raw = read_any(path)
        read += raw.rows_read
        rejects += [{"source": str(path), "row": r["row"], "reason": r["reason"]} for r in raw.rejects]
        f = raw.frame
        if not len(f):
            continue
        missing = [c for c in ("session_id", "outcome", "timestamp") if c not in f.columns]
        if missing:
            raise InputError(f"{path}: outcomes need columns session_id, outcome, timestamp; missing "
                             f"{', '.join(missing)} (found: {', '.join(c for c in f.columns if c != '_row')}).")
        session = f["session_id"].astype(object).map(lambda v: None if v is None or (isinstance(v, float) and
                                                                                    np.isnan(v)) else str(v).strip())
        kind = f["outcome"].astype(object).map(lambda v: str(v).strip().lower() if isinstance(v, str) else None)
        ts, ts_ok = parse_times(f["timestamp"])
        reason = np.full(len(f), None, dtype=object)
        reason[~ts_ok] = "timestamp must be ISO-8601 with an offset (Z, +02:00) or epoch milliseconds"
        bad_kind = ~kind.map(lambda k: bool(k) and bool(_KIND.match(k))).to_numpy(dtype=bool)
        reason[bad_kind] = "outcome must be a snake_case kind such as pr_merged or ticket_closed"
        reason[session.map(lambda s: not s).to_numpy(dtype=bool)] = "session_id is missing"
        rows = f["_row"].to_numpy()
        for i in np.flatnonzero(pd.notna(reason)):
            rejects.append({"source": str(path), "row": int(rows[i]), "reason": str(reason[i])})
        good = pd.isna(reason)
        frames.append(pd.DataFrame({"session_id": session[good].to_numpy(dtype=object),
                                    "outcome": kind[good].to_numpy(dtype=object), "timestamp": ts[good],
                                    "source": [f"{path}:{r}" for r in rows[good]]}))
    frame = pd.concat(frames, ignore_index=True) if frames else _empty()
    return OutcomeTable(frame, read, rejects)


# -- GitHub pull requests ---------------------------------------------------------------------------------------
def read_payloads(path: Path) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """(row, payload) pairs of a JSON object, a JSON array or JSON lines; unreadable lines as rejects."""
    try:
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix.lower() == ".gz" or data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read ({exc}).") from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InputError(f"{path} line {exc.lineno}: malformed JSON ({exc.msg}).") from None
        pairs, rejects = [], []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                obj, reason = parse_jsonl_line(line)
                if reason:
                    rejects.append({"source": str(path), "row": number, "reason": reason})
                else:
                    pairs.append((number, obj))
        return pairs, rejects
    docs = doc if isinstance(doc, list) else [doc]
    return list(enumerate(docs, start=1)), []


def session_from_pull_request(pr: dict[str, Any], settings: GithubOutcomes) -> str | None:
    """The session id a pull request carries in the configured place, or None."""
    if settings.session_id_from == "label":
        names = sorted(str(lab.get("name", "")) for lab in pr.get("labels") or [] if isinstance(lab, dict))
        found = [n[len(settings.label_prefix):].strip() for n in names if n.startswith(settings.label_prefix)]
        return next((f for f in found if f), None)
    if settings.session_id_from == "trailer":
        pattern = re.compile(rf"^\s*{re.escape(settings.trailer)}\s*:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
        found = pattern.findall(str(pr.get("body") or ""))
        return found[-1] if found else None  # git trailers sit at the end: the last one wins
    ref = str((pr.get("head") or {}).get("ref") or "")
    m = re.search(settings.branch_pattern, ref)
    if not m:
        return None
    return (m.groupdict().get("session") or m.group(1) or None) if m.groupdict() else (m.group(1) or None)


def github_outcomes(settings: GithubOutcomes, paths: list[str | Path] | None = None) -> OutcomeTable:
    """``pr_merged`` outcomes from GitHub pull_request webhook payloads (see the module docstring)."""
    items = paths if paths is not None else ([settings.paths] if isinstance(settings.paths, str) else settings.paths)
    rows, rejects, skipped, read = [], [], [], 0
    for path in expand_paths(list(items)):
        pairs, bad = read_payloads(path)
        rejects += bad
        read += len(pairs) + len(bad)
        for number, payload in pairs:
            where = {"source": str(path), "row": number}
            if not isinstance(payload, dict) or not isinstance(payload.get("pull_request"), dict):
                rejects.append({**where, "reason": "not a pull_request webhook payload"})
                continue
            pr = payload["pull_request"]
            if payload.get("action") != "closed" or pr.get("merged") is not True:
                skipped.append({**where, "reason": f"pull request not merged (action {payload.get('action')!r})"})
                continue
            ts, ok = parse_times(pd.Series([pr.get("merged_at")], dtype=object))
            if not ok[0]:
                rejects.append({**where, "reason": "merged pull request without a valid merged_at"})
                continue
            session = session_from_pull_request(pr, settings)
            if not session:
                rejects.append({**where, "reason": f"no session id in the pull request's {settings.session_id_from}"})
                continue
            url = pr.get("html_url") or f"#{payload.get('number', pr.get('number'))}"
            rows.append({"session_id": session, "outcome": "pr_merged", "timestamp": int(ts[0]), "source": url})
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else _empty()
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return OutcomeTable(frame, read, rejects, skipped)


def import_github_prs(files: list[str | Path], session_id_from: str, label_prefix: str, trailer: str,
                      branch_pattern: str | None) -> tuple[pd.DataFrame, list[dict[str, Any]], int]:
    """``tfysim import github-prs``: (outcomes with tz-aware timestamps, rejects, payloads skipped)."""
    import pydantic

    options = {"paths": [str(f) for f in files], "session_id_from": session_id_from, "label_prefix": label_prefix,
               "trailer": trailer}
    if branch_pattern:
        options["branch_pattern"] = branch_pattern
    try:
        settings = GithubOutcomes(**options)
    except pydantic.ValidationError as exc:
        msg = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise InputError(f"--branch-pattern: {msg}.") from None
    table = github_outcomes(settings)
    frame = table.frame.assign(timestamp=pd.to_datetime(table.frame["timestamp"].to_numpy(np.int64), utc=True))
    return frame, table.rejects, len(table.skipped)


def load_outcomes(settings: Outcomes, base_dir: str | Path = ".") -> OutcomeTable:
    """Every outcome the scenario names (files and GitHub payloads), in (timestamp, session_id) order."""
    def resolve(items) -> list[Path]:
        items = [items] if isinstance(items, str) else list(items)
        return [p if p.is_absolute() else Path(base_dir) / p for p in (Path(i).expanduser() for i in items)]

    parts = []
    if settings.files:
        parts.append(read_outcome_files(resolve(settings.files)))
    if settings.github is not None:
        parts.append(github_outcomes(settings.github, resolve(settings.github.paths)))
    if not parts:
        return OutcomeTable(_empty())
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    frame = frame.sort_values(["timestamp", "session_id", "outcome", "source"], kind="stable").reset_index(drop=True)
    return OutcomeTable(frame, sum(p.rows_read for p in parts), [r for p in parts for r in p.rejects],
                        [r for p in parts for r in p.skipped])


# -- cost per outcome -------------------------------------------------------------------------------------------
def outcome_counts(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per session: one column per outcome kind (counts)."""
    if not len(outcomes):
        return pd.DataFrame(index=pd.Index([], dtype=object, name="session_id"))
    return outcomes.groupby(["session_id", "outcome"]).size().unstack(fill_value=0)


def cost_per_outcome(sessions: pd.DataFrame, outcomes: pd.DataFrame) -> list[dict[str, Any]]:
    """Per workflow: sessions, sessions with an outcome, outcomes, cost and cost per outcome and per session.

    ``sessions``: one row per session (``session_id``, ``workflow_tag`` of its first request, ``cost_usd`` of all
    its requests). ``cost_per_outcome_usd = cost_usd / outcomes`` (None without outcomes) and
    ``cost_per_session_usd = cost_usd / sessions``: both denominators, so sessions that produced nothing stay visible.
    """
    return OutcomeJoin(sessions["session_id"], sessions["workflow_tag"], outcomes).by_workflow(sessions["cost_usd"])


class OutcomeJoin:
    """The outcomes joined to a list of sessions, and the sessions grouped by workflow: :func:`cost_per_outcome`
    apart from the costs. Made once, it prices every replay of the same sessions (only their costs differ)."""

    def __init__(self, session_id: pd.Series, workflow_tag: pd.Series, outcomes: pd.DataFrame) -> None:
        counts = outcome_counts(outcomes)
        kinds = [k for k in counts.columns if k not in NOT_OUTCOMES]
        per = counts[kinds].sum(axis=1) if kinds else pd.Series(0, index=counts.index)
        session_id = pd.Series(session_id).reset_index(drop=True)
        self.outcomes = per.reindex(session_id).fillna(0).to_numpy(dtype=np.int64)
        # outcome counts per session row, aligned once (a reindex per workflow was most of the panel's time)
        self.kind_names = sorted(counts.columns)
        self.by_row = (counts[self.kind_names].reindex(session_id).fillna(0).to_numpy(np.int64) if len(counts)
                       else None)
        positions = pd.Series(np.arange(len(session_id)))
        self.groups = [(wf, g.to_numpy()) for wf, g in
                       positions.groupby(pd.Series(workflow_tag).to_numpy(dtype=object), sort=True)]

    def by_workflow(self, cost_usd) -> list[dict[str, Any]]:
        """The :func:`cost_per_outcome` rows for the sessions' costs (aligned with the sessions)."""
        cost_usd = np.asarray(cost_usd, dtype=np.float64)
        out = []
        for wf, rows in self.groups:
            outcomes = self.outcomes[rows]
            n, produced, cost = len(rows), int(outcomes.sum()), float(np.nansum(cost_usd[rows]))
            by_kind = {}
            if self.by_row is not None:
                sums = self.by_row[rows].sum(axis=0)
                by_kind = {k: int(v) for k, v in zip(self.kind_names, sums.tolist()) if v > 0}
            out.append({"workflow_tag": wf, "sessions": n, "sessions_with_outcome": int((outcomes > 0).sum()),
                        "outcomes": produced, "outcomes_by_kind": by_kind, "cost_usd": round(cost, 6),
                        "cost_per_outcome_usd": round(cost / produced, 6) if produced else None,
                        "cost_per_session_usd": round(cost / n, 6) if n else None})
        return out
