"""Session control, calibration, prone test, review and login end to end in a real browser.

The running stack: a real Mosquitto, the pipeline subprocess writing a SQLite store and its
recordings, the simulated station ``tm1`` as a real edge agent, and ``hipstride dashboard``
driven by Playwright with Debian's Chromium (never ``playwright install``). A session is
started and stopped from the Session page and must appear in Review with its strides; the
export must be a CSV with the documented columns; the report is built from the recording; the
Calibration page runs a standing calibration through the pipeline. A second dashboard with a
password must block an anonymous visitor. Screenshots of each page go to ``artifacts/``.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from hipstride.control import ControlClient
from hipstride.pipeline.engine.schema import STRIDE_COLUMNS
from hipstride.pipeline.store import open_store
from tests.support.browser import ARTIFACTS, launch_chromium, start_stack_dashboard
from tests.support.mosquitto import free_port
from tests.support.pipeline import USERS, stop_process, wait_until
from tests.support.stack import running_stack

WAIT_MS = 30_000
RUN_S = 30  # seconds of running inside the session


def shot(page: Page, name: str) -> None:
    page.wait_for_timeout(700)  # let charts finish drawing
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"))


def choose(page: Page, label: str, option: str | re.Pattern) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()


@pytest.fixture
def stack(tmp_path):
    with running_stack(tmp_path) as s:
        yield s


@pytest.mark.timeout(420)
def test_session_from_the_page_to_review_export_and_report(stack, tmp_path):
    stack.start_edge("tm1", duration_s=300, seed=7)
    with ControlClient(stack.broker.url_for("coach"), password=USERS["coach"]) as watch:
        wait_until(lambda: watch.online("tm1"), 30, "the station online")
    port = free_port()
    dashboard = start_stack_dashboard(stack, port)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1800},
                                        accept_downloads=True)
                page.set_default_timeout(WAIT_MS)
                try:
                    _session(page, url)
                except AssertionError:
                    shot(page, "session-failed")
                    raise
                time.sleep(RUN_S)
                page.get_by_role("button", name="Stop session").click()
                expect(page.get_by_text(re.compile(r"Session \S+ stopped"))).to_be_visible()

                with open_store(stack.store_url) as store:
                    (meta,) = wait_until(lambda: [s for s in store.sessions(athlete="maria")
                                                  if s.end_ns], 20, "the stopped session")
                    strides = wait_until(lambda: store.strides(meta.session), 30,
                                         "the session's strides")
                _review(page, url, tmp_path, meta.session, len(strides))
                _calibration(page, url)
                _prone(page, url)
            finally:
                browser.close()
    finally:
        stop_process(dashboard)


def _session(page: Page, url: str) -> None:
    page.goto(f"{url}/session")
    expect(page.get_by_role("heading", name="Session control")).to_be_visible()
    expect(page.get_by_text("No session is running.")).to_be_visible()
    choose(page, "Athlete", "New athlete…")
    page.get_by_label("New athlete's name").fill("maria")
    page.get_by_label("Label (optional)").fill("easy run")
    page.get_by_label("Label (optional)").press("Tab")
    page.get_by_role("button", name="Start session").click()
    expect(page.get_by_text(re.compile(r"of maria started"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"of maria is running"))).to_be_visible()
    page.get_by_label("What happened").fill("felt the hamstring")
    page.get_by_role("button", name="Mark").click()
    expect(page.get_by_text(re.compile("Marked .felt the hamstring."))).to_be_visible()
    shot(page, "session")


def _review(page: Page, url: str, tmp_path: Path, session: str, n_strides: int) -> None:
    page.goto(f"{url}/review")
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    choose(page, "Athlete", "maria")
    expect(page.get_by_text(re.compile(r"valid strides of \d+"))).to_be_visible()
    page.get_by_test_id("stVegaLiteChart").first.wait_for()
    shot(page, "review-session")
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("Download strides")).click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with saved.open(newline="") as f:
        rows = list(csv.reader(f))
    assert saved.name.startswith("maria_") and tuple(rows[0]) == STRIDE_COLUMNS
    assert len(rows) - 1 >= n_strides > 0  # the store may have grown since it was read

    page.get_by_role("tab", name="Gait cycle").click()
    expect(page.get_by_text(re.compile(
        r"^Hip flexion|^No processed hip angles stored for this session")).first
           ).to_be_visible()
    expect(page.get_by_text("Glute max EMG envelope")).to_be_visible()
    shot(page, "review-gait-cycle")

    page.get_by_role("tab", name="Report").click()
    page.get_by_role("button", name="Build the session report").click()
    button = page.get_by_role("button", name="Download the report (HTML)")
    expect(button.or_(page.get_by_text("The report could not be built"))).to_be_visible(
        timeout=240_000)
    shot(page, "review-report")
    with page.expect_download() as download:
        button.click()
    report = tmp_path / download.value.suggested_filename
    download.value.save_as(report)
    html = report.read_text()
    assert report.suffix == ".html" and "<html" in html.lower() and "maria" in html


def _calibration(page: Page, url: str) -> None:
    page.goto(f"{url}/calibration")
    expect(page.get_by_role("heading", name="Calibration")).to_be_visible()
    expect(page.get_by_text("No session is running.")).to_be_visible()
    page.get_by_role("button", name="Start a calibration session").click()
    expect(page.get_by_text(re.compile(r"of maria is running"))).to_be_visible()
    expect(page.get_by_role("heading", name="Last calibration of maria")).to_be_visible()
    page.get_by_role("button", name="Begin standing calibration").click()
    expect(page.get_by_text(re.compile(r"Get ready"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Stand still … \d+ s"))).to_be_visible(timeout=20_000)
    shot(page, "calibration-countdown")
    verdict = page.get_by_text(re.compile(
        r"Good effort|Accepted, with remarks|Not usable — please repeat"))
    expect(verdict).to_be_visible(timeout=90_000)
    expect(page.get_by_role("button", name="Repeat this step")).to_be_visible()
    shot(page, "calibration-result")
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_text("Calibration steps done")).to_be_visible()


def _prone(page: Page, url: str) -> None:
    page.goto(f"{url}/prone_test")
    expect(page.get_by_role("heading", name="Prone hip extension test")).to_be_visible()
    expect(page.get_by_role("button", name="Begin the test")).to_be_visible()
    expect(page.get_by_role("heading", name="Earlier tests")).to_be_visible()
    shot(page, "prone-test")


@pytest.mark.timeout(180)
def test_login_blocks_an_anonymous_visitor(stack):
    port = free_port()
    dashboard = start_stack_dashboard(stack, port,
                                      HIPSTRIDE_DASHBOARD_PASSWORD="clinic-secret")
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(WAIT_MS)
                for path in ("", "/live", "/coach", "/review", "/session"):
                    page.goto(f"{url}{path}")
                    expect(page.get_by_text("log in to continue")).to_be_visible()
                    expect(page.get_by_role("heading", name="Review")).to_have_count(0)
                    expect(page.get_by_role("heading", name="Live")).to_have_count(0)
                    expect(page.get_by_role("link", name="Session control")).to_have_count(0)
                    expect(page.get_by_text("Prone", exact=False)).to_have_count(0)
                shot(page, "login")
                page.get_by_label("Password", exact=True).fill("not-it")
                page.get_by_role("button", name="Log in").click()
                expect(page.get_by_text("Wrong password.")).to_be_visible()
                page.get_by_label("Password", exact=True).fill("clinic-secret")
                page.get_by_role("button", name="Log in").click()
                # the deep link (/session) opens once logged in, with every page in the menu
                expect(page.get_by_role("heading", name="Session control")).to_be_visible()
                expect(page.get_by_text("Logged in as")).to_be_visible()
                expect(page.get_by_role("link", name="Review")).to_be_visible()
            finally:
                browser.close()
    finally:
        stop_process(dashboard)
