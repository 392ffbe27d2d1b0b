"""The reports in a real browser (headless Chromium through Playwright): they render without
console errors, a model output carrying <script> and <img onerror> stays text and never runs,
the flipped-example filters work, and the page still works with JavaScript off.

Set HARNESS_REPORT_SCREENSHOTS=DIR to keep the screenshots for a look."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import BROWSER_MARKS

from tests.report.recorded import XSS

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def pages(recorded, tmp_path_factory):
    from harness.registry import Registry
    from harness.report import write_run_report

    out = tmp_path_factory.mktemp("browser-reports")
    with Registry(recorded["registry"]) as reg:
        run = write_run_report(recorded["run_id"], registry=reg, out_dir=out, run_dir=recorded["folder"])
    return {"run": run}


class Watch:
    """Console messages, uncaught errors and dialogs (alert/confirm) of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

        def on_dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)


def screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("HARNESS_REPORT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def test_run_report_renders_cleanly_and_payload_stays_text(browser, pages, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(pages["run"].as_uri())
    page.wait_for_load_state("load")
    screenshot(page, tmp_path, "run-report.png")

    assert watch.errors == [] and watch.dialogs == []
    assert requests == [pages["run"].as_uri()]  # nothing else is fetched: no CDN, fonts or images
    card = page.locator("article.flip", has_text="m-03")
    assert XSS in card.inner_text()  # shown literally, as text
    assert page.locator("img").count() == 0 and page.locator("img[src=x]").count() == 0
    assert page.locator("script").count() == 1  # only the report's own filter script
    assert page.evaluate("document.querySelectorAll('[onerror], [onload], [onclick]').length") == 0
    # every section is there and the charts have real size
    for section in ("summary", "gate", "metrics", "slices", "latency", "training", "data", "flips"):
        assert page.locator(f"#{section}").is_visible()
    box = page.locator("#metrics svg.chart").first.bounding_box()
    assert box["width"] > 500 and box["height"] > 80


def test_flipped_examples_filter(browser, pages):
    page = browser.new_page()
    watch = Watch(page)
    page.goto(pages["run"].as_uri())
    cards = page.locator("article.flip")
    assert cards.count() == 3 and page.locator("#flip-filters").is_visible()
    assert page.locator("#flip-count").inner_text() == "3 of 3 shown"
    page.select_option("select[name=direction]", "regressed")
    assert page.locator("article.flip:visible").count() == 1
    assert page.locator("#flip-count").inner_text() == "1 of 3 shown"
    page.select_option("select[name=direction]", "")
    page.select_option("select[name=check]", "contains")
    assert page.locator("article.flip:visible").count() == 2
    page.select_option("select[name=slice]", "difficulty=hard")
    visible = page.locator("article.flip:visible")
    assert visible.count() == 1 and "m-03" in visible.inner_text()
    page.select_option("select[name=suite]", "mini")
    assert page.locator("article.flip:visible").count() == 1
    assert watch.errors == [] and watch.dialogs == []


def test_report_works_with_javascript_off(browser, pages, tmp_path):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    watch = Watch(page)
    page.goto(pages["run"].as_uri())
    assert page.locator("article.flip:visible").count() == 3  # every flipped case shown
    assert not page.locator("#flip-filters").is_visible()  # controls that need a script stay hidden
    assert XSS in page.locator("article.flip", has_text="m-03").inner_text()
    screenshot(page, tmp_path, "run-report-noscript.png")
    assert watch.errors == [] and watch.dialogs == []
    context.close()


def test_channel_page_renders_cleanly(browser, tmp_path):
    from harness.registry import Registry
    from harness.report import write_channel_report
    from tests.registry.conftest import BASE, fake_adapter

    with Registry(tmp_path / "registry.db") as reg:
        reg.register_base_model("smollm2-135m-instruct", BASE)
        for i, rate in enumerate([0.6, 0.7]):
            run_id = reg.create_run({"seed": i})
            reg.add_adapter(fake_adapter(tmp_path / f"a{i}", seed=i), method="lora", base_fingerprint=BASE, run_id=run_id)
            reg.record_eval(run_id, role="candidate", suite="mini", suite_hash="s", metrics={"mini/pass_rate": rate},
                            results_path="", results_hash="", model_fingerprint=BASE, adapter_hash=None)
            reg.record_gate(run_id, {"passed": True}, True)
            reg.update_run(run_id, status="finished")
            reg.promote(run_id, "production")
        reg.rollback("production", reason="<img src=x onerror=alert(4)>")
        path = write_channel_report("production", registry=reg, out_dir=tmp_path / "r")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    page.goto(path.as_uri())
    screenshot(page, tmp_path, "channel.png")
    assert watch.errors == [] and watch.dialogs == []
    assert page.locator("img").count() == 0 and "<img src=x onerror=alert(4)>" in page.inner_text("body")
    assert page.locator("tr.move-rollback").count() == 1
