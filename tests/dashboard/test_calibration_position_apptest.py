"""The Calibration page's MVC step with its "get in position" part, in AppTest against the
real broker and pipeline: after the countdown the page sends ``calibrate start`` and shows
"Get in position" (the phase is open: the pipeline records it), then "Push as hard as you
can", and sends ``stop`` only after both parts, 8 s after the start."""

from __future__ import annotations

import dataclasses
import time

import pytest

from hipstride.control import ControlClient
from hipstride.dashboard import guide
from hipstride.dashboard.safe import md
from tests.dashboard.test_calibration_apptest import KEY, _page, _run_until, _send, _text
from tests.support.pipeline import USERS, wait_until


def _phase(watch: ControlClient) -> str | None:
    return (watch.session_state("tm1") or {}).get("phase")


@pytest.mark.timeout(120)
def test_mvc_step_gets_in_position_then_pushes_then_stops(stack):
    _send(stack, "start", athlete="ana")
    watch = ControlClient(stack.broker.url_for("coach"), password=USERS["coach"],
                          stations=["tm1"], kinds=("session",)).open()
    try:
        _steps(stack, watch)
    finally:
        watch.close()


def _steps(stack, watch: ControlClient) -> None:
    at = _page()
    (step,) = guide.mvc_steps(["glute_max_r"], trials=1)
    ready = guide.begin(guide.new_flow([step]), time.monotonic() - step.ready_s - 0.1)
    at.session_state[KEY] = ready
    _run_until(at, lambda a: a.session_state[KEY].stage == guide.RECORDING, 20,
               "the calibrate start")
    assert md("Get in position: glute max, right") in _text(at)  # shown as text
    wait_until(lambda: _phase(watch) == "mvc", 10, "the pipeline to open the MVC phase")
    started = at.session_state[KEY]
    # 4 s into the window (the clock moved on): the effort, and no stop yet
    at.session_state[KEY] = dataclasses.replace(started, since_s=time.monotonic() - 4.0)
    at.run()
    assert at.session_state[KEY].stage == guide.RECORDING
    assert md("Push as hard as you can: glute max, right") in _text(at)
    # the whole 8 s are over: the page sends stop and waits for the pipeline's verdict
    at.session_state[KEY] = dataclasses.replace(at.session_state[KEY],
                                                since_s=time.monotonic() - 8.05)
    _run_until(at, lambda a: a.session_state[KEY].stage in (guide.WAITING, guide.RESULT), 20,
               "the calibrate stop")
    wait_until(lambda: _phase(watch) == "running", 10, "the pipeline to close the phase")
    closed = (watch.session_state("tm1") or {}).get("result", {}).get("phase") or {}
    assert closed.get("muscle") == "glute_max_r"
