"""Token translation for the routing replay: every model switch goes through the tokenizer registry.

Re-tokenise when prompt text is present and both tokenizers are public, else apply calibrated ratios (fitted once
per run from the traffic itself, or the shipped dated defaults). A pair with no tokenizer on one side keeps the
recorded counts, labelled ``identity-unknown`` and named in the policy's assumptions, never a silent fallback.

The translator also remembers, per candidate and row, how far the row's cost could move inside the intervals of the
assumptions it used (tokenizer ratio; output-length ratio with ``output_tokens: eval-ratio``):
:meth:`Translator.cost_bounds` returns them for the served rows, for the savings interval and the sensitivity checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.errors import TokenizerError
from simulator.tokens import Registry, classify_content, token_ratios, translate_with_ratios
from simulator.tokens.translate import IDENTITY, METHODS, TokenRatios, has_text

#: Every value of a replay's per-row translation, which ``Outcome.translation_code`` indexes: "" (not moved), the
#: methods of :mod:`simulator.tokens.translate`, and "identity-unknown" (no tokenizer on one side: counts kept).
TRANSLATIONS = ("", *METHODS, "identity-unknown")
TRANSLATION_CODE = {name: code for code, name in enumerate(TRANSLATIONS)}


def translation_codes(methods: np.ndarray) -> np.ndarray:
    """Codes into :data:`TRANSLATIONS` of per-row method names (one comparison pass per name: a handful of names,
    and equal strings are most often the same object; one lookup for a single row)."""
    if len(methods) == 1:
        return np.array([TRANSLATION_CODE[str(methods[0])]], dtype=np.int8)
    methods = np.asarray(methods, dtype=object)
    codes = np.full(len(methods), -1, dtype=np.int8)
    for code, name in enumerate(TRANSLATIONS):
        codes[methods == name] = code
    if (codes < 0).any():  # a method missing from TRANSLATIONS: a KeyError, as for one row, never a wrong label
        raise KeyError(str(methods[codes < 0][0]))
    return codes


def prompt_classes(frame: pd.DataFrame) -> np.ndarray:
    """:func:`classify_content` of a chunk's prompts, made once per chunk (``Chunk.shared``): every candidate and
    model pair, and the sensitivity replays, move rows of the same chunk; Arrow deduplicates the column once."""
    return classify_content(frame["prompt"])


def model_pairs(from_codes: np.ndarray, to_codes: np.ndarray, vocab_size: int):
    """``(from, to, positions)`` per distinct pair of model codes, pairs in ascending order, positions ascending."""
    key = from_codes.astype(np.int64) * vocab_size + to_codes
    pairs = np.flatnonzero(np.bincount(key)) if len(key) else key
    if len(pairs) == 1:
        yield int(pairs[0]) // vocab_size, int(pairs[0]) % vocab_size, np.arange(len(key))
        return
    if len(pairs) <= 8:  # a few pairs (the usual case): one comparison pass each beats a sort
        for pair in pairs.tolist():
            yield pair // vocab_size, pair % vocab_size, np.flatnonzero(key == pair)
        return
    inverse = np.searchsorted(pairs, key)
    order = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse, minlength=len(pairs)))
    for pair, start, end in zip(pairs.tolist(), [0, *ends[:-1].tolist()], ends.tolist()):
        yield pair // vocab_size, pair % vocab_size, order[start:end]


class Translator:
    """Callable used by :func:`simulator.core.replay_chunk` for moved rows; one per run.

    ``calibration`` is fitted once per run from the whole traffic (:func:`simulator.tokens.calibrate_from_rows` over
    the chunks' :func:`simulator.tokens.calibration_rows`); set it before the first chunk is replayed.
    """

    def __init__(self, scenario=None, eval_samples: pd.DataFrame | None = None, calibration=None) -> None:
        self.eval_samples = eval_samples
        self._ratios: dict[tuple[str, str], tuple[float, float, float] | None] = {}
        self.registry = Registry()
        for entry in getattr(scenario, "tokenizers", None) or []:
            self.registry.register_file(entry.name, scenario.path(entry.path), entry.models)
        self.calibration = calibration
        self.unknown: dict[tuple[str, str], str] = {}
        self._bounds: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._bounds_of = None  # the Prepared (chunk) the bounds belong to
        self._pairs: dict[tuple[str, str], TokenRatios] = {}  # one row's ratios per pair, for rows without text
        self._pairs_for = None  # the calibration those ratios were computed with
        self.end: str | None = None  # "low" / "high": translate at that end of every interval (sensitivity replays)

    def at_end(self, end: str) -> Translator:
        """A translator that puts every ratio at the ``"low"`` or ``"high"`` end of its interval (same calibration)."""
        import copy

        other = copy.copy(self)
        other.end, other._bounds, other._bounds_of, other.unknown = end, {}, None, {}
        return other

    def output_ratio_interval(self, src: str, dst: str) -> tuple[float, float, float] | None:
        """(median, ci_low, ci_high) of paired output_tokens(dst) / output_tokens(src) from eval samples, or None."""
        if (src, dst) not in self._ratios:
            found = None
            if self.eval_samples is not None and "output_tokens" in self.eval_samples.columns:
                from simulator.evals.impact import match_eval_model
                from simulator.evals.stats import output_length_ratio

                models = sorted(self.eval_samples["model"].unique())
                a, b = match_eval_model(src, models), match_eval_model(dst, models)
                if a and b:
                    got = output_length_ratio(self.eval_samples, a, b, n_boot=200)
                    if got["n"] >= 20 and np.isfinite(got["median_ratio"]):
                        found = (float(got["median_ratio"]), *(float(x) for x in got["ratio_ci"]))
            self._ratios[(src, dst)] = found
        return self._ratios[(src, dst)]

    def output_ratio(self, src: str, dst: str) -> float | None:
        """Median paired output_tokens(dst) / output_tokens(src) from eval samples, None without evidence."""
        found = self.output_ratio_interval(src, dst)
        return found[0] if found else None

    def _scale_outputs(self, o, idx: np.ndarray, src: str, dst: str) -> tuple[float, float] | None:
        found = self.output_ratio_interval(src, dst)
        if found is None:
            return None
        ratio, low, high = found
        used = {"low": low, "high": high}.get(self.end, ratio) if np.isfinite(low) and np.isfinite(high) else ratio
        o.output_tokens[idx] = np.rint(o.output_tokens[idx] * used).astype(np.int64)
        o.extras.setdefault("output_length_ratios", {})[f"{src} -> {dst}"] = round(float(ratio), 4)
        if not (np.isfinite(low) and np.isfinite(high) and ratio > 0):
            return None
        return min(low / ratio, 1.0), max(high / ratio, 1.0)

    def __call__(self, p, o, rows: np.ndarray, cand) -> None:
        vocab = p.vocab
        eval_ratio = getattr(cand, "output_tokens", "recorded") == "eval-ratio"
        unknown_here = []
        text = p.prompt_text if hasattr(p, "prompt_text") else has_text(p.prompts, p.n)
        for f, t, at in model_pairs(p.model[rows], o.model[rows], len(vocab)):
            idx = rows[at]
            src, dst = str(vocab[f]), str(vocab[t])
            try:
                if text[idx].any():
                    new_in, new_out, ratios = translate_with_ratios(
                        src, dst, o.input_tokens[idx], o.output_tokens[idx], prompts=p.prompts[idx],
                        content_type=p.shared(prompt_classes)[idx], calibration=self.calibration,
                        registry=self.registry)
                else:
                    new_in, new_out, ratios = self._translate_plain(src, dst, o.input_tokens[idx],
                                                                    o.output_tokens[idx])
            except TokenizerError as exc:
                self.unknown[(src, dst)] = str(exc)
                unknown_here.append((src, dst))
                o.translation_code[idx] = TRANSLATION_CODE["identity-unknown"]
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                low = np.nan_to_num(ratios.ratio_low / ratios.ratio, nan=1.0)
                high = np.nan_to_num(ratios.ratio_high / ratios.ratio, nan=1.0)
            if self.end is not None:
                factor = low if self.end == "low" else high
                new_in = np.rint(new_in * factor).astype(np.int64)
                new_out = np.rint(new_out * factor).astype(np.int64)
            o.input_tokens[idx] = new_in
            o.output_tokens[idx] = new_out
            o.translation_code[idx] = translation_codes(ratios.method)
            if eval_ratio:
                length = self._scale_outputs(o, idx, src, dst)
                if length is not None:
                    share = self._output_cost_share(p, dst, o.input_tokens[idx], o.output_tokens[idx])
                    low = low * (1.0 - share + share * length[0])
                    high = high * (1.0 - share + share * length[1])
            self._remember(p, cand, int(t), idx, low, high)
        if eval_ratio:
            note = ("output length under another model: recorded output tokens scaled by the median paired "
                    "output-length ratio from eval samples, where the pair has them")
            if note not in o.assumptions:
                o.assumptions.append(note)
        for src, dst in unknown_here:  # only the pairs this candidate moved rows between
            note = f"token counts {src} -> {dst} kept as recorded: {self.unknown[(src, dst)]}"
            if note not in o.assumptions:
                o.assumptions.append(note)

    def _translate_plain(self, src: str, dst: str, input_tokens: np.ndarray,
                         output_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, TokenRatios]:
        """:func:`translate_with_ratios` of rows without prompt text: every such row of a pair gets the pair's one
        ratio (content class ``all``), so it is worked out once per run and scaled here (the same arithmetic)."""
        if self._pairs_for is not self.calibration:
            self._pairs, self._pairs_for = {}, self.calibration
        if (src, dst) not in self._pairs:
            self._pairs[(src, dst)] = token_ratios(src, dst, 1, calibration=self.calibration, registry=self.registry)
        one = self._pairs[(src, dst)]
        if one.method[0] == IDENTITY:
            return input_tokens.copy(), output_tokens.copy(), one
        ratio = one.ratio[0]
        return np.rint(input_tokens * ratio).astype(np.int64), np.rint(output_tokens * ratio).astype(np.int64), one

    @staticmethod
    def _output_cost_share(p, model: str, input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
        """Share of a row's cost that is output, at the model's unit prices at the window start."""
        prices = p.catalog.unit_prices(model, int(p.ts.min()) if len(p.ts) else 0)
        inp = input_tokens * float(prices.get("input_mtok") or 0.0)
        out = output_tokens * float(prices.get("output_mtok") or 0.0)
        total = inp + out
        return np.divide(out, total, out=np.zeros(len(total)), where=total > 0)

    def _remember(self, p, cand, code: int, idx: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        if self._bounds_of is not p:
            self._bounds, self._bounds_of = {}, p
        key = (getattr(cand, "name", ""), code)
        if key not in self._bounds:
            self._bounds[key] = (np.ones(p.n), np.ones(p.n))
        self._bounds[key][0][idx] = low
        self._bounds[key][1][idx] = high

    def cost_bounds(self, cand_name: str, p, served_model: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per row: the factors by which the row's cost would move at the low / high end of its translation
        assumptions' intervals (1 for rows not moved, or translated exactly or by identity).

        ``served_model``: the final served model code per row (after fallbacks); ``moved``: bool per row.
        """
        low, high = np.ones(p.n), np.ones(p.n)
        if self._bounds_of is not p:
            return low, high
        for (name, code), (lo, hi) in self._bounds.items():
            if name != cand_name:
                continue
            at = moved & (served_model == code)
            low[at], high[at] = lo[at], hi[at]
        return low, high
