"""The Live page's phase (dashboard/live_phase.py, feed.py, live_html.py): what the athlete is
doing from the first second — standing, MVC trial k of n with its countdown, prone, the
engine's own calibration, or running — and never "keep going" while not running; the live
signals (EMG envelopes, angles) as numbers before any stride. Unit tests on a fake clock, and
the page itself with AppTest fed through a real Mosquitto."""

from __future__ import annotations

import json
import time

from streamlit.testing.v1 import AppTest

from hipstride import topics
from hipstride.dashboard import live_html
from hipstride.dashboard.feed import RELATIVE_LABEL, Feed
from hipstride.dashboard.live_phase import phase_view
from tests.dashboard.test_live_apptest import (  # noqa: F401 - live_env is a fixture
    PAGES,
    TIMEOUT_S,
    html_of,
    live,
    live_env,
    publish,
    run_until,
    stride,
    texts,
)
from tests.support.mosquitto import Mosquitto

S = 1_000_000_000
T0 = 1_795_000_000 * S
RUNNING_SESSION = {"state": "running", "session": "s-1", "athlete": "ana", "phase": "running"}


def _mvc(start_ns: int, muscle: str = "glute_max_l") -> dict:
    return {"phase": "mvc", "start_ns": start_ns, "muscle": muscle}


def test_mvc_trial_k_of_n_counts_position_then_effort():
    session = {**RUNNING_SESSION, "phase": "mvc"}
    order = ["glute_max_l", "glute_max_r"]

    def at(seconds: float, muscle: str = "glute_max_r"):
        return phase_view(session=session, open_phase=_mvc(T0, muscle), engine_phase="running",
                          mvc_order=order, n_channels=6, now_ns=T0 + int(seconds * S))
    pv = at(0.2)
    assert (pv.kind, pv.step, pv.running) == ("mvc", "position", False)
    assert pv.title == "MVC trial 2 of 6: glute max, right"
    assert pv.detail == "Get in position… 3 s"
    assert at(2.5).detail == "Get in position… 1 s"
    assert (at(3.5).step, at(3.5).detail) == ("effort", "Push as hard as you can: 5 s left")
    assert at(7.9).detail == "Push as hard as you can: 1 s left"
    assert at(8.5).step == "over"
    assert at(1.0, "glute_max_l").title.startswith("MVC trial 1 of 6")


def test_standing_prone_and_the_engines_own_calibration_are_not_running():
    def pv(phase, open_phase=None, engine="running"):
        return phase_view(session={**RUNNING_SESSION, "phase": phase}, open_phase=open_phase,
                          engine_phase=engine, mvc_order=[], n_channels=4, now_ns=T0 + 4 * S)
    standing = pv("standing", {"phase": "standing", "start_ns": T0})
    assert (standing.kind, standing.running, standing.detail) == (
        "standing", False, "Stand upright and still: 4 s")
    prone = pv("prone", {"phase": "prone", "start_ns": T0, "side": "l"})
    assert (prone.title, prone.running) == ("Prone test, left leg", False)
    assert pv("running", engine="standing").kind == "engine_standing"
    assert not pv("running", engine="calibrating").running
    assert pv("running").running
    # the session state is what says a phase is open: a live field lagging behind its stop
    # does not hold the page in the phase
    assert pv("running", _mvc(T0)).running
    # an older pipeline without session_phase: the session's phase, without details
    old = pv("mvc")
    assert (old.kind, old.title, old.running) == ("mvc", "MVC trial", False)
    # ... with its countdown from the reply to the calibrate start that opened it
    opened = phase_view(session={**RUNNING_SESSION, "phase": "mvc", "time_ns": T0,
                                 "result": {"command": "calibrate", "ok": True}},
                        open_phase=None, engine_phase="running", mvc_order=[], n_channels=4,
                        now_ns=T0 + 4 * S)
    assert (opened.title, opened.step) == ("MVC trial", "effort")


def test_just_after_a_phase_the_athlete_is_getting_back_to_running():
    stop = {**RUNNING_SESSION, "result": {"command": "calibrate", "ok": True, "phase": {
        "phase": "mvc", "start_ns": T0, "end_ns": T0 + 8 * S, "muscle": "glute_max_l"}}}

    def at(seconds: float):
        return phase_view(session=stop, open_phase=None, engine_phase="running", mvc_order=[],
                          n_channels=6, now_ns=T0 + int(seconds * S))
    pv = at(9.0)
    assert (pv.kind, pv.running) == ("after_phase", False)
    assert (pv.title, pv.detail) == ("MVC trial done: glute max, left", "Back to running")
    assert at(8.0 + 7.9).kind == "after_phase"
    assert at(8.0 + 8.0).running  # running cues again
    mark = {**RUNNING_SESSION, "result": {"command": "mark", "ok": True}}
    assert phase_view(session=mark, open_phase=None, engine_phase="running", mvc_order=[],
                      n_channels=6, now_ns=T0).running


def test_the_phase_banner_never_says_keep_going():
    pv = phase_view(session={**RUNNING_SESSION, "phase": "mvc"}, open_phase=_mvc(T0),
                    engine_phase="running", mvc_order=["glute_max_l"], n_channels=6,
                    now_ns=T0 + S)
    html = live_html.phase_banner(pv)
    assert 'data-phase="mvc"' in html and "Get in position" in html
    assert "keep going" not in html.lower()
    assert "keep going" in live_html.cue_banner([]).lower()  # only the running banner has it


def test_the_coach_card_says_the_phase_too():
    feed = Feed()
    feed.handle(topics.session("tm1"), json.dumps({**RUNNING_SESSION, "phase": "mvc",
                                                   "time_ns": T0}), T0)
    feed.handle(topics.live("tm1"), _live_body(T0 + S, session_phase=_mvc(T0)), T0 + S)
    card = live_html.station_card(feed.view("tm1", T0 + S), T0 + S)
    assert "MVC trial 1 of 2: glute max, left" in card


def _live_body(t_ns: int, **extra) -> bytes:
    body = {"version": 1, "station": "tm1", "time_ns": t_ns, "data_time_ns": t_ns,
            "phase": "running", "session": "s-1", "strides": [],
            "series": {"envelope": {"t_ns": [t_ns - 40_000_000, t_ns],
                                    "mv": {"glute_max_l": [0.031, 0.042],
                                           "biceps_femoris_l": [0.012, None]}},
                       "angles": {"t_ns": [t_ns], "deg": {"hip_flexion_l_deg": [21.4],
                                                         "hip_flexion_r_deg": [-8.25],
                                                         "pelvic_tilt_deg": [None]}}},
            **extra}
    return json.dumps(body).encode()


def test_the_feed_gives_phase_signals_and_the_relative_label():
    feed = Feed()
    feed.handle(topics.session("tm1"), json.dumps({**RUNNING_SESSION, "phase": "mvc",
                                                   "time_ns": T0}), T0)
    feed.handle(topics.live("tm1"), _live_body(T0 + S, session_phase=_mvc(T0)), T0 + S)
    view = feed.view("tm1", T0 + 4 * S)
    assert view.phase_view.title == "MVC trial 1 of 2: glute max, left"
    assert view.phase_view.step == "effort"
    shown = {s.key: s.text for s in view.signals}
    assert shown == {"emg/biceps_femoris_l": "0.0120 mV", "emg/glute_max_l": "0.0420 mV",
                     "hip_l": "21.4°", "hip_r": "-8.2°", "tilt": "—"}
    # before the angle series (the engine not running yet): the message's latest angles
    feed.handle(topics.live("tm2"), json.dumps({
        "version": 1, "station": "tm2", "time_ns": T0, "phase": "calibrating",
        "hip_flexion_deg": {"l": 3.0, "r": -0.01}, "pelvic_tilt_deg": 11.0, "strides": [],
        "series": {"envelope": {"t_ns": [], "mv": {}}, "angles": {"t_ns": [], "deg": {}}}}),
        T0)
    shown = {s.key: s.text for s in feed.view("tm2", T0).signals}
    assert shown == {"hip_l": "3.0°", "hip_r": "0.0°", "tilt": "11.0°"}
    assert not feed.view("tm2", T0).phase_view.running
    row = {"side": "l", "stride_index": 1, "glute_ham_ratio": 1.02, "valid": True,
           "normalization": "relative"}
    feed.handle(topics.live("tm1"), _live_body(T0 + 2 * S, strides=[row]), T0 + 2 * S)
    ratio = feed.view("tm1", T0 + 2 * S).tiles["l"][0]
    assert ratio.text == "1.02" and RELATIVE_LABEL in ratio.label
    assert "relative — MVC not yet measured" in live_html.tile(ratio)


def test_live_page_shows_the_mvc_trial_and_no_keep_going(
        live_env: Mosquitto) -> None:  # noqa: F811 - the fixture imported above
    at = AppTest.from_file(str(PAGES / "live.py"), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    run_until(at, lambda a: "No station has sent anything yet" in texts(a)
              and "live feed" not in texts(a), "the live client to connect")
    time.sleep(1.0)  # the client subscribes before the non-retained live message goes out
    now = time.time_ns()
    publish(live_env, [
        (topics.session("tm1"), {"version": 1, "station": "tm1", "time_ns": now,
                                 **RUNNING_SESSION, "phase": "mvc"}, True),
        (topics.live("tm1"), {**live("tm1", []), "session_phase": _mvc(now, "glute_max_r")},
         False),
    ])
    run_until(at, lambda a: "MVC trial 1 of" in html_of(a), "the MVC trial on the page")
    page = html_of(at)
    assert "glute max, right" in page and "Get in position" in page
    assert "keep going" not in page.lower()
    assert 'data-signal="emg/glute_max_l"' in page and "0.0500 mV" in page
    # back to running: the running cue banner returns
    publish(live_env, [
        (topics.session("tm1"), {"version": 1, "station": "tm1", "time_ns": time.time_ns(),
                                 **RUNNING_SESSION}, True),
        (topics.live("tm1"), live("tm1", [stride("l", 1, 0.9)]), False),
    ])
    run_until(at, lambda a: "keep going" in html_of(a).lower(), "the running banner")
    assert 'data-phase="mvc"' not in html_of(at)
