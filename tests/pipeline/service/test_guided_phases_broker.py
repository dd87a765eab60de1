"""The guided calibration phases end to end with the live, reactive simulator: a real
Mosquitto, the pipeline subprocess with a SQLite store, a real edge agent running the endless
simulator (``--duration 0``), and the commands the dashboard's Calibration and Prone pages
send (``hipstride.control``): start, a countdown, stop.

The simulated runner follows them like a person: it is running when told to stand (it takes
~2 s to stop), stops before an MVC, and stops and lies down (~5 s) before the prone lifts. The
pipeline must analyse only the still / prone part of each window: every ``…/results`` message
is ok with sensible values, the store holds the athlete's calibration and the ``phe`` rows,
and the athlete's next session reuses the MVC references.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import pytest

from hipstride.control import ControlClient, build_command
from hipstride.pipeline.store import open_store
from tests.support.pipeline import USERS, wait_until
from tests.support.stack import Stack, running_stack

STATION = "tm1"
MUSCLES = ("glute_max_l", "biceps_femoris_l")
#: Seconds the dashboard's countdowns would run (guide.py: standing 10 s, MVC 5 s, prone ~23 s).
STANDING_S, MVC_S, PRONE_S = 8.0, 6.0, 21.0
RESULT_WAIT_S = 20.0


def command(cl: ControlClient, name: str, **fields: Any) -> dict[str, Any]:
    reply = cl.send(STATION, build_command(name, **fields), timeout_s=10)
    assert reply is not None, f"no reply from the pipeline to {name} {fields}"
    assert reply["result"]["ok"] is True, reply
    return reply


def phase(cl: ControlClient, name: str, seconds: float, **fields: Any) -> Mapping[str, Any]:
    """Start a phase, wait ``seconds``, stop it; the phase's ``…/results`` message."""
    command(cl, "calibrate", phase=name, action="start", **fields)
    time.sleep(seconds)
    after = cl.mark()
    command(cl, "calibrate", phase=name, action="stop", **fields)
    got = cl.wait_for("results", STATION, after,
                      lambda b: b.get("phase") == name and all(b.get(k) == v
                                                               for k, v in fields.items()),
                      timeout_s=RESULT_WAIT_S)
    assert got is not None, f"no {name} result on …/results within {RESULT_WAIT_S:g} s"
    return got.body


def edge_running(stack: Stack) -> None:
    if stack.edges[0].poll() is not None:
        log = "".join(p.read_text() for p in stack.workdir.glob("edge-*.log"))
        raise AssertionError(f"the edge agent exited ({stack.edges[0].returncode}):\n{log}")


@pytest.mark.timeout(150)
def test_guided_phases_with_the_reactive_simulator(tmp_path):
    with running_stack(tmp_path) as stack:
        began = time.monotonic()
        stack.start_edge(STATION, duration_s=0, seed=7)
        cl = ControlClient(stack.broker.url_for("coach"), password=USERS["coach"],
                           name="guided-test", stations=[STATION]).open()
        try:
            wait_until(lambda: cl.online(STATION) and len(cl.emg_channels(STATION)) > 0, 30,
                       "the simulated station online with its EMG description")
            assert set(MUSCLES) <= set(cl.emg_channels(STATION))
            first = command(cl, "start", athlete="ana")
            session = first["session"]
            assert first["result"]["calibration"]["reused"] == []
            # the simulator stands 5 s, then runs: tell it to stand while it is running
            time.sleep(max(0.0, began + 14.0 - time.monotonic()))
            edge_running(stack)

            standing = phase(cl, "standing", STANDING_S)
            assert standing["ok"] is True and standing["session"] == session, standing
            res = standing["result"]
            assert res["applied"] is True, standing
            # the runner was still running at the start: the first ~2 s are left out
            assert 1.5 <= res["used_s"][0] <= 4.0 and res["used_s"][1] > STANDING_S - 1.0, res
            assert res["notes"][0].startswith("used the still part of the window"), res
            assert all(s["ok"] and s["moved_deg"] < 2.0 for s in res["segments"].values()), res

            mvc = {}
            for muscle in MUSCLES:
                got = phase(cl, "mvc", MVC_S, muscle=muscle)
                assert got["ok"] is True and got["problems"] == [], got
                m = got["result"]["muscles"][muscle]
                assert m["ok"] and m["problem"] is None, got
                assert m["ratio"] >= 5.0 and m["held_s"] >= 1.0 and 0.05 < m["peak_mv"] < 2.0
                mvc[muscle] = m["peak_mv"]

            edge_running(stack)
            prone = phase(cl, "prone", PRONE_S, side="l")
            assert prone["ok"] is True and prone["problems"] == [], prone
            res = prone["result"]
            reps = res["repetitions"]
            # 2 s to stop, 3 s to lie down, then a lift every 5 s (instructions.py)
            assert len(reps) >= 2 and {r["side"] for r in reps} == {"l"}, res
            assert res["used_s"][0] >= 2.5, res  # the steps before lying down are left out
            assert res["notes"][0].startswith("analysed "), res["notes"]
            for r in reps:
                assert r["movement_onset_s"] > res["used_s"][0]
                assert 4.0 <= r["lift_deg"] <= 15.0, r  # ~10-15 cm (DOMAIN.md): ~7-10°
                assert r["glute_onset_ms"] is not None and r["hamstring_onset_ms"] is not None
                assert -400.0 < r["glute_onset_ms"] < 400.0, r
                assert math.isfinite(r["glute_ham_lag_ms"])
            assert res["sides"]["l"]["n_reps"] == len(reps) and res["advice"]["l"]
            command(cl, "stop")

            again = command(cl, "start", athlete="ana")
            reuse = again["result"]["calibration"]
            assert "mvc" in reuse["reused"], reuse
            assert set(MUSCLES) <= set(reuse["mvc_channels"]), reuse
            command(cl, "stop")
            assert time.monotonic() - began < 140
        finally:
            cl.close()
        edge_running(stack)

        store = open_store(stack.store_url)
        try:
            cal = store.calibration("ana")
            rows = store.phe(session)
        finally:
            store.close()
    assert cal is not None and {"standing", "mvc"} <= set(cal), cal
    assert set(cal["standing"]["imu"]) == {"pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"}
    refs = dict(zip(cal["mvc"]["channels"], cal["mvc"]["reference_mv"], strict=True))
    assert {m: refs[m] for m in MUSCLES} == pytest.approx(mvc)
    assert [r["side"] for r in rows] == ["l"] * len(reps)
    assert [r["lift_deg"] for r in rows] == pytest.approx([r["lift_deg"] for r in reps])
