"""The MVC guide's "get in position" step (dashboard/guide.py): inside the recorded window,
before the 5 s effort, so the effort is recorded in full even for an athlete who needs ~3 s to
stop and turn; and the simulated runner takes about as long (edge/simulator), so the guide and
the demo's runner agree."""

from __future__ import annotations

import pytest

from hipstride.dashboard import guide
from hipstride.demo.calibrate import TRIAL_S
from hipstride.edge.simulator.instructions import Instructions


def test_each_mvc_trial_is_get_in_position_then_push():
    (step,) = guide.mvc_steps(["glute_max_l"], trials=1)
    assert [c.text for c in step.cues] == ["Get in position: glute max, left",
                                           "Push as hard as you can: glute max, left"]
    assert [c.seconds for c in step.cues] == [guide.MVC_POSITION_S, guide.MVC_EFFORT_S]
    assert step.duration_s == pytest.approx(8.0)


def test_the_flow_prompts_position_first_and_stops_only_after_the_full_effort():
    (step,) = guide.mvc_steps(["glute_max_r"], trials=1)
    flow = guide.started(guide.begin(guide.new_flow([step]), 0.0), 3.0)  # start sent at 3 s
    assert guide.cue_at(step, 1.0)[1].text.startswith("Get in position")
    i, cue, left = guide.cue_at(step, 4.0)
    assert (i, cue.text.startswith("Push"), left) == (1, True, pytest.approx(4.0))
    assert guide.tick(flow, 3.0 + 7.9)[1] is None  # still pushing
    assert guide.tick(flow, 3.0 + 8.0)[1] == "stop"


def test_no_position_step_when_asked_for_none():
    (step,) = guide.mvc_steps(["glute_max_r"], trials=1, position_s=0)
    assert [c.text for c in step.cues] == ["Push as hard as you can: glute max, right"]


def test_the_simulated_runner_pushes_after_getting_in_position_and_within_the_window():
    """A running runner told "mvc" at t starts pushing ~3 s later and pushes 5 s: the guide's
    window (and the demo's trial) holds the whole effort."""
    ins = Instructions()
    (trial,) = ins.mvc(100.0, ("glute_max_l",))
    assert trial["effort_start_s"] - 100.0 == pytest.approx(guide.MVC_POSITION_S, abs=0.5)
    assert trial["effort_end_s"] - trial["effort_start_s"] == pytest.approx(
        guide.MVC_EFFORT_S)
    assert trial["effort_end_s"] - 100.0 <= guide.MVC_POSITION_S + guide.MVC_EFFORT_S + 0.01
    assert TRIAL_S == guide.MVC_POSITION_S + guide.MVC_EFFORT_S
