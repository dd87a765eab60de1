"""The prone test page in AppTest: a stored test (the engine's analysis of a simulated prone
test, written through the Store API) with its tables and advice; and a result arriving on the
real broker's ``…/results`` while the guided flow waits for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride import topics
from hipstride.control import build_command, send_command
from hipstride.dashboard import auth, data, guide
from hipstride.dashboard.safe import md
from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.phe import phe_analyze
from hipstride.pipeline.store import SessionMeta, SqliteStore
from tests.pipeline.engine.test_phe import _inputs
from tests.support.pipeline import USERS
from tests.support.stack import running_stack

PAGE = Path(data.__file__).parent / "views" / "prone_test.py"
KEY = "prone_flow"
T0 = 1_767_600_000 * 10**9


@pytest.fixture(scope="module")
def phe() -> dict:
    sim = simulate(58.0, profile="hamstring_dominant", seed=4, prone=True, prone_reps=3,
                   standing_s=3.0)
    emg, thighs, pelvis = _inputs(sim)
    window = sim.truth.phase("prone")
    return phe_analyze(thighs, emg, pelvis, start_s=window["start_s"],
                       end_s=window["end_s"]).to_dict()


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for name in ("HIPSTRIDE_ACCOUNTS", "HIPSTRIDE_DASHBOARD_PASSWORD", "HIPSTRIDE_BROKER"):
        monkeypatch.delenv(name, raising=False)
    for loader in (data.load_sessions, data.load_phe, data.connect):
        loader.clear()


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.markdown, *at.info, *at.error, *at.caption,
                                            *at.subheader))


def test_a_stored_test_shows_repetitions_sides_and_advice(monkeypatch, tmp_path, phe):
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_session(SessionMeta("s1", "tm1", "ana", T0, T0 + 60 * 10**9,
                                        label="prone test"))
        store.write_phe("tm1", "s1", "ana", phe["repetitions"], origin_ns=T0)
        store.write_session(SessionMeta("s2", "tm1", "ana", T0 + 10**12))  # no test in it
    monkeypatch.setenv(data.STORE_ENV, f"sqlite:///{tmp_path / 's.db'}")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert "No broker is configured" in _text(at)  # the guided part needs the broker
    assert at.selectbox(key="prone_athlete").value == "ana"
    assert len(at.selectbox(key="prone_session").options) == 1  # only the session with a test
    reps, sides = at.dataframe[0].value, at.dataframe[1].value
    assert len(reps) == len(phe["repetitions"]) and set(sides["Side"]) <= {"Left", "Right"}
    text = _text(at)
    assert "Coaching advice** (not a diagnosis)" in text
    for side_advice in phe["advice"].values():
        for sentence in side_advice:
            assert md(sentence) in text  # shown as text: Markdown characters escaped
    assert "not a diagnosis" in text and "hamstrings often fire first" in text


@pytest.mark.timeout(120)
def test_a_prone_result_on_the_broker_completes_the_step(monkeypatch, tmp_path, phe):
    with running_stack(tmp_path) as stack:
        for key, value in stack.dashboard_env().items():
            monkeypatch.setenv(key, value)
        reply = send_command(stack.broker.url_for("coach"), "tm1",
                             build_command("start", athlete="ana"), password=USERS["coach"],
                             timeout_s=15)
        at = AppTest.from_file(str(PAGE), default_timeout=60).run()
        for _ in range(20):
            if "**ana** is running" in _text(at):
                break
            at.run()
        assert at.button(key="begin_prone")
        step = guide.prone_steps(sides=("r",), reps=3)[0]
        at.session_state[KEY] = guide.stopped(guide.begin(guide.new_flow([step]), 0.0),
                                              time.monotonic(), 0)
        at.run()
        right = [r for r in phe["repetitions"] if r["side"] == "r"]
        stack.broker.publish(topics.results("tm1"), {
            "version": 1, "station": "tm1", "session": reply["session"], "athlete": "ana",
            "phase": "prone", "side": "r", "ok": True, "problems": [],
            "result": {"repetitions": right, "sides": {}, "advice": phe["advice"]},
            "time_ns": time.time_ns()}, user="pipeline", retain=True)
        end = time.monotonic() + 15
        while at.session_state[KEY].stage != guide.RESULT and time.monotonic() < end:
            time.sleep(0.3)
            at.run()
        assert at.session_state[KEY].stage == guide.RESULT
        assert not at.exception
        assert len(at.dataframe[0].value) == len(right)
        text = _text(at)
        assert "Good effort" in "\n".join(s.value for s in at.success)
        for sentence in phe["advice"].get("r", []):
            assert md(sentence) in text  # shown as text: Markdown characters escaped
        for sentence in phe["advice"].get("l", []):  # only the side just tested
            assert sentence not in text


def test_earlier_tests_are_read_by_station_and_session(monkeypatch, tmp_path, phe):
    """ana's session s1 has no test; bob's session of the same id on another station has one:
    ana must not see bob's repetitions as hers."""
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_session(SessionMeta("s1", "tm1", "ana", T0, T0 + 60 * 10**9))
        store.write_session(SessionMeta("s1", "tm2", "bob", T0, T0 + 60 * 10**9))
        store.write_phe("tm2", "s1", "bob", phe["repetitions"], origin_ns=T0)
    monkeypatch.setenv(data.STORE_ENV, f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.setenv("HIPSTRIDE_ACCOUNTS", str(tmp_path / "accounts.json"))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["hipstride_access"] = auth.Access("ana", "athlete", frozenset({"ana"}),
                                                       "accounts")
    at.run()
    assert not at.exception
    assert "No prone hip extension test of ana is stored yet" in _text(at)
    assert not at.dataframe
