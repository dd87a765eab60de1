"""Hostile names end to end: a real Mosquitto, the pipeline as a subprocess, both stores
(SQLite, and Debian's influxd 1.6.7), ``hipstride session`` as an operator types it.

- The CLI refuses a name that breaks its rule with exit 2; nothing reaches the broker.
- The same names published straight onto the control topic (a client that skips the CLI)
  are refused by the pipeline with reason ``bad_name`` on the session topic and in
  ``/metrics``; the pipeline keeps running.
- Names that pass — any script, quotes, commas, ``=``, markdown, labels and notes with
  backslashes and line breaks — are stored exactly: read back with the store API and with a
  witness that does not use it (``sqlite3``, the ``influx`` CLI).
- A session saved before the rules, with a line break in its athlete and session id, is
  restored repaired (and logged) instead of stopping the pipeline at every start.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
import uuid

import pytest

from hipstride import topics
from hipstride.pipeline.service.ingest import StateDB
from hipstride.pipeline.service.sessions import SessionState
from hipstride.pipeline.store import open_store
from tests.pipeline.service.test_sessions_broker import retained_session
from tests.support.pipeline import PipelineProcess, hs_session, wait_until

ATHLETE = "Zoë O'Brien, \"Zo\" = **coach's** ![x](http://evil/x.png)"
LABEL = "easy 5k, C:\\runs\\"
NOTES = "felt \"fine\"\nleft hamstring \\ tight\n\tafter 3 km \\"
MARK = "**bold** ![x](http://evil/x.png) \\"
WRITER = ("writer", "writer-secret")
_db_names = itertools.count()
REFUSED = "hipstride_pipeline_control_rejected_total{station=\"tm1\",reason=\"bad_name\"}"


def refused_reply(broker, request: str) -> dict:
    """The retained session state once it answers ``request``."""
    def answered() -> dict:
        body = retained_session(broker)
        return body if (body.get("result") or {}).get("request") == request else {}
    return wait_until(answered, 20, f"the pipeline's reply to {request}")


def witness_session(store_url: str, influxd, database: str | None, session: str) -> dict:
    """(athlete, label, meta) of a stored session, read without the store under test."""
    if influxd is None:
        path = store_url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT athlete, label, meta FROM sessions WHERE session = ?",
                             (session,)).fetchone()
        return {"athlete": row[0], "label": row[1], "meta": json.loads(row[2])}
    out = json.loads(influxd.cli(database, "SELECT athlete, label, meta FROM sessions "
                                           f"WHERE session = '{session}'"))
    (series,) = out["results"][0]["series"]
    row = dict(zip(series["columns"], series["values"][-1], strict=True))
    return {"athlete": row["athlete"], "label": row["label"], "meta": json.loads(row["meta"])}


@pytest.fixture(params=["sqlite", "influx"])
def store_target(request, tmp_path):
    """(the pipeline's store URL, its token, a URL to read with, influxd or None, database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.sqlite"
        return url, "", url, None, None
    influxd = request.getfixturevalue("influxd")
    name = f"names_broker_{next(_db_names)}"
    influxd.create_database(name, users=dict([WRITER]))
    return (f"influx://writer@127.0.0.1:{influxd.port}/{name}", WRITER[1],
            influxd.store_url(*WRITER, name), influxd, name)


@pytest.mark.timeout(150)
def test_hostile_names_are_refused_or_stored_exactly_and_the_pipeline_runs_on(
        broker, tmp_path, store_target):
    store_url, token, read_url, influxd, database = store_target
    pipeline = PipelineProcess(broker, store_url, tmp_path, token=token)
    try:
        pipeline.start()
        # the CLI refuses, and sends nothing: the pipeline has not answered anything yet
        for args in (("--athlete", "ann\nbob"), ("--athlete", "ann\\"),
                     ("--athlete", "ann", "--session", "s1\n")):
            done = hs_session(broker, "start", *args)
            assert done.returncode == 2 and "is not valid" in done.stderr, done.stderr
        assert retained_session(broker) == {}

        # a client that skips the CLI: refused by the pipeline, which runs on
        hostile = [{"athlete": "ann\nbob"}, {"athlete": "ann\\"},
                   {"athlete": "ann", "session": "s1\n"}, {"athlete": "ann", "label": "a\nb"},
                   {"athlete": "x" * 65}, {"athlete": "rtl\u202eevil"}]
        for i, fields in enumerate(hostile):
            request = f"hostile-{i}-{uuid.uuid4().hex[:6]}"
            broker.publish(topics.control("tm1"), {"version": 1, "command": "start",
                                                   "request": request, **fields}, user="coach")
            result = refused_reply(broker, request)["result"]
            assert (result["ok"], result["reason"]) == (False, "bad_name"), result
            assert "is not valid" in result["message"]
        wait_until(lambda: pipeline.metric(REFUSED) == len(hostile), 10, "refusals counted")

        # names that pass are kept exactly, through the CLI, the pipeline and the store
        started = hs_session(broker, "start", "--athlete", ATHLETE, "--label", LABEL,
                             "--notes", NOTES, "--session", "zoe-1")
        assert started.returncode == 0, started.stderr
        reply = json.loads(started.stdout)
        assert (reply["athlete"], reply["label"], reply["session"]) == (ATHLETE, LABEL, "zoe-1")
        marked = hs_session(broker, "mark", "--label", MARK, "--note", NOTES)
        assert marked.returncode == 0, marked.stderr
        stopped = hs_session(broker, "stop")
        assert stopped.returncode == 0, stopped.stderr

        store = open_store(read_url)
        try:
            meta = wait_until(lambda: (s := store.session("zoe-1", station="tm1")) and
                              s.end_ns and s, 20, "the stopped session in the store")
            assert store.sessions(athlete=ATHLETE)[0].session == "zoe-1"
        finally:
            store.close()
        assert (meta.athlete, meta.label, meta.meta["notes"]) == (ATHLETE, LABEL, NOTES)
        assert [(m["label"], m["note"]) for m in meta.meta["marks"]] == [(MARK, NOTES)]
        seen = witness_session(store_url, influxd, database, "zoe-1")
        assert (seen["athlete"], seen["label"]) == (ATHLETE, LABEL)
        assert seen["meta"]["notes"] == NOTES and seen["meta"]["marks"][0]["label"] == MARK
        assert pipeline.metric("hipstride_pipeline_mqtt_subscribed") == 1  # still running
    finally:
        assert pipeline.stop() == 0, pipeline.log()
    assert "Traceback" not in pipeline.log(), pipeline.log()


@pytest.mark.timeout(90)
def test_a_session_saved_before_the_rules_is_restored_repaired(broker, tmp_path):
    """State from an older pipeline: athlete ``ann\\nbob``, session ``old\\n1``. Before, the
    pipeline died on that tag at every start; now it repairs and logs the names."""
    start_ns = time.time_ns() - 5_000_000_000
    old = SessionState("tm1", session="old\n1", athlete="ann\nbob", label="first\nrun",
                       start_ns=start_ns, phase="running",
                       marks=[{"label": "m\n1", "time_ns": start_ns + 1}],
                       intervals=[["old\n1", "ann\nbob", start_ns, None]])
    state = StateDB(tmp_path / "state" / "pipeline-0-of-1.sqlite")
    state.save_session("tm1", old.to_json())
    state.close()
    db = tmp_path / "store.sqlite"
    pipeline = PipelineProcess(broker, f"sqlite:///{db}", tmp_path)
    try:
        pipeline.start()
        stopped = hs_session(broker, "stop")
        assert stopped.returncode == 0, stopped.stderr + pipeline.log()
        reply = json.loads(stopped.stdout)
        assert reply["result"]["session"] == "old_1" and reply["state"] == "idle"
        with open_store(f"sqlite:///{db}") as store:
            meta = wait_until(lambda: store.session("old_1", station="tm1"), 20,
                              "the repaired session in the store")
        assert (meta.athlete, meta.label, meta.end_ns is not None) == ("ann bob", "first run",
                                                                        True)
        assert meta.meta["marks"][0]["label"] == "m 1"
        assert pipeline.metric("hipstride_pipeline_mqtt_subscribed") == 1
    finally:
        assert pipeline.stop() == 0, pipeline.log()
    log = pipeline.log()
    assert "athlete 'ann\\nbob' breaks the name rule" in log and "'ann bob'" in log, log
    assert "Traceback" not in log, log
