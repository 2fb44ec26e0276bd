"""Cheap deterministic content classes for drift ratios: ``prose``, ``code`` or ``non_latin``.

Token ratios between tokenizers differ by content: Claude 4.7 / 4.6 is about 1.38 on English prose, 1.32 on code
and about 1.0 on CJK, Arabic or Devanagari. Only the first ``SAMPLE_CHARS`` characters are inspected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from simulator.tokens.counting import unique_texts

CONTENT_TYPES = ("prose", "code", "non_latin")
UNKNOWN = "unknown"  # a missing text
SAMPLE_CHARS = 4096
NON_LATIN_SHARE = 0.3  # of letters outside the Latin script blocks
CODE_SYMBOL_SHARE = 0.06  # of non-space characters that are code punctuation
CODE_LINE_SHARE = 0.3  # of non-empty lines that look like code

# Character classes matched as runs: counting the characters of maximal runs gives the same count as one match per
# character with far fewer match objects (classification is most of a calibration's time otherwise).
_LETTER = re.compile(r"[^\W\d_]+")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00AA\u00BA\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF]+")
_SPACE = re.compile(r"\s+")  # str.isspace() characters
_CODE_SYMBOL_BYTES = b"{}()[];=<>|&*/\\$#@^~`"  # code punctuation
_ASCII_SPACE_BYTES = bytes(i for i in range(128) if chr(i).isspace())  # what str.split() splits ASCII text on
# A code-like line: one of these openings after leading space, ends in ``;`` or ``{`` (trailing space aside), or holds
# ``=>``, ``->``, ``::`` or ``==`` anywhere. Tested as an anchored match plus substring tests: the same lines as one
# unanchored regex search per line, in a fraction of the time (that search was most of a calibration's time).
_CODE_LINE_START = re.compile(
    r"\s*(?:def |class |import |from \S+ import|return\b|if\s*\(|for\s*\(|while\s*\(|#include|function\b|const |"
    r"let |var |public |private |fn |func |package |using |SELECT |INSERT |\}|\{|//|/\*|\*/|@\w)"
)
_CODE_LINE_END = (";", "{")


def code_line(line: str) -> bool:
    """Whether one line (no line break in it) looks like code."""
    return ("=>" in line or "->" in line or "::" in line or "==" in line
            or line.rstrip().endswith(_CODE_LINE_END) or _CODE_LINE_START.match(line) is not None)


@lru_cache(maxsize=1 << 16)
def classify_text(text: str) -> str:
    """``non_latin`` if >= 30% of letters are non-Latin, else ``code`` on punctuation density or code-like lines."""
    sample = text[:SAMPLE_CHARS]
    # non_space counts the characters str.split() keeps (re's \s and str.split both mean str.isspace()), by deleting
    # bytes or through a code-point table instead of joining the split text
    if sample.isascii():
        # Every ASCII letter is Latin, so such a text is never non_latin; its code punctuation is counted by deleting
        # bytes (a table lookup) instead of matching runs: the same counts, in a fraction of the time.
        raw = sample.encode("ascii")
        symbols = len(raw) - len(raw.translate(None, _CODE_SYMBOL_BYTES))
        non_space = len(raw.translate(None, _ASCII_SPACE_BYTES))
    else:
        letters, latin, spaces = _letters(sample)
        if letters and (letters - latin) / letters >= NON_LATIN_SHARE:
            return "non_latin"
        # the code punctuation is ASCII, and in UTF-8 an ASCII byte is always that character: count by deleting bytes
        raw = sample.encode("utf-8", "surrogatepass")
        symbols = len(raw) - len(raw.translate(None, _CODE_SYMBOL_BYTES))
        non_space = len(sample) - spaces
    if non_space and symbols / non_space >= CODE_SYMBOL_SHARE:
        return "code"
    lines = [line for line in sample.splitlines() if line.strip()]
    if lines and sum(map(code_line, lines)) / len(lines) >= CODE_LINE_SHARE:
        return "code"
    return "prose"


@lru_cache(maxsize=1)
def _plane_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per Basic Multilingual Plane code point: whether ``_LETTER`` matches it, whether ``_LATIN_LETTER`` does
    (found by the patterns themselves over all 65,536 characters, so the tables are the patterns), and whether it is
    whitespace (``_SPACE``: no character beyond the plane is)."""
    plane = "".join(map(chr, range(0x10000)))
    tables = []
    for run in (_LETTER, _LATIN_LETTER, _SPACE):
        table = np.zeros(0x10000, dtype=bool)
        for m in run.finditer(plane):
            table[m.start():m.end()] = True
        tables.append(table)
    return tables[0], tables[1], tables[2]


def _letters(text: str) -> tuple[int, int, int]:
    """(letters, Latin letters, whitespace characters) of a text: what ``_LETTER`` and ``_LATIN_LETTER`` match and
    ``str.isspace()`` accepts, counted through per-code-point tables (a regex over the runs of a non-ASCII text cost a
    millisecond a text); characters beyond the BMP (emoji, rare CJK) are matched one by one, and none of them is
    Latin or whitespace."""
    letter, latin, space = _plane_tables()
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    beyond = points > 0xFFFF
    if beyond.any():
        extra = sum(_LETTER.fullmatch(chr(p)) is not None for p in points[beyond].tolist())
        points = points[~beyond]
    else:
        extra = 0
    return (int(np.count_nonzero(letter[points])) + extra, int(np.count_nonzero(latin[points])),
            int(np.count_nonzero(space[points])))


def classify_content(texts: Sequence[str | None]) -> np.ndarray:
    """Content class per text (object array); ``unknown`` where the text is missing. Each distinct text once."""
    codes, uniques = unique_texts(texts)
    labels = np.array([classify_text(t) for t in uniques] + [UNKNOWN], dtype=object)
    return labels[codes]  # code -1 picks the trailing UNKNOWN
