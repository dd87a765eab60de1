"""The fault matrix, end to end, in one run: nothing lost, nothing stored twice.

Real parts only: Mosquitto, InfluxDB 1.6 (``influxd``), two edge agents streaming the full
simulated sensor set in real time, and the pipeline as a subprocess writing to InfluxDB.
Station tm2 reaches the broker through a loopback TCP relay the test can cut
(``tests/support/netfault.py``): its Wi-Fi.

While both stations stream, in this order:

1. the broker is restarted (SIGTERM, then started on the same port and persistence; a
   SIGKILLed Mosquitto loses acknowledged messages it had not autosaved yet — documented);
2. InfluxDB is stopped for 10 s and started again on the same data and port: the pipeline
   spools (``spool_batches`` > 0 seen on ``/metrics`` during the outage), is SIGKILLed and
   restarted while its spool is full (the spool is in its state DB), and replays;
3. the pipeline is SIGKILLed and restarted on the same state directory;
4. tm2's Wi-Fi drops for 10 s: tm1 keeps being stored, tm2's agent spools and sends later.

Then the agents are stopped (SIGTERM: flush, drain, exit 0) and, once the pipeline has
stored everything, the store is read back by InfluxDB's HTTP API and its ``influx`` CLI. For
every (station, stream): the sequence numbers are exactly 0 … produced-1 (the agent's own
spool says how many it produced), one epoch, no number twice, and the samples add up to the
agent's own count (its last status). The pipeline reported no sequence gaps.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.influxdb import InfluxDB
from tests.support.mosquitto import Mosquitto
from tests.support.netfault import TcpRelay
from tests.support.pipeline import USERS, PipelineProcess, clean_env, wait_until
from tests.support.witness import Witness

STATIONS = ("tm1", "tm2")
DB = "hipstride"
WRITER = ("writer", "writer-secret")
OUTAGE_S = 10.0
GAP = "hipstride_pipeline_sequence_missing_frames"


def start_edge(station: str, port: int, tmp_path: Path, seed: int) -> subprocess.Popen:
    """The real agent with the simulator, until stopped; its broker is ``127.0.0.1:port``."""
    log = open(tmp_path / f"edge-{station}.log", "w")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", station, "--broker",
         f"mqtt://edge-{station}@127.0.0.1:{port}", "--source", "sim", "--seed", str(seed),
         "--spool", str(tmp_path / f"spool-{station}.sqlite")],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS[f"edge-{station}"]),
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def stored(influx: InfluxDB) -> dict[tuple[str, str], int]:
    """Frame index points per (station, stream), read by InfluxDB's HTTP API."""
    try:
        series = influx.query("SELECT count(seq) FROM frames GROUP BY station, stream",
                              database=DB)[0].get("series", [])
    except (RuntimeError, OSError):
        return {}
    return {(s["tags"]["station"], s["tags"]["stream"]): int(s["values"][0][1])
            for s in series}


def per_station(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    out = dict.fromkeys(STATIONS, 0)
    for (station, _stream), n in counts.items():
        out[station] = out.get(station, 0) + n
    return out


def wait_growing(influx: InfluxDB, stations: tuple[str, ...], timeout_s: float, what: str
                 ) -> dict[str, int]:
    """Until each station has more frames stored than now."""
    before = per_station(stored(influx))
    return wait_until(lambda: (now := per_station(stored(influx))) and all(
        now[s] > before[s] for s in stations) and now, timeout_s, what)


def settled(influx: InfluxDB, station: str, timeout_s: float, what: str) -> int:
    """A station's stored frame count once it has not changed for 1.5 s."""
    last: list[int] = []

    def steady() -> int | None:
        last.append(per_station(stored(influx))[station])
        return last[-1] if len(last) > 7 and len(set(last[-8:])) == 1 else None
    return wait_until(steady, timeout_s, what)


def gaps(pipeline: PipelineProcess) -> dict[str, float]:
    return {k: v for k, v in pipeline.metrics().items() if k.startswith(GAP)}


def edge_spool(tmp_path: Path, station: str) -> tuple[int, dict[str, int], int, int]:
    """(epoch, produced frames per stream, frames still spooled, evicted frames)."""
    with sqlite3.connect(f"file:{tmp_path / f'spool-{station}.sqlite'}?mode=ro",
                         uri=True) as db:
        epoch = int(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])
        produced = dict(db.execute("SELECT stream, next_seq FROM streams"))
        left = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        evicted = db.execute("SELECT COALESCE(SUM(evicted_frames), 0) FROM streams"
                             ).fetchone()[0]
    return epoch, produced, int(left), int(evicted)


def stored_frames(influx: InfluxDB, station: str, stream: str) -> list[tuple[int, int, int, int]]:
    """(time, epoch, seq, n_samples) of every stored frame of one stream."""
    series = influx.query(f"SELECT epoch, seq, n_samples FROM frames WHERE station = "
                          f"'{station}' AND stream = '{stream}'", database=DB)[0].get("series")
    return [tuple(int(v) for v in row) for row in series[0]["values"]] if series else []


@pytest.mark.timeout(300)
def test_nothing_lost_or_doubled_across_the_fault_matrix(broker: Mosquitto, tmp_path):
    influx = InfluxDB(tmp_path / "influxdb")
    influx.start()
    influx.create_database(DB, users=dict([WRITER]))
    pipeline = PipelineProcess(broker, f"influx://{WRITER[0]}@127.0.0.1:{influx.port}/{DB}",
                               tmp_path, token=WRITER[1])
    wifi = TcpRelay(broker.port)              # tm2's link to the broker
    witnesses = {s: Witness(broker.port, "coach", USERS["coach"], s) for s in STATIONS}
    edges: dict[str, subprocess.Popen] = {}
    try:
        pipeline.start()
        edges = {"tm1": start_edge("tm1", broker.port, tmp_path, seed=21),
                 "tm2": start_edge("tm2", wifi.port, tmp_path, seed=22)}
        wait_growing(influx, STATIONS, 30, "both stations' first frames in InfluxDB")

        # 1. broker restart: SIGTERM (persistence saved), same port and persistence file
        broker.stop(signal.SIGTERM)
        broker.start()
        wait_growing(influx, STATIONS, 40, "both stations stored again after the broker "
                                           "restart")

        # 2. InfluxDB down for 10 s: the pipeline spools, then replays
        influx.stop()
        down_at = time.monotonic()
        spooled = wait_until(lambda: pipeline.metric("hipstride_pipeline_spool_batches"),
                             OUTAGE_S, "the pipeline to spool batches while InfluxDB is down")
        assert pipeline.metric("hipstride_pipeline_store_up") == 0
        pipeline.kill()                       # the spool must survive a crash too
        pipeline.start()
        assert pipeline.metric("hipstride_pipeline_spool_batches") >= spooled > 0
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        influx.start()
        wait_until(lambda: pipeline.metric("hipstride_pipeline_spool_batches") == 0, 60,
                   "the store spool to be replayed into InfluxDB")
        assert pipeline.metric("hipstride_pipeline_store_up") == 1
        wait_growing(influx, STATIONS, 20, "both stations stored directly after the replay")

        # 3. pipeline SIGKILL and restart on the same state
        wait_until(lambda: gaps(pipeline) and not any(gaps(pipeline).values()), 10,
                   f"no sequence gaps in the first pipeline run: {gaps(pipeline)}")
        pipeline.kill()
        pipeline.start()
        wait_growing(influx, STATIONS, 40, "both stations stored after the pipeline restart")

        # 4. tm2's Wi-Fi drops for 10 s; tm1 (same broker) is unaffected
        wifi.cut()
        cut_at = time.monotonic()
        tm2_during = settled(influx, "tm2", 8, "tm2's frames sent before the cut to be stored")
        wait_growing(influx, ("tm1",), 10, "tm1 stored while tm2 is cut off")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
        assert per_station(stored(influx))["tm2"] == tm2_during, "tm2 got through a cut link"
        assert edge_spool(tmp_path, "tm2")[2] > 0, "tm2's agent did not spool while cut off"
        assert wifi.refused > 0, "tm2's agent did not try to reconnect during the drop"
        wifi.restore()
        wait_growing(influx, ("tm2",), 40, "tm2 stored again after its Wi-Fi came back")
        assert witnesses["tm2"].wait_for(
            lambda w: any(s.get("reason") == "connection lost" for s in w.status), 5), \
            "the broker never published tm2's last will: did the link really drop?"

        # the end: agents stop cleanly (flush, drain), the pipeline stores the rest
        for proc in edges.values():
            proc.send_signal(signal.SIGTERM)
        for station, proc in edges.items():
            assert proc.wait(60) == 0, (tmp_path / f"edge-{station}.log").read_text()[-3000:]
        spools = {s: edge_spool(tmp_path, s) for s in STATIONS}
        expected = {(s, stream): n for s, (_e, produced, _l, _v) in spools.items()
                    for stream, n in produced.items()}
        wait_until(lambda: stored(influx) == expected, 60,
                   f"every produced frame in InfluxDB: {expected}")
        metrics = pipeline.metrics()
        for station, (epoch, produced, left, evicted) in spools.items():
            assert left == 0 and evicted == 0, (station, left, evicted)
            status = [s for s in witnesses[station].status if s.get("state") == "online"][-1]
            for stream, n in produced.items():
                check_stream(influx, station, stream, epoch, n,
                             status["streams"][stream]["samples"])
                assert metrics.get(f'{GAP}{{station="{station}",stream="{stream}"}}') == 0
        check_influx_cli(influx, expected)
        assert metrics["hipstride_pipeline_spool_batches"] == 0
        assert metrics["hipstride_pipeline_refused_batches"] == 0
        assert wifi.cuts == 1 and wifi.accepted >= 2
    finally:
        for proc in edges.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for w in witnesses.values():
            w.close()
        wifi.close()
        code = pipeline.stop()
        influx.stop()
    assert code == 0, pipeline.log()[-3000:]
    assert "store spool replayed" in pipeline.log()


def check_stream(influx: InfluxDB, station: str, stream: str, epoch: int, produced: int,
                 samples: int) -> None:
    """Exactly frames 0 … produced-1 of the agent's epoch, once each, all their samples."""
    rows = stored_frames(influx, station, stream)
    seqs = sorted(seq for _t, _e, seq, _n in rows)
    where = f"{station}/{stream}"
    assert seqs == list(range(produced)), f"{where}: {len(seqs)} stored of {produced}"
    assert {e for _t, e, _s, _n in rows} == {epoch}, where
    assert len({t for t, *_ in rows}) == len(rows), f"{where}: two frames at one time"
    assert sum(n for *_, n in rows) == samples, f"{where}: samples differ from the agent's"


def check_influx_cli(influx: InfluxDB, expected: dict[tuple[str, str], int]) -> None:
    """InfluxDB's own CLI agrees: count and distinct sequence numbers per stream."""
    out = json.loads(influx.cli(DB, "SELECT count(seq), count(distinct(seq)) FROM frames "
                                    "GROUP BY station, stream", user=WRITER))
    got = {(s["tags"]["station"], s["tags"]["stream"]): tuple(s["values"][0][1:])
           for r in out["results"] for s in r.get("series", [])}
    assert got == {k: (n, n) for k, n in expected.items()}
