"""Ground truth agrees with the signals it describes."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hipstride.edge.simulator import GroundTruth
from hipstride.edge.simulator.session import STRAP_MOUNTING
from hipstride.streams import IMU_SEGMENTS, emg_description, imu_description

G = 9.80665


def test_streams_follow_the_contract(healthy):
    assert healthy.description("emg") == emg_description(sensor="simulator")
    for seg in IMU_SEGMENTS:
        mounting = tuple(map(tuple, STRAP_MOUNTING[seg].tolist()))
        assert healthy.description(f"imu_{seg}") == imu_description(
            seg, mounting=mounting, sensor="simulator")
    assert healthy.data["emg"].shape == (60000, 6)
    for seg in IMU_SEGMENTS:
        assert healthy.data[f"imu_{seg}"].shape == (6000, 6)
    assert all(a.dtype == np.float32 for a in healthy.data.values())
    assert all(np.isfinite(a).all() for a in healthy.data.values())


def test_standing_period_is_still(healthy):
    standing = healthy.truth.phase("standing")
    assert standing["end_s"] == 5.0
    n = int(4.5 * 200)
    curves = healthy.truth.curves
    for name in ("hip_flexion_l_deg", "hip_flexion_r_deg", "pelvic_tilt_deg"):
        assert np.abs(curves[name][:n]).max() < 1e-9
    for seg in IMU_SEGMENTS:
        imu = healthy.data[f"imu_{seg}"][:n].astype(float)
        assert np.abs(np.linalg.norm(imu[:, :3], axis=1) - G).max() < 0.5
        assert imu[:, 3:].std(axis=0).max() < 0.3  # noise and bias only
        # gravity seen through the known mounting: sensor = M^T (0, g, 0)
        expected = STRAP_MOUNTING[seg].T @ np.array([0.0, G, 0.0])
        np.testing.assert_allclose(imu[:, :3].mean(axis=0), expected, atol=0.25)
    emg = healthy.data["emg"][: 4 * 2000].astype(float)
    assert np.sqrt(np.mean(emg**2, axis=0)).max() < 0.01


def _steady(truth, side="l"):
    return truth.side_strides(side, steady_only=True)


@pytest.mark.parametrize("side", ["l", "r"])
def test_peaks_match_the_continuous_curve(healthy, side):
    curves = healthy.truth.curves
    t, flex = curves["t_s"], curves[f"hip_flexion_{side}_deg"]
    tilt = curves["pelvic_tilt_deg"]
    strides = _steady(healthy.truth, side)
    assert len(strides) > 25
    for s in strides:
        sel = (t >= s["stride_start_s"]) & (t < s["stride_start_s"] + s["stride_time_s"])
        i = np.argmin(flex[sel])
        assert -flex[sel][i] == pytest.approx(s["peak_hip_extension_deg"], abs=0.05)
        t_ext = s["stride_start_s"] + s["peak_hip_extension_pct"] / 100 * s["stride_time_s"]
        assert abs(t[sel][i] - t_ext) <= 0.0051
        assert flex[sel].max() == pytest.approx(s["peak_hip_flexion_deg"], abs=0.05)
        assert s["hip_rom_deg"] == pytest.approx(
            s["peak_hip_flexion_deg"] + s["peak_hip_extension_deg"])
        assert tilt[sel].max() == pytest.approx(s["peak_anterior_tilt_deg"], abs=0.05)
        assert np.ptp(tilt[sel]) == pytest.approx(s["pelvic_tilt_range_deg"], abs=0.1)


def test_running_looks_like_running(healthy):
    strides = _steady(healthy.truth, "l") + _steady(healthy.truth, "r")
    ext = np.array([s["peak_hip_extension_deg"] for s in strides])
    flex = np.array([s["peak_hip_flexion_deg"] for s in strides])
    pct = np.array([s["peak_hip_extension_pct"] for s in strides])
    cadence = np.array([s["cadence_spm"] for s in strides])
    stride_s = healthy.truth.stride_column("stride_time_s", "l")
    assert 6 < ext.mean() < 12 and 48 < flex.mean() < 60
    assert 33 < pct.mean() < 45
    assert ((cadence > 150) & (cadence < 190)).all()
    assert 0.01 < stride_s.std() / stride_s.mean() < 0.04
    for s in strides:  # toe-off inside the stride, at ~30-40 %
        assert 0.3 < (s["toe_off_s"] - s["stride_start_s"]) / s["stride_time_s"] < 0.42
    # left and right half a stride apart
    left = healthy.truth.stride_column("stride_start_s", "l")
    right = healthy.truth.stride_column("stride_start_s", "r")
    offsets = [(r - left[left < r].max()) for r in right if (left < r).any()]
    assert np.mean(offsets) / stride_s.mean() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("side", ["l", "r"])
def test_ic_coincides_with_the_shank_impact(healthy, side):
    acc = healthy.data[f"imu_shank_{side}"][:, :3].astype(float)
    t = np.arange(len(acc)) / 200.0
    magnitude = np.linalg.norm(acc, axis=1)
    for s in _steady(healthy.truth, side):
        ic = s["stride_start_s"]
        sel = (t > ic - 0.1) & (t < ic + 0.1)
        t_peak = t[sel][np.argmax(magnitude[sel])]
        assert ic - 0.001 <= t_peak <= ic + 0.02


def test_gyro_integrates_back_to_the_segment_angles(clean):
    dt = 1 / 200.0
    for seg in ("pelvis", "thigh_r", "shank_l"):
        gyr = np.deg2rad(clean.data[f"imu_{seg}"][:, 3:].astype(float))
        steps = Rotation.from_rotvec(0.5 * (gyr[:-1] + gyr[1:]) * dt)
        r = Rotation.identity()
        z = [0.0]
        for step in steps:
            r = r * step
            z.append(r.as_euler("ZXY", degrees=True)[0])
        truth = clean.truth.curves[f"sagittal_{seg}_deg"]
        assert np.ptp(truth) > 4.0
        assert np.abs(np.array(z) - truth).max() < 1.0


def test_glute_ham_ratio_is_the_activation_integral(healthy):
    curves = healthy.truth.curves
    t = curves["t_s"]
    for side in "lr":
        glute, ham = curves[f"activation_glute_max_{side}"], curves[
            f"activation_biceps_femoris_{side}"]
        for s in _steady(healthy.truth, side):
            sel = (t >= s["extension_phase_start_s"]) & (t <= s["extension_phase_end_s"])
            ratio = np.trapezoid(glute[sel], t[sel]) / np.trapezoid(ham[sel], t[sel])
            assert ratio == pytest.approx(s["glute_ham_ratio"], rel=0.05)
            assert s["extension_phase_start_s"] < s["stride_start_s"] < s[
                "extension_phase_end_s"]


def test_onsets_are_where_activation_starts(healthy):
    curves = healthy.truth.curves
    t = curves["t_s"]
    for s in _steady(healthy.truth, "r")[:10]:
        for key, channel in (("glute_onset_ms", "glute_max_r"),
                             ("hamstring_onset_ms", "biceps_femoris_r")):
            onset = s["stride_start_s"] + s[key] / 1000
            act = curves[f"activation_{channel}"]
            before = (t > onset - 0.1) & (t < onset - 0.003)
            after = (t > onset + 0.02) & (t < onset + 0.04)
            assert act[before].max() < 1e-12
            assert act[after].min() > 0.05
        assert s["onset_lag_ms"] == pytest.approx(s["glute_onset_ms"] - s["hamstring_onset_ms"])


def test_emg_amplitude_follows_activation(healthy):
    emg = healthy.data["emg"].astype(float)
    act = healthy.truth.curves["activation_glute_max_l"]
    mvc_mv = healthy.truth.metadata["mvc_mv"]["glute_max_l"]
    x = emg[:, 0].reshape(-1, 10)  # 200 Hz bins of 10 samples
    busy = act > 0.2
    ratio = np.sqrt(np.mean(x[busy] ** 2)) / (mvc_mv * np.sqrt(np.mean(act[busy] ** 2)))
    assert ratio == pytest.approx(1.0, abs=0.2)


def test_truth_file_round_trip(healthy, tmp_path):
    json_path, npz_path = healthy.truth.write(tmp_path / "truth.json")
    assert json_path.exists() and npz_path.exists()
    back = GroundTruth.read(json_path)
    assert back.strides == healthy.truth.strides
    assert back.phases == healthy.truth.phases
    assert set(back.curves) == set(healthy.truth.curves)
    for name, values in healthy.truth.curves.items():
        np.testing.assert_array_equal(back.curves[name], values)
