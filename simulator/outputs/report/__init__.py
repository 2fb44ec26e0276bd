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

from simulator.memory import no_cyclic_gc
from simulator.outputs.report.content import build_document
from simulator.outputs.report.document import Chart, Document, to_html, to_markdown

CHART_DIR = "report_files"


#: Space around the axes' labels and between the figure's edge and any text, in inches.
PAD_IN = 0.1


def render_png(chart: Chart, width_in: float = 9.0, height_in: float = 4.2, dpi: int = 100) -> bytes:
    """PNG bytes of one chart; deterministic (no timestamp or software metadata).

    Drawn once: no layout engine (constrained layout draws every text twice); the margins come from the font
    metrics of the labels the chart actually has (:func:`_fit_margins`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    with matplotlib.rc_context({"text.parse_math": False}):  # labels are traffic values: plain text, never mathtext
        fig = Figure(figsize=(width_in, height_in), dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        chart.draw(fig)
        _fit_margins(fig, canvas.get_renderer())
        canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    if image.getextrema()[3] == (255, 255):  # opaque, as the figure's background is: the same pixels without alpha
        image = image.convert("RGB")  # a quarter fewer bytes to filter and compress, PNG ~12% smaller
    buf = io.BytesIO()
    # zlib level 1: flat-colour charts come out ~9% larger than at the default 6 for a third of the time
    image.save(buf, format="png", compress_level=1, dpi=(dpi, dpi))
    return buf.getvalue()


def _fit_margins(fig, renderer) -> None:
    """Set the one axes' margins so its tick labels, axis labels and title fit: each text measured once through
    matplotlib's cached text layout (which the draw then reuses: one FreeType layout per string, not two), not by a
    layout pass over every artist."""
    if len(fig.axes) != 1:  # every report chart has one axes; anything else keeps matplotlib's default margins
        return
    (ax,) = fig.axes
    width_in, height_in = fig.get_size_inches()
    px = fig.dpi

    def size_in(text) -> tuple[float, float]:
        """(width, height) in inches of a Text as drawn (rotation and line spacing included); (0, 0) when empty or
        hidden."""
        if not text.get_text() or not text.get_visible():
            return 0.0, 0.0
        box = text.get_window_extent(renderer)
        return box.width / px, box.height / px

    def ticks(axis) -> tuple[float, float, float, str]:
        """Widest and tallest tick label, the tick length plus its label pad (inches), the labels' alignment."""
        labels = axis.get_ticklabels()
        sizes = [size_in(t) for t in labels]
        major = axis.get_major_ticks()
        pad = (major[0].get_tick_padding() + major[0].get_pad()) / 72 if major else 0.0
        align = labels[0].get_horizontalalignment() if labels else "center"
        return max((w for w, _ in sizes), default=0.0), max((h for _, h in sizes), default=0.0), pad, align

    yw, _, ypad, _ = ticks(ax.yaxis)
    xw, xh, xpad, xalign = ticks(ax.xaxis)
    ylabel_w = size_in(ax.yaxis.label)[0]
    xlabel_h = size_in(ax.xaxis.label)[1]
    title_h = size_in(ax.title)[1]
    # x tick labels reach past the axes' ends: by half their width when centred, all of it on one side otherwise
    beyond_left = {"center": xw / 2, "right": xw}.get(xalign, 0.0)
    beyond_right = {"center": xw / 2, "left": xw}.get(xalign, 0.0)
    left = max(PAD_IN + ylabel_w + (PAD_IN if ylabel_w else 0) + yw + ypad, PAD_IN + beyond_left)
    bottom = PAD_IN + xlabel_h + (PAD_IN if xlabel_h else 0) + xh + xpad
    top = PAD_IN + title_h + (2 * PAD_IN if title_h else 0)
    right = PAD_IN + beyond_right
    # the axes keep at least a third of each side: labels past that are cut at the edge rather than the plot lost
    scale_w = min(1.0, (2 / 3) * width_in / (left + right))
    scale_h = min(1.0, (2 / 3) * height_in / (bottom + top))
    fig.subplots_adjust(left=scale_w * left / width_in, right=1 - scale_w * right / width_in,
                        bottom=scale_h * bottom / height_in, top=1 - scale_h * top / height_in)


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
    with no_cyclic_gc():  # matplotlib's import and artists would trigger a full collection over the replay's heap
        pngs = [(chart.key, render_png(chart)) for chart in charts(doc)]
    for key, png in pngs:
        rel = f"{CHART_DIR}/{key}.png"
        written.append(write_text(folder / rel, png))
        paths[key] = rel
        data[key] = base64.b64encode(png).decode("ascii")
    written.append(write_text(folder / "report.md", to_markdown(doc, paths)))
    written.append(write_text(folder / "report.html", to_html(doc, data)))
    return written


__all__ = ["write_report", "build_document", "render_png"]
