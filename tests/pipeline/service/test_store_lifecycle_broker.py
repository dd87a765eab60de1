"""The database's lifecycle end to end: real Mosquitto, the real edge agent and the pipeline
as subprocesses, the run's real influxd (1.6.7, auth on), the ``influx`` CLI as witness.

- a fresh server with no database: the pipeline (admin account) creates it, strides land; the
  database dropped mid-run is created again, nothing refused, nothing lost after the drop;
- an account that may not create it: exit 2 with the statements to run, before any message;
- a field type conflict: batches refused (not spooled), ``/health`` says so; replayed with
  ``--replay-refused`` (exit 1 while the cause is there, 0 once the measurement is dropped);
- the database dropped under a non-admin account: an outage (spooled, ``/health`` 503 naming
  the missing database, nothing refused), all of it stored once an admin re-creates it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from itertools import count
from pathlib import Path

import pytest

from tests.support.influxdb import InfluxDB
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS, PipelineProcess, clean_env, wait_until

_ids = count()
#: Frames of a stream stored before the drop was seen may be lost with the database; from this
#: many frames after the edge's count at the drop (>= 250 ms of data) on, all must be there.
DROP_SLACK_FRAMES = 5


def names(prefix: str) -> tuple[str, tuple[str, str]]:
    """A fresh database name and a fresh (non-admin) user for one test on the shared server."""
    n = f"{os.getpid()}_{next(_ids)}"  # unique on the run's shared server
    return f"lcb_{prefix}_{n}", (f"lcb_{prefix}_user_{n}", f"secret-{n}")


def start_edge(broker: Mosquitto, tmp_path: Path, duration_s: float) -> subprocess.Popen:
    log = open(tmp_path / "edge.log", "w")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
         broker.url_for("edge-tm1"), "--source", "sim", "--duration", str(duration_s),
         "--seed", "5", "--spool", str(tmp_path / "edge-spool.sqlite")],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["edge-tm1"]),
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def produced(tmp_path: Path) -> dict[str, int]:
    """Frames the agent made per stream (its own spool's next sequence number)."""
    with sqlite3.connect(f"file:{tmp_path / 'edge-spool.sqlite'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT stream, next_seq FROM streams"))


def cli_json(influxd: InfluxDB, db: str, q: str) -> list[dict]:
    """The series of one statement; the CLI sends a long answer in chunks (one ``results``
    entry each, a series possibly split across them)."""
    return [s for r in json.loads(influxd.cli(db, q))["results"] for s in r.get("series") or []]


def stored_seqs(influxd: InfluxDB, db: str) -> dict[str, list[int]]:
    """Sequence numbers of tm1's stored frames per stream, read by the ``influx`` CLI."""
    out = {}
    for s in cli_json(influxd, db, "SELECT seq FROM frames WHERE station = 'tm1' "
                                   "GROUP BY stream"):
        out.setdefault(s["tags"]["stream"], []).extend(int(v[1]) for v in s["values"])
    return {stream: sorted(seqs) for stream, seqs in out.items()}


def count_frames(influxd: InfluxDB, db: str) -> int:
    try:
        series = influxd.query("SELECT count(seq) FROM frames", database=db)[0].get("series")
    except RuntimeError:  # e.g. the database is gone
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def health(p: PipelineProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{p.port}/health", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def accepted(p: PipelineProcess) -> int:
    """tm1's frames the pipeline accepted (``frames_total``)."""
    return int(sum(v for k, v in p.metrics().items()
                   if k.startswith('hipstride_pipeline_frames_total{station="tm1"')))


def all_in(influxd: InfluxDB, db: str, tmp_path: Path) -> bool:
    """The last frame of every stream the agent made is stored."""
    made = produced(tmp_path)
    try:
        seqs = stored_seqs(influxd, db)
    except RuntimeError:
        return False
    return bool(made) and all(seqs.get(s) and seqs[s][-1] == n - 1 for s, n in made.items())


def check_suffix(influxd: InfluxDB, db: str, tmp_path: Path, at_drop: dict[str, int]) -> None:
    """Every frame from shortly after the drop to the end is stored, exactly once."""
    made = produced(tmp_path)
    seqs = stored_seqs(influxd, db)
    assert set(seqs) == set(made), (sorted(seqs), sorted(made))
    for stream, n in made.items():
        got = seqs[stream]
        assert len(got) == len(set(got)), stream
        first = got[0]
        assert got == list(range(first, n)), f"{stream}: a hole after the drop"
        assert first <= at_drop[stream] + DROP_SLACK_FRAMES, (stream, first, at_drop[stream])


def finish(p: PipelineProcess, edge: subprocess.Popen | None) -> None:
    if edge is not None and edge.poll() is None:
        edge.kill()
        edge.wait(10)
    p.stop()


@pytest.mark.timeout(90)
def test_fresh_server_database_created_and_recreated_after_a_drop(broker, influxd, tmp_path):
    db, _ = names("fresh")
    p = PipelineProcess(broker, influxd.store_url(*influxd.admin, db), tmp_path)
    edge = None
    try:
        p.start()  # no database yet: created at start (an admin account)
        assert "created it" in p.log()
        assert p.metric("hipstride_pipeline_store_up") == 1  # there before the first batch
        assert health(p) == (200, "ok\n")
        edge = start_edge(broker, tmp_path, 20)
        wait_until(lambda: count_frames(influxd, db) > 40, 30, "frames in the new database")
        at_drop = produced(tmp_path)
        influxd.query(f'DROP DATABASE "{db}"')  # mid-run, frames flowing
        assert edge.wait(40) == 0
        wait_until(lambda: all_in(influxd, db, tmp_path), 20, "the last frames in the store")
        wait_until(lambda: cli_json(influxd, db, "SELECT count(stride_index) FROM strides"),
                   10, "strides in the database")
        metrics = p.metrics()
        assert metrics["hipstride_pipeline_refused_batches"] == 0
        assert 'hipstride_pipeline_store_writes_total{outcome="refused"}' not in metrics
        assert "created it again" in p.log()
        check_suffix(influxd, db, tmp_path, at_drop)
        assert health(p)[0] == 200
    finally:
        finish(p, edge)


@pytest.mark.timeout(45)
def test_no_right_to_create_exits_2_with_the_statements(broker, influxd, tmp_path):
    db, user = names("nodb")
    influxd.query(f"CREATE USER \"{user[0]}\" WITH PASSWORD '{user[1]}'")
    common = [sys.executable, "-m", "hipstride.cli", "pipeline", "--broker",
              broker.url_for("pipeline"), "--state-dir", str(tmp_path / "state")]
    done = subprocess.run(
        [*common, "--store", f"influx://{user[0]}@127.0.0.1:{influxd.port}/{db}"],
        env=clean_env(HIPSTRIDE_STORE_TOKEN=user[1],
                      HIPSTRIDE_BROKER_PASSWORD=USERS["pipeline"]),
        capture_output=True, text=True, timeout=40)
    assert done.returncode == 2, done.stderr
    assert f'CREATE DATABASE "{db}"' in done.stderr, done.stderr
    assert f'GRANT ALL ON "{db}" TO "{user[0]}"' in done.stderr, done.stderr
    off = subprocess.run(
        [*common, "--store", influxd.store_url(*influxd.admin, db), "--no-create-database"],
        env=clean_env(HIPSTRIDE_BROKER_PASSWORD=USERS["pipeline"]), capture_output=True,
        text=True,
        timeout=40)
    assert off.returncode == 2 and "create_database = false" in off.stderr, off.stderr
    assert f'CREATE DATABASE "{db}"' in off.stderr
    listed = influxd.query("SHOW DATABASES")[0]["series"][0].get("values") or []
    assert [db] not in listed  # nothing was created


def replay(p: PipelineProcess) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hipstride.cli", "pipeline", "--replay-refused", "--store",
         p.store, "--state-dir", str(p.workdir / "state")],
        env=p.env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(90)
def test_refused_batches_replayed_once_the_conflict_is_fixed(broker, influxd, tmp_path):
    db, user = names("conflict")
    influxd.create_database(db, users=dict([user]))
    # the cause: frames.n_samples already a string in this shard (the pipeline writes integers)
    influxd.cli(db, 'INSERT frames,station=seed,stream=emg n_samples="text"')
    p = PipelineProcess(broker, f"influx://{user[0]}@127.0.0.1:{influxd.port}/{db}", tmp_path,
                        token=user[1])
    edge = None
    try:
        p.start()
        edge = start_edge(broker, tmp_path, 4)
        wait_until(lambda: (p.metric("hipstride_pipeline_refused_batches") or 0) >= 1, 30,
                   "a refused batch")
        status, text = health(p)
        assert status == 503 and "refuses batches" in text and "field type conflict" in text
        assert "--replay-refused" in text
        assert edge.wait(30) == 0
        wait_until(lambda: accepted(p) == sum(produced(tmp_path).values()) and
                   p.metric("hipstride_pipeline_pending_frames") == 0, 15,
                   "every frame handled")
        metrics = p.metrics()
        assert metrics["hipstride_pipeline_spool_batches"] == 0  # refused is not an outage
        assert metrics["hipstride_pipeline_store_up"] == 0
    finally:
        finish(p, edge)
    refused = int(metrics["hipstride_pipeline_refused_batches"])
    still = replay(p)  # the cause is still there
    assert still.returncode == 1, still.stdout + still.stderr
    assert f"replayed 0 of {refused}" in still.stdout and "field type conflict" in still.stdout
    influxd.query('DROP MEASUREMENT "frames"', database=db)  # the fix
    done = replay(p)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"replayed {refused} of {refused} refused batch(es)" in done.stdout, done.stdout
    made = produced(tmp_path)
    assert stored_seqs(influxd, db) == {s: list(range(n)) for s, n in made.items()}
    again = replay(p)
    assert again.returncode == 0 and "no refused batches" in again.stdout


@pytest.mark.timeout(120)
def test_database_dropped_under_a_plain_account_is_an_outage(broker, influxd, tmp_path):
    db, user = names("outage")
    influxd.create_database(db, users=dict([user]))
    p = PipelineProcess(broker, f"influx://{user[0]}@127.0.0.1:{influxd.port}/{db}", tmp_path,
                        token=user[1])
    edge = None
    try:
        p.start()
        edge = start_edge(broker, tmp_path, 14)
        wait_until(lambda: count_frames(influxd, db) > 0, 30, "the first frames stored")
        at_drop = produced(tmp_path)
        influxd.query(f'DROP DATABASE "{db}"')
        wait_until(lambda: (p.metric("hipstride_pipeline_spool_batches") or 0) >= 3, 20,
                   "batches spooled during the outage")
        status, text = health(p)
        assert status == 503 and "store unavailable (database_missing" in text, text
        assert "database not found" in text
        assert p.metric("hipstride_pipeline_store_up") == 0
        time.sleep(1.0)
        influxd.create_database(db, users=dict([user]))  # an admin puts it back
        assert edge.wait(40) == 0
        # the spool's retry backs off (1 s doubling): the next try may be up to 16 s away
        wait_until(lambda: all_in(influxd, db, tmp_path), 45, "the spool replayed")
        metrics = p.metrics()
        assert metrics["hipstride_pipeline_refused_batches"] == 0
        assert metrics["hipstride_pipeline_store_up"] == 1
        assert health(p) == (200, "ok\n")
        assert "CREATE DATABASE" in p.log()  # the log said what to run
        check_suffix(influxd, db, tmp_path, at_drop)
    finally:
        finish(p, edge)
