"""A tiny document model (sections of paragraphs, bullet lists, tables and charts) rendered to Markdown and HTML.

Keeping the content separate from the two renderers means report.md and report.html always say the same thing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from simulator.outputs import escape


@dataclasses.dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclasses.dataclass
class Chart:
    """``draw(fig)`` fills a matplotlib Figure; ``key`` names the PNG file."""

    key: str
    title: str
    draw: Callable[[Any], None]
    alt: str = ""


@dataclasses.dataclass
class Section:
    title: str
    blocks: list[Any] = dataclasses.field(default_factory=list)  # str (paragraph) | list[str] (bullets) | Table | Chart
    anchor: str = ""

    def add(self, block: Any) -> Section:
        self.blocks.append(block)
        return self


@dataclasses.dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]


class Markup(str):
    """A table cell or header written in the document's inline markup (e.g. `code` spans) by the template itself;
    every other string cell is shown literally."""


def _cell(value: Any) -> str:
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str):
        return escape.markdown(value, table_cell=True)
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


#: The document's inline markup is a subset of Markdown: `code`, **bold**, and backslash-escaped punctuation.
_SEGMENT = re.compile(r"(\\[!-/:-@\[-`{-~]|`|\*\*)")


def literal(value: Any) -> str:
    """A traffic or scenario value inside a paragraph, bullet or cell, as the document's inline markup: its
    punctuation backslash-escaped (:func:`escape.markdown`), so every renderer shows it as written (a backtick,
    ``**``, ``<script>`` or a newline in it is shown or blanked, never interpreted). Plain names read unchanged."""
    return escape.markdown(value)


def _segments(text: str) -> list[tuple[str, bool, bool, bool]]:
    """(text, is_literal, in_code, in_bold) runs of the document's inline markup."""
    out, code, bold = [], False, False
    for part in _SEGMENT.split(text):
        if part == "`":
            code = not code
        elif part == "**" and not code:
            bold = not bold
        elif len(part) == 2 and part[0] == "\\" and _SEGMENT.fullmatch(part):
            out.append((part[1], True, code, bold))
        elif part:
            out.append((part, False, code, bold))
    return out


def _runs(text: str):
    """Consecutive segments with the same code/bold state, as (parts, in_code, in_bold)."""
    runs: list[tuple[list[tuple[str, bool]], bool, bool]] = []
    for part, lit, code, bold in _segments(text):
        if runs and runs[-1][1:] == (code, bold):
            runs[-1][0].append((part, lit))
        else:
            runs.append(([(part, lit)], code, bold))
    return runs


def _template_md(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text).replace("<", "\\<")


def inline_markdown(text: str) -> str:
    """The document's inline markup as GitHub Markdown: escaped characters stay escaped, code spans go through
    :func:`escape.markdown_code`; the template's own text only loses control characters and raw-HTML ``<``."""
    out = []
    for parts, code, bold in _runs(text):
        if code:
            piece = escape.markdown_code("".join(p for p, _ in parts))
        else:
            piece = "".join("\\" + p if lit else _template_md(p) for p, lit in parts)
        out.append(f"**{piece}**" if bold else piece)
    return "".join(out)


def inline_html(text: str) -> str:
    """The document's inline markup as HTML: every piece through :func:`escape.html`."""
    out = []
    for parts, code, bold in _runs(text):
        piece = escape.html("".join(p for p, _ in parts))
        piece = f"<code>{piece}</code>" if code else piece
        out.append(f"<strong>{piece}</strong>" if bold else piece)
    return "".join(out)


def plain(text: str) -> str:
    """The document's inline markup as plain text (markup removed, literals kept)."""
    return "".join(p for p, *_ in _segments(text))


def _cell_markdown(value: Any) -> str:
    """A table cell as GitHub Markdown: every ``|`` not already escaped is escaped (a cell's literal text arrives
    with its own escaped; a template's ``Markup`` may carry a bare one)."""
    return re.sub(r"(?<!\\)\|", r"\\|", inline_markdown(_cell(value)))


def to_markdown(doc: Document, chart_paths: dict[str, str]) -> str:
    """Markdown for GitHub; charts link to PNG files beside the report (GitHub does not render data: images)."""
    out = [f"# {inline_markdown(doc.title)}", "", inline_markdown(doc.subtitle), ""]
    for sec in doc.sections:
        out += [f"## {inline_markdown(sec.title)}", ""]
        for block in sec.blocks:
            if isinstance(block, str):
                out += [inline_markdown(block), ""]
            elif isinstance(block, list):
                out += [f"- {inline_markdown(item)}" for item in block] + [""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [f"**{inline_markdown(block.caption)}**", ""]
                heads = (_cell_markdown(h) for h in block.headers)
                out.append("| " + " | ".join(heads) + " |")
                out.append("|" + "|".join("---" for _ in block.headers) + "|")
                for row in block.rows:
                    out.append("| " + " | ".join(_cell_markdown(c) for c in row) + " |")
                out.append("")
            elif isinstance(block, Chart) and block.key in chart_paths:
                out += [f"![{escape.markdown(plain(block.alt or block.title))}]({chart_paths[block.key]})", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1f24;
line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;
margin-top:2rem}.sub{color:#57606a}table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;height:auto;display:block;margin:.5rem 0}
caption{text-align:left;font-weight:600;padding:.2rem 0}code{background:#f6f8fa;padding:0 .2rem;border-radius:3px}
nav a{margin-right:.8rem}.scroll{overflow-x:auto;max-width:100%}
"""


def to_html(doc: Document, chart_data: dict[str, str]) -> str:
    """One self-contained HTML file: inline CSS, charts as data: URIs, no scripts, nothing fetched."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape.html(plain(doc.title))}</title><style>{_CSS}</style></head><body>",
           f"<h1>{inline_html(doc.title)}</h1>", f'<p class="sub">{inline_html(doc.subtitle)}</p>', "<nav>"]
    out += [f'<a href="#{s.anchor}">{inline_html(s.title)}</a>' for s in doc.sections]
    out.append("</nav>")
    for sec in doc.sections:
        out.append(f'<section id="{sec.anchor}"><h2>{inline_html(sec.title)}</h2>')
        for block in sec.blocks:
            if isinstance(block, str):
                out.append(f"<p>{inline_html(block)}</p>")
            elif isinstance(block, list):
                out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block) + "</ul>")
            elif isinstance(block, Table):
                rows = []
                for row in block.rows:
                    cells = "".join(
                        f'<td class="num">{inline_html(_cell(c))}</td>' if isinstance(c, (int, float))
                        and not isinstance(c, bool) else f"<td>{inline_html(_cell(c))}</td>" for c in row)
                    rows.append(f"<tr>{cells}</tr>")
                cap = f"<caption>{inline_html(block.caption)}</caption>" if block.caption else ""
                head = "".join(f"<th>{inline_html(_cell(h))}</th>" for h in block.headers)
                out.append(f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
                           f"<tbody>{''.join(rows)}</tbody></table></div>")  # wide tables scroll, not overflow
            elif isinstance(block, Chart) and block.key in chart_data:
                out.append(f'<figure><img alt="{escape.html(plain(block.alt or block.title))}" '
                           f'src="data:image/png;base64,{chart_data[block.key]}"></figure>')
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
