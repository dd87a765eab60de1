"""The engine's inputs and intermediate results: plain containers of numpy arrays.

Times are *session seconds*: sample ``i`` of a stream is at ``start_s + i / rate_hz``. The
readers (recordings, CSV, C3D, live frames) translate their clocks into this one, so every
engine function works on arrays and rates alone. Units are in the field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIDES = ("l", "r")


@dataclass(frozen=True, eq=False)
class EmgData:
    """EMG of several muscles sampled together. ``signal`` is ``"raw"`` (at the electrode)
    or ``"envelope"`` (an analog envelope module: do not band-pass or rectify again)."""

    samples_mv: np.ndarray  # (n, channels) float64
    channels: tuple[str, ...]
    rate_hz: float
    start_s: float = 0.0
    signal: str = "raw"

    def channel(self, name: str) -> np.ndarray:
        return self.samples_mv[:, self.channels.index(name)]

    @property
    def time_s(self) -> np.ndarray:
        return self.start_s + np.arange(len(self.samples_mv)) / self.rate_hz


@dataclass(frozen=True, eq=False)
class ImuData:
    """One IMU on one segment, in the *sensor* frame, with its known mounting
    (3x3 rotation taking sensor-frame vectors to the segment frame: x anterior, y superior,
    z to the runner's right)."""

    segment: str
    acc_mps2: np.ndarray  # (n, 3)
    gyr_dps: np.ndarray  # (n, 3)
    rate_hz: float
    start_s: float = 0.0
    mounting: np.ndarray = field(default_factory=lambda: np.eye(3))

    @property
    def time_s(self) -> np.ndarray:
        return self.start_s + np.arange(len(self.acc_mps2)) / self.rate_hz


@dataclass(frozen=True, eq=False)
class Kinematics:
    """Joint and segment angles on one time base (the IMU rate), relative to standing.

    Hip flexion is positive (extension negative) per side; pelvic tilt is positive anterior;
    ``sagittal_rate_dps`` is each segment's angular velocity about its medio-lateral axis
    (positive = the segment swinging forward), what gait-event detection runs on;
    ``axial_acc_mps2`` each segment's specific force along its long axis (+superior), where
    the thigh sees foot-strike impacts.
    """

    rate_hz: float
    start_s: float
    hip_flexion_deg: dict[str, np.ndarray]  # side -> (n,)
    pelvic_tilt_deg: np.ndarray | None
    sagittal_deg: dict[str, np.ndarray]  # segment -> (n,)
    sagittal_rate_dps: dict[str, np.ndarray]  # segment -> (n,)
    quality: dict[str, object] = field(default_factory=dict)
    axial_acc_mps2: dict[str, np.ndarray] = field(default_factory=dict)  # segment -> (n,)

    @property
    def n_samples(self) -> int:
        return len(next(iter(self.sagittal_deg.values())))

    @property
    def time_s(self) -> np.ndarray:
        return self.start_s + np.arange(self.n_samples) / self.rate_hz


@dataclass(frozen=True)
class GaitEvents:
    """Gait events of one side in session seconds. A stride runs from ``ic_s[k]`` to
    ``ic_s[k + 1]``; ``toe_off_s[k]`` is the toe-off inside it (NaN when unknown).
    ``valid[k]`` is False for strides rejected as implausible (kept so indices stay stable),
    with the reason in ``rejected_reason[k]``."""

    side: str
    ic_s: np.ndarray
    toe_off_s: np.ndarray
    valid: np.ndarray
    rejected_reason: tuple[str, ...]
    method: str  # "shank_gyro" | "thigh_flexion"

    @property
    def n_strides(self) -> int:
        return max(0, len(self.ic_s) - 1)
