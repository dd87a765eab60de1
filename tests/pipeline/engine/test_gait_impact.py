"""IC without shank sensors: the thigh accelerometer's foot-strike impact (gait.impact_ic).

Real running is covered in tests/pipeline/test_real_running.py; here the simulator (whose
thigh sees an impact transient at IC) and the edge cases: no impact seen, holes.
"""

from __future__ import annotations

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.analysis import gait_events
from hipstride.pipeline.engine.gait import gait_events_thigh, impact_ic
from hipstride.pipeline.engine.imu import kinematics_from_imu
from hipstride.pipeline.validation import engine_inputs

FS = 200.0


@pytest.fixture(scope="module")
def thigh_kinematics():
    sess = simulate(80.0, profile="healthy", seed=5, mvc=True)
    _, imus, _ = engine_inputs(sess)
    imus = {k: v for k, v in imus.items() if not k.startswith("shank")}
    return sess, kinematics_from_imu(imus)


def _errors_ms(ic_s: np.ndarray, sess, side: str) -> np.ndarray:
    truth = np.array([r["stride_start_s"] for r in sess.truth.side_strides(side)
                      if r["steady"]])
    err = np.array([t - ic_s[np.argmin(np.abs(ic_s - t))] for t in truth])
    return -err * 1e3


def test_thigh_impact_ic_on_the_simulator(thigh_kinematics) -> None:
    """Flexion alone puts IC ~7 ms early here (~49 ms on real running); the impact ~2 ms."""
    sess, kin = thigh_kinematics
    for side in "lr":
        ev = gait_events(kin, side)
        assert ev.method == "thigh_flexion"
        err = _errors_ms(ev.ic_s, sess, side)
        assert np.mean(np.abs(err) <= 60) >= 0.99
        assert np.median(np.abs(err)) <= 4.0, np.median(err)
        flex = gait_events_thigh(kin.sagittal_deg[f"thigh_{side}"], kin.rate_hz,
                                 start_s=kin.start_s, side=side)
        assert np.median(np.abs(_errors_ms(flex.ic_s, sess, side))) > 5.0


def test_no_impact_keeps_the_flexion_estimate(thigh_kinematics) -> None:
    """A smooth axial signal (no impact) or a hole (NaN) leaves the flexion-based IC."""
    _, kin = thigh_kinematics
    x = kin.sagittal_deg["thigh_l"]
    flex = gait_events_thigh(x, kin.rate_hz, start_s=kin.start_s, side="l")
    t = np.arange(len(x)) / kin.rate_hz
    smooth = 9.8 + 0.5 * np.sin(2 * np.pi * 1.4 * t)
    same = gait_events_thigh(x, kin.rate_hz, start_s=kin.start_s, side="l",
                             axial_acc_mps2=smooth)
    np.testing.assert_array_equal(same.ic_s, flex.ic_s)
    holes = np.full(len(x), np.nan)
    same = gait_events_thigh(x, kin.rate_hz, start_s=kin.start_s, side="l",
                             axial_acc_mps2=holes)
    np.testing.assert_array_equal(same.ic_s, flex.ic_s)


def test_impact_ic_finds_the_start_of_the_rise() -> None:
    """Flat flight phase, a drift up, then a steep rise at sample 100: IC at 100."""
    a = np.zeros(300)
    a[:100] = np.linspace(-1.0, -0.5, 100)  # slow flight-phase drift, rising
    a[100:106] = -0.5 + np.arange(6) * 5.0
    a[106:] = 24.0
    assert impact_ic(a, FS, 90.0, 140.0) == pytest.approx(100.0, abs=0.5)
    assert impact_ic(a, FS, 5.0, 140.0) is None  # window leaves the data
    assert impact_ic(a * 0.1, FS, 90.0, 140.0) is None  # 2.5 m/s² is no impact
