"""``hipstride pipeline`` end to end: a real Mosquitto, the real edge agent and the pipeline as
subprocesses, a real store (SQLite file or InfluxDB 1.x server) read back by independent
witnesses (``sqlite3``, InfluxDB's HTTP API and ``influx`` CLI).

The scenario, per store: the pipeline subscribes; station tm1 streams 24 s of the full sensor
set in real time; once stride rows are in the store the pipeline is SIGKILLed and
restarted on the same state; a burst of malformed frames is published on tm2's topics with
``mosquitto_pub``. Asserted: every sample of tm1 is in the frame index exactly once, sequence
numbers contiguous, stride rows stored; tm2's rejections counted by reason on ``/metrics``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hipstride.frames import encode_frame
from hipstride.recording import read_recording
from hipstride.streams import IMU_SEGMENTS, emg_description
from tests.support.influxdb import InfluxDB
from tests.support.mosquitto import MOSQUITTO, Mosquitto
from tests.support.pipeline import USERS, PipelineProcess, clean_env, wait_until

DURATION_S = 22
STREAMS = {"emg": 2000.0, **{f"imu_{s}": 200.0 for s in IMU_SEGMENTS}}
EXPECTED = {stream: int(DURATION_S * rate) for stream, rate in STREAMS.items()}
MOSQUITTO_PUB = MOSQUITTO.replace("sbin/mosquitto", "bin/mosquitto_pub")


def start_edge(broker: Mosquitto, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
         broker.url_for("edge-tm1"), "--source", "sim", "--duration", str(DURATION_S),
         "--seed", "11", "--spool", str(tmp_path / "edge-spool.sqlite")],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["edge-tm1"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mosquitto_pub(broker: Mosquitto, topic: str, *args: str, stdin: str | None = None) -> None:
    subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "edge-tm2",
                    "-P", USERS["edge-tm2"], "-q", "1", "-t", topic, *args],
                   input=stdin, text=stdin is not None, check=True, timeout=10,
                   capture_output=True)


def malformed_burst(broker: Mosquitto, pipeline: PipelineProcess, workdir: Path) -> None:
    """Garbage and hostile frames on tm2's topics; ends with one good tm2 frame."""
    topic = "hipstride/v1/tm2/frames/emg"
    desc = emg_description()
    good = np.full((100, 6), 0.1, dtype="float32")

    def frame_file(name: str, payload: bytes) -> str:
        path = workdir / f"{name}.bin"
        path.write_bytes(payload)
        return str(path)

    t0 = time.time_ns()
    mosquitto_pub(broker, topic, "-f", frame_file("early", encode_frame("emg", 0, t0, 2000.0,
                                                                         good)))
    wait_until(lambda: pipeline.metric(
        'hipstride_pipeline_rejected_total{station="tm2",reason="no_description"}') == 1, 10,
        "the frame without a description to be rejected")
    mosquitto_pub(broker, "hipstride/v1/tm2/streams/emg", "-r", "-f",
                  frame_file("desc", desc.to_json()))
    mosquitto_pub(broker, topic, "-l", stdin="".join(f"garbage {i}\n" for i in range(50)))
    nan = good.copy()
    nan[3, 2] = np.nan
    whole = encode_frame("emg", 1, t0, 2000.0, good)
    corrupt = bytearray(whole)
    corrupt[60] ^= 0x55
    for name, payload in {
        "nan": encode_frame("emg", 1, t0, 2000.0, nan),
        "channels": encode_frame("emg", 1, t0, 2000.0, good[:, :4]),
        "truncated": whole[:-20],
        "checksum": bytes(corrupt),
        "mismatch": encode_frame("imu_pelvis", 1, t0, 200.0, good),
        "dtype": encode_frame("emg", 1, t0, 2000.0, good.astype("int16")),
        "good": encode_frame("emg", 1, t0 + 50_000_000, 2000.0, good),
    }.items():
        mosquitto_pub(broker, topic, "-f", frame_file(name, payload))


def sqlite_counts(path: Path) -> Callable[[], dict[str, tuple[int, int]]]:
    def counts() -> dict[str, tuple[int, int]]:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT stream, COUNT(*), SUM(n_samples) FROM frames WHERE "
                              "station = 'tm1' GROUP BY stream").fetchall()
        return {s: (int(n), int(total)) for s, n, total in rows}
    return counts


def sqlite_strides(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM strides WHERE station = 'tm1'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def sqlite_seqs(path: Path, stream: str) -> list[tuple[int, int]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT epoch, seq FROM frames WHERE station = 'tm1' AND stream = ? "
                          "ORDER BY time_ns", (stream,)).fetchall()


def influx_series(influx: InfluxDB, q: str) -> list[dict]:
    return influx.query(q, database="hipstride")[0].get("series", [])


def influx_counts(influx: InfluxDB) -> Callable[[], dict[str, tuple[int, int]]]:
    def counts() -> dict[str, tuple[int, int]]:
        out = {}
        for s in influx_series(influx, "SELECT count(n_samples), sum(n_samples) FROM frames "
                                       "WHERE station = 'tm1' GROUP BY stream"):
            _t, n, total = s["values"][0]
            out[s["tags"]["stream"]] = (int(n), int(total))
        return out
    return counts


def influx_strides(influx: InfluxDB) -> int:
    series = influx_series(influx, "SELECT count(stride_index) FROM strides "
                                   "WHERE station = 'tm1'")
    return int(series[0]["values"][0][1]) if series else 0


def influx_seqs(influx: InfluxDB, stream: str) -> list[tuple[int, int]]:
    series = influx_series(influx, f"SELECT epoch, seq FROM frames WHERE station = 'tm1' AND "
                                   f"stream = '{stream}'")
    return [(int(e), int(s)) for _t, e, s in series[0]["values"]] if series else []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["sqlite", "influx"])
def test_every_sample_once_across_a_sigkill_and_a_malformed_burst(kind, broker, tmp_path):
    influx: InfluxDB | None = None
    if kind == "sqlite":
        db_path = tmp_path / "store.sqlite"
        pipeline = PipelineProcess(broker, f"sqlite:///{db_path}", tmp_path)
        counts, strides = sqlite_counts(db_path), lambda: sqlite_strides(db_path)
        seqs = lambda stream: sqlite_seqs(db_path, stream)  # noqa: E731
    else:
        influx = InfluxDB(tmp_path / "influxdb")
        influx.start()
        influx.create_database("hipstride", users={"writer": "writer-secret"})
        pipeline = PipelineProcess(broker, f"influx://writer@127.0.0.1:{influx.port}/hipstride",
                                   tmp_path, token="writer-secret")
        counts, strides = influx_counts(influx), lambda: influx_strides(influx)
        seqs = lambda stream: influx_seqs(influx, stream)  # noqa: E731
    edge = None
    try:
        pipeline.start()
        edge = start_edge(broker, tmp_path)
        wait_until(strides, 25, "the first stride rows in the store")
        pipeline.kill()                      # no flush, no ack, no goodbye
        first_run = counts()
        pipeline.start()
        malformed_burst(broker, pipeline, tmp_path)
        _out, err = edge.communicate(timeout=30)
        assert edge.returncode == 0, err
        wait_until(lambda: {s: c[1] for s, c in counts().items()} == EXPECTED, 20,
                   f"exact sample counts {EXPECTED}")
        metrics = pipeline.metrics()
        check_store(counts, strides, seqs, tmp_path)
        check_metrics(metrics)
        if influx is not None:
            check_influx_cli(influx)
    finally:
        if edge is not None and edge.poll() is None:
            edge.kill()
        code = pipeline.stop()
        if influx is not None:
            influx.stop()
    assert code == 0, pipeline.log()
    assert first_run and all(first_run[s][1] < EXPECTED[s] for s in first_run), first_run
    if kind == "sqlite":
        check_recording(tmp_path)


def check_store(counts, strides, seqs, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "edge-spool.sqlite") as db:
        produced = dict(db.execute("SELECT stream, next_seq FROM streams"))
    for stream in STREAMS:  # every frame once, contiguous, one epoch
        got = seqs(stream)
        assert sorted(s for _e, s in got) == list(range(produced[stream])), stream
        assert len({e for e, _s in got}) == 1
    assert strides() > 0


def check_metrics(metrics: dict[str, float]) -> None:
    rejected = {k.split('reason="')[1].rstrip('"}'): v for k, v in metrics.items()
                if k.startswith('hipstride_pipeline_rejected_total{station="tm2"')}
    assert rejected == {"no_description": 1, "inconsistent": 50, "non_finite": 1,
                        "channel_count": 1, "truncated": 1, "checksum": 1,
                        "stream_mismatch": 1, "dtype": 1}, rejected
    assert metrics['hipstride_pipeline_frames_total{station="tm2",stream="emg"}'] == 1
    assert not any('station="tm1"' in k for k in metrics if "rejected_total" in k)
    assert metrics["hipstride_pipeline_spool_batches"] == 0


def check_recording(tmp_path: Path) -> None:
    """The raw recording holds every frame (some maybe twice after the kill)."""
    rec = read_recording(next((tmp_path / "recordings" / "tm1").glob("tm1-*.hsrec")))
    unique = {(f.stream, f.epoch, f.seq): f.n_samples for f in rec.frames}
    assert {s: sum(n for (st, _e, _q), n in unique.items() if st == s)
            for s in STREAMS} == EXPECTED
    assert set(rec.descriptions) == set(STREAMS)


def check_influx_cli(influx: InfluxDB) -> None:
    """InfluxDB's own CLI agrees on every stream's sample count."""
    out = json.loads(influx.cli("hipstride", "SELECT sum(n_samples) FROM frames WHERE "
                                             "station = 'tm1' GROUP BY stream",
                                user=("writer", "writer-secret")))
    cli = {s["tags"]["stream"]: s["values"][0][1] for r in out["results"]
           for s in r["series"]}
    assert cli == EXPECTED
