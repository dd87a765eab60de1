"""End to end in a real browser: ``hipstride dashboard`` against a filled store — SQLite, and a
real InfluxDB holding the same points, read by a read-only user — driven by Playwright with
Debian's Chromium (``apt-get install chromium``; never ``playwright install``). Saves
``artifacts/dashboard-review-<store>.png``."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from hipstride.pipeline.engine.schema import STRIDE_COLUMNS
from tests.support.browser import ARTIFACTS, launch_chromium, start_dashboard
from tests.support.mosquitto import free_port
from tests.support.pipeline import stop_process

WAIT_MS = 20_000


@pytest.fixture(params=["sqlite", "influx"])
def dashboard(request, tmp_path) -> Iterator[str]:
    """``hipstride dashboard`` on a free port over either store; always terminated."""
    filled = request.getfixturevalue("filled_store" if request.param == "sqlite"
                                     else "filled_influx")
    port = free_port()
    proc = start_dashboard(tmp_path, port, "--store", filled.url)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_review_select_session_and_export_csv(dashboard: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            # Streamlit scrolls inside the page, so full_page=True would not show more: a tall
            # viewport does.
            page = browser.new_page(viewport={"width": 1400, "height": 2200},
                                    accept_downloads=True)
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{dashboard}/review")  # a deep link: the app's navigation still runs
            expect(page.get_by_role("heading", name="Review")).to_be_visible()

            page.get_by_role("combobox", name=re.compile("^Session")).click()
            page.get_by_role("option", name=re.compile("hamstring dominant")).click()
            ratio = page.get_by_text("Glute:hamstring ratio", exact=True).first
            expect(ratio).to_be_visible()
            metrics = page.get_by_test_id("stMetricValue")
            expect(metrics.first).to_have_text(re.compile(r"^\d+\.\d\d$"))
            page.get_by_test_id("stVegaLiteChart").first.wait_for()
            page.wait_for_timeout(500)  # let the charts finish drawing for the screenshot
            store = request.node.callspec.params["dashboard"]
            page.screenshot(path=str(ARTIFACTS / f"dashboard-review-{store}.png"))

            with page.expect_download() as download:
                page.get_by_role("button", name=re.compile("Download strides")).click()
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
        finally:
            browser.close()
    assert saved.name.startswith("anna_") and saved.suffix == ".csv"
    with saved.open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == STRIDE_COLUMNS
    assert len(rows) > 60
