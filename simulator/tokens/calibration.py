"""Ratio models for tokenizers that are not public (Claude 3+, Gemini): tokens = intercept + ratio * o200k tokens.

Fitted per tokenizer family and content class with the Theil-Sen estimator (median of pairwise slopes: robust to
rows whose prompt text is only part of what was billed), whose slope comes with a distribution-free confidence
interval. The intercept absorbs per-request framing (role markers, tool preambles). Sources, best first:

1. traffic rows carrying both ``prompt`` and the provider-reported ``input_tokens`` (``calibrate_from_traffic``);
2. a counts file collected with a provider's count-tokens endpoint (``calibrate_from_counts``);
3. shipped default ratios (``pricing/tokenizer-ratios.yaml``), labelled ``calibrated-default``; their interval is the
   entry's stated range for the content class (vendor range or per-document spread), none where it states none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError, TokenizerError
from simulator.tokens.content import CONTENT_TYPES, classify_content
from simulator.tokens.counting import CountCache, count_tokens, text_sha256
from simulator.tokens.registry import CALIBRATED, DEFAULT_REGISTRY, REFERENCE_TOKENIZER, Registry

ALL = "all"  # the content class used when a row has no text and no class
DEFAULT_RATIOS_PATH = Path(__file__).resolve().parents[2] / "pricing" / "tokenizer-ratios.yaml"
MIN_ROWS = 30  # fewer rows than this per (family, content class) do not calibrate
MAX_POINTS = 2000  # Theil-Sen is O(n^2): larger samples are subsampled with a seeded generator

SOURCE_TRAFFIC = "traffic"
SOURCE_COUNTS = "counts"
SOURCE_DEFAULT = "default"
SOURCE_EXACT = "exact"


@dataclass(frozen=True)
class RatioEstimate:
    """tokens(tokenizer) / tokens(reference): ``ratio`` with its ``ci_low``/``ci_high`` (NaN for defaults)."""

    ratio: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    intercept: float = 0.0
    source: str = SOURCE_DEFAULT

    @property
    def log_bounds(self) -> tuple[float, float]:
        """``(log(ci_low / ratio), log(ci_high / ratio))``: (0, 0) for exact, NaN when there is no interval.

        Kept apart (not a half-width) because a stated range need not be centred on the ratio (1.0-1.431 around 1.304).
        """
        if self.source == SOURCE_EXACT:
            return 0.0, 0.0
        if not (self.ci_low > 0 and self.ci_high > 0 and self.ratio > 0):
            return math.nan, math.nan
        return min(math.log(self.ci_low / self.ratio), 0.0), max(math.log(self.ci_high / self.ratio), 0.0)


def fit_ratio(
    reference_tokens: np.ndarray,
    provider_tokens: np.ndarray,
    confidence: float = 0.95,
    max_points: int = MAX_POINTS,
    random_state: int = 0,
    source: str = SOURCE_TRAFFIC,
) -> RatioEstimate:
    """Theil-Sen fit of ``provider_tokens = intercept + ratio * reference_tokens`` with a ``confidence`` interval."""
    x = np.asarray(reference_tokens, dtype=np.float64)
    y = np.asarray(provider_tokens, dtype=np.float64)
    if x.size > max_points:
        keep = np.sort(np.random.default_rng(random_state).choice(x.size, max_points, replace=False))
        x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0:
        raise TokenizerError(
            f"Cannot fit a token ratio from {x.size} rows whose reference counts do not vary. "
            "Give more traffic rows with prompt text of different lengths."
        )
    slope, intercept, low, high = theil_sen(x, y, confidence)
    return RatioEstimate(float(slope), float(low), float(high), int(x.size), float(intercept), source)


def theil_sen(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """``(slope, intercept, low_slope, high_slope)``: ``scipy.stats.theilslopes(y, x, confidence)`` (Sen 1968,
    eq. 2.6 with tie corrections; intercept ``median(y) - slope * median(x)``), with a partial sort instead of a full
    one and without importing scipy.stats (2 s of a run). ``x`` must vary."""
    from scipy.special import ndtri

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    # every pair with x_i > x_j once, (y_i - y_j) / (x_i - x_j): with x sorted, the rows of one x value pair with the
    # rows of smaller x before them (half the pairs of the n x n matrix, one block per distinct x: token counts
    # repeat, so a few hundred blocks for 2,000 rows); the order statistics below depend only on the multiset of slopes
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]
    sizes = ((ends - starts) * starts).tolist()
    slopes = np.empty(sum(sizes))  # each block written in place: no temporaries, no concatenation
    at = 0
    for k, e, size in zip(starts.tolist(), ends.tolist(), sizes):
        if size:
            block = slopes[at: at + size].reshape(e - k, k)
            np.subtract(ys[k:e, None], ys[None, :k], out=block)
            block /= xs[k] - xs[:k]
            at += size
    nt, n = len(slopes), len(y)
    alpha = 1.0 - confidence if confidence > 0.5 else confidence
    z = float(ndtri(alpha / 2.0))
    ties = sum(float(np.sum(k * (k - 1.0) * (2.0 * k + 5.0))) for k in (_repeats(x), _repeats(y)))
    sigma = math.sqrt((n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0)
    upper = min(int(np.round((nt - z * sigma) / 2.0)), nt - 1)
    lower = max(int(np.round((nt + z * sigma) / 2.0)) - 1, 0)
    mid = [(nt - 1) // 2, nt // 2]
    slopes.partition(sorted({lower, upper, *mid}))
    slope = float((slopes[mid[0]] + slopes[mid[1]]) / 2.0)
    return slope, float(np.median(y) - slope * np.median(x)), float(slopes[lower]), float(slopes[upper])


def _repeats(values: np.ndarray) -> np.ndarray:
    counts = np.unique(values, return_counts=True)[1]
    return counts[counts > 1].astype(np.float64)


class Calibration:
    """Ratios of tokenizers against ``REFERENCE_TOKENIZER`` per content class: fitted first, shipped defaults last."""

    def __init__(self, fitted: dict[tuple[str, str], RatioEstimate] | None = None, defaults_path: Path | None = None):
        self.fitted: dict[tuple[str, str], RatioEstimate] = dict(fitted or {})
        self.defaults_path = Path(defaults_path) if defaults_path else DEFAULT_RATIOS_PATH
        self._defaults: dict[tuple[str, str], dict[str, float]] | None = None
        self._ranges: dict[tuple[str, str], dict[str, tuple[float, float]]] | None = None

    def merged(self, other: Calibration) -> Calibration:
        """A calibration with ``other``'s fitted ratios added (``other`` wins on conflicts)."""
        return Calibration({**self.fitted, **other.fitted}, self.defaults_path)

    @property
    def defaults(self) -> dict[tuple[str, str], dict[str, float]]:
        """``{(numerator, denominator): {content class: ratio}}`` from the dated YAML file."""
        if self._defaults is None:
            self._defaults, self._ranges = load_default_ratios(self.defaults_path, with_ranges=True)
        return self._defaults

    @property
    def default_ranges(self) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
        """``{(numerator, denominator): {content class: (low, high)}}``: the stated ranges of the defaults."""
        self.defaults  # noqa: B018 - loads both tables
        return self._ranges or {}

    def vs_reference(self, tokenizer_id: str, content_type: str) -> RatioEstimate | None:
        """tokens(tokenizer) / tokens(o200k) for a content class, or None when nothing calibrates it."""
        if tokenizer_id == REFERENCE_TOKENIZER:
            return RatioEstimate(1.0, 1.0, 1.0, source=SOURCE_EXACT)
        for ct in (content_type, ALL):
            if (tokenizer_id, ct) in self.fitted:
                return self.fitted[(tokenizer_id, ct)]
        return self.default(tokenizer_id, REFERENCE_TOKENIZER, content_type)

    def default(self, numerator: str, denominator: str, content_type: str) -> RatioEstimate | None:
        """A shipped default ratio numerator / denominator (or the inverse of the reverse entry), else None.

        Its ``ci_low``/``ci_high`` are the entry's stated range for that class (NaN where none is stated).
        """
        for key, invert in (((numerator, denominator), False), ((denominator, numerator), True)):
            values = self.defaults.get(key)
            if values is not None:
                ct = content_type if content_type in values else ALL
                value = values[ct]
                low, high = self.default_ranges.get(key, {}).get(ct, (math.nan, math.nan))
                if invert:
                    value, low, high = 1.0 / value, 1.0 / high, 1.0 / low
                return RatioEstimate(value, low, high, source=SOURCE_DEFAULT)
        return None


def load_default_ratios(path: Path = DEFAULT_RATIOS_PATH, with_ranges: bool = False):
    """Read ``pricing/tokenizer-ratios.yaml``; every entry needs numerator, denominator, all classes and a source.

    Returns ``{(numerator, denominator): {class: ratio}}``; with ``with_ranges`` also the stated ranges
    ``{(numerator, denominator): {class: (low, high)}}`` (each must contain its class's ratio).
    """
    import yaml

    try:
        # libyaml's parser where PyYAML has it: the same objects as safe_load, several times faster
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise TokenizerError(f"`{path}`: cannot read default tokenizer ratios ({exc.strerror}).") from exc
    ratios: dict[tuple[str, str], dict[str, float]] = {}
    ranges: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for index, entry in enumerate(data.get("ratios", [])):
        where = f"`{path}`: ratios[{index}]"
        missing = [k for k in ("numerator", "denominator", "source", "checked", ALL, *CONTENT_TYPES) if k not in entry]
        if missing:
            raise TokenizerError(f"{where} must have {', '.join(missing)}. Add them with a source URL and date.")
        values = {ct: float(entry[ct]) for ct in (*CONTENT_TYPES, ALL)}
        if any(not v > 0 for v in values.values()):
            raise TokenizerError(f"{where}: ratios must be > 0. Got {values} instead.")
        key = (entry["numerator"], entry["denominator"])
        if key in ratios:
            raise TokenizerError(f"{where}: duplicate ratio {key[0]} / {key[1]}. Keep one entry.")
        ratios[key] = values
        ranges[key] = {}
        for ct, bounds in (entry.get("ranges") or {}).items():
            ok = (ct in values and isinstance(bounds, list) and len(bounds) == 2
                  and 0 < float(bounds[0]) <= values[ct] <= float(bounds[1]))
            if not ok:
                raise TokenizerError(f"{where}: ranges.{ct} must be [low, high] around the {ct} ratio "
                                     f"{values.get(ct)}. Got {bounds!r} instead.")
            ranges[key][ct] = (float(bounds[0]), float(bounds[1]))
    return (ratios, ranges) if with_ranges else ratios


#: A fitted ratio is only trusted inside this range and with this much precision; otherwise the traffic does not
#: explain its token counts (e.g. the prompt column holds only part of what was billed) and defaults are used.
PLAUSIBLE_RATIO = (0.25, 4.0)
MAX_RELATIVE_HALFWIDTH = 0.25


def plausible(estimate: RatioEstimate) -> bool:
    """Whether a fitted ratio is usable: in PLAUSIBLE_RATIO, with a finite interval at most 25% wide either side."""
    low, high = PLAUSIBLE_RATIO
    if not (low <= estimate.ratio <= high) or not (estimate.ci_low > 0 and math.isfinite(estimate.ci_high)):
        return False
    return (estimate.ci_high - estimate.ci_low) / 2 <= MAX_RELATIVE_HALFWIDTH * estimate.ratio


def _fit_groups(
    tokenizer_ids: np.ndarray,
    content: np.ndarray,
    reference_tokens: np.ndarray,
    provider_tokens: np.ndarray,
    source: str,
    min_rows: int,
) -> dict[tuple[str, str], RatioEstimate]:
    fitted = {}
    for tokenizer_id in sorted(set(tokenizer_ids)):
        rows = tokenizer_ids == tokenizer_id
        for ct in (*CONTENT_TYPES, ALL):
            mask = rows if ct == ALL else rows & (content == ct)
            if mask.sum() >= min_rows and np.ptp(reference_tokens[mask]) > 0:
                estimate = fit_ratio(reference_tokens[mask], provider_tokens[mask], source=source)
                if plausible(estimate):
                    fitted[(tokenizer_id, ct)] = estimate
    return fitted


def calibration_families(df: pd.DataFrame, registry: Registry = DEFAULT_REGISTRY) -> np.ndarray:
    """Per row, the calibrated tokenizer family it can calibrate (prompt text and input_tokens > 0), else None."""
    usable = df["prompt"].notna().to_numpy() & (df["input_tokens"].to_numpy() > 0)
    families = np.full(len(df), None, dtype=object)
    for model in pd.unique(df["model"][usable]):
        try:
            spec = registry.spec_for_model(model)
        except TokenizerError:
            continue  # an unknown model cannot be calibrated; translating it raises later with the fix
        if spec.kind == CALIBRATED:
            families[(df["model"] == model).to_numpy() & usable] = spec.id
    return families


def calibration_rows(df: pd.DataFrame, registry: Registry = DEFAULT_REGISTRY,
                     cache: CountCache | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a calibration fits on, from one table (or one chunk of a table): (family, content class, reference
    tokenizer count, recorded input_tokens) per row with prompt text of a calibrated tokenizer family."""
    empty = (np.zeros(0, dtype=object), np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64),
             np.zeros(0, dtype=np.int64))
    if "prompt" not in df.columns or df.empty:
        return empty
    families = calibration_families(df, registry)
    rows = pd.notna(families)
    if not rows.any():
        return empty
    prompts = df["prompt"].to_numpy(dtype=object)[rows]
    reference = count_tokens(registry.get(REFERENCE_TOKENIZER), prompts, cache)
    return (families[rows].astype(str), classify_content(prompts), np.asarray(reference),
            df["input_tokens"].to_numpy(dtype=np.int64)[rows])


def calibrate_from_rows(parts: list[tuple], min_rows: int = MIN_ROWS, defaults_path: Path | None = None) -> Calibration:
    """Fit a calibration from the :func:`calibration_rows` of successive chunks (the same fit as one table)."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return Calibration(defaults_path=defaults_path)
    cols = [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(4)]
    return Calibration(_fit_groups(cols[0], cols[1], cols[2], cols[3], SOURCE_TRAFFIC, min_rows), defaults_path)


def calibrate_from_traffic(
    df: pd.DataFrame,
    registry: Registry = DEFAULT_REGISTRY,
    cache: CountCache | None = None,
    min_rows: int = MIN_ROWS,
    defaults_path: Path | None = None,
) -> Calibration:
    """Fit each calibrated tokenizer family seen in ``df`` from rows with ``prompt`` text and ``input_tokens`` > 0.

    Rows of models without a registered tokenizer, or of exact tokenizers, are ignored here.
    """
    return calibrate_from_rows([calibration_rows(df, registry, cache)], min_rows, defaults_path)


def read_counts_file(path: str | Path) -> pd.DataFrame:
    """A counts file (CSV, JSONL or Parquet) with columns ``model``, ``tokens`` and ``text`` or ``text_sha256``."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            counts = pd.read_parquet(path)
        elif path.suffix in (".jsonl", ".ndjson"):
            counts = pd.read_json(path, lines=True, dtype=False)
        else:
            counts = pd.read_csv(path, dtype={"text": object, "text_sha256": object, "model": object})
    except (OSError, ValueError) as exc:
        raise InputError(f"`{path}`: cannot read counts file ({exc}). Use CSV, JSONL or Parquet.") from exc
    missing = [c for c in ("model", "tokens") if c not in counts.columns]
    if missing or not ({"text", "text_sha256"} & set(counts.columns)):
        raise InputError(
            f"`{path}`: a counts file needs columns model, tokens and text or text_sha256. "
            f"Got {', '.join(map(str, counts.columns))} instead."
        )
    return counts


def calibrate_from_counts(
    path: str | Path,
    texts: list[str] | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    min_rows: int = MIN_ROWS,
    defaults_path: Path | None = None,
) -> Calibration:
    """Fit ratios from provider-counted texts; rows with only ``text_sha256`` are matched against ``texts``."""
    counts = read_counts_file(path)
    if "text" not in counts.columns:
        counts["text"] = None
    if "text_sha256" in counts.columns and texts is not None:
        by_hash = {text_sha256(t): t for t in pd.unique(pd.Series(texts, dtype=object).dropna())}
        unresolved = counts["text"].isna()
        counts.loc[unresolved, "text"] = counts.loc[unresolved, "text_sha256"].map(by_hash)
    counts = counts[counts["text"].notna()]
    if counts.empty:
        raise InputError(
            f"`{path}`: no row has text, and no text_sha256 matches a prompt in the traffic. "
            "Add a text column or pass traffic whose prompts were counted."
        )
    families = np.array([registry.tokenizer_id_for_model(m) for m in counts["model"]], dtype=object)
    texts_arr = counts["text"].to_numpy(dtype=object)
    reference = count_tokens(registry.get(REFERENCE_TOKENIZER), texts_arr)
    fitted = _fit_groups(
        families.astype(str),
        classify_content(texts_arr),
        reference,
        counts["tokens"].to_numpy(dtype=np.int64),
        SOURCE_COUNTS,
        min_rows,
    )
    return Calibration(fitted, defaults_path)

