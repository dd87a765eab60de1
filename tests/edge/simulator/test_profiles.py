"""Profiles and session knobs move the truth — and the signals — the expected way."""

import numpy as np
import pytest

from hipstride.edge.simulator import SessionConfig, SessionGenerator, simulate
from hipstride.edge.simulator.session import Dropout


def _mean(session, name, side="l"):
    return float(np.mean(session.truth.stride_column(name, side)))


def _si(right, left):
    return (right - left) / (0.5 * (right + left)) * 100.0


@pytest.fixture(scope="module")
def sessions():
    return {p: simulate(20.0, profile=p, seed=11) for p in
            ("healthy", "hamstring_dominant", "limited_extension", "asymmetry")}


def test_hamstring_dominant_has_weak_late_glutes(sessions):
    healthy, ham = sessions["healthy"], sessions["hamstring_dominant"]
    assert _mean(ham, "glute_ham_ratio") < 0.6 * _mean(healthy, "glute_ham_ratio")
    assert _mean(ham, "onset_lag_ms") > _mean(healthy, "onset_lag_ms") + 50
    assert _mean(ham, "hamstring_onset_ms") < _mean(healthy, "hamstring_onset_ms")


def test_limited_extension_tilts_the_pelvis_forward(sessions):
    healthy, lim = sessions["healthy"], sessions["limited_extension"]
    assert _mean(lim, "peak_hip_extension_deg") < 3.5
    assert _mean(healthy, "peak_hip_extension_deg") > 7.0
    tilt_gain = _mean(lim, "peak_anterior_tilt_deg") - _mean(healthy, "peak_anterior_tilt_deg")
    assert 6.0 < tilt_gain < 10.0
    # the lower back works harder: more erector spinae EMG while running
    def es_rms(s):
        return float(np.sqrt(np.mean(s.data["emg"][20000:, 4].astype(float) ** 2)))
    assert es_rms(lim) > 1.5 * es_rms(healthy)


def test_asymmetry_is_beyond_the_cue_threshold(sessions):
    asym, healthy = sessions["asymmetry"], sessions["healthy"]
    ratio_si = _si(_mean(asym, "glute_ham_ratio", "r"), _mean(asym, "glute_ham_ratio", "l"))
    ext_si = _si(_mean(asym, "peak_hip_extension_deg", "r"),
                 _mean(asym, "peak_hip_extension_deg", "l"))
    assert abs(ratio_si) > 15 and abs(ext_si) > 15
    healthy_si = _si(_mean(healthy, "glute_ham_ratio", "r"),
                     _mean(healthy, "glute_ham_ratio", "l"))
    assert abs(healthy_si) < 10


def test_faster_running_raises_cadence():
    s = simulate(40.0, seed=5, speed_schedule=((0.0, 8.0), (20.0, 8.0), (25.0, 15.0)))
    starts = s.truth.stride_column("stride_start_s", "l")
    cadence = s.truth.stride_column("cadence_spm", "l")
    assert cadence[starts > 27].mean() > cadence[starts < 19].mean() + 10


def test_glute_drive_drop_lowers_the_ratio():
    s = simulate(30.0, seed=6, warmup_s=0.0, glute_drive_drop=(12.0, 18.0, 0.3))
    starts = s.truth.stride_column("stride_start_s", "r")
    ratio = s.truth.stride_column("glute_ham_ratio", "r")
    before, after = ratio[starts < 11].mean(), ratio[starts > 19].mean()
    assert after / before == pytest.approx(0.7, abs=0.07)


def test_fatigue_reduces_extension():
    s = simulate(60.0, seed=7, warmup_s=0.0, fatigue=1.0, fatigue_start_s=10.0,
                 fatigue_ramp_s=30.0)
    starts = s.truth.stride_column("stride_start_s", "l")
    ext = s.truth.stride_column("peak_hip_extension_deg", "l")
    assert ext[starts > 42].mean() < ext[starts < 10].mean() - 2.0


def test_flat_dropout_and_mains_hum():
    s = simulate(12.0, seed=8, mains_hz=60.0, mains_mv=0.05,
                 dropouts=(Dropout("glute_max_r", 8.0, 9.0, "flat"),))
    emg = s.data["emg"].astype(float)
    assert np.all(emg[16000:18000, 1] == 0.0)
    assert np.any(emg[15000:16000, 1] != 0.0)
    spectrum = np.abs(np.fft.rfft(emg[:8000, 0]))  # standing: floor + hum
    freqs = np.fft.rfftfreq(8000, 1 / 2000)
    assert freqs[np.argmax(spectrum)] == pytest.approx(60.0, abs=0.5)
    assert s.truth.dropouts == [{"channel": "glute_max_r", "start_s": 8.0, "end_s": 9.0,
                                 "mode": "flat"}]


def test_misalignment_is_in_the_truth_not_the_description():
    s = simulate(6.0, seed=9, misalignment_deg=20.0, mounting="identity")
    for seg, rotvec in s.truth.misalignment_deg.items():
        assert 9.9 < np.linalg.norm(rotvec) <= 20.0 + 1e-9
        assert s.description(f"imu_{seg}").mounting == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                                                        (0.0, 0.0, 1.0))
    # still, the accelerometer no longer sees gravity along +y
    acc = s.data["imu_pelvis"][:800, :3].astype(float).mean(axis=0)
    assert np.degrees(np.arccos(acc[1] / np.linalg.norm(acc))) > 5.0


def test_profile_switch_applies_from_a_later_stride():
    gen = SessionGenerator(SessionConfig(duration_s=25.0, seed=10))
    gen.read("emg", 2000 * 12)
    switched_at = gen.switch_profile("hamstring_dominant")
    assert 12.0 < switched_at < 14.0
    for stream in gen.streams:
        gen.read(stream, gen.remaining(stream))
    truth = gen.truth()
    for s in truth.strides:
        expected = "healthy" if s["stride_start_s"] < switched_at else "hamstring_dominant"
        assert s["profile"] == expected
    late = [s["glute_ham_ratio"] for s in truth.strides if s["stride_start_s"] > 16]
    early = [s["glute_ham_ratio"] for s in truth.strides if 8 < s["stride_start_s"] < 12]
    assert np.mean(late) < 0.6 * np.mean(early)
    with pytest.raises(ValueError, match="hamstring_dominant"):
        gen.switch_profile("sprinter")


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match=r"^fatigue:"):
        SessionConfig(fatigue=2.0)
    with pytest.raises(ValueError, match=r"^profile:"):
        SessionConfig(profile="nope")
    with pytest.raises(ValueError, match=r"^duration_s:"):
        SessionConfig(duration_s=20.0, mvc=True)
