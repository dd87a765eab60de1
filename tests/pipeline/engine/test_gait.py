"""Gait events against the simulator's ground truth, plausibility rejection, streaming.

The shank's sagittal angular velocity is taken straight from the simulated gyro: with
``mounting="identity"`` and no strap misalignment the sensor z axis is the segment z axis, so
``gyr_z`` (deg/s) is what the IMU fusion will deliver as ``Kinematics.sagittal_rate_dps``.
It is also rebuilt from the truth's sagittal shank angle by differentiation (noise-free).

Matching: a detected IC matches a true IC within 60 ms. Recall is over the *steady* true ICs
(the first ~2 s of running fade in from standing); precision is over detections inside the
running phase, against every true IC (steady or not).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.data import GaitEvents
from hipstride.pipeline.engine.gait import (
    GaitEventDetector,
    gait_events_shank,
    gait_events_thigh,
    gait_reject_implausible,
    gait_shank_events,
)

FS = 200.0
TOL_S = 0.06
FAST = {"emg_channels": ("glute_max_l",), "mounting": "identity"}


@cache
def session(profile: str = "healthy", seed: int = 11, duration_s: float = 60.0,
            speed: tuple[tuple[float, float], ...] = ((0.0, 10.0),), imu_noise: float = 1.0):
    return simulate(duration_s, profile=profile, seed=seed, speed_schedule=speed,
                    imu_noise=imu_noise, **FAST)


def true_ics(sess, side: str, *, steady_only: bool) -> np.ndarray:
    """True IC times of one side: every stride start plus the end of the last stride."""
    rows = sess.truth.side_strides(side)
    ics = [r["stride_start_s"] for r in rows if r["steady"] or not steady_only]
    if rows and (rows[-1]["steady"] or not steady_only):
        ics.append(rows[-1]["stride_start_s"] + rows[-1]["stride_time_s"])
    return np.array(ics)


def score(detected: np.ndarray, sess, side: str) -> dict[str, float]:
    """Recall (steady truth), precision (detections while running) and IC errors (s)."""
    all_true = true_ics(sess, side, steady_only=False)
    steady = true_ics(sess, side, steady_only=True)
    # An IC needs ~0.1–0.25 s of signal after it (the minimum that follows): true ICs in the
    # last 0.3 s of the recording cannot be confirmed by any causal or offline detector.
    steady = steady[steady <= sess.config.duration_s - 0.3]
    run = sess.truth.phase("running")
    inside = detected[(detected >= run["start_s"]) & (detected <= run["end_s"])]

    def nearest(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
        if not len(ref) or not len(x):
            return np.full(len(x), np.inf)
        i = np.clip(np.searchsorted(ref, x), 1, len(ref) - 1)
        lo, hi = ref[i - 1], ref[i]
        return np.where(np.abs(x - lo) <= np.abs(x - hi), x - lo, x - hi)

    recall = float(np.mean(np.abs(nearest(steady, detected)) <= TOL_S))
    err = nearest(inside, all_true)
    matched = np.abs(err) <= TOL_S
    precision = float(np.mean(matched)) if len(inside) else 0.0
    err_steady = -nearest(steady, detected)
    err_steady = err_steady[np.abs(err_steady) <= TOL_S]
    return {"recall": recall, "precision": precision,
            "median_abs_ms": float(np.median(np.abs(err_steady)) * 1e3),
            "bias_ms": float(np.median(err_steady) * 1e3),
            "p95_abs_ms": float(np.percentile(np.abs(err_steady), 95) * 1e3)}


def toe_off_errors_ms(ev: GaitEvents, sess, side: str) -> np.ndarray:
    rows = [r for r in sess.truth.side_strides(side) if r["steady"]]
    starts = np.array([r["stride_start_s"] for r in rows])
    out = []
    for k in range(ev.n_strides):
        i = int(np.argmin(np.abs(starts - ev.ic_s[k])))
        if abs(starts[i] - ev.ic_s[k]) <= TOL_S and np.isfinite(ev.toe_off_s[k]):
            out.append(ev.toe_off_s[k] - rows[i]["toe_off_s"])
    return np.array(out) * 1e3


def gyro_z(sess, side: str) -> np.ndarray:
    return sess.data[f"imu_shank_{side}"][:, 5].astype(np.float64)


# --- shank gyro ------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["healthy", "hamstring_dominant", "limited_extension",
                                     "asymmetry"])
def test_shank_gyro_matches_truth_for_every_profile(profile: str) -> None:
    sess = session(profile)
    for side in "lr":
        ev = gait_events_shank(gyro_z(sess, side), FS, side=side)
        assert ev.method == "shank_gyro" and ev.side == side
        s = score(ev.ic_s, sess, side)
        # Achieved (seed 11): recall = precision = 1.0, median |error| ~2.5 ms, p95 ~3.5 ms.
        assert s["recall"] >= 0.99, s
        assert s["precision"] >= 0.99, s
        assert s["median_abs_ms"] <= 10.0, s
        assert s["p95_abs_ms"] <= 15.0, s
        # Every steady stride passes the plausibility check.
        assert ev.valid[ev.ic_s[:-1] > sess.truth.phase("running")["start_s"] + 3.0].all()


@pytest.mark.parametrize("definition, low, high", [("swing_minimum", 30.0, 90.0),
                                                    ("backswing_onset", -90.0, -30.0)])
def test_shank_toe_off_error_is_reported_and_consistent(definition: str, low: float,
                                                        high: float) -> None:
    """The simulator's toe-off truth (the stride phase ``stance_fraction``) is not encoded in
    its kinematics: the walking landmark (last minimum before mid-swing) reads ~+55–70 ms
    after it, the running one (onset of the backward swing) ~−57 ms before it, both precise
    (SD ~4 ms). Constant offsets, reported, not hidden; the running landmark's accuracy is
    checked against a force plate on real running (tests/pipeline/test_real_running.py)."""
    sess = session("healthy")
    for side in "lr":
        ev = gait_events_shank(gyro_z(sess, side), FS, side=side,
                               toe_off_definition=definition)
        err = toe_off_errors_ms(ev, sess, side)
        assert len(err) >= 0.95 * ev.n_strides - 3
        assert low <= np.median(err) <= high, np.median(err)
        assert np.std(err) <= 10.0
        # Toe-off lies inside its stride, in the first half (stance ~36 %).
        frac = (ev.toe_off_s - ev.ic_s[:-1]) / np.diff(ev.ic_s)
        assert np.nanmax(frac) < 0.6 and np.nanmin(frac) > 0.2


def test_shank_each_landmark_alone_brackets_ic() -> None:
    """The two published landmarks straddle the simulator's IC; their midpoint is on it."""
    sess = session("healthy")
    zc = score(gait_events_shank(gyro_z(sess, "l"), FS, side="l",
                                 ic_definition="zero_crossing").ic_s, sess, "l")
    mn = score(gait_events_shank(gyro_z(sess, "l"), FS, side="l",
                                 ic_definition="minimum").ic_s, sess, "l")
    assert -55.0 <= zc["bias_ms"] <= -35.0
    assert 30.0 <= mn["bias_ms"] <= 50.0


def test_shank_speed_schedule_jog_to_fast() -> None:
    """7 km/h (~156 spm) to 20 km/h (190 spm, clipped) over one minute, both sides."""
    sess = session("healthy", seed=12, duration_s=70.0, speed=((0.0, 7.0), (65.0, 20.0)))
    for side in "lr":
        ev = gait_events_shank(gyro_z(sess, side), FS, side=side)
        s = score(ev.ic_s, sess, side)
        assert s["recall"] >= 0.99 and s["precision"] >= 0.99, s
        assert s["median_abs_ms"] <= 10.0, s
        steady = ev.ic_s[:-1] > sess.truth.phase("running")["start_s"] + 3.0
        assert ev.valid[steady].all()  # a smooth speed change is not "implausible"


def test_shank_with_extra_gyro_noise() -> None:
    """Four times the simulator's gyro noise and bias walk."""
    sess = session("asymmetry", seed=13, imu_noise=4.0)
    for side in "lr":
        s = score(gait_events_shank(gyro_z(sess, side), FS, side=side).ic_s, sess, side)
        assert s["recall"] >= 0.99 and s["precision"] >= 0.99, s
        assert s["median_abs_ms"] <= 10.0, s


def test_shank_on_truth_angle_derivative() -> None:
    sess = session("limited_extension")
    for side in "lr":
        rate = np.gradient(sess.truth.curves[f"sagittal_shank_{side}_deg"], 1.0 / FS)
        s = score(gait_events_shank(rate, FS, side=side).ic_s, sess, side)
        assert s["recall"] >= 0.99 and s["precision"] >= 0.99, s
        assert s["median_abs_ms"] <= 10.0, s


def test_start_s_shifts_every_time() -> None:
    sess = session("healthy")
    g = gyro_z(sess, "l")
    a = gait_events_shank(g, FS, side="l")
    b = gait_events_shank(g, FS, side="l", start_s=100.0)
    np.testing.assert_allclose(b.ic_s, a.ic_s + 100.0)
    np.testing.assert_allclose(b.toe_off_s, a.toe_off_s + 100.0)


# --- no strides when not running -------------------------------------------------------------
def test_no_strides_standing_mvc_or_prone() -> None:
    sess = simulate(40.0, seed=14, mvc=True, prone=True, prone_reps=1, **FAST)
    ph = {p["name"]: p for p in sess.truth.phases}
    for side in "lr":
        for rate in (gyro_z(sess, side),
                     np.gradient(sess.truth.curves[f"sagittal_shank_{side}_deg"], 1.0 / FS)):
            ic = gait_events_shank(rate, FS, side=side).ic_s
            assert not np.any(ic < ph["running"]["start_s"])
            assert not np.any(ic >= ph["mvc"]["start_s"])  # MVC then prone to the end
        for curve in ("sagittal_thigh", "hip_flexion"):
            name = f"{curve}_{side}_deg"
            ic = gait_events_thigh(sess.truth.curves[name], FS, side=side).ic_s
            assert not np.any(ic < ph["running"]["start_s"])
            assert not np.any(ic >= ph["mvc"]["start_s"])


def test_no_events_when_still_or_barely_moving() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(30 * FS)) / FS
    still = 0.3 * rng.standard_normal(len(t))
    small = 150.0 * np.sin(2 * np.pi * 1.4 * t) + still  # well below a running swing
    for x in (np.zeros(len(t)), still, small):
        assert len(gait_events_shank(x, FS, side="l").ic_s) == 0
        assert len(gait_events_thigh(0.05 * np.cumsum(x) / FS, FS, side="l").ic_s) == 0
    assert gait_events_shank(np.zeros(2), FS, side="r").n_strides == 0


# --- thigh -----------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["healthy", "hamstring_dominant", "limited_extension",
                                     "asymmetry"])
def test_thigh_flexion_method(profile: str) -> None:
    """Achieved: median |error| ~5 ms on hip flexion, ~6–7 ms on the thigh angle (the pelvis's
    oscillation shifts the thigh's peak); p95 ≤ ~13 ms."""
    sess = session(profile)
    for side in "lr":
        for curve in ("sagittal_thigh", "hip_flexion"):
            x = sess.truth.curves[f"{curve}_{side}_deg"]
            x = x + np.random.default_rng(1).normal(0.0, 0.2, len(x))  # fusion noise
            ev = gait_events_thigh(x, FS, side=side)
            assert ev.method == "thigh_flexion"
            assert np.isnan(ev.toe_off_s).all() and len(ev.toe_off_s) == ev.n_strides
            s = score(ev.ic_s, sess, side)
            assert s["recall"] >= 0.99 and s["precision"] >= 0.99, (curve, s)
            assert s["median_abs_ms"] <= 12.0, (curve, s)
            assert s["p95_abs_ms"] <= 25.0, (curve, s)


def test_thigh_speed_schedule() -> None:
    sess = session("healthy", seed=12, duration_s=70.0, speed=((0.0, 7.0), (65.0, 20.0)))
    for side in "lr":
        s = score(gait_events_thigh(sess.truth.curves[f"hip_flexion_{side}_deg"], FS,
                                    side=side).ic_s, sess, side)
        assert s["recall"] >= 0.99 and s["precision"] >= 0.99, s
        assert s["median_abs_ms"] <= 12.0, s


# --- plausibility ----------------------------------------------------------------------------
def steady_ics(n: int = 40, stride_s: float = 0.72, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([[10.0], 10.0 + np.cumsum(stride_s * (1 + 0.02 * rng.standard_normal(
        n)))])


def test_reject_missed_stride() -> None:
    ic = steady_ics()
    doctored = np.delete(ic, 20)  # IC 20 missed: stride 19 lasts ~1.44 s
    valid, reasons = gait_reject_implausible(doctored)
    assert not valid[19] and reasons[19] == "too_long"
    assert valid.sum() == len(valid) - 1


def test_reject_missed_stride_at_fast_cadence_by_the_median() -> None:
    ic = steady_ics(stride_s=0.55)
    doctored = np.delete(ic, 20)  # 1.10 s: inside 0.5–1.2 s, but twice the median
    valid, reasons = gait_reject_implausible(doctored)
    assert reasons[19] == "off_median"
    assert valid.sum() == len(valid) - 1


def test_reject_double_detection() -> None:
    ic = steady_ics()
    extra = 0.5 * (ic[20] + ic[21])
    doctored = np.sort(np.append(ic, extra))  # one stride split in two halves
    valid, reasons = gait_reject_implausible(doctored)
    assert reasons[20] == reasons[21] == "too_short"
    assert valid.sum() == len(valid) - 2


def test_reject_double_detection_at_slow_cadence_by_the_median() -> None:
    ic = steady_ics(stride_s=1.1)
    doctored = np.sort(np.append(ic, ic[20] + 0.55))  # 0.55 + 0.55 s: both pass 0.5–1.2
    valid, reasons = gait_reject_implausible(doctored)
    assert reasons[20] == reasons[21] == "off_median"
    assert valid.sum() == len(valid) - 2


@pytest.mark.parametrize("causal", [False, True])
def test_one_bad_stride_does_not_poison_its_neighbours(causal: bool) -> None:
    ic = steady_ics(stride_s=0.7)
    d = np.diff(ic)
    d[15] = 1.15  # plausible in absolute terms, 64 % off
    d[30] = 0.51
    valid, reasons = gait_reject_implausible(np.concatenate([[ic[0]], ic[0] + np.cumsum(d)]),
                                             causal=causal)
    assert reasons[15] == reasons[30] == "off_median"
    assert valid.sum() == len(valid) - 2


def test_genuine_cadence_change_is_accepted() -> None:
    d = np.concatenate([np.full(20, 0.80), np.linspace(0.80, 0.62, 30), np.full(20, 0.62)])
    ic = np.concatenate([[0.0], np.cumsum(d)])
    for causal in (False, True):
        valid, _ = gait_reject_implausible(ic, causal=causal)
        assert valid.all()


def test_reject_counts_in_gait_events() -> None:
    sess = session("healthy")
    g = gyro_z(sess, "l").copy()
    ev = gait_events_shank(g, FS, side="l")
    # Silence one mid-swing peak: that IC is missed, the stride around it is doubled.
    k = len(ev.ic_s) // 2
    i = round(ev.ic_s[k] * FS)
    g[i - 70:i + 30] = 0.0
    doctored = gait_events_shank(g, FS, side="l")
    assert len(doctored.ic_s) == len(ev.ic_s) - 1
    assert (~doctored.valid).sum() == (~ev.valid).sum() + 1
    assert "too_long" in doctored.rejected_reason
    assert len(doctored.rejected_reason) == doctored.n_strides == len(doctored.valid)


# --- streaming -------------------------------------------------------------------------------
@cache
def stream_signal() -> tuple[np.ndarray, tuple]:
    sess = session("healthy", seed=12, duration_s=70.0, speed=((0.0, 7.0), (65.0, 20.0)))
    g = gyro_z(sess, "r")[: int(30 * FS)]
    return g, tuple(gait_shank_events(g, FS))


def run_stream(g: np.ndarray, sizes: list[int]) -> tuple[list, list[float]]:
    det = GaitEventDetector(FS, side="r")
    events, emitted_at = [], []
    i, j = 0, 0
    while i < len(g):
        n = sizes[j % len(sizes)]
        j += 1
        block = g[i:i + n]
        i += len(block)
        for ev in det.push(block):
            events.append(ev)
            emitted_at.append(i / FS)  # time just after the block's last sample
    return events, emitted_at


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=8))
def test_streaming_equals_offline_for_any_blocks(sizes: list[int]) -> None:
    g, offline = stream_signal()
    events, emitted_at = run_stream(g, sizes)
    assert len(events) == len(offline)
    for a, b in zip(events, offline, strict=True):
        assert a.ic_s == pytest.approx(b.ic_s, abs=1e-9)
        assert a.toe_off_s == pytest.approx(b.toe_off_s, abs=1e-9, nan_ok=True)
    biggest = max(sizes) / FS
    for ev, at in zip(events, emitted_at, strict=True):
        assert ev.confirmed_s - ev.ic_s <= 0.15  # algorithmic latency (achieved ~70 ms)
        assert at - ev.ic_s <= 0.15 + biggest + 1.0 / FS


def test_streaming_latency_with_50ms_blocks() -> None:
    g, offline = stream_signal()
    events, emitted_at = run_stream(g, [10])
    lat = np.array(emitted_at) - np.array([e.ic_s for e in events])
    assert len(events) == len(offline)
    assert np.all(lat > 0.0)
    assert np.median(lat) <= 0.11 and lat.max() <= 0.15 + 0.05


def test_streaming_gait_events_and_start_s() -> None:
    g, offline = stream_signal()
    det = GaitEventDetector(FS, side="r", start_s=5.0)
    for k in range(0, len(g), 37):
        det.push(g[k:k + 37])
    ev = det.gait_events()
    np.testing.assert_allclose(ev.ic_s, np.array([e.ic_s for e in offline]) + 5.0)
    assert ev.n_strides == len(ev.valid) == len(ev.rejected_reason) == len(ev.toe_off_s)
    assert det.push(np.zeros(0)) == []
