"""The guided flows' steps and state machine (dashboard/guide.py): pure, on a fake clock."""

from __future__ import annotations

import json

import pytest

from hipstride.control import build_command
from hipstride.dashboard import guide
from hipstride.pipeline.service.sessions import parse_command


def test_standing_is_one_step_of_ten_seconds():
    (step,) = guide.standing_steps()
    assert (step.phase, step.duration_s, step.ready_s) == ("standing", 10.0, 3.0)
    assert step.cues[0].text == "Stand still"


def test_mvc_steps_per_muscle_and_trial_with_their_prompt():
    steps = guide.mvc_steps(["glute_max_r", "biceps_femoris_l"], trials=2, effort_s=5)
    assert [s.key for s in steps] == ["mvc-glute_max_r-1", "mvc-glute_max_r-2",
                                      "mvc-biceps_femoris_l-1", "mvc-biceps_femoris_l-2"]
    assert steps[0].cues == (guide.Cue("Get in position: glute max, right", 3.0),
                             guide.Cue("Push as hard as you can: glute max, right", 5),)
    assert "knee bent 90°" in steps[0].how
    assert steps[2].title.startswith("Maximal contraction: hamstrings (biceps femoris), left")
    # the fields make a command the pipeline's parser accepts
    body = build_command("calibrate", action="start", **steps[0].command_fields())
    assert parse_command(json.dumps(body)).phase == "mvc"
    assert body["muscle"] == "glute_max_r" and "side" not in body


def test_prone_steps_count_out_lift_hold_lower_per_repetition():
    right, left = guide.prone_steps(sides=("r", "l"), reps=3)
    assert (right.side, left.side, right.phase) == ("r", "l", "prone")
    texts = [c.text for c in right.cues]
    assert texts[:5] == ["Relax, lie still", "Lift the right leg (1 of 3)", "Hold it up",
                         "Lower slowly", "Relax"]
    assert sum(t.startswith("Lift the right leg") for t in texts) == 3
    assert right.duration_s == pytest.approx(2 + 3 * (1 + 2 + 1 + 3))
    assert [c.seconds for c in right.cues if c.text == "Hold it up"] == [2.0, 2.0, 2.0]


def test_cue_at_walks_through_the_prompts():
    (step,) = guide.prone_steps(sides=("r",), reps=1)
    assert guide.cue_at(step, 0.0)[1].text == "Relax, lie still"
    i, cue, left = guide.cue_at(step, 3.5)  # 2 s relax, then 1 s lift, then hold
    assert (i, cue.text, left) == (2, "Hold it up", pytest.approx(1.5))
    assert guide.cue_at(step, 100.0) == (len(step.cues), None, 0.0)


def test_a_step_runs_ready_recording_waiting_result():
    flow = guide.begin(guide.new_flow(guide.standing_steps()), now_s=100.0)
    assert flow.stage == guide.READY and flow.active
    assert guide.tick(flow, 102.9) == (flow, None)
    flow, action = guide.tick(flow, 103.0)
    assert action == "start"
    flow = guide.started(flow, 103.2)
    assert guide.tick(flow, 113.1)[1] is None
    flow, action = guide.tick(flow, 113.2)
    assert action == "stop"
    flow = guide.stopped(flow, 113.3, after=41)
    assert (flow.stage, flow.after) == (guide.WAITING, 41)
    flow = guide.got_result(flow, {"phase": "standing", "ok": True, "problems": []}, 114.0)
    assert flow.stage == guide.RESULT and not flow.active and flow.result["ok"]
    assert guide.advance(flow, 115.0).stage == guide.DONE


def test_waiting_too_long_fails_with_a_reason_and_can_be_repeated():
    flow = guide.stopped(guide.begin(guide.new_flow(guide.standing_steps()), 0.0), 10.0, 0)
    flow, action = guide.tick(flow, 10.0 + guide.RESULT_TIMEOUT_S)
    assert action is None and flow.stage == guide.FAILED
    assert "No result from the pipeline" in flow.message
    again = guide.begin(flow, 50.0)
    assert (again.stage, again.index, again.message) == (guide.READY, 0, "")


def test_a_bad_result_keeps_its_problems_and_next_moves_on():
    steps = guide.mvc_steps(["glute_max_l", "glute_max_r"], trials=1)
    flow = guide.stopped(guide.begin(guide.new_flow(steps), 0.0), 9.0, 0)
    flow = guide.got_result(flow, {"phase": "mvc", "muscle": "glute_max_l", "ok": False,
                                   "problems": ["glute_max_l: no clear effort"]}, 10.0)
    assert flow.message == "glute_max_l: no clear effort"
    nxt = guide.advance(flow, 11.0)
    assert (nxt.index, nxt.stage, nxt.step.muscle) == (1, guide.READY, "glute_max_r")
    assert nxt.results[0]["ok"] is False and nxt.results[1] is None
    assert guide.problems({"ok": False}) == [
        "the pipeline marked this effort as not good enough, without a reason"]


def test_a_result_answers_only_its_own_step():
    mvc = guide.mvc_steps(["glute_max_r"], trials=1)[0]
    prone = guide.prone_steps(sides=("l",))[0]
    assert mvc.accepts({"phase": "mvc", "muscle": "glute_max_r", "session": "s1"}, "s1")
    assert not mvc.accepts({"phase": "mvc", "muscle": "glute_max_l"})
    assert not mvc.accepts({"phase": "mvc", "muscle": "glute_max_r", "session": "s0"}, "s1")
    assert not mvc.accepts({"phase": "standing"})
    assert prone.accepts({"phase": "prone", "side": "l"})
    assert not prone.accepts({"phase": "prone", "side": "r"})


def test_cancel_returns_to_idle():
    flow = guide.started(guide.begin(guide.new_flow(guide.standing_steps()), 0.0), 3.0)
    assert guide.cancel(flow).stage == guide.IDLE and not guide.cancel(flow).active
