"""IMU orientation by sensor fusion: gyro integration with a gravity-referenced tilt correction.

Quaternions are ``(w, x, y, z)`` arrays (Hamilton convention) of the rotation taking
sensor-frame vectors to the world frame (x forward, y up, z right; gravity along −y, so an
accelerometer at rest reads +g along +y). Heading about the vertical is not observable from
gravity: it is whatever the initial orientation says, plus gyro drift about the vertical
(:mod:`.imu` re-references it).

The filter is a complementary filter written so that numpy does the per-sample work:

* the gyroscope (bias removed, trapezoidal rule) is integrated within fixed blocks of
  ``block_s`` seconds by a segmented parallel prefix product of quaternions;
* once per block the accelerometer corrects tilt: the block's specific force, rotated to the
  world frame, enters an exponential average over the last ``smoothing_s`` seconds (several
  strides); that average is compared with the reference (the vertical, or one learned); a
  rotation about the horizontal axis between them, scaled by ``block / time_constant_s``, is
  applied from the next block on (a proportional term, plus an optional integral term that
  tracks slow bias drift in the world frame).

Why a plain (unweighted) mean over several strides: on a treadmill every sensor moves
periodically, so its world-frame linear acceleration averages to zero over whole strides —
whatever its lever arm, the centripetal and tangential terms and the speed — and the mean
specific force is exactly g, vertical. Weighting samples by how close ``|acc|`` is to g
(``acc_tolerance_mps2``) breaks that: the down-weighted swing phase carries the sensor's
lever-arm acceleration, so the weighted mean of a thigh sensor tilts forward by 5–9°, by an
amount that changes with speed. Correcting from each 0.25 s block alone follows the
within-stride acceleration instead: the tilt then wobbles by about ``v / (g · time_constant)``
(v, the sensor's velocity relative to the runner, ~2 m/s at a thigh), in step with the stride.

The correction of block *k* uses samples of blocks < *k* only, so the filter is causal and the
offline function :func:`imu_orientation` is :class:`ImuOrientationFilter` run over the whole
recording: the review output equals the live output. Averaging the world-frame specific force
over many strides cancels the linear acceleration of a periodic running motion, which is why
the correction is slow (seconds) rather than a per-sample accelerometer tilt.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

G_MPS2 = 9.80665
#: Default averaging time (s) of the specific force behind the tilt correction.
SMOOTHING_S: float | None = 2.0
#: Default time constant (s) of the tilt correction.
TIME_CONSTANT_S = 4.0
#: Default width of the weight on ``|acc| − g`` (m/s²): inf = plain mean (see the filter).
ACC_TOLERANCE_MPS2 = math.inf

__all__ = [
    "ACC_TOLERANCE_MPS2",
    "G_MPS2",
    "SMOOTHING_S",
    "TIME_CONSTANT_S",
    "ImuOrientationFilter",
    "imu_filter_resume",
    "imu_gyro_bias",
    "imu_orientation",
    "imu_tilt_quaternion",
    "quat_from_rotvec",
    "quat_multiply",
    "quat_rotate",
    "quat_to_matrix",
]


# --- quaternion helpers (w, x, y, z), vectorised over leading axes -------------------------
def quat_multiply(p: NDArray[np.float64], q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Hamilton product ``p ⊗ q`` (apply ``q`` first, then ``p``), shape (..., 4)."""
    pw, px, py, pz = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    qw, qx, qy, qz = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(np.broadcast_shapes(np.shape(p), np.shape(q)),
                   dtype=np.result_type(p, q))
    out[..., 0] = pw * qw - px * qx - py * qy - pz * qz
    out[..., 1] = pw * qx + px * qw + py * qz - pz * qy
    out[..., 2] = pw * qy - px * qz + py * qw + pz * qx
    out[..., 3] = pw * qz + px * qy - py * qx + pz * qw
    return out


def quat_from_rotvec(rotvec_rad: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit quaternions from rotation vectors (rad), shape (..., 3) → (..., 4)."""
    angle = np.linalg.norm(rotvec_rad, axis=-1)
    half = 0.5 * angle
    # sin(a/2)/a, with its series near 0
    k = np.where(angle > 1e-8, np.sin(half) / np.where(angle > 1e-8, angle, 1.0),
                 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half)[..., None], rotvec_rad * k[..., None]], axis=-1)


def _cross(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.cross`` of (..., 3) vectors with the same arithmetic, without its per-call
    overhead (moveaxis, broadcasting checks: most of its cost on a live batch)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b))
    out[..., 0] = a1 * b2 - a2 * b1
    out[..., 1] = a2 * b0 - a0 * b2
    out[..., 2] = a0 * b1 - a1 * b0
    return out


def quat_rotate(q: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4)."""
    q, v = np.asarray(q), np.asarray(v)
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def quat_to_matrix(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4)."""
    q = np.asarray(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty((*q.shape[:-1], 3, 3), dtype=np.result_type(q, 1.0))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - w * z)
    out[..., 0, 2] = 2 * (x * z + w * y)
    out[..., 1, 0] = 2 * (x * y + w * z)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - w * x)
    out[..., 2, 0] = 2 * (x * z - w * y)
    out[..., 2, 1] = 2 * (y * z + w * x)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def _normalize(q: NDArray[np.float64]) -> NDArray[np.float64]:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def imu_tilt_quaternion(acc_mps2: ArrayLike) -> NDArray[np.float64]:
    """Smallest rotation taking the measured specific-force direction to world up (+y).

    Parameters
    ----------
    acc_mps2 : array_like, shape (3,)
        Specific force at rest in the sensor frame (m/s²), e.g. a mean over a still period.

    Returns
    -------
    ndarray, shape (4,)
        Sensor → world quaternion with no rotation about the vertical beyond what tilt needs.
    """
    a = np.asarray(acc_mps2, dtype=float)
    norm = np.linalg.norm(a)
    if not norm > 0:
        raise ValueError("cannot find the vertical: the accelerometer reads zero")
    a = a / norm
    up = np.array([0.0, 1.0, 0.0])
    axis = np.cross(a, up)
    s, c = np.linalg.norm(axis), float(a @ up)
    if s < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0]) if c > 0 else np.array([0.0, 1.0, 0.0, 0.0])
    return quat_from_rotvec(axis / s * math.atan2(s, c))


def imu_gyro_bias(gyr_dps: ArrayLike, rate_hz: float, *, start_s: float = 0.0,
                  window: tuple[float, float] = (0.0, 5.0)) -> NDArray[np.float64]:
    """Gyroscope bias (deg/s, sensor frame) as the mean over a still period.

    Parameters
    ----------
    gyr_dps : array_like, shape (n, 3)
        Angular velocity in the sensor frame (deg/s).
    rate_hz : float
        Sampling rate (Hz).
    start_s : float
        Session time of sample 0 (s).
    window : (float, float)
        Still period (session seconds, start inclusive, end exclusive).

    Returns
    -------
    ndarray, shape (3,)
        Mean angular velocity over the window (deg/s).

    Raises
    ------
    ValueError
        When the window holds no sample.
    """
    g = np.asarray(gyr_dps, dtype=float)
    i0 = max(0, math.ceil((window[0] - start_s) * rate_hz - 1e-9))
    i1 = min(len(g), math.ceil((window[1] - start_s) * rate_hz - 1e-9))
    if i1 <= i0:
        raise ValueError(f"no gyroscope samples in the still period {window[0]:g}–{window[1]:g} s "
                         f"(data covers {start_s:g}–{start_s + len(g) / rate_hz:g} s)")
    return g[i0:i1].mean(axis=0)


class ImuOrientationFilter:
    """Causal orientation filter whose state carries across blocks of any size.

    Feeding a recording in any chunking gives the same quaternions (to rounding) as one call:
    corrections are applied at fixed sample counts, never at chunk boundaries.

    Parameters
    ----------
    rate_hz : float
        Sampling rate (Hz).
    initial : array_like, shape (4,), optional
        Sensor → world quaternion at the first sample. Default: tilt from the first
        accelerometer sample, no heading.
    time_constant_s : float
        Time constant of the accelerometer tilt correction (s). Long enough to average many
        strides, short against gyro drift.
    acc_tolerance_mps2 : float
        Width of the Gaussian weight on ``|acc| − g`` (m/s²); ``inf`` (default) weights all
        samples alike, which keeps the mean of a periodic motion exactly vertical (see the
        module docstring); a finite width suits a sensor that is not moving periodically.
    bias_dps : array_like, shape (3,), optional
        Gyroscope bias to remove (deg/s, sensor frame), e.g. from :func:`imu_gyro_bias`.
    bias_time_constant_s : float, optional
        Enables slow tracking of the remaining drift: an integral term with this time constant
        (s) on the world-frame tilt correction. None (default) = proportional only.
    block_s : float
        Period of the tilt correction (s).
    reference_window_s : (float, float), optional
        Learn the tilt reference instead of assuming it (s from the first sample): until the
        window ends the gyroscope alone integrates (no correction), and the mean world-frame
        specific force over the window becomes the direction the correction holds from then
        on. Over whole strides that mean is vertical in theory; a reference learned while the
        bias-calibrated gyro is still accurate (the first seconds of running) absorbs what
        tilts it in practice. The window's blocks are weighted by a Hann taper: a plain mean
        over a window that does not hold whole strides is off by the sensor's velocity change
        over the window divided by its length (about 1° at a thigh over 10 s). Keep the learned
        reference near vertical (plain mean, ``acc_tolerance_mps2=inf``): its horizontal part
        is fixed in the filter's world frame, whose heading drifts with the gyroscope.
        Default: the vertical.
    smoothing_s : float, optional
        Time constant (s) of the exponential average of the world-frame specific force that
        the correction compares with the reference; spans several strides. None: each block
        alone (the former behaviour). Keep it at most half ``time_constant_s``.
    """

    def __init__(self, rate_hz: float, *, initial: ArrayLike | None = None,
                 time_constant_s: float = TIME_CONSTANT_S,
                 acc_tolerance_mps2: float = ACC_TOLERANCE_MPS2,
                 bias_dps: ArrayLike | None = None, bias_time_constant_s: float | None = None,
                 block_s: float = 0.25,
                 reference_window_s: tuple[float, float] | None = None,
                 smoothing_s: float | None = SMOOTHING_S) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        if not time_constant_s > 0:
            raise ValueError(f"time_constant_s must be positive, got {time_constant_s!r}")
        self.rate_hz = float(rate_hz)
        self.time_constant_s = float(time_constant_s)
        self.acc_tolerance_mps2 = float(acc_tolerance_mps2)
        self.bias_dps = (np.zeros(3) if bias_dps is None
                         else np.asarray(bias_dps, dtype=float).reshape(3))
        self.bias_time_constant_s = bias_time_constant_s
        self.block_samples = max(1, round(block_s * rate_hz))
        self._ref = np.array([0.0, 1.0, 0.0])
        self._learn = (0, 0)  # blocks [k0, k1) learn the reference; no correction before k1
        if reference_window_s is not None:
            b = self.block_samples / self.rate_hz
            k0 = math.ceil(reference_window_s[0] / b - 1e-9)
            k1 = math.floor(reference_window_s[1] / b + 1e-9)
            if k1 <= k0:
                raise ValueError(f"reference_window_s {reference_window_s} holds no whole "
                                 f"{b:g} s correction block")
            self._learn = (k0, k1)
        self._learn_sum = np.zeros(3)
        self._n_blocks = 0  # completed blocks
        self._q_start = None if initial is None else _normalize(np.asarray(initial, float))
        self._q_part = np.array([1.0, 0.0, 0.0, 0.0])  # product so far in the open block
        self._m_part = np.zeros(3)  # weighted specific force so far, open-block frame
        self._w_part = 0.0
        self._integral = np.zeros(3)  # world-frame drift rate (rad/s) of the integral term
        b_s = self.block_samples / self.rate_hz
        self.smoothing_s = smoothing_s
        self._alpha = 1.0 if not smoothing_s else 1.0 - math.exp(-b_s / smoothing_s)
        self._smooth = [0.0, 0.0, 0.0, 0.0, 0.0]  # EMA of Σw·f (world, g), of Σw, of 1
        self._prev_omega: NDArray[np.float64] | None = None
        self._last: NDArray[np.float64] | None = None
        self.n_samples = 0

    @property
    def orientation(self) -> NDArray[np.float64] | None:
        """Sensor → world quaternion of the last sample fed (None before any)."""
        return None if self._last is None else self._last.copy()

    def update(self, acc_mps2: ArrayLike, gyr_dps: ArrayLike) -> NDArray[np.float64]:
        """Feed the next samples; return their orientations.

        Parameters
        ----------
        acc_mps2, gyr_dps : array_like, shape (n, 3)
            Specific force (m/s²) and angular velocity (deg/s) in the sensor frame.

        Returns
        -------
        ndarray, shape (n, 4)
            Sensor → world quaternion at each sample.
        """
        acc = np.asarray(acc_mps2, dtype=float).reshape(-1, 3)
        gyr = np.asarray(gyr_dps, dtype=float).reshape(-1, 3)
        if len(acc) != len(gyr):
            raise ValueError(f"acc has {len(acc)} samples but gyr has {len(gyr)}")
        n = len(acc)
        if n == 0:
            return np.zeros((0, 4))
        if self._q_start is None:
            self._q_start = imu_tilt_quaternion(acc[0])
        bsz, dt = self.block_samples, 1.0 / self.rate_hz
        omega = np.deg2rad(gyr - self.bias_dps)
        prev = np.empty_like(omega)
        prev[1:] = omega[:-1]
        prev[0] = omega[0] if self._prev_omega is None else self._prev_omega
        steps = quat_from_rotvec(0.5 * (prev + omega) * dt)
        if self.n_samples == 0:
            steps[0] = (1.0, 0.0, 0.0, 0.0)  # the initial orientation is at sample 0
        self._prev_omega = omega[-1].copy()

        # correction blocks met by this chunk: [start, end) sample ranges (plain ints: a live
        # batch spans one or two blocks, where numpy calls would cost more than the work)
        n0 = self.n_samples
        starts = [0, *range(bsz - n0 % bsz, n, bsz)]
        ends = [*starts[1:], n]
        raw = _block_prefix_product(steps, n0 % bsz, bsz, self._q_part)
        prod = _normalize(raw)

        f_world = quat_rotate(prod, acc)
        if np.isfinite(self.acc_tolerance_mps2):
            amag = np.linalg.norm(acc, axis=1)
            w = np.exp(-0.5 * ((amag - G_MPS2) / self.acc_tolerance_mps2) ** 2)
            m = np.add.reduceat(w[:, None] * f_world, starts, axis=0)
            wsum = np.add.reduceat(w, starts)
        else:  # unit weights: the same sums without multiplying by ones
            m = np.add.reduceat(f_world, starts, axis=0)
            wsum = np.array([float(e - a) for a, e in zip(starts, ends, strict=True)])
        m[0] += self._m_part
        wsum[0] += self._w_part

        q_starts = np.empty((len(starts), 4))
        q = tuple(self._q_start.tolist())
        ends_q, m_l, w_l = prod[[e - 1 for e in ends]].tolist(), m.tolist(), wsum.tolist()
        for g, end in enumerate(ends):
            q_starts[g] = q
            if (n0 + end) % bsz:  # the chunk ends inside this block: keep it open
                self._q_part, self._m_part, self._w_part = raw[end - 1].copy(), m[g], w_l[g]
                break
            q = self._corrected(q, tuple(ends_q[g]), tuple(m_l[g]), w_l[g], bsz * dt)
        else:
            self._q_part = np.array([1.0, 0.0, 0.0, 0.0])
            self._m_part, self._w_part = np.zeros(3), 0.0
        self._q_start = np.array(q)
        self.n_samples += n
        if len(starts) == 1:
            out = _normalize(quat_multiply(q_starts[0], prod))
        else:
            lengths = [e - a for a, e in zip(starts, ends, strict=True)]
            out = _normalize(quat_multiply(np.repeat(q_starts, lengths, axis=0), prod))
        self._last = out[-1].copy()
        return out

    @property
    def reference_learned(self) -> bool:
        """Whether the tilt reference is final (learned, or the vertical when none is)."""
        return self._n_blocks >= self._learn[1]

    @property
    def reference(self) -> NDArray[np.float64]:
        """Unit world-frame direction the mean specific force is held to (learned or +y)."""
        return self._ref.copy()

    def _corrected(self, q_start: tuple[float, ...], q_block: tuple[float, ...],
                   m_block: tuple[float, ...], w_block: float, block_dt_s: float
                   ) -> tuple[float, ...]:
        """Orientation at the start of the next block, tilt-corrected (plain floats: this
        runs once per block, where numpy's per-call overhead would dominate)."""
        k = self._n_blocks
        self._n_blocks += 1
        q_next = _qmul(q_start, q_block)
        # exponential average over the last strides of the world-frame specific force
        # (block sums, in g per sample) and of the weights: causal, linear in the samples
        a = self._alpha
        sx, sy, sz, sw, s1 = self._smooth
        fx, fy, fz = _qrot(q_start, m_block)
        n_b = self.block_samples * G_MPS2
        self._smooth = [sx + a * (fx / n_b - sx), sy + a * (fy / n_b - sy),
                        sz + a * (fz / n_b - sz),
                        sw + a * (w_block / self.block_samples - sw), s1 + a * (1.0 - s1)]
        k0, k1 = self._learn
        if k < k1:  # still learning the reference: gyro only
            if k >= k0:
                # Hann taper over the window: a plain mean over a window that does not hold
                # whole strides is off by (v_end − v_start) / window (the sensor's velocity
                # change, metres per second at a thigh); tapering the ends cancels it
                taper = math.sin(math.pi * (k - k0 + 0.5) / (k1 - k0)) ** 2
                self._learn_sum += taper * np.asarray(_qrot(q_start, m_block))
                if k == k1 - 1 and float(self._learn_sum @ self._learn_sum) > 0:
                    self._ref = self._learn_sum / np.linalg.norm(self._learn_sum)
            return _qunit(q_next)
        ix, iy, iz = self._integral
        sx, sy, sz, sw, s1 = self._smooth
        if sw > 0:
            # mean specific force of the last strides (world, in g): a periodic motion has no
            # mean linear acceleration, so it is g whatever the lever arm and the speed;
            # averaging over several strides keeps the correction from following the
            # within-stride accelerations (which would tilt the estimate by ~ v / (g·τ))
            vx, vy, vz = sx / sw, sy / sw, sz / sw
            rx, ry, rz = self._ref
            # v × reference, horizontal part only: tilt, never heading
            ex, ez = vy * rz - vz * ry, vx * ry - vy * rx
            gain = sw / s1 / self.time_constant_s
            cx, cz = ix + gain * ex, iz + gain * ez
            if self.bias_time_constant_s:
                ki = gain * self.time_constant_s * block_dt_s / self.bias_time_constant_s**2
                self._integral = np.array([ix + ki * ex, iy, iz + ki * ez])
        else:
            cx, cz = ix, iz
        half = 0.5 * block_dt_s
        corr = _qunit((1.0, cx * half, iy * half, cz * half))  # small rotation (first order)
        return _qunit(_qmul(corr, q_next))


def _qmul(p: tuple[float, ...], q: tuple[float, ...]) -> tuple[float, ...]:
    pw, px, py, pz = p
    qw, qx, qy, qz = q
    return (pw * qw - px * qx - py * qy - pz * qz, pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx, pw * qz + px * qy - py * qx + pz * qw)


def _qrot(q: tuple[float, ...], v: tuple[float, ...]) -> tuple[float, float, float]:
    w, x, y, z = q
    vx, vy, vz = v
    tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
    return (vx + w * tx + y * tz - z * ty, vy + w * ty + z * tx - x * tz,
            vz + w * tz + x * ty - y * tx)


def _qunit(q: tuple[float, ...]) -> tuple[float, ...]:
    n = math.sqrt(sum(c * c for c in q))
    return tuple(c / n for c in q)


#: Up to this many blocks of samples, the prefix product folds in plain floats; beyond, the
#: vectorised form (one numpy call per position in a block) is cheaper.
_FOLD_MAX_BLOCKS = 8


def _fold_blocks(steps: NDArray[np.float64], offset: int, block: int,
                 q_part: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`_block_prefix_product` for a few blocks (live batches): a fold in plain floats
    (no per-call numpy overhead), restarting from the identity where a block starts. The same
    operations in the same order as :func:`quat_multiply` (the identity included), so it is
    bit-identical to the vectorised form."""
    w, x, y, z = (float(v) for v in q_part)
    folded = []
    for p, (sw, sx, sy, sz) in enumerate(steps.tolist(), start=offset):
        if p and not p % block:
            w, x, y, z = 1.0, 0.0, 0.0, 0.0
        w, x, y, z = (w * sw - x * sx - y * sy - z * sz, w * sx + x * sw + y * sz - z * sy,
                      w * sy - x * sz + y * sw + z * sx, w * sz + x * sy - y * sx + z * sw)
        folded.append((w, x, y, z))
    return np.array(folded, dtype=float).reshape(len(folded), 4)


def _block_prefix_product(steps: NDArray[np.float64], offset: int, block: int,
                          q_part: NDArray[np.float64]) -> NDArray[np.float64]:
    """Within each correction block, the running product ``q_part ⊗ s_a ⊗ … ⊗ s_i``.

    ``steps`` continue a stream whose current block already holds ``offset`` samples with
    running product ``q_part`` (identity when ``offset`` is 0); blocks are ``block`` samples.
    A left fold in sample order, vectorised across blocks (one quaternion product per position
    in a block, ``block`` numpy calls instead of one Python step per sample): the same products
    in the same order whatever the chunking, so feeding a recording in any pieces gives
    bit-identical results (multiplying by the identity padding is exact).
    """
    n = len(steps)
    total = offset + n
    n_blocks = -(-total // block)
    if n <= _FOLD_MAX_BLOCKS * block:
        return _fold_blocks(steps, offset, block, q_part)
    padded = np.empty((n_blocks * block, 4))
    padded[:offset] = (1.0, 0.0, 0.0, 0.0)
    padded[offset:total] = steps
    padded[total:] = (1.0, 0.0, 0.0, 0.0)
    grid = padded.reshape(n_blocks, block, 4)
    run = np.zeros((n_blocks, 4))
    run[:, 0] = 1.0
    run[0] = q_part
    for j in range(block):
        run = quat_multiply(run, grid[:, j])
        grid[:, j] = run
    return padded[offset:total]


def imu_orientation(acc_mps2: ArrayLike, gyr_dps: ArrayLike, rate_hz: float, *,
                    initial: ArrayLike | None = None, time_constant_s: float = TIME_CONSTANT_S,
                    acc_tolerance_mps2: float = ACC_TOLERANCE_MPS2,
                    bias_dps: ArrayLike | None = None,
                    bias_time_constant_s: float | None = None,
                    reference_window_s: tuple[float, float] | None = None
                    ) -> NDArray[np.float64]:
    """Sensor → world orientation of a whole recording (complementary filter).

    Identical to :class:`ImuOrientationFilter` fed the recording at once (see there and the
    module docstring for the parameters); the filter is causal, so review and live agree.

    Parameters
    ----------
    acc_mps2, gyr_dps : array_like, shape (n, 3)
        Specific force (m/s²) and angular velocity (deg/s) in the sensor frame.
    rate_hz : float
        Sampling rate (Hz).

    Returns
    -------
    ndarray, shape (n, 4)
        Unit quaternions (w, x, y, z), sensor → world.

    Examples
    --------
    >>> acc = np.tile([0.0, 9.80665, 0.0], (400, 1))
    >>> q = imu_orientation(acc, np.zeros((400, 3)), 200.0)
    >>> np.allclose(q[-1], [1, 0, 0, 0])
    True
    """
    filt = ImuOrientationFilter(rate_hz, initial=initial, time_constant_s=time_constant_s,
                                acc_tolerance_mps2=acc_tolerance_mps2, bias_dps=bias_dps,
                                bias_time_constant_s=bias_time_constant_s,
                                reference_window_s=reference_window_s)
    return filt.update(acc_mps2, gyr_dps)


def imu_filter_resume(filt: ImuOrientationFilter, initial: ArrayLike, *,
                      time_constant_s: float | None = None) -> ImuOrientationFilter:
    """A new filter that carries on after a gap in the samples, from a chosen orientation.

    Orientation cannot be integrated across missing samples, so after a gap the filter restarts
    from ``initial`` (a guess, e.g. the orientation one stride earlier), keeping what the old
    filter had learned: its bias, tilt reference and drift (integral) term. Added for the
    streaming engine (:mod:`.stream`); no existing behaviour depends on it.

    Parameters
    ----------
    filt : ImuOrientationFilter
        The filter that ran before the gap (left untouched).
    initial : array_like, shape (4,)
        Sensor → world quaternion at the first sample after the gap.
    time_constant_s : float, optional
        Tilt-correction time constant (s) of the new filter; default that of ``filt``. A
        shorter one pulls a poor ``initial`` guess in faster.

    Returns
    -------
    ImuOrientationFilter
        Correcting from its first block on (no reference-learning window).
    """
    tc = filt.time_constant_s if time_constant_s is None else time_constant_s
    # the averaging must stay short against the loop's time constant (damping ≥ 0.7)
    smoothing = filt.smoothing_s and min(filt.smoothing_s, 0.5 * tc)
    new = ImuOrientationFilter(
        filt.rate_hz, initial=initial, time_constant_s=tc,
        acc_tolerance_mps2=filt.acc_tolerance_mps2, bias_dps=filt.bias_dps,
        bias_time_constant_s=filt.bias_time_constant_s,
        block_s=filt.block_samples / filt.rate_hz, smoothing_s=smoothing)
    new._ref = filt.reference
    new._integral = filt._integral.copy()
    return new
