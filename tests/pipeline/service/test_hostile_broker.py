"""A hostile station against the deployment's own broker while a good station streams.

Real parts throughout: Debian's Mosquitto with deploy/mosquitto/mosquitto.conf and the
passwd/ACL files written by the real ``hipstride admin init`` / ``add-station tm1 tm2``
(tests/support/deploy.py); the pipeline as a subprocess with the compose service's environment
(its broker account on the services' listener), a SQLite store; the good station is a real
``hipstride edge`` agent with the simulator (account tm1) streaming 40 s; the hostile one is a
paho client with tm2's own account, so under the ACLs it can publish only under
``hipstride/v1/tm2/``. It sends every poison of issue 10 — seq ≥ 2⁶³, rates of 1e-300 Hz,
``true`` and NaN, 20,000 channels, frames dated 1970/1677/2262, jumps of 2 h and 22 h, a day
ahead, 2,000 stream names, garbage — again and again.

Asserted: the pipeline never exits and its RSS (``/proc/<pid>/status``) stays under 1 GB; every
sample of tm1 is in the store once, with contiguous sequence numbers per stream, counted with
the ``sqlite3`` module (an independent reader of the store's file); tm2's rejections are
counted by reason on ``/metrics``, tm1 has none.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.pipeline.service.hostile import EMG, emg_frame, now_ns, poison
from tests.support.deploy import (
    ComposeMosquitto,
    interpolate,
    load_compose,
    make_site,
    station_password,
    to_host,
    volume_map,
)
from tests.support.mosquitto import free_port
from tests.support.pipeline import clean_env, scrape_metrics, stop_process, wait_until

pytestmark = pytest.mark.slow

DURATION_S = 40
FLOOD_S = 32
STREAMS = ("emg", "imu_pelvis", "imu_thigh_l", "imu_thigh_r", "imu_shank_l", "imu_shank_r")
RATES = {"emg": 2000, **{s: 200 for s in STREAMS[1:]}}
RSS_LIMIT_KB = 1024 * 1024


def pipeline_environment(env: dict[str, str], broker_port: int, metrics_port: int,
                         volumes: dict[str, Path], store: str) -> dict[str, str]:
    """The compose service's environment, host names mapped to loopback, a SQLite store."""
    service = load_compose()["services"]["pipeline"]
    environment = {k: str(v) for k, v in interpolate(service["environment"], env).items()}
    out = {k: to_host(v.replace("@mosquitto:1884", f"@127.0.0.1:{broker_port}"), volumes)
           for k, v in environment.items()}
    out.update(HIPSTRIDE_STORE=store, HIPSTRIDE_METRICS_PORT=str(metrics_port))
    out.pop("HIPSTRIDE_STORE_TOKEN", None)
    return out


def rss_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1))




class Hostile(threading.Thread):
    """tm2's account publishing poison under its own prefix until ``stop`` or FLOOD_S."""

    def __init__(self, port: int, password: str) -> None:
        super().__init__(name="hostile", daemon=True)
        self.stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hipstride-edge-tm2")
        c.username_pw_set("tm2", password)
        c.max_inflight_messages_set(200)
        c.max_queued_messages_set(5000)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)
        self.sent += 1

    def run(self) -> None:
        p = "hipstride/v1/tm2"
        end = time.monotonic() + FLOOD_S
        rnd = 0
        try:
            while not self.stop.is_set() and time.monotonic() < end:
                started = time.monotonic()
                for topic, payload in poison("tm2", now_ns()):
                    self.publish(topic, payload)
                for k in range(rnd * 100, rnd * 100 + 100) if rnd < 20 else ():
                    name = f"f{k:04d}"  # 2,000 stream names over the first 20 rounds
                    body = {**json.loads(EMG.to_json()), "stream": name}
                    self.publish(f"{p}/streams/{name}", json.dumps(body).encode())
                    self.publish(f"{p}/frames/{name}", emg_frame(k, now_ns(), stream=name))
                for i in range(20):
                    self.publish(f"{p}/frames/emg", os.urandom(i * 37))
                    self.publish(f"{p}/control", os.urandom(i * 5))
                    self.publish(f"{p}/status", os.urandom(i * 3), retain=True)
                rnd += 1
                self.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
        except BaseException as err:  # reported by the test
            self.error = err
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def stored(path: Path, station: str) -> dict[str, tuple[int, int, int, int, int]]:
    """stream -> (frames, distinct seqs, min seq, max seq, samples), read with sqlite3."""
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT stream, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq), "
                          "SUM(n_samples) FROM frames WHERE station = ? GROUP BY stream",
                          (station,)).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_a_hostile_station_cannot_stop_flood_or_starve_the_pipeline(tmp_path):
    site = tmp_path / "site"
    env = make_site(site, ("tm1", "tm2"))
    broker = ComposeMosquitto(tmp_path / "mosquitto", site)
    broker.start()
    store = tmp_path / "store.db"
    metrics_port = free_port()
    volumes = volume_map(load_compose()["services"]["pipeline"], site, tmp_path / "volumes")
    environment = pipeline_environment(env, broker.services_port, metrics_port, volumes,
                                       f"sqlite:///{store}")
    log_path = tmp_path / "pipeline.log"
    with open(log_path, "w") as log:
        pipeline = subprocess.Popen([sys.executable, "-m", "hipstride.cli", "pipeline"],
                                    env=clean_env(**environment), stdout=log,
                                    stderr=subprocess.STDOUT)
    edge: subprocess.Popen | None = None
    hostile: Hostile | None = None
    peak_kb = 0
    try:
        wait_until(lambda: pipeline.poll() is not None or
                   scrape_metrics(metrics_port).get("hipstride_pipeline_mqtt_subscribed") == 1, 60,
                   "the pipeline to subscribe")
        assert pipeline.poll() is None, log_path.read_text()[-3000:]
        edge_config = tmp_path / "edge.toml"
        edge_config.write_text(
            f'station = "tm1"\nsource = "sim"\n[broker]\n'
            f'url = "mqtt://tm1@127.0.0.1:{broker.port}"\n'
            f'password_file = "{site / "tm1.password"}"\n'
            f'[spool]\npath = "{tmp_path / "spool.sqlite"}"\n')
        with open(tmp_path / "edge.log", "w") as log:
            edge = subprocess.Popen(
                [sys.executable, "-m", "hipstride.cli", "edge", "--config", str(edge_config),
                 "--duration", str(DURATION_S), "--seed", "3"],
                env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
        time.sleep(2)  # the good station is streaming when the attack starts
        hostile = Hostile(broker.port, station_password(site, "tm2"))
        hostile.start()
        deadline = time.monotonic() + DURATION_S + 60
        while edge.poll() is None and time.monotonic() < deadline:
            assert pipeline.poll() is None, ("the pipeline exited:\n"
                                             + log_path.read_text()[-5000:])
            peak_kb = max(peak_kb, rss_kb(pipeline.pid))
            time.sleep(0.5)
        assert edge.returncode == 0, (tmp_path / "edge.log").read_text()[-3000:]
        hostile.join(30)
        assert hostile.error is None, repr(hostile.error)
        assert hostile.sent > 3000

        expected = {s: DURATION_S * RATES[s] for s in STREAMS}

        def complete() -> bool:
            nonlocal peak_kb
            assert pipeline.poll() is None, log_path.read_text()[-5000:]
            peak_kb = max(peak_kb, rss_kb(pipeline.pid))
            got = stored(store, "tm1")
            return {s: v[4] for s, v in got.items()} == expected

        wait_until(complete, 60, f"every sample of tm1 in the store ({expected})")
        for stream, (frames, distinct, low, high, _samples) in stored(store, "tm1").items():
            assert frames == distinct == high - low + 1 and low == 0, (stream, frames,
                                                                       distinct, low, high)
        assert peak_kb < RSS_LIMIT_KB, f"pipeline RSS reached {peak_kb / 1024:.0f} MB"
        m = scrape_metrics(metrics_port)
        rejected = {k: v for k, v in m.items() if k.startswith(
            "hipstride_pipeline_rejected_total")}
        for reason in ("seq_range", "time_window", "bad_description", "too_many_streams",
                       "inconsistent", "no_description"):
            key = f'hipstride_pipeline_rejected_total{{station="tm2",reason="{reason}"}}'
            assert rejected.get(key, 0) >= 1, (reason, rejected)
        assert not any('station="tm1"' in k for k in rejected), rejected
        assert m.get('hipstride_pipeline_time_jumps_total{station="tm2",stream="emg"}', 0) >= 2
        assert not any(k.startswith("hipstride_pipeline_quarantined_total") for k in m)
        assert pipeline.poll() is None
    finally:
        if hostile is not None:
            hostile.stop.set()
            hostile.join(10)
        if edge is not None:
            stop_process(edge, 10)
        stop_process(pipeline, 30)
        broker.stop()
