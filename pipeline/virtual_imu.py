"""Virtual IMUs from a runner's motion capture, with force-plate events and marker angles.

Validation tooling, not part of the engine: it turns a real treadmill-running trial (marker
clusters plus a force plate, e.g. Fukuchi, Fukuchi and Duarte 2017, PeerJ 5:e3298) into what
HipStride's IMUs would have recorded on the same person, and into the truth to score the
engine against (docs/validation.md, "Real data").

* **Orientation** of each segment by a rigid-body (Kabsch/SVD) fit of its marker cluster to
  the same cluster in the static trial, per frame: the rotation is relative to standing, so the
  standing pose is the anatomical zero, as in the engine.
* **Gyroscope** from the orientation's derivative, in the sensor frame
  (``ω = log(R[k−1]ᵀ R[k+1]) / 2Δt``); **accelerometer** from the second derivative of the
  cluster centroid plus gravity, rotated into the sensor frame.
* Markers are low-passed (zero-lag Butterworth, :data:`MARKER_CUTOFF_HZ`) and resampled by
  cubic spline from the capture rate to :data:`IMU_RATE_HZ`.
* Each sensor is rotated a few degrees off its segment (strap misalignment, unknown to the
  engine, which is told the nominal mounting) and gets a constant bias and white noise.
* A **standing period** is prepended (the static pose held, then a smooth blend into the
  first running frame), because the engine calibrates on standing still.
* **Truth**: contacts from the vertical force with hysteresis (a contact is a run above
  ``off_n`` that reaches ``on_n``; its times are the ``off_n`` crossings, interpolated),
  assigned to the foot whose heel is lower; hip flexion (thigh θz − pelvis θz) and pelvic
  tilt (−pelvis θz) from the same marker rotations, with the engine's ZXY convention.

What it does not show: the sensors are rigid on the clusters (no skin or strap wobble, no
soft-tissue impact ringing beyond what the markers carry), and the markers' own smoothing
limits the impact content of the accelerations.

Lab frame: the trial's axes must be x forward, y up, z right (true of the Fukuchi data set);
:func:`load_c3d_trial` checks the vertical and forward axes and says so when they differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline
from scipy.signal import butter, filtfilt
from scipy.spatial.transform import Rotation, Slerp

from hipstride.pipeline.engine.data import ImuData
from hipstride.pipeline.io.c3d_lab import contacts_from_force, markers_of, open_c3d
from hipstride.pipeline.io.rigid import hip_and_tilt, kabsch

G_MPS2 = 9.80665
IMU_RATE_HZ = 200.0
MARKER_CUTOFF_HZ = 20.0
STANDING_S = 5.0
BLEND_S = 2.0

#: Marker clusters of the Fukuchi running data set (labels as in its C3D files).
SEGMENT_MARKERS: dict[str, tuple[str, ...]] = {
    "pelvis": ("L.ASIS", "R.ASIS", "L.PSIS", "R.PSIS", "L.Iliac.Crest", "R.Iliac.Crest"),
    **{f"{part}_{s}": tuple(f"{s.upper()}.{part.title()}.{pos}" for pos in
                            ("Top.Lateral", "Top.Medial", "Bottom.Lateral", "Bottom.Medial"))
       for part in ("thigh", "shank") for s in ("l", "r")},
}
HEEL_MARKERS = {"l": "L.Heel.Bottom", "r": "R.Heel.Bottom"}


@dataclass(frozen=True)
class Trial:
    """Markers (m, lab frame x forward, y up, z right) and vertical force (N).

    ``markers[name]`` is (n, 3) at ``marker_rate_hz``, NaN where missing; ``static[name]``
    the mean position of the same marker in the static trial; ``force_n`` (m,) at
    ``force_rate_hz``, sample 0 at the same instant as marker frame 0.
    """

    markers: Mapping[str, NDArray[np.float64]]
    marker_rate_hz: float
    static: Mapping[str, NDArray[np.float64]]
    force_n: NDArray[np.float64]
    force_rate_hz: float


@dataclass(frozen=True)
class Contact:
    """One foot contact from the force plate (times in trial seconds)."""

    side: str
    ic_s: float
    toe_off_s: float


# --- reading -------------------------------------------------------------------------------
def _c3d_markers(path: Path) -> tuple[dict[str, NDArray[np.float64]], float, object]:
    c = open_c3d(path, force_plates=True)
    markers = markers_of(c)
    return dict(markers.xyz), markers.rate_hz, c


def load_c3d_trial(running: str | Path, static: str | Path) -> Trial:
    """Read a running trial and its static trial (needs ezc3d).

    Raises ValueError naming the problem when a cluster marker is missing or the lab axes are
    not x forward, y up.
    """
    markers, rate, c = _c3d_markers(Path(running))
    still, _, _ = _c3d_markers(Path(static))
    need = [m for ms in SEGMENT_MARKERS.values() for m in ms] + list(HEEL_MARKERS.values())
    missing = [m for m in need if m not in markers or m not in still]
    if missing:
        raise ValueError(f"markers missing for the virtual IMUs: {', '.join(missing)}")
    plates = c["data"]["platform"]
    if not plates:
        raise ValueError(f"{running}: no force plate: contacts cannot be scored")
    force = np.asarray(plates[0]["force"], float)
    f_rate = float(c["parameters"]["ANALOG"]["RATE"]["value"][0])
    static_mean = {m: np.nanmean(still[m], axis=0) for m in need}
    up = static_mean["L.Iliac.Crest"] - static_mean["L.Heel.Bottom"]
    fwd = static_mean["L.ASIS"] - static_mean["L.PSIS"]
    if np.argmax(np.abs(up)) != 1 or up[1] < 0 or np.argmax(np.abs(fwd)) != 0 or fwd[0] < 0:
        raise ValueError("the lab axes are not x forward, y up: rotate the markers first")
    return Trial({m: markers[m] for m in need}, rate, static_mean, force[1], f_rate)


def save_trial(trial: Trial, path: str | Path, *, start_s: float = 0.0,
               stop_s: float | None = None) -> None:
    """Write ``trial`` (or a part of it) as a compressed .npz of float32 (a test excerpt)."""
    i0 = round(start_s * trial.marker_rate_hz)
    i1 = None if stop_s is None else round(stop_s * trial.marker_rate_hz)
    j0 = round(start_s * trial.force_rate_hz)
    j1 = None if stop_s is None else round(stop_s * trial.force_rate_hz)
    names = sorted(trial.markers)
    np.savez_compressed(
        path, names=np.array(names),
        markers=np.stack([trial.markers[m][i0:i1] for m in names]).astype(np.float32),
        static=np.stack([trial.static[m] for m in names]),
        force=trial.force_n[j0:j1].astype(np.float32),
        rates=np.array([trial.marker_rate_hz, trial.force_rate_hz]))


def load_trial(path: str | Path) -> Trial:
    """Read a trial written by :func:`save_trial`."""
    with np.load(path) as z:
        names = [str(n) for n in z["names"]]
        markers = {m: z["markers"][k].astype(float) for k, m in enumerate(names)}
        static = {m: z["static"][k].astype(float) for k, m in enumerate(names)}
        return Trial(markers, float(z["rates"][0]), static, z["force"].astype(float),
                     float(z["rates"][1]))


# --- force-plate truth ---------------------------------------------------------------------
def assign_feet(trial: Trial, contacts: list[tuple[float, float]]) -> list[Contact]:
    """Each contact to the foot whose heel marker is lower (the other foot is in the air)
    over the first 40 ms of the contact, else to the one further forward."""
    out = []
    t = np.arange(len(trial.markers[HEEL_MARKERS["l"]])) / trial.marker_rate_hz
    for ic, to in contacts:
        sel = (t >= ic) & (t <= ic + 0.04)
        hl, hr = (trial.markers[HEEL_MARKERS[s]][sel] for s in ("l", "r"))
        dy = np.nanmean(hl[:, 1]) - np.nanmean(hr[:, 1])
        if np.isfinite(dy) and abs(dy) > 0.01:
            side = "l" if dy < 0 else "r"
        else:
            side = "l" if np.nanmean(hl[:, 0]) > np.nanmean(hr[:, 0]) else "r"
        out.append(Contact(side, ic, to))
    return out


# --- segment motion ------------------------------------------------------------------------
def _fill_and_filter(xyz: NDArray[np.float64], rate_hz: float, cutoff_hz: float
                     ) -> NDArray[np.float64]:
    x = xyz.copy()
    t = np.arange(len(x))
    for k in range(3):
        bad = ~np.isfinite(x[:, k])
        if bad.all():
            raise ValueError("a cluster marker is missing in every frame")
        x[bad, k] = np.interp(t[bad], t[~bad], x[~bad, k])
    b, a = butter(2, cutoff_hz / (rate_hz / 2))
    return filtfilt(b, a, x, axis=0)


def segment_motion(trial: Trial, segment: str, *, rate_hz: float = IMU_RATE_HZ,
                   cutoff_hz: float = MARKER_CUTOFF_HZ
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Orientation relative to standing (n, 3, 3) and cluster centroid (n, 3; m) of one
    segment at ``rate_hz``, trial time ``k / rate_hz``."""
    names = SEGMENT_MARKERS[segment]
    src = trial.marker_rate_hz
    n_src = len(trial.markers[names[0]])
    t_src = np.arange(n_src) / src
    t = np.arange(int((n_src - 1) / src * rate_hz) + 1) / rate_hz
    cur = np.stack([CubicSpline(t_src, _fill_and_filter(trial.markers[m], src, cutoff_hz))(t)
                    for m in names], axis=1)
    ref = np.stack([trial.static[m] for m in names])
    return kabsch(ref, cur), cur.mean(axis=1)


# --- virtual sensors -----------------------------------------------------------------------
@dataclass(frozen=True)
class SensorModel:
    """Sensor imperfections: white noise (rms), constant bias (drawn uniformly within
    ± the limit per axis) and strap misalignment (a rotation of this many degrees about a
    random axis). Defaults are those of a consumer MEMS IMU strapped by hand."""

    gyro_noise_dps: float = 0.3
    acc_noise_mps2: float = 0.05
    gyro_bias_dps: float = 1.0
    acc_bias_mps2: float = 0.1
    misalignment_deg: float = 4.0


def _with_standing(rot: NDArray[np.float64], pos: NDArray[np.float64], rate_hz: float,
                   standing_s: float, blend_s: float
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Prepend ``standing_s`` of the static pose and a smooth ``blend_s`` into frame 0
    (orientation by slerp, velocity ramped up to the run's, both with zero rate at the start)."""
    n_st, n_bl = round(standing_s * rate_hz), round(blend_s * rate_hz)
    u = np.arange(n_bl) / n_bl
    s = u * u * u * (10 - 15 * u + 6 * u * u)  # smootherstep: zero speed and acceleration
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([np.eye(3), rot[0]])))
    r_bl = slerp(s).as_matrix()
    # position: the velocity ramps up with the same smootherstep to the run's first velocity,
    # p = p0 − v0·T·(½ − S(u)) with S' = s, so the accelerometer sees no spike at the junction
    v0 = (pos[1] - pos[0]) * rate_hz
    big_s = u ** 6 - 3 * u ** 5 + 2.5 * u ** 4
    p_bl = pos[0] - v0 * blend_s * (0.5 - big_s)[:, None]
    return (np.concatenate([np.repeat(np.eye(3)[None], n_st, 0), r_bl, rot]),
            np.concatenate([np.repeat(p_bl[:1], n_st, 0), p_bl, pos]))


def imu_from_motion(rot: NDArray[np.float64], pos: NDArray[np.float64], rate_hz: float, *,
                    misalignment: NDArray[np.float64], gyro_bias_dps: NDArray[np.float64],
                    acc_bias_mps2: NDArray[np.float64], model: SensorModel,
                    rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Accelerometer (m/s²) and gyroscope (deg/s) in the sensor frame of a sensor whose
    frame is the segment frame turned by ``misalignment`` (sensor → segment)."""
    r_s = rot @ misalignment  # sensor → world
    dt = 1.0 / rate_hz
    rel = np.einsum("nji,njk->nik", r_s[:-2], r_s[2:])
    w = Rotation.from_matrix(rel).as_rotvec() / (2 * dt)
    w = np.concatenate([w[:1], w, w[-1:]])
    acc_w = np.gradient(np.gradient(pos, dt, axis=0), dt, axis=0) + np.array([0, G_MPS2, 0])
    acc = np.einsum("nji,nj->ni", r_s, acc_w)
    n = len(rot)
    acc = acc + acc_bias_mps2 + rng.normal(0, model.acc_noise_mps2, (n, 3))
    gyr = np.degrees(w) + gyro_bias_dps + rng.normal(0, model.gyro_noise_dps, (n, 3))
    return acc, gyr


@dataclass(frozen=True)
class VirtualSession:
    """Virtual IMUs and the truth on one session time base (s).

    ``imus`` per segment (mounting: identity, the nominal one; the real one is off by
    ``misalignment_deg``); ``standing`` the period to calibrate on; ``contacts`` from the force
    plate; ``hip_flexion_deg``/``pelvic_tilt_deg`` the marker truth sampled at ``time_s``.
    """

    imus: dict[str, ImuData]
    standing: tuple[float, float]
    contacts: list[Contact]
    time_s: NDArray[np.float64]
    hip_flexion_deg: dict[str, NDArray[np.float64]]
    pelvic_tilt_deg: NDArray[np.float64]
    misalignment_deg: dict[str, float]
    running_from_s: float


def virtual_session(trial: Trial, *, seed: int = 0, model: SensorModel | None = None,
                    segments: tuple[str, ...] = tuple(SEGMENT_MARKERS),
                    rate_hz: float = IMU_RATE_HZ, standing_s: float = STANDING_S,
                    blend_s: float = BLEND_S, cutoff_hz: float = MARKER_CUTOFF_HZ
                    ) -> VirtualSession:
    """Virtual IMUs on ``segments`` and the force-plate and marker truth of ``trial``."""
    model = model or SensorModel()
    rng = np.random.default_rng(seed)
    offset = standing_s + blend_s
    imus: dict[str, ImuData] = {}
    rots: dict[str, NDArray[np.float64]] = {}
    mis_deg: dict[str, float] = {}
    for seg in segments:
        rot, pos = segment_motion(trial, seg, rate_hz=rate_hz, cutoff_hz=cutoff_hz)
        rots[seg] = rot
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        mis = Rotation.from_rotvec(np.radians(model.misalignment_deg) * axis).as_matrix()
        mis_deg[seg] = model.misalignment_deg
        r_all, p_all = _with_standing(rot, pos, rate_hz, standing_s, blend_s)
        acc, gyr = imu_from_motion(
            r_all, p_all, rate_hz, misalignment=mis,
            gyro_bias_dps=rng.uniform(-1, 1, 3) * model.gyro_bias_dps,
            acc_bias_mps2=rng.uniform(-1, 1, 3) * model.acc_bias_mps2, model=model, rng=rng)
        imus[seg] = ImuData(seg, acc, gyr, rate_hz, 0.0, np.eye(3))
    n = len(next(iter(rots.values())))
    hip, tilt = hip_and_tilt(rots) if "pelvis" in rots else ({}, np.full(n, np.nan))
    contacts = [Contact(c.side, c.ic_s + offset, c.toe_off_s + offset)
                for c in assign_feet(trial, contacts_from_force(trial.force_n,
                                                                trial.force_rate_hz))]
    return VirtualSession(imus, (0.5, standing_s - 0.5), contacts,
                          offset + np.arange(n) / rate_hz, hip, tilt, mis_deg, offset)
