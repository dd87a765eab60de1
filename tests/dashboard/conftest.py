"""A real SQLite store with sessions in it, filled through the Store API from simulated runs.

Two sessions of "anna" a week apart (healthy, then hamstring-dominant: 55 s of running each,
MVC-normalised like a calibrated athlete), and one of "ben" that has no strides yet. And, for
the AppTest pages that talk to stations, the running stack with ``tm1`` online.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hipstride import topics
from hipstride.dashboard import data
from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.store import SessionMeta, SqliteStore
from hipstride.pipeline.validation import engine_inputs
from tests.support.stack import Stack, running_stack

DAY_NS = 86_400 * 10**9
T0_NS = 1_767_600_000 * 10**9  # Mon 5 Jan 2026, 08:00 UTC
RUN_S = 110.0  # 5 s standing, 55 s running, 50 s MVC trials (not part of the run)


@dataclass(frozen=True)
class Filled:
    """The store's file, its URL, and what was written into it."""

    path: Path
    url: str
    sessions: dict[str, SessionMeta]
    rows: dict[str, list[dict]]
    cues: dict[str, list[dict]]


def _run(profile: str, seed: int) -> tuple[list[dict], list[dict]]:
    emg, imus, mvc = engine_inputs(simulate(RUN_S, profile=profile, seed=seed, mvc=True))
    result = analyze(emg, imus, mvc=mvc)
    return result.rows, result.cue_events


def fill(path: Path) -> Filled:
    runs = {"anna-1": ("anna", "healthy", 1, T0_NS),
            "anna-2": ("anna", "hamstring_dominant", 2, T0_NS + 7 * DAY_NS)}
    sessions, rows, cues = {}, {}, {}
    with SqliteStore(path) as store:
        for session, (athlete, profile, seed, start) in runs.items():
            rows[session], cues[session] = _run(profile, seed)
            meta = SessionMeta(session, "treadmill-1", athlete, start,
                               start + int(60 * 1e9), label=profile.replace("_", " "))
            store.write_session(meta)
            store.write_strides("treadmill-1", session, athlete, rows[session], origin_ns=start)
            store.write_cues("treadmill-1", session, athlete, cues[session], origin_ns=start)
            sessions[session] = meta
        empty = SessionMeta("ben-1", "treadmill-2", "ben", T0_NS + 8 * DAY_NS)
        store.write_session(empty)
        sessions["ben-1"], rows["ben-1"], cues["ben-1"] = empty, [], []
    return Filled(path, f"sqlite:///{path}", sessions, rows, cues)


@pytest.fixture(scope="session")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    return fill(tmp_path_factory.mktemp("store") / "hipstride.db")


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
