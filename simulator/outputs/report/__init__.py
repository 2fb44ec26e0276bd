"""The weekly premium-model review: ``report.md`` (GitHub) and ``report.html`` (one self-contained file).

``write_report(result, folder)`` is registered in :data:`simulator.outputs.writer.WRITERS`. Charts are PNGs drawn with
matplotlib's Agg backend (imported only here): files under ``report_files/`` for the Markdown, base64 data URIs in
the HTML, so the HTML loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from simulator.outputs.report.content import build_document
from simulator.outputs.report.document import Chart, Document, to_html, to_markdown

CHART_DIR = "report_files"


def render_png(chart: Chart, width_in: float = 9.0, height_in: float = 4.2) -> bytes:
    """PNG bytes of one chart; deterministic (no timestamp or software metadata)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    buf = io.BytesIO()
    with matplotlib.rc_context({"text.parse_math": False}):  # labels are traffic values: plain text, never mathtext
        fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        chart.draw(fig)
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def charts(doc: Document) -> list[Chart]:
    return [b for sec in doc.sections for b in sec.blocks if isinstance(b, Chart)]


def write_report(result, folder: str | Path, include_prompts: bool = False) -> list[Path]:
    """Write report.md, report.html and report_files/*.png into the run folder; returns the paths."""
    from simulator.outputs.files import write_text

    folder = Path(folder)
    index = folder / "routing" / "index.json"
    routing_files = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else {}
    doc = build_document(result, routing_files)
    written: list[Path] = []
    paths: dict[str, str] = {}
    data: dict[str, str] = {}
    for chart in charts(doc):
        png = render_png(chart)
        rel = f"{CHART_DIR}/{chart.key}.png"
        written.append(write_text(folder / rel, png))
        paths[chart.key] = rel
        data[chart.key] = base64.b64encode(png).decode("ascii")
    written.append(write_text(folder / "report.md", to_markdown(doc, paths)))
    written.append(write_text(folder / "report.html", to_html(doc, data)))
    return written


__all__ = ["write_report", "build_document", "render_png"]
