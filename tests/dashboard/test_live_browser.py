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

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Page, expect, sync_playwright

from hipstride import topics
from tests.support.mosquitto import free_port
from tests.support.pipeline import USERS, clean_env
from tests.support.stack import Stack, running_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
START_TIMEOUT_S = 40.0
WAIT_MS = 30_000
SPEED = "1.5"                # the simulator runs 1.5× real time: a shorter test, still live
BASELINE_STRIDES = 32        # the engine learns its baseline from 30 strides per side
CUE_TIMEOUT_MS = 120_000


def start_dashboard(stack: Stack, workdir: Path, port: int) -> subprocess.Popen:
    """``hipstride dashboard --broker --store`` as the coach account; the URL is up when it
    returns (fails the test with the log otherwise)."""
    log = (workdir / "dashboard.log").open("w+")
    env = clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["coach"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "dashboard", "--port", str(port),
         "--store", stack.store_url, "--broker", stack.broker.url_for("coach")],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"dashboard exited with {proc.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                        timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"dashboard not up after {START_TIMEOUT_S} s:\n{log.read()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def send_control(stack: Stack, station: str, body: dict) -> None:
    """One control message as the coach (QoS 1, waits for the broker's acknowledgement)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-live-control")
    c.username_pw_set("coach", USERS["coach"])
    c.connect("127.0.0.1", stack.broker.port)
    c.loop_start()
    try:
        c.publish(topics.control(station), json.dumps(body), qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture
def live_stack(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    with running_stack(tmp_path) as stack:
        stack.start_edge("tm1", duration_s=600, seed=5, extra=("--speed", SPEED))
        port = free_port()
        proc = start_dashboard(stack, tmp_path, port)
        try:
            yield stack, f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


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
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
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
            seen = {ratio_text(page, "l")}
            deadline = time.monotonic() + 30
            while len(seen) < 3 and time.monotonic() < deadline:
                page.wait_for_timeout(700)
                seen.add(ratio_text(page, "l"))
            assert len(seen) >= 3, f"the left ratio did not change: {seen}"
            assert all(re.fullmatch(r"\d+\.\d\d", v) for v in seen), seen
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
            send_control(stack, "tm1", {"version": 1, "command": "profile",
                                        "profile": "hamstring_dominant"})
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
