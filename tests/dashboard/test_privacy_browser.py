"""Privacy and logins end to end in a real browser, against the running stack.

A real Mosquitto and the pipeline subprocess (tests/support/stack.py); two stations on the
broker, each running a session (retained session state, live messages as the pipeline
publishes them): ``tm-ben`` with athlete ben, ``tm-anna`` with athlete anna, whose session
label is hostile Markdown pointing at a tiny HTTP server on loopback that counts requests.
The store holds a session of each, with the same session id. ``hipstride dashboard`` with an
accounts file, driven by Playwright with Debian's Chromium:

- anna, logged in, sees nothing of ben's station or session on any page, deep links and
  query parameters included: no text, no chart, no number;
- the hostile label is shown as text, and the server never receives a request;
- wrong passwords from parallel browser sessions lock the name and the address, the right
  password is refused while locked, and works once the (short) lockout is over.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Page, expect, sync_playwright

from hipstride import topics
from hipstride.accounts import Accounts
from hipstride.pipeline.store import SessionMeta, SqliteStore
from tests.dashboard.conftest import T0_NS, _runs
from tests.dashboard.test_live_apptest import live, stride
from tests.support.browser import ARTIFACTS, launch_chromium, start_stack_dashboard
from tests.support.mosquitto import free_port
from tests.support.pipeline import USERS, stop_process
from tests.support.stack import Stack, running_stack

WAIT_MS = 30_000
PUBLISH_FOR_S = 240  # the live publisher stops by itself at the latest after this
LOCKOUT_S = 6


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@dataclass
class Scene:
    url: str
    hostile: str
    hits: list[str]
    stack: Stack


def _live_publisher(stack: Stack, stop: threading.Event) -> threading.Thread:
    """Both stations' live messages every 0.5 s, as the pipeline account (bounded)."""
    def run() -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-privacy-live")
        c.username_pw_set("pipeline", USERS["pipeline"])
        c.connect("127.0.0.1", stack.broker.port)
        c.loop_start()
        end = time.monotonic() + PUBLISH_FOR_S
        k = 0
        try:
            while not stop.is_set() and time.monotonic() < end:
                k += 1
                ben = live("tm-ben", [stride("l", k, 0.41), stride("r", k, 0.43)])
                ben["session"] = "s1"
                anna = live("tm-anna", [stride("l", k, 0.97)])
                anna["session"] = "s1"
                c.publish(topics.live("tm-ben"), json.dumps(ben), qos=1)
                c.publish(topics.live("tm-anna"), json.dumps(anna), qos=1)
                stop.wait(0.5)
        finally:
            c.disconnect()
            c.loop_stop()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    _Counter.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hostile = f"![x](http://127.0.0.1:{server.server_port}/x.png)"
    accounts = Accounts()
    accounts.add("anna", "athlete", "pw-anna")
    accounts.add("ben", "athlete", "pw-ben")
    accounts.save(tmp_path / "accounts.json")
    stop = threading.Event()
    with running_stack(tmp_path) as stack:
        rows, cues = _runs()["anna-1"]
        with SqliteStore(stack.db) as store:  # the pipeline's store; one id, two stations
            store.write_session(SessionMeta("s1", "tm-anna", "anna", T0_NS,
                                            T0_NS + 60 * 10**9, label=hostile))
            store.write_strides("tm-anna", "s1", "anna", rows[:10], origin_ns=T0_NS)
            store.write_session(SessionMeta("s1", "tm-ben", "ben", T0_NS, T0_NS + 60 * 10**9,
                                            label="bens-secret-run"))
            store.write_strides("tm-ben", "s1", "ben", rows, origin_ns=T0_NS)
            store.write_cues("tm-ben", "s1", "ben", cues, origin_ns=T0_NS)
        for station, athlete, label in (("tm-ben", "ben", "bens-secret-run"),
                                        ("tm-anna", "anna", hostile)):
            stack.broker.publish(topics.session(station), {
                "version": 1, "station": station, "state": "running", "session": "s1",
                "athlete": athlete, "label": label, "start_ns": time.time_ns()},
                user="pipeline", retain=True)
        publisher = _live_publisher(stack, stop)
        port = free_port()
        proc = start_stack_dashboard(
            stack, port, HIPSTRIDE_ACCOUNTS=str(tmp_path / "accounts.json"),
            HIPSTRIDE_LOGIN_MAX_FAILURES="3", HIPSTRIDE_LOGIN_ADDRESS_MAX_FAILURES="5",
            HIPSTRIDE_LOGIN_LOCKOUT_S=str(LOCKOUT_S))
        try:
            yield Scene(f"http://127.0.0.1:{port}", hostile, _Counter.hits, stack)
        finally:
            stop.set()
            publisher.join(10)
            stop_process(proc, 15)
            server.shutdown()


def log_in(page: Page, name: str, password: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def open_as(page: Page, url: str, name: str, password: str, heading: str) -> str:
    """A deep link, logged in there; the page's text once it has settled."""
    page.goto(url)
    expect(page.get_by_text("log in to continue")).to_be_visible()
    log_in(page, name, password)
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    page.wait_for_timeout(3000)  # fragments have run several times (numbers 2/s, charts 1/s)
    return page.locator("body").inner_text()


def nothing_of_ben(page: Page, text: str, where: str) -> None:
    assert "Traceback" not in text, (where, text[:2000])
    for secret in ("tm-ben", "bens-secret-run", "0.41", "0.43"):
        assert secret not in text.replace("?station=tm-ben", ""), (where, secret, text[:3000])
    assert not re.search(r"\bben\b", text), (where, text[:3000])


@pytest.mark.timeout(420)
def test_an_athlete_sees_nothing_of_another_athlete_and_labels_stay_text(scene: Scene):
    url = scene.url
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.set_default_timeout(WAIT_MS)
            # a deep link with ben's station in the query
            text = open_as(page, f"{url}/live?station=tm-ben", "anna", "pw-anna", "Live")
            assert "is not running a session of an athlete you follow" in text, text[:2000]
            page.wait_for_timeout(2000)
            assert page.get_by_test_id("stVegaLiteChart").count() == 0  # no chart at all
            assert page.locator(".hs-tile, .hs-side, .hs-cue").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard-privacy-live-locked.png"))

            # Live without the query: anna's own station, charts drawn, nothing of ben
            text = open_as(page, f"{url}/live", "anna", "pw-anna", "Live")
            expect(page.locator('.hs-tile[data-metric="glute_ham_ratio"][data-side="l"] '
                                ".hs-value")).to_have_text("0.97")
            expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
            nothing_of_ben(page, page.locator("body").inner_text(), "live")

            for path, heading in (("coach", "Coach view"), ("session", "Session control"),
                                  ("calibration", "Calibration"),
                                  ("prone_test", "Prone hip extension test"),
                                  ("review", "Review")):
                text = open_as(page, f"{url}/{path}?station=tm-ben", "anna", "pw-anna",
                               heading)
                nothing_of_ben(page, text, path)
                if path == "coach":
                    expect(page.locator('.hs-station[data-station="tm-anna"]')).to_be_visible()
                    assert page.locator('.hs-station[data-station="tm-ben"]').count() == 0
                if path == "session":  # the running session's line shows the label as text
                    assert scene.hostile in text, text[:2000]
                if path == "review":
                    assert scene.hostile in text, text[:2000]  # in the heading, as text
                    assert "of 10" in text, text[:2000]  # anna's 10 strides, not ben's
                    page.screenshot(path=str(ARTIFACTS / "dashboard-privacy-review.png"))
            # every page showed the label somewhere; the browser fetched nothing from it
            page.wait_for_timeout(1000)
            assert scene.hits == [], scene.hits
            # the counter does count: the same address in an <img> is fetched at once
            control = scene.hostile.split("(")[1].rstrip(")").replace("x.png", "control.png")
            page.set_content(f'<img src="{control}">')
            page.wait_for_timeout(1000)
            assert scene.hits == ["/control.png"], scene.hits
        finally:
            browser.close()


@pytest.mark.timeout(300)
def test_parallel_wrong_passwords_lock_the_name_and_the_address(scene: Scene):
    url = scene.url
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            pages = [browser.new_context().new_page() for _ in range(3)]
            for page in pages:
                page.set_default_timeout(WAIT_MS)
                page.goto(url)
                expect(page.get_by_text("log in to continue")).to_be_visible()
            for page in pages:  # three browser sessions guess at once
                page.get_by_label("Name", exact=True).fill("anna")
                page.get_by_label("Password", exact=True).fill("guess")
            for page in pages:
                page.get_by_role("button", name="Log in").click()
            for page in pages:
                expect(page.get_by_text("Wrong name or password.")).to_be_visible()
            locked_at = time.monotonic()
            page = pages[0]
            log_in(page, "anna", "pw-anna")  # the right password, while locked
            expect(page.get_by_text(re.compile("Too many failed logins"))).to_be_visible()
            expect(page.get_by_role("heading", name="Live")).to_have_count(0)
            # two more wrong names from this address reach its limit of 5: then even ben,
            # with his right password, is refused, with the same words
            for name in ("nobody", "carla"):
                log_in(pages[1], name, "guess")
                expect(pages[1].get_by_text("Wrong name or password.")).to_be_visible()
                pages[1].wait_for_timeout(300)
            address_locked_at = time.monotonic()
            log_in(pages[2], "ben", "pw-ben")
            expect(pages[2].get_by_text(re.compile("Too many failed logins"))).to_be_visible()
            pages[2].screenshot(path=str(ARTIFACTS / "dashboard-login-locked.png"))
            # once the lockouts are over, the right password works
            time.sleep(max(0.0, max(locked_at, address_locked_at) + LOCKOUT_S + 1.5
                           - time.monotonic()))
            log_in(page, "anna", "pw-anna")
            expect(page.get_by_role("heading", name="Live")).to_be_visible()
            expect(page.get_by_text("Logged in as")).to_be_visible()
        finally:
            browser.close()
