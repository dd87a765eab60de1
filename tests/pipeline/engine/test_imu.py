"""IMU kinematics against the simulator's ground truth: accuracy, calibration, edge cases."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hipstride.edge.simulator.session import SimulatedSession, simulate
from hipstride.pipeline.engine.data import ImuData, Kinematics
from hipstride.pipeline.engine.imu import (
    imu_calibrate,
    imu_sagittal,
    imu_segment_orientation,
    kinematics_from_imu,
)

PROFILES = ("healthy", "hamstring_dominant", "limited_extension", "asymmetry")
DURATION_S = 40.0


def _imus(sess: SimulatedSession, segments: tuple[str, ...] | None = None
          ) -> dict[str, ImuData]:
    out = {}
    for d in sess.descriptions:
        if d.kind != "imu" or (segments is not None and d.segment not in segments):
            continue
        x = sess.data[d.stream].astype(float)
        out[d.segment] = ImuData(d.segment, x[:, :3], x[:, 3:], d.rate_hz, 0.0,
                                 np.asarray(d.mounting, dtype=float))
    return out


def _errors(sess: SimulatedSession, kin: Kinematics) -> dict[str, float]:
    truth = sess.truth
    t = truth.curves["t_s"]
    assert np.allclose(kin.time_s, t)
    run = t >= truth.phase("running")["start_s"]
    out = {}
    for side in "lr":
        e = kin.hip_flexion_deg[side] - truth.curves[f"hip_flexion_{side}_deg"]
        out[f"hip_rmse_{side}"] = float(np.sqrt(np.mean(e[run] ** 2)))
    e = kin.pelvic_tilt_deg - truth.curves["pelvic_tilt_deg"]
    out["tilt_rmse"] = float(np.sqrt(np.mean(e[run] ** 2)))
    ext, tilt = [], []
    for row in truth.strides:
        if not row["steady"]:
            continue
        sel = (t >= row["stride_start_s"]) & (t < row["stride_start_s"] + row["stride_time_s"])
        ext.append(-kin.hip_flexion_deg[row["side"]][sel].min() - row["peak_hip_extension_deg"])
        tilt.append(kin.pelvic_tilt_deg[sel].max() - row["peak_anterior_tilt_deg"])
    assert len(ext) > 20
    out["ext_median_abs"] = float(np.median(np.abs(ext)))
    out["tilt_median_abs"] = float(np.median(np.abs(tilt)))
    return out


@pytest.mark.parametrize("misalignment", [0.0, 20.0], ids=["fitted", "misaligned20"])
@pytest.mark.parametrize("profile, seed", list(zip(PROFILES, (11, 12, 13, 14), strict=True)))
def test_hip_flexion_and_pelvic_tilt_match_ground_truth(profile, seed, misalignment):
    sess = simulate(DURATION_S, profile=profile, seed=seed, misalignment_deg=misalignment)
    kin = kinematics_from_imu(_imus(sess), standing=(0.0, 5.0))
    err = _errors(sess, kin)
    assert err["hip_rmse_l"] <= 2.0 and err["hip_rmse_r"] <= 2.0, err
    assert err["tilt_rmse"] <= 1.0, err
    assert err["ext_median_abs"] <= 2.0, err
    assert err["tilt_median_abs"] <= 2.0, err
    assert kin.quality["hip_reference"] == "pelvis"
    assert set(kin.sagittal_deg) == {"pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"}


def test_segment_angles_and_rates_match_ground_truth():
    sess = simulate(30.0, profile="healthy", seed=21)
    kin = kinematics_from_imu(_imus(sess))
    t = sess.truth.curves["t_s"]
    run = t >= 6.0
    for seg, angle in kin.sagittal_deg.items():
        truth = sess.truth.curves[f"sagittal_{seg}_deg"]
        assert np.sqrt(np.mean((angle - truth)[run] ** 2)) < 1.5, seg
        # the sagittal rate is the derivative of the sagittal angle, positive swinging forward
        d_truth = np.gradient(truth, 1.0 / kin.rate_hz)
        rate = kin.sagittal_rate_dps[seg]
        if seg != "pelvis":
            assert np.corrcoef(rate[run], d_truth[run])[0, 1] > 0.99, seg
            assert np.median(np.abs(rate - d_truth)[run]) < 5.0, seg


def test_per_segment_misalignment_is_estimated_and_corrected():
    # a heading error about the vertical is what gravity cannot see: only functional
    # calibration finds it
    mis = {"pelvis": (0.0, -20.0, 0.0), "thigh_l": (0.0, 20.0, 0.0),
           "thigh_r": (6.0, -18.0, 5.0), "shank_l": (12.0, 0.0, -12.0),
           "shank_r": (0.0, 0.0, 20.0)}
    sess = simulate(DURATION_S, profile="healthy", seed=31, misalignment_deg=mis)
    imus = _imus(sess)
    kin = kinematics_from_imu(imus)
    err = _errors(sess, kin)
    assert max(err["hip_rmse_l"], err["hip_rmse_r"]) <= 2.0, err
    assert err["ext_median_abs"] <= 2.0 and err["tilt_median_abs"] <= 2.0, err
    est = kin.quality["misalignment_deg"]
    for seg, rv in mis.items():
        cal = imu_calibrate(imus[seg])
        # estimated vs true strap rotation; thighs keep ~6° because the simulated thigh's
        # dominant rotation axis is ~6° off its segment z (phase-locked frontal/transverse
        # motion), the rest should be close
        true_r = _rot(np.asarray(rv))
        est_r = _rot(cal.misalignment_rotvec_deg)
        gap = np.degrees(np.arccos(np.clip((np.trace(true_r.T @ est_r) - 1) / 2, -1, 1)))
        assert gap < (9.0 if seg.startswith("thigh") else 3.5), (seg, gap)
        assert est[seg] == pytest.approx(cal.misalignment_deg)
    static = kinematics_from_imu(imus, functional=False)
    t = sess.truth.curves["t_s"]
    run = t >= 6.0
    truth = sess.truth.curves["sagittal_thigh_l_deg"]
    rmse_f = np.sqrt(np.mean((kin.sagittal_deg["thigh_l"] - truth)[run] ** 2))
    rmse_s = np.sqrt(np.mean((static.sagittal_deg["thigh_l"] - truth)[run] ** 2))
    assert rmse_f < rmse_s
    assert static.quality["calibration_method"]["thigh_l"] == "mounting"
    assert kin.quality["calibration_method"] == {
        "pelvis": "acc_axis", "thigh_l": "gyro_axis", "thigh_r": "gyro_axis",
        "shank_l": "gyro_axis", "shank_r": "gyro_axis"}


def _rot(rotvec_deg: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rotvec_deg, degrees=True).as_matrix()


def test_heading_drift_does_not_leak_into_sagittal_angles():
    sess = simulate(DURATION_S, profile="healthy", seed=41)
    imus = _imus(sess)
    # an extra gyro bias about each sensor's vertical after standing: 0.5°/s, ~17° of heading
    # drift by the end (and, as the thighs swing, some tilt drift for the filter to track)
    drifted = {}
    for seg, imu in imus.items():
        up = imu.acc_mps2[:800].mean(axis=0)
        up /= np.linalg.norm(up)
        gyr = imu.gyr_dps.copy()
        gyr[1000:] += 0.5 * up
        drifted[seg] = ImuData(seg, imu.acc_mps2, gyr, imu.rate_hz, imu.start_s, imu.mounting)
    kin = kinematics_from_imu(drifted)
    err = _errors(sess, kin)
    assert max(err["hip_rmse_l"], err["hip_rmse_r"]) <= 2.0, err
    assert err["ext_median_abs"] <= 2.0 and err["tilt_median_abs"] <= 2.0, err


def test_heading_re_reference_removes_a_large_heading_drift():
    # a long session drifts by tens of degrees about the vertical: turn a thigh's world frame
    # by up to 120° and the sagittal angle must not notice
    sess = simulate(20.0, profile="healthy", seed=42)
    imu = _imus(sess, ("thigh_l",))["thigh_l"]
    cal = imu_calibrate(imu)
    rot = imu_segment_orientation(imu, cal)
    psi = np.deg2rad(np.linspace(0.0, 120.0, len(rot)))
    turn = np.zeros((len(rot), 3, 3))
    turn[:, 0, 0] = turn[:, 2, 2] = np.cos(psi)
    turn[:, 0, 2], turn[:, 2, 0] = np.sin(psi), -np.sin(psi)
    turn[:, 1, 1] = 1.0
    before = imu_sagittal(rot, imu.rate_hz)
    after = imu_sagittal(turn @ rot, imu.rate_hz)
    raw = imu_sagittal(turn @ rot, imu.rate_hz, heading_window_s=None)
    run = sess.truth.curves["t_s"] >= 6.0
    assert np.abs(after - before)[run].max() < 0.3
    assert np.abs(raw - before)[run].max() > 20.0


def test_missing_pelvis_gives_hip_relative_to_vertical_and_a_flag():
    sess = simulate(20.0, profile="healthy", seed=51)
    kin = kinematics_from_imu(_imus(sess, ("thigh_l", "thigh_r")))
    assert kin.pelvic_tilt_deg is None
    assert kin.quality["hip_reference"] == "world_vertical"
    assert set(kin.sagittal_deg) == {"thigh_l", "thigh_r"}
    assert np.array_equal(kin.hip_flexion_deg["l"], kin.sagittal_deg["thigh_l"])
    truth = sess.truth.curves["sagittal_thigh_l_deg"]
    run = sess.truth.curves["t_s"] >= 6.0
    assert np.sqrt(np.mean((kin.hip_flexion_deg["l"] - truth)[run] ** 2)) < 2.0


def test_one_thigh_without_shanks():
    sess = simulate(12.0, profile="healthy", seed=52)
    kin = kinematics_from_imu(_imus(sess, ("pelvis", "thigh_r")))
    assert set(kin.hip_flexion_deg) == {"r"}
    assert set(kin.sagittal_rate_dps) == {"pelvis", "thigh_r"}
    assert kin.pelvic_tilt_deg is not None


def test_segments_on_different_time_bases_are_resampled():
    sess = simulate(30.0, profile="healthy", seed=61)
    imus = _imus(sess)
    late = imus["thigh_l"]
    k = 37  # thigh_l starts 0.185 s later and runs at 100 Hz
    imus["thigh_l"] = ImuData("thigh_l", late.acc_mps2[k::2], late.gyr_dps[k::2], 100.0,
                              k / 200.0, late.mounting)
    kin = kinematics_from_imu(imus)
    assert kin.quality["resampled"] is True
    assert kin.rate_hz == 200.0 and kin.start_s == pytest.approx(k / 200.0)
    t = sess.truth.curves["t_s"]
    truth = np.interp(kin.time_s, t, sess.truth.curves["hip_flexion_l_deg"])
    run = kin.time_s >= 6.0
    assert np.sqrt(np.mean((kin.hip_flexion_deg["l"] - truth)[run] ** 2)) < 2.5


def test_clear_errors_for_bad_input():
    sess = simulate(12.0, profile="healthy", seed=71)
    imus = _imus(sess)
    with pytest.raises(ValueError, match="standing period 20–25 s holds 0 samples"):
        kinematics_from_imu(imus, standing=(20.0, 25.0))
    with pytest.raises(ValueError, match="not still during the standing period"):
        kinematics_from_imu(imus, standing=(6.0, 11.0))
    with pytest.raises(ValueError, match="at least one thigh IMU"):
        kinematics_from_imu({"pelvis": imus["pelvis"]})


def test_kinematics_chain_is_fast():
    sess = simulate(60.0, profile="healthy", seed=81)
    imus = _imus(sess)
    kinematics_from_imu(imus)
    best = min(_timed(imus) for _ in range(3))
    assert 60.0 / best >= 500.0, f"{60.0 / best:.0f}x real time"


def _timed(imus: dict[str, ImuData]) -> float:
    t0 = time.perf_counter()
    kinematics_from_imu(imus)
    return time.perf_counter() - t0


@pytest.mark.parametrize("seed", [2, 3])
def test_peak_extension_has_no_side_dependent_bias(seed):
    # Per-stride peak hip extension against the truth, per side. The old filter (weighted
    # block means, reference learned over a window of partial strides) read one side ~2° high
    # and the other ~0.5° low on these seeds: a false asymmetry on a symmetric runner.
    sess = simulate(60.0, profile="healthy", seed=seed, segments=("pelvis", "thigh_l", "thigh_r"))
    kin = kinematics_from_imu(_imus(sess))
    bias = {}
    for side in "lr":
        est = -kin.hip_flexion_deg[side]
        true = -sess.truth.curves[f"hip_flexion_{side}_deg"]
        errs = []
        for s in sess.truth.strides:
            if s["side"] != side or not s["steady"] or s["stride_start_s"] < 20.0:
                continue
            i0 = round(s["stride_start_s"] * kin.rate_hz)
            i1 = round((s["stride_start_s"] + s["stride_time_s"]) * kin.rate_hz)
            errs.append(est[i0:i1].max() - true[i0:i1].max())
        assert len(errs) > 20
        bias[side] = float(np.median(errs))
    assert abs(bias["l"]) < 0.7 and abs(bias["r"]) < 0.7, bias
    assert abs(bias["l"] - bias["r"]) < 0.5, bias
