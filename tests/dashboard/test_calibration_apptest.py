"""The Calibration page in AppTest against the real broker and pipeline: the guided flow sends
``calibrate start/stop`` at the end of its countdowns, shows the pipeline's verdict (with
"repeat" when the effort was not usable), and shows a result published on ``…/results``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride import topics
from hipstride.control import build_command, send_command
from hipstride.dashboard import data, guide
from hipstride.dashboard.safe import md
from tests.support.pipeline import USERS, wait_until

PAGE = Path(data.__file__).parent / "views" / "calibration.py"
KEY = "calibration_flow"
TIMEOUT_S = 30


def _send(stack, command: str, **fields) -> dict:
    reply = send_command(stack.broker.url_for("coach"), "tm1", build_command(command, **fields),
                         password=USERS["coach"], timeout_s=15)
    assert reply is not None and reply["result"]["ok"], reply
    return reply


def _page() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S).run()
    for _ in range(20):
        if at.selectbox and at.selectbox(key="station").options:
            break
        at.run()
    return at


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.subheader, *at.markdown, *at.error, *at.info,
                                            *at.warning,
                                            *at.success))


def _run_until(at: AppTest, predicate, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}:\n{_text(at)}")


@pytest.mark.timeout(120)
def test_without_a_session_the_page_offers_to_start_one(stack):
    _send(stack, "start", athlete="ana")
    _send(stack, "stop")
    time.sleep(1.1)  # the pipeline names sessions by the second: a new one needs a new second
    at = _page()
    assert "No session is running" in _text(at)
    assert at.selectbox(key="test_athlete").options == ["ana"]
    at.button(key="test_start").click().run()
    assert not at.error, at.error
    _run_until(at, lambda a: "**ana** is running" in _text(a), 20, "the session")
    assert at.button(key="begin_standing")


@pytest.mark.timeout(120)
def test_standing_flow_sends_the_commands_and_shows_the_verdict(stack):
    _send(stack, "start", athlete="ana", label="calibration")
    at = _page()
    assert "Last calibration of ana" in _text(at) and "no stored calibration" in _text(at)
    at.button(key="begin_standing").click().run()
    assert "Get ready" in _text(at) and "Step 1 of 1: Standing calibration" in _text(at)

    # after the 3 s countdown the page sends `calibrate start`: the pipeline's state says so
    from hipstride.control import ControlClient

    with ControlClient(stack.broker.url_for("coach"), password=USERS["coach"]) as watch:
        _run_until(at, lambda a: "Stand still" in _text(a), 15, "the recording prompt")
        wait_until(lambda: (watch.session_state("tm1") or {}).get("phase") == "standing", 10,
                   "the standing phase in the pipeline")
        # no station streams here: the pipeline's verdict names the problem; the page shows
        # it with "repeat"
        _run_until(at, lambda a: at.session_state[KEY].stage in (guide.RESULT, guide.FAILED),
                   60, "the pipeline's verdict")
        assert (watch.session_state("tm1") or {}).get("phase") == "running"
    flow = at.session_state[KEY]
    assert flow.stage == guide.RESULT, flow.message
    assert flow.result["phase"] == "standing" and flow.result["ok"] is False
    assert "Not usable — please repeat" in _text(at)
    assert at.button(key=f"{KEY}_repeat") and at.button(key=f"{KEY}_next")
    at.button(key=f"{KEY}_repeat").click().run()
    assert at.session_state[KEY].stage == guide.READY and "Get ready" in _text(at)
    at.button(key=f"{KEY}_cancel").click().run()
    assert at.session_state[KEY].stage == guide.IDLE and at.button(key="begin_standing")


@pytest.mark.timeout(120)
def test_an_mvc_result_on_the_results_topic_is_shown_with_its_problem(stack):
    reply = _send(stack, "start", athlete="ana")
    at = _page()
    # a one-trial MVC flow that has just been stopped, waiting for the pipeline's result
    step = guide.mvc_steps(["glute_max_r"], trials=1)[0]
    at.session_state[KEY] = guide.stopped(guide.begin(guide.new_flow([step]), 0.0),
                                          time.monotonic(), 0)
    at.run()
    assert "Waiting for the pipeline's result" in _text(at)
    # a result for another muscle does not answer this step; the right one does
    base = {"version": 1, "station": "tm1", "session": reply["session"], "athlete": "ana",
            "phase": "mvc", "time_ns": time.time_ns()}
    stack.broker.publish(topics.results("tm1"), {
        **base, "muscle": "glute_max_l", "ok": True, "problems": [],
        "result": {"muscles": {"glute_max_l": {"peak_mv": 0.4, "ok": True}}}},
        user="pipeline", retain=True)
    at.run()
    assert at.session_state[KEY].stage == guide.WAITING
    problem = "glute_max_r: the effort was held only 1.2 s: hold a maximal effort and repeat"
    stack.broker.publish(topics.results("tm1"), {
        **base, "muscle": "glute_max_r", "ok": False, "problems": [problem],
        "result": {"muscles": {"glute_max_r": {"peak_mv": 0.512, "ok": False,
                                               "problem": problem}}}},
        user="pipeline", retain=True)
    _run_until(at, lambda a: a.session_state[KEY].stage == guide.RESULT, 15, "the result")
    assert md(problem) in _text(at)  # shown as text: Markdown characters escaped
    table = at.dataframe[0].value
    assert table["Muscle"].tolist() == ["glute max, right"]
    assert table["Peak (mV)"].tolist() == [0.512] and table["Good"].tolist() == ["no"]
    at.button(key=f"{KEY}_next").click().run()  # "Finish": the last step
    assert at.session_state[KEY].stage == guide.DONE
    assert "Calibration steps done" in _text(at)
