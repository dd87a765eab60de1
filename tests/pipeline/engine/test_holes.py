"""Holes in a session: found per stream, calibration windows never span one, and numerical
failures inside the engine become a message naming the window."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine import analysis
from hipstride.pipeline.engine.analysis import AnalysisError, analyze
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.engine.holes import (
    Hole,
    HoleError,
    contiguous_parts,
    find_holes,
    standing_window,
)
from hipstride.pipeline.engine.imu_calibration import imu_calibrate
from hipstride.pipeline.engine.phases import still_span

RATE = 100.0


def still_imu(segment: str, seconds: float, *, moving: tuple[float, float] | None = None,
              hole: tuple[float, float] | None = None) -> ImuData:
    """A sensor lying still (gravity on y), optionally swinging or with NaN samples."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    acc = np.tile([0.0, 9.81, 0.0], (n, 1)) + 0.01 * np.sin(t)[:, None]
    gyr = np.zeros((n, 3)) + 0.2
    if moving:
        inside = (t >= moving[0]) & (t < moving[1])
        gyr[inside, 2] = 200.0 * np.sin(2 * np.pi * 1.4 * t[inside])
    if hole:
        inside = (t >= hole[0]) & (t < hole[1])
        acc[inside] = np.nan
        gyr[inside] = np.nan
    return ImuData(segment, acc, gyr, RATE)


def test_holes_are_found_per_stream_and_merged_where_they_overlap():
    emg = EmgData(np.ones((2000, 2)), ("glute_max_l", "glute_max_r"), 200.0)
    emg.samples_mv[400:600, 1] = np.nan  # 2.0–3.0 s in one channel
    imus = {"thigh_l": still_imu("thigh_l", 10.0, hole=(2.5, 4.0)),
            "thigh_r": still_imu("thigh_r", 10.0, hole=(7.0, 7.5))}
    holes = find_holes(emg, imus)
    assert holes == [Hole(2.0, 4.0, ("emg", "imu_thigh_l")), Hole(7.0, 7.5, ("imu_thigh_r",))]
    assert contiguous_parts(0.0, 10.0, holes) == [(0.0, 2.0), (4.0, 7.0), (7.5, 10.0)]
    assert find_holes(None, {"thigh_l": still_imu("thigh_l", 3.0)}) == []


def test_standing_window_is_cut_at_a_hole_or_refused_naming_both():
    hole = Hole(1.75, 18.45, ("emg", "imu_pelvis"))
    assert standing_window((0.0, 5.0), []) == (0.0, 5.0)
    assert standing_window((0.0, 5.0), [Hole(6.0, 7.0, ("emg",))]) == (0.0, 5.0)
    assert standing_window((0.0, 5.0), [hole]) == (0.0, 1.75)
    with pytest.raises(HoleError, match=r"the standing period 0–5 s is cut by a hole at "
                                        r"0\.60–18\.45 s \(17\.85 s without samples in emg, "
                                        r"imu_pelvis\): only 0\.60 s of standing before it"):
        standing_window((0.0, 5.0), [dataclasses.replace(hole, start_s=0.6)])


@pytest.mark.parametrize("hole", [(3.0, 3.4), (5.5, 9.0), (1.0, 1.2)])
def test_still_span_never_returns_a_window_spanning_a_hole(hole):
    # still from 0 to 12 s except for the hole; the segments agree
    imus = {s: still_imu(s, 12.0, hole=hole) for s in ("pelvis", "thigh_l", "thigh_r")}
    span = still_span(imus, (0.0, 12.0))
    assert span is not None
    a, b = span
    assert b <= hole[0] or a >= hole[1], (span, hole)
    # and it is the longer still side of the hole, not everything before the first NaN
    longer = max(hole[0], 12.0 - hole[1])
    assert b - a > longer - 1.0


def test_still_span_without_holes_is_unchanged_by_the_hole_handling():
    imus = {s: still_imu(s, 12.0, moving=(4.0, 6.0)) for s in ("pelvis", "thigh_l")}
    a, b = still_span(imus, (0.0, 12.0))
    assert a == pytest.approx(6.25, abs=0.3) and b == pytest.approx(12.0)


def test_calibration_on_a_window_with_missing_samples_names_segment_and_window():
    imu = still_imu("thigh_l", 8.0, hole=(1.75, 6.0))
    with pytest.raises(ValueError, match=r"IMU thigh_l: 325 of the 500 samples of the standing "
                                         r"period 0–5 s are missing \(NaN: a hole"):
        imu_calibrate(imu, standing=(0.0, 5.0))
    run = still_imu("thigh_l", 8.0, moving=(2.0, 8.0), hole=(6.0, 6.5))
    with pytest.raises(ValueError, match=r"IMU thigh_l: the functional calibration window "
                                         r"2\.00–8\.00 s holds missing samples"):
        imu_calibrate(run, standing=(0.0, 2.0))
    assert imu_calibrate(run, standing=(0.0, 2.0), running=(2.0, 6.0)).segment == "thigh_l"


@pytest.fixture(scope="module")
def sim():
    return simulate(20.0, seed=8)


def _imus(sim) -> dict[str, ImuData]:
    out = {}
    for seg in ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"):
        x = sim.data[f"imu_{seg}"].astype(float)
        desc = sim.description(f"imu_{seg}")
        out[seg] = ImuData(seg, x[:, :3], x[:, 3:], desc.rate_hz,
                           mounting=np.asarray(desc.mounting, float))
    return out


def test_a_linalg_error_inside_the_engine_becomes_a_message_naming_the_window(sim,
                                                                           monkeypatch):
    def eigen_failure(*_args, **_kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(analysis, "kinematics_from_imu", eigen_failure)
    with pytest.raises(AnalysisError, match=r"numerical failure in IMU kinematics \(standing "
                                            r"period 0–5 s, segments pelvis, thigh_l, thigh_r, "
                                            r"shank_l, shank_r\): Eigenvalues did not converge; "
                                            r"check that sensor"):
        analyze(None, _imus(sim))


def test_a_linalg_error_in_a_part_after_a_hole_is_a_note_naming_it(sim, monkeypatch):
    imus = _imus(sim)
    for imu in imus.values():
        imu.acc_mps2[2400:2600] = np.nan  # 12.0–13.0 s at 200 Hz
        imu.gyr_dps[2400:2600] = np.nan

    def eigen_failure(*_args, **_kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(analysis, "kinematics_resumed", eigen_failure)
    result = analyze(None, imus)
    assert any(p.startswith("the part 13.00–20.00 s (segments pelvis, thigh_l, thigh_r, "
                            "shank_l, shank_r) not analysed: numerical failure (SVD did not "
                            "converge); check that sensor") for p in result.problems)
    assert result.rows and all(r["stride_start_s"] + r["stride_time_s"] <= 12.0
                               for r in result.rows)
    assert [p["analysed"] for p in result.summary["parts"]] == [True, False]
