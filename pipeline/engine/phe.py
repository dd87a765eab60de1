"""Prone hip extension (PHE) test: lifts from the thigh IMUs, muscle onsets, pelvic motion, advice.

DOMAIN.md "Prone hip extension test (guided)": the athlete lies prone, knee straight, lifts one
leg ~10–15 cm and holds 2 s, 3–5 times per side. For each repetition this module reports the
onsets of glute max, hamstrings and erector spinae relative to the thigh's movement onset (ms,
negative = before movement), their firing order, the glute − hamstring lag, and the pelvis's
anterior tilt and rotation during the lift (deg, flagged above 5°); then per-side averages and
coaching advice in plain words — advice, never a diagnosis.

Signals
-------
* **Hip extension rate** from the gyroscopes: each sensor's rate in its segment frame is
  ``mounting @ gyr`` (x anterior, y superior, z right); the sagittal rate is the z component,
  positive = the segment's long axis swinging anteriorly (flexion). Lying prone does not change
  this: lifting the straight leg is hip *extension*, a negative thigh rate about z. The hip
  extension rate is ``-(ω_z,thigh − ω_z,pelvis)`` (positive while lifting), so whole-body motion
  (lying down, the pelvis carrying the leg) cancels; without a pelvis IMU the thigh alone is used.
* **Movement onset**: a lift is found where the low-passed hip-extension rate exceeds
  ``lift_rate_dps`` (5 deg/s). That crossing is tens of ms after the leg starts to move, so the
  onset is back-tracked: from the crossing back to the last sample within the pre-lift rest
  noise (mean + 3 SD of the raw rate in the rest before the lift), then refined to the instant
  the early, near-linear rise of the raw rate extrapolates to the rest level (a lift from rest
  starts with zero speed and roughly constant angular acceleration).
* **Muscle onsets**: band-pass (:func:`emg_clean`) → Teager–Kaiser envelope
  (:func:`emg_tkeo_envelope`) → first crossing of the rest baseline mean + 3 SD lasting ≥ 25 ms
  (:func:`emg_onsets`), baseline from the quietest 1 s of the rest before the lift
  (:func:`emg_quiet_window`); activations < 50 ms apart are joined and the onset is that of
  the activation still on when the hold starts. Hamstrings = biceps femoris (semitendinosus
  if it is missing); erector spinae = the lifted side's (the other side's if missing). All
  channels of the lifted side and both erectors are also reported by channel name.
* **Pelvic motion**: the pelvis gyro (segment frame), its rest bias removed, integrated from
  movement onset to the end of the hold: anterior tilt = −∫ω_z, rotation = ∫ω_y (about the
  long axis), reported positive toward the lifted side. Flagged when either peak exceeds 5°.

Pure numpy/scipy; no file, network or UI imports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, sosfiltfilt

from .data import EmgData, ImuData
from .emg import emg_clean, emg_onsets, emg_quiet_window, emg_tkeo_envelope

__all__ = [
    "PheLift",
    "PheRepetition",
    "PheResult",
    "PheSideSummary",
    "PheThresholds",
    "phe_advice",
    "phe_analyze",
    "phe_detect_repetitions",
    "phe_hip_extension_rate",
]

SIDES = ("l", "r")
SIDE_NAMES = {"l": "left", "r": "right"}
MUSCLES = ("glute_max", "hamstring", "erector_spinae")
MUSCLE_NAMES = {"glute_max": "glute max", "hamstring": "hamstrings",
                "erector_spinae": "erector spinae"}

#: Shown with every result (DOMAIN.md).
PHE_NOTES = (
    "In healthy people the hamstrings often fire first (in one study lateral hamstrings about "
    "100 ms and glute max about 10 ms before the leg moved), so an order with hamstrings first "
    "is not a problem by itself.",
    "This is coaching advice, not a diagnosis. The test's agreement between examiners is "
    "moderate (kappa about 0.7): repeat it on another day before changing much.",
)


@dataclass(frozen=True)
class PheThresholds:
    """PHE settings (*defaults* unless DOMAIN.md gives the number).

    Attributes
    ----------
    lift_rate_dps : float
        Hip-extension rate (deg/s, low-passed at ``rate_lowpass_hz``) that marks a lift.
    min_lift_deg, max_lift_deg : float
        Accepted lift size (deg). DOMAIN.md's lift of ~10-15 cm is ~7-10° for an 85 cm leg,
        and active hip extension ends near 20°; a bigger "lift" is something else (a running
        stride, lying down, turning over) and is not counted (it is kept in
        :attr:`PheResult.rejected`).
    max_hold_s : float
        Longest lift-to-lowering time (s) accepted as one repetition.
    rest_s : float
        Rest (s) before a lift used as the noise and bias reference.
    onset_k_sd : float
        Rest noise SDs a rate must exceed to count as moving.
    rate_lowpass_hz : float
        Low-pass (Hz, zero-phase) for lift detection only.
    emg_before_ms, emg_k_sd, emg_min_duration_ms, emg_baseline_ms : float
        Muscle onsets are searched from ``emg_before_ms`` before movement onset to the end of
        the hold, at baseline mean + ``emg_k_sd`` SD lasting ``emg_min_duration_ms``, baseline
        the quietest ``emg_baseline_ms`` of the rest before (shorter if the rest is shorter,
        down to ``emg_min_baseline_ms``). The rest before a lift is still, so a long window
        (1 s) is safe and keeps the SD honest: a 200 ms quietest window let noise excursions
        pass as onsets in ~5 % of muscles on the simulator.
    emg_merge_gap_ms : float
        Activations closer than this (ms) are one (the TKEO envelope dips while active).
    pelvic_flag_deg : float
        Pelvic tilt or rotation (deg) above which a repetition is flagged (DOMAIN.md: 5°).
    glute_late_ms : float
        Glute max onset later than this after movement onset (ms) reads as *late*.
    glute_lag_ms : float
        Glute − hamstring lag above this (ms) reads as *late* too (healthy ≈ +90 ms).
    """

    lift_rate_dps: float = 5.0
    min_lift_deg: float = 3.0
    max_lift_deg: float = 20.0
    max_hold_s: float = 8.0
    rest_s: float = 1.0
    onset_k_sd: float = 3.0
    rate_lowpass_hz: float = 8.0
    emg_before_ms: float = 400.0
    emg_k_sd: float = 3.0
    emg_min_duration_ms: float = 25.0
    emg_baseline_ms: float = 1000.0
    emg_min_baseline_ms: float = 200.0
    emg_merge_gap_ms: float = 50.0
    pelvic_flag_deg: float = 5.0
    glute_late_ms: float = 50.0
    glute_lag_ms: float = 150.0


@dataclass(frozen=True)
class PheLift:
    """One lift of one leg found in the thigh IMU (times in session seconds).

    Attributes
    ----------
    side : str
        ``"l"`` or ``"r"``.
    movement_onset_s : float
        The instant the thigh starts to move (back-tracked, see module notes).
    hold_start_s, lower_start_s, lower_end_s : float
        End of the lift, start and end of the lowering.
    lift_deg : float
        Hip extension reached (deg).
    detection_s : float
        Where the low-passed rate crossed ``lift_rate_dps`` (before back-tracking).
    """

    side: str
    movement_onset_s: float
    hold_start_s: float
    lower_start_s: float
    lower_end_s: float
    lift_deg: float
    detection_s: float


@dataclass(frozen=True)
class PheRepetition:
    """Results of one repetition. Onsets in ms relative to movement onset (negative = before).

    Attributes
    ----------
    lift : PheLift
        Timing of the lift.
    glute_onset_ms, hamstring_onset_ms, erector_onset_ms : float
        Onsets (ms), NaN when the muscle did not switch on.
    order : tuple of str
        Muscles (``"glute_max"``, ``"hamstring"``, ``"erector_spinae"``) by onset.
    glute_ham_lag_ms : float
        Glute − hamstring onset (ms, positive = glutes later).
    pelvic_tilt_deg, pelvic_rotation_deg : float
        Peak anterior tilt and rotation toward the lifted side during lift and hold (deg).
    pelvic_flag : bool
        Either exceeded ``pelvic_flag_deg``.
    channel_onsets_ms : dict
        Onset (ms) of every analysed channel by name.
    """

    lift: PheLift
    glute_onset_ms: float
    hamstring_onset_ms: float
    erector_onset_ms: float
    order: tuple[str, ...]
    glute_ham_lag_ms: float
    pelvic_tilt_deg: float
    pelvic_rotation_deg: float
    pelvic_flag: bool
    channel_onsets_ms: Mapping[str, float] = field(default_factory=dict)

    @property
    def side(self) -> str:
        return self.lift.side


@dataclass(frozen=True)
class PheSideSummary:
    """Averages of one side's repetitions (NaN-aware means).

    Attributes
    ----------
    n_reps : int
    glute_onset_ms, hamstring_onset_ms, erector_onset_ms, glute_ham_lag_ms : float
        Mean onsets and lag (ms).
    order : tuple of str
        The most common firing order.
    pelvic_tilt_deg, pelvic_rotation_deg : float
        Mean peaks (deg).
    n_pelvic_flags : int
        Repetitions flagged for pelvic motion.
    lift_deg : float
        Mean lift (deg).
    """

    n_reps: int
    glute_onset_ms: float
    hamstring_onset_ms: float
    erector_onset_ms: float
    glute_ham_lag_ms: float
    order: tuple[str, ...]
    pelvic_tilt_deg: float
    pelvic_rotation_deg: float
    n_pelvic_flags: int
    lift_deg: float


@dataclass(frozen=True)
class PheResult:
    """The whole test: repetitions, per-side averages, advice and notes; ``rejected``: the
    movements too big to be a lift (above ``max_lift_deg``), so a caller can say so."""

    repetitions: tuple[PheRepetition, ...]
    sides: Mapping[str, PheSideSummary]
    advice: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...] = PHE_NOTES
    rejected: tuple[PheLift, ...] = ()

    def side_repetitions(self, side: str) -> list[PheRepetition]:
        return [r for r in self.repetitions if r.side == side]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for summary.json (NaN as None)."""
        reps = []
        for r in self.repetitions:
            reps.append({
                "side": r.side, **{k: _plain(v) for k, v in vars(r.lift).items() if k != "side"},
                "glute_onset_ms": _plain(r.glute_onset_ms),
                "hamstring_onset_ms": _plain(r.hamstring_onset_ms),
                "erector_onset_ms": _plain(r.erector_onset_ms),
                "order": list(r.order), "glute_ham_lag_ms": _plain(r.glute_ham_lag_ms),
                "pelvic_tilt_deg": _plain(r.pelvic_tilt_deg),
                "pelvic_rotation_deg": _plain(r.pelvic_rotation_deg),
                "pelvic_flag": bool(r.pelvic_flag),
                "channel_onsets_ms": {k: _plain(v) for k, v in r.channel_onsets_ms.items()},
            })
        sides = {s: {k: (list(v) if isinstance(v, tuple) else _plain(v))
                     for k, v in vars(summary).items()} for s, summary in self.sides.items()}
        return {"repetitions": reps, "sides": sides,
                "advice": {s: list(a) for s, a in self.advice.items()},
                "notes": list(self.notes)}


def _plain(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _segment_rate_dps(imu: ImuData) -> NDArray[np.float64]:
    """Angular velocity in the segment frame (deg/s), (n, 3)."""
    return np.asarray(imu.gyr_dps, dtype=float) @ np.asarray(imu.mounting, dtype=float).T


def _side_of(imu: ImuData) -> str:
    side = imu.segment.rsplit("_", 1)[-1]
    if not imu.segment.startswith("thigh") or side not in SIDES:
        raise ValueError(f"expected a thigh_l or thigh_r IMU, got segment {imu.segment!r}")
    return side


def _on_time(imu: ImuData, column: NDArray[np.float64], t_s: NDArray[np.float64]
             ) -> NDArray[np.float64]:
    return np.interp(t_s, imu.time_s, column)


def phe_hip_extension_rate(thigh: ImuData, pelvis: ImuData | None = None
                           ) -> NDArray[np.float64]:
    """Hip extension rate (deg/s, positive = extending) on the thigh IMU's time base.

    Parameters
    ----------
    thigh : ImuData
        ``thigh_l`` or ``thigh_r``, with its known mounting.
    pelvis : ImuData, optional
        Pelvis IMU; its sagittal rate is subtracted (interpolated onto the thigh's times).

    Returns
    -------
    ndarray, shape (n_thigh_samples,)
        ``-(ω_z,thigh − ω_z,pelvis)`` in deg/s, gyro bias *not* removed.
    """
    rate = -_segment_rate_dps(thigh)[:, 2]
    if pelvis is not None:
        rate = rate + _on_time(pelvis, _segment_rate_dps(pelvis)[:, 2], thigh.time_s)
    return rate


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _rest_stats(x: NDArray[np.float64], a: int, b: int) -> tuple[float, float]:
    seg = x[max(0, a):max(0, b)]
    if len(seg) < 5:
        return 0.0, 1.0
    return float(np.mean(seg)), max(float(np.std(seg)), 1e-3)


def _backtrack_onset(raw: NDArray[np.float64], cross: int, rest: tuple[float, float],
                     k_sd: float, fs: float) -> float:
    """Sub-sample index where a rise from rest starts (see module notes)."""
    mu, sd = rest
    level = mu + k_sd * sd
    i0 = cross
    while i0 > 0 and raw[i0] > level:
        i0 -= 1
    # Near-linear early rise: fit from the first moving sample up to 30 % of the peak.
    stop = min(len(raw), cross + round(0.25 * fs))
    peak = float(np.max(raw[i0:stop])) if stop > i0 else level
    j = i0 + 1
    top = j
    while top < stop and raw[top] - mu < 0.3 * (peak - mu):
        top += 1
    idx = np.arange(j, max(top, j + 2))
    idx = idx[idx < len(raw)]
    if len(idx) >= 2:
        slope, icpt = np.polyfit(idx, raw[idx] - mu, 1)
        if slope > 0:
            return float(np.clip(-icpt / slope, i0 - 2.0, i0 + 1.0))
    return float(i0)


def phe_detect_repetitions(thigh: ImuData, pelvis: ImuData | None = None, *,
                           start_s: float | None = None, end_s: float | None = None,
                           thresholds: PheThresholds | None = None,
                           rejected: list[PheLift] | None = None) -> list[PheLift]:
    """Lifts of one leg: movement onset, end of lift, lowering.

    Parameters
    ----------
    thigh : ImuData
        The lifted side's thigh IMU (``thigh_l``/``thigh_r``) with its known mounting.
    pelvis : ImuData, optional
        Pelvis IMU, so that whole-body motion cancels (recommended).
    start_s, end_s : float, optional
        Session-time window of the test (s), e.g. the prone phase; default all data.
    thresholds : PheThresholds, optional
        Settings.
    rejected : list, optional
        Receives the movements larger than ``max_lift_deg`` (not lifts of this test).

    Returns
    -------
    list of PheLift
        In time order.
    """
    th = thresholds or PheThresholds()
    side = _side_of(thigh)
    fs = thigh.rate_hz
    t = thigh.time_s
    rate = phe_hip_extension_rate(thigh, pelvis)
    sel = np.ones(len(t), bool)
    if start_s is not None:
        sel &= t >= start_s
    if end_s is not None:
        sel &= t < end_s
    idx = np.flatnonzero(sel)
    if len(idx) < round(fs):
        return []
    t, raw = t[idx], rate[idx]
    raw = raw - np.median(raw)  # mostly rest: the median is the gyro bias
    sos = butter(2, th.rate_lowpass_hz, fs=fs, output="sos")
    smooth = sosfiltfilt(sos, raw)
    up = _runs(smooth > th.lift_rate_dps)
    down = _runs(smooth < -th.lift_rate_dps)
    lifts: list[PheLift] = []
    prev_end = 0
    n_rest = round(th.rest_s * fs)
    for a, b in up:
        if a < prev_end:
            continue
        lowering = [(c, d) for c, d in down if c >= b and (c - b) <= th.max_hold_s * fs]
        if not lowering:
            continue
        c, d = lowering[0]
        rest_a = max(prev_end, a - n_rest - round(0.2 * fs))
        rest = _rest_stats(raw, rest_a, a - round(0.2 * fs))
        onset_i = _backtrack_onset(raw, a, rest, th.onset_k_sd, fs)
        level = rest[0] + th.onset_k_sd * rest[1]
        hold = b
        while hold < c and raw[hold] > level:
            hold += 1
        lower_start = c
        while lower_start > hold and raw[lower_start] < -level:
            lower_start -= 1
        lower_end = min(d, len(raw) - 1)
        while lower_end < len(raw) - 1 and raw[lower_end] < -level:
            lower_end += 1
        i_on = math.floor(onset_i)
        lift_deg = float(np.sum(raw[max(0, i_on):hold + 1]) / fs)
        if lift_deg < th.min_lift_deg:
            continue
        t_on = float(np.interp(onset_i, np.arange(len(t)), t))
        lift = PheLift(side=side, movement_onset_s=t_on, hold_start_s=float(t[hold]),
                       lower_start_s=float(t[lower_start]), lower_end_s=float(t[lower_end]),
                       lift_deg=lift_deg, detection_s=float(t[a]))
        if lift_deg > th.max_lift_deg:
            if rejected is not None:
                rejected.append(lift)
            continue
        lifts.append(lift)
        prev_end = lower_end + 1
    return lifts


def _emg_channel(emg: EmgData, names: Sequence[str]) -> str | None:
    return next((n for n in names if n in emg.channels), None)


def _muscle_channels(emg: EmgData, side: str) -> dict[str, str | None]:
    other = "r" if side == "l" else "l"
    return {"glute_max": _emg_channel(emg, [f"glute_max_{side}"]),
            "hamstring": _emg_channel(emg, [f"biceps_femoris_{side}", f"semitendinosus_{side}"]),
            "erector_spinae": _emg_channel(emg, [f"erector_spinae_{side}",
                                                 f"erector_spinae_{other}"])}


def _onset_ms(env: NDArray[np.float64], fs: float, t0_s: float, lift: PheLift,
              prev_end_s: float, th: PheThresholds) -> float:
    """Onset (ms re movement onset) in one channel's TKEO envelope starting at ``t0_s``."""
    def at(t_s: float) -> int:
        return int(np.clip(round((t_s - t0_s) * fs), 0, len(env)))

    on = lift.movement_onset_s
    search_a = at(on - th.emg_before_ms / 1000.0)
    search_b = at(lift.lower_start_s)
    rest_a = at(max(prev_end_s, on - th.emg_before_ms / 1000.0 - 1.5))
    rest_a = min(rest_a + round(0.1 * fs), search_a)  # muscles of the last lowering switch off
    base_ms = min(th.emg_baseline_ms, (search_a - rest_a) * 1000.0 / fs)
    if base_ms < th.emg_min_baseline_ms or search_b - search_a < 2:
        return math.nan
    base = emg_quiet_window(env, fs, base_ms, start=rest_a, stop=search_a)
    onsets, offsets = emg_onsets(env[search_a:search_b], fs, baseline=env[slice(*base)],
                                 k_sd=th.emg_k_sd, min_duration_ms=th.emg_min_duration_ms)
    # The TKEO envelope of an active muscle still dips below threshold now and then: join
    # activations separated by less than ``emg_merge_gap_ms``.
    gap = round(th.emg_merge_gap_ms * fs / 1000.0)
    if len(onsets) > 1:
        join = (onsets[1:] - offsets[:-1]) < gap
        onsets = onsets[np.concatenate([[True], ~join])]
        offsets = offsets[np.concatenate([~join, [True]])]
    # The muscle works through the lift and hold: take the activation still on at the start
    # of the hold, so a brief noise excursion in the rest before cannot pass as the onset.
    ref = at(lift.hold_start_s) - search_a
    keep = offsets > ref
    onsets, offsets = onsets[keep], offsets[keep]
    if len(onsets) == 0 or onsets[0] == 0:  # none, or already on before the search began
        return math.nan
    return float((t0_s + (search_a + onsets[0]) / fs - on) * 1000.0)


def _pelvic_motion(pelvis: ImuData | None, lift: PheLift, prev_end_s: float,
                   th: PheThresholds) -> tuple[float, float]:
    if pelvis is None:
        return math.nan, math.nan
    t = pelvis.time_s
    w = _segment_rate_dps(pelvis)
    on = lift.movement_onset_s
    rest = (t >= max(prev_end_s, on - th.rest_s - 0.2)) & (t < on - 0.1)
    seg = (t >= on - 0.05) & (t <= lift.lower_start_s)
    if rest.sum() < 5 or seg.sum() < 2:
        return math.nan, math.nan
    bias = w[rest].mean(axis=0)
    ang = np.cumsum(w[seg] - bias, axis=0) / pelvis.rate_hz
    tilt = -ang[:, 2]
    toward = -1.0 if lift.side == "l" else 1.0
    rot = toward * ang[:, 1]
    return float(tilt[np.argmax(np.abs(tilt))]), float(rot[np.argmax(np.abs(rot))])


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if len(arr) else math.nan


def _summarise(reps: Sequence[PheRepetition]) -> PheSideSummary:
    orders = Counter(r.order for r in reps if r.order)
    return PheSideSummary(
        n_reps=len(reps),
        glute_onset_ms=_nanmean([r.glute_onset_ms for r in reps]),
        hamstring_onset_ms=_nanmean([r.hamstring_onset_ms for r in reps]),
        erector_onset_ms=_nanmean([r.erector_onset_ms for r in reps]),
        glute_ham_lag_ms=_nanmean([r.glute_ham_lag_ms for r in reps]),
        order=orders.most_common(1)[0][0] if orders else (),
        pelvic_tilt_deg=_nanmean([r.pelvic_tilt_deg for r in reps]),
        pelvic_rotation_deg=_nanmean([r.pelvic_rotation_deg for r in reps]),
        n_pelvic_flags=sum(r.pelvic_flag for r in reps),
        lift_deg=_nanmean([r.lift.lift_deg for r in reps]),
    )


def phe_advice(summary: PheSideSummary, side: str, thresholds: PheThresholds | None = None
               ) -> tuple[str, ...]:
    """Coaching advice for one side (plain words; advice, not a diagnosis).

    Rules: pelvic motion flagged in at least half the repetitions → hip-flexor and quadriceps
    flexibility first; glute max switching on more than ``glute_late_ms`` after movement onset,
    more than ``glute_lag_ms`` after the hamstrings, or not detected → glute bridges, bird dogs
    and direct glute training. Otherwise a short "keep it up".

    Parameters
    ----------
    summary : PheSideSummary
        The side's averages.
    side : str
        ``"l"`` or ``"r"``.
    thresholds : PheThresholds, optional
        Settings.

    Returns
    -------
    tuple of str
    """
    th = thresholds or PheThresholds()
    name = SIDE_NAMES[side]
    if summary.n_reps == 0:
        return (f"No {name} lifts were found: repeat the test, lifting the straight leg "
                "about 10-15 cm and holding for 2 seconds.",)
    out = []
    if summary.n_pelvic_flags * 2 >= summary.n_reps:
        tilt, rot = summary.pelvic_tilt_deg, summary.pelvic_rotation_deg
        out.append(
            f"{name.capitalize()} leg: the pelvis tipped or twisted as the leg rose (tilt "
            f"{tilt:.0f} deg, rotation {rot:.0f} deg). This often goes with tight hip flexors: "
            "start with hip-flexor and quadriceps flexibility, and practise the lift keeping "
            "the pelvis still.")
    glute, lag = summary.glute_onset_ms, summary.glute_ham_lag_ms
    if not math.isfinite(glute):
        out.append(
            f"{name.capitalize()} leg: the glutes hardly switched on during the lift. The "
            "hamstrings may be doing the glutes' work: try glute bridges, bird dogs and direct "
            "glute training.")
    elif glute > th.glute_late_ms or (math.isfinite(lag) and lag > th.glute_lag_ms):
        out.append(
            f"{name.capitalize()} leg: the glutes switched on late ({glute:+.0f} ms from "
            f"movement, {lag:+.0f} ms after the hamstrings), so the hamstrings carry the lift. "
            "Try glute bridges, bird dogs and direct glute training.")
    if not out:
        out.append(f"{name.capitalize()} leg: glutes on time and a steady pelvis - keep it up.")
    return tuple(out)


def phe_analyze(thighs: Sequence[ImuData] | Mapping[str, ImuData], emg: EmgData,
                pelvis: ImuData | None = None, *, start_s: float | None = None,
                end_s: float | None = None, thresholds: PheThresholds | None = None
                ) -> PheResult:
    """Analyse a prone hip extension test.

    Parameters
    ----------
    thighs : sequence or mapping of ImuData
        ``thigh_l`` and/or ``thigh_r`` IMUs with known mounting.
    emg : EmgData
        Raw EMG (mV) with channels named as in DOMAIN.md (``glute_max_l``,
        ``biceps_femoris_l``/``semitendinosus_l``, ``erector_spinae_l`` ...).
    pelvis : ImuData, optional
        Pelvis IMU (pelvic motion; also cancels whole-body motion in lift detection).
    start_s, end_s : float, optional
        Session-time window of the test (s), e.g. the prone phase.
    thresholds : PheThresholds, optional
        Settings.

    Returns
    -------
    PheResult
        Repetitions, per-side averages, advice per side, and the notes to show with them.
    """
    th = thresholds or PheThresholds()
    if emg.signal != "raw":
        raise ValueError("phe_analyze needs raw EMG (onsets use the band-passed signal)")
    imus = list(thighs.values()) if isinstance(thighs, Mapping) else list(thighs)
    fs = emg.rate_hz
    t_emg = emg.time_s
    sel = np.ones(len(t_emg), bool)
    if start_s is not None:
        sel &= t_emg >= start_s - 2.0
    if end_s is not None:
        sel &= t_emg < end_s + 1.0
    first = int(np.argmax(sel)) if sel.any() else 0
    x = np.asarray(emg.samples_mv, dtype=float)[sel]
    t0 = float(t_emg[first])
    envelopes = {}
    if len(x) > 30:
        env_all = emg_tkeo_envelope(emg_clean(x, fs), fs)
        envelopes = {ch: env_all[:, i] for i, ch in enumerate(emg.channels)}
    reps: list[PheRepetition] = []
    rejected: list[PheLift] = []
    for imu in imus:
        side = _side_of(imu)
        lifts = phe_detect_repetitions(imu, pelvis, start_s=start_s, end_s=end_s,
                                       thresholds=th, rejected=rejected)
        muscles = _muscle_channels(emg, side)
        other = "r" if side == "l" else "l"
        channels = [c for c in (f"glute_max_{side}", f"biceps_femoris_{side}",
                                f"semitendinosus_{side}", f"erector_spinae_{side}",
                                f"erector_spinae_{other}") if c in envelopes]
        prev_end = -math.inf if start_s is None else start_s
        for lift in lifts:
            ch_on = {c: _onset_ms(envelopes[c], fs, t0, lift, prev_end, th) for c in channels}
            on = {m: ch_on.get(c, math.nan) for m, c in muscles.items()}
            order = tuple(sorted((m for m in MUSCLES if math.isfinite(on[m])), key=on.get))
            tilt, rot = _pelvic_motion(pelvis, lift, prev_end, th)
            flag = bool(np.nanmax([abs(tilt), abs(rot), 0.0]) > th.pelvic_flag_deg)
            reps.append(PheRepetition(
                lift=lift, glute_onset_ms=on["glute_max"], hamstring_onset_ms=on["hamstring"],
                erector_onset_ms=on["erector_spinae"], order=order,
                glute_ham_lag_ms=on["glute_max"] - on["hamstring"], pelvic_tilt_deg=tilt,
                pelvic_rotation_deg=rot, pelvic_flag=flag, channel_onsets_ms=ch_on))
            prev_end = lift.lower_end_s
    reps.sort(key=lambda r: r.lift.movement_onset_s)
    sides = {_side_of(imu): _summarise([r for r in reps if r.side == _side_of(imu)])
             for imu in imus}
    advice = {s: phe_advice(summary, s, th) for s, summary in sides.items()}
    return PheResult(repetitions=tuple(reps), sides=sides, advice=advice,
                     rejected=tuple(sorted(rejected, key=lambda lift: lift.movement_onset_s)))
