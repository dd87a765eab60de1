"""MVC trials and the prone hip extension test after the run."""

import numpy as np
import pytest

from hipstride.edge.simulator import simulate


@pytest.fixture(scope="module")
def session():
    return simulate(120.0, seed=12, profile="hamstring_dominant", mvc=True, prone=True,
                    prone_reps=3)


def test_phases_follow_each_other(session):
    names = [p["name"] for p in session.truth.phases]
    assert names == ["standing", "running", "mvc", "prone"]
    ends = [p["end_s"] for p in session.truth.phases]
    assert ends[-1] == pytest.approx(120.0)
    assert all(s["stride_start_s"] + s["stride_time_s"] <= session.truth.phases[1]["end_s"]
               for s in session.truth.strides)


def test_mvc_effort_reaches_the_mvc_amplitude(session):
    emg = session.data["emg"].astype(float)
    channels = session.truth.metadata["emg_channels"]
    assert [t["channel"] for t in session.truth.mvc_trials] == channels
    for trial in session.truth.mvc_trials:
        i = channels.index(trial["channel"])
        a, b = (round((trial["effort_start_s"] + 1) * 2000),
                round((trial["effort_end_s"] - 1) * 2000))
        rms = np.sqrt(np.mean(emg[a:b] ** 2, axis=0))
        assert rms[i] == pytest.approx(session.truth.metadata["mvc_mv"][trial["channel"]],
                                       rel=0.1)
        assert np.delete(rms, i).max() < 0.02


def test_prone_reps_lift_the_thigh_after_the_recorded_onsets(session):
    reps = session.truth.prone_reps
    assert [(r["side"], r["rep"]) for r in reps] == [
        (s, i) for s in "lr" for i in range(3)]
    curves = session.truth.curves
    t = curves["t_s"]
    for rep in reps:
        flex = curves[f"hip_flexion_{rep['side']}_deg"]
        onset = rep["movement_onset_s"]
        still = (t > onset - 0.5) & (t <= onset)
        held = (t > rep["hold_start_s"] + 0.2) & (t < rep["hold_start_s"] + 1.8)
        assert np.ptp(flex[still]) < 1e-6
        assert flex[held].mean() - flex[still].mean() == pytest.approx(-rep["lift_deg"],
                                                                       abs=0.5)
        assert rep["order"][0] == "hamstring"  # this profile's hamstrings fire first
        act = curves[f"activation_glute_max_{rep['side']}"]
        glute_on = onset + rep["glute_onset_ms"] / 1000
        assert act[(t > glute_on - 0.1) & (t < glute_on - 0.005)].max() == 0.0
        assert act[(t > glute_on + 0.03) & (t < glute_on + 0.1)].min() > 0.1
    # lying prone: gravity along the pelvis's -x (anterior axis points down)
    acc = session.data["imu_pelvis"][round((reps[0]["movement_onset_s"] - 0.5) * 200), :3]
    from hipstride.edge.simulator.session import STRAP_MOUNTING
    np.testing.assert_allclose(STRAP_MOUNTING["pelvis"] @ acc, [-9.80665, 0, 0], atol=0.3)
