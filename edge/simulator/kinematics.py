"""Segment orientations and what an IMU strapped to each segment measures.

Conventions (all segments, both sides):

* **World frame**: x forward (running direction), y up, z to the runner's right. Gravity points
  along −y; an accelerometer at rest therefore reads specific force +9.80665 m/s² along +y.
* **Segment frame**: x anterior, y superior, z to the runner's right. In the standing
  calibration pose every segment frame equals the world frame (all angles 0).
* **Orientation**: segment → world rotation ``R = Rz(θz) · Rx(θx) · Ry(θy)`` (intrinsic ZXY
  Cardan angles, scipy ``"ZXY"``). ``θz`` is the *sagittal angle*: a positive rotation about +z
  swings the segment's long axis (−y) forward, so for the thigh it is flexion.
* **Hip flexion** = θz(thigh) − θz(pelvis). **Knee flexion** = θz(thigh) − θz(shank).
* **Pelvic tilt**, positive = anterior = a *negative* rotation of the pelvis about +z, so
  θz(pelvis) = −tilt.
* **Mounting**: a 3×3 matrix M maps sensor-frame vectors to the segment frame (as in
  :mod:`hipstride.streams`). The actual mounting is ``R_mis · M_known`` where ``R_mis`` is the
  strap misalignment (unknown to the description, recorded in the ground truth).
* **Gyroscope** = body angular velocity in the sensor frame (deg/s), from the orientation by a
  central difference of rotations (error O(h²), h = 0.2 ms). **Accelerometer** = specific force
  in the sensor frame: the sensor's linear acceleration (centre-of-mass motion plus rotation
  about the hip and knee at the sensor's lever arm, by a central second difference of its
  position) minus gravity, plus impact transients at IC.

Body model: the pelvis pivots about the centre of mass (COM); hip joint centres 8 cm below and
9 cm lateral of it; knees 42 cm below the hips. The COM gets a vertical specific-force half-sine
during each stance (mean g over the step, so the runner neither sinks nor rises) and a
fore-aft braking/propulsion sine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

from .gait import GaitWindow

G = 9.80665
GYRO_H_S = 2e-4
ACC_H_S = 1e-3

# Hip flexion shape over one stride (phase 0 = IC), normalised below to [-1, +1]; knots after
# Novacheck 1998: extension through stance, peak ~39 % just after toe-off, peak flexion ~86 %.
_HIP_KNOTS = np.array([0.0, 0.10, 0.20, 0.30, 0.39, 0.47, 0.58, 0.72, 0.86, 0.94, 1.0])
_HIP_DEG = np.array([45.0, 33.0, 16.0, 0.0, -10.0, -6.0, 14.0, 42.0, 55.0, 50.0, 45.0])
_KNEE_KNOTS = np.array([0.0, 0.13, 0.36, 0.50, 0.66, 0.80, 0.93, 1.0])
_KNEE_DEG = np.array([18.0, 42.0, 18.0, 60.0, 100.0, 60.0, 12.0, 18.0])

_hip_spline = CubicSpline(_HIP_KNOTS, _HIP_DEG, bc_type="periodic")
_grid = np.linspace(0.0, 1.0, 20001)
_hip_on_grid = _hip_spline(_grid)
_HIP_MIN, _HIP_MAX = float(_hip_on_grid.min()), float(_hip_on_grid.max())
_knee_spline = CubicSpline(_KNEE_KNOTS, _KNEE_DEG, bc_type="periodic")

SEGMENTS = ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r")
# Lever arms (m): pelvis sensor on the sacrum behind the COM; thigh sensors lateral, mid-thigh;
# shank sensors on the anteromedial tibia. z is to the right, so "lateral" flips with side.
_HIP_OFFSET = {"l": np.array([0.0, -0.08, -0.09]), "r": np.array([0.0, -0.08, 0.09])}
_THIGH_SENSOR = {"l": np.array([0.0, -0.20, -0.07]), "r": np.array([0.0, -0.20, 0.07])}
_KNEE = np.array([0.0, -0.42, 0.0])
_SHANK_SENSOR = {"l": np.array([0.04, -0.15, 0.02]), "r": np.array([0.04, -0.15, -0.02])}
_PELVIS_SENSOR = np.array([-0.10, 0.0, 0.0])


def hip_shape(phase: np.ndarray) -> np.ndarray:
    """Normalised hip flexion shape: −1 at peak extension, +1 at peak flexion."""
    return 2.0 * (_hip_spline(phase) - _HIP_MIN) / (_HIP_MAX - _HIP_MIN) - 1.0


def knee_flexion_shape_deg(phase: np.ndarray) -> np.ndarray:
    return _knee_spline(phase)


@dataclass(frozen=True)
class Pose:
    """Where the running pattern is switched on and any extra whole-body posture.

    ``running_weight`` multiplies every running movement (0 = standing still, 1 = running).
    ``extra_deg`` adds sagittal/frontal/transverse angles per segment (used by the prone test);
    ``base`` is an optional whole-body rotation (lying prone) applied before everything.
    """

    running_weight: np.ndarray
    extra_deg: dict[str, np.ndarray] | None = None
    base: Rotation | None = None


def hip_flexion_deg(win: GaitWindow, side: str, t_s: np.ndarray) -> np.ndarray:
    """Running hip flexion of ``side`` (deg, before the running weight)."""
    k, phase = win.side_phase(side, t_s)
    ext = win.blend(win.side_extension_deg[side], k, phase)
    flex = win.blend(win.side_flexion_deg[side], k, phase)
    return 0.5 * (flex - ext) + 0.5 * (flex + ext) * hip_shape(phase)


def pelvic_tilt_deg(win: GaitWindow, t_s: np.ndarray) -> np.ndarray:
    """Running anterior pelvic tilt (deg): a mean offset plus two oscillations per stride."""
    j, phase = win.step_phase(t_s)
    mean = win.blend(win.tilt_mean_deg, j, phase)
    amp = win.blend(win.tilt_amplitude_deg, j, phase)
    return mean + amp * np.cos(2.0 * np.pi * (phase - 0.72))


def segment_angles_deg(win: GaitWindow, t_s: np.ndarray, pose: Pose
                       ) -> dict[str, np.ndarray]:
    """ZXY Cardan angles (n, 3) = (θz sagittal, θx frontal, θy transverse) of every segment."""
    w = pose.running_weight
    _, phase_l = win.side_phase("l", t_s)
    tilt = w * pelvic_tilt_deg(win, t_s)
    two_pi = 2.0 * np.pi
    pelvis = np.stack([-tilt, w * 3.0 * np.sin(two_pi * phase_l),
                       w * 4.0 * np.cos(two_pi * phase_l)], axis=1)
    out = {"pelvis": pelvis}
    for side in "lr":
        sign = -1.0 if side == "l" else 1.0
        _, ph = win.side_phase(side, t_s)
        thigh_z = pelvis[:, 0] + w * hip_flexion_deg(win, side, t_s)
        out[f"thigh_{side}"] = np.stack(
            [thigh_z, w * sign * 4.0 * np.sin(two_pi * (ph - 0.1)),
             w * sign * 3.0 * np.cos(two_pi * ph)], axis=1)
        out[f"shank_{side}"] = np.stack(
            [thigh_z - w * knee_flexion_shape_deg(ph), w * sign * 2.0 * np.sin(two_pi * ph),
             w * sign * 4.0 * np.cos(two_pi * ph)], axis=1)
    if pose.extra_deg:
        for seg, extra in pose.extra_deg.items():
            out[seg] = out[seg] + extra
    return out


def segment_rotations(angles_deg: dict[str, np.ndarray], base: Rotation | None
                      ) -> dict[str, Rotation]:
    rots = {seg: Rotation.from_euler("ZXY", a, degrees=True) for seg, a in angles_deg.items()}
    if base is not None:
        rots = {seg: base * r for seg, r in rots.items()}
    return rots


def sensor_positions_m(rots: dict[str, Rotation], base: Rotation | None) -> dict[str, np.ndarray]:
    """Sensor positions relative to the COM (world frame), from the segment chain."""
    pos = {"pelvis": rots["pelvis"].apply(_PELVIS_SENSOR)}
    for side in "lr":
        hip = rots["pelvis"].apply(_HIP_OFFSET[side])
        thigh = rots[f"thigh_{side}"]
        pos[f"thigh_{side}"] = hip + thigh.apply(_THIGH_SENSOR[side])
        knee = hip + thigh.apply(_KNEE)
        pos[f"shank_{side}"] = knee + rots[f"shank_{side}"].apply(_SHANK_SENSOR[side])
    return pos


def com_acceleration_ms2(win: GaitWindow, t_s: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """COM linear acceleration (world, m/s²): half-sine push in each stance, free fall between."""
    t_s = np.asarray(t_s, dtype=float)
    vertical = np.zeros_like(t_s)
    fore_aft = np.zeros_like(t_s)
    steps = win.steps
    for i in range(len(steps) - 1):
        s = steps[i]
        step_s = steps[i + 1].ic_s - s.ic_s
        stance_s = s.stance_fraction * 2.0 * step_s
        sel = (t_s >= s.ic_s) & (t_s < s.ic_s + stance_s)
        if not sel.any():
            continue
        x = (t_s[sel] - s.ic_s) / stance_s
        peak = G * step_s * np.pi / (2.0 * stance_s)  # mean specific force over the step = g
        vertical[sel] += peak * np.sin(np.pi * x)
        fore_aft[sel] += -4.0 * np.sin(2.0 * np.pi * x)
    acc = np.zeros((len(t_s), 3))
    acc[:, 0] = weight * fore_aft
    acc[:, 1] = weight * (vertical - G)
    return acc


def impact_specific_force_ms2(win: GaitWindow, t_s: np.ndarray, segment: str,
                              weight: np.ndarray) -> np.ndarray:
    """Heel-strike transients (segment frame, m/s²): strongest at the shank, damped upwards.

    An alpha pulse peaking 6 ms after IC along the segment's long axis (+y, pushed up through
    the leg) with a smaller anterior-posterior part, followed by a slower opposite lobe of the
    same area: the impact jolts the sensor and the tissue brings it back, so the transient
    changes no velocity and the specific force still averages to g over a stride, as it must
    for any periodic motion.
    """
    t_s = np.asarray(t_s, dtype=float)
    out = np.zeros((len(t_s), 3))
    tau0, tau1 = 0.006, 0.02
    for s in win.steps:
        if segment == "pelvis":
            gain = 15.0
        elif segment.endswith("_" + s.side):
            gain = 60.0 if segment.startswith("shank") else 22.0
        else:
            continue
        dt = t_s - s.ic_s
        sel = (dt >= 0.0) & (dt < 0.2)
        if not sel.any():
            continue
        x, y = dt[sel] / tau0, dt[sel] / tau1
        # equal areas: gain * tau0 * e for the jolt, (gain * tau0 / tau1) * tau1 * e back
        pulse = gain * s.artefact_scale * (x * np.exp(1.0 - x) - tau0 / tau1 * y * np.exp(1.0 - y))
        out[sel, 1] += pulse
        out[sel, 0] -= 0.3 * pulse
    return out * weight[:, None]


def imu_truth(win: GaitWindow, t_s: np.ndarray, pose_at, mountings: dict[str, np.ndarray]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Noise-free IMU readings per segment plus the segment angles at ``t_s``.

    Parameters
    ----------
    pose_at
        Function of a time array returning the :class:`Pose` there.
    mountings
        Actual sensor → segment rotation matrices (known mounting with misalignment).

    Returns
    -------
    acc_ms2, gyr_dps, angles_deg
        Per segment: specific force and angular velocity in the sensor frame, shape (n, 3);
        and the ZXY segment angles (n, 3).
    """
    t_s = np.asarray(t_s, dtype=float)
    n = len(t_s)
    offsets = np.array([0.0, -GYRO_H_S, GYRO_H_S, -ACC_H_S, ACC_H_S])
    times = (t_s[None, :] + offsets[:, None]).ravel()
    pose = pose_at(times)
    angles = segment_angles_deg(win, times, pose)
    rots = segment_rotations(angles, pose.base)
    pos = sensor_positions_m(rots, pose.base)
    weight = pose.running_weight[:n]
    com = com_acceleration_ms2(win, t_s, weight)
    acc, gyr, ang = {}, {}, {}
    for seg in SEGMENTS:
        r = rots[seg]
        r0, rm, rp = r[:n], r[n:2 * n], r[2 * n:3 * n]
        omega_seg = np.rad2deg((rm.inv() * rp).as_rotvec()) / (2.0 * GYRO_H_S)
        p = pos[seg]
        lin = (p[4 * n:] - 2.0 * p[:n] + p[3 * n:4 * n]) / ACC_H_S**2 + com
        lin[:, 1] += G
        f_seg = r0.inv().apply(lin) + impact_specific_force_ms2(win, t_s, seg, weight)
        m_t = mountings[seg].T
        acc[seg] = f_seg @ m_t.T
        gyr[seg] = omega_seg @ m_t.T
        ang[seg] = angles[seg][:n]
    return acc, gyr, ang
