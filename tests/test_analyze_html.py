"""The HTML report: self-contained, charts that match the figures, and a real browser
(headless Chromium) lays it out with every chart visible and nothing overflowing."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.analyze_images import MemorySource, planted_fleet
from transship.slim.analyze import AnalysisReport, AnalyzeOptions, ImageInput, analyze_images
from transship.slim.analyze.report_html import render_html

MEASURE = """
<script>
(() => {
  const box = (el) => { const b = el.getBoundingClientRect(); return [Math.round(b.width), Math.round(b.height)]; };
  const out = {
    lang: document.documentElement.lang,
    sections: [...document.querySelectorAll('section')].map((s) => s.id),
    charts: [...document.querySelectorAll('svg.chart')].map((s) => ({
      section: (s.closest('section') || {}).id || '',
      box: box(s),
      rects: s.querySelectorAll('rect').length,
    })),
    labels: [...document.querySelectorAll('svg.chart text')].map((t) => t.getComputedTextLength()),
    tables: document.querySelectorAll('table').length,
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    wasteBars: [...document.querySelectorAll('#waste rect')].map((r) => [
      r.getBoundingClientRect().width, r.querySelector('title').textContent]),
  };
  document.body.setAttribute('data-measure', JSON.stringify(out));
})();
</script>
"""


@pytest.fixture(scope="module")
def report() -> AnalysisReport:
    src = MemorySource()
    for name, image in planted_fleet().items():
        repository, tag = name.split(":")
        src.add(repository, tag, image)
    names = ["svc-a:1", "svc-b:1", "svc-c:1", "svc-a:2"]
    inputs = [ImageInput(n, src, *n.split(":")) for n in names]
    return analyze_images(inputs, AnalyzeOptions(compare=("svc-a:1", "svc-a:2")))


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    # tests/support/system.sh installs it; it is optional there because not every
    # Debian mirror or architecture has it.
    pytest.skip("chromium is not installed and could not be (apt-get install chromium)")


def _browser(args: list[str], page: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def _measure(page_html: str, tmp_path: Path) -> dict:
    page = tmp_path / "measured.html"
    page.write_text(page_html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    result = _browser(["--dump-dom", "--virtual-time-budget=3000"], page, tmp_path)
    match = re.search(r'data-measure="([^"]*)"', result.stdout)
    assert match, f"chromium did not render the page: {result.stderr[-2000:]}"
    return json.loads(html_lib.unescape(match.group(1)))


def test_report_is_self_contained(report: AnalysisReport) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "<script" not in page  # nothing to run: charts are plain SVG
    for name in ("svc-a:1", "svc-b:1", "svc-c:1", "svc-a:2"):
        assert name in page


def test_charts_show_the_figures(report: AnalysisReport) -> None:
    page = render_html(report)
    waste = page[page.index('id="waste"') : page.index('id="sharing"')]
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', waste)]
    # One green and one red bar per image, on a shared scale: widths follow the bytes.
    expected = []
    for image in report.images:
        expected += [image.waste.final_bytes, image.waste.wasted_bytes]
    drawn = widths
    nonzero = [e for e in expected if e]
    assert len(drawn) == len(nonzero)
    scale = drawn[0] / nonzero[0]
    for value, width in zip(nonzero, drawn, strict=True):
        assert width == pytest.approx(max(value * scale, 0.6), rel=0.01, abs=0.6)


def test_chromium_lays_out_every_chart(report: AnalysisReport, tmp_path: Path) -> None:
    measured = _measure(render_html(report), tmp_path)
    assert measured["lang"] == "en"
    assert measured["sections"] == ["overview", "layers", "waste", "sharing", "offload", "compare"]
    sections_with_charts = {c["section"] for c in measured["charts"]}
    assert {"layers", "waste", "sharing", "offload", "compare"} <= sections_with_charts
    for chart in measured["charts"]:
        width, height = chart["box"]
        assert width > 200 and height > 30, chart
        assert chart["rects"] > 0 or chart["section"] == "offload", chart
    assert all(length > 0 for length in measured["labels"])
    assert measured["pageWidth"] <= measured["viewport"], "the page scrolls sideways"
    assert measured["tables"] >= 10
    # The rendered waste bars keep the proportions of the numbers.
    bars = measured["wasteBars"]
    final_a = report.images[0].waste.final_bytes
    wasted_a = report.images[0].waste.wasted_bytes
    assert bars[1][0] / bars[0][0] == pytest.approx(wasted_a / final_a, rel=0.02)


def test_chinese_report_renders(
    report: AnalysisReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSSHIP_LANG", "zh_CN.UTF-8")
    page = render_html(report)
    assert '<html lang="zh-CN">' in page
    assert "镜像分析" in page and "下沉建议" in page and "冷热分离" in page
    measured = _measure(page, tmp_path)
    assert measured["lang"] == "zh-CN"
    assert measured["pageWidth"] <= measured["viewport"]
    assert all(length > 0 for length in measured["labels"])


def test_screenshot(report: AnalysisReport, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"
    result = _browser([f"--screenshot={shot}"], page, tmp_path)
    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000  # a page full of charts, not blank


def test_long_registry_names_are_shortened_in_charts(report: AnalysisReport) -> None:
    renamed = report.model_copy(deep=True)
    for image in renamed.images:
        image.name = f"docker://registry.example.com:5000/team/services/{image.name}"
    page = render_html(renamed)
    layers = page[page.index('id="layers"') : page.index('id="waste"')]
    labels = re.findall(r'class="lbl">([^<]*)<', layers)
    assert labels == [i.name.rsplit("/", 1)[1] for i in renamed.images]
