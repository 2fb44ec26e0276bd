"""One escaping function per output format for text that comes from traffic or the scenario.

Names of candidates, scenarios, rules, models, teams, workflow tags and metadata values are user data. Each writer
passes them through the function of its format, so that a value can neither add structure (a YAML key, a Markdown
bullet, an HTML element, an XML element, a terminal escape sequence) nor break the file:

=================  ==========================================================================================
format             function
=================  ==========================================================================================
YAML comment       :func:`yaml_comment` (gateway config headers, ``# not expressible`` lines, recommend)
Markdown           :func:`markdown` (prose and table cells), :func:`markdown_code` (a code span)
HTML               :func:`html` (text and attribute values)
JUnit XML          :func:`xml` (characters XML 1.0 cannot carry; ElementTree escapes ``<&>"`` itself)
terminal           :func:`terminal` (console tables and ``Error:`` lines: one line, no escape sequences)
chart label        :func:`chart_label` (matplotlib text, drawn with mathtext off)
=================  ==========================================================================================
"""

from __future__ import annotations

import html as _html
import re

#: C0 and C1 controls, DEL, line/paragraph separators, BOM, and the bidirectional overrides and isolates that
#: reorder what a reader sees (the "Trojan source" characters).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\u202a-\u202e\u2066-\u2069]")
#: Escaped anywhere: backslash, code, emphasis (``_`` only at a word edge: ``snake_case`` stays readable), links,
#: raw HTML (``<``), strikethrough and entities. ``$`` is left alone: money reads ``$1.00`` and GitHub math in a
#: value is cosmetic, not structure.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
#: What would start a block at the beginning of a line (CommonMark): an ATX heading (``#`` to ``######`` then a
#: space or the end), a quote, a bullet (``-``/``+`` then a space or the end), a thematic break or setext underline
#: (only ``-`` or ``=``), and an ordered item (``1.``/``1)`` then a space or the end). ``-0.34 pp`` or ``71.5%``
#: start nothing and stay as written.
_MD_BLOCK_MARK = re.compile(r"^(\s*)(?=#{1,6}(?:\s|$)|>|[+\-](?:\s|$)|-+\s*$|=+\s*$)([#>+=\-])")
_MD_ORDERED = re.compile(r"^(\s*\d{1,9})([.)])(?=\s|$)")
#: Four leading spaces would make an indented code block: one is kept.
_MD_INDENT = re.compile(r"^\s{4,}")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_VISIBLE = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match) -> str:
    ch = match.group(0)
    return _VISIBLE.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def _cut(text: str, max_chars: int | None) -> str:
    return text if max_chars is None or len(text) <= max_chars else text[: max_chars - 3] + "..."


def yaml_comment(text: object, max_chars: int = 500) -> str:
    """``text`` as the body of a one-line YAML comment: control characters, newlines and line separators become
    a space (``\\n`` inside a name cannot start a new YAML line), and it is cut at ``max_chars``.

    Example: ``"# " + yaml_comment("a\\nrules: []")`` -> ``"# a rules: []"``.
    """
    return _cut(_CONTROL.sub(" ", str(text)), max_chars)


def markdown(text: object, max_chars: int | None = None, table_cell: bool = False) -> str:
    """``text`` as literal Markdown (GitHub flavour) on one line: the characters Markdown or raw HTML could read
    are backslash-escaped, as is a leading ``#``/``-``/``>``/``1.`` that would start a block (``-0.3`` starts
    none and is left alone), and control characters become a space. A ``table_cell`` holds inline content only:
    ``|`` is escaped and block starts are not.

    Example: ``markdown("<script>`x`")`` -> ``"\\<script>\\`x\\`"``.
    """
    out = _MD_SPECIAL.sub(r"\\\1", _cut(_CONTROL.sub(" ", str(text)), max_chars))
    if table_cell:  # a GFM table cell holds inline content only: no block can start there
        return out.replace("|", "\\|")
    return _MD_ORDERED.sub(r"\1\\\2", _MD_BLOCK_MARK.sub(r"\1\\\2", _MD_INDENT.sub(" ", out)))


def markdown_code(text: object, max_chars: int | None = None) -> str:
    """``text`` as one Markdown code span: the fence is one backtick longer than the longest run inside, so a
    backtick cannot close it; control characters become a space.

    Example: ``markdown_code("a`b")`` -> ``"`` a`b ``"``.
    """
    body = _cut(_CONTROL.sub(" ", str(text)), max_chars)
    runs = [len(r) for r in re.findall(r"`+", body)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs or body.startswith(" ") or body.endswith(" ") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def html(text: object, max_chars: int | None = None) -> str:
    """``text`` as HTML text or a quoted attribute value: ``<>&"'`` as entities, control characters a space.

    Example: ``html("<img onerror=x>")`` -> ``"&lt;img onerror=x&gt;"``.
    """
    return _html.escape(_cut(_CONTROL.sub(" ", str(text)), max_chars), quote=True)


def xml(text: object, max_chars: int | None = None) -> str:
    """``text`` with the characters XML 1.0 cannot carry (ESC, VT, other C0/C1 controls, lone surrogates) shown as
    ``\\xNN``; ElementTree escapes markup characters itself. Example: ``xml("a\\x1bb")`` -> ``"a\\\\x1bb"``."""
    return _XML_INVALID.sub(_visible, _cut(str(text), max_chars))


def terminal(text: object, max_chars: int | None = None) -> str:
    """``text`` for one terminal line: newlines, ESC (ANSI/OSC sequences), other controls and bidirectional
    overrides shown as visible ``\\n`` / ``\\x1b`` / ``\\u202e``, so a value can neither add a line nor drive the
    terminal. Example: ``terminal("a\\x1b]8;;x\\x07\\nb")`` -> ``"a\\\\x1b]8;;x\\\\x07\\\\nb"``."""
    return _CONTROL.sub(_visible, _cut(str(text), max_chars))


def chart_label(text: object, max_chars: int | None = 60) -> str:
    """``text`` as a plain matplotlib label: control characters a space, cut at ``max_chars``. Charts are drawn with
    ``text.parse_math`` off (:func:`simulator.outputs.report.render_png`), so ``$...$`` is shown, never parsed.

    Example: ``chart_label("a\\nb")`` -> ``"a b"``.
    """
    return _cut(_CONTROL.sub(" ", str(text)), max_chars)
