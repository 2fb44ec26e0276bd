"""Pass 1: what a replay must know about the whole traffic before it replays any chunk.

The model vocabulary, the traffic window, failure rates per (model, 5-minute bucket), the latency fit per model, the
rows a token calibration fits on, requests per workflow (eval post-stratification), production prompts per workflow
(covariate-shift weights) and the alias-drift sums. :class:`FactsBuilder` adds chunks in any order and merges with
another builder (partitions on a cluster), so every engine derives the same :class:`Facts`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from simulator.hashing import hash64
from simulator.routing.assign import FAIL_BUCKET_NS
from simulator.summary.exact_sums import LatencySums

UNTAGGED = "UNTAGGED"
ANY = "\x00any"  # a wildcard key part of the token samples
SAMPLE_K = 1001  # successful requests kept per (workflow, model) for typical token counts


class BottomK:
    """The ``k`` rows with the smallest request-id hashes seen so far: a uniform sample that does not depend on how
    rows are split into chunks or partitions, so every engine derives the same medians."""

    def __init__(self, k: int = SAMPLE_K) -> None:
        self.k = k
        self.hash = np.zeros(0, np.uint64)
        self.values = np.zeros((0, 2), np.int64)

    def add(self, hashes: np.ndarray, values: np.ndarray) -> None:
        self.hash = np.concatenate([self.hash, hashes])
        self.values = np.concatenate([self.values, values])
        if len(self.hash) > self.k:
            keep = np.argsort(self.hash, kind="stable")[: self.k]
            self.hash, self.values = self.hash[keep], self.values[keep]

    def merge(self, other: BottomK) -> None:
        self.add(other.hash, other.values)

    def medians(self) -> tuple[int, int]:
        return tuple(int(round(float(v))) for v in np.median(self.values, axis=0))


@dataclasses.dataclass
class Facts:
    """Global facts of one traffic table (see the module docstring)."""

    models: list[str]  # sorted models seen
    n: int
    ts_min: int | None
    ts_max: int | None
    failure_buckets: dict[tuple[int, int], tuple[float, int]]  # (model code, bucket) -> (rate, most common status)
    latency_model: dict[int, tuple[float, float]]  # model code -> (ms per request, ms per output token)
    calibration_rows: list[tuple]
    workflows: dict[str, int]
    prompts: pd.DataFrame | None
    drift_sums: pd.DataFrame | None
    token_medians: dict[tuple[str, str], tuple[int, int]] = dataclasses.field(default_factory=dict)
    prefix_rows: int = 0  # rows with prefix information (prefix_blocks, prefix_hash or prompt text)

    def typical_tokens(self, workflow: str, model: str) -> tuple[int, int]:
        """(input, output) tokens of a typical successful request of ``workflow`` on ``model``: the median of a
        hash sample of that workflow and model, else of the workflow, else of all traffic (for failed requests a
        candidate serves)."""
        for key in ((workflow, model), (workflow, ANY), (ANY, ANY)):
            if key in self.token_medians:
                return self.token_medians[key]
        return (0, 0)

    @property
    def days(self) -> float:
        """Length of the traffic window in days (at least one second)."""
        if self.ts_min is None:
            return 0.0
        return max(float(self.ts_max - self.ts_min), 1e9) / (86_400 * 10**9)


class FactsBuilder:
    """Accumulates :class:`Facts` chunk by chunk (``add``), or partition by partition (``merge``)."""

    def __init__(self, registry=None, want_prompts: bool = False, latency_values: bool = True,
                 spill_dir: str | None = None) -> None:
        self.registry = registry
        self.want_prompts = want_prompts
        self.models: set[str] = set()
        self.ts_min: int | None = None
        self.ts_max: int | None = None
        self.n = 0
        self.fail_n: dict[tuple[str, int], list[int]] = {}
        self.fail_status: dict[tuple[str, int, int], int] = {}
        self.lat: dict[str, LatencySums] = {}
        self.lat_values: dict[str, Any] = {}  # per model: values for a median the fit may need
        self.keep_latency_values = latency_values
        self.spill_dir = spill_dir
        self.calib: list[tuple] = []
        self.prompts: list[pd.DataFrame] = []
        self.workflows: dict[str, int] = {}
        self.drift: list[pd.DataFrame] = []
        self.samples: dict[tuple[str, str], BottomK] = {}
        self.prefix_rows = 0

    def add(self, f: pd.DataFrame) -> FactsBuilder:
        """Add one chunk of the canonical table (any order of chunks; rows inside a chunk in any order)."""
        if len(f) == 0:
            return self
        self.n += len(f)
        model = f["model"].to_numpy(dtype=object)
        self.models.update(pd.unique(model))
        ts = f["timestamp"].array.asi8
        lo, hi = int(ts.min()), int(ts.max())
        self.ts_min = lo if self.ts_min is None else min(self.ts_min, lo)
        self.ts_max = hi if self.ts_max is None else max(self.ts_max, hi)
        status = f["status_code"].to_numpy(np.int64)
        failed = status >= 400
        frame = pd.DataFrame({"m": model, "b": ts // FAIL_BUCKET_NS, "f": failed, "s": status})
        for (m, b), (cnt, fails) in frame.groupby(["m", "b"], sort=False)["f"].agg(["size", "sum"]).iterrows():
            acc = self.fail_n.setdefault((m, int(b)), [0, 0])
            acc[0] += int(cnt)
            acc[1] += int(fails)
        for (m, b, s), cnt in frame[failed].groupby(["m", "b", "s"], sort=False).size().items():
            self.fail_status[(m, int(b), int(s))] = self.fail_status.get((m, int(b), int(s)), 0) + int(cnt)
        from simulator.summary.drift import alias_drift_sums

        self.drift.append(alias_drift_sums(f["requested_model"].to_numpy(dtype=object), model, ts,
                                           f["input_tokens"].to_numpy(np.int64), f["output_tokens"].to_numpy(np.int64),
                                           status))
        latency = f["latency_ms"].to_numpy(np.float64)
        ok = ~failed & np.isfinite(latency)
        out_tokens = f["output_tokens"].to_numpy(np.int64)
        for m in pd.unique(model[ok]):
            sel = ok & (model == m)
            self.lat.setdefault(m, LatencySums()).add(out_tokens[sel], latency[sel])
            if self.keep_latency_values:
                if m not in self.lat_values:
                    self.lat_values[m] = _Values(self.spill_dir)
                self.lat_values[m].add(latency[sel])
        if self.registry is not None and f["prompt"].notna().any():
            from simulator.tokens import calibration_rows

            self.calib.append(calibration_rows(f, self.registry))
            if self.want_prompts:
                self.prompts.append(f[["workflow_tag", "prompt"]].astype(object).dropna())
        wf = f["workflow_tag"].to_numpy(dtype=object)
        wf = np.where(pd.isna(wf), UNTAGGED, wf)
        for tag, cnt in pd.Series(wf).value_counts(sort=False).items():
            self.workflows[tag] = self.workflows.get(tag, 0) + int(cnt)
        self._sample(f, wf, model, failed)
        self.prefix_rows += int((f["prefix_blocks"].notna() | f["prefix_hash"].notna() | f["prompt"].notna()).sum())
        return self

    def _sample(self, f: pd.DataFrame, wf: np.ndarray, model: np.ndarray, failed: np.ndarray) -> None:
        ok = np.flatnonzero(~failed)
        if not len(ok):
            return
        hashes = hash64(f["request_id"], 0, "sample")[ok]
        values = np.stack([f["input_tokens"].to_numpy(np.int64)[ok], f["output_tokens"].to_numpy(np.int64)[ok]],
                          axis=1)
        groups = pd.DataFrame({"w": wf[ok], "m": model[ok]})
        for keys in (["w", "m"], ["w"], []):
            if keys:
                codes, uniques = pd.factorize(pd.MultiIndex.from_frame(groups[keys]) if len(keys) > 1
                                              else groups[keys[0]])
            else:
                codes, uniques = np.zeros(len(ok), np.int64), [()]
            for c, u in enumerate(uniques):
                u = u if isinstance(u, tuple) else (u,)
                key = (u[0] if len(u) > 0 else ANY, u[1] if len(u) > 1 else ANY)
                sel = codes == c
                self.samples.setdefault(key, BottomK()).add(hashes[sel], values[sel])

    def merge(self, other: FactsBuilder) -> FactsBuilder:
        """Fold another builder's facts into this one (commutative up to float addition order)."""
        self.n += other.n
        self.models |= other.models
        for attr, pick in (("ts_min", min), ("ts_max", max)):
            a, b = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, b if a is None else a if b is None else pick(a, b))
        for key, (cnt, fails) in other.fail_n.items():
            acc = self.fail_n.setdefault(key, [0, 0])
            acc[0] += cnt
            acc[1] += fails
        for key, cnt in other.fail_status.items():
            self.fail_status[key] = self.fail_status.get(key, 0) + cnt
        for m, sums in other.lat.items():
            self.lat.setdefault(m, LatencySums()).merge(sums)
        for m, values in other.lat_values.items():
            if m not in self.lat_values:
                self.lat_values[m] = _Values(self.spill_dir)
            self.lat_values[m].extend(values)
        self.calib += other.calib
        self.prompts += other.prompts
        for tag, cnt in other.workflows.items():
            self.workflows[tag] = self.workflows.get(tag, 0) + cnt
        self.drift += other.drift
        for key, sample in other.samples.items():
            self.samples.setdefault(key, BottomK()).merge(sample)
        self.prefix_rows += other.prefix_rows
        return self

    def finish(self, medians: dict[str, float] | None = None) -> Facts:
        """The facts; ``medians`` (model -> median latency) replace kept values when they were not kept."""
        vocab = sorted(self.models)
        code = {m: i for i, m in enumerate(vocab)}
        best: dict[tuple[str, int], tuple[int, int]] = {}
        for (m, b, s), cnt in sorted(self.fail_status.items()):
            if (m, b) not in best or cnt > best[(m, b)][0]:  # most common status; ties go to the lowest code
                best[(m, b)] = (cnt, s)
        buckets = {(code[m], b): (fails / cnt, best[(m, b)][1])
                   for (m, b), (cnt, fails) in self.fail_n.items() if fails}
        latency_model = {}
        for m, sums in sorted(self.lat.items()):
            median = None
            if sums.needs_median:
                median = (medians or {}).get(m)
                if median is None:
                    median = self.lat_values[m].median()
            latency_model[code[m]] = sums.fit(median)
        for values in self.lat_values.values():
            values.close()
        return Facts(models=vocab, n=self.n, ts_min=self.ts_min, ts_max=self.ts_max, failure_buckets=buckets,
                     latency_model=latency_model, calibration_rows=self.calib, workflows=dict(self.workflows),
                     prompts=pd.concat(self.prompts) if self.prompts else None,
                     drift_sums=pd.concat(self.drift) if self.drift else None,
                     token_medians={key: sample.medians() for key, sample in sorted(self.samples.items())},
                     prefix_rows=self.prefix_rows)


class _Values:
    """Latency values of one model, in memory or spilled to disk (exact median either way)."""

    def __init__(self, spill_dir: str | None) -> None:
        self.parts: list[np.ndarray] = []
        self.spill = None
        if spill_dir is not None:
            from simulator.summary.quantiles import SpillQuantiles

            self.spill = SpillQuantiles(spill_dir)

    def add(self, values: np.ndarray) -> None:
        if self.spill is not None:
            self.spill.add(values)
        else:
            self.parts.append(np.asarray(values, dtype=np.float64))

    def extend(self, other: _Values) -> None:
        for part in other.parts:
            self.add(part)
        if other.spill is not None:
            raise ValueError("spilled latency values cannot be merged; give medians to finish()")

    def median(self) -> float:
        if self.spill is not None:
            return float(self.spill.percentiles([50])[0])
        return float(np.median(np.concatenate(self.parts)))

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


def facts_of(frame: pd.DataFrame, registry=None, want_prompts: bool = False) -> Facts:
    """:class:`Facts` of one in-memory table."""
    return FactsBuilder(registry, want_prompts).add(frame).finish()


def summary_value(facts: Facts) -> dict[str, Any]:
    """The traffic window of the facts as summary.json shows it."""
    start = pd.Timestamp(facts.ts_min, tz="UTC").isoformat() if facts.ts_min is not None else None
    end = pd.Timestamp(facts.ts_max, tz="UTC").isoformat() if facts.ts_max is not None else None
    return {"start": start, "end": end, "days": round(facts.days, 6)}
