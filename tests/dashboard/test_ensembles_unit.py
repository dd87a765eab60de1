"""Gait-cycle ensembles over stored series (dashboard/ensembles.py): pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from hipstride.dashboard.ensembles import (
    CYCLE_POINTS,
    cycle_ensemble_ns,
    hamstring_channels,
    hip_channel,
    stride_bounds_ns,
)

RATE_HZ = 100.0
T0 = 1_767_600_000 * 10**9


def _curve(phase: np.ndarray) -> np.ndarray:
    """A hip-angle-like cycle: flexion at IC, extension around 60 %."""
    return 20 + 30 * np.cos(2 * np.pi * phase)


def _series(bounds_s: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Samples at 100 Hz following _curve over each stride's own length."""
    t_s = np.arange(0, bounds_s[-1][1] + 0.5, 1 / RATE_HZ)
    x = np.full(len(t_s), np.nan)
    for a, b in bounds_s:
        inside = (t_s >= a) & (t_s <= b)
        x[inside] = _curve((t_s[inside] - a) / (b - a))
    return T0 + np.round(t_s * 1e9).astype(np.int64), x


def _ns(bounds_s):
    return (np.array([T0 + round(a * 1e9) for a, _ in bounds_s], dtype=np.int64),
            np.array([T0 + round(b * 1e9) for _, b in bounds_s], dtype=np.int64))


def test_strides_of_different_lengths_line_up_by_phase():
    bounds = [(0.0, 0.70), (0.70, 1.45), (1.45, 2.10), (2.10, 2.82)]
    t, x = _series(bounds)
    ens = cycle_ensemble_ns(t, x, *_ns(bounds))
    assert ens.n_strides == 4 and ens.skipped == 0
    assert len(ens.mean) == CYCLE_POINTS and ens.pct[0] == 0 and ens.pct[-1] == 100
    expected = _curve(np.linspace(0, 1, CYCLE_POINTS))
    # 100 Hz samples, linear interpolation: within a fraction of a degree of the true curve
    assert np.max(np.abs(ens.mean - expected)) < 0.5
    assert np.max(ens.sd) < 0.5


def test_sd_reflects_stride_to_stride_differences():
    bounds = [(0.0, 0.7), (0.7, 1.4)]
    t, x = _series(bounds)
    x[(t >= T0 + 700_000_000)] += 4.0  # the second stride sits 4° higher
    ens = cycle_ensemble_ns(t, x, *_ns(bounds))
    assert ens.n_strides == 2
    assert np.allclose(ens.sd[5:-5], 2.0, atol=0.05)  # population SD of {a, a+4}


def test_a_stride_with_a_hole_is_left_out_not_bridged():
    bounds = [(0.0, 0.7), (0.7, 1.4), (1.4, 2.1)]
    t, x = _series(bounds)
    hole = (t > T0 + 900_000_000) & (t < T0 + 1_100_000_000)  # 0.2 s missing in stride 2
    ens = cycle_ensemble_ns(t[~hole], x[~hole], *_ns(bounds))
    assert (ens.n_strides, ens.skipped) == (2, 1)
    x_nan = x.copy()
    x_nan[hole] = np.nan  # NaN samples count as missing too
    assert cycle_ensemble_ns(t, x_nan, *_ns(bounds)).n_strides == 2


def test_strides_outside_the_series_are_skipped_and_none_gives_nan():
    bounds = [(0.0, 0.7)]
    t, x = _series(bounds)
    late = [(5.0, 5.7)]
    ens = cycle_ensemble_ns(t, x, *_ns(late))
    assert (ens.n_strides, ens.skipped) == (0, 1) and np.isnan(ens.mean).all()
    empty = cycle_ensemble_ns(np.array([], np.int64), np.array([]), *_ns(bounds))
    assert empty.n_strides == 0 and np.isnan(empty.sd).all()


def test_stride_bounds_take_valid_strides_of_one_side():
    rows = [
        {"side": "l", "valid": True, "time_ns": T0, "stride_time_s": 0.7},
        {"side": "r", "valid": True, "time_ns": T0 + 350_000_000, "stride_time_s": 0.72},
        {"side": "l", "valid": False, "time_ns": T0 + 700_000_000, "stride_time_s": 1.9},
        {"side": "l", "valid": True, "time_ns": T0 + 1_400_000_000, "stride_time_s": float("nan")},
    ]
    starts, ends = stride_bounds_ns(rows, "l")
    assert starts.tolist() == [T0] and ends.tolist() == [T0 + 700_000_000]
    starts, ends = stride_bounds_ns(rows, "r")
    assert ends.tolist() == [T0 + 350_000_000 + 720_000_000]


@pytest.mark.parametrize(("channels", "side", "expected"), [
    (("hip_flexion_l_deg", "hip_flexion_r_deg"), "r", "hip_flexion_r_deg"),
    (("hip_flexion_l", "hip_flexion_r"), "l", "hip_flexion_l"),
    (("pelvic_tilt_deg",), "l", None),
])
def test_hip_channel(channels, side, expected):
    assert hip_channel(channels, side) == expected


def test_hamstring_channels():
    chans = ("glute_max_l", "biceps_femoris_l", "semitendinosus_l", "biceps_femoris_r")
    assert hamstring_channels(chans, "l") == ["biceps_femoris_l", "semitendinosus_l"]
    assert hamstring_channels(chans, "r") == ["biceps_femoris_r"]
