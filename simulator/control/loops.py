"""Runaway sessions: the article's loop rule and two further detectors, in time order, state carried across chunks.

Every rule is evaluated at the start of each request of a session over the session's *earlier* requests only, so
the request at which a rule fires is the detection moment (``detected_at``) and, when a candidate kills runaway
sessions, the first request blocked.

- ``rate``: the session's spend over the sliding window before the request (``weight: cost``: tokens weighted by
  their price, so cache reads count at their cost; ``weight: tokens``: raw input + output tokens) is above
  ``multiplier`` x the ``quantile`` of its workflow's per-session window totals over the previous ``baseline_days``,
  and has been for ``for`` (Prometheus ``for:``). Baseline samples are (session, fixed window bucket) totals; a
  bucket joins the baseline once it is complete, except buckets of sessions already flagged (a runaway must not
  raise the bar for the next one); quantiles interpolate linearly (numpy's and Prometheus' default).
  No rate alert before the workflow has ``min_baseline_samples`` samples.
- ``identical_requests``: the session's last N successful requests were identical (same prefix hash, input tokens
  and prompt text when logged). Failed attempts neither extend nor break the run.
- ``retry_storm``: the session's last N attempts failed, all within one window.

A request's tokens count from its start time (a gateway's counters see them at completion, seconds later).
Sessions are keyed by a 64-bit hash of ``session_id`` (stable across chunks and processes); rows without a session
id are never flagged. ``LoopState`` holds everything carried from one chunk to the next: per-session counters, the
requests of the last window (for the sliding rate), the open window bucket of each active session and the baseline
samples of the last ``baseline_days``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from simulator.jit import njit

from simulator.control.settings import LoopDetection
from simulator.errors import InputError

RATE, IDENTICAL, RETRY_STORM = 1, 2, 3
RULE_NAMES = {RATE: "rate", IDENTICAL: "identical_requests", RETRY_STORM: "retry_storm"}
UNTAGGED = "UNTAGGED"
_NS = 10**9


def stable_keys(values: np.ndarray) -> np.ndarray:
    """int64 key per value (64-bit hash, the same in every process); 0 for missing values."""
    values = np.asarray(values, dtype=object)
    missing = pd.isna(values)
    if missing.all():
        return np.zeros(len(values), dtype=np.int64)
    h = pd.util.hash_array(np.where(missing, "", values).astype(object), categorize=True).view(np.int64)
    h = np.where(h == 0, 1, h)
    return np.where(missing, 0, h)


def fingerprints(prefix_hash: np.ndarray, input_tokens: np.ndarray, prompt: np.ndarray,
                 failed: np.ndarray) -> np.ndarray:
    """Request fingerprint for the identical-requests rule: (prefix hash, input tokens, prompt); 0 = not comparable
    (failed attempts and rows without input tokens)."""
    if len(input_tokens) == 0:
        return np.zeros(0, dtype=np.int64)
    return _fingerprint(text_hashes(prefix_hash, prompt), input_tokens, failed)


def text_hashes(prefix_hash, prompt) -> np.ndarray:
    """The text part of :func:`fingerprints` (prompt and prefix hash), the same for every replay of a chunk."""
    from simulator.hashing import dictionary_text, hash64, mix64

    # hashes over the Arrow buffers, each distinct text once (a sample week's 40 k prompts are 26 MB but 4,367
    # distinct texts, 3.3 MB: hashed on numpy in 0.03 s, where 26 MB went to the compiled kernel); missing hashes as ""
    return mix64(hash64(dictionary_text(_texts(prompt)), 0, "fingerprint-prompt"),
                 hash64(dictionary_text(_texts(prefix_hash)), 0, "fingerprint-prefix"))


def _fingerprint(text: np.ndarray, input_tokens: np.ndarray, failed: np.ndarray) -> np.ndarray:
    if len(input_tokens) == 0:
        return np.zeros(0, dtype=np.int64)
    from simulator.hashing import mix64

    fp = mix64(text, np.asarray(input_tokens, dtype=np.int64)).view(np.int64)
    fp = np.where(fp == 0, 1, fp)
    return np.where(np.asarray(failed, dtype=bool) | (np.asarray(input_tokens) <= 0), 0, fp)


def _texts(values):
    """A text column as hash64 takes it: Series and Arrow arrays as they are, anything else as a list of str/None."""
    if isinstance(values, pd.Series) or hasattr(values, "buffers"):
        return values
    return [None if v is None or v != v else str(v) for v in values]


@njit(cache=True, nogil=True)
def _rate_before(ts, slot, weight, n_slots, window_ns):  # pragma: no cover - compiled
    """Per row: the sum of the same slot's weights with ts in (t - window, t); rows in time order."""
    n = ts.shape[0]
    last = np.full(n_slots, -1, dtype=np.int64)
    prev = np.full(n, -1, dtype=np.int64)
    rate = np.zeros(n, dtype=np.float64)
    for i in range(n):
        s = slot[i]
        if s < 0:
            continue
        j = last[s]
        prev[i] = j
        last[s] = i
        total = 0.0
        low = ts[i] - window_ns
        while j >= 0 and ts[j] > low:
            if ts[j] < ts[i]:
                total += weight[j]
            j = prev[j]
        rate[i] = total
    return rate


_SLOT_ARRAYS = {  # name: (dtype, fill); a session's workflow and first request are in its SessionIndex
    "pending": (np.int64, -1), "first_excess": (np.int64, -1),
    "detected_at": (np.int64, -1), "rule_of": (np.int8, 0), "onset": (np.int64, -1), "ident_fp": (np.int64, 0),
    "ident_run": (np.int64, 0), "ident_start": (np.int64, -1), "fail_run": (np.int64, 0),
    "after_cost": (np.float64, 0.0), "after_requests": (np.int64, 0), "total_cost": (np.float64, 0.0),
    "requests": (np.int64, 0), "open_w": (np.float64, 0.0), "open_tokens": (np.float64, 0.0),
    "limit_hits": (np.int64, 0), "retry_tokens": (np.float64, 0.0), "open_mark": (np.int64, -(2**62)),
}


class SessionIndex:
    """The sessions seen so far, numbered (slots) in order of first appearance, with the workflow and team of each
    one's first request. The :class:`LoopState` of every replay of the same chunks (the recorded traffic and each
    candidate, in one control room) shares one: the sessions and slots depend on the traffic only."""

    def __init__(self) -> None:
        self.slot_of: dict[int, int] = {}
        self.session_ids: list[str] = []
        self.labels: list[tuple[str, str | None]] = []  # (workflow_tag, team) of each slot's first request
        self.wf = np.zeros(0, np.int64)  # workflow code of each slot (into wf_names)
        self.first_ts = np.zeros(0, np.int64)
        self.wf_of: dict[str, int] = {}
        self.wf_names: list[str] = []
        self._columns: tuple[int, tuple[pd.Series, pd.Series, pd.Series]] | None = None

    def __len__(self) -> int:
        return len(self.session_ids)

    def slots(self, keys, session_id, workflow_tag, team, ts) -> np.ndarray:
        """Slot per row (-1 for rows without a session; ``keys``: :func:`stable_keys` of ``session_id``); sessions
        not seen before get the next slots."""
        codes, uniques = pd.factorize(keys)
        if not len(codes):
            return np.zeros(0, np.int64)
        first = np.zeros(len(uniques), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        get = self.slot_of.get
        ids = np.array([get(k, -1) for k in uniques.tolist()], dtype=np.int64)
        new = np.flatnonzero((ids < 0) & (uniques != 0))
        if len(new):
            base = len(self.session_ids)
            ids[new] = base + np.arange(len(new))
            self.slot_of.update(zip(uniques[new].tolist(), ids[new].tolist()))
            rows = first[new]
            wfs = pd.Series(workflow_tag[rows], dtype=object).fillna(UNTAGGED).astype(str).tolist()
            teams = pd.Series(team[rows], dtype=object)
            teams = teams.astype(object).where(teams.notna(), None).tolist()
            self.session_ids.extend(str(x) for x in session_id[rows])
            self.labels.extend(zip(wfs, [None if t is None else str(t) for t in teams]))
            wf_codes, wf_names = pd.factorize(np.array(wfs, dtype=object))  # in order of first appearance
            self.wf = np.concatenate([self.wf, np.array([self._wf(w) for w in wf_names], np.int64)[wf_codes]])
            self.first_ts = np.concatenate([self.first_ts, ts[rows]])
        return ids[codes]

    def _wf(self, name: str) -> int:
        if name not in self.wf_of:
            self.wf_of[name] = len(self.wf_names)
            self.wf_names.append(name)
        return self.wf_of[name]

    def columns(self) -> tuple[pd.Series, pd.Series, pd.Series]:
        """``session_id``, ``workflow_tag`` and ``team`` of every slot (object Series; made once per size)."""
        if self._columns is None or self._columns[0] != len(self):
            self._columns = (len(self), (pd.Series(self.session_ids, dtype=object),
                                         pd.Series([lab[0] for lab in self.labels], dtype=object),
                                         pd.Series([lab[1] for lab in self.labels], dtype=object)))
        return self._columns[1]


@dataclasses.dataclass
class LoopState:
    """What the loop rules carry from one chunk to the next (see the module docstring). ``kill``: block the
    requests of a flagged session from its detection on (the candidate lever), else only detect (the backtest).
    ``index``: the :class:`SessionIndex` shared with the states of the other replays of the same chunks (default:
    its own)."""

    rule: LoopDetection
    kill: bool = False
    index: SessionIndex = dataclasses.field(default_factory=SessionIndex, repr=False)

    def __post_init__(self) -> None:
        self.window_ns = self.rule.window_s * _NS
        self.baseline_ns = self.rule.baseline_days * 86_400 * _NS
        for name, (dtype, fill) in _SLOT_ARRAYS.items():
            setattr(self, name, np.full(0, fill, dtype=dtype))
        self.fail_times = np.zeros((0, max(self.rule.retry_storm, 1)), dtype=np.int64)
        # baseline samples in flush order (bucket ends never decrease): end, workflow, window total, token total
        self.samples = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))
        self.sample_order: np.ndarray | None = np.zeros(0, np.int64)  # by (workflow, value); None: not known
        self.tail = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
        self.bucket = -(2**62)  # the window bucket being filled
        self.open_buf = np.zeros(0, dtype=np.int64)  # sessions active in it (open_buf[:open_count[0]])
        self.open_count = np.zeros(1, dtype=np.int64)
        self.last_ts = -(2**62)
        self.rows = 0

    # -- slots ------------------------------------------------------------------------------------------------
    session_ids = property(lambda self: self.index.session_ids)
    labels = property(lambda self: self.index.labels)
    wf = property(lambda self: self.index.wf)
    first_ts = property(lambda self: self.index.first_ts)
    wf_names = property(lambda self: self.index.wf_names)

    def _grow(self) -> None:
        """Per-slot arrays for the sessions the shared :class:`SessionIndex` added since the last chunk."""
        new = len(self.index) - len(self.requests)
        if new > 0:
            for name, (dtype, fill) in _SLOT_ARRAYS.items():
                setattr(self, name, np.concatenate([getattr(self, name), np.full(new, fill, dtype=dtype)]))
            self.fail_times = np.vstack([self.fail_times, np.zeros((new, self.fail_times.shape[1]), np.int64)])

    # -- baseline ---------------------------------------------------------------------------------------------
    def _add_samples(self, end, wf, values, tokens) -> None:
        self.samples = tuple(np.concatenate([old, np.asarray(new, dtype=old.dtype)])
                             for old, new in zip(self.samples, (end, wf, values, tokens)))

    def _flush(self) -> None:
        """Move the open buckets (all complete now) into their workflows' baseline samples."""
        count = int(self.open_count[0])
        if not count:
            return
        slots = self.open_buf[:count]
        normal = slots[self.detected_at[slots] < 0]  # a flagged session must not raise the bar for the next one
        self._add_samples(np.full(len(normal), (self.bucket + 1) * self.window_ns, np.int64), self.wf[normal],
                          self.open_w[normal], self.open_tokens[normal])
        self.sample_order = None
        self.open_w[slots] = 0.0
        self.open_tokens[slots] = 0.0
        self.open_count[0] = 0

    def _window(self, wf: int, now: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples of ``wf`` completed in (now - baseline, now]: (window totals, token totals)."""
        end, wfs, values, tokens = self.samples
        keep = (wfs == wf) & (end > now - self.baseline_ns)
        return values[keep], tokens[keep]

    def threshold(self, wf: int, now: int) -> float:
        """``multiplier`` x the ``quantile`` of the workflow's samples in the baseline window ending at ``now``."""
        values, _ = self._window(wf, now)
        if len(values) < self.rule.min_baseline_samples:
            return math.inf
        return self.rule.multiplier * sorted_quantile(np.sort(values), self.rule.quantile)

    # -- one chunk --------------------------------------------------------------------------------------------
    def step(self, ts, session_id, workflow_tag, team, weight, tokens, cost, fingerprint, failed,
             limited=None, session_keys=None, slots=None) -> tuple[np.ndarray, np.ndarray]:
        """Process one time-ordered chunk; returns (rule fired at each row or 0, rows blocked by a kill).

        ``limited``: rows answered 429 (counted per session as rate-limit hits for the leverage score);
        ``session_keys``: ``stable_keys(session_id)`` when already computed (every replay of a chunk shares them);
        ``slots``: ``self.index.slots(...)`` of this chunk when another replay sharing the sessions made them."""
        n = len(ts)
        fired = np.zeros(n, dtype=np.int8)
        killed = np.zeros(n, dtype=bool)
        if n == 0:
            return fired, killed
        ts = np.asarray(ts, dtype=np.int64)
        if ts[0] < self.last_ts:
            raise InputError("loop detection needs the traffic in time order across chunks; sort it by timestamp.")
        if slots is None:
            session_id = np.asarray(session_id, dtype=object)
            keys = stable_keys(session_id) if session_keys is None else np.asarray(session_keys, dtype=np.int64)
            slots = self.index.slots(keys, session_id, np.asarray(workflow_tag, dtype=object),
                                        np.asarray(team, dtype=object), ts)
        slot = np.asarray(slots, dtype=np.int64)
        self._grow()
        weight = np.nan_to_num(np.asarray(weight, dtype=np.float64))
        tokens = np.asarray(tokens, dtype=np.float64)
        cost = np.nan_to_num(np.asarray(cost, dtype=np.float64))
        failed = np.asarray(failed, dtype=np.bool_)
        limited = np.zeros(n, dtype=np.bool_) if limited is None else np.asarray(limited, dtype=np.bool_)
        fingerprint = np.asarray(fingerprint, dtype=np.int64)
        t_ts, t_slot, t_w = self.tail
        rate = _rate_before(np.concatenate([t_ts, ts]), np.concatenate([t_slot, slot]),
                            np.concatenate([t_w, weight]), len(self.session_ids), self.window_ns)[len(t_ts):]
        bucket = ts // self.window_ns
        bounds = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1], True])
        if len(self.open_buf) < len(self.session_ids):
            self.open_buf = np.concatenate([self.open_buf[:self.open_count[0]],
                                            np.zeros(len(self.session_ids), np.int64)])
        # (bucket, workflow) pairs with a non-zero rate: only their thresholds are needed (a zero rate exceeds none)
        moving = np.flatnonzero((slot >= 0) & (rate > 0))
        n_wf = max(len(self.wf_names), 1)
        pairs = np.unique(np.searchsorted(bounds, moving, side="right") * n_wf + self.wf[slot[moving]])
        pair_bucket, pair_wf = pairs // n_wf - 1, pairs % n_wf
        rule = self.rule
        from simulator.control.loop_kernel import candidates, step_buckets

        end, wfs, values, tokens_in = self.samples
        if self.sample_order is None:
            self.sample_order = np.lexsort((values, wfs))
        bvals = bucket[bounds[:-1]]
        cand_w, cand_wf = candidates(bounds, bvals, self.bucket, slot, weight, self.wf, self.open_w, self.open_mark,
                                     self.open_buf, int(self.open_count[0]))
        by_value = np.argsort(cand_w, kind="stable")
        cand_order = by_value[np.argsort(cand_wf[by_value], kind="stable")]
        (out_end, out_wf, out_w, out_t, self.bucket, keep_old, keep_out, self.sample_order,
         consistent) = step_buckets(
            bounds, bvals, pair_bucket, pair_wf, n_wf, self.bucket, end, wfs, values, self.sample_order, cand_w,
            cand_wf, cand_order, ts, slot, rate, self.wf, fingerprint, failed, limited, weight, tokens, cost,
            self.kill, rule.for_s * _NS, self.window_ns, self.baseline_ns, rule.identical_requests, rule.retry_storm, float(rule.multiplier),
            float(rule.quantile), rule.min_baseline_samples, self.pending, self.first_excess, self.detected_at,
            self.rule_of, self.onset, self.ident_fp, self.ident_run, self.ident_start, self.fail_run,
            self.fail_times, self.after_cost, self.after_requests, self.total_cost, self.requests, self.limit_hits,
            self.retry_tokens, self.open_w, self.open_tokens, self.open_mark, self.open_buf, self.open_count, fired,
            killed)
        if not consistent:
            raise RuntimeError("loop detection: a flushed bucket total differs from its dry-pass total")
        # samples that ended before the window of the open bucket can never count again
        self.samples = tuple(np.concatenate([old[keep_old], new[keep_out]]) for old, new in
                             zip((end, wfs, values, tokens_in), (out_end, out_wf, out_w, out_t)))
        executed = np.where(killed, 0.0, weight)
        self.last_ts = int(ts[-1])
        keep_from = self.last_ts - self.window_ns
        all_ts, all_slot = np.concatenate([t_ts, ts]), np.concatenate([t_slot, slot])
        all_w = np.concatenate([t_w, executed])
        keep = (all_ts > keep_from) & (all_slot >= 0)
        self.tail = (all_ts[keep], all_slot[keep], all_w[keep])
        self.rows += n
        return fired, killed

    # -- results ----------------------------------------------------------------------------------------------
    def merge(self, other: LoopState) -> LoopState:
        """Fold in the state of another partition holding other workflows (the Dask engine keeps each workflow's
        sessions in one partition); ``sessions`` and ``baselines`` then cover both."""
        self.merged = [*getattr(self, "merged", []), other, *getattr(other, "merged", [])]
        return self

    def _parts(self) -> list[LoopState]:
        return [self, *getattr(self, "merged", [])]

    def sessions(self) -> list[dict[str, Any]]:
        """Flagged sessions in detection order, then start, then id (session ids are operational ids the runbook's
        kill step needs)."""
        out = [s for part in self._parts() for s in part._flagged()]
        return sorted(out, key=lambda s: (s["detected_at"], s["started_at"], s["session_id"]))

    def _flagged(self) -> list[dict[str, Any]]:
        flagged = np.flatnonzero(self.detected_at >= 0)
        flagged = flagged[np.lexsort((flagged, self.detected_at[flagged]))]
        out = []
        for s in flagged:
            wf, team = self.labels[s]
            det, onset = int(self.detected_at[s]), int(self.onset[s])
            out.append({
                "session_id": self.session_ids[s], "workflow_tag": wf, "team": team,
                "started_at": _iso(self.first_ts[s]), "detected_at": _iso(det),
                "rule": RULE_NAMES[int(self.rule_of[s])],
                "detection_delay_s": round((det - onset) / _NS, 3) if onset >= 0 else None,
                "requests": int(self.requests[s]), "requests_after_detection": int(self.after_requests[s]),
                "cost_usd": round(float(self.total_cost[s]), 6),
                "cost_after_detection_usd": round(float(self.after_cost[s]), 6),
            })
        return out

    def session_table(self) -> pd.DataFrame:
        """One row per session seen: workflow and team of its first request, cost, requests, 429 answers, tokens
        of requests right after a failed attempt, and whether (and when) a rule flagged it (merged partitions: each
        partition's sessions in turn)."""
        parts = self._parts()
        if len(parts) > 1:
            return pd.concat([part._session_table() for part in parts], ignore_index=True)
        return self._session_table()

    def sessions_key(self) -> tuple:
        """Equal for two states whose :meth:`session_table` lists the same sessions in the same order (they share
        their :class:`SessionIndex` objects, partition by partition, and have seen the same chunks)."""
        return tuple((id(part.index), len(part.index)) for part in self._parts())

    def _session_table(self) -> pd.DataFrame:
        session_id, workflow_tag, team = self.index.columns()
        return pd.DataFrame({
            "session_id": session_id, "workflow_tag": workflow_tag, "team": team,
            "cost_usd": self.total_cost, "requests": self.requests, "rate_limit_hits": self.limit_hits,
            "retry_tokens": self.retry_tokens, "flagged": self.detected_at >= 0,
        })

    def baselines(self) -> list[dict[str, Any]]:
        """Per workflow at the end of the traffic: the baseline samples, quantile and threshold, and the limit of a
        gateway's per-session rate rule: ``multiplier`` x the quantile of per-session window totals of raw tokens,
        as tokens per minute (a session using in one minute what a quantile session uses in ``multiplier`` windows:
        conservative, the gateway's one-minute window being shorter than the rule's)."""
        parts = self._parts()
        for part in parts:
            part._flush()
        now = (max(part.bucket for part in parts) + 1) * self.window_ns  # the end of the traffic, not the part's
        out = [b for part in parts for b in part._baselines(now)]
        return sorted(out, key=lambda b: b["workflow_tag"])

    def _baselines(self, now: int) -> list[dict[str, Any]]:
        out = []
        for wf, name in sorted(enumerate(self.wf_names), key=lambda x: x[1]):
            vals, toks = self._window(wf, now)
            enough = len(vals) >= self.rule.min_baseline_samples
            q = sorted_quantile(np.sort(vals), self.rule.quantile) if len(vals) else None
            qt = float(np.quantile(toks, self.rule.quantile)) if len(toks) else None
            out.append({
                "workflow_tag": name, "samples": int(len(vals)),
                "quantile_per_window": _r6(q), "threshold_per_window": _r6(self.rule.multiplier * q) if enough else None,
                "tokens_quantile_per_window": _r6(qt),
                "tokens_per_minute_limit": (int(math.ceil(self.rule.multiplier * qt))
                                            if enough and qt is not None else None),
            })
        return out

    def summary(self, truth: set[str] | None = None) -> dict[str, Any]:
        """The ``loops`` section of summary.json."""
        sessions = self.sessions()
        delays = [s["detection_delay_s"] for s in sessions if s["detection_delay_s"] is not None]
        by_rule = {name: sum(s["rule"] == name for s in sessions) for name in RULE_NAMES.values()}
        by_wf: dict[str, dict[str, Any]] = {}
        parts = self._parts()  # merged partitions hold whole workflows: each workflow's sums in one part's order
        for part in parts:
            for s in range(len(part.session_ids)):
                wf = part.labels[s][0]
                row = by_wf.setdefault(wf, {"workflow_tag": wf, "sessions": 0, "sessions_flagged": 0,
                                            "cost_usd": 0.0, "cost_after_detection_usd": 0.0})
                row["sessions"] += 1
                row["cost_usd"] += float(part.total_cost[s])
                if part.detected_at[s] >= 0:
                    row["sessions_flagged"] += 1
                    row["cost_after_detection_usd"] += float(part.after_cost[s])
        workflows = []
        for wf in sorted(by_wf):
            row = by_wf[wf]
            workflows.append({**row, "cost_usd": round(row["cost_usd"], 6),
                              "cost_after_detection_usd": round(row["cost_after_detection_usd"], 6)})
        out = {
            "rule": rule_record(self.rule),
            "sessions_checked": sum(len(part.session_ids) for part in parts),
            "sessions_flagged": len(sessions),
            "flagged_by_rule": by_rule,
            "cost_after_detection_usd": round(sum(s["cost_after_detection_usd"] for s in sessions), 6),
            "detection_delay_s_p50": round(float(np.median(delays)), 3) if delays else None,
            "detection_delay_s_max": round(float(max(delays)), 3) if delays else None,
            "sessions": sessions,
            "by_workflow": workflows,
            "baselines": self.baselines(),
        }
        if truth is not None:
            checked = {x for part in parts for x in part.session_ids}
            out["truth"] = score_against_truth({s["session_id"] for s in sessions}, checked, truth)
        return out


def sorted_quantile(values, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation, the same arithmetic) of an already sorted array."""
    h = (len(values) - 1) * q
    lo = int(math.floor(h))
    t = h - lo
    a = float(values[lo])
    b = float(values[min(lo + 1, len(values) - 1)])
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def rule_record(rule: LoopDetection) -> dict[str, Any]:
    return {"window": rule.window, "baseline_days": rule.baseline_days, "quantile": rule.quantile,
            "multiplier": rule.multiplier, "for": rule.for_, "weight": rule.weight,
            "min_baseline_samples": rule.min_baseline_samples, "identical_requests": rule.identical_requests,
            "retry_storm": rule.retry_storm}


def score_against_truth(flagged: set[str], checked: set[str], truth: set[str]) -> dict[str, Any]:
    """Recall, false-flag rate (flagged among sessions not labeled runaway) and precision of a detector."""
    positives = truth & checked
    negatives = checked - truth
    tp, fp = len(flagged & positives), len(flagged & negatives)
    return {"labeled_runaway": len(positives), "true_flags": tp, "false_flags": fp,
            "missed": len(positives) - tp,
            "recall": round(tp / len(positives), 6) if positives else None,
            "false_flag_rate": round(fp / len(negatives), 6) if negatives else None,
            "precision": round(tp / (tp + fp), 6) if tp + fp else None}


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def _r6(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


# -- inputs from the canonical table -----------------------------------------------------------------------------
def chunk_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The inputs of :func:`loop_inputs` that depend on the chunk only: computed once, shared by every replay
    (read-only views)."""
    session_id = frame["session_id"].to_numpy(dtype=object)
    out = {
        "ts": frame["timestamp"].array.asi8 if len(frame) else np.zeros(0, np.int64),
        "session_id": session_id,
        "workflow_tag": frame["workflow_tag"].to_numpy(dtype=object),
        "team": frame["team"].to_numpy(dtype=object),
        "session_keys": stable_keys(session_id),
        "text_hash": text_hashes(frame["prefix_hash"], frame["prompt"]) if len(frame) else np.zeros(0, np.uint64),
    }
    for name, a in out.items():
        out[name] = a = a.view()
        a.flags.writeable = False
    return out


def loop_inputs(frame: pd.DataFrame, cost_usd: np.ndarray, status: np.ndarray, input_tokens: np.ndarray,
                output_tokens: np.ndarray, rule: LoopDetection,
                chunk: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The arrays :meth:`LoopState.step` takes, from a chunk of the canonical table and the executed cost, status
    and token counts (recorded, or a candidate's); ``chunk``: the chunk's :func:`chunk_inputs` if already made
    (with ``slots`` when the replays' states share their :class:`SessionIndex`)."""
    chunk = chunk_inputs(frame) if chunk is None else chunk
    failed = np.asarray(status) >= 400
    tokens = (np.asarray(input_tokens) + np.asarray(output_tokens)).astype(np.float64)
    cost = np.where(failed, 0.0, np.nan_to_num(np.asarray(cost_usd, dtype=np.float64)))
    return {
        "limited": np.asarray(status) == 429,
        **{k: chunk[k] for k in ("ts", "session_id", "workflow_tag", "team", "session_keys", "slots") if k in chunk},
        "weight": cost if rule.weight == "cost" else np.where(failed, 0.0, tokens),
        "tokens": np.where(failed, 0.0, tokens),
        "cost": cost,
        "fingerprint": _fingerprint(chunk["text_hash"], input_tokens, failed),
        "failed": failed,
    }


def apply_session_kill(ts, session_id, workflow_tag, team, weight, tokens, cost, fingerprint, failed,
                       blocked, state: LoopState, limited=None, session_keys=None) -> np.ndarray:
    """The ``kill_runaway_sessions`` lever over one time-ordered chunk, like a rate limit: returns ``blocked`` with
    the requests of flagged sessions from their detection on added. Rows already blocked (``blocked`` in) weigh
    nothing and count as failed attempts (429). ``state`` (``LoopState(rule, kill=True)``) carries across chunks."""
    blocked = np.asarray(blocked, dtype=bool)
    weight = np.where(blocked, 0.0, weight)
    tokens = np.where(blocked, 0.0, tokens)
    cost = np.where(blocked, 0.0, cost)
    _, killed = state.step(ts, session_id, workflow_tag, team, weight, tokens, cost, fingerprint,
                           np.asarray(failed, dtype=bool) | blocked, limited, session_keys)
    return blocked | killed


def kill_report(state: LoopState) -> dict[str, Any]:
    """A kill candidate's ``session_kill`` record: what the kill blocked and the thresholds for the gateway rule."""
    sessions = state.sessions()
    return {
        "rule": rule_record(state.rule),
        "sessions_killed": len(sessions),
        "requests_blocked": int(sum(s["requests_after_detection"] for s in sessions)),
        "spend_avoided_usd": round(sum(s["cost_after_detection_usd"] for s in sessions), 6),
        "sessions": [{k: s[k] for k in ("session_id", "workflow_tag", "team", "detected_at", "rule",
                                        "requests_after_detection", "cost_after_detection_usd")} for s in sessions],
        "baselines": state.baselines(),
    }


def kill_rule(value: bool | LoopDetection, scenario_rule: LoopDetection | None = None) -> LoopDetection | None:
    """The rule a candidate's ``kill_runaway_sessions`` stands for: its own, the scenario's, or the default."""
    if value is False or value is None:
        return None
    if isinstance(value, LoopDetection):
        return value
    return scenario_rule or LoopDetection()


def kill_in_replay(frame: pd.DataFrame, cost_usd: np.ndarray, status: np.ndarray, input_tokens: np.ndarray,
                   output_tokens: np.ndarray, blocked: np.ndarray, state: LoopState,
                   chunk: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Rows a replay must block for a kill candidate in this chunk (already blocked rows excluded); the glue the
    engines call between rate limits and budgets. ``chunk``: the frame's :func:`chunk_inputs` if already made."""
    inputs = loop_inputs(frame, cost_usd, status, input_tokens, output_tokens, state.rule, chunk)
    return apply_session_kill(**inputs, blocked=blocked, state=state) & ~np.asarray(blocked, dtype=bool)
