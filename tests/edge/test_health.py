import numpy as np

from hipstride.edge.health import StreamHealth, channel_problems
from hipstride.streams import emg_description, imu_description


def _emg_window(rng):
    return (rng.standard_normal((2000, 6)) * 0.05).astype(np.float32)


def test_healthy_signals_have_no_problems():
    assert channel_problems(emg_description(), _emg_window(np.random.default_rng(0))) == []


def test_flat_saturated_and_nan_channels_are_named():
    d = emg_description()
    x = _emg_window(np.random.default_rng(1))
    x[:, 0] = 0.0                       # glute_max_l electrode off
    x[::10, 2] = 10.0                   # biceps_femoris_l railing 10 % of the time
    x[5, 4] = np.nan                    # erector_spinae_l NaN
    found = {(p.channel, p.problem) for p in channel_problems(d, x)}
    assert found == {("glute_max_l", "flat"), ("biceps_femoris_l", "saturated"),
                     ("erector_spinae_l", "non_finite")}
    assert all(p.channel in p.message for p in channel_problems(d, x))


def test_a_stream_without_samples_is_silent():
    h = StreamHealth(imu_description("thigh_l"))
    assert [p.problem for p in h.problems(now_s=0.0)] == ["silent"]
    h.add(np.random.default_rng(2).standard_normal((200, 6)).astype(np.float32), now_s=1.0)
    assert h.problems(now_s=1.5) == []
    assert [p.problem for p in h.problems(now_s=3.0)] == ["silent"]


def test_measured_rate():
    h = StreamHealth(imu_description("pelvis"))
    for i in range(41):
        h.add(np.ones((10, 6), np.float32) * i, now_s=i * 0.05)
    assert abs(h.measured_rate_hz(2.0) - 200.0) < 1.0
