"""Nothing lost even when the broker crashes: the edge keeps every frame until the store
confirms it (issue 11, docs/protocol.md "Store confirmation").

Real parts only: Mosquitto with persistence on but an autosave interval longer than the
test (so a SIGKILL loses everything it held: queued frames, the pipeline's session,
retained messages), InfluxDB 1.6 (``influxd``), the edge agent streaming the full simulated
sensor set in real time, and the pipeline as a subprocess writing to InfluxDB. In order:

1. the pipeline is SIGKILLed; frames queue in the broker for 6 s (PUBACKed to the agent);
2. the broker is SIGKILLed before any autosave, and restarted: the queue is gone;
3. the pipeline is restarted (the agent has resent the unconfirmed frames on reconnecting,
   but with the pipeline's session lost they went nowhere: the agent resends once more when
   they stay unconfirmed for ``confirm_timeout_s``);
4. the broker is SIGKILLed again with the pipeline up, and restarted;
5. InfluxDB is down for 10 s (the pipeline spools: durable, so it confirms), then back;
6. the agent is SIGKILLed and restarted on the same spool;
7. the agent is stopped (SIGTERM: it waits for the store's confirmation of the rest).

Then every frame the agent produced (its spool's sequence counters) is in InfluxDB exactly
once, one epoch, sequence numbers 0 … n-1 — counted by InfluxDB's HTTP API and by its
``influx`` CLI — and the agent's spool is empty. Before protocol 1.1 step 2 lost every
frame queued in step 1.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.service.test_faults_broker import (
    DB,
    WRITER,
    check_influx_cli,
    stored,
    stored_frames,
)
from tests.support.influxdb import InfluxDB
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS, PipelineProcess, clean_env, wait_until
from tests.support.witness import Witness

STATION = "tm1"
QUEUE_S = 6.0
OUTAGE_S = 10.0
EDGE_TOML = """\
status_interval_s = 1
[broker]
keepalive_s = 5
[store]
confirm_timeout_s = 3
"""


def start_edge(broker: Mosquitto, tmp_path: Path, run: int) -> subprocess.Popen:
    log = open(tmp_path / f"edge-{run}.log", "w")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", STATION, "--broker",
         broker.url_for(f"edge-{STATION}"), "--source", "sim", "--seed", str(30 + run),
         "--config", str(tmp_path / "edge.toml"), "--spool", str(tmp_path / "spool.sqlite")],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS[f"edge-{STATION}"]),
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def total(influx: InfluxDB) -> int:
    return sum(n for (s, _), n in stored(influx).items() if s == STATION)


def complete(influx: InfluxDB) -> bool:
    """Every stream stored without a hole so far: count == highest seq + 1."""
    try:
        series = influx.query("SELECT count(seq), max(seq) FROM frames GROUP BY stream",
                              database=DB)[0].get("series", [])
    except (RuntimeError, OSError):
        return False
    return len(series) == 6 and all(
        int(s["values"][0][1]) == int(s["values"][0][2]) + 1 for s in series)


def grows(influx: InfluxDB, timeout_s: float, what: str) -> int:
    before = total(influx)
    return wait_until(lambda: (n := total(influx)) > before and n, timeout_s, what)


def latest_store(witness: Witness) -> dict:
    online = [s for s in witness.status if s.get("state") == "online"]
    return online[-1]["store"] if online else {}


def spool_state(tmp_path: Path) -> tuple[int, dict[str, int], int]:
    """(epoch, produced frames per stream, frames still spooled) — the agent's own spool."""
    with sqlite3.connect(f"file:{tmp_path / 'spool.sqlite'}?mode=ro", uri=True) as db:
        epoch = int(db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])
        produced = dict(db.execute("SELECT stream, next_seq FROM streams"))
        left = int(db.execute("SELECT COUNT(*) FROM frames").fetchone()[0])
    return epoch, produced, left


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_frame_is_stored_once_though_the_broker_loses_what_it_acknowledged(tmp_path):
    (tmp_path / "edge.toml").write_text(EDGE_TOML)
    broker = Mosquitto(tmp_path / "mosquitto", USERS, autosave_interval_s=3600)
    broker.start()
    influx = InfluxDB(tmp_path / "influxdb")
    influx.start()
    influx.create_database(DB, users=dict([WRITER]))
    pipeline = PipelineProcess(broker, f"influx://{WRITER[0]}@127.0.0.1:{influx.port}/{DB}",
                               tmp_path, token=WRITER[1])
    witness = Witness(broker.port, "coach", USERS["coach"], STATION)
    edge: subprocess.Popen | None = None
    try:
        pipeline.start()
        edge = start_edge(broker, tmp_path, 1)
        grows(influx, 30, "the first frames in InfluxDB")
        assert witness.wait_for(lambda w: latest_store(w).get("state") == "confirming", 15)

        # 1.-2. frames queue in the broker for a dead pipeline; the broker crashes unsaved
        pipeline.kill()
        before_crash = total(influx)
        time.sleep(QUEUE_S)
        assert witness.wait_for(
            lambda w: latest_store(w).get("acked_unconfirmed_frames", 0) > 300, 5), \
            f"the broker did not take frames while the pipeline was down: {latest_store(witness)}"
        broker.stop(signal.SIGKILL)
        broker.start()

        # 3. the pipeline comes back: the agent's resends fill what the broker lost
        pipeline.start()
        wait_until(lambda: total(influx) > before_crash + 1000 and complete(influx), 60,
                   "every frame queued in the crashed broker stored after all")
        assert latest_store(witness)["resends"] >= 1

        # 4. the broker crashes again, with the pipeline up
        broker.stop(signal.SIGKILL)
        broker.start()
        grows(influx, 40, "frames stored after the second broker crash")
        wait_until(lambda: complete(influx), 40, "no hole after the second broker crash")

        # 5. InfluxDB down for 10 s: the pipeline spools (durable: it confirms), replays
        influx.stop()
        down_at = time.monotonic()
        wait_until(lambda: pipeline.metric("hipstride_pipeline_spool_batches"), OUTAGE_S,
                   "the pipeline to spool while InfluxDB is down")
        assert witness.wait_for(lambda w: latest_store(w).get("state") == "confirming" and
                                latest_store(w).get("last_confirmation_age_s", 99) < 3, 5)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        influx.start()
        wait_until(lambda: pipeline.metric("hipstride_pipeline_spool_batches") == 0, 60,
                   "the store spool replayed into InfluxDB")

        # 6. the agent is killed and restarted on its spool
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        edge = start_edge(broker, tmp_path, 2)
        grows(influx, 40, "frames stored from the restarted agent")

        # 7. the agent stops: it waits until the store has confirmed everything
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(60) == 0, (tmp_path / "edge-2.log").read_text()[-3000:]
        epoch, produced, left = spool_state(tmp_path)
        assert left == 0, f"{left} frames never confirmed by the store"
        expected = {(STATION, s): n for s, n in produced.items()}
        wait_until(lambda: stored(influx) == expected, 30,
                   f"every produced frame in InfluxDB: {expected} vs {stored(influx)}")
        for stream, n in produced.items():
            rows = stored_frames(influx, STATION, stream)
            seqs = sorted(seq for _t, _e, seq, _n in rows)
            assert seqs == list(range(n)), f"{stream}: {len(seqs)} stored of {n}"
            assert {e for _t, e, _s, _n in rows} == {epoch}, stream
        check_influx_cli(influx, expected)
        assert sum(produced.values()) > 2000
    finally:
        if edge is not None and edge.poll() is None:
            edge.kill()
            edge.wait(10)
        witness.close()
        pipeline.stop()
        influx.stop()
        broker.stop()
