"""report.html in a real browser: headless Chromium loads it from disk with no network, renders every chart
(non-blank screenshot, every <img> a data: URI) and reports no console errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_TRAFFIC
from simulator.api import run
from simulator.routing.scenario import parse_scenario
from simulator.outputs.writer import write_run

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium'; "
                                                ".ci/run installs it)"),
]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser")
    sc = parse_scenario({"name": "browser", "traffic": str(SMALL_TRAFFIC), "gates": {"min_monthly_savings_usd": 0},
                         "candidates": [{"name": "split", "rules": [{
                             "id": "opus", "when": {"models": ["anthropic-main/claude-opus-4-7"]},
                             "load_balance_targets": [{"target": "anthropic-main/claude-haiku-4-5", "weight": 100}]}]}]},
                        "browser.yaml", out)
    write_run(run(sc), out)
    return out / "report.html"


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_html_references_nothing_outside_the_file(report_html):
    text = report_html.read_text()
    assert "<script" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert "@import" not in text and "url(" not in text


def test_screenshot_is_not_blank_and_no_console_errors(report_html, tmp_path):
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", report_html.as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] == 4000 and pixels.shape[1] == 1280
    assert float(np.std(pixels[..., :3])) > 0.05  # a blank page is one colour
    # Chart colours (the blue bars) appear: the data: images decoded and rendered.
    blue = (np.abs(pixels[..., 0] - 0x09 / 255) < 0.05) & (np.abs(pixels[..., 2] - 0xda / 255) < 0.05)
    assert blue.sum() > 1000
    errors = [line for line in proc.stderr.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line
              or "Failed to load resource" in line]
    assert errors == []


def test_dom_has_every_chart_as_a_data_uri(report_html, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", report_html.as_uri())
    dom = proc.stdout
    imgs = re.findall(r"<img[^>]*>", dom)
    assert len(imgs) >= 4
    assert all('src="data:image/png;base64,' in tag for tag in imgs)
    assert "Headline" in dom and "What to do next" in dom
