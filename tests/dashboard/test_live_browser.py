"""The Live and Coach pages end to end in a real browser, against the running stack.

A real Mosquitto, the pipeline subprocess writing an embedded SQLite store, the simulated
station ``tm1`` as a real edge agent, and ``hipstride dashboard --broker`` driven by
Playwright with Debian's Chromium (never ``playwright install``). The runner starts healthy;
once the engine has learnt its baseline the simulator is switched to the hamstring-dominant
profile on ``hipstride/v1/tm1/control`` and the cue must appear. Finally the agent is
stopped and the page must say so in plain words. Screenshots go to ``artifacts/`` (ignored
by git).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from hipstride import topics
from tests.support.browser import ARTIFACTS, launch_chromium, start_stack_dashboard
from tests.support.mosquitto import free_port
from tests.support.pipeline import stop_process
from tests.support.stack import Stack, running_stack

WAIT_MS = 30_000
SPEED = "1.5"                # the simulator runs 1.5× real time: a shorter test, still live
BASELINE_STRIDES = 32        # the engine learns its baseline from 30 strides per side
CUE_TIMEOUT_MS = 120_000


@pytest.fixture
def live_stack(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    with running_stack(tmp_path) as stack:
        stack.start_edge("tm1", duration_s=600, seed=5, extra=("--speed", SPEED))
        port = free_port()
        proc = start_stack_dashboard(stack, port)
        try:
            yield stack, f"http://127.0.0.1:{port}"
        finally:
            stop_process(proc, 15)


def stride_number(page: Page, side: str) -> int:
    marker = page.locator(f'.hs-side[data-side="{side}"] .hs-last-stride').first
    value = marker.get_attribute("data-stride") or ""
    return int(value.split(":")[1]) if ":" in value else -1


def ratio_text(page: Page, side: str) -> str:
    return page.locator(f'.hs-tile[data-metric="glute_ham_ratio"][data-side="{side}"] '
                        ".hs-value").inner_text()


def no_traceback(page: Page) -> None:
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and "Error:" not in text, text[:2000]


def test_live_numbers_cue_and_silence_in_browser(live_stack: tuple[Stack, str]) -> None:
    stack, url = live_stack
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2000})
            page.set_default_timeout(WAIT_MS)
            # Through the app's own navigation (a direct /live would bypass app.py).
            page.goto(url)
            page.get_by_role("link", name="Live", exact=True).click()
            expect(page.get_by_role("heading", name="Live")).to_be_visible()

            # Numbers appear and change as the simulator runs (a new stride, a new number).
            page.wait_for_function(
                "() => document.querySelectorAll('.hs-last-stride[data-stride^=\"l:\"]')"
                ".length > 0", timeout=60_000)
            first = {s: stride_number(page, s) for s in ("l", "r")}
            # A stride without a usable EMG window shows "—" (no ratio): allowed, not counted.
            shown = {ratio_text(page, "l")}
            deadline = time.monotonic() + 30
            while len(shown - {"—"}) < 3 and time.monotonic() < deadline:
                page.wait_for_timeout(700)
                shown.add(ratio_text(page, "l"))
            numbers = shown - {"—"}
            assert len(numbers) >= 3, f"the left ratio did not change: {shown}"
            assert all(re.fullmatch(r"\d+\.\d\d", v) for v in numbers), shown
            assert stride_number(page, "l") > first["l"]
            assert "No cue" in page.locator(".hs-cue").first.inner_text()
            expect(page.locator(".vega-embed").first).to_be_visible()
            no_traceback(page)
            page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"))

            # The baseline is learnt from 30 strides per side; then the runner changes.
            deadline = time.monotonic() + 90
            while min(stride_number(page, "l"), stride_number(page, "r")) < BASELINE_STRIDES:
                assert time.monotonic() < deadline, "the baseline strides never arrived"
                page.wait_for_timeout(1000)
            stack.broker.publish(topics.control("tm1"), {"version": 1, "command": "profile",
                                                         "profile": "hamstring_dominant"},
                                 user="coach")
            cue = page.locator('.hs-cue[data-cue="hamstring_dominant"]').first
            expect(cue).to_be_visible(timeout=CUE_TIMEOUT_MS)
            assert "Drive from the glutes" in cue.inner_text()
            ratio_tile = page.locator('.hs-tile[data-metric="glute_ham_ratio"].hs-alert')
            expect(ratio_tile.first).to_be_visible()
            no_traceback(page)
            page.screenshot(path=str(ARTIFACTS / "dashboard-live-cue.png"))

            # The coach view lists the station first, with the reason it needs attention.
            coach = browser.new_page(viewport={"width": 1500, "height": 1400})
            coach.set_default_timeout(WAIT_MS)
            coach.goto(url)
            coach.get_by_role("link", name="Coach view", exact=True).click()
            card = coach.locator('.hs-station[data-station="tm1"]')
            expect(card).to_be_visible()
            expect(card).to_contain_text("Drive from the glutes")
            assert card.get_attribute("data-attention") in ("2", "3")
            no_traceback(coach)
            coach.screenshot(path=str(ARTIFACTS / "dashboard-coach.png"))

            # The station stops: the page says so in plain words, no traceback.
            for proc in stack.edges:
                proc.terminate()
                proc.wait(20)
            expect(page.get_by_text(re.compile(r"tm1's agent has been offline|tm1 has sent "
                                               r"nothing"))).to_be_visible(timeout=30_000)
            no_traceback(page)
            page.screenshot(path=str(ARTIFACTS / "dashboard-live-silent.png"))
        finally:
            browser.close()
