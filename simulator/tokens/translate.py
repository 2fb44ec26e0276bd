"""Translate recorded token counts from one model's tokenizer to another's, row by row, with the method used.

Methods, per row:

- ``identity``: both models use the same tokenizer; counts are unchanged. An assumption, so it has no interval.
- ``exact``: both tokenizers are public and the row's prompt text covers (at least 90% of) what was billed: the
  recorded count is SCALED by ``count_to(prompt) / count_from(prompt)`` (framing tokens scale with the text).
- ``partial-exact``: both tokenizers are public but the prompt column holds far less than was billed (the latest user
  turn, not the system prompt, history or tool schemas). The exact ratio applies to the visible share ``v`` only and
  the rest uses the pair's calibrated ratio for unknown content: ``ratio = v * exact + (1 - v) * calibrated``, with the
  calibrated ratio's interval on the hidden share. Without a calibrated ratio that has an interval, the hidden share
  uses the pooled ratio of the visible prompts and the spread (2.5-97.5%) of their per-row ratios.
- ``calibrated``: at least one side is a ratio fitted from traffic or a counts file, with its interval (intervals of
  two sides are combined on the log scale as if independent).
- ``calibrated-default``: a shipped default ratio was needed. A direct pairwise default (e.g. Claude 4.7 / 3-4.6) wins
  over a combination of two one-sided ratios against o200k unless both sides were fitted from this traffic. Its
  interval is the stated range for the content class (``ranges`` in ``pricing/tokenizer-ratios.yaml``), else none.

Output tokens are scaled by the same per-row ratio (output text is not logged; its content class is assumed to
match the prompt's). Counts are rounded to the nearest integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import TokenizerError
from simulator.tokens.calibration import (
    ALL,
    SOURCE_COUNTS,
    SOURCE_DEFAULT,
    SOURCE_EXACT,
    SOURCE_TRAFFIC,
    Calibration,
    RatioEstimate,
)
from simulator.tokens.content import UNKNOWN, classify_content
from simulator.tokens.counting import CountCache, count_tokens
from simulator.tokens.registry import DEFAULT_REGISTRY, EXACT, REFERENCE_TOKENIZER, Registry, TokenizerSpec

IDENTITY, METHOD_EXACT, METHOD_PARTIAL = "identity", "exact", "partial-exact"
METHOD_CALIBRATED, METHOD_DEFAULT = "calibrated", "calibrated-default"
METHODS = (IDENTITY, METHOD_EXACT, METHOD_PARTIAL, METHOD_CALIBRATED, METHOD_DEFAULT)
#: A prompt whose count covers at least this share of the recorded input tokens is the whole input (plus framing).
VISIBLE_SHARE_EXACT = 0.9
_FITTED = (SOURCE_TRAFFIC, SOURCE_COUNTS)


@dataclass
class TokenRatios:
    """Per-row ``ratio`` = tokens(to) / tokens(from), its interval (NaN if none), ``method`` and ``content_type``.

    ``visible_share``: the share of the recorded input the prompt text covers (exact pairs with text; NaN otherwise).
    """

    ratio: np.ndarray
    ratio_low: np.ndarray
    ratio_high: np.ndarray
    method: np.ndarray
    content_type: np.ndarray
    visible_share: np.ndarray | None = None


def _as_rows(values, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    if isinstance(values, str):
        return np.full(n, values, dtype=object)
    array = np.asarray(values, dtype=object)
    if array.shape != (n,):
        raise TokenizerError(f"`{name}` must have one value per row ({n}). Got shape {array.shape} instead.")
    return array


def has_text(prompts: np.ndarray | None, n: int) -> np.ndarray:
    """Per row: the prompt is a non-empty string (vectorised; a column of other objects is checked one by one)."""
    if prompts is None:
        return np.zeros(n, dtype=bool)
    import pandas as pd

    prompts = np.asarray(prompts, dtype=object)
    text = pd.notna(prompts)
    text[text] = prompts[text] != ""
    if text.any() and pd.api.types.infer_dtype(prompts[text], skipna=False) != "string":
        return np.fromiter((isinstance(p, str) and p != "" for p in prompts), dtype=bool, count=n)
    return text


def _calibration_missing(spec: TokenizerSpec, model: str, content_type: str) -> TokenizerError:
    return TokenizerError(
        f"Model '{model}' uses tokenizer '{spec.id}', which is not public, and nothing calibrates it for "
        f"{content_type} text. Give traffic rows of this model with `prompt` text and `input_tokens`, or a counts "
        "file (text or text_sha256, model, tokens) from the provider's count-tokens endpoint."
    )


def _side(
    spec: TokenizerSpec,
    model: str,
    rows: np.ndarray,
    content: np.ndarray,
    text: np.ndarray,
    prompts: np.ndarray | None,
    reference_counts: np.ndarray | None,
    calibration: Calibration,
    registry: Registry,
    cache: CountCache | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tokens(spec) / tokens(o200k) on ``rows``: (ratio, log low bound, log high bound, source) arrays of len(rows)."""
    m = rows.size
    ratio, log_low, log_high = np.ones(m), np.zeros(m), np.zeros(m)
    source = np.full(m, SOURCE_EXACT, dtype=object)
    if spec.id == REFERENCE_TOKENIZER:
        return ratio, log_low, log_high, source
    counted = np.zeros(m, dtype=bool)
    if spec.kind == EXACT and reference_counts is not None:
        counted = text[rows] & (reference_counts > 0)
        if counted.any():
            own = count_tokens(registry.get(spec.id), prompts[rows][counted], cache)
            ratio[counted] = own / reference_counts[counted]
    for ct in sorted(set(content[rows][~counted].tolist())):  # a few classes: a set, not numpy's object sort
        at = ~counted & (content[rows] == ct)
        estimate: RatioEstimate | None = calibration.vs_reference(spec.id, ct)
        if estimate is None:
            raise _calibration_missing(spec, model, ct)
        ratio[at], source[at] = estimate.ratio, estimate.source
        log_low[at], log_high[at] = estimate.log_bounds
    return ratio, log_low, log_high, source


def _hidden_ratio(spec_from: TokenizerSpec, spec_to: TokenizerSpec, calibration: Calibration) -> RatioEstimate | None:
    """The pair's calibrated ratio for text of unknown content (the part of a prompt that was not logged)."""
    direct = calibration.default(spec_to.id, spec_from.id, ALL)
    if direct is not None:
        return direct
    sides = [calibration.vs_reference(spec.id, ALL) for spec in (spec_from, spec_to)]
    if any(side is None for side in sides):
        return None
    (lo_f, hi_f), (lo_t, hi_t) = sides[0].log_bounds, sides[1].log_bounds
    ratio = sides[1].ratio / sides[0].ratio
    log_low, log_high = -np.hypot(lo_t, hi_f), np.hypot(hi_t, lo_f)
    return RatioEstimate(ratio, ratio * np.exp(log_low), ratio * np.exp(log_high), source=SOURCE_DEFAULT)


def _pooled_visible(count_from: np.ndarray, count_to: np.ndarray) -> RatioEstimate:
    """Fallback for the hidden share: pooled ratio of the visible prompts, interval = spread of per-row ratios."""
    ratio = float(count_to.sum() / count_from.sum())
    if count_from.size < 2:
        return RatioEstimate(ratio, source=SOURCE_TRAFFIC)
    low, high = np.percentile(count_to / count_from, [2.5, 97.5])
    return RatioEstimate(ratio, min(float(low), ratio), max(float(high), ratio), n=int(count_from.size),
                         source=SOURCE_TRAFFIC)


def token_ratios(
    from_model: str,
    to_model: str,
    n: int,
    prompts=None,
    content_type=None,
    calibration: Calibration | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    cache: CountCache | None = None,
    input_tokens=None,
) -> TokenRatios:
    """Per-row tokens(to_model) / tokens(from_model) for ``n`` rows; see the module docstring for the methods.

    ``input_tokens`` (recorded, per row) tells how much of the bill the prompt text covers; without it the text is
    taken as the whole input.
    """
    calibration = calibration or Calibration()
    spec_from, spec_to = registry.spec_for_model(from_model), registry.spec_for_model(to_model)
    prompts = _as_rows(prompts, n, "prompts")
    given = _as_rows(content_type, n, "content_type")
    if given is not None:
        content = given
    elif prompts is not None:
        content = classify_content(prompts)
    else:
        content = np.full(n, ALL, dtype=object)
    if given is not None or prompts is not None:
        content = np.where(content == UNKNOWN, ALL, content)
    if spec_from.id == spec_to.id or n == 0:
        return _ratios(spec_from, spec_to, from_model, to_model, n, prompts, content, np.zeros(n, dtype=bool),
                       calibration, registry, cache, input_tokens)
    text = has_text(prompts, n)
    if text.all():
        return _ratios(spec_from, spec_to, from_model, to_model, n, prompts, content, text, calibration, registry,
                       cache, input_tokens)
    # A row without prompt text gets the ratio of its content type alone: work out each content type once and
    # spread it, and the rows with text (which share a pooled fallback) on their own.
    if given is None and prompts is None:  # one content type for every row
        codes, kinds = np.zeros(n, dtype=np.int64), np.array([ALL], dtype=object)
    else:
        import pandas as pd

        codes, kinds = pd.factorize(content)
        kinds = np.asarray(kinds, dtype=object)
    plain = _ratios(spec_from, spec_to, from_model, to_model, len(kinds), None, kinds, np.zeros(len(kinds), bool),
                    calibration, registry, cache, None)
    out = TokenRatios(plain.ratio[codes], plain.ratio_low[codes], plain.ratio_high[codes], plain.method[codes],
                      content, np.full(n, np.nan))
    rows = np.flatnonzero(text)
    if rows.size:
        billed = None if input_tokens is None else np.asarray(input_tokens)[rows]
        own = _ratios(spec_from, spec_to, from_model, to_model, rows.size, prompts[rows], content[rows],
                      text[rows], calibration, registry, cache, billed)
        for name in ("ratio", "ratio_low", "ratio_high", "method", "visible_share"):
            getattr(out, name)[rows] = getattr(own, name)
    return out


def _ratios(spec_from: TokenizerSpec, spec_to: TokenizerSpec, from_model: str, to_model: str, n: int,
            prompts: np.ndarray | None, content: np.ndarray, text: np.ndarray, calibration: Calibration,
            registry: Registry, cache: CountCache | None, input_tokens) -> TokenRatios:
    """:func:`token_ratios` once the content types and which rows have prompt text are known."""
    ratio, low, high = np.ones(n), np.full(n, np.nan), np.full(n, np.nan)
    method = np.full(n, IDENTITY, dtype=object)
    visible = np.full(n, np.nan)
    if spec_from.id == spec_to.id or n == 0:
        return TokenRatios(ratio, low, high, method, content, visible)

    todo = np.ones(n, dtype=bool)
    if spec_from.kind == EXACT and spec_to.kind == EXACT and text.any():
        # Both public: count each prompt with both tokenizers, no reference needed.
        rows = np.flatnonzero(text)
        count_from = count_tokens(registry.get(spec_from.id), prompts[rows], cache)
        count_to = count_tokens(registry.get(spec_to.id), prompts[rows], cache)
        ok = count_from > 0
        rows, count_from, count_to = rows[ok], count_from[ok], count_to[ok]
        exact = count_to / count_from
        share = np.ones(rows.size)
        if input_tokens is not None:
            billed = np.asarray(input_tokens, dtype=np.float64)[rows]
            share = np.where(billed > 0, np.minimum(count_from / np.maximum(billed, 1.0), 1.0), 1.0)
        visible[rows] = share
        full = share >= VISIBLE_SHARE_EXACT
        done = rows[full]
        ratio[done] = exact[full]
        low[done], high[done], method[done] = exact[full], exact[full], METHOD_EXACT
        if (~full).any():
            hidden = _hidden_ratio(spec_from, spec_to, calibration)
            if hidden is None or not (hidden.ci_low > 0 and hidden.ci_high > 0):
                hidden = _pooled_visible(count_from, count_to)
            part, v = rows[~full], share[~full]
            mix = v * exact[~full]
            ratio[part] = mix + (1 - v) * hidden.ratio
            low[part] = mix + (1 - v) * hidden.ci_low
            high[part] = mix + (1 - v) * hidden.ci_high
            method[part] = METHOD_PARTIAL
        todo[rows] = False

    rows = np.flatnonzero(todo)
    if rows.size:
        reference_counts = None
        # Only an exact side other than o200k itself needs o200k counts (to express its ratio against o200k).
        needs_reference = any(s.kind == EXACT and s.id != REFERENCE_TOKENIZER for s in (spec_from, spec_to))
        if needs_reference and text[rows].any():
            reference_counts = np.zeros(rows.size, dtype=np.int64)
            with_text = text[rows]
            reference_counts[with_text] = count_tokens(
                registry.get(REFERENCE_TOKENIZER), prompts[rows][with_text], cache
            )
        sides = [
            _side(spec, model, rows, content, text, prompts, reference_counts, calibration, registry, cache)
            for spec, model in ((spec_from, from_model), (spec_to, to_model))
        ]
        (r_from, lo_from, hi_from, src_from), (r_to, lo_to, hi_to, src_to) = sides
        r = r_to / r_from
        log_low, log_high = -np.hypot(lo_to, hi_from), np.hypot(hi_to, lo_from)
        # A directly measured transition (e.g. Claude 4.7 / 4.6) beats a ratio of two ratios against o200k, unless
        # both sides were fitted on this traffic (or counts file) or one side was counted exactly.
        both_fitted = np.isin(src_from, _FITTED) & np.isin(src_to, _FITTED)
        eligible = ~both_fitted & (src_from != SOURCE_EXACT) & (src_to != SOURCE_EXACT)
        direct_rows = np.zeros(rows.size, dtype=bool)
        for ct in sorted(set(content[rows][eligible].tolist())):
            direct = calibration.default(spec_to.id, spec_from.id, ct)
            if direct is not None:
                at = eligible & (content[rows] == ct)
                r[at] = direct.ratio
                log_low[at], log_high[at] = direct.log_bounds
                direct_rows |= at
        any_default = (src_from == SOURCE_DEFAULT) | (src_to == SOURCE_DEFAULT) | direct_rows
        all_exact = (src_from == SOURCE_EXACT) & (src_to == SOURCE_EXACT)
        ratio[rows] = r
        low[rows], high[rows] = r * np.exp(log_low), r * np.exp(log_high)
        method[rows] = np.where(all_exact, METHOD_EXACT, np.where(any_default, METHOD_DEFAULT, METHOD_CALIBRATED))
    return TokenRatios(ratio, low, high, method, content, visible)


def translate_with_ratios(
    from_model: str,
    to_model: str,
    input_tokens,
    output_tokens,
    prompts=None,
    content_type=None,
    calibration: Calibration | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    cache: CountCache | None = None,
) -> tuple[np.ndarray, np.ndarray, TokenRatios]:
    """:func:`translate_tokens` returning the per-row :class:`TokenRatios` (with intervals) instead of the methods."""
    input_tokens = np.atleast_1d(np.asarray(input_tokens, dtype=np.int64))
    output_tokens = np.atleast_1d(np.asarray(output_tokens, dtype=np.int64))
    if input_tokens.shape != output_tokens.shape:
        raise TokenizerError(
            f"input_tokens and output_tokens must have the same length. Got {input_tokens.size} and "
            f"{output_tokens.size} instead."
        )
    ratios = token_ratios(
        from_model, to_model, input_tokens.size, prompts, content_type, calibration, registry, cache, input_tokens
    )
    identity = ratios.method == IDENTITY
    new_input = np.where(identity, input_tokens, np.rint(input_tokens * ratios.ratio)).astype(np.int64)
    new_output = np.where(identity, output_tokens, np.rint(output_tokens * ratios.ratio)).astype(np.int64)
    return new_input, new_output, ratios


def translate_tokens(
    from_model: str,
    to_model: str,
    input_tokens,
    output_tokens,
    prompts=None,
    content_type=None,
    calibration: Calibration | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    cache: CountCache | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input_tokens_new, output_tokens_new, method)`` as int64, int64 and str arrays, one entry per row.

    ``prompts`` (optional) is the prompt text per row; ``content_type`` (a class or one per row) overrides the
    classifier. Example: ``translate_tokens("anthropic/claude-opus-4-6", "anthropic/claude-opus-4-7", [1000], [200])``
    -> ``([1304], [261], ['calibrated-default'])``.
    """
    new_input, new_output, ratios = translate_with_ratios(
        from_model, to_model, input_tokens, output_tokens, prompts, content_type, calibration, registry, cache
    )
    return new_input, new_output, ratios.method.astype(str)
