"""End to end in a real browser: ``hipstride dashboard`` against a filled SQLite store, driven
by Playwright with Debian's Chromium (``apt-get install chromium``; never ``playwright
install``). Saves ``artifacts/dashboard-review.png``."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from hipstride.pipeline.engine.schema import STRIDE_COLUMNS
from tests.support.mosquitto import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
START_TIMEOUT_S = 30.0
WAIT_MS = 20_000


@pytest.fixture
def dashboard(filled_store, tmp_path) -> Iterator[str]:
    """``hipstride dashboard`` on a free port; always terminated."""
    port = free_port()
    log = (tmp_path / "dashboard.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "dashboard", "--port", str(port),
         "--store", filled_store.url], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"dashboard exited with {proc.returncode}:\n{log.read()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"dashboard not up after {START_TIMEOUT_S} s:\n{log.read()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_review_select_session_and_export_csv(dashboard: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
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
            page.screenshot(path=str(ARTIFACTS / "dashboard-review.png"))

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
