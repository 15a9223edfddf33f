"""The web page in a real headless Chromium against a live `transship ui` server."""

from __future__ import annotations

import html
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tools
from tests.support.images import skopeo_inspect
from tests.web_browser import WINDOW, Browser, chromium_once, running_ui
from transship.bundle.meta import load_meta

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _chromium():
    require_tools("chromium")


def _write_config(path: Path, registries: dict) -> Path:
    path.write_text(yaml.safe_dump({"registries": registries, "maxconn": 2}, sort_keys=False))
    return path


def _options(dom: str, select_id: str) -> list[str]:
    select = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', dom, re.S)
    assert select, dom[:2000]
    return [html.unescape(o) for o in re.findall(r"<option[^>]*>(.*?)</option>", select.group(1))]


def _text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, element_id
    return html.unescape(match.group(1))


def test_page_shows_the_registries_and_speaks_english_or_chinese(tmp_path):
    config = _write_config(
        tmp_path / "transship.yaml",
        {
            "company": {
                "url": "https://registry.company.example",
                "user": "u",
                "password": "pw-hidden-42",
            },
            "site": {"url": "10.0.0.5:5000", "repository": "site/apps"},
        },
    )
    with running_ui(config) as url:
        bare = url.split("?", 1)[0]
        budget = "--virtual-time-budget=5000"
        runs = {  # a fresh profile each, so nothing remembered leaks between runs
            "en": (
                tmp_path / "p-en",
                "--accept-lang=en-US",
                budget,
                WINDOW,
                f"--screenshot={tmp_path / 'en.png'}",
                "--dump-dom",
                url,
            ),
            "zh": (
                tmp_path / "p-zh",
                "--accept-lang=zh-CN",
                budget,
                WINDOW,
                f"--screenshot={tmp_path / 'zh.png'}",
                "--dump-dom",
                url,
            ),
            "no-token": (
                tmp_path / "p-nt",
                "--accept-lang=en-US",
                budget,
                "--dump-dom",
                bare + "?lang=zh",
            ),
        }
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {name: pool.submit(chromium_once, *args) for name, args in runs.items()}
            results = {name: future.result() for name, future in futures.items()}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr[-2000:])

    english = results["en"].stdout
    assert _options(english, "source") == [
        "(as named in each line)",
        "company — registry.company.example",
        "site — 10.0.0.5:5000 (→ site/apps/…)",
    ]
    assert _options(english, "target")[1:] == _options(english, "source")[1:]
    assert _text_of(english, "status") == "Ready"
    assert "Target registry" in english and "目标仓库" not in english
    assert _options(english, "contents") == [
        "Layers as they are (fastest)",
        "Files stored once — smaller, slower (best for USB)",
        "Smallest — slowest",
    ]
    assert "pw-hidden-42" not in english

    chinese = results["zh"].stdout  # the browser prefers Chinese
    assert '<html lang="zh-CN"' in chinese
    assert _text_of(chinese, "status") == "就绪"
    assert "目标仓库" in chinese and "Target registry" not in chinese
    assert _options(chinese, "target")[0] == "（请选择仓库）"
    assert _options(chinese, "target")[1:] == _options(english, "target")[1:]
    assert _options(chinese, "contents")[0] == "层原样保存（最快）"

    no_token = results["no-token"].stdout  # ?lang=zh chosen in the address
    assert "访问令牌" in _text_of(no_token, "banner")
    assert _options(no_token, "source") == ["（按每行中写明的仓库）"]
    assert re.search(r'<button[^>]*id="btn-copy"[^>]*disabled', no_token)

    for shot in ("en.png", "zh.png"):
        data = (tmp_path / shot).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_copy_from_the_page_with_live_progress_then_switch_to_chinese(
    source_registry, fresh_registry, tmp_path
):
    target = fresh_registry()
    config = _write_config(
        tmp_path / "transship.yaml",
        {"src": {"url": f"http://{source_registry.host}"}, "dst": {"url": f"http://{target.host}"}},
    )
    images = "samples/oci-multi:v1\nsamples/docker-single:v1\nsamples/missing:v1\n"
    with running_ui(config) as url:
        browser = Browser(tmp_path / "profile", "--accept-lang=en-US")
        try:
            browser.open(url)
            browser.wait_for("document.querySelectorAll('#target option').length === 3")
            browser.set_value("source", "src")
            browser.set_value("target", "dst")
            browser.set_value("images", images)
            browser.click("btn-copy")
            browser.wait_for(
                "['finished', 'failed-some'].some(c => document.getElementById('status')"
                ".classList.contains(c))"
            )
            assert browser.text("status") == "Finished, with failures"
            counts = {k: browser.text(f"st-{k}") for k in ("total", "success", "invalid", "failed")}
            assert counts == {"total": "3", "success": "2", "invalid": "1", "failed": "0"}
            assert browser.text("progress-pct") == "100%"
            log = browser.text("log")
            assert "OK      samples/oci-multi:v1 -> samples/oci-multi:v1" in log
            assert "INVALID samples/missing:v1" in log and "Done: 2 ok" in log
            failures = browser.evaluate("document.querySelectorAll('#failures tbody tr').length")
            assert failures == 1
            browser.wait_for("document.querySelectorAll('#history tbody tr').length === 1")

            browser.click("lang-zh")
            browser.wait_for("document.getElementById('status').textContent === '已完成，但有失败'")
            assert browser.text("st-success") == "2"
            assert browser.evaluate("document.documentElement.lang") == "zh-CN"
            assert "完成：成功 2，失败 0，无效 1" in browser.text("log")  # the log is redrawn too
            browser.screenshot(tmp_path / "after-copy-zh.png")
            browser.click("lang-en")
            browser.wait_for("document.getElementById('status').textContent.startsWith('Finished')")
            browser.screenshot(tmp_path / "after-copy-en.png")

            browser.set_value("images", "samples/oci-multi:v1\nsamples/docker-single:v1\n")
            browser.set_value("bundle", str(tmp_path / "usb"))
            browser.set_value("contents", "dedup:balanced")
            browser.click("btn-save")
            browser.wait_for(
                "document.getElementById('log').textContent.includes('Bundle written')"
            )
            browser.wait_for("document.getElementById('status').textContent === 'Finished'")
            assert "dedup: " in browser.text("log")
            assert "(files stored once)" in browser.text("history")
            browser.screenshot(tmp_path / "after-save-en.png")
            browser.click("lang-zh")  # the dedup summary and finishing lines follow
            browser.wait_for(
                "document.getElementById('log').textContent.includes('拆分为文件内容')"
            )
            assert "dedup：正在确认值得重建的层能逐位还原" in browser.text("log")
            assert "layers split into file contents" not in browser.text("log")
            browser.click("lang-en")
            browser.wait_for("document.getElementById('log').textContent.includes('split into')")

            browser.click("btn-analyze")
            browser.wait_for("!document.getElementById('report-link').hidden")
            href = browser.evaluate("document.getElementById('report-link').href")
            assert "/report?token=" in href
            browser.wait_for("document.getElementById('status').textContent === 'Finished'")
            assert browser.text("st-success") == "2"
            browser.screenshot(tmp_path / "after-analyze-en.png")
            browser.open(href)
            assert "samples/docker-single:v1" in browser.evaluate("document.body.innerText")
            browser.screenshot(tmp_path / "report.png")
        finally:
            browser.close()
    for name in ("oci-multi", "docker-single"):
        code, out, _ = skopeo_inspect(target, f"samples/{name}:v1", raw=True)
        assert code == 0
        _, expected, _ = skopeo_inspect(source_registry.server, f"samples/{name}:v1", raw=True)
        assert out == expected
    assert (tmp_path / "after-copy-zh.png").read_bytes().startswith(PNG_MAGIC)
    assert "dedup" in load_meta(tmp_path / "usb" / "bundle.meta.json").codec_data
