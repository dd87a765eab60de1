"""Stride metrics given perfect kinematics and gait events (from the simulator's truth):
isolates the cutting and measuring from the IMU fusion and event detection."""

from __future__ import annotations

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.data import EmgData, GaitEvents, Kinematics
from hipstride.pipeline.engine.schema import STRIDE_COLUMNS
from hipstride.pipeline.engine.strides import muscle_activity, stride_rows


def truth_inputs(session):
    truth = session.truth
    c = truth.curves
    rate = float(1 / np.median(np.diff(c["t_s"])))
    kin = Kinematics(rate_hz=rate, start_s=float(c["t_s"][0]),
                     hip_flexion_deg={"l": c["hip_flexion_l_deg"], "r": c["hip_flexion_r_deg"]},
                     pelvic_tilt_deg=c["pelvic_tilt_deg"],
                     sagittal_deg={"pelvis": c["sagittal_pelvis_deg"]}, sagittal_rate_dps={})
    events = {}
    for side in "lr":
        rows = [s for s in truth.strides if s["side"] == side]
        ic = np.array([s["stride_start_s"] for s in rows])
        events[side] = GaitEvents(side, ic, np.array([s["toe_off_s"] for s in rows[:-1]]),
                                  np.ones(len(ic) - 1, bool), ("",) * (len(ic) - 1),
                                  "truth")
    d = session.description("emg")
    emg = EmgData(session.data["emg"].astype(float), d.channel_names, d.rate_hz)
    return kin, events, emg


@pytest.fixture(scope="module")
def session():
    return simulate(75.0, profile="healthy", seed=11, mvc=True)


def steady_pairs(session, rows, side):
    truth = {round(s["stride_start_s"], 6): s for s in session.truth.strides
             if s["side"] == side and s["steady"]}
    return [(r, truth[round(r["stride_start_s"], 6)]) for r in rows
            if round(r["stride_start_s"], 6) in truth]


def test_rows_have_the_documented_columns_and_match_truth(session):
    kin, events, emg = truth_inputs(session)
    mvc_phase = session.truth.phase("mvc")
    a, b = (int(mvc_phase[k] * emg.rate_hz) for k in ("start_s", "end_s"))
    mvc = EmgData(emg.samples_mv[a:b], emg.channels, emg.rate_hz)
    running = session.truth.phase("running")
    cut = int(running["end_s"] * emg.rate_hz)
    activity = muscle_activity(EmgData(emg.samples_mv[:cut], emg.channels, emg.rate_hz),
                               mvc=mvc)
    assert activity.normalization == "mvc"
    for side in "lr":
        rows = stride_rows(side, events[side], kin, activity)
        assert all(tuple(r) == STRIDE_COLUMNS for r in rows)
        pairs = steady_pairs(session, rows, side)
        assert len(pairs) > 20
        err = {name: np.array([r[name] - t[name] for r, t in pairs]) for name in (
            "peak_hip_extension_deg", "peak_hip_flexion_deg", "peak_anterior_tilt_deg",
            "glute_onset_ms", "hamstring_onset_ms", "stride_time_s")}
        assert np.max(np.abs(err["peak_hip_extension_deg"])) < 0.1
        assert np.max(np.abs(err["peak_anterior_tilt_deg"])) < 0.1
        assert np.nanmedian(np.abs(err["glute_onset_ms"])) <= 20
        assert np.nanmedian(np.abs(err["hamstring_onset_ms"])) <= 20
        assert np.mean(np.isfinite(err["glute_onset_ms"])) > 0.95
        ratio = np.array([r["glute_ham_ratio"] / t["glute_ham_ratio"] for r, t in pairs])
        assert abs(np.median(ratio) - 1) < 0.1, np.median(ratio)


def test_dynamic_normalisation_labels_ratios_relative(session):
    kin, events, emg = truth_inputs(session)
    activity = muscle_activity(emg, ic_s=events["l"].ic_s[3:])
    assert activity.normalization == "relative"
    rows = stride_rows("l", events["l"], kin, activity)
    assert {r["normalization"] for r in rows} == {"relative"}
    assert np.nanmedian([r["glute_ham_ratio"] for r in rows]) > 0


def test_missing_channels_give_nan_and_say_so(session):
    kin, events, emg = truth_inputs(session)
    keep = [i for i, c in enumerate(emg.channels) if c != "glute_max_r"]
    partial = EmgData(emg.samples_mv[:, keep], tuple(emg.channels[i] for i in keep),
                      emg.rate_hz)
    activity = muscle_activity(partial, ic_s=events["r"].ic_s)
    rows = stride_rows("r", events["r"], kin, activity)
    assert all(np.isnan(r["glute_onset_ms"]) and np.isnan(r["glute_ham_ratio"]) for r in rows)
    assert all("missing:glute_max_r" in r["quality"] for r in rows)
    assert np.isfinite([r["peak_hip_extension_deg"] for r in rows]).all()
    no_pelvis = Kinematics(kin.rate_hz, kin.start_s, kin.hip_flexion_deg, None,
                           kin.sagittal_deg, {})
    rows = stride_rows("l", events["l"], no_pelvis, None)
    assert all("missing:imu_pelvis" in r["quality"] and "missing:emg" in r["quality"]
               for r in rows)
    assert all(np.isnan(r["peak_anterior_tilt_deg"]) for r in rows)
