"""Calibration phases end to end: a real Mosquitto, the pipeline as a subprocess, a SQLite
store, ``hipstride session calibrate`` as the operator types it, and frames of a simulated
session with known phases published at the pace of their timestamps.

A. standing → running → MVC trials, then the next session of the same athlete: the retained
   ``…/results`` carries each phase's result (the standing calibration applied to the
   engine, both MVC references); the store holds the athlete's ``standing`` and ``mvc``
   calibration and the session's processed hip and pelvis angles; the next start reuses the
   MVC references and says so in its reply.
B. the prone test, ended by stopping the session, with a malformed burst on the way and a
   ``calibrate --action stop`` without a start: the prone result (repetitions per side,
   sides, advice) on ``…/results`` and as ``phe`` rows in the store; ``…/ingest`` names the
   rejection reason; the stray stop is refused with its reason.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hipstride import topics
from hipstride.config import BrokerURL
from hipstride.edge.simulator import simulate
from hipstride.mqtt import Connection, make_client
from hipstride.pipeline.store import open_store
from tests.pipeline.service.sim_frames import sim_frames
from tests.pipeline.service.test_pipeline_broker import MOSQUITTO_PUB
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS, PipelineProcess, hs_session, wait_until


class Client:
    """A paho client as a user of the broker: publishes, and keeps what it hears."""

    def __init__(self, broker: Mosquitto, user: str, subscribe: tuple[str, ...] = ()) -> None:
        url = BrokerURL.parse(broker.url_for(user))
        self.client = make_client(url, f"test-{user}-{time.monotonic_ns()}",
                                  password=USERS[user])
        self.heard: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client.on_message = self._on_message
        conn = Connection(self.client, url)
        if subscribe:
            conn.on_connect(lambda _sp: self.client.subscribe([(t, 1) for t in subscribe]))
        self.connection = conn
        conn.open()

    def _on_message(self, _c, _u, message) -> None:
        with self.lock:
            self.heard.append((message.topic, json.loads(message.payload)))

    def messages(self, topic: str) -> list[dict]:
        with self.lock:
            return [body for t, body in self.heard if t == topic]

    def close(self) -> None:
        self.connection.close()


def play(edge: Client, sim, base_ns: int, pieces, stop: threading.Event) -> threading.Thread:
    """Publish the frames of ``pieces`` as an edge agent would: each once its last sample
    is due (wall clock), QoS 1."""
    def run() -> None:
        for f in sim_frames(sim, base_ns, pieces):
            due = f.t0_ns + 50_000_000
            while not stop.is_set() and time.time_ns() < due:
                time.sleep(min(0.02, max(0.0, (due - time.time_ns()) / 1e9)))
            if stop.is_set():
                return
            edge.client.publish(topics.frames("tm1", f.stream), f.payload, qos=1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def describe(edge: Client, sim) -> None:
    for d in sim.descriptions:
        edge.client.publish(topics.stream_description("tm1", d.stream), d.to_json(), qos=1,
                            retain=True).wait_for_publish(5)


def ok(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def sleep_until(t_ns: int) -> None:
    time.sleep(max(0.0, (t_ns - time.time_ns()) / 1e9))


STANDING_S, RUN_END_S = 10.0, 21.0
CHANNELS = ("glute_max_l", "biceps_femoris_l")


@pytest.mark.timeout(90)
def test_standing_and_mvc_phases_are_applied_stored_and_reused(broker, tmp_path):
    # 10 s standing, running 10-21 s, a 2 s stop, MVC trials of both channels (2 x 8 s)
    sim = simulate(39.0, seed=3, mvc=True, standing_s=STANDING_S, emg_channels=CHANNELS)
    mvc = sim.truth.phase("mvc")
    pieces = [(0.0, RUN_END_S), (mvc["start_s"], mvc["end_s"])]
    db = tmp_path / "store.sqlite"
    pipeline = PipelineProcess(broker, f"sqlite:///{db}", tmp_path)
    stop = threading.Event()
    pipeline.start()
    edge = Client(broker, "edge-tm1")
    coach = Client(broker, "coach", (topics.results("tm1"),))
    try:
        describe(edge, sim)
        first = ok(hs_session(broker, "start", "--athlete", "ana"))
        assert first["result"]["calibration"]["reused"] == []
        assert "no stored calibration for ana" in first["result"]["calibration"]["message"]
        session = first["session"]
        began = ok(hs_session(broker, "calibrate", "--phase", "standing"))
        base = began["time_ns"] + 300_000_000
        player = play(edge, sim, base, pieces, stop)
        sleep_until(base + 6_500_000_000)  # the runner still stands until 10 s
        ok(hs_session(broker, "calibrate", "--phase", "standing", "--action", "stop"))
        standing = wait_until(lambda: [m for m in coach.messages(topics.results("tm1"))
                                       if m["phase"] == "standing"], 15, "standing result")[0]
        assert standing["ok"] is True and standing["problems"] == [], standing
        assert standing["session"] == session and standing["athlete"] == "ana"
        assert standing["result"]["applied"] is True
        assert all(s["ok"] and s["moved_deg"] < 2 for s in standing["result"]["segments"].values())

        sleep_until(base + round((RUN_END_S - 1.0) * 1e9))  # the MVC trials start at 21 s
        ok(hs_session(broker, "calibrate", "--phase", "mvc"))
        player.join(60)
        ok(hs_session(broker, "calibrate", "--phase", "mvc", "--action", "stop"))
        result = wait_until(lambda: [m for m in coach.messages(topics.results("tm1"))
                                     if m["phase"] == "mvc"], 15, "MVC result")[0]
        assert result["ok"] is True, result
        muscles = result["result"]["muscles"]
        assert set(muscles) == set(CHANNELS)
        assert all(m["ok"] and m["peak_mv"] > 0.05 and m["problem"] is None
                   for m in muscles.values())
        assert result["result"]["normalization"] == "mvc" and result["result"]["mvc_missing"] == []
        ok(hs_session(broker, "stop"))

        again = ok(hs_session(broker, "start", "--athlete", "ana"))
        reuse = again["result"]["calibration"]
        assert reuse["reused"] == ["mvc"] and reuse["mvc_channels"] == sorted(CHANNELS)
        assert "EMG normalised to MVC" in reuse["message"]
        assert "standing calibration is not reused" in reuse["message"]
        ok(hs_session(broker, "stop"))
    finally:
        stop.set()
        edge.close()
        coach.close()
        code = pipeline.stop()
    assert code == 0, pipeline.log()
    assert "reused for ana: MVC references" in pipeline.log()

    store = open_store(f"sqlite:///{db}")
    try:
        cal = store.calibration("ana")
        hip = store.processed("tm1", "hip_angle", session=session)
        pelvis = store.processed("tm1", "pelvis_angle", session=session)
    finally:
        store.close()
    assert {"standing", "mvc", "time_ns"} <= set(cal)
    assert set(cal["standing"]["imu"]) == {"pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"}
    assert cal["mvc"]["channels"] == sorted(CHANNELS)
    assert cal["mvc"]["reference_mv"] == pytest.approx(
        [muscles[c]["peak_mv"] for c in sorted(CHANNELS)])
    assert hip.channels == ("hip_flexion_l_deg", "hip_flexion_r_deg") and len(hip) > 300
    assert pelvis.channels == ("pelvic_tilt_deg",)
    assert 30 < float(max(hip.values[:, 0])) < 75  # running hip flexion, degrees


@pytest.mark.timeout(90)
def test_prone_test_closed_by_session_stop_and_ingest_health(broker, tmp_path):
    sim = simulate(20.0, seed=4, prone=True, prone_reps=1, standing_s=3.0)
    prone = sim.truth.phase("prone")
    db = tmp_path / "store.sqlite"
    pipeline = PipelineProcess(broker, f"sqlite:///{db}", tmp_path)
    stop = threading.Event()
    pipeline.start()
    edge = Client(broker, "edge-tm1")
    coach = Client(broker, "coach", (topics.results("tm1"), topics.ingest("tm1")))
    try:
        describe(edge, sim)
        session = ok(hs_session(broker, "start", "--athlete", "bo"))["session"]
        stray = hs_session(broker, "calibrate", "--phase", "mvc", "--action", "stop")
        assert stray.returncode == 5 and "phase_not_active" in stray.stderr
        assert "start it first" in json.loads(stray.stdout)["result"]["message"]
        began = ok(hs_session(broker, "calibrate", "--phase", "prone"))
        base = began["time_ns"] + 300_000_000
        player = play(edge, sim, base, [(prone["start_s"], prone["end_s"])], stop)
        for _ in range(5):  # a malformed burst on the good station's frames topic
            subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u",
                            "edge-tm1", "-P", USERS["edge-tm1"], "-q", "1", "-t",
                            topics.frames("tm1", "emg"), "-m", "HSxx"], check=True, timeout=10)
        health = wait_until(lambda: [m for m in coach.messages(topics.ingest("tm1"))
                                     if m["rejected"].get("truncated", 0) >= 5], 15,
                            "the ingest summary with all 5 rejections")[-1]
        assert health["station"] == "tm1" and health["last"]["reason"] == "truncated"
        assert "shorter than" in health["last"]["message"]
        assert "emg" in health["sequence_missing"]  # every stream seen, none with a hole
        assert set(health["sequence_missing"].values()) == {0}
        # the first rejection is published at once, the rest at most once a second
        assert len(coach.messages(topics.ingest("tm1"))) <= 4
        player.join(40)
        time.sleep(0.5)
        ok(hs_session(broker, "stop"))  # the prone phase is still open: the stop ends it
        result = wait_until(lambda: coach.messages(topics.results("tm1")), 15,
                            "the prone result")[0]
    finally:
        stop.set()
        edge.close()
        coach.close()
        code = pipeline.stop()
    assert code == 0, pipeline.log()
    assert result["phase"] == "prone" and result["session"] == session, result
    assert result["ok"] is True and result["athlete"] == "bo", result
    reps = result["result"]["repetitions"]
    assert [r["side"] for r in reps] == ["l", "r"]
    truth = sorted(sim.truth.prone_reps, key=lambda r: r["movement_onset_s"])
    for rep, t in zip(reps, truth, strict=True):  # result times: seconds from phase start
        onset_ns = base + round((t["movement_onset_s"] - prone["start_s"]) * 1e9)
        assert abs(result["start_ns"] + rep["movement_onset_s"] * 1e9 - onset_ns) < 50e6
        assert rep["glute_ham_lag_ms"] == pytest.approx(t["glute_ham_lag_ms"], abs=40)
    assert set(result["result"]["sides"]) == {"l", "r"}
    assert all(result["result"]["advice"][s] for s in "lr")
    store = open_store(f"sqlite:///{db}")
    try:
        rows = store.phe(session)
    finally:
        store.close()
    assert [r["side"] for r in rows] == ["l", "r"]
    assert [r["order"] for r in rows] == [r["order"] for r in reps]
    assert rows[0]["time_ns"] == pytest.approx(
        result["start_ns"] + reps[0]["movement_onset_s"] * 1e9, abs=1000)
    assert Path(tmp_path / "recordings" / "tm1" / f"tm1-{session}.hsrec").exists()
