"""A tiny document model (sections of paragraphs, bullet lists, tables and charts) rendered to Markdown and HTML.

Keeping the content separate from the two renderers means report.md and report.html always say the same thing.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable
from typing import Any


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


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, chart_paths: dict[str, str]) -> str:
    """Markdown for GitHub; charts link to PNG files beside the report (GitHub does not render data: images)."""
    out = [f"# {doc.title}", "", doc.subtitle, ""]
    for sec in doc.sections:
        out += [f"## {sec.title}", ""]
        for block in sec.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, list):
                out += [f"- {item}" for item in block] + [""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [f"**{block.caption}**", ""]
                out.append("| " + " | ".join(_md_escape(h) for h in block.headers) + " |")
                out.append("|" + "|".join("---" for _ in block.headers) + "|")
                for row in block.rows:
                    out.append("| " + " | ".join(_md_escape(_cell(c)) for c in row) + " |")
                out.append("")
            elif isinstance(block, Chart) and block.key in chart_paths:
                out += [f"![{block.alt or block.title}]({chart_paths[block.key]})", ""]
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


def _inline(text: str) -> str:
    """Escape text and turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)


def to_html(doc: Document, chart_data: dict[str, str]) -> str:
    """One self-contained HTML file: inline CSS, charts as data: URIs, no scripts, nothing fetched."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(doc.title)}</h1>", f'<p class="sub">{_inline(doc.subtitle)}</p>', "<nav>"]
    out += [f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections]
    out.append("</nav>")
    for sec in doc.sections:
        out.append(f'<section id="{sec.anchor}"><h2>{html.escape(sec.title)}</h2>')
        for block in sec.blocks:
            if isinstance(block, str):
                out.append(f"<p>{_inline(block)}</p>")
            elif isinstance(block, list):
                out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block) + "</ul>")
            elif isinstance(block, Table):
                rows = []
                for row in block.rows:
                    cells = "".join(
                        f'<td class="num">{html.escape(_cell(c))}</td>' if isinstance(c, (int, float))
                        and not isinstance(c, bool) else f"<td>{_inline(_cell(c))}</td>" for c in row)
                    rows.append(f"<tr>{cells}</tr>")
                cap = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                out.append(f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
                           f"<tbody>{''.join(rows)}</tbody></table></div>")  # wide tables scroll, not overflow
            elif isinstance(block, Chart) and block.key in chart_data:
                out.append(f'<figure><img alt="{html.escape(block.alt or block.title)}" '
                           f'src="data:image/png;base64,{chart_data[block.key]}"></figure>')
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
