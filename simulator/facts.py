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

from simulator.hashing import hash64, hash64_salts
from simulator.routing.assign import FAIL_BUCKET_NS
from simulator.summary.exact_sums import LatencySums
from simulator.summary.privacy import attribution_labels
from simulator.summary.quantiles import Quantiles

UNTAGGED = "UNTAGGED"
ANY = "\x00any"  # a wildcard key part of the token samples
SAMPLE_K = 1001  # successful requests kept per (workflow, model) for typical token counts
CALIBRATION_K = 2000  # distinct (prompt, input_tokens) rows kept per tokenizer family to fit its token ratio
PROMPT_K = 4000  # requests kept per workflow to describe its production prompts (covariate-shift weights)


class BottomK:
    """The ``k`` rows with the smallest hashes seen so far: a uniform sample that does not depend on how rows are
    split into chunks or partitions, so every engine derives the same sample. ``values`` is a tuple of arrays, one
    row per hash. With ``distinct`` equal hashes count once (a hash of the content deduplicates the content)."""

    def __init__(self, k: int = SAMPLE_K, distinct: bool = False) -> None:
        self.k = k
        self.distinct = distinct
        self.hash = np.zeros(0, np.uint64)
        self.values: tuple[np.ndarray, ...] | None = None

    def add(self, hashes: np.ndarray, *values: np.ndarray) -> None:
        self.hash = np.concatenate([self.hash, hashes])
        self.values = values if self.values is None else tuple(
            np.concatenate([a, b]) for a, b in zip(self.values, values))
        if self.distinct:
            keep = np.unique(self.hash, return_index=True)[1][: self.k]  # ascending hash, first of equal ones
        else:  # sorted even below k, so the sample's order does not depend on the order rows came in
            keep = np.argsort(self.hash, kind="stable")[: self.k]
        self.hash, self.values = self.hash[keep], tuple(v[keep] for v in self.values)

    def merge(self, other: BottomK) -> None:
        if other.values is not None:
            self.add(other.hash, *other.values)

    def medians(self) -> tuple[int, int]:
        return tuple(int(round(float(v))) for v in np.median(self.values[0], axis=0))


def smallest_rows(hashes: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Rows (ascending) that hold each group's ``k`` smallest ``hashes`` (ties in row order), for non-negative integer
    ``groups``: the rows at or below a cut a little above where a group's k-th smallest of uniform 64-bit hashes is
    expected, and every row of a group the cut leaves short of ``k``. Exact for any hashes; the cut only saves work."""
    size = np.bincount(groups)
    share = (2.0 * k + 64.0) / np.maximum(size, 1)  # about twice the expected share: short in rare cases only
    cut = np.full(len(size), np.iinfo(np.uint64).max, np.uint64)
    part = share < 1.0
    cut[part] = (share[part] * 2.0**64).astype(np.uint64)
    keep = hashes <= cut[groups]
    short = np.bincount(groups[keep], minlength=len(size)) < np.minimum(size, k)
    if short.any():
        keep |= short[groups]
    return np.flatnonzero(keep)


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
        self.calib: dict[str, BottomK] = {}  # tokenizer family -> (prompt, input_tokens) by content hash
        self.prompts: dict[str, BottomK] = {}  # workflow -> prompts by request hash
        self.workflows: dict[str, int] = {}
        self.drift: list[pd.DataFrame] = []
        self.samples: dict[tuple[str, str], BottomK] = {}
        self.prefix_rows = 0

    def add(self, f: pd.DataFrame) -> FactsBuilder:
        """Add one chunk of the canonical table (any order of chunks; rows inside a chunk in any order)."""
        if len(f) == 0:
            return self
        self.n += len(f)
        codes, names = pd.factorize(f["model"])  # integer codes (categories: no string work per row)
        names = [str(m) for m in names]
        self.models.update(names)
        ts = f["timestamp"].array.asi8
        lo, hi = int(ts.min()), int(ts.max())
        self.ts_min = lo if self.ts_min is None else min(self.ts_min, lo)
        self.ts_max = hi if self.ts_max is None else max(self.ts_max, hi)
        status = f["status_code"].to_numpy(np.int64)
        failed = status >= 400
        bucket = ts // FAIL_BUCKET_NS
        # requests and failures per (model, bucket): counts over one integer key, not a pandas group-by
        known = codes >= 0
        first = int(bucket.min())
        span = int(bucket.max()) - first + 1
        key = codes[known].astype(np.int64) * span + (bucket[known] - first)
        if len(names) * span <= 4 * len(key) + 1024:
            slots, at = None, key
        else:  # a long window and few rows: only the keys present
            slots, at = np.unique(key, return_inverse=True)
        size = np.bincount(at)
        fails = np.bincount(at, weights=failed[known], minlength=len(size))
        for k, cnt, fail in zip(np.flatnonzero(size).tolist(), size[size > 0].tolist(), fails[size > 0].tolist()):
            m, b = divmod(k if slots is None else int(slots[k]), span)
            acc = self.fail_n.setdefault((names[m], b + first), [0, 0])
            acc[0] += cnt
            acc[1] += int(fail)
        # failures per (model, bucket, status): one integer key over the failed rows
        bad = known & failed
        if bad.any():
            width = int(status[bad].max()) + 1
            slot = (codes[bad].astype(np.int64) * span + (bucket[bad] - first)) * width + status[bad]
            for k, cnt in zip(*(a.tolist() for a in np.unique(slot, return_counts=True))):
                (m, b), s = divmod(k // width, span), k % width
                key = (names[m], b + first, s)
                self.fail_status[key] = self.fail_status.get(key, 0) + cnt
        from simulator.summary.drift import alias_drift_sums

        # only rows whose requested model differs from the model are behind an alias: compared on label codes
        requested = f["requested_model"]
        req_codes, req_names = pd.factorize(requested)
        position = {m: i for i, m in enumerate(names)}
        as_model = np.array([position.get(str(r), -1) for r in req_names] + [-1], dtype=np.int64)
        alias = np.flatnonzero(as_model[req_codes] != codes)
        self.drift.append(alias_drift_sums(requested.take(alias).to_numpy(dtype=object),
                                           np.array(names, dtype=object)[codes[alias]], ts[alias],
                                           f["input_tokens"].to_numpy(np.int64)[alias],
                                           f["output_tokens"].to_numpy(np.int64)[alias], status[alias]))
        latency = f["latency_ms"].to_numpy(np.float64)
        ok = ~failed & np.isfinite(latency)
        out_tokens = f["output_tokens"].to_numpy(np.int64)
        for c in pd.unique(codes[ok]):
            m, sel = names[c], ok & (codes == c)
            self.lat.setdefault(m, LatencySums()).add(out_tokens[sel], latency[sel])
            if self.keep_latency_values:
                if m not in self.lat_values:
                    self.lat_values[m] = Quantiles(self.spill_dir)
                self.lat_values[m].add(latency[sel])
        if self.registry is not None and f["prompt"].notna().any():
            self._sample_prompts(f)
        wf_codes, wf_names = pd.factorize(f["workflow_tag"])
        wf_names = [str(w) for w in attribution_labels(np.asarray(wf_names, dtype=object))] + [UNTAGGED]
        wf_codes = np.where(wf_codes < 0, len(wf_names) - 1, wf_codes)
        for c, cnt in enumerate(np.bincount(wf_codes, minlength=len(wf_names)).tolist()):
            if cnt:
                self.workflows[wf_names[c]] = self.workflows.get(wf_names[c], 0) + cnt
        self._sample(f, wf_codes, wf_names, codes, names, failed)
        has_prefix = np.zeros(len(f), dtype=bool)
        for col in ("prefix_blocks", "prefix_hash", "prompt"):  # optional columns: absent in some exports
            if col in f:
                has_prefix |= f[col].notna().to_numpy()
        self.prefix_rows += int(has_prefix.sum())
        return self

    def _sample_prompts(self, f: pd.DataFrame) -> None:
        """Bounded samples of prompt text: per calibrated tokenizer family, the distinct (prompt, input_tokens)
        rows with the smallest content hashes (the calibration fits on them, the same for any chunking); per
        workflow, the prompts of the requests with the smallest request-id hashes (covariate-shift weights)."""
        from simulator.hashing import dictionary_text, mix64
        from simulator.tokens import calibration_families

        families = calibration_families(f, self.registry)
        rows = np.flatnonzero(pd.notna(families))
        wanted = (np.flatnonzero(f["prompt"].notna().to_numpy() & f["workflow_tag"].notna().to_numpy())
                  if self.want_prompts else np.zeros(0, np.int64))
        # each distinct prompt hashed once, for both salts in one pass; rows take their value's hash
        salts = ("calibration",) * bool(len(rows)) + ("prompts",) * bool(len(wanted))
        text = dict(zip(salts, hash64_salts(dictionary_text(f["prompt"]), 0, salts))) if salts else {}
        if len(rows):
            tokens = f["input_tokens"].to_numpy(np.int64)[rows]
            key = mix64(text["calibration"][rows], tokens)  # prompts repeat: each once
            families = families[rows]
            for family in pd.unique(families):
                sel = np.flatnonzero(families == family)
                # only the chunk's k smallest distinct keys (first rows) can be kept: make text of those alone
                sel = np.sort(sel[np.unique(key[sel], return_index=True)[1][:CALIBRATION_K]])
                self.calib.setdefault(family, BottomK(CALIBRATION_K, distinct=True)).add(
                    key[sel], f["prompt"].take(rows[sel]).to_numpy(dtype=object), tokens[sel])
        if len(wanted):
            rows = wanted
            # the prompt is part of the key so that duplicate request ids still sort the same in any chunking
            hashes = mix64(hash64(f["request_id"].take(rows), 0, "prompts"), text["prompts"][rows])
            wf = f["workflow_tag"].take(rows).to_numpy(dtype=object)
            for tag in pd.unique(wf):
                sel = np.flatnonzero(wf == tag)
                sel = np.sort(sel[np.argsort(hashes[sel], kind="stable")[:PROMPT_K]])  # the chunk's k smallest
                self.prompts.setdefault(tag, BottomK(PROMPT_K)).add(
                    hashes[sel], f["prompt"].take(rows[sel]).to_numpy(dtype=object))

    def _sample(self, f: pd.DataFrame, wf: np.ndarray, wf_names: list[str], model: np.ndarray, model_names: list[str],
                failed: np.ndarray) -> None:
        """Token samples per (workflow, model), per workflow and overall; each group offers only its ``k`` smallest
        hashes (in the order a stable sort by hash gives, as ``BottomK`` keeps them)."""
        ok = np.flatnonzero(~failed)
        if not len(ok):
            return
        hashes = hash64(f["request_id"], 0, "sample")[ok]
        n_models = len(model_names)
        wf, model = wf[ok], model[ok]
        # a workflow's (and all traffic's) k smallest are among its (workflow, model) groups' k smallest
        fine = wf * n_models + model
        if int(fine.min()) >= 0:
            keep = smallest_rows(hashes, fine, SAMPLE_K)
            ok, hashes, wf, model = ok[keep], hashes[keep], wf[keep], model[keep]
        values = np.stack([f["input_tokens"].to_numpy(np.int64)[ok], f["output_tokens"].to_numpy(np.int64)[ok]],
                          axis=1)
        by_hash = np.argsort(hashes, kind="stable")
        for codes, key_of in ((wf * n_models + model, lambda c: (wf_names[c // n_models], model_names[c % n_models])),
                              (wf, lambda c: (wf_names[c], ANY)),
                              (np.zeros(len(ok), np.int64), lambda c: (ANY, ANY))):
            keys = codes[by_hash]
            if len(keys) and int(keys.max()) < np.iinfo(np.int16).max:
                keys = keys.astype(np.int16)  # numpy's stable sort of 16-bit keys is a radix sort
            grouped = by_hash[np.argsort(keys, kind="stable")]  # by group, ascending hash inside
            group = codes[grouped]
            starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
            for begin, stop in zip(starts.tolist(), np.r_[starts[1:], len(group)].tolist()):
                rows = grouped[begin: min(stop, begin + SAMPLE_K)]
                self.samples.setdefault(key_of(int(group[begin])), BottomK()).add(hashes[rows], values[rows])

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
                self.lat_values[m] = Quantiles(self.spill_dir)
            self.lat_values[m].extend(values)
        for family, sample in other.calib.items():
            self.calib.setdefault(family, BottomK(CALIBRATION_K, distinct=True)).merge(sample)
        for tag, sample in other.prompts.items():
            self.prompts.setdefault(tag, BottomK(PROMPT_K)).merge(sample)
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
        prompts = None
        if self.prompts:
            tags = sorted(self.prompts)
            prompts = pd.DataFrame({"workflow_tag": np.concatenate([np.full(len(self.prompts[t].hash), t, object)
                                                                    for t in tags]),
                                    "prompt": np.concatenate([self.prompts[t].values[0] for t in tags])})
        return Facts(models=vocab, n=self.n, ts_min=self.ts_min, ts_max=self.ts_max, failure_buckets=buckets,
                     latency_model=latency_model, calibration_rows=self._calibration_rows(),
                     workflows=dict(self.workflows), prompts=prompts,
                     drift_sums=pd.concat(self.drift) if self.drift else None,
                     token_medians={key: sample.medians() for key, sample in sorted(self.samples.items())},
                     prefix_rows=self.prefix_rows)

    def _calibration_rows(self) -> list[tuple]:
        """The :func:`simulator.tokens.calibration_rows` of the calibration samples (families in sorted order)."""
        if not self.calib:
            return []
        from simulator.tokens import REFERENCE_TOKENIZER, classify_content, count_tokens

        families = sorted(self.calib)
        prompts = np.concatenate([self.calib[fam].values[0] for fam in families])
        tokens = np.concatenate([self.calib[fam].values[1] for fam in families])
        family = np.concatenate([np.full(len(self.calib[fam].hash), fam, object) for fam in families])
        reference = np.asarray(count_tokens(self.registry.get(REFERENCE_TOKENIZER), prompts), dtype=np.int64)
        return [(family.astype(str), classify_content(prompts), reference, tokens)]


def model_latencies(frame: pd.DataFrame, model: str) -> np.ndarray:
    """Latencies of ``model``'s successful requests (status below 400) in one chunk: the values whose median a
    latency fit falls back to (non-finite values included; percentiles drop them)."""
    sel = (frame["status_code"].to_numpy(np.int64) < 400) & (frame["model"] == model).to_numpy(dtype=bool)
    return frame["latency_ms"].to_numpy(np.float64)[sel]


def facts_of(frame: pd.DataFrame, registry=None, want_prompts: bool = False) -> Facts:
    """:class:`Facts` of one in-memory table."""
    return FactsBuilder(registry, want_prompts).add(frame).finish()


def summary_value(facts: Facts) -> dict[str, Any]:
    """The traffic window of the facts as summary.json shows it."""
    start = pd.Timestamp(facts.ts_min, tz="UTC").isoformat() if facts.ts_min is not None else None
    end = pd.Timestamp(facts.ts_max, tz="UTC").isoformat() if facts.ts_max is not None else None
    return {"start": start, "end": end, "days": round(facts.days, 6)}
