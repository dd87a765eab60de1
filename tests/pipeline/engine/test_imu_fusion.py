"""Orientation filter: quaternion helpers, tilt correction, chunk invariance, speed."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from hipstride.pipeline.engine.imu import (
    G_MPS2,
    ImuOrientationFilter,
    imu_gyro_bias,
    imu_orientation,
    imu_tilt_quaternion,
    quat_from_rotvec,
    quat_multiply,
    quat_rotate,
    quat_to_matrix,
)

RATE_HZ = 200.0


def _scipy(q: np.ndarray) -> Rotation:
    return Rotation.from_quat(q[..., [1, 2, 3, 0]])


def test_quaternion_helpers_agree_with_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    qa, qb = quat_from_rotvec(a), quat_from_rotvec(b)
    ra, rb = Rotation.from_rotvec(a), Rotation.from_rotvec(b)
    assert np.allclose(_scipy(quat_multiply(qa, qb)).as_matrix(), (ra * rb).as_matrix())
    v = rng.normal(size=(50, 3))
    assert np.allclose(quat_rotate(qa, v), ra.apply(v))
    assert np.allclose(quat_to_matrix(qa), ra.as_matrix())
    assert np.allclose(quat_from_rotvec(np.zeros(3)), [1, 0, 0, 0])


def _rotating_sensor(n: int, axis_world: np.ndarray, rate_dps: float, tilt: Rotation):
    """Sensor turning at a constant rate about a fixed world axis, still otherwise."""
    t = np.arange(n) / RATE_HZ
    world = Rotation.from_rotvec(np.outer(np.deg2rad(rate_dps * t), axis_world)) * tilt
    gyr = np.tile(tilt.inv().apply(axis_world) * rate_dps, (n, 1))
    acc = world.inv().apply([0.0, G_MPS2, 0.0])
    return acc, gyr, world


def test_gyro_integration_follows_a_known_rotation():
    tilt = Rotation.from_euler("xz", [10.0, -20.0], degrees=True)
    acc, gyr, world = _rotating_sensor(2000, np.array([0.0, 1.0, 0.0]), 90.0, tilt)
    q = imu_orientation(acc, gyr, RATE_HZ, initial=tilt.as_quat()[[3, 0, 1, 2]])
    err = (_scipy(q).inv() * world).magnitude()
    assert np.degrees(err.max()) < 0.05


def test_accelerometer_removes_tilt_drift_but_never_touches_heading():
    tilt = Rotation.from_euler("x", 15.0, degrees=True)
    n = 24000  # 120 s
    acc, gyr, world = _rotating_sensor(n, np.array([0.0, 1.0, 0.0]), 0.0, tilt)
    bias = np.array([0.5, -0.4, 0.3])  # uncorrected bias, deg/s
    q0 = tilt.as_quat()[[3, 0, 1, 2]]
    fused = _scipy(imu_orientation(acc, gyr + bias, RATE_HZ, initial=q0))
    gyro_only = _scipy(imu_orientation(acc, gyr + bias, RATE_HZ, initial=q0,
                                       time_constant_s=1e12))
    up = np.array([0.0, 1.0, 0.0])

    def tilt_err_deg(r: Rotation) -> np.ndarray:
        v = r.apply(tilt.inv().apply(up))  # where the estimate puts the true vertical
        return np.degrees(np.arccos(np.clip(v @ up, -1, 1)))

    assert tilt_err_deg(gyro_only)[-1] > 15.0
    # steady state of a proportional loop: bias × time constant (8 s × ~0.6 deg/s ≈ 5°)
    assert tilt_err_deg(fused)[-1] < 6.0
    with_integral = _scipy(imu_orientation(acc, gyr + bias, RATE_HZ, initial=q0,
                                           bias_time_constant_s=10.0))
    assert tilt_err_deg(with_integral)[-1] < 0.5
    # heading drift (bias about the vertical) is left alone: the vertical part of the error
    # equals the integrated vertical bias
    heading = np.degrees((fused[-1] * world[-1].inv()).as_rotvec())[1]
    assert heading == pytest.approx((tilt.apply(bias))[1] * (n - 1) / RATE_HZ, abs=1.0)


def test_learned_reference_holds_the_mean_specific_force_it_learned():
    # a constant 3° offset of the specific force (like impact transients) is learned, so the
    # orientation stays where the gyro had it instead of tilting by 3°
    n = 8000
    off = Rotation.from_euler("z", 3.0, degrees=True)
    acc = np.tile(off.apply([0.0, G_MPS2, 0.0]), (n, 1))
    gyr = np.zeros((n, 3))
    q_plain = imu_orientation(acc, gyr, RATE_HZ, initial=[1, 0, 0, 0])
    q_learn = imu_orientation(acc, gyr, RATE_HZ, initial=[1, 0, 0, 0],
                              reference_window_s=(1.0, 5.0))
    assert np.degrees(_scipy(q_plain[-1]).magnitude()) == pytest.approx(3.0, abs=0.1)
    assert np.degrees(_scipy(q_learn[-1]).magnitude()) < 0.01


def test_tilt_quaternion_and_bias_helpers():
    a = Rotation.from_euler("zx", [30, -20], degrees=True).inv().apply([0, G_MPS2, 0])
    q = imu_tilt_quaternion(a)
    assert np.allclose(quat_rotate(q, a), [0, G_MPS2, 0], atol=1e-9)
    with pytest.raises(ValueError, match="zero"):
        imu_tilt_quaternion([0, 0, 0])
    g = np.vstack([np.tile([1.0, 2.0, 3.0], (1000, 1)), np.tile([50.0, 0, 0], (1000, 1))])
    assert np.allclose(imu_gyro_bias(g, RATE_HZ, window=(0.0, 5.0)), [1, 2, 3])
    with pytest.raises(ValueError, match="no gyroscope samples"):
        imu_gyro_bias(g, RATE_HZ, window=(20.0, 25.0))


def _running_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE_HZ
    gyr = np.column_stack([300 * np.sin(2 * np.pi * 1.4 * t), 20 * np.cos(2 * np.pi * 1.4 * t),
                           10 * np.sin(2 * np.pi * 2.8 * t)]) + rng.normal(0, 1, (n, 3))
    acc = np.column_stack([5 * np.sin(2 * np.pi * 2.8 * t), G_MPS2 + 8 * np.cos(
        2 * np.pi * 1.4 * t), np.zeros(n)]) + rng.normal(0, 0.3, (n, 3))
    return acc, gyr


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=1500), max_size=12),
       learn=st.booleans(), integral=st.booleans())
def test_streaming_filter_gives_the_same_output_for_any_block_sizes(cuts, learn, integral):
    acc, gyr = _running_like(1500, 3)
    kw = {"bias_dps": [0.2, -0.1, 0.3], "reference_window_s": (1.0, 3.0) if learn else None,
          "bias_time_constant_s": 20.0 if integral else None}
    whole = ImuOrientationFilter(RATE_HZ, **kw).update(acc, gyr)
    filt = ImuOrientationFilter(RATE_HZ, **kw)
    bounds = [0, *sorted(cuts), len(acc)]
    parts = [filt.update(acc[a:b], gyr[a:b]) for a, b in itertools.pairwise(bounds)]
    chunked = np.concatenate(parts)
    assert chunked.shape == whole.shape
    assert np.abs(chunked - whole).max() < 1e-9
    assert filt.n_samples == len(acc)
    assert np.allclose(filt.orientation, whole[-1], atol=1e-9)


def test_filter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rate_hz"):
        ImuOrientationFilter(0.0)
    with pytest.raises(ValueError, match="reference_window_s"):
        ImuOrientationFilter(RATE_HZ, reference_window_s=(1.0, 1.1))
    with pytest.raises(ValueError, match="samples"):
        ImuOrientationFilter(RATE_HZ).update(np.zeros((5, 3)), np.zeros((4, 3)))


def test_fusion_is_fast():
    acc, gyr = _running_like(200 * 120, 4)  # 2 minutes of one IMU
    imu_orientation(acc[:1000], gyr[:1000], RATE_HZ)
    t0 = time.perf_counter()
    imu_orientation(acc, gyr, RATE_HZ)
    elapsed = time.perf_counter() - t0
    # 5 IMUs at ≥ 500× real time need ≥ 2500× per IMU; leave room for a loaded machine
    assert 120.0 / elapsed > 1000.0


def test_mean_over_strides_is_vertical_whatever_the_lever_arm():
    # A sensor on a segment swinging ±35° about a pivot 0.25 m above it: its specific force
    # carries large centripetal and tangential terms, but over whole swings the linear
    # acceleration averages to zero, so the filter (plain mean over several strides) keeps the
    # true tilt; weighting samples by |acc| ≈ g would tilt it forward.
    n, f_hz, amp, arm = 12000, 1.4, np.radians(35.0), 0.25
    t = np.arange(n) / RATE_HZ
    th = amp * np.sin(2 * np.pi * f_hz * t) + np.radians(15.0)
    th_d = amp * 2 * np.pi * f_hz * np.cos(2 * np.pi * f_hz * t)
    th_dd = -amp * (2 * np.pi * f_hz) ** 2 * np.sin(2 * np.pi * f_hz * t)
    rot = Rotation.from_euler("z", th[:, None])
    # sensor at -arm along the segment's y axis: world position (arm sinθ, -arm cosθ)
    acc_w = np.column_stack([arm * (th_dd * np.cos(th) - th_d**2 * np.sin(th)),
                             arm * (th_dd * np.sin(th) + th_d**2 * np.cos(th)) + G_MPS2,
                             np.zeros(n)])
    acc = rot.inv().apply(acc_w)
    gyr = np.column_stack([np.zeros(n), np.zeros(n), np.degrees(th_d)])
    q0 = rot[0].as_quat()[[3, 0, 1, 2]]
    for tol, limit in ((np.inf, 0.25), (10.0, None)):
        est = _scipy(imu_orientation(acc, gyr, RATE_HZ, initial=q0,
                                     acc_tolerance_mps2=tol, bias_time_constant_s=20.0))
        err = np.degrees((est * rot.inv()).as_rotvec()[n // 2:, 2])
        if limit is not None:
            assert np.abs(err).max() < limit
        else:
            assert np.abs(np.median(err)) > 1.0
