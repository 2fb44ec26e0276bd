"""Accuracy impact of a routing policy: traffic-weighted paired deltas with a joint bootstrap interval.

``accuracy_delta_pp = 100 * sum over (workflow, A -> B) of share_of_all_traffic(moved A -> B in workflow) * delta_w(B - A)``
where ``delta_w`` is the paired delta on eval samples of that workflow. ``accuracy_delta_moved_pp`` is the same sum
with each move weighted by its share of the (covered) moved requests instead: the change the requests the candidate
actually moves see. A 50/50 split of a bad move has half the traffic-wide change of the full move but the same
moved-request change, so gates test the moved figure. Weighting each workflow's delta by its
traffic share is post-stratification of the eval samples to the production mix. The interval comes from one
bootstrap in which every draw resamples each workflow's samples once and reuses that draw for every pair, so
pairs that share a model (A -> B and A -> C) stay correlated as they are in reality.

Moves without eval evidence (workflow absent from the evals, a model without samples, too few paired samples)
are unknown, not zero: they are left out of the estimate and the interval, and ``coverage_share`` says how much
of the moved traffic the number covers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from simulator.errors import InputError
from simulator.evals.matching import eval_mismatch, match_eval_model
from simulator.evals.stats import bootstrap_counts, percentile_interval

__all__ = ["covariate_shift_weights", "eval_mismatch", "kish_ess", "match_eval_model", "policy_accuracy_impact",
           "prompt_features"]

_MISSING = 9.0  # sentinel for "this pair has no paired outcome on this sample"; real differences are in [-1, 1]


_CODE_CHARS = "{}[]();=<>#*/\\`|&$_"
_DIGITS = "0123456789"


def prompt_features(prompts) -> np.ndarray:
    """Simple prompt features: log length in characters, share of digits, share of code punctuation.

    Each distinct prompt is measured once (system prompts and templates repeat). The counted characters are ASCII,
    and in UTF-8 an ASCII byte is always that character, so they are counted by deleting bytes (``bytes.translate``,
    a table lookup, where ``str.translate`` goes through a dict per character).
    """
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault("" if p is None else str(p), len(index)) for p in prompts), np.int64)
    if not len(codes):
        return np.zeros((0, 3))
    raw = [t.encode("utf-8", "surrogatepass") for t in index]
    size = np.fromiter(map(len, raw), np.int64, len(raw))
    chars = np.fromiter(map(len, index), np.int64, len(raw))
    digits = size - np.fromiter((len(r.translate(None, _DIGIT_BYTES)) for r in raw), np.int64, len(raw))
    code = size - np.fromiter((len(r.translate(None, _CODE_BYTES)) for r in raw), np.int64, len(raw))
    per = np.maximum(chars, 1)
    return np.column_stack([np.log1p(chars.astype(np.float64)), digits / per, code / per])[codes]


_DIGIT_BYTES = _DIGITS.encode("ascii")
_CODE_BYTES = _CODE_CHARS.encode("ascii")


def covariate_shift_weights(eval_prompts, prod_prompts, *, clip: float = 10.0, seed: int = 0) -> np.ndarray:
    """Weights ``P(prod|x) / P(eval|x) * n_eval / n_prod`` for eval prompts from a logistic regression on
    standardised ``prompt_features``; clipped to [1/clip, clip] (extreme weights make the estimate rest on a few
    samples) and scaled to mean 1. ``seed`` is kept for the signature; the fit is deterministic."""
    xe, xp = prompt_features(eval_prompts), prompt_features(prod_prompts)
    x = np.vstack([xe, xp])
    y = np.r_[np.zeros(len(xe)), np.ones(len(xp))]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    coef = logistic_fit((x - mean) / scale, y)
    z = np.clip(coef[0] + ((xe - mean) / scale) @ coef[1:], -30.0, 30.0)
    p = np.clip(1.0 / (1.0 + np.exp(-z)), 1e-6, 1 - 1e-6)
    w = np.clip(p / (1 - p) * len(xe) / len(xp), 1.0 / clip, clip)
    return w / w.mean()


def logistic_fit(x: np.ndarray, y: np.ndarray, c: float = 1.0, tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """``[intercept, *coef]`` of an L2-penalised logistic regression: the minimum of
    ``c * sum(log loss) + ||coef||^2 / 2`` (the intercept is not penalised), which is what
    ``sklearn.linear_model.LogisticRegression(C=c)`` fits; solved by Newton's method on the strictly convex
    objective, with numpy only (importing sklearn takes seconds, a few features need milliseconds)."""
    a = np.column_stack([np.ones(len(x)), x])
    ridge = np.eye(a.shape[1]) / c
    ridge[0, 0] = 0.0
    beta = np.zeros(a.shape[1])
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ beta, -30.0, 30.0)))
        grad = a.T @ (p - y) + ridge @ beta
        hess = (a * (p * (1.0 - p))[:, None]).T @ a + ridge
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        beta -= step
        if np.max(np.abs(step)) < tol:
            break
    return beta


_SHIFT_WEIGHTS: dict[tuple, tuple] = {}


def _shift_weights(samples, prod_prompts, wmap, etag, eval_texts, prod_texts, clip, seed) -> np.ndarray:
    """:func:`covariate_shift_weights` of one workflow, computed once per (eval samples, production prompts, workflow
    map) of objects: every candidate of a run moving the same workflow reuses them. The map is part of the key: it
    decides which production prompts belong to the eval workflow."""
    key = (id(samples), id(prod_prompts), wmap, etag, clip, seed)
    hit = _SHIFT_WEIGHTS.get(key)
    if hit is not None and hit[0] is samples and hit[1] is prod_prompts:
        return hit[2]
    weights = covariate_shift_weights(eval_texts, prod_texts, clip=clip, seed=seed)
    if len(_SHIFT_WEIGHTS) >= 64:
        _SHIFT_WEIGHTS.pop(next(iter(_SHIFT_WEIGHTS)))
    _SHIFT_WEIGHTS[key] = (samples, prod_prompts, weights)
    return weights


_PREPARED: dict[tuple, tuple] = {}


def _tagged(samples: pd.DataFrame) -> pd.DataFrame:
    """``samples`` with missing workflow tags as "" (kept per samples object: every policy of a run asks again)."""
    key = ("tagged", id(samples))
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not samples:
        hit = (samples, None, samples.assign(workflow_tag=_tag(samples["workflow_tag"])))
        _remember(key, hit)
    return hit[2]


def _eval_tags(samples: pd.DataFrame, ev: pd.DataFrame) -> frozenset:
    """The workflow tags of the tagged samples ``ev`` (kept per samples object: asked once per move of a policy)."""
    key = ("eval_tags", id(samples))
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not samples:
        hit = (samples, None, frozenset(ev["workflow_tag"].unique().tolist()))
        _remember(key, hit)
    return hit[2]


def _remember(key, value, cache: dict | None = None) -> None:
    """Keep ``value`` under ``key`` in ``cache`` (default the prepared tables), the oldest of 256 entries dropped."""
    cache = _PREPARED if cache is None else cache
    if len(cache) >= 256:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _prod_etags(prod_prompts: pd.DataFrame, wmap: tuple) -> np.ndarray:
    """Each production prompt's eval workflow, mapped once per distinct tag (kept per prompts object)."""
    key = ("prod_etags", id(prod_prompts), wmap)
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not prod_prompts:
        workflow_map = dict(wmap)
        prod_tags = _tag(prod_prompts["workflow_tag"]).to_numpy(dtype=object)
        distinct, inverse = np.unique(prod_tags, return_inverse=True)
        hit = (prod_prompts, None, np.array([workflow_map.get(t, t) for t in distinct], dtype=object)[inverse])
        _remember(key, hit)
    return hit[2]


def _workflow_rows(samples: pd.DataFrame, ev: pd.DataFrame, etag: str) -> tuple:
    """One eval workflow's rows, its sorted sample ids and a dict for what is read off them (scores per model,
    first prompt per sample id under ``None``), kept per samples object: every pair and policy asks again."""
    key = ("workflow_rows", id(samples), etag)
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not samples:
        wf = ev[ev["workflow_tag"] == etag]
        hit = (samples, None, (wf, np.array(sorted(wf["sample_id"].unique())), {}))
        _remember(key, hit)
    return hit[2]


_LAYOUT = ("layout",)  # key of a workflow's row layout among its per-model scores (never a model name)


def _scores(wf: pd.DataFrame, ids: np.ndarray, scores: dict, model: str) -> np.ndarray:
    """``model``'s score per sample id of ``ids`` (NaN where it has none), read once per workflow: the workflow's
    rows are placed (position of the sample id in ``ids``, model code) once, and each model's scores read off that."""
    if model not in scores:
        if _LAYOUT not in scores:
            codes, models = pd.factorize(wf["model"].to_numpy(dtype=object))
            scores[_LAYOUT] = (np.searchsorted(ids, wf["sample_id"].to_numpy(dtype=object)), codes,
                               {m: i for i, m in enumerate(models.tolist())}, wf["score"].to_numpy(np.float64))
        at, codes, code_of, score = scores[_LAYOUT]
        rows = np.flatnonzero(codes == code_of.get(model, -2))
        if len(np.unique(at[rows])) < len(rows):  # a sample scored twice: the index's own error about it
            values = wf[wf["model"] == model].set_index("sample_id")["score"].reindex(ids).to_numpy(np.float64)
        else:
            values = np.full(len(ids), np.nan)
            values[at[rows]] = score[rows]
        values.setflags(write=False)
        scores[model] = values
    return scores[model]


def _prod_texts(prod_prompts: pd.DataFrame, wmap: tuple, etag: str) -> list:
    """The production prompts (present ones, in row order) of one eval workflow, kept per prompts object: every
    model pair and policy of the workflow asks for them."""
    key = ("prod_texts", id(prod_prompts), wmap, etag)
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not prod_prompts:
        prod = prod_prompts.loc[_prod_etags(prod_prompts, wmap) == etag, "prompt"]
        hit = (prod_prompts, None, prod.dropna().tolist())
        _remember(key, hit)
    return hit[2]


def _paired_matrix(samples, ev, prod_prompts, wmap, etag, pairs, min_paired, weight_clip, seed) -> tuple:
    """One eval workflow's paired differences: (number of samples, sample weights, weighting label, paired count
    per (from, to) pair, the matrix of kept pairs' differences with the weights as last column, its distinct rows
    and their counts). Kept per (samples, prompts, workflow, pairs): each policy and each moved workflow of a run
    asks for the same ones."""
    key = (id(samples), id(prod_prompts), wmap, etag, pairs, min_paired, weight_clip, seed)
    hit = _PREPARED.get(key)
    if hit is not None and hit[0] is samples and hit[1] is prod_prompts:
        return hit[2]
    wf, ids, scores = _workflow_rows(samples, ev, etag)
    u = np.ones(len(ids))
    weighting = "post-stratification"
    if prod_prompts is not None:
        prod = _prod_texts(prod_prompts, wmap, etag)
        first = scores.get(None)
        if first is None:
            first = scores[None] = wf.drop_duplicates("sample_id").set_index("sample_id")["prompt"].reindex(ids)
        if first.notna().sum() >= min_paired and len(prod) >= min_paired:
            has = first.notna().to_numpy()
            u[has] = _shift_weights(samples, prod_prompts, wmap, etag, first[has].tolist(), prod, weight_clip, seed)
            weighting = "post-stratification + covariate shift"
    cols, n_pairs = [], []
    for a, b in pairs:
        d = _scores(wf, ids, scores, b) - _scores(wf, ids, scores, a)
        n_pairs.append(int(np.sum(~np.isnan(d))))
        if n_pairs[-1] >= min_paired:
            cols.append(np.where(np.isnan(d), _MISSING, d))
    mat = uniq = counts = None
    if cols:
        mat = np.column_stack(cols + [u])
        uniq, counts = np.unique(mat, axis=0, return_counts=True)
        for arr in (u, mat, uniq, counts):
            arr.setflags(write=False)
    value = (len(ids), u, weighting, n_pairs, mat, uniq, counts)
    _remember(key, (samples, prod_prompts, value))
    return value


_BOOTSTRAPS: dict[tuple, tuple] = {}


def _bootstrap_ratios(rng, uniq, counts, num, den, n, n_boot) -> np.ndarray:
    """Bootstrap draws of ``(c @ num) / (c @ den)`` over multinomial counts ``c`` of the distinct rows ``uniq``.

    The draws depend only on the rows, their counts, ``n``, ``n_boot`` and the generator's state, so they are kept
    by those (with the state they leave the generator in): a run asks for the same (workflow, model pairs)
    bootstrap once per policy and once per moved workflow, and every repeat is the same numbers, byte for byte.
    """
    state = rng.bit_generator.state
    key = (repr(state), uniq.shape, uniq.tobytes(), counts.tobytes(), n, n_boot)
    hit = _BOOTSTRAPS.get(key)
    if hit is not None:
        rng.bit_generator.state = hit[1]
        return hit[0]
    boot = np.vstack([(c @ num) / (c @ den) for c in bootstrap_counts(rng, counts, n, n_boot)])
    boot.setflags(write=False)
    _remember(key, (boot, rng.bit_generator.state), _BOOTSTRAPS)
    return boot


def kish_ess(weights) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / np.sum(w * w)) if len(w) and np.sum(w * w) > 0 else 0.0


def _tag(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str)


class Move(NamedTuple):
    workflow_tag: str
    from_model: str
    to_model: str
    requests: Any


def _sums_by(frame: pd.DataFrame, keys: list[str]) -> dict[tuple | str, Any]:
    """``frame.groupby(keys)["requests"].sum()`` of a small table as a dict in key order, workflow tags missing as
    "" (the tables here have one row per workflow or move: a loop is cheaper than a pandas group-by per call).
    Rows with another missing key are left out, as group-by leaves them out; float requests keep pandas' sum."""
    requests = frame["requests"]
    if not pd.api.types.is_integer_dtype(requests.dtype):
        frame = frame.assign(workflow_tag=_tag(frame["workflow_tag"]))
        grouped = frame.groupby(keys)["requests"].sum()
        return dict(grouped.items())
    columns = []
    for key in keys:
        values = frame[key].to_numpy(dtype=object)
        missing = pd.isna(values)
        if key == "workflow_tag":
            values = np.array(["" if m else str(v) for v, m in zip(values, missing)], dtype=object)
            missing = np.zeros(len(values), dtype=bool)
        columns.append((values, missing))
    sums: dict = {}
    for i, n in enumerate(requests.to_numpy(dtype=np.int64).tolist()):
        if any(m[i] for _, m in columns):
            continue
        key = tuple(v[i] for v, _ in columns) if len(keys) > 1 else columns[0][0][i]
        sums[key] = sums.get(key, 0) + n
    return {k: sums[k] for k in sorted(sums)}


def policy_accuracy_impact(moves: pd.DataFrame, traffic: pd.DataFrame, samples: pd.DataFrame, *,
                           model_map: dict | None = None, workflow_map: dict | None = None,
                           prod_prompts: pd.DataFrame | None = None, weight_clip: float = 10.0,
                           min_paired: int = 20, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Traffic-weighted accuracy change of a policy, in percentage points, with a joint-bootstrap interval.

    moves: ``workflow_tag, from_model, to_model, requests`` (gateway ids); traffic: ``workflow_tag, requests``
    (all traffic per workflow); samples: long eval samples. ``model_map`` maps gateway ids to eval model names,
    ``workflow_map`` traffic tags to eval tags. With ``prod_prompts`` (``workflow_tag, prompt``) eval samples are
    also reweighted for covariate shift within each workflow. Returns accuracy_delta_pp, accuracy_delta_ci95,
    accuracy_delta_moved_pp, accuracy_delta_moved_ci95 (per moved request), coverage_share, moved_share, kish_ess,
    n_paired, variance_per_sample and variance_per_sample_moved (for ``gates.non_inferiority``),
    per-move and per-workflow tables (lists of dicts) and ``notes`` (sentences for the report).
    """
    for name, frame, cols in (("moves", moves, ("workflow_tag", "from_model", "to_model", "requests")),
                              ("traffic", traffic, ("workflow_tag", "requests"))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InputError(f"{name} table: column `{missing[0]}` is missing. Expected columns {', '.join(cols)}.")
    workflow_map = workflow_map or {}
    totals = _sums_by(traffic, ["workflow_tag"])
    total = float(sum(totals.values()))
    if total <= 0:
        raise InputError("traffic table: total requests must be > 0. Got 0 instead.")
    moved = (moves["from_model"] != moves["to_model"]).to_numpy(dtype=bool) & (moves["requests"] > 0).to_numpy(bool)
    mv = [Move(*key, requests) for key, requests in _sums_by(moves[moved], list(Move._fields[:3])).items()]
    unknown = sorted({r.workflow_tag for r in mv} - set(totals))
    if unknown:
        raise InputError(f"moves table: workflow {unknown[0]!r} has no traffic total. "
                         "Give per-workflow totals for every workflow that has moves.")
    ev = _tagged(samples)
    eval_models = sorted(ev["model"].unique())
    moved_total = float(sum(r.requests for r in mv))

    rows, pair_keys = [], {}
    for r in mv:
        etag = workflow_map.get(r.workflow_tag, r.workflow_tag)
        a = match_eval_model(r.from_model, eval_models, model_map)
        b = match_eval_model(r.to_model, eval_models, model_map)
        row = {"workflow_tag": r.workflow_tag or None, "eval_workflow_tag": etag or None, "from_model": r.from_model,
               "to_model": r.to_model, "requests": int(r.requests), "share_of_traffic": r.requests / total,
               "eval_from": a, "eval_to": b, "n_paired": 0, "delta_pp": np.nan, "ci95_pp": (np.nan, np.nan),
               "covered": False, "reason": None}
        if a is None or b is None:
            row["reason"] = "no eval samples: " + eval_mismatch(r.from_model if a is None else r.to_model, eval_models)
        elif etag not in _eval_tags(samples, ev):
            row["reason"] = f"workflow {etag or '(untagged)'!r} has no eval samples"
        else:
            pair_keys[len(rows)] = (etag, a, b)
        rows.append(row)

    notes: list[str] = []
    rng = np.random.default_rng(seed)
    draws_total = np.zeros(n_boot)
    point_total = 0.0
    implicit_w: list[np.ndarray] = []
    workflow_rows = []
    used_samples = 0
    wmap = tuple(sorted(workflow_map.items()))
    for etag in sorted({k[0] for k in pair_keys.values()}):
        members = [i for i, (tag, _, _) in pair_keys.items() if tag == etag]
        prepared = _paired_matrix(samples, ev, prod_prompts, wmap, etag, tuple(pair_keys[i][1:] for i in members),
                                  min_paired, weight_clip, seed)
        n_ids, u, weighting, n_pairs, mat, uniq, counts = prepared
        for i, n_pair in zip(members, n_pairs):
            rows[i]["n_paired"] = n_pair
            if n_pair < min_paired:
                rows[i]["reason"] = f"only {n_pair} paired eval samples (minimum {min_paired})"
        members = [i for i, n_pair in zip(members, n_pairs) if n_pair >= min_paired]
        shares = [rows[i]["share_of_traffic"] for i in members]
        if not members:
            continue
        dmat, uu = uniq[:, :-1], uniq[:, -1]
        mask = dmat != _MISSING
        num = (uu[:, None] * np.where(mask, dmat, 0.0))
        den = (uu[:, None] * mask)
        point = (counts @ num) / (counts @ den)
        boot = _bootstrap_ratios(rng, uniq, counts, num, den, n_ids, n_boot)
        shares = np.asarray(shares)
        point_total += float(point @ shares)
        draws_total += np.nan_to_num(boot, nan=0.0) @ shares
        per_sample = np.zeros(n_ids)  # a sample serving several moves is one sample: add its weights up
        for j, i in enumerate(members):
            lo, hi = percentile_interval(boot[:, j], confidence)
            rows[i] |= {"delta_pp": 100 * float(point[j]), "ci95_pp": (100 * lo, 100 * hi), "covered": True}
            m = mat[:, j] != _MISSING
            per_sample[m] += shares[j] * u[m] / u[m].sum()
        used = np.any(mat[:, :-1] != _MISSING, axis=1)
        implicit_w.append(per_sample[used])
        used_samples += int(used.sum())
        workflow_rows.append({"eval_workflow_tag": etag or None, "eval_samples": n_ids, "weighting": weighting,
                              "kish_ess": kish_ess(u[used])})

    covered_req = sum(r["requests"] for r in rows if r["covered"])
    coverage = covered_req / moved_total if moved_total else 1.0
    lo, hi = percentile_interval(draws_total, confidence) if implicit_w else (np.nan, np.nan)
    var_now = float(np.var(draws_total)) if implicit_w else np.nan
    # Per covered moved request instead of per request of all traffic: divide by the covered moved share.
    per_moved = total / covered_req if covered_req else np.nan
    ess = kish_ess(np.concatenate(implicit_w)) if implicit_w else 0.0
    absent = sorted({r["workflow_tag"] or "(untagged)" for r in rows if r["reason"] and "no eval samples" in r["reason"]
                     and "workflow" in r["reason"]})
    if absent:
        notes.append(f"workflows with moved traffic but no eval samples (accuracy change unknown): {', '.join(absent)}.")
    if coverage < 1.0:
        notes.append(f"{coverage:.1%} of moved traffic has eval evidence; the estimate and its interval cover only that "
                     f"part ({moved_total / total - covered_req / total:.1%} of all traffic is uncovered).")
    return {
        "accuracy_delta_pp": 100 * point_total if implicit_w else np.nan,
        "accuracy_delta_ci95": (100 * lo, 100 * hi),
        "accuracy_delta_moved_pp": 100 * point_total * per_moved if implicit_w else np.nan,
        "accuracy_delta_moved_ci95": (100 * lo * per_moved, 100 * hi * per_moved),
        "coverage_share": coverage,
        "moved_share": moved_total / total,
        "kish_ess": ess,
        "n_paired": used_samples,
        # Per-sample variance in fraction^2 such that var(estimate) = variance_per_sample / n_paired.
        "variance_per_sample": var_now * used_samples if implicit_w else np.nan,
        "variance_per_sample_moved": var_now * used_samples * per_moved ** 2 if implicit_w else np.nan,
        "moves": rows,
        "workflows": workflow_rows,
        "notes": notes,
        "n_boot": n_boot, "seed": seed, "confidence": confidence,
    }
