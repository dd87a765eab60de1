"""The live message's ``session_phase`` (pipeline/service/live.py): the open calibration or
prone phase of the station's session, null while running, idle or after the phase's stop."""

from __future__ import annotations

from hipstride.pipeline.service.live import LiveState, session_phase


def test_an_open_mvc_phase_is_carried_with_its_muscle_and_start():
    phases = [{"phase": "standing", "start_ns": 1, "end_ns": 2},
              {"phase": "mvc", "start_ns": 5, "end_ns": None, "muscle": "glute_max_l"}]
    assert session_phase("mvc", phases) == {"phase": "mvc", "start_ns": 5,
                                            "muscle": "glute_max_l"}


def test_running_idle_or_a_closed_phase_is_none():
    closed = [{"phase": "mvc", "start_ns": 5, "end_ns": 9, "muscle": "glute_max_l"}]
    assert session_phase("running", closed) is None
    assert session_phase(None, []) is None
    assert session_phase("mvc", closed) is None
    assert session_phase("prone", []) is None


def test_the_message_carries_it_additively():
    live = LiveState()
    live.snapshot = {"phase": "running"}
    body = live.message("tm1", rejected={}, session="s", now_ns=10,
                        open_phase={"phase": "prone", "start_ns": 3, "side": "l"})
    assert body["session_phase"] == {"phase": "prone", "start_ns": 3, "side": "l"}
    assert LiveState(snapshot={}).message("tm1", rejected={}, session="s",
                                          now_ns=10)["session_phase"] is None
