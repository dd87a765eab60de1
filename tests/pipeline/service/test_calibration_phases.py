"""Calibration phases inside a station (no broker): the sample ring, windows cut from it,
standing/MVC/prone results applied to the station's engine, and the processed angle points."""

from __future__ import annotations

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.edge.simulator.protocols import MVC_TRIAL_S
from hipstride.frames import decode_frame
from hipstride.pipeline.service.phases import PhaseJob, SampleRing, results_message
from hipstride.pipeline.service.sessions import Interval, Timeline
from hipstride.pipeline.service.station import Station, output_points
from hipstride.pipeline.store.base import PROCESSED
from tests.pipeline.service.sim_frames import sim_frames

BASE_NS = 1_700_000_000_000_000_000
CHANNELS = ("glute_max_l", "biceps_femoris_l", "glute_max_r", "biceps_femoris_r")


def ns(t_s: float) -> int:
    return BASE_NS + round(t_s * 1e9)


def test_ring_cuts_windows_fills_gaps_and_stays_bounded():
    ring = SampleRing(keep_s=10.0)
    rate = 100.0
    for k in range(30):  # 30 blocks of 0.5 s; block 15 lost
        if k != 15:
            x = np.arange(k * 50, (k + 1) * 50, dtype=float)[:, None] * [1.0, -1.0]
            ring.add("s", ns(k * 0.5), rate, x)
    assert ring.end_ns("s") == ns(15.0)
    assert ring.window("s", ns(1.0), ns(3.0)) is None  # older than keep_s: dropped
    t0, r, x, missing = ring.window("s", ns(6.0), ns(10.0))
    assert (t0, r, x.shape, missing) == (ns(6.0), rate, (400, 2), 50)
    assert np.allclose(x[:, 0], np.arange(600, 1000))  # the gap is interpolated
    ring.add("s", ns(30.0), rate, np.zeros((50, 2)))  # 15 s later: older blocks are dropped
    assert ring.window("s", ns(6.0), ns(10.0)) is None
    since = ring.blocks_since("s", ns(30.2))
    assert [(t, len(v)) for t, v in since] == [(ns(30.2), 30)]


@pytest.fixture(scope="module")
def sim():
    return simulate(84.0, seed=2, mvc=True, prone=True, prone_reps=2, standing_s=6.0,
                    emg_channels=(*CHANNELS, "erector_spinae_l", "erector_spinae_r"))


def fed_station(sim, tmp_path, pieces) -> Station:
    st = Station("tm1", tmp_path)
    for d in sim.descriptions:
        st.describe(d)
    for f in sim_frames(sim, BASE_NS, pieces):
        st.accept(decode_frame(f.payload), f.payload)
        if f.stream == "emg":
            st.poll()
    return st


def job(phase: str, a: float, b: float, **kw) -> PhaseJob:
    return PhaseJob("tm1", "s1", "ana", phase, ns(a), ns(b), **kw)


def test_station_phases_from_its_ring(sim, tmp_path):
    mvc0 = sim.truth.phase("mvc")["start_s"]
    prone = sim.truth.phase("prone")
    st = fed_station(sim, tmp_path, [(0.0, sim.config.duration_s)])
    assert st.data_end_ns() == ns(sim.config.duration_s)

    res = st.run_phase(job("standing", 0.3, 5.8))
    assert res.ok and set(res.state["imu"]) == {"pelvis", "thigh_l", "thigh_r", "shank_l",
                                                "shank_r"}
    old = st.engine
    assert st.apply_standing(res.state, ns(5.8)).startswith("applied")
    assert st.engine is not old and st.engine.phase == "standing"
    st.poll()
    assert st.engine.phase in ("calibrating", "running")  # calibrated at once, from the state

    i = sim.description("emg").channel_names.index("glute_max_l")
    res = st.run_phase(job("mvc", mvc0 + i * MVC_TRIAL_S, mvc0 + (i + 1) * MVC_TRIAL_S,
                           muscle="glute_max_l"))
    assert res.ok and res.state["channels"] == ["glute_max_l"]
    missing = st.apply_mvc({"glute_max_l": res.state["reference_mv"][0]})
    assert "glute_max_r" in missing and st.engine.normalization == "relative"
    body = results_message(job("mvc", 0, 8, muscle="glute_max_l"), res.ok, res.problems,
                           res.result, BASE_NS)
    assert body["muscle"] == "glute_max_l" and body["result"]["muscles"]["glute_max_l"]["ok"]

    res = st.run_phase(job("prone", prone["start_s"], prone["end_s"]))
    assert res.ok, res.problems
    assert [r["side"] for r in res.result["repetitions"]] == ["l", "l", "r", "r"]

    res = st.run_phase(job("mvc", 1.0, 4.0, muscle="glute_max_l"))  # standing: no effort
    assert not res.ok and "no clear effort" in res.problems[0]


def test_athlete_mvc_is_used_once_every_channel_has_one(sim, tmp_path):
    st = fed_station(sim, tmp_path, [(0.0, 8.0)])
    chans = sim.description("emg").channel_names
    st.use_athlete({"mvc": {"channels": list(chans), "reference_mv": [0.3] * len(chans)},
                    "time_ns": {"mvc": BASE_NS}})
    assert st.engine.normalization == "mvc" and st.mvc_missing() == ()
    st.use_athlete(None)  # the next athlete has none: back to relative ratios
    assert st.engine.normalization == "relative" and st.mvc_missing() == tuple(chans)


def test_processed_angles_are_points_of_stable_streams(tmp_path):
    sim = simulate(24.0, seed=1)
    st = fed_station(sim, tmp_path, [])
    timeline = Timeline([Interval("s1", "ana", ns(0.0))])
    points = []
    for f in sim_frames(sim, BASE_NS, [(0.0, 24.0)]):
        st.accept(decode_frame(f.payload), f.payload)
        if f.stream == "emg":
            out = st.poll()
            if out is not None:
                points += [p for p in output_points(out, timeline) if p.measurement is PROCESSED]
    streams = {(p.tags["stream"], p.tags["channel"]) for p in points}
    assert {("hip_angle", "hip_flexion_l_deg"), ("hip_angle", "hip_flexion_r_deg"),
            ("pelvis_angle", "pelvic_tilt_deg")} <= streams
    hip = sorted(p.time_ns for p in points if p.tags["channel"] == "hip_flexion_l_deg")
    assert np.all(np.diff(hip) == 10_000_000)  # 100 Hz, no duplicates
    assert all(p.tags["session"] == "s1" for p in points)
