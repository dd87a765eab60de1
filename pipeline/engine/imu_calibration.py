"""Where each segment's axes lie in its sensor's frame: static and functional calibration.

Segment frame: x anterior, y superior, z to the runner's right; in the standing pose it equals
the world frame (x forward, y up). A strap is never fitted exactly as described, so:

* **static** (standing still, default the first 5 s): gravity gives the segment's y axis in
  the sensor frame exactly; the gyroscope mean gives its bias. The heading of the segment
  about that vertical comes from the known mounting.
* **functional** (running): the heading is refined from the motion itself. For a thigh or
  shank, the dominant rotation axis of the gyroscope (principal axis of its second-moment
  matrix) is the medio-lateral z axis. The pelvis barely rotates in the sagittal plane — its
  tilt, obliquity and rotation are all a few degrees — so its dominant gyro axis is not z;
  instead its x axis is the dominant horizontal direction of the specific force (fore-aft
  braking and propulsion at every step). Each functional axis is made orthogonal to the
  standing vertical, and its sign is taken from the known mounting.

The estimated strap misalignment is the rotation between the calibrated axes and the known
mounting, ``R_mis = Cᵀ · M_knownᵀ`` with C the segment → sensor matrix found here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .data import ImuData

__all__ = [
    "STILL_ACC_STD_MPS2",
    "STILL_GYR_STD_DPS",
    "ImuCalibration",
    "imu_calibrate",
    "imu_calibrate_functional",
    "imu_functional_axis",
    "imu_window",
]

#: A segment counts as still when its gyro and accelerometer vary less than this (std).
STILL_GYR_STD_DPS = 3.0
STILL_ACC_STD_MPS2 = 0.5
#: Functional axes need this ratio of the first to the second principal value, and must lie
#: within this angle of the known mounting's axis; otherwise the mounting is kept.
MIN_AXIS_RATIO = 3.0
MAX_AXIS_CHANGE_DEG = 45.0


@dataclass(frozen=True, eq=False)
class ImuCalibration:
    """Calibration of one IMU on one segment.

    Attributes
    ----------
    segment : str
        Segment name (``pelvis``, ``thigh_l`` …).
    segment_to_sensor : ndarray, shape (3, 3)
        Columns are the segment's x, y, z axes written in the sensor frame (the transpose of
        the actual sensor → segment mounting).
    gyro_bias_dps : ndarray, shape (3,)
        Gyroscope bias during standing (deg/s, sensor frame).
    misalignment_rotvec_deg : ndarray, shape (3,)
        Estimated strap error as a rotation vector in the segment frame (deg).
    method : str
        ``"gyro_axis"``, ``"acc_axis"`` (functional) or ``"mounting"`` (static only).
    axis_ratio : float
        Ratio of the first to the second principal value behind a functional axis (NaN for
        ``"mounting"``): how clearly the motion defines the axis.
    """

    segment: str
    segment_to_sensor: NDArray[np.float64]
    gyro_bias_dps: NDArray[np.float64]
    misalignment_rotvec_deg: NDArray[np.float64]
    method: str
    axis_ratio: float = float("nan")

    @property
    def misalignment_deg(self) -> float:
        """Size of the estimated strap misalignment (deg)."""
        return float(np.linalg.norm(self.misalignment_rotvec_deg))


def imu_window(n_samples: int, rate_hz: float, start_s: float,
               window: tuple[float, float]) -> slice:
    """Sample slice of a session-time window ``[start, end)`` (s), clipped to the data."""
    i0 = max(0, math.ceil((window[0] - start_s) * rate_hz - 1e-9))
    i1 = min(n_samples, math.ceil((window[1] - start_s) * rate_hz - 1e-9))
    return slice(i0, max(i0, i1))


def imu_functional_axis(vectors: ArrayLike, *, vertical: ArrayLike, reference: ArrayLike,
                        center: bool = False) -> tuple[NDArray[np.float64], float]:
    """Dominant horizontal direction of a 3-D signal, signed like ``reference``.

    Parameters
    ----------
    vectors : array_like, shape (n, 3)
        Angular velocity (deg/s) or specific force (m/s²) in the sensor frame.
    vertical : array_like, shape (3,)
        Unit vertical (segment y) in the sensor frame; the axis is made orthogonal to it.
    reference : array_like, shape (3,)
        Expected direction (from the known mounting); fixes the sign.
    center : bool
        Remove the mean first (covariance instead of second moment).

    Returns
    -------
    axis : ndarray, shape (3,)
        Unit axis in the sensor frame, orthogonal to ``vertical``.
    ratio : float
        First / second principal value of the signal in the horizontal plane.
    """
    v = np.asarray(vectors, dtype=float)
    up = np.asarray(vertical, dtype=float)
    up = up / np.linalg.norm(up)
    if len(v) < 3:
        raise ValueError("need at least 3 samples of motion for a functional axis")
    if center:
        v = v - v.mean(axis=0)
    v = v - np.outer(v @ up, up)  # horizontal part only
    vals, vecs = np.linalg.eigh(v.T @ v / len(v))
    axis = vecs[:, 2]
    axis = axis - (axis @ up) * up
    axis /= np.linalg.norm(axis)
    if axis @ np.asarray(reference, dtype=float) < 0:
        axis = -axis
    ratio = float(vals[2] / vals[1]) if vals[1] > 0 else float("inf")
    return axis, ratio


def _still_check(imu: ImuData, sl: slice, window: tuple[float, float]) -> None:
    n = sl.stop - sl.start
    if n < max(2, round(0.5 * imu.rate_hz)):
        end_s = imu.start_s + len(imu.acc_mps2) / imu.rate_hz
        raise ValueError(
            f"IMU {imu.segment}: standing period {window[0]:g}–{window[1]:g} s holds {n} "
            f"samples (data covers {imu.start_s:g}–{end_s:g} s); need at least 0.5 s of "
            "standing still for the static calibration")
    bad = int((~np.isfinite(imu.acc_mps2[sl]).all(axis=1)
               | ~np.isfinite(imu.gyr_dps[sl]).all(axis=1)).sum())
    if bad:
        raise ValueError(
            f"IMU {imu.segment}: {bad} of the {n} samples of the standing period "
            f"{window[0]:g}–{window[1]:g} s are missing (NaN: a hole in the recording); the "
            "static calibration needs a standing period without holes: choose one before "
            "the hole (--standing-s)")
    gyr_std = float(np.linalg.norm(imu.gyr_dps[sl].std(axis=0)))
    acc_std = float(np.linalg.norm(imu.acc_mps2[sl].std(axis=0)))
    if gyr_std > STILL_GYR_STD_DPS or acc_std > STILL_ACC_STD_MPS2:
        raise ValueError(
            f"IMU {imu.segment}: not still during the standing period {window[0]:g}–"
            f"{window[1]:g} s (gyro std {gyr_std:.1f} deg/s, acc std {acc_std:.2f} m/s²; "
            f"limits {STILL_GYR_STD_DPS} deg/s, {STILL_ACC_STD_MPS2} m/s²)")


def imu_calibrate(imu: ImuData, *, standing: tuple[float, float] = (0.0, 5.0),
                  functional: bool = True,
                  running: tuple[float, float] | None = None) -> ImuCalibration:
    """Static (and by default functional) calibration of one IMU.

    Parameters
    ----------
    imu : ImuData
        The IMU with its known mounting (sensor → segment).
    standing : (float, float)
        Standing-still period (session seconds) in the calibration pose.
    functional : bool
        Refine the heading of the segment axes from running (see the module docstring).
    running : (float, float), optional
        Period to take the functional axis from (session seconds); default everything after
        the standing period.

    Returns
    -------
    ImuCalibration

    Raises
    ------
    ValueError
        When the standing period holds too few samples or the IMU moved during it.
    """
    acc = np.asarray(imu.acc_mps2, dtype=float)
    gyr = np.asarray(imu.gyr_dps, dtype=float)
    n = len(acc)
    sl = imu_window(n, imu.rate_hz, imu.start_s, standing)
    _still_check(imu, sl, standing)
    bias = gyr[sl].mean(axis=0)
    up = acc[sl].mean(axis=0)
    up /= np.linalg.norm(up)
    run = (slice(sl.stop, n) if running is None
           else imu_window(n, imu.rate_hz, imu.start_s, running))
    return _axes(imu, up, bias, run if functional else None)


def imu_calibrate_functional(imu: ImuData, static: ImuCalibration,
                             running: tuple[float, float] | None = None) -> ImuCalibration:
    """Functional calibration on top of a known static one (e.g. stored, or made from an
    earlier standing phase): its vertical and gyro bias, the heading from ``running``
    (session seconds; default all of ``imu``)."""
    n = len(imu.acc_mps2)
    run = slice(0, n) if running is None else imu_window(n, imu.rate_hz, imu.start_s, running)
    return _axes(imu, np.asarray(static.segment_to_sensor, float)[:, 1],
                 np.asarray(static.gyro_bias_dps, float), run)


def _axes(imu: ImuData, up: NDArray[np.float64], bias: NDArray[np.float64],
          run: slice | None) -> ImuCalibration:
    """Segment axes from the vertical ``up`` and, with ``run``, the functional heading."""
    acc = np.asarray(imu.acc_mps2, dtype=float)
    gyr = np.asarray(imu.gyr_dps, dtype=float)
    known = np.asarray(imu.mounting, dtype=float)
    known_c = known.T  # segment axes in the sensor frame, as described
    method, ratio = "mounting", float("nan")
    z = known_c[:, 2] - (known_c[:, 2] @ up) * up
    if run is not None and run.stop - run.start >= 3:
        if not (np.isfinite(acc[run]).all() and np.isfinite(gyr[run]).all()):
            t0 = imu.start_s + run.start / imu.rate_hz
            t1 = imu.start_s + run.stop / imu.rate_hz
            raise ValueError(
                f"IMU {imu.segment}: the functional calibration window {t0:.2f}–{t1:.2f} s "
                "holds missing samples (NaN: a hole in the recording); calibrate on running "
                "without holes (each part between holes on its own)")
        if imu.segment.startswith("pelvis"):
            x_f, r = imu_functional_axis(acc[run], vertical=up, reference=known_c[:, 0],
                                         center=True)
            z_f = np.cross(x_f, up)
            kind = "acc_axis"
        else:
            z_f, r = imu_functional_axis(gyr[run] - bias, vertical=up,
                                         reference=known_c[:, 2])
            kind = "gyro_axis"
        change = math.degrees(math.acos(np.clip(z_f @ z / np.linalg.norm(z), -1, 1)))
        if r >= MIN_AXIS_RATIO and change <= MAX_AXIS_CHANGE_DEG:
            z, method, ratio = z_f, kind, r
    z = z / np.linalg.norm(z)
    x = np.cross(up, z)
    c = np.column_stack([x, up, z])
    r_mis = c.T @ known.T
    return ImuCalibration(
        segment=imu.segment, segment_to_sensor=c, gyro_bias_dps=bias,
        misalignment_rotvec_deg=_rotvec_deg(r_mis), method=method, axis_ratio=ratio)


def _rotvec_deg(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation vector (deg) of a rotation matrix."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if math.sin(angle) > 1e-6:
        return np.degrees(angle * w / (2.0 * math.sin(angle)))
    # near 180°: axis from the symmetric part
    b = (r + np.eye(3)) / 2.0
    axis = b[:, int(np.argmax(np.diag(b)))]
    return np.degrees(angle * axis / np.linalg.norm(axis))
