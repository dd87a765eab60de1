"""Real stores with sessions in them, filled through the Store API from simulated runs: a
SQLite file, and (for the browser test) a real InfluxDB 1.6 holding the same points.

Two sessions of "anna" a week apart (healthy, then hamstring-dominant: 55 s of running each,
MVC-normalised like a calibrated athlete), and one of "ben" that has no strides yet. And, for
the AppTest pages that talk to stations, the running stack with ``tm1`` online.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hipstride import topics
from hipstride.dashboard import data, throttle
from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.store import SessionMeta, SqliteStore, Store, open_store
from hipstride.pipeline.validation import engine_inputs
from tests.support.influxdb import InfluxDB
from tests.support.stack import Stack, running_stack

DAY_NS = 86_400 * 10**9
T0_NS = 1_767_600_000 * 10**9  # Mon 5 Jan 2026, 08:00 UTC
RUN_S = 110.0  # 5 s standing, 55 s running, 50 s MVC trials (not part of the run)


@dataclass(frozen=True)
class Filled:
    """The store's URL, and what was written into it."""

    url: str
    sessions: dict[str, SessionMeta]
    rows: dict[str, list[dict]]
    cues: dict[str, list[dict]]


def _run(profile: str, seed: int) -> tuple[list[dict], list[dict]]:
    emg, imus, mvc = engine_inputs(simulate(RUN_S, profile=profile, seed=seed, mvc=True))
    result = analyze(emg, imus, mvc=mvc)
    return result.rows, result.cue_events


@functools.cache
def _runs() -> dict[str, tuple[list[dict], list[dict]]]:
    """The simulated sessions' strides and cues, computed once for every store."""
    return {"anna-1": _run("healthy", 1), "anna-2": _run("hamstring_dominant", 2)}


def fill(store: Store, url: str) -> Filled:
    runs = {"anna-1": ("anna", "healthy", T0_NS),
            "anna-2": ("anna", "hamstring_dominant", T0_NS + 7 * DAY_NS)}
    sessions, rows, cues = {}, {}, {}
    with store:
        for session, (athlete, profile, start) in runs.items():
            rows[session], cues[session] = _runs()[session]
            meta = SessionMeta(session, "treadmill-1", athlete, start,
                               start + int(60 * 1e9), label=profile.replace("_", " "))
            store.write_session(meta)
            store.write_strides("treadmill-1", session, athlete, rows[session], origin_ns=start)
            store.write_cues("treadmill-1", session, athlete, cues[session], origin_ns=start)
            sessions[session] = meta
        empty = SessionMeta("ben-1", "treadmill-2", "ben", T0_NS + 8 * DAY_NS)
        store.write_session(empty)
        sessions["ben-1"], rows["ben-1"], cues["ben-1"] = empty, [], []
    return Filled(url, sessions, rows, cues)


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    """Every test reads its store afresh: the dashboard's Streamlit caches outlive a test."""
    data.load_sessions.clear()
    data.load_strides.clear()
    data.load_cues.clear()
    data.connect.clear()
    throttle.shared().clear()  # failed logins of one test must not lock the next one out


@pytest.fixture(scope="session")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    path = tmp_path_factory.mktemp("store") / "hipstride.db"
    return fill(SqliteStore(path), f"sqlite:///{path}")


@pytest.fixture(scope="session")
def filled_influx(influxd: InfluxDB) -> Filled:
    """The same sessions in the real influxd, read by a read-only user."""
    influxd.create_database("dashboard", users={"dash-writer": "writer-secret"})
    influxd.query("CREATE USER \"dash-reader\" WITH PASSWORD 'reader-secret'")
    influxd.query('GRANT READ ON "dashboard" TO "dash-reader"')
    writer = influxd.store_url("dash-writer", "writer-secret", "dashboard")
    return fill(open_store(writer), influxd.store_url("dash-reader", "reader-secret", "dashboard"))


@pytest.fixture
def empty_store(tmp_path: Path) -> str:
    """The URL of a store that exists but holds no session."""
    path = tmp_path / "empty.db"
    SqliteStore(path).close()
    return f"sqlite:///{path}"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The running stack for a page in AppTest: the dashboard's environment points at it (no
    login), and station ``tm1``'s agent says it is online (retained, as ``hipstride edge``
    does)."""
    for name in ("HIPSTRIDE_ACCOUNTS", "HIPSTRIDE_DASHBOARD_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with running_stack(tmp_path) as s:
        for key, value in s.dashboard_env().items():
            monkeypatch.setenv(key, value)
        s.broker.publish(topics.status("tm1"), {"version": 1, "station": "tm1",
                                                "state": "online"}, user="edge-tm1", retain=True)
        data.load_sessions.clear()
        data.load_calibration.clear()
        yield s
