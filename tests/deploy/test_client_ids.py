"""Client ids are bound to accounts in the deployment (docs/deployment.md, "Client ids and
accounts"), shown with Debian's Mosquitto running deploy/mosquitto/mosquitto.conf and the
files the real ``hipstride admin`` writes, a real ``hipstride pipeline`` process (SQLite
store) and real ``hipstride edge`` agents (simulator):

- station tm-a's credentials with the pipeline's, another station's or any client id cannot
  take over anyone's session: the broker makes the client id the station's own name on the
  stations' listener, and refuses station credentials on the services' listener;
- a second pipeline with the same partition refuses to start (exit 2), and a process that
  sees another one's claim while running says so (CRITICAL, metric) and stops (exit 2);
- either way every frame of every station is in the store once, with contiguous sequence
  numbers, counted with the ``sqlite3`` module (independent of the pipeline's code).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hipstride import topics
from tests.support.deploy import ComposeMosquitto, make_site, station_password
from tests.support.mosquitto import free_port
from tests.support.pipeline import clean_env, scrape_metrics, stop_process, wait_until

STATIONS = ("tm-a", "tm-b")
STREAMS = ("emg", "imu_pelvis", "imu_thigh_l", "imu_thigh_r", "imu_shank_l", "imu_shank_r")
RATES = {"emg": 2000, **{s: 200 for s in STREAMS[1:]}}
#: Client ids a hostile station tries with its own credentials.
ATTACK_IDS = ("hipstride-pipeline-0-of-1", "hipstride-edge-tm-b", "tm-b", "pipeline",
              "dashboard", "hipstride-pipeline-probe-0-of-1-x")
DISCONNECT = "lost the connection to"  # what hipstride/mqtt.py logs for a lost connection


class Site:
    """A deployment folder, its broker, and the processes a test starts on it."""

    def __init__(self, tmp: Path, stations: tuple[str, ...] = STATIONS) -> None:
        self.tmp = tmp
        self.root = tmp / "site"
        self.env = make_site(self.root, stations)
        self.broker = ComposeMosquitto(tmp / "mosquitto", self.root)
        self.broker.start()
        self.db = tmp / "store.sqlite"
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "hipstride.cli", *args],
                                    env=clean_env(**env), stdout=log,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def pipeline(self, name: str, metrics_port: int, *, state: str = "state"
                 ) -> subprocess.Popen:
        return self.spawn(name, [
            "pipeline", "--broker", self.broker.services_url_for("pipeline"),
            "--store", f"sqlite:///{self.db}", "--state-dir", str(self.tmp / state),
            "--recordings", str(self.tmp / f"{state}-recordings"),
            "--metrics-port", str(metrics_port)],
            {"HIPSTRIDE_BROKER_PASSWORD": self.env["MQTT_PIPELINE_PASSWORD"]})

    def edge(self, station: str, duration_s: float, seed: int) -> subprocess.Popen:
        return self.spawn(f"edge-{station}", [
            "edge", "--station", station, "--broker", self.broker.url_for(station),
            "--source", "sim", "--duration", str(duration_s), "--seed", str(seed),
            "--spool", str(self.tmp / f"spool-{station}.sqlite")],
            {"HIPSTRIDE_BROKER_PASSWORD": station_password(self.root, station)})

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc, 20)
        self.broker.stop()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()




def wait_subscribed(site: Site, proc: subprocess.Popen, name: str, port: int) -> None:
    wait_until(lambda: proc.poll() is not None
               or scrape_metrics(port).get("hipstride_pipeline_mqtt_subscribed") == 1, 45,
               f"{name} to subscribe")
    assert proc.poll() is None, site.log(name)


def stored(db: Path, station: str) -> dict[str, tuple[int, int, int, int, int]]:
    """stream -> (rows, distinct seqs, min seq, max seq, samples), read with sqlite3."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute(
                "SELECT stream, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq), "
                "SUM(n_samples) FROM frames WHERE station = ? GROUP BY stream", (station,))
            return {r[0]: tuple(r[1:]) for r in rows}
        except sqlite3.OperationalError:  # no table yet
            return {}


def complete(db: Path, station: str, duration_s: float) -> bool:
    found = stored(db, station)
    return set(found) == set(STREAMS) and all(
        found[s][4] == duration_s * RATES[s] for s in STREAMS)


def assert_every_frame_once(db: Path, station: str, duration_s: float) -> None:
    found = stored(db, station)
    assert set(found) == set(STREAMS), found
    for stream, (rows, distinct, low, high, samples) in found.items():
        assert samples == duration_s * RATES[stream], (station, stream, found[stream])
        assert rows == distinct == high - low + 1 and low == 0, (station, stream, found[stream])


class Attacker:
    """A paho client with a station's credentials and a chosen client id."""

    def __init__(self, port: int, user: str, password: str, client_id: str, *,
                 clean: bool = False) -> None:
        """``clean=False`` would inherit the session's queue, ``True`` would discard it."""
        self.connack: object = None
        self.received: list[str] = []
        self._answered = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append(m.topic)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self._answered.wait(15), "no CONNACK"

    def _on_connect(self, client, _u, _f, reason_code, _p) -> None:
        self.connack = reason_code
        self._answered.set()
        if not reason_code.is_failure:  # take whatever a taken-over session would get
            client.subscribe([("#", 1), (topics.subscription(topics.FRAMES), 1)])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
def test_a_station_cannot_take_over_any_session_and_no_frame_is_lost(site):
    """While the pipeline and both agents stream, tm-a's credentials connect with the
    pipeline's, tm-b's and the services' client ids, on both listeners. The pipeline and
    tm-b are never disconnected; only tm-a's own agent is (its id is tm-a's), and it logs
    that and its reconnect; every frame of both stations is stored once."""
    duration = 16
    port = free_port()
    pipeline = site.pipeline("pipeline", port)
    wait_subscribed(site, pipeline, "pipeline", port)
    edges = [site.edge(s, duration, seed) for s, seed in zip(STATIONS, (3, 4), strict=True)]
    wait_until(lambda: all(stored(site.db, s) for s in STATIONS), 30, "frames of both")
    password = station_password(site.root, "tm-a")
    attackers = []
    for client_id in ATTACK_IDS:
        for clean in (False, True):
            on_services = Attacker(site.broker.services_port, "tm-a", password, client_id,
                                   clean=clean)
            assert on_services.connack == "Not authorized", on_services.connack
            on_services.close()
            attacker = Attacker(site.broker.port, "tm-a", password, client_id, clean=clean)
            assert not attacker.connack.is_failure  # its own account: let in, as tm-a
            attackers.append(attacker)
            time.sleep(0.5)
            attacker.close()
    for edge in edges:
        assert edge.wait(90) == 0, site.log(f"edge-{STATIONS[edges.index(edge)]}")[-3000:]
    for station in STATIONS:
        wait_until(lambda s=station: complete(site.db, s, duration), 60,
                   f"every sample of {station} in the store")
        assert_every_frame_once(site.db, station, duration)
    # the broker named each hostile connection tm-a, whatever id it asked for
    broker_log = site.broker.log()
    hostile = [line for line in broker_log.splitlines() if "u'tm-a')" in line]
    for client_id in ATTACK_IDS:
        assert not any(f" as {client_id} (" in line for line in hostile), client_id
    assert all(" as tm-a (" in line for line in hostile), hostile
    assert len(hostile) >= 2 * len(ATTACK_IDS) + 1  # the attacker's and the agent's own
    # tm-a reads only what its own account may: its control and store confirmation topics
    received = {topic for a in attackers for topic in a.received}
    assert received <= {topics.control("tm-a"), topics.stored("tm-a")}, received
    assert DISCONNECT not in site.log("pipeline"), site.log("pipeline")[-3000:]
    assert scrape_metrics(port)["hipstride_pipeline_mqtt_connected"] == 1
    assert DISCONNECT not in site.log("edge-tm-b"), site.log("edge-tm-b")[-3000:]
    own = site.log("edge-tm-a")  # tm-a's agent was taken over by its own credentials:
    assert DISCONNECT in own and "connection lost" in own and "reconnected to" in own, own


@pytest.mark.slow
def test_a_second_pipeline_for_the_same_partition_refuses_to_start(site):
    duration = 10
    port = free_port()
    first = site.pipeline("pipeline", port)
    wait_subscribed(site, first, "pipeline", port)
    edge = site.edge("tm-a", duration, 5)
    wait_until(lambda: stored(site.db, "tm-a"), 30, "the first frames")
    second = site.pipeline("pipeline-2", free_port(), state="state-2")
    assert second.wait(30) == 2, site.log("pipeline-2")
    refusal = site.log("pipeline-2")
    assert "partition 0/1 is already run by another pipeline" in refusal, refusal
    assert "--partition" in refusal
    assert edge.wait(60) == 0, site.log("edge-tm-a")[-3000:]
    wait_until(lambda: complete(site.db, "tm-a", duration), 60, "every sample of tm-a")
    assert_every_frame_once(site.db, "tm-a", duration)
    assert DISCONNECT not in site.log("pipeline"), site.log("pipeline")[-3000:]
    assert scrape_metrics(port).get("hipstride_pipeline_partition_conflicts_total", 0) == 0


@pytest.mark.slow
def test_a_claim_by_another_process_is_reported_and_nothing_is_lost(site):
    """Two processes that connected at the same moment (past the start-up check): the one
    that started later logs CRITICAL, counts it, stops with exit 2; a pipeline started
    afterwards (the claim has no heartbeat any more) stores every frame."""
    duration = 10
    port = free_port()
    first = site.pipeline("pipeline", port)
    wait_subscribed(site, first, "pipeline", port)
    edge = site.edge("tm-a", duration, 6)
    wait_until(lambda: stored(site.db, "tm-a"), 30, "the first frames")
    rival = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hipstride-rival",
                        protocol=mqtt.MQTTv311)
    rival.username_pw_set("pipeline", site.env["MQTT_PIPELINE_PASSWORD"])
    rival.connect("127.0.0.1", site.broker.services_port)
    rival.loop_start()
    claim = {"version": 1, "state": "running", "instance": "rival", "partition": "0/1",
             "since_ns": 1, "time_ns": time.time_ns(), "host": "elsewhere", "pid": 42}
    rival.publish(topics.pipeline_claim(0, 1), json.dumps(claim), qos=1,
                  retain=True).wait_for_publish(10)
    rival.disconnect()
    rival.loop_stop()
    assert first.wait(30) == 2, site.log("pipeline")
    log = site.log("pipeline")
    assert "CRITICAL" in log and "partition 0/1: another pipeline process" in log, log[-3000:]
    assert "pid 42 on host elsewhere" in log
    restarted = site.pipeline("pipeline-2", free_port())  # same state: waits out the claim
    assert edge.wait(60) == 0, site.log("edge-tm-a")[-3000:]
    wait_until(lambda: restarted.poll() is not None or complete(site.db, "tm-a", duration),
               60, "every sample of tm-a")
    assert restarted.poll() is None, site.log("pipeline-2")
    assert_every_frame_once(site.db, "tm-a", duration)
