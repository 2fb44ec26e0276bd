"""Translate recorded token counts from one model's tokenizer to another's, row by row, with the method used.

Methods, per row:

- ``identity``: both models use the same tokenizer; counts are unchanged.
- ``exact``: both tokenizers are public and the row has prompt text. The recorded count is SCALED by
  ``count_to(prompt) / count_from(prompt)`` rather than shifted by the difference: the prompt column may hold only
  part of what was billed (the last user turn, not the history or tool schemas), and scaling extrapolates the
  measured ratio to the unseen part and to message framing instead of leaving them untranslated.
- ``calibrated``: at least one side is a ratio fitted from traffic or a counts file (``ratio_low``/``ratio_high``
  give its interval; intervals of two fitted sides are combined on the log scale as if independent).
- ``calibrated-default``: a shipped default ratio was needed (no prompt text for an exact pair, or no
  calibration data for a non-public tokenizer); no interval.

Output tokens are scaled by the same per-row ratio (output text is not logged; its content class is assumed to
match the prompt's). Counts are rounded to the nearest integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import TokenizerError
from simulator.tokens.calibration import (
    ALL,
    SOURCE_DEFAULT,
    SOURCE_EXACT,
    Calibration,
    RatioEstimate,
)
from simulator.tokens.content import UNKNOWN, classify_content
from simulator.tokens.counting import CountCache, count_tokens
from simulator.tokens.registry import DEFAULT_REGISTRY, EXACT, REFERENCE_TOKENIZER, Registry, TokenizerSpec

IDENTITY, METHOD_EXACT, METHOD_CALIBRATED, METHOD_DEFAULT = "identity", "exact", "calibrated", "calibrated-default"
METHODS = (IDENTITY, METHOD_EXACT, METHOD_CALIBRATED, METHOD_DEFAULT)


@dataclass
class TokenRatios:
    """Per-row ``ratio`` = tokens(to) / tokens(from), its interval (NaN if none), ``method`` and ``content_type``."""

    ratio: np.ndarray
    ratio_low: np.ndarray
    ratio_high: np.ndarray
    method: np.ndarray
    content_type: np.ndarray


def _as_rows(values, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    if isinstance(values, str):
        return np.full(n, values, dtype=object)
    array = np.asarray(values, dtype=object)
    if array.shape != (n,):
        raise TokenizerError(f"`{name}` must have one value per row ({n}). Got shape {array.shape} instead.")
    return array


def _has_text(prompts: np.ndarray | None, n: int) -> np.ndarray:
    if prompts is None:
        return np.zeros(n, dtype=bool)
    return np.fromiter((isinstance(p, str) and p != "" for p in prompts), dtype=bool, count=n)


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tokens(spec) / tokens(o200k) on ``rows``: (ratio, log half-width, source) arrays of len(rows)."""
    m = rows.size
    ratio, halfwidth = np.ones(m), np.zeros(m)
    source = np.full(m, SOURCE_EXACT, dtype=object)
    if spec.id == REFERENCE_TOKENIZER:
        return ratio, halfwidth, source
    counted = np.zeros(m, dtype=bool)
    if spec.kind == EXACT and reference_counts is not None:
        counted = text[rows] & (reference_counts > 0)
        if counted.any():
            own = count_tokens(registry.get(spec.id), prompts[rows][counted], cache)
            ratio[counted] = own / reference_counts[counted]
    for ct in np.unique(content[rows][~counted]) if (~counted).any() else ():
        at = ~counted & (content[rows] == ct)
        estimate: RatioEstimate | None = calibration.vs_reference(spec.id, ct)
        if estimate is None:
            raise _calibration_missing(spec, model, ct)
        ratio[at], halfwidth[at], source[at] = estimate.ratio, estimate.log_halfwidth, estimate.source
    return ratio, halfwidth, source


def token_ratios(
    from_model: str,
    to_model: str,
    n: int,
    prompts=None,
    content_type=None,
    calibration: Calibration | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    cache: CountCache | None = None,
) -> TokenRatios:
    """Per-row tokens(to_model) / tokens(from_model) for ``n`` rows; see the module docstring for the methods."""
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
    content = np.where(content == UNKNOWN, ALL, content)

    ratio, low, high = np.ones(n), np.ones(n), np.ones(n)
    method = np.full(n, IDENTITY, dtype=object)
    if spec_from.id == spec_to.id or n == 0:
        return TokenRatios(ratio, low, high, method, content)

    text = _has_text(prompts, n)
    todo = np.ones(n, dtype=bool)
    if spec_from.kind == EXACT and spec_to.kind == EXACT and text.any():
        # Both public: count each prompt with both tokenizers, no reference needed.
        rows = np.flatnonzero(text)
        count_from = count_tokens(registry.get(spec_from.id), prompts[rows], cache)
        count_to = count_tokens(registry.get(spec_to.id), prompts[rows], cache)
        ok = count_from > 0
        done = rows[ok]
        ratio[done] = count_to[ok] / count_from[ok]
        low[done], high[done], method[done] = ratio[done], ratio[done], METHOD_EXACT
        todo[done] = False

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
        (r_from, hw_from, src_from), (r_to, hw_to, src_to) = sides
        r = r_to / r_from
        hw = np.sqrt(hw_from**2 + hw_to**2)
        both_default = (src_from == SOURCE_DEFAULT) & (src_to == SOURCE_DEFAULT)
        for ct in np.unique(content[rows][both_default]) if both_default.any() else ():
            # A directly measured transition (e.g. Claude 4.7 / 4.6) beats a ratio of two ratios against o200k.
            direct = calibration.default(spec_to.id, spec_from.id, ct)
            if direct is not None:
                r[both_default & (content[rows] == ct)] = direct.ratio
        any_default = (src_from == SOURCE_DEFAULT) | (src_to == SOURCE_DEFAULT)
        all_exact = (src_from == SOURCE_EXACT) & (src_to == SOURCE_EXACT)
        ratio[rows] = r
        low[rows], high[rows] = r * np.exp(-hw), r * np.exp(hw)
        method[rows] = np.where(all_exact, METHOD_EXACT, np.where(any_default, METHOD_DEFAULT, METHOD_CALIBRATED))
    return TokenRatios(ratio, low, high, method, content)


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
    input_tokens = np.atleast_1d(np.asarray(input_tokens, dtype=np.int64))
    output_tokens = np.atleast_1d(np.asarray(output_tokens, dtype=np.int64))
    if input_tokens.shape != output_tokens.shape:
        raise TokenizerError(
            f"input_tokens and output_tokens must have the same length. Got {input_tokens.size} and "
            f"{output_tokens.size} instead."
        )
    ratios = token_ratios(
        from_model, to_model, input_tokens.size, prompts, content_type, calibration, registry, cache
    )
    identity = ratios.method == IDENTITY
    new_input = np.where(identity, input_tokens, np.rint(input_tokens * ratios.ratio)).astype(np.int64)
    new_output = np.where(identity, output_tokens, np.rint(output_tokens * ratios.ratio)).astype(np.int64)
    return new_input, new_output, ratios.method.astype(str)
