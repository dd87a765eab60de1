"""Plausible EMG and IMU tables for CSV and replay tests (not physiology: units and shapes)."""

from __future__ import annotations

import numpy as np

from hipstride.csvformat import CsvTable
from hipstride.streams import EMG_CHANNELS_DEFAULT, IMU_CHANNELS

IMU_TEST_SEGMENTS = ("pelvis", "thigh_l", "thigh_r")


def emg_table(n: int = 400, rate_hz: float = 2000.0, seed: int = 0, start_s: float = 0.0
              ) -> CsvTable:
    """Bursty noise of about ±1 mV, already float32-exact so a CSV round trip is exact."""
    rng = np.random.default_rng(seed)
    envelope = 0.1 + np.abs(np.sin(np.arange(n) / rate_hz * 2 * np.pi * 1.4))[:, None]
    x = (rng.normal(0, 0.4, (n, len(EMG_CHANNELS_DEFAULT))) * envelope).astype(np.float32)
    return CsvTable.from_arrays("emg", EMG_CHANNELS_DEFAULT, x, rate_hz, start_s=start_s)


def imu_table(n: int = 60, rate_hz: float = 200.0, seed: int = 1, start_s: float = 0.0,
              segments: tuple[str, ...] = IMU_TEST_SEGMENTS) -> CsvTable:
    """Gravity plus impacts on the accelerometer (m/s²), a swinging gyroscope (deg/s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate_hz
    columns, data = [], []
    for k, segment in enumerate(segments):
        acc = rng.normal(0, 3.0, (n, 3)) + np.array([0.0, 9.81, 0.0])
        gyr = 300.0 * np.sin(2 * np.pi * 1.4 * t + k)[:, None] * np.array([0.2, 0.3, 1.0])
        gyr = gyr + rng.normal(0, 2.0, (n, 3))
        columns += [f"{segment}_{c}" for c in IMU_CHANNELS]
        data.append(np.hstack([acc, gyr]))
    x = np.hstack(data).astype(np.float32)
    return CsvTable.from_arrays("imu", columns, x, rate_hz, start_s=start_s)
