"""Gait events: IC and toe-off from the shank gyro, or IC from the thigh (flexion + impact).

Two offline detectors, one streaming detector and a plausibility filter, arrays in and
:class:`~hipstride.pipeline.engine.data.GaitEvents` out (times in session seconds: sample ``i``
is at ``start_s + i / rate_hz``):

* :func:`gait_events_shank` (method ``"shank_gyro"``), on the shank's sagittal angular
  velocity (deg/s, positive = shank swinging forward). Per stride: the **mid-swing peak** (the
  largest forward rotation, gated by amplitude so standing, lying and slow movements give
  nothing), then, after it, the **terminal-swing zero crossing** (positive → negative: the shank
  starts to rotate backwards) and the **following minimum** (the negative peak around loading).
  These are the two classical shank-gyro IC landmarks — the positive-to-negative zero crossing
  after mid-swing (e.g. the gait-phase detector of Phys Ther 2019;99:739, PMC6545278) and the
  minimum after mid-swing (Aminian et al. 2002, Salarian et al. 2004, Greene et al. 2010).
  On the HipStride simulator they bracket the true IC almost symmetrically: the zero crossing
  ~6 % of the stride (−40 to −50 ms) before it, the minimum ~6 % (+35 to +45 ms) after it, at
  every profile and speed tested. The default IC is therefore their **midpoint**
  (``ic_definition="midpoint"``) — a choice made to match the simulator, not a published
  method in itself; each published landmark is available alone. Against force plates the best
  shank methods show biases of −24 to +17 ms (PMC10255839, 74 runners): check the landmark
  against a real reference before trusting the ms. The midpoint is
  within a few ms on the simulator and ~3 ms (median) on real treadmill running against a
  force plate (docs/validation.md, "Real data"). **Toe-off** (running, the default): the onset
  of the shank's fast backward swing — between the late-stance maximum of the rate (push-off
  slows the backward rotation) and the early-swing minimum, the first time the backward
  angular acceleration reaches half its peak (:func:`_push_off_onset`). The walking landmark,
  the last minimum before the mid-swing peak (Aminian et al. 2002), comes ~95 ms after the
  force plate's toe-off in running (the knee folds the free shank back after the foot
  leaves); it stays available as ``toe_off_definition="swing_minimum"``.
* :func:`gait_events_thigh` (method ``"thigh_flexion"``), without shank sensors: strides are
  segmented at the thigh's (or hip's) peak flexion in late swing (Novacheck 1998: ~86 % of the
  stride) and IC is estimated a fixed fraction of the stride later (default 0.14). That
  fraction varies between runners (~7 ms early on the simulator, ~49 ms on a real runner), so
  when the thigh's axial acceleration is given IC moves to the foot-strike impact near the
  estimate (:func:`impact_ic`: the start of the steep rise from the flight phase's
  near-free-fall).
* :class:`GaitEventDetector`: the shank algorithm fed blocks of any size, causal; it emits
  the same ICs as :func:`gait_events_shank` once each is confirmed, ~70 ms after IC plus the
  block that confirms it (see :attr:`GaitEventDetector.max_latency_s`).
* :func:`gait_reject_implausible`: stride time outside 0.5–1.2 s or > 25 % off a running
  median of the *neighbouring* strides (the stride under test never votes, so one bad stride
  cannot shift its own reference, and a median of 8 cannot be dragged by one outlier).

Every threshold is a keyword argument; defaults marked *default* in DOMAIN.md's sense are
reasonable starting points, not measured constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import find_peaks

from .data import GaitEvents

__all__ = [
    "GaitEventDetector",
    "ShankEvent",
    "gait_events_shank",
    "gait_events_thigh",
    "gait_reject_implausible",
    "gait_shank_events",
    "impact_ic",
]

IcDefinition = Literal["midpoint", "zero_crossing", "minimum"]
ToeOffDefinition = Literal["backswing_onset", "swing_minimum"]

#: *default* smallest mid-swing peak (deg/s) that counts as a running stride. Simulated and
#: measured running reach 500–1000 deg/s; walking ~250–400; lying down, the prone leg lift
#: and MVC postures stay below 60.
MIN_SWING_DPS = 300.0
#: A mid-swing peak is the largest sample within ± this half-window (s); peaks of one leg are
#: ≥ 0.5 s apart.
PEAK_HALF_WINDOW_S = 0.2
#: The terminal-swing zero crossing must follow the peak within this time (s).
MAX_PEAK_TO_ZERO_S = 0.35
#: The minimum after the zero crossing is searched for at most this long (s).
MAX_ZERO_TO_MIN_S = 0.25
#: Toe-off is searched at most this long (s) before the mid-swing peak.
MAX_TOE_OFF_TO_PEAK_S = 0.6
#: Running toe-off: the late-stance rate maximum is searched at most this long (s) before the
#: early-swing minimum (on real running the two are ~120 ms apart).
MAX_PUSH_OFF_TO_MIN_S = 0.25
#: Running toe-off: the onset of the backward swing is where the backward angular acceleration
#: reaches this fraction of its peak (a half-maximum criterion).
BACKSWING_ONSET_FRACTION = 0.5
#: *default* hysteresis (deg/s): a minimum is confirmed once the rate has risen this much above it.
MIN_RISE_DPS = 30.0
#: Thigh method: IC after peak flexion as a fraction of the stride (Novacheck 1998: peak hip
#: flexion at ~86 % of the stride, IC at 100 %).
THIGH_IC_FRACTION = 0.14
#: *default* smallest thigh flexion excursion (deg, peak prominence) that counts as a stride.
MIN_THIGH_ROM_DEG = 20.0
#: Thigh impact: the search window around the flexion-based IC estimate, as fractions of the
#: stride before and after it (the estimate is 15–50 ms off on real running).
IMPACT_WINDOW = (0.10, 0.15)
#: Thigh impact: the steep rise starts where the slope falls under this fraction of its peak
#: (in flight the axial specific force is near zero and flat or drifting slowly).
IMPACT_ONSET_FRACTION = 0.1
#: *default* smallest rise (m/s²) of the thigh's axial specific force from its flight-phase
#: minimum to the impact peak that counts as an impact (real running: ~30; simulator: ~20).
MIN_IMPACT_RISE_MPS2 = 4.0


@dataclass(frozen=True)
class ShankEvent:
    """One IC found by the shank-gyro algorithm.

    Attributes
    ----------
    ic_s : float
        Initial contact (session s), per the chosen ``ic_definition``.
    toe_off_s : float
        Toe-off (s) in the swing that ends at this IC, i.e. of the *previous* stride; NaN when
        none was found.
    peak_s, zero_s, min_s : float
        Mid-swing peak, terminal-swing zero crossing and the minimum after it (s).
    peak_dps : float
        Height of the mid-swing peak (deg/s).
    confirmed_s : float
        Time of the last sample the event depends on (s): the earliest a causal detector can
        know it.
    """

    ic_s: float
    toe_off_s: float
    peak_s: float
    zero_s: float
    min_s: float
    peak_dps: float
    confirmed_s: float


# --- helpers ---------------------------------------------------------------------------------
def _parabolic_offset(y0: float, y1: float, y2: float) -> float:
    """Sub-sample offset (samples, in [−0.5, 0.5]) of the extremum of a parabola through
    three equally spaced points centred on the middle one."""
    den = y0 - 2.0 * y1 + y2
    if den == 0.0:
        return 0.0
    return float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))


def _refine(x: NDArray[np.float64], i: int) -> float:
    """Index ``i`` of a local extremum refined by parabolic interpolation (samples)."""
    if 0 < i < len(x) - 1:
        return i + _parabolic_offset(x[i - 1], x[i], x[i + 1])
    return float(i)


def _median(values: list[float]) -> float:
    """``np.median`` of a short list of finite floats (the same arithmetic: the middle value,
    or the mean of the two middle ones), without numpy's per-call cost."""
    v = sorted(values)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2.0


def _hysteresis_min(x: NDArray[np.float64], rise: float) -> tuple[int, int]:
    """First minimum of ``x`` confirmed by a rise of ``rise`` above the running minimum.

    Returns ``(i_min, i_confirm)``: the minimum's index and the index of the sample that
    confirmed it (``len(x) - 1`` when the rise never came).
    """
    run_min = np.minimum.accumulate(x)
    above = np.flatnonzero(x > run_min + rise)
    stop = int(above[0]) if len(above) else len(x) - 1
    return int(np.argmin(x[: stop + 1])), stop


def _push_off_onset(g: NDArray[np.float64], k_min: int, lo: int) -> float:
    """Running toe-off (samples): the onset of the shank's fast backward swing.

    Between the late-stance maximum of the rate (the shank's backward rotation slows while
    the foot pushes off) and the early-swing minimum ``k_min`` (the knee folding the free
    shank back), the first time the backward angular acceleration reaches
    :data:`BACKSWING_ONSET_FRACTION` of its peak in that span, interpolated between samples.
    """
    k_max = lo + int(np.argmax(g[lo:k_min + 1]))
    if k_min - k_max < 2:
        return float(k_min)
    d = np.diff(g[k_max:k_min + 1])  # d[i]: slope between k_max + i and k_max + i + 1
    i_peak = int(np.argmin(d))
    thr = BACKSWING_ONSET_FRACTION * d[i_peak]
    i = int(np.argmax(d[:i_peak + 1] <= thr))
    x = float(i)
    if i > 0 and d[i] != d[i - 1]:
        x = i - 1 + (thr - d[i - 1]) / (d[i] - d[i - 1])
    return k_max + x + 0.5  # a slope sits half-way between its two samples


def _shank_core(g: NDArray[np.float64], rate_hz: float, *, min_swing_dps: float,
                min_rise_dps: float, ic_definition: IcDefinition,
                toe_off_definition: ToeOffDefinition = "backswing_onset",
                first_valid_peak: int = 0, prev_min_idx: int = -1
                ) -> list[tuple[ShankEvent, int, int, int]]:
    """Shank events in ``g`` (times in samples from ``g[0]``, as floats in the event fields).

    Every decision about an event uses only samples in
    ``[peak − MAX_TOE_OFF_TO_PEAK_S, confirmation]``, so running this on a sliding buffer that
    covers that span gives the same events as on the whole recording. Peaks before
    ``first_valid_peak`` are skipped; ``prev_min_idx`` is then the minimum index of the event
    before them (the toe-off search of the next event stops there), as a scan from an earlier
    start would have found it.

    Returns
    -------
    list of (event, peak_index, confirm_index, minimum_index)
        In time order; the event's times are in samples (not yet seconds).
    """
    n = len(g)
    w = max(1, round(PEAK_HALF_WINDOW_S * rate_hz))
    n_zero = round(MAX_PEAK_TO_ZERO_S * rate_hz)
    n_min = round(MAX_ZERO_TO_MIN_S * rate_hz)
    n_to = round(MAX_TOE_OFF_TO_PEAK_S * rate_hz)
    n_push = round(MAX_PUSH_OFF_TO_MIN_S * rate_hz)
    if toe_off_definition not in ("backswing_onset", "swing_minimum"):
        raise ValueError(f"unknown toe_off_definition {toe_off_definition!r}")
    if n < 3:
        return []
    # Local maxima above the amplitude gate (strict on the left, so a flat top counts once).
    cand = np.flatnonzero((g[1:-1] >= min_swing_dps) & (g[1:-1] > g[:-2])
                          & (g[1:-1] >= g[2:])) + 1
    out: list[tuple[ShankEvent, int, int, int]] = []
    for p in cand[np.searchsorted(cand, first_valid_peak):].tolist():
        if p + w >= n:
            continue
        left = g[max(0, p - w):p]
        right = g[p + 1:p + w + 1]
        if (len(left) and left.max() >= g[p]) or right.max() > g[p]:
            continue
        # Terminal-swing zero crossing: first sample <= 0 after the peak.
        after = g[p + 1:p + 1 + n_zero]
        neg = np.flatnonzero(after <= 0.0)
        if not len(neg):
            continue
        j = p + 1 + int(neg[0])  # g[j] <= 0 < g[j - 1]
        zero = (j - 1) + g[j - 1] / (g[j - 1] - g[j])
        # The minimum after it, confirmed by a rise (or the end of the search window).
        seg = g[j:j + n_min + 1]
        if len(seg) < n_min + 1:
            i_min, i_conf = _hysteresis_min(seg, min_rise_dps)
            if i_conf == len(seg) - 1:
                continue  # not confirmed yet and the window is incomplete
        else:
            i_min, i_conf = _hysteresis_min(seg, min_rise_dps)
        k_min = j + i_min
        t_min = _refine(g, k_min)
        confirm = max(j + i_conf, p + w)  # the peak itself is known w samples later
        # Toe-off: the last minimum before the peak, searched backwards from the peak.
        lo = max(0, p - n_to, prev_min_idx + 1)
        back = g[lo:p + 1][::-1]
        toe = float("nan")
        if len(back) > 2:
            i_to, _ = _hysteresis_min(back, min_rise_dps)
            k_to = p - i_to
            if lo < k_to < p:
                toe = (_refine(g, k_to) if toe_off_definition == "swing_minimum"
                       else _push_off_onset(g, k_to, max(lo, k_to - n_push)))
        if ic_definition == "midpoint":
            ic = 0.5 * (zero + t_min)
        elif ic_definition == "zero_crossing":
            ic = zero
        elif ic_definition == "minimum":
            ic = t_min
        else:
            raise ValueError(f"unknown ic_definition {ic_definition!r}")
        event = ShankEvent(ic_s=ic, toe_off_s=toe, peak_s=_refine(g, int(p)), zero_s=zero,
                           min_s=t_min, peak_dps=float(g[p]), confirmed_s=float(confirm))
        out.append((event, int(p), confirm, k_min))
        prev_min_idx = k_min
    return out


def _to_seconds(ev: ShankEvent, start_s: float, rate_hz: float) -> ShankEvent:
    def t(x: float) -> float:
        return start_s + x / rate_hz

    return ShankEvent(ic_s=t(ev.ic_s), toe_off_s=t(ev.toe_off_s), peak_s=t(ev.peak_s),
                      zero_s=t(ev.zero_s), min_s=t(ev.min_s), peak_dps=ev.peak_dps,
                      confirmed_s=t(ev.confirmed_s))


def _events_from_ics(side: str, ic_s: NDArray[np.float64], toe_off_s: NDArray[np.float64],
                     method: str, *, min_s: float, max_s: float, max_dev: float,
                     window: int) -> GaitEvents:
    valid, reasons = gait_reject_implausible(ic_s, min_s=min_s, max_s=max_s, max_dev=max_dev,
                                             window=window)
    return GaitEvents(side=side, ic_s=ic_s, toe_off_s=toe_off_s, valid=valid,
                      rejected_reason=reasons, method=method)


# --- public API ------------------------------------------------------------------------------
def gait_shank_events(sagittal_rate_dps: ArrayLike, rate_hz: float, *, start_s: float = 0.0,
                      min_swing_dps: float = MIN_SWING_DPS, min_rise_dps: float = MIN_RISE_DPS,
                      ic_definition: IcDefinition = "midpoint",
                      toe_off_definition: ToeOffDefinition = "backswing_onset"
                      ) -> list[ShankEvent]:
    """Every shank-gyro event with its landmarks (what :func:`gait_events_shank` summarises).

    Parameters and units as in :func:`gait_events_shank`.

    Returns
    -------
    list of ShankEvent
        In time order, times in session seconds.
    """
    g = np.asarray(sagittal_rate_dps, dtype=np.float64).ravel()
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    found = _shank_core(g, rate_hz, min_swing_dps=min_swing_dps, min_rise_dps=min_rise_dps,
                        ic_definition=ic_definition, toe_off_definition=toe_off_definition)
    return [_to_seconds(ev, start_s, rate_hz) for ev, *_ in found]


def gait_events_shank(sagittal_rate_dps: ArrayLike, rate_hz: float, *, start_s: float = 0.0,
                      side: str, min_swing_dps: float = MIN_SWING_DPS,
                      min_rise_dps: float = MIN_RISE_DPS,
                      ic_definition: IcDefinition = "midpoint",
                      toe_off_definition: ToeOffDefinition = "backswing_onset",
                      min_stride_s: float = 0.5, max_stride_s: float = 1.2,
                      max_dev: float = 0.25, window: int = 8) -> GaitEvents:
    """IC and toe-off of one side from the shank's sagittal angular velocity.

    Parameters
    ----------
    sagittal_rate_dps : array_like, shape (n,)
        Shank angular velocity about the calibrated segment z axis (deg/s), positive = the
        shank swinging forward (``Kinematics.sagittal_rate_dps["shank_l"]``).
    rate_hz : float
        Sampling rate (Hz).
    start_s : float
        Session time of sample 0 (s).
    side : {"l", "r"}
        Which leg (stored in the result).
    min_swing_dps : float
        Amplitude gate: the smallest mid-swing peak (deg/s) that counts as a running stride.
    min_rise_dps : float
        Hysteresis (deg/s) that confirms a minimum.
    ic_definition : {"midpoint", "zero_crossing", "minimum"}
        IC landmark: the terminal-swing zero crossing, the minimum after it, or (default) the
        midpoint of the two (see the module docstring).
    toe_off_definition : {"backswing_onset", "swing_minimum"}
        Toe-off landmark: (default, running) the onset of the fast backward swing after the
        late-stance rate maximum, or (walking) the last minimum before mid-swing.
    min_stride_s, max_stride_s, max_dev, window
        Plausibility limits, passed to :func:`gait_reject_implausible`.

    Returns
    -------
    GaitEvents
        ``method="shank_gyro"``; ``ic_s`` (s, n_strides + 1), ``toe_off_s`` (s, n_strides: in
        the swing that ends stride k, per ``toe_off_definition``), ``valid`` and
        ``rejected_reason`` per stride.

    Examples
    --------
    >>> ev = gait_events_shank(gyr_z_dps, 200.0, side="l")  # doctest: +SKIP
    >>> ev.ic_s[:3], ev.valid.mean()  # doctest: +SKIP
    """
    events = gait_shank_events(sagittal_rate_dps, rate_hz, start_s=start_s,
                               min_swing_dps=min_swing_dps, min_rise_dps=min_rise_dps,
                               ic_definition=ic_definition,
                               toe_off_definition=toe_off_definition)
    ic = np.array([e.ic_s for e in events], dtype=np.float64)
    toe = np.array([e.toe_off_s for e in events[1:]], dtype=np.float64)
    toe[(toe <= ic[:-1]) | (toe >= ic[1:])] = np.nan
    return _events_from_ics(side, ic, toe, "shank_gyro", min_s=min_stride_s, max_s=max_stride_s,
                            max_dev=max_dev, window=window)


def impact_ic(axial_acc_mps2: NDArray[np.float64], rate_hz: float, ic_index: float,
              stride_samples: float, *, min_rise_mps2: float = MIN_IMPACT_RISE_MPS2
              ) -> float | None:
    """IC (samples) at the foot-strike impact seen by a thigh (or pelvis) accelerometer.

    In running's flight phase the whole body is in free fall, so the axial specific force of
    the thigh is low; at foot strike the ground reaction pushes up through the leg and it
    rises steeply. Within the window :data:`IMPACT_WINDOW` around the estimate ``ic_index``,
    the steepest rise of ``axial_acc_mps2`` (the segment's long-axis component, +superior) is
    found and IC is where that rise starts: going back from it, the first sample whose slope is
    under :data:`IMPACT_ONSET_FRACTION` of the steepest (a minimum, refined between samples,
    or the end of the slow flight-phase drift). None when the rise
    from that minimum to the following maximum is under ``min_rise_mps2`` (no impact seen:
    keep the estimate) or the window leaves the data.
    """
    a = axial_acc_mps2
    lo = math.floor(ic_index - IMPACT_WINDOW[0] * stride_samples)
    hi = math.ceil(ic_index + IMPACT_WINDOW[1] * stride_samples)
    if lo < 1 or hi >= len(a) - 1 or hi - lo < 3:
        return None
    seg = a[lo:hi + 1]
    if not np.isfinite(seg).all():
        return None
    d = np.diff(seg)
    k = int(np.argmax(d))  # steepest rise between lo + k and lo + k + 1
    m = k  # back to where the steep rise starts: a minimum, or the end of a slow drift up
    while m > 0 and d[m - 1] > IMPACT_ONSET_FRACTION * d[k]:
        m -= 1
    top = k + 1
    while top < len(seg) - 1 and seg[top + 1] >= seg[top]:
        top += 1
    if seg[top] - seg[m] < min_rise_mps2:
        return None
    return _refine(a, lo + m) if m > 0 and d[m - 1] < 0 else float(lo + m)


def gait_events_thigh(flexion_deg: ArrayLike, rate_hz: float, *, start_s: float = 0.0,
                      side: str, ic_fraction: float = THIGH_IC_FRACTION,
                      min_rom_deg: float = MIN_THIGH_ROM_DEG, rel_rom: float = 0.6,
                      axial_acc_mps2: ArrayLike | None = None,
                      min_impact_rise_mps2: float = MIN_IMPACT_RISE_MPS2,
                      min_stride_s: float = 0.5,
                      max_stride_s: float = 1.2, max_dev: float = 0.25, window: int = 8
                      ) -> GaitEvents:
    """IC of one side estimated from the thigh's late-swing peak flexion (no shank sensor).

    Strides are segmented at each peak of thigh flexion; IC is put ``ic_fraction`` of the
    local stride time after it, the stride time being the mean of the peak-to-peak intervals
    on either side (one side only at the ends).

    Parameters
    ----------
    flexion_deg : array_like, shape (n,)
        Thigh sagittal angle (deg, positive = thigh forward, ``Kinematics.sagittal_deg
        ["thigh_l"]``) or hip flexion (deg, ``Kinematics.hip_flexion_deg["l"]``).
    rate_hz : float
        Sampling rate (Hz).
    start_s : float
        Session time of sample 0 (s).
    side : {"l", "r"}
        Which leg.
    ic_fraction : float
        IC delay after peak flexion as a fraction of the stride (0.14 = Novacheck's ~86 %).
    min_rom_deg : float
        Amplitude gate: the smallest peak prominence (deg) that counts as a running stride.
    rel_rom : float
        Relative gate: a peak's prominence must reach this fraction of the median of its
        (up to 8) neighbours', which drops the strides of the start and stop ramps.
    axial_acc_mps2 : array_like, shape (n,), optional
        The thigh accelerometer's component along the segment's long axis (m/s², +superior,
        ``Kinematics.axial_acc_mps2["thigh_l"]``). When given, each IC estimate is moved to
        the foot-strike impact (:func:`impact_ic`) where one is seen.
    min_impact_rise_mps2 : float
        Passed to :func:`impact_ic`.
    min_stride_s, max_stride_s, max_dev, window
        Plausibility limits, passed to :func:`gait_reject_implausible`.

    Returns
    -------
    GaitEvents
        ``method="thigh_flexion"``; ``toe_off_s`` is all NaN (not estimated).
    """
    x = np.asarray(flexion_deg, dtype=np.float64).ravel()
    if rate_hz <= 0:
        raise ValueError("rate_hz must be positive")
    peaks, props = find_peaks(x, prominence=min_rom_deg, distance=max(1, round(0.4 * rate_hz)))
    prom = props["prominences"]
    if len(peaks) >= 3:
        # Relative gate: a peak much smaller than its neighbours' (the leg fading in from
        # standing, or slowing down) is not a running stride; its timing is also biased,
        # because a growing oscillation peaks late.
        keep = np.ones(len(peaks), dtype=bool)
        for k in range(len(peaks)):
            ref = np.concatenate([prom[max(0, k - 4):k], prom[k + 1:k + 5]])
            keep[k] = prom[k] >= rel_rom * float(np.median(ref))
        peaks = peaks[keep]
    t_peak = np.array([_refine(x, int(p)) for p in peaks], dtype=np.float64) / rate_hz
    if len(t_peak) >= 2:
        d = np.diff(t_peak)
        prev = np.concatenate([[d[0]], d])
        nxt = np.concatenate([d, [d[-1]]])
        # Only neighbouring intervals that are plausible strides; otherwise the other one.
        ok_p = (prev >= min_stride_s) & (prev <= max_stride_s)
        ok_n = (nxt >= min_stride_s) & (nxt <= max_stride_s)
        stride = np.where(ok_p & ok_n, 0.5 * (prev + nxt), np.where(ok_n, nxt, prev))
        ic = start_s + t_peak + ic_fraction * stride
        if axial_acc_mps2 is not None:
            acc = np.asarray(axial_acc_mps2, dtype=np.float64).ravel()
            for k in range(len(ic)):
                hit = impact_ic(acc, rate_hz, (ic[k] - start_s) * rate_hz, stride[k] * rate_hz,
                                min_rise_mps2=min_impact_rise_mps2)
                if hit is not None:
                    ic[k] = start_s + hit / rate_hz
    else:
        ic = np.zeros(0)
    toe = np.full(max(0, len(ic) - 1), np.nan)
    return _events_from_ics(side, ic, toe, "thigh_flexion", min_s=min_stride_s,
                            max_s=max_stride_s, max_dev=max_dev, window=window)


def gait_reject_implausible(ic_s: ArrayLike, *, min_s: float = 0.5, max_s: float = 1.2,
                            max_dev: float = 0.25, window: int = 8, causal: bool = False
                            ) -> tuple[NDArray[np.bool_], tuple[str, ...]]:
    """Flag strides whose duration is implausible.

    A stride ``k`` (``ic_s[k]`` → ``ic_s[k + 1]``) is rejected when its time is outside
    ``[min_s, max_s]`` (reason ``"too_short"`` / ``"too_long"``), or more than ``max_dev`` off
    the median of up to ``window`` *other* strides around it that pass the absolute limits
    (``"off_median"``). The stride under test never votes for its own reference and the
    reference is a median, so one bad stride (a missed or a double-detected IC) cannot shift
    the baseline of its neighbours; a genuine change of cadence takes over the median after
    ``window / 2`` strides.

    Parameters
    ----------
    ic_s : array_like, shape (n,)
        IC times (s), increasing.
    min_s, max_s : float
        Absolute stride-time limits (s).
    max_dev : float
        Largest relative deviation from the running median (0.25 = 25 %).
    window : int
        How many neighbouring strides form the reference: ``window // 2`` on each side
        (offline), or the ``window`` previous ones (``causal=True``, for live use).
    causal : bool
        Use only earlier strides.

    Returns
    -------
    valid : ndarray of bool, shape (max(n − 1, 0),)
    reasons : tuple of str
        ``""`` for valid strides, else the reason.
    """
    ic = np.asarray(ic_s, dtype=np.float64).ravel()
    if window < 1:
        raise ValueError("window must be >= 1")
    # plain floats: a few dozen strides per call (the streaming engine calls this for every
    # IC), where numpy's per-call cost would dominate; the same arithmetic as np.median
    d = np.diff(ic).tolist()
    n = len(d)
    reasons = ["" for _ in range(n)]
    for k in range(n):
        if d[k] < min_s:
            reasons[k] = "too_short"
        elif d[k] > max_s:
            reasons[k] = "too_long"
    good = [k for k in range(n) if min_s <= d[k] <= max_s]
    half = window // 2
    for pos, k in enumerate(good):
        if causal:
            ref_idx = good[max(0, pos - window):pos]
        else:
            ref_idx = good[max(0, pos - half):pos] + good[pos + 1:pos + 1 + half]
        if len(ref_idx) < 2:
            continue  # too little context to judge: the absolute limits decide
        ref = _median([d[i] for i in ref_idx])
        if abs(d[k] - ref) > max_dev * ref:
            reasons[k] = "off_median"
    valid = np.array([r == "" for r in reasons], dtype=bool)
    return valid, tuple(reasons)


class GaitEventDetector:
    """Causal shank-gyro IC detector fed blocks of sagittal angular velocity of any size.

    It keeps the last :attr:`buffer_s` seconds and runs the same per-event rules as
    :func:`gait_events_shank` on them, emitting each IC once every sample it depends on has
    arrived. The ICs are therefore identical to the offline ones; each is emitted when the
    minimum after the terminal-swing zero crossing is confirmed (the rate has risen
    ``min_rise_dps`` above it, ~25 ms after the minimum, i.e. ~70 ms after the simulator's IC)
    or, at the latest, :attr:`max_latency_s` after IC, plus the wait for the block that carries
    the confirming sample.

    Parameters
    ----------
    rate_hz : float
        Sampling rate (Hz).
    side : {"l", "r"}
        Which leg.
    start_s : float
        Session time of the first sample pushed (s).
    min_swing_dps, min_rise_dps, ic_definition, toe_off_definition
        As in :func:`gait_events_shank`.

    Examples
    --------
    >>> det = GaitEventDetector(200.0, side="l")  # doctest: +SKIP
    >>> for block in blocks:  # doctest: +SKIP
    ...     for ev in det.push(block):
    ...         print(ev.ic_s, ev.confirmed_s - ev.ic_s)
    """

    #: Samples kept (s): the longest span one event depends on, with margin.
    buffer_s = 4.0

    def __init__(self, rate_hz: float, *, side: str, start_s: float = 0.0,
                 min_swing_dps: float = MIN_SWING_DPS, min_rise_dps: float = MIN_RISE_DPS,
                 ic_definition: IcDefinition = "midpoint",
                 toe_off_definition: ToeOffDefinition = "backswing_onset") -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.rate_hz = float(rate_hz)
        self.side = side
        self.start_s = float(start_s)
        self._kw = {"min_swing_dps": min_swing_dps, "min_rise_dps": min_rise_dps,
                    "ic_definition": ic_definition, "toe_off_definition": toe_off_definition}
        self._buf = np.zeros(0)
        self._buf_start = 0  # absolute index of self._buf[0]
        self._last_peak = -1  # absolute index of the last emitted event's peak
        self._last_min = -1  # absolute index of its minimum after the zero crossing
        self._keep = round(self.buffer_s * rate_hz)
        self.events: list[ShankEvent] = []

    @property
    def max_latency_s(self) -> float:
        """Upper bound (s) from an IC to the sample that confirms it, for every
        ``ic_definition``: the minimum is searched at most ``MAX_ZERO_TO_MIN_S`` after the zero
        crossing, which is at or before IC; the peak needs ``PEAK_HALF_WINDOW_S`` (< that)
        after itself, and it precedes IC. Observed on the simulator: 60–80 ms. Add the wait for
        the block that carries the confirming sample."""
        return MAX_ZERO_TO_MIN_S

    @property
    def samples_seen(self) -> int:
        return self._buf_start + len(self._buf)

    def push(self, sagittal_rate_dps: ArrayLike) -> list[ShankEvent]:
        """Add the next samples (deg/s); return the ICs confirmed by them, in time order."""
        x = np.asarray(sagittal_rate_dps, dtype=np.float64).ravel()
        if not len(x):
            return []
        self._buf = np.concatenate([self._buf, x])
        # Peaks in the first half-window of a trimmed buffer miss their left context: the
        # event with that peak was already handled when the buffer still held it.
        w = max(1, round(PEAK_HALF_WINDOW_S * self.rate_hz))
        first_valid = 0 if self._buf_start == 0 else w
        # Only peaks after the last event's can be new: scan from there, with the minimum of
        # that event (still in the buffer) bounding the next toe-off search, as a scan of the
        # whole buffer would (its accepted events never change as samples arrive).
        last = self._last_peak - self._buf_start
        prev_min = self._last_min - self._buf_start if last >= first_valid else -1
        found = _shank_core(self._buf, self.rate_hz, first_valid_peak=max(first_valid, last + 1),
                            prev_min_idx=prev_min, **self._kw)
        new: list[ShankEvent] = []
        for ev, p, _, k_min in found:
            new.append(_to_seconds(ev, self.start_s + self._buf_start / self.rate_hz,
                                   self.rate_hz))
            self._last_peak = p + self._buf_start
            self._last_min = k_min + self._buf_start
        if len(self._buf) > self._keep:
            drop = len(self._buf) - self._keep
            self._buf = self._buf[drop:]
            self._buf_start += drop
        self.events.extend(new)
        return new

    def gait_events(self, *, min_stride_s: float = 0.5, max_stride_s: float = 1.2,
                    max_dev: float = 0.25, window: int = 8) -> GaitEvents:
        """Everything emitted so far as :class:`GaitEvents` (causal plausibility check)."""
        ic = np.array([e.ic_s for e in self.events], dtype=np.float64)
        toe = np.array([e.toe_off_s for e in self.events[1:]], dtype=np.float64)
        if len(toe):
            toe[(toe <= ic[:-1]) | (toe >= ic[1:])] = np.nan
        valid, reasons = gait_reject_implausible(ic, min_s=min_stride_s, max_s=max_stride_s,
                                                 max_dev=max_dev, window=window, causal=True)
        return GaitEvents(side=self.side, ic_s=ic, toe_off_s=toe, valid=valid,
                          rejected_reason=reasons, method="shank_gyro")
