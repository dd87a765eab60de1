"""Hostile names in both stores: whatever passes the name rules (hipstride/names.py) is read
back exactly — through the store's own API and through an independent witness (the
``sqlite3`` module, the ``influx`` CLI) — and a tag value InfluxDB cannot carry is refused
before the request with a message naming the tag, never as a bare HTTP 400."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator

import pytest

from hipstride import names
from hipstride.pipeline.store import open_store
from hipstride.pipeline.store.base import SESSIONS, SessionMeta, Store, StoreRejected
from hipstride.pipeline.store.influx import InfluxStore
from hipstride.pipeline.store.sqlite import SqliteStore
from tests.support.influxdb import InfluxDB

T0 = 1_764_000_000_123_456_789
USER = ("pipeline", "pipe-secret")
_db_names = itertools.count()

#: Names from an attacker's or a careless operator's keyboard; some pass, some do not.
HOSTILE = ["Zoë Müller", "ann\nbob", "ann\\", "a\\b", 'say "hi"', "it's", "a,b c=d",
           "![x](http://evil/x.png)", "**bold**", "<script>alert(1)</script>", "x" * 65,
           "tab\there", "李小龍", "O'Brien, Ann = coach's pick"]
#: Labels and notes are fields, not tags: trailing backslashes and (notes) line breaks are fine.
LABELS = ["easy 5k \\", 'say "hi" \\" now', "C:\\runs\\", "**bold** ![x](http://evil/x.png)"]
NOTES = "line 1\nline 2 \\\n\ttabbed \"quoted\" \\"


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = open_store(f"sqlite:///{tmp_path}/store.db")
        assert isinstance(s, SqliteStore)
    else:
        server: InfluxDB = request.getfixturevalue("influxd")
        name = f"names_{next(_db_names)}"
        server.create_database(name, users=dict([USER]))
        s = open_store(server.store_url(*USER, name))
        assert isinstance(s, InfluxStore)
    yield s
    s.close()


def witness_sessions(store: Store, request) -> list[dict]:
    """The sessions table as read without the store under test."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(f"file:{store.path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(
                "SELECT time_ns, athlete, session, label, meta FROM sessions ORDER BY time_ns")]
    server: InfluxDB = request.getfixturevalue("influxd")
    out = json.loads(server.cli(store.database, "SELECT * FROM sessions"))
    (series,) = out["results"][0]["series"]
    rows = [dict(zip(series["columns"], values, strict=True)) for values in series["values"]]
    return [{"time_ns": r["time"], "athlete": r["athlete"], "session": r["session"],
             "label": r["label"], "meta": r["meta"]} for r in rows]


def test_every_name_that_passes_the_rule_round_trips_exactly(store, request) -> None:
    accepted, refused = [], []
    for name in HOSTILE:
        (accepted if names.problem(names.ATHLETE, name) is None else refused).append(name)
    assert refused == ["ann\nbob", "ann\\", "a\\b", "x" * 65, "tab\there"]
    for i, athlete in enumerate(accepted):
        label = LABELS[i % len(LABELS)]
        assert names.check(names.LABEL, label) == label
        meta = {"notes": NOTES, "marks": [{"label": label, "note": NOTES, "time_ns": T0}]}
        store.write_session(SessionMeta(f"s{i}", "tm1", athlete, T0 + i, label=label,
                                        meta=meta))
    for i, athlete in enumerate(accepted):
        (got,) = store.sessions(athlete=athlete)
        label = LABELS[i % len(LABELS)]
        assert (got.session, got.athlete, got.label) == (f"s{i}", athlete, label)
        assert got.meta["notes"] == NOTES and got.meta["marks"][0]["label"] == label
    seen = witness_sessions(store, request)
    assert [r["athlete"] for r in seen] == accepted
    assert [r["label"] for r in seen] == [LABELS[i % len(LABELS)] for i in range(len(accepted))]
    assert all(json.loads(r["meta"])["notes"] == NOTES for r in seen)


def test_a_tag_influxdb_cannot_carry_is_refused_naming_it(influxd) -> None:
    """A trailing backslash escapes the separator after it: InfluxDB answers 400 for the
    whole batch. The store refuses it first, saying which tag and why."""
    name = f"names_{next(_db_names)}"
    influxd.create_database(name, users=dict([USER]))
    store = open_store(influxd.store_url(*USER, name))
    try:
        with pytest.raises(StoreRejected, match=r"tag athlete='ann\\\\' .*backslash"):
            store.write_session(SessionMeta("s1", "tm1", "ann\\", T0))
        store.write_session(SessionMeta("s2", "tm1", "a\\b", T0 + 1, label="ok \\"))
        (got,) = store.sessions(athlete="a\\b")  # a backslash inside is stored literally
        assert got.label == "ok \\"
        assert [s.session for s in store.sessions()] == ["s2"]
    finally:
        store.close()


def test_sqlite_keeps_any_text_exactly(tmp_path) -> None:
    """SQLite binds parameters: even what the rules refuse would not break it."""
    with SqliteStore(tmp_path / "s.db") as store:
        odd = "ann\\ \"x\" 'y' ,=; DROP TABLE sessions; --"
        store.write_session(SessionMeta("s1", "tm1", odd, T0, label="l\\"))
        assert store.sessions(athlete=odd)[0].label == "l\\"
        assert store.select(SESSIONS, {"athlete": odd})[0]["athlete"] == odd
