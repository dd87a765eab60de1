"""Sessions end to end: a real Mosquitto, the real edge agent and the pipeline as subprocesses,
a SQLite store, and ``hipstride session`` as the operator would type it.

Scenario: tm1 streams a short warm-up run outside any session (its strides are stored as
``unassigned``); a session is started with ``hipstride session start`` and a second run
begins (standing first, as ``analyze`` needs for its static calibration); during it the
session is marked, the pipeline is SIGKILLed and restarted (the session must resume), a
malformed control message is published with ``mosquitto_pub``; then the session is stopped.
Asserted: the store lists the session with athlete, start, stop and marks; its strides carry
its id and the strides before its start are ``unassigned``; its recording exists and
``hipstride analyze --recording`` accepts it; the malformed message's reason is on the
retained session topic and in ``/metrics``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hipstride import topics
from hipstride.pipeline.service.sessions import UNASSIGNED
from hipstride.pipeline.store import open_store
from tests.pipeline.service.test_pipeline_broker import MOSQUITTO_PUB, sqlite_strides
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS, PipelineProcess, clean_env, hs_session, wait_until

MOSQUITTO_SUB = MOSQUITTO_PUB.replace("mosquitto_pub", "mosquitto_sub")
SESSION_S = 15
WARMUP_S, RUN_S = 16, 20


def retained_session(broker: Mosquitto) -> dict:
    out = subprocess.run([MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u",
                          "coach", "-P", USERS["coach"], "-t", topics.session("tm1"), "-C", "1",
                          "-W", "5"], capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def start_edge(broker: Mosquitto, tmp_path: Path, duration_s: float, name: str
               ) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
         broker.url_for("edge-tm1"), "--source", "sim", "--duration", str(duration_s),
         "--seed", "3", "--spool", str(tmp_path / f"edge-{name}.sqlite")],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["edge-tm1"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def unassigned_strides(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute("SELECT COUNT(*) FROM strides WHERE session = ?",
                             (UNASSIGNED,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.timeout(60)
def test_session_started_marked_and_stopped_through_the_control_topic(broker, tmp_path):
    db = tmp_path / "store.sqlite"
    pipeline = PipelineProcess(broker, f"sqlite:///{db}", tmp_path)
    edge = None
    try:
        pipeline.start()
        edge = start_edge(broker, tmp_path, WARMUP_S, "warmup")
        assert edge.wait(WARMUP_S + 10) == 0, edge.stderr.read()
        wait_until(lambda: unassigned_strides(db), 10, "unassigned strides before the start")

        started = hs_session(broker, "start", "--athlete", "ana", "--label", "easy run")
        assert started.returncode == 0, started.stderr
        reply = json.loads(started.stdout)
        session = reply["session"]
        assert reply["state"] == "running" and reply["athlete"] == "ana"
        assert session.startswith("tm1-") and reply["result"]["ok"] is True
        assert hs_session(broker, "start", "--athlete", "bo").returncode == 5  # already running
        edge = start_edge(broker, tmp_path, RUN_S, "run")
        first = hs_session(broker, "mark", "--label", "standing")
        assert first.returncode == 0, first.stderr

        # SIGKILL while the runner stands (the restarted engine resumes from the warm-up's
        # stored calibration: it was running within RESUME_WITHIN_S); the session must resume
        pipeline.kill()
        pipeline.start()
        subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "coach",
                        "-P", USERS["coach"], "-q", "1", "-t", topics.control("tm1"), "-m",
                        "{not json"], check=True, timeout=10)
        refused = wait_until(lambda: (retained_session(broker).get("result") or {})
                             .get("reason") == "not_json" and retained_session(broker), 10,
                             "the refusal on the session topic")
        assert refused["session"] == session and refused["state"] == "running"
        assert refused["marks"] == 1        # the state survived the SIGKILL
        assert pipeline.metric('hipstride_pipeline_control_rejected_total{station="tm1",'
                               'reason="not_json"}') == 1

        time.sleep(SESSION_S / 2)
        marked = hs_session(broker, "mark", "--label", "felt hamstring", "--note", "left")
        assert marked.returncode == 0, marked.stderr
        assert json.loads(marked.stdout)["marks"] == 2

        assert edge.wait(RUN_S + 10) == 0, edge.stderr.read()
        stopped = hs_session(broker, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout)["state"] == "idle"
        again = hs_session(broker, "stop")
        assert again.returncode == 5 and "no_session" in again.stderr
    finally:
        if edge is not None and edge.poll() is None:
            edge.kill()
            edge.wait(10)
        code = pipeline.stop()
    assert code == 0, pipeline.log()

    store = open_store(f"sqlite:///{db}")
    try:
        (meta,) = store.sessions(station="tm1")
        rows = store.strides(session)
        before = store.strides(UNASSIGNED, station="tm1")
    finally:
        store.close()
    assert meta.session == session and meta.athlete == "ana" and meta.label == "easy run"
    assert meta.end_ns is not None and meta.end_ns - meta.start_ns >= SESSION_S * 1e9
    assert [m["label"] for m in meta.meta["marks"]] == ["standing", "felt hamstring"]
    assert meta.meta["marks"][1]["note"] == "left"
    assert all(meta.start_ns < m["time_ns"] < meta.end_ns for m in meta.meta["marks"])
    assert len(rows) >= 4, len(rows)
    assert all(meta.start_ns <= r["time_ns"] < meta.end_ns and r["athlete"] == "ana"
               for r in rows)
    assert before and any(r["time_ns"] < meta.start_ns for r in before)
    assert all(not meta.start_ns <= r["time_ns"] < meta.end_ns for r in before)
    assert sqlite_strides(db) == len(rows) + len(before)

    recording = tmp_path / "recordings" / "tm1" / f"tm1-{session}.hsrec"
    assert recording.exists()
    assert list((tmp_path / "recordings" / "tm1").glob("tm1-????-??-??.hsrec"))
    analyzed = subprocess.run([sys.executable, "-m", "hipstride.cli", "analyze", "--recording",
                               str(recording), "--out", str(tmp_path / "analysis")],
                              capture_output=True, text=True, timeout=60)
    assert analyzed.returncode == 0, analyzed.stderr
