"""Accuracy statistics on eval samples: Wilson intervals, paired deltas, McNemar, paired bootstrap.

All numbers are fractions in [0, 1] here (impact and gates convert to percentage points). Randomness only through
a seeded ``np.random.Generator``. The bootstrap resamples sample indices with replacement; since a resampled mean
depends only on how often each distinct row is drawn, draws are taken as multinomial counts over distinct rows,
which is the same distribution as index resampling and far cheaper for binary outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.errors import InputError, did_you_mean

UNPAIRED_WARNING = (
    "unpaired comparison: the two models were scored on different samples, so the difference mixes model quality "
    "with sample difficulty; use it only as a rough indication and label paired samples for a real comparison."
)

# Below this many discordant pairs McNemar uses the exact binomial test; above it the chi-square approximation
# with continuity correction is accurate to well under 0.01 in the p-value.
MCNEMAR_EXACT_BELOW = 50


def _z(confidence: float) -> float:
    from scipy.special import ndtri  # the normal quantile; scipy.special imports in a fifth of scipy.stats' time

    return float(ndtri(0.5 + confidence / 2.0))


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval for k successes in n trials (arrays allowed); NaN where n == 0."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = _z(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return centre - half, centre + half


def mcnemar(b: int, c: int, exact_below: int = MCNEMAR_EXACT_BELOW) -> dict:
    """McNemar's test on discordant pairs: b = baseline right/candidate wrong, c = the reverse.

    Exact two-sided binomial test on ``min(b, c)`` of ``b + c`` at p = 0.5 when ``b + c < exact_below``,
    else chi-square with continuity correction ``(|b - c| - 1)^2 / (b + c)``, 1 degree of freedom.
    """
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "statistic": 0.0, "p_value": 1.0, "method": "none (no discordant pairs)"}
    from scipy.special import bdtr, chdtrc

    if n < exact_below:
        # Binomial(n, 1/2) is symmetric, so the two-sided p-value (scipy.stats.binomtest's) is twice the lower tail.
        p_value = min(1.0, 2.0 * float(bdtr(min(b, c), n, 0.5)))
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": p_value, "method": "exact binomial"}
    stat = (abs(b - c) - 1.0) ** 2 / n
    return {"b": b, "c": c, "statistic": float(stat), "p_value": float(chdtrc(1, stat)),
            "method": "chi-square with continuity correction"}


def adjust_pvalues(p_values, method: str = "holm") -> np.ndarray:
    """Holm (family-wise) or Benjamini-Hochberg (``"bh"``, false discovery rate) adjusted p-values."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1) * ranked[::-1]))[::-1]
    else:
        raise InputError(f"p-value adjustment must be 'holm' or 'bh'. Got {method!r} instead.")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def bootstrap_counts(rng: np.random.Generator, weights: np.ndarray, n: int, n_boot: int, max_cells: int = 4_000_000):
    """Yield (chunk, k) arrays of multinomial counts over k distinct rows with the given draw probabilities."""
    probs = np.asarray(weights, dtype=np.float64)
    probs = probs / probs.sum()
    k = len(probs)
    chunk = max(1, min(n_boot, max_cells // max(k, 1)))
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        yield rng.multinomial(n, probs, size=size)
        done += size


def bootstrap_mean(values, n_boot: int, rng: np.random.Generator, weights=None) -> np.ndarray:
    """Bootstrap distribution of the (optionally weighted) mean of ``values`` (resampled with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    rows, counts = np.unique(np.column_stack([values, w]), axis=0, return_counts=True)
    out = []
    for draw in bootstrap_counts(rng, counts, len(values), n_boot):
        out.append((draw @ (rows[:, 0] * rows[:, 1])) / (draw @ rows[:, 1]))
    return np.concatenate(out)


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(draws, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _check_model(samples: pd.DataFrame, model: str) -> None:
    models = samples["model"].unique()
    if model not in set(models):
        raise InputError(
            f"model {model!r} has no eval samples; found {len(models)} models.{did_you_mean(model, models)} "
            "Check the model name or add samples for it."
        )


def _subset(samples: pd.DataFrame, workflow_tag) -> pd.DataFrame:
    return samples if workflow_tag is None else samples[samples["workflow_tag"] == workflow_tag]


def paired_frame(samples: pd.DataFrame, baseline: str, candidate: str, workflow_tag=None) -> pd.DataFrame:
    """Samples scored for both models: columns sample_id, workflow_tag, base, cand, binary (sorted by sample_id)."""
    sub = _subset(samples, workflow_tag)
    a = sub[sub["model"] == baseline][["sample_id", "workflow_tag", "score", "correct"]]
    b = sub[sub["model"] == candidate][["sample_id", "score", "correct"]]
    joined = a.merge(b, on="sample_id", suffixes=("_a", "_b"), validate="one_to_one")
    joined = joined.sort_values("sample_id", kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "sample_id": joined["sample_id"], "workflow_tag": joined["workflow_tag"],
        "base": joined["score_a"].to_numpy(np.float64), "cand": joined["score_b"].to_numpy(np.float64),
        "binary": (joined["correct_a"].notna() & joined["correct_b"].notna()).to_numpy(),
    })


def accuracy_table(samples: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (workflow_tag, model): n, accuracy (mean score) and interval.

    Binary outcomes get a Wilson interval; graded scores (any row without ``correct``) a normal interval on
    the mean, clipped to [0, 1]. Column ``interval`` says which.
    """
    rows = []
    z = _z(confidence)
    groups = samples.groupby(["workflow_tag", "model"], dropna=False, sort=True)
    for (tag, model), g in groups:
        n = len(g)
        mean = float(g["score"].mean())
        if g["correct"].notna().all():
            lo, hi = wilson_interval(g["correct"].sum(), n, confidence)
            kind = "wilson"
        else:
            se = float(g["score"].std(ddof=1)) / np.sqrt(n) if n > 1 else np.nan
            lo, hi = max(0.0, mean - z * se), min(1.0, mean + z * se)
            kind = "normal"
        rows.append({"workflow_tag": tag, "model": model, "n": n, "accuracy": mean,
                     "ci_low": float(lo), "ci_high": float(hi), "interval": kind})
    return pd.DataFrame(rows, columns=["workflow_tag", "model", "n", "accuracy", "ci_low", "ci_high", "interval"])


def paired_delta(samples: pd.DataFrame, baseline: str, candidate: str, *, workflow_tag=None, n_boot: int = 2000,
                 seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired change candidate - baseline on samples both models answered (fractions, not pp).

    Returns n_paired, baseline_mean, candidate_mean, delta, delta_ci (paired percentile bootstrap), p_disc (share
    of discordant pairs), variance_per_sample (of the per-sample difference; p_disc - delta^2 for binary), kind, and
    for binary outcomes McNemar's test. Example: ``paired_delta(s, "gpt-4", "mixtral", workflow_tag="mmlu")``.
    """
    _check_model(samples, baseline)
    _check_model(samples, candidate)
    pairs = paired_frame(samples, baseline, candidate, workflow_tag)
    n = len(pairs)
    out = {"baseline": baseline, "candidate": candidate, "workflow_tag": workflow_tag, "n_paired": n,
           "confidence": confidence, "n_boot": n_boot, "seed": seed}
    if n == 0:
        return out | {"kind": None, "baseline_mean": np.nan, "candidate_mean": np.nan, "delta": np.nan,
                      "delta_ci": (np.nan, np.nan), "p_disc": np.nan, "variance_per_sample": np.nan, "mcnemar": None}
    diff = pairs["cand"].to_numpy() - pairs["base"].to_numpy()
    binary = bool(pairs["binary"].all())
    draws = bootstrap_mean(diff, n_boot, np.random.default_rng(seed))
    out |= {
        "kind": "binary" if binary else "graded",
        "baseline_mean": float(pairs["base"].mean()), "candidate_mean": float(pairs["cand"].mean()),
        "delta": float(diff.mean()), "delta_ci": percentile_interval(draws, confidence),
        "p_disc": float(np.mean(diff != 0)), "variance_per_sample": float(diff.var()),
        "mcnemar": None,
    }
    if binary:
        out["mcnemar"] = mcnemar(int(np.sum(diff < 0)), int(np.sum(diff > 0)))
    return out


def unpaired_delta(samples: pd.DataFrame, baseline: str, candidate: str, *, workflow_tag=None, n_boot: int = 2000,
                   seed: int = 0, confidence: float = 0.95) -> dict:
    """Difference of means on ALL samples of each model, resampled independently; always carries a warning."""
    _check_model(samples, baseline)
    _check_model(samples, candidate)
    sub = _subset(samples, workflow_tag)
    a = sub.loc[sub["model"] == baseline, "score"].to_numpy(np.float64)
    b = sub.loc[sub["model"] == candidate, "score"].to_numpy(np.float64)
    out = {"baseline": baseline, "candidate": candidate, "workflow_tag": workflow_tag, "n_baseline": len(a),
           "n_candidate": len(b), "warning": UNPAIRED_WARNING}
    if len(a) == 0 or len(b) == 0:
        return out | {"delta": np.nan, "delta_ci": (np.nan, np.nan)}
    rng = np.random.default_rng(seed)
    draws = bootstrap_mean(b, n_boot, rng) - bootstrap_mean(a, n_boot, rng)
    return out | {"delta": float(b.mean() - a.mean()), "delta_ci": percentile_interval(draws, confidence)}


def output_length_ratio(samples: pd.DataFrame, baseline: str, candidate: str, *, workflow_tag=None,
                        n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Median of per-sample ``output_tokens(candidate) / output_tokens(baseline)`` with a bootstrap interval.

    Uses samples where both models have output_tokens > 0. The routing replay can scale recorded output
    tokens by ``median_ratio`` when it moves a request from baseline to candidate. ``n == 0`` -> NaN ratio.
    """
    sub = _subset(samples, workflow_tag)
    a = sub[sub["model"] == baseline][["sample_id", "output_tokens"]]
    b = sub[sub["model"] == candidate][["sample_id", "output_tokens"]]
    j = a.merge(b, on="sample_id", suffixes=("_a", "_b")).dropna()
    j = j[(j["output_tokens_a"] > 0) & (j["output_tokens_b"] > 0)].sort_values("sample_id", kind="stable")
    ratio = (j["output_tokens_b"].to_numpy(np.float64) / j["output_tokens_a"].to_numpy(np.float64))
    out = {"baseline": baseline, "candidate": candidate, "workflow_tag": workflow_tag, "n": len(ratio)}
    if len(ratio) == 0:
        return out | {"median_ratio": np.nan, "ratio_ci": (np.nan, np.nan)}
    rng = np.random.default_rng(seed)
    idx_chunks = []
    chunk = max(1, 4_000_000 // len(ratio))
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, len(ratio), size=(min(chunk, n_boot - start), len(ratio)))
        idx_chunks.append(np.median(ratio[idx], axis=1))
    draws = np.concatenate(idx_chunks)
    return out | {"median_ratio": float(np.median(ratio)), "ratio_ci": percentile_interval(draws, confidence)}


def output_length_ratios(samples: pd.DataFrame, pairs=None, **kwargs) -> pd.DataFrame:
    """``output_length_ratio`` for each (baseline, candidate) pair (default: all ordered pairs with tokens)."""
    if pairs is None:
        models = sorted(samples.loc[samples["output_tokens"].notna(), "model"].unique())
        pairs = [(a, b) for a in models for b in models if a != b]
    rows = []
    for a, b in pairs:
        r = output_length_ratio(samples, a, b, **kwargs)
        rows.append({"baseline": a, "candidate": b, "n": r["n"], "median_ratio": r["median_ratio"],
                     "ci_low": r["ratio_ci"][0], "ci_high": r["ratio_ci"][1]})
    return pd.DataFrame(rows, columns=["baseline", "candidate", "n", "median_ratio", "ci_low", "ci_high"])
