"""Streaming kinematics for :mod:`.stream`: one IMU segment's causal chain, and a causal
thigh-based IC detector.

A :class:`SegmentStream` turns one IMU's blocks into the same sagittal angle and rate as
:func:`.imu.kinematics_from_imu`, causally:

1. **static calibration** on the standing period (:func:`.imu_calibration.imu_calibrate`
   without the functional part): gravity, gyro bias, heading from the known mounting;
2. **orientation** by :class:`.imu_fusion.ImuOrientationFilter` from the standing period on,
   with the same settings and the same learned tilt-reference window as offline (the filter is
   causal, so this part is identical);
3. **functional calibration** once, after ``functional_s`` seconds of running, on that window
   (offline uses the whole run). It only turns the segment axes about the vertical, and the
   filter commutes with a rotation about the world vertical, so the calibrated orientation is
   ``Rᵀ · R_static · R`` with ``R`` the heading change: no filter needs re-running;
4. **heading re-reference**: a *trailing* mean of the heading over ``heading_window_s`` (the
   offline chain uses a centred one). The sagittal angle depends on heading to second order
   (through the segment's small frontal tilt), so the lag costs hundredths of a degree.

Samples are addressed by their absolute index from the segment's first sample (``start_s``).
Pure numpy: no file, network or UI imports.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import find_peaks

from .data import ImuData
from .gait import MIN_IMPACT_RISE_MPS2, impact_ic
from .imu import BIAS_TIME_CONSTANT_S, HEADING_WINDOW_S, REFERENCE_DELAY_S, REFERENCE_S
from .imu import _matrix_to_quat as matrix_to_quat
from .imu_calibration import (
    ImuCalibration,
    imu_calibrate,
    imu_calibrate_functional,
    imu_window,
)
from .imu_fusion import ImuOrientationFilter, imu_filter_resume, quat_to_matrix

__all__ = ["SampleBuffer", "SegmentStream", "ThighEventDetector"]

#: Resuming mid-run: share of the recovery period run with the fast tilt correction.
RESUME_FAST_FRACTION = 0.25


class SampleBuffer:
    """Rolling store of samples addressed by absolute index (amortised O(1) appends).

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample (``()`` for scalars, ``(3,)``, ``(3, 3)`` …).
    start : int
        Absolute index of the first sample to be appended.
    """

    def __init__(self, shape: tuple[int, ...], start: int = 0) -> None:
        self.shape = shape
        self.start = start
        self._data = np.empty((256, *shape))
        self._n = 0

    @property
    def end(self) -> int:
        """Absolute index one past the last sample."""
        return self.start + self._n

    def append(self, x: ArrayLike) -> None:
        x = np.asarray(x, dtype=float).reshape(-1, *self.shape)
        need = self._n + len(x)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), *self.shape))
            grown[:self._n] = self._data[:self._n]
            self._data = grown
        self._data[self._n:need] = x
        self._n = need

    def fill(self, n: int, value: float = math.nan) -> None:
        """Append ``n`` samples of ``value`` (a gap)."""
        if n > 0:
            self.append(np.full((n, *self.shape), value))

    def get(self, i0: int, i1: int) -> NDArray[np.float64]:
        """Samples ``[i0, i1)`` (absolute), clipped to what is stored (a view)."""
        a = min(max(i0 - self.start, 0), self._n)
        b = min(max(i1 - self.start, a), self._n)
        return self._data[a:b]

    def keep_from(self, i0: int) -> None:
        """Forget samples before absolute index ``i0``."""
        drop = min(max(0, i0 - self.start), self._n)
        if drop and drop * 2 >= self._n:  # compact only when it pays
            self._data[: self._n - drop] = self._data[drop:self._n].copy()
            self._n -= drop
            self.start += drop

    def reset(self, start: int) -> None:
        """Drop everything; the next sample appended has index ``start``."""
        self.start, self._n = start, 0


class SegmentStream:
    """The causal IMU chain of one segment (see the module docstring).

    Parameters
    ----------
    segment : str
        ``pelvis``, ``thigh_l`` …
    rate_hz : float
        Sampling rate (Hz).
    mounting : array_like, shape (3, 3)
        Known sensor → segment rotation.
    start_s : float
        Session time of the segment's first sample (s).
    keep_s : float
        History kept once calibrated (s).
    heading_window_s : float
        Trailing heading-reference window (s).
    recovery_s, recovery_time_constant_s : float
        After a gap: how long the fusion runs with the faster tilt correction (s), and its
        time constant (s).
    """

    def __init__(self, segment: str, rate_hz: float, mounting: ArrayLike, start_s: float, *,
                 keep_s: float = 8.0, heading_window_s: float = HEADING_WINDOW_S,
                 recovery_s: float = 8.0, recovery_time_constant_s: float = 2.0) -> None:
        self.segment = segment
        self.rate_hz = float(rate_hz)
        self.mounting = np.asarray(mounting, dtype=float)
        self.start_s = float(start_s)
        self.keep = round(keep_s * rate_hz)
        self.acc = SampleBuffer((3,))
        self.gyr = SampleBuffer((3,))
        self.rot = SampleBuffer((3, 3))  # segment → world, static axes (heading not fixed)
        self.angle = SampleBuffer(())  # final sagittal angle (deg)
        self.rate = SampleBuffer(())  # final sagittal rate (deg/s)
        self.axial = SampleBuffer(())  # specific force along the long axis (m/s²)
        self.static: ImuCalibration | None = None
        self.functional: ImuCalibration | None = None
        self.standing_rotation: NDArray[np.float64] | None = None  # h
        self._filter: ImuOrientationFilter | None = None
        self._turn = np.eye(3)  # R: static → functional axes
        self._half = max(1, round(heading_window_s * rate_hz / 2))
        self._head_hist = np.zeros(0)
        self._head_last: float | None = None
        self._theta_last: float | None = None
        self._resets: list[int] = []  # absolute indices where the heading state restarts
        self.gaps: list[tuple[int, int]] = []  # [first missing, first after) … recovering
        self._recovery = round(recovery_s * rate_hz)
        self._recovery_tc = recovery_time_constant_s
        self._normal_tc = 8.0
        self._slow_from: int | None = None  # index where the normal time constant returns
        self._forget_drift = False  # at _slow_from: drop the drift term (resume, not gaps)

    # --- time ---------------------------------------------------------------------------------
    def index(self, t_s: float) -> int:
        """Absolute index of the sample at or after session time ``t_s``."""
        return math.ceil((t_s - self.start_s) * self.rate_hz - 1e-9)

    def time(self, i: int | NDArray[np.int64]) -> float | NDArray[np.float64]:
        return self.start_s + np.asarray(i) / self.rate_hz if not isinstance(i, int) \
            else self.start_s + i / self.rate_hz

    @property
    def end_s(self) -> float:
        """Session time one sample past the last raw sample."""
        return float(self.time(self.acc.end))

    @property
    def final_end(self) -> int:
        return self.angle.end

    # --- input --------------------------------------------------------------------------------
    def append(self, acc: NDArray[np.float64], gyr: NDArray[np.float64]) -> None:
        self.acc.append(acc)
        self.gyr.append(gyr)

    def gap(self, n_missing: int, period_s: float | None) -> None:
        """``n_missing`` samples will not come; the next sample is after them.

        The orientation restarts from the orientation one stride (``period_s``) before the
        gap's end when that is stored (running is periodic), else from the last one.
        """
        if n_missing <= 0:
            return
        self.process()
        i_gap = self.acc.end
        i_next = i_gap + n_missing
        self.acc.fill(n_missing)
        self.gyr.fill(n_missing)
        self.gaps.append((i_gap, i_next + self._recovery))
        self._resets.append(i_next)
        if self._filter is None:
            return
        self.rot.fill(n_missing)
        guess = None
        if period_s:
            k = i_next - round(period_s * self.rate_hz)
            while k >= i_gap:
                k -= round(period_s * self.rate_hz)
            past = self.rot.get(k, k + 1)
            if len(past) and np.isfinite(past).all():
                guess = self._sensor_quat(past[0])
        if guess is None:
            guess = self._filter.orientation
        self._filter = imu_filter_resume(self._filter, guess,
                                         time_constant_s=self._recovery_tc)
        self._slow_from = i_next + self._recovery

    def recovering(self, i0: int, i1: int) -> bool:
        """Whether samples ``[i0, i1)`` touch a gap or its recovery period."""
        return any(a < i1 and i0 < b for a, b in self.gaps)

    # --- calibration --------------------------------------------------------------------------
    def _imu(self, i0: int, i1: int) -> ImuData:
        acc, gyr = self.acc.get(i0, i1), self.gyr.get(i0, i1)
        ok = np.isfinite(acc).all(axis=1) & np.isfinite(gyr).all(axis=1)
        return ImuData(self.segment, acc[ok], gyr[ok], self.rate_hz,
                       float(self.time(max(i0, self.acc.start))), self.mounting)

    def calibrate_static(self, standing: tuple[float, float], *,
                         stored: dict | None = None, resume: dict | None = None) -> None:
        """Static calibration (or a stored one) and the start of the orientation filter.

        ``resume`` (with ``stored``; :meth:`running_state`): the segment is already running.
        The filter keeps the stored tilt reference (no learning window) and starts from the
        standing pose with the fast correction of a gap recovery; samples of that recovery
        count as recovering (no kinematic metrics), as after a gap.
        Raises ValueError (from :func:`imu_calibrate`) when the segment was not still.
        """
        if stored is not None:
            c = np.asarray(stored["segment_to_sensor"], float)
            bias = np.asarray(stored["gyro_bias_dps"], float)
            self.static = ImuCalibration(self.segment, c, bias, np.zeros(3), "stored")
            self.standing_rotation = np.asarray(stored.get("standing_rotation", np.eye(3)),
                                                float)
            if stored.get("functional_segment_to_sensor") is not None:
                cf = np.asarray(stored["functional_segment_to_sensor"], float)
                self.functional = ImuCalibration(self.segment, cf, bias, np.zeros(3),
                                                 "stored")
                self._turn = c.T @ cf
            i0 = self.acc.start
        else:
            imu = self._imu(self.acc.start, self.acc.end)
            self.static = imu_calibrate(imu, standing=standing, functional=False)
            i0 = self.acc.start + imu_window(len(imu.acc_mps2), self.rate_hz, imu.start_s,
                                             standing).start
        t0 = float(self.time(i0))
        r0 = standing[1] + REFERENCE_DELAY_S
        ref = (r0 - t0, r0 + REFERENCE_S - t0)
        initial = matrix_to_quat(self.static.segment_to_sensor.T)
        self._filter = ImuOrientationFilter(
            self.rate_hz, initial=initial, bias_dps=self.static.gyro_bias_dps,
            bias_time_constant_s=BIAS_TIME_CONSTANT_S,
            reference_window_s=ref if resume is None else None)
        self._normal_tc = self._filter.time_constant_s
        if resume is not None:
            if stored is None:
                raise ValueError("resuming needs a stored calibration")
            learned = resume.get("tilt_reference")
            if learned is not None:
                v = np.asarray(learned, float).reshape(3)
                self._filter._ref = v / np.linalg.norm(v)
            self._filter = imu_filter_resume(self._filter, initial,
                                             time_constant_s=self._recovery_tc)
            self.gaps.append((i0, i0 + self._recovery))
            # fast correction only while the error is large: it leaves a tilt wobble that
            # the normal correction must remove before the recovery ends
            self._slow_from = i0 + round(self._recovery * RESUME_FAST_FRACTION)
            # the standing pose is a poor guess mid-stride: the drift (integral) term winds up
            # on the large initial error; it is forgotten when the recovery ends
            self._forget_drift = True
        self.rot.reset(i0)
        self.angle.reset(i0)
        self.rate.reset(i0)
        self.axial.reset(i0)
        self._resets.append(i0)
        if stored is None:
            self._run_filter()
            sl = imu_window(self.acc.end, self.rate_hz, self.start_s, standing)
            u, _, vt = np.linalg.svd(self.rot.get(sl.start, sl.stop).mean(axis=0))
            self.standing_rotation = (u @ vt).T
            r = self.rot.get(self.rot.start, self.rot.end)
            r[:] = self.standing_rotation @ r

    def calibrate_functional(self, standing: tuple[float, float], running_end_s: float
                             ) -> None:
        """Functional axes from the run so far (``standing[1]`` → ``running_end_s``)."""
        assert self.static is not None
        if self.static.method == "stored":  # no standing samples here: the stored vertical
            imu = self._imu(self.index(standing[1]), self.index(running_end_s))
            cal = imu_calibrate_functional(imu, self.static)
        else:
            i0 = self.index(standing[0])
            imu = self._imu(i0, self.index(running_end_s))
            cal = imu_calibrate(imu, standing=standing, functional=True)
        c_s = self.static.segment_to_sensor
        self.functional = cal
        self._turn = c_s.T @ cal.segment_to_sensor

    def state(self) -> dict:
        """Calibration as plain lists (for storage per athlete)."""
        assert self.static is not None and self.standing_rotation is not None
        return {
            "segment_to_sensor": self.static.segment_to_sensor.tolist(),
            "gyro_bias_dps": self.static.gyro_bias_dps.tolist(),
            "standing_rotation": self.standing_rotation.tolist(),
            "functional_segment_to_sensor": (None if self.functional is None else
                                             self.functional.segment_to_sensor.tolist()),
            "method": self.functional.method if self.functional else self.static.method,
        }

    def running_state(self) -> dict | None:
        """What resuming mid-run needs beyond :meth:`state`: the learned tilt reference
        (None until learned). None before the static calibration."""
        if self._filter is None:
            return None
        learned = self._filter.reference_learned
        return {"tilt_reference": self._filter.reference.tolist() if learned else None}

    # --- processing ---------------------------------------------------------------------------
    def _sensor_quat(self, rot: NDArray[np.float64]) -> NDArray[np.float64]:
        h, c = self.standing_rotation, self.static.segment_to_sensor
        return matrix_to_quat(h.T @ rot @ c.T)

    def _run_filter(self) -> None:
        """Orientation for the raw samples not yet filtered."""
        filt = self._filter
        while self.rot.end < self.acc.end:
            i0, i1 = self.rot.end, self.acc.end
            if self._slow_from is not None:
                if i0 >= self._slow_from:
                    self._filter = filt = imu_filter_resume(filt, filt.orientation,
                                                            time_constant_s=self._normal_tc)
                    if self._forget_drift:
                        filt._integral = np.zeros(3)
                        self._forget_drift = False
                    self._slow_from = None
                else:
                    i1 = min(i1, self._slow_from)
            q = filt.update(self.acc.get(i0, i1), self.gyr.get(i0, i1))
            r = quat_to_matrix(q) @ self.static.segment_to_sensor
            if self.standing_rotation is not None:
                r = self.standing_rotation @ r
            self.rot.append(r)

    def process(self) -> None:
        """Run the chain over everything received (orientation; final angles once the
        functional calibration is known)."""
        if self._filter is None:
            return
        self._run_filter()
        if self.functional is None:
            return
        c = self.functional.segment_to_sensor
        while self.angle.end < self.rot.end:
            i0 = self.angle.end
            nxt = [r for r in self._resets if r > i0]
            i1 = min([self.rot.end, *nxt])
            if i0 in self._resets:
                self._head_hist, self._head_last, self._theta_last = np.zeros(0), None, None
            r = self.rot.get(i0, i1)
            t = self._turn
            r = t.T @ r @ t
            self.angle.append(self._sagittal(r))
            g = self.gyr.get(i0, i1) - self.functional.gyro_bias_dps
            self.rate.append(g @ c[:, 2])
            self.axial.append(self.acc.get(i0, i1) @ c[:, 1])
        self.trim()

    def _sagittal(self, rot: NDArray[np.float64]) -> NDArray[np.float64]:
        """θz with the trailing heading reference (continuing the state)."""
        raw = np.arctan2(rot[:, 0, 2], rot[:, 2, 2])
        if self._head_last is None:
            head = np.unwrap(raw)
        else:
            head = np.unwrap(np.r_[self._head_last, raw])[1:]
        n_hist = len(self._head_hist)
        full = np.r_[self._head_hist, head]
        csum = np.r_[0.0, np.cumsum(full)]
        idx = np.arange(n_hist, len(full))
        lo = np.maximum(0, idx - 2 * self._half)
        ref = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)
        self._head_hist = full[-2 * self._half:]
        self._head_last = float(head[-1]) if len(head) else self._head_last
        r01 = np.cos(ref) * rot[:, 0, 1] - np.sin(ref) * rot[:, 2, 1]
        theta = np.arctan2(-r01, rot[:, 1, 1])
        if self._theta_last is None:
            theta = np.unwrap(theta)
        else:
            theta = np.unwrap(np.r_[self._theta_last, theta])[1:]
        if len(theta) and np.isfinite(theta[-1]):
            self._theta_last = float(theta[-1])
        return np.degrees(theta)

    def trim(self) -> None:
        """Forget history older than ``keep`` samples (after the functional calibration)."""
        if self.functional is None:
            return
        i = self.acc.end - self.keep
        for buf in (self.acc, self.gyr, self.rot, self.angle, self.rate, self.axial):
            buf.keep_from(i)
        self.gaps = [g for g in self.gaps if g[1] > i]

    def latest_static_angle_deg(self) -> float:
        """Sagittal angle of the last sample (deg): final chain when calibrated, else the
        static axes without heading re-reference; NaN before the static calibration."""
        if self.angle.end > self.angle.start:
            return float(self.angle.get(self.angle.end - 1, self.angle.end)[0])
        if self.rot.end > self.rot.start:
            r = self.rot.get(self.rot.end - 1, self.rot.end)[0]
            return math.degrees(math.atan2(-r[0, 1], r[1, 1]))
        return math.nan


class ThighEventDetector:
    """Causal IC from the thigh's late-swing peak flexion (no shank IMU).

    The causal counterpart of :func:`.gait.gait_events_thigh`: a peak of the thigh angle
    (prominence ≥ ``min_rom_deg``, ≥ 0.4 s from its neighbours) is confirmed 0.4 s after it;
    it must reach ``rel_rom`` of the median prominence of the previous (up to 8) peaks; IC is
    ``ic_fraction`` of the *previous* peak-to-peak interval after it (offline: the mean of the
    intervals on both sides), so ICs differ from offline by ``ic_fraction`` × half the change
    of stride time — a few ms — and the first peak gives no IC. With the thigh's axial
    acceleration pushed too, each IC moves to the foot-strike impact
    (:func:`.gait.impact_ic`, the same landmark as offline, inside a window that ends
    before the peak is confirmed).

    Parameters
    ----------
    rate_hz : float
        Sampling rate (Hz).
    start_s : float
        Session time of the first sample pushed (s).
    ic_fraction, min_rom_deg, rel_rom, min_impact_rise_mps2, min_stride_s, max_stride_s
        As in :func:`.gait.gait_events_thigh`.
    """

    buffer_s = 4.0

    def __init__(self, rate_hz: float, *, start_s: float = 0.0, ic_fraction: float = 0.14,
                 min_rom_deg: float = 20.0, rel_rom: float = 0.6,
                 min_impact_rise_mps2: float = MIN_IMPACT_RISE_MPS2, min_stride_s: float = 0.5,
                 max_stride_s: float = 1.2) -> None:
        self.rate_hz = float(rate_hz)
        self.start_s = float(start_s)
        self.ic_fraction = ic_fraction
        self.min_rom_deg = min_rom_deg
        self.rel_rom = rel_rom
        self.limits = (min_stride_s, max_stride_s)
        self.min_impact_rise_mps2 = min_impact_rise_mps2
        self._buf = np.zeros(0)
        self._acc = np.zeros(0)
        self._buf_start = 0
        self._last_peak = -1
        self._prominences: list[float] = []
        self._last_t: float | None = None

    def push(self, flexion_deg: ArrayLike, axial_acc_mps2: ArrayLike | None = None
             ) -> list[float]:
        """Add thigh angles (deg), and optionally the same samples' axial acceleration
        (m/s²); return the ICs (session s) they confirm."""
        x = np.asarray(flexion_deg, dtype=float).ravel()
        if not len(x):
            return []
        acc = (np.full(len(x), np.nan) if axial_acc_mps2 is None
               else np.asarray(axial_acc_mps2, dtype=float).ravel())
        if len(acc) != len(x):
            raise ValueError(f"{len(acc)} axial acceleration samples for {len(x)} angles")
        self._buf = np.r_[self._buf, x]
        self._acc = np.r_[self._acc, acc]
        settle = round(0.4 * self.rate_hz)
        peaks, props = find_peaks(self._buf, prominence=self.min_rom_deg,
                                  distance=max(1, settle))
        out = []
        for p, prom in zip(peaks, props["prominences"], strict=True):
            p_abs = p + self._buf_start
            if p_abs <= self._last_peak or p + settle >= len(self._buf) or p == 0:
                continue
            self._last_peak = p_abs
            recent = self._prominences[-8:]
            self._prominences.append(float(prom))
            if len(recent) >= 4 and prom < self.rel_rom * float(np.median(recent)):
                continue
            y0, y1, y2 = self._buf[p - 1], self._buf[p], self._buf[p + 1]
            den = y0 - 2 * y1 + y2
            off = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den else 0.0
            t = self.start_s + (p_abs + off) / self.rate_hz
            if self._last_t is not None:
                d = t - self._last_t
                if self.limits[0] <= d <= self.limits[1]:
                    ic = t + self.ic_fraction * d
                    hit = impact_ic(self._acc, self.rate_hz,
                                    (ic - self.start_s) * self.rate_hz - self._buf_start,
                                    d * self.rate_hz, min_rise_mps2=self.min_impact_rise_mps2)
                    if hit is not None:
                        ic = self.start_s + (hit + self._buf_start) / self.rate_hz
                    out.append(ic)
            self._last_t = t
        keep = round(self.buffer_s * self.rate_hz)
        if len(self._buf) > keep:
            drop = len(self._buf) - keep
            self._buf = self._buf[drop:]
            self._acc = self._acc[drop:]
            self._buf_start += drop
        return out
