"""IMU kinematics for HipStride: orientation, calibration, sagittal angles, hip flexion, tilt.

The one place to import IMU processing from. Sensor fusion lives in :mod:`.imu_fusion`,
static and functional calibration in :mod:`.imu_calibration`; segment angles and joints here.

Conventions (as in the simulator and DOMAIN.md): world x forward, y up, z right; segment x
anterior, y superior, z right, equal to the world frame when standing. Orientation is
``R = Rz(θz)·Rx(θx)·Ry(θy)`` (intrinsic ZXY Cardan); θz is the sagittal angle, positive when
the segment's long axis swings forward. Hip flexion = θz(thigh) − θz(pelvis); pelvic tilt =
−θz(pelvis), positive anterior. Everything is relative to the standing calibration.

Typical review chain::

    kin = kinematics_from_imu({"pelvis": p, "thigh_l": tl, "thigh_r": tr}, standing=(0, 5))
    kin.hip_flexion_deg["l"], kin.pelvic_tilt_deg, kin.sagittal_rate_dps["thigh_l"]

Heading (rotation about the vertical) is not observable without a magnetometer and drifts with
the gyroscope. The sagittal angle depends on heading only to second order, and a treadmill
runner faces one way, so each segment's heading is re-referenced to its own slowly varying
heading (a centred moving average of the heading of its medio-lateral axis over
``heading_window_s``): drift disappears while the stride-to-stride transverse motion stays.

Pure functions on numpy arrays: no file, network, database or UI imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from .data import SIDES, ImuData, Kinematics
from .imu_calibration import (
    ImuCalibration,
    imu_calibrate,
    imu_functional_axis,
    imu_window,
)
from .imu_fusion import (
    ACC_TOLERANCE_MPS2,
    G_MPS2,
    TIME_CONSTANT_S,
    ImuOrientationFilter,
    imu_gyro_bias,
    imu_orientation,
    imu_tilt_quaternion,
    quat_from_rotvec,
    quat_multiply,
    quat_rotate,
    quat_to_matrix,
)

__all__ = [
    "G_MPS2",
    "ImuCalibration",
    "ImuOrientationFilter",
    "imu_calibrate",
    "imu_functional_axis",
    "imu_gyro_bias",
    "imu_orientation",
    "imu_sagittal",
    "imu_segment_orientation",
    "imu_tilt_quaternion",
    "imu_window",
    "kinematics_from_imu",
    "quat_from_rotvec",
    "quat_multiply",
    "quat_rotate",
    "quat_to_matrix",
]

HEADING_WINDOW_S = 4.0
#: Running tilt reference: learned over REFERENCE_S seconds starting REFERENCE_DELAY_S after
#: the standing period (skip the first steps while the runner speeds up).
REFERENCE_S = 10.0
REFERENCE_DELAY_S = 2.0
#: Slow drift tracking (integral term of the tilt correction), s.
BIAS_TIME_CONSTANT_S: float | None = 20.0


def imu_segment_orientation(imu: ImuData, calibration: ImuCalibration, *,
                            standing: tuple[float, float] = (0.0, 5.0),
                            reference_window: tuple[float, float] | None = None,
                            time_constant_s: float = TIME_CONSTANT_S,
                            acc_tolerance_mps2: float = ACC_TOLERANCE_MPS2,
                            bias_time_constant_s: float | None = BIAS_TIME_CONSTANT_S
                            ) -> NDArray[np.float64]:
    """Segment → world rotation matrices, equal to identity (on average) while standing.

    The fusion filter starts at the standing period from the calibrated pose and runs forward;
    samples before the standing period (if any) are filled by running it backward in time.

    Parameters
    ----------
    imu : ImuData
        The IMU (sensor frame).
    calibration : ImuCalibration
        From :func:`imu_calibrate`.
    standing : (float, float)
        Standing period (session seconds).
    reference_window : (float, float), optional
        Where the filter learns its tilt reference (session seconds; see
        ``reference_window_s`` of :class:`ImuOrientationFilter`). None: the vertical.
    time_constant_s, acc_tolerance_mps2, bias_time_constant_s : float
        Fusion settings, see :class:`ImuOrientationFilter`.

    Returns
    -------
    ndarray, shape (n, 3, 3)
        Segment → world rotation per sample (heading not yet re-referenced).
    """
    acc = np.asarray(imu.acc_mps2, dtype=float)
    gyr = np.asarray(imu.gyr_dps, dtype=float)
    c = calibration.segment_to_sensor
    sl = imu_window(len(acc), imu.rate_hz, imu.start_s, standing)
    q0 = _matrix_to_quat(c.T)  # sensor → world when standing
    kw = {"time_constant_s": time_constant_s, "acc_tolerance_mps2": acc_tolerance_mps2,
          "bias_time_constant_s": bias_time_constant_s}
    i0 = sl.start
    t0 = imu.start_s + i0 / imu.rate_hz
    ref = None if reference_window is None else (reference_window[0] - t0,
                                                 reference_window[1] - t0)
    q = np.empty((len(acc), 4))
    q[i0:] = imu_orientation(acc[i0:], gyr[i0:], imu.rate_hz, initial=q0,
                             bias_dps=calibration.gyro_bias_dps, reference_window_s=ref, **kw)
    if i0 > 0:  # backward in time: negated rates, same initial pose
        back = imu_orientation(acc[i0::-1], -(gyr[i0::-1] - calibration.gyro_bias_dps),
                               imu.rate_hz, initial=q0, **kw)
        q[:i0] = back[:0:-1]
    r = quat_to_matrix(q) @ c
    mean = r[sl].mean(axis=0)
    u, _, vt = np.linalg.svd(mean)
    h = (u @ vt).T  # inverse of the mean standing orientation
    return h @ r


def imu_sagittal(rot: NDArray[np.float64], rate_hz: float, *,
                 heading_window_s: float | None = HEADING_WINDOW_S) -> NDArray[np.float64]:
    """Sagittal angle θz (deg) of segment orientations, heading drift removed.

    Parameters
    ----------
    rot : ndarray, shape (n, 3, 3)
        Segment → world rotations (e.g. from :func:`imu_segment_orientation`).
    rate_hz : float
        Sampling rate (Hz).
    heading_window_s : float or None
        Width of the centred moving average of the heading of the segment's z axis that is
        taken as "facing forward" (s). None keeps the heading as integrated.
    Returns
    -------
    ndarray, shape (n,)
        θz of the intrinsic ZXY Cardan decomposition (deg), continuous (unwrapped).
    """
    r01, r11, r21 = rot[:, 0, 1], rot[:, 1, 1], rot[:, 2, 1]
    if heading_window_s:
        heading = np.unwrap(np.arctan2(rot[:, 0, 2], rot[:, 2, 2]))
        heading = _centred_mean(heading, max(1, round(heading_window_s * rate_hz / 2)))
        r01 = np.cos(heading) * r01 - np.sin(heading) * r21
    return np.degrees(np.unwrap(np.arctan2(-r01, r11)))


def kinematics_from_imu(imus: Mapping[str, ImuData], *, standing: tuple[float, float] = (0.0, 5.0),
                        functional: bool = True, running: tuple[float, float] | None = None,
                        heading_window_s: float | None = HEADING_WINDOW_S,
                        reference_s: float | None = REFERENCE_S,
                        time_constant_s: float = TIME_CONSTANT_S,
                        acc_tolerance_mps2: float = ACC_TOLERANCE_MPS2,
                        bias_time_constant_s: float | None = BIAS_TIME_CONSTANT_S
                        ) -> Kinematics:
    """Segment sagittal angles, hip flexion and pelvic tilt from the IMUs, relative to standing.

    Parameters
    ----------
    imus : mapping of str to ImuData
        Keyed by segment: ``pelvis``, ``thigh_l``, ``thigh_r``, optional ``shank_l``,
        ``shank_r`` (each in its sensor frame with its known mounting). Segments may differ in
        rate and start; outputs are on a common time base (the highest rate, over the time all
        segments cover).
    standing : (float, float)
        Standing-still period in the calibration pose (session seconds).
    functional : bool
        Refine each segment's axes from running (see :mod:`.imu_calibration`).
    running : (float, float), optional
        Period for the functional calibration (default: after the standing period).
    heading_window_s : float or None
        Heading re-reference window (s), see :func:`imu_sagittal`.
    reference_s : float or None
        Length of the window in which each fusion filter learns its running tilt reference,
        starting ``REFERENCE_DELAY_S`` after the standing period (s; shortened to the data,
        skipped when under 2 s). None: hold the mean specific force vertical.
    time_constant_s, acc_tolerance_mps2, bias_time_constant_s : float
        Fusion settings, see :class:`ImuOrientationFilter`.

    Returns
    -------
    Kinematics
        ``sagittal_deg`` and ``sagittal_rate_dps`` per segment given; ``hip_flexion_deg`` per
        side with a thigh; ``pelvic_tilt_deg`` (None without a pelvis IMU). ``quality`` holds
        ``hip_reference`` (``"pelvis"`` or ``"world_vertical"`` without a pelvis IMU),
        ``misalignment_deg`` and ``calibration_method`` per segment, ``gyro_bias_dps``,
        ``resampled`` and ``segments``.

    Raises
    ------
    ValueError
        No thigh IMU; no samples or no stillness in the standing period; no common time span.
    """
    if not any(f"thigh_{s}" in imus for s in SIDES):
        raise ValueError("kinematics need at least one thigh IMU (thigh_l or thigh_r); got "
                         + (", ".join(sorted(imus)) or "none"))
    for seg, imu in imus.items():
        if len(imu.acc_mps2) != len(imu.gyr_dps):
            raise ValueError(f"IMU {seg}: {len(imu.acc_mps2)} acc but {len(imu.gyr_dps)} "
                             "gyro samples")
    angle: dict[str, NDArray[np.float64]] = {}
    rate: dict[str, NDArray[np.float64]] = {}
    axial: dict[str, NDArray[np.float64]] = {}
    quality: dict[str, object] = {"misalignment_deg": {}, "calibration_method": {},
                                  "gyro_bias_dps": {}, "tilt_reference": {}}
    for seg, imu in imus.items():
        cal = imu_calibrate(imu, standing=standing, functional=functional, running=running)
        ref_window = None
        if reference_s:
            t_end = imu.start_s + len(imu.acc_mps2) / imu.rate_hz
            r0 = standing[1] + REFERENCE_DELAY_S
            r1 = min(r0 + reference_s, t_end)
            ref_window = (r0, r1) if r1 - r0 >= 2.0 else None
        quality["tilt_reference"][seg] = "learned" if ref_window else "vertical"
        rot = imu_segment_orientation(imu, cal, standing=standing, reference_window=ref_window,
                                      time_constant_s=time_constant_s,
                                      bias_time_constant_s=bias_time_constant_s,
                                      acc_tolerance_mps2=acc_tolerance_mps2)
        angle[seg] = imu_sagittal(rot, imu.rate_hz, heading_window_s=heading_window_s)
        rate[seg] = (np.asarray(imu.gyr_dps, float) - cal.gyro_bias_dps) @ cal.segment_to_sensor[
            :, 2]
        axial[seg] = np.asarray(imu.acc_mps2, float) @ cal.segment_to_sensor[:, 1]
        quality["misalignment_deg"][seg] = cal.misalignment_deg
        quality["calibration_method"][seg] = cal.method
        quality["gyro_bias_dps"][seg] = cal.gyro_bias_dps.tolist()

    return assemble_kinematics(imus, angle, rate, axial, quality)


def assemble_kinematics(imus: Mapping[str, ImuData], angle: dict[str, NDArray[np.float64]],
                        rate: dict[str, NDArray[np.float64]],
                        axial: dict[str, NDArray[np.float64]],
                        quality: dict[str, object]) -> Kinematics:
    """Per-segment sagittal angle (deg), rate (deg/s) and long-axis specific force (m/s²) on
    one time base, hip angles (thigh relative to pelvis) and pelvic tilt from them: the last
    step shared by whole-file and resumed (after a hole) kinematics. ``quality`` is filled in.
    """
    rate_hz, start_s, resampled = _common_time_base(imus)
    if resampled:
        n = math.floor((min(i.start_s + len(i.acc_mps2) / i.rate_hz for i in imus.values())
                        - start_s) * rate_hz + 1e-9)
        if n < 1:
            raise ValueError("the IMUs share no common time span")
        t = start_s + np.arange(n) / rate_hz
        for seg, imu in imus.items():
            angle[seg] = np.interp(t, imu.time_s, angle[seg])
            rate[seg] = np.interp(t, imu.time_s, rate[seg])
            axial[seg] = np.interp(t, imu.time_s, axial[seg])

    pelvis = angle.get("pelvis")
    hip = {s: angle[f"thigh_{s}"] - (pelvis if pelvis is not None else 0.0)
           for s in SIDES if f"thigh_{s}" in angle}
    quality["hip_reference"] = "pelvis" if pelvis is not None else "world_vertical"
    quality["resampled"] = resampled
    quality["segments"] = sorted(imus)
    return Kinematics(rate_hz=rate_hz, start_s=start_s, hip_flexion_deg=hip,
                      pelvic_tilt_deg=None if pelvis is None else -pelvis,
                      sagittal_deg=angle, sagittal_rate_dps=rate, quality=quality,
                      axial_acc_mps2=axial)


def _common_time_base(imus: Mapping[str, ImuData]) -> tuple[float, float, bool]:
    """(rate, start, resampling needed) of the common time base."""
    rates = {float(i.rate_hz) for i in imus.values()}
    starts = {float(i.start_s) for i in imus.values()}
    lengths = {len(i.acc_mps2) for i in imus.values()}
    if len(rates) == 1 and len(starts) == 1 and len(lengths) == 1:
        return rates.pop(), starts.pop(), False
    return max(rates), max(starts), True


def _centred_mean(x: NDArray[np.float64], half: int) -> NDArray[np.float64]:
    """Centred moving average over ``2·half + 1`` samples, shrinking at the ends."""
    n = len(x)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(n)
    lo, hi = np.maximum(0, i - half), np.minimum(n, i + half + 1)
    return (csum[hi] - csum[lo]) / (hi - lo)


def _matrix_to_quat(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit quaternion (w, x, y, z) of a rotation matrix."""
    tr = float(np.trace(m))
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    qa = np.array(q)
    return qa / np.linalg.norm(qa)
