"""``hipstride demo`` end to end: broker, two simulated stations, pipeline, store, dashboard.

Runs the real command twice on one data dir: the dashboard answers, strides of both stations
reach the store, the live topic carries metrics, the demo runs MVC trials on both stations so
that the rows become MVC-normalised and the hamstring-dominant runner gets "Drive from the
glutes" (the healthy one does not), Ctrl-C stops everything with exit code 0 and no process
left, and the second run finds the first run's sessions closed and reuses the stored MVC
references instead of asking again. About two and a half minutes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import pytest

from hipstride.demo.broker import free_port
from hipstride.demo.calibrate import describe, plan
from tests.support.pipeline import clean_env, wait_until

STATIONS = ("demo-healthy", "demo-hamstring")


class DemoProcess:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log = data_dir, log
        self.port, self.mqtt_port = free_port(), free_port()
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hipstride.cli", "demo", "--no-browser",
                 "--port", str(self.port), "--mqtt-port", str(self.mqtt_port),
                 "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=clean_env(), start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the demo ended early ({self.process.returncode}):\n"
                                 + self.text())
        return True

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self, timeout_s: float = 30.0) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the demo did not stop within "
                                 f"{timeout_s:g} s of SIGINT:\n{self.text()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            for child in self.descendants():
                child.kill()
            self.process.kill()
            self.process.wait(10)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3.0) as response:
            return response.status == 200
    except OSError:
        return False


def _query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return []


class LiveWatcher:
    """Subscribes to every station's live topic on the demo's broker, with its password."""

    def __init__(self, port: int, password: str) -> None:
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-live",
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set("demo", password)
        self.client.on_connect = lambda c, *_a: c.subscribe("hipstride/v1/+/live", qos=0)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, msg) -> None:
        station = msg.topic.split("/")[2]
        json.loads(msg.payload)  # live metrics are JSON
        with self.lock:
            self.seen[station] = self.seen.get(station, 0) + 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _ratio_cues(db: Path, station: str) -> list[tuple]:
    return _query(db, "SELECT session, side, kind FROM cues WHERE cue = 'hamstring_dominant' "
                      f"AND station = '{station}'")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_demo_runs_everything_and_stops_cleanly(tmp_path):
    data = tmp_path / "demo"
    db = data / "hipstride.sqlite"
    first = DemoProcess(data, tmp_path / "first.log")
    watcher = None
    try:
        wait_until(lambda: first.alive() and _http_ok(f"http://127.0.0.1:{first.port}/"), 120,
                   "the dashboard to answer HTTP 200 on /")
        password = (data / "broker-password").read_text().strip()
        assert oct((data / "broker-password").stat().st_mode & 0o777) == "0o600"
        watcher = LiveWatcher(first.mqtt_port, password)
        wait_until(lambda: first.alive() and {s for s, n in _query(
            db, "SELECT station, COUNT(*) FROM strides GROUP BY station") if n >= 5}
            >= set(STATIONS), 150, "strides of both stations in the store")
        wait_until(lambda: all(watcher.seen.get(s, 0) >= 2 for s in STATIONS), 30,
                   "live metrics of both stations")
        # The demo calibrates like a physio: an MVC trial per EMG channel on each station.
        wait_until(lambda: first.alive() and "HipStride demo running" in first.text(), 150,
                   "the MVC trials to finish")
        text = first.text()
        for station in STATIONS:
            assert f"calibrate   {station} … MVC glute_max_l ok (peak " in text, text
            assert f"calibrate   {station} … MVC biceps_femoris_r" in text, text
        wait_until(lambda: first.alive() and {s for s, n in _query(
            db, "SELECT station, COUNT(*) FROM strides WHERE normalization = 'mvc' "
                "GROUP BY station") if n >= 10} >= set(STATIONS), 60,
            "MVC-normalised strides of both stations")
        wait_until(lambda: first.alive() and {
            side for _, side, kind in _ratio_cues(db, "demo-hamstring") if kind == "raise"}
            == {"l", "r"}, 60, "'Drive from the glutes' on both sides of demo-hamstring")
        assert _ratio_cues(db, "demo-healthy") == []
        last = _query(db, "SELECT station, normalization FROM strides ORDER BY time_ns DESC "
                          "LIMIT 20")
        assert {norm for _, norm in last} == {"mvc"}, last
        running = _query(db, "SELECT station, session, state FROM sessions")
        assert {r[0] for r in running if r[2] != "closed"} == set(STATIONS)
        children = first.descendants()
        assert len(children) >= 4  # pipeline, two agents, dashboard
        watcher.close()
        watcher = None
        assert first.interrupt() == 0, first.text()
        assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    finally:
        if watcher is not None:
            watcher.close()
        first.kill()
    sessions = _query(db, "SELECT station, session, state, end_ns FROM sessions")
    assert len(sessions) == 2 and all(s[2] == "closed" and s[3] for s in sessions), sessions
    assert "session     demo-healthy" in first.text() and "closed" in first.text()

    second = DemoProcess(data, tmp_path / "second.log")
    try:
        wait_until(lambda: second.alive() and len(_query(
            db, "SELECT session FROM sessions")) >= 4, 120, "the second run's sessions")
        rows = _query(db, "SELECT session, state FROM sessions")
        old = {s[1] for s in sessions}
        assert {state for session, state in rows if session in old} == {"closed"}
        wait_until(lambda: second.alive() and "HipStride demo running" in second.text(), 120,
                   "the second run to be ready")
        for station in STATIONS:  # the stored MVC references are reused: no trials
            assert re.search(rf"calibrate   {station} … reused MVC of \d{{4}}-\d\d-\d\d",
                             second.text()), second.text()
        assert " MVC glute_max_l " not in second.text()
        assert second.interrupt() == 0, second.text()
    finally:
        second.kill()
    assert os.path.isdir(data / "recordings" / "demo-healthy")


# --- the demo's calibration plan (pure) ------------------------------------------------------
CHANNELS = ("glute_max_l", "glute_max_r", "biceps_femoris_l", "biceps_femoris_r")


def _start_reply(reused: list[str], mvc_channels: list[str], message: str = "") -> dict:
    return {"session": "s1", "result": {"ok": True, "command": "start", "calibration": {
        "reused": reused, "mvc_channels": mvc_channels, "message": message}}}


def test_plan_asks_for_every_channel_without_a_stored_reference():
    todo = plan(_start_reply([], [], "no stored calibration for ana: …"), CHANNELS)
    assert todo.channels == CHANNELS and todo.reused == () and todo.reused_date == ""
    assert plan(None, CHANNELS).channels == CHANNELS  # no reply: calibrate all the same


def test_plan_skips_reused_channels_and_reads_the_date():
    message = ("reused for ana: MVC references of 2026-11-24 for biceps_femoris_l, "
               "glute_max_l (still needed for …)")
    todo = plan(_start_reply(["mvc"], ["biceps_femoris_l", "glute_max_l"], message), CHANNELS)
    assert todo.channels == ("glute_max_r", "biceps_femoris_r")
    assert todo.reused == ("glute_max_l", "biceps_femoris_l")
    assert todo.reused_date == "2026-11-24"
    full = plan(_start_reply(["mvc", "baseline"], list(CHANNELS), message), CHANNELS)
    assert full.channels == ()
    # mvc_channels without "mvc" in reused: nothing was loaded into the engine.
    assert plan(_start_reply(["baseline"], list(CHANNELS)), CHANNELS).channels == CHANNELS


def test_describe_says_the_peak_or_the_pipelines_problem():
    good = {"phase": "mvc", "muscle": "glute_max_l", "ok": True, "problems": [],
            "result": {"muscles": {"glute_max_l": {"peak_mv": 0.4129, "ok": True}}}}
    assert describe(good, "glute_max_l") == (True, "ok (peak 0.41 mV)")
    problem = "glute_max_l: the effort was held only 0.6 s: hold a maximal effort for 3-5 s"
    bad = {"ok": False, "problems": [problem],
           "result": {"muscles": {"glute_max_l": {"peak_mv": 0.1, "ok": False,
                                                  "problem": problem}}}}
    assert describe(bad, "glute_max_l") == (False, f"not ok: {problem}")
    assert describe({"ok": False, "problems": []}, "glute_max_l") == (
        False, "not ok: no reason given")
