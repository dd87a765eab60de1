"""Per-stride metrics: one row per stride and side, the table of DOMAIN.md.

Inputs are what the other engine modules produce — gait events (:mod:`.gait`), joint angles
(:mod:`.imu`) and processed EMG (:func:`muscle_activity`) — so this module only cuts them
into strides and measures. Windows, relative to a stride's initial contact (IC) and its
stride time T:

* kinematics: IC to the next IC;
* muscle onsets: searched in [IC − 0.45 T, IC + 0.25 T] (late swing to early stance, where
  glute max and hamstrings switch on), against a baseline from the muscle's quietest 200 ms
  in [IC − 0.5 T, IC + 0.5 T];
* glute:hamstring ratio: the hip-extension phase, from peak hip flexion in late swing
  ([IC − 0.4 T, IC + 0.1 T]) to peak hip extension in the stride.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import welch

from .data import EmgData, GaitEvents, Kinematics
from .emg import (
    EmgNormalization,
    EmgQuality,
    emg_clean,
    emg_dynamic_reference,
    emg_envelope,
    emg_filter_design,
    emg_integrate,
    emg_mvc_reference,
    emg_normalize,
    emg_onsets,
    emg_quality,
    emg_quiet_window,
    emg_tkeo_envelope,
)
from .schema import STRIDE_COLUMNS

ONSET_SEARCH = (-0.45, 0.25)
BASELINE_SEARCH = (-0.5, 0.5)
FLEXION_PEAK_SEARCH = (-0.4, 0.1)
#: Percentile of a channel's envelope taken as its noise floor: every running stride has
#: ~0.3 s of rest per muscle, so the lowest few percent of the envelope are rest.
FLOOR_PERCENTILE = 2.0


@dataclass(frozen=True, eq=False)
class MuscleActivity:
    """EMG processed for stride metrics, on the EMG time base.

    ``envelope`` is normalised (fraction of MVC, or of the dynamic reference when
    ``normalization`` is "relative"); ``tkeo_envelope`` feeds onset detection; ``flags`` lists
    per channel what is wrong with it (flat, saturated) — such channels give NaN; ``notes``
    what was worked around (mains hum, notched).
    """

    envelope: np.ndarray
    tkeo_envelope: np.ndarray
    channels: tuple[str, ...]
    rate_hz: float
    start_s: float
    normalization: str
    reference_mv: np.ndarray
    flags: dict[str, list[str]] = field(default_factory=dict)
    #: Problems that were worked around (mains hum, notched): reported, the channel counts.
    notes: dict[str, list[str]] = field(default_factory=dict)

    def index(self, channel: str) -> int | None:
        return self.channels.index(channel) if channel in self.channels else None

    def sample(self, t_s: float) -> int:
        return round((t_s - self.start_s) * self.rate_hz)


def mains_hz(emg: EmgData, *, check_s: float = 30.0, quality: EmgQuality | None = None
             ) -> float | None:
    """50 or 60 when mains hum dominates any channel (so a notch must go in), else None.

    The notch is off by default (DOMAIN.md: good electrode contact beats a notch); it is
    switched on only for a recording the hum would otherwise make useless. ``quality``:
    :func:`.emg.emg_quality` of the same samples when the caller has it (any ``range_mv``;
    only its ``mains`` flags are read), for a recording no longer than ``check_s``.
    """
    chunk = np.asarray(emg.samples_mv[: round(check_s * emg.rate_hz)], float)
    if len(chunk) < emg.rate_hz:
        return None
    if quality is None or len(chunk) != len(emg.samples_mv):
        quality = emg_quality(chunk, emg.rate_hz, np.inf)
    if not quality.mains.any():
        return None
    freqs, psd = welch(chunk - chunk.mean(axis=0), fs=emg.rate_hz,
                       nperseg=round(emg.rate_hz), axis=0)
    power = {hz: psd[np.abs(freqs - hz) <= 1.0].sum() for hz in (50.0, 60.0)}
    return max(power, key=power.get)


def emg_preprocess(emg: EmgData, *, quality: EmgQuality | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Zero-phase envelope (mV) and TKEO envelope of every channel of a raw EMG stream.

    ``quality``: :func:`.emg.emg_quality` of the same samples, when the caller has it (the
    streaming engine checks each stride's window anyway), so the mains check is not redone.
    """
    if emg.signal == "envelope":  # analog envelope modules: already rectified and smoothed
        return np.asarray(emg.samples_mv, float), np.asarray(emg.samples_mv, float)
    hum = mains_hz(emg, quality=quality)
    design = emg_filter_design(emg.rate_hz, notch_hz=hum) if hum else None
    # Single precision: an hour of 6 x 2 kHz is memory-bound, and 24-bit EMG needs no more.
    clean = emg_clean(np.asarray(emg.samples_mv, np.float32), emg.rate_hz, design=design)
    envelope = emg_envelope(clean, emg.rate_hz, band_passed=True)
    return envelope, emg_tkeo_envelope(clean, emg.rate_hz)


def muscle_activity(emg: EmgData, *, ic_s: np.ndarray | None = None,
                    mvc: EmgData | None = None, rest_s: tuple[float, float] | None = None,
                    full_scale_mv: float = 10.0,
                    preprocessed: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> MuscleActivity:
    """Normalise EMG to MVC trials when given, else dynamically to the first 30 strides.

    Parameters
    ----------
    emg
        The session's EMG.
    ic_s
        Initial contacts (session s) of steady strides, for dynamic normalisation.
    rest_s
        A period with the muscles at rest (the standing calibration): its envelope is the
        electrode's noise floor, removed before normalising. Without one, the lowest 2 % of
        each channel's envelope stands in for it.
    mvc
        MVC trials of the same channels (any length); their 500 ms peak is the reference.
    full_scale_mv
        Amplifier range, for the saturation check.
    preprocessed
        ``emg_preprocess(emg)`` when the caller already has it.
    """
    envelope, tkeo = preprocessed or emg_preprocess(emg)
    # The electrode's noise floor rectifies into a constant offset that would dilute every
    # ratio (most for a weak muscle): measure it at rest and take it off.
    floor_mv = noise_floor_mv(envelope, emg.rate_hz, emg.start_s, rest_s)
    envelope = remove_floor(envelope, floor_mv)
    if mvc is not None:
        missing = [c for c in emg.channels if c not in mvc.channels]
        if missing:
            raise ValueError(f"MVC trials lack channel(s) {', '.join(missing)}: record an MVC "
                             "for every muscle, or analyse without --mvc (relative ratios)")
        order = [mvc.channels.index(c) for c in emg.channels]
        mvc_env, _ = emg_preprocess(EmgData(mvc.samples_mv[:, order], emg.channels,
                                            mvc.rate_hz, signal=mvc.signal))
        reference = emg_mvc_reference(remove_floor(mvc_env, floor_mv), mvc.rate_hz)
    else:
        if ic_s is None or len(ic_s) < 3:
            raise ValueError("too few strides to normalise EMG dynamically (need 3 or more; "
                             "30 steady strides are recommended) and no MVC trials given")
        bounds = np.round((np.asarray(ic_s) - emg.start_s) * emg.rate_hz).astype(int)
        bounds = bounds[(bounds >= 0) & (bounds <= len(envelope))]
        reference = emg_dynamic_reference(envelope, bounds, n_strides=30)
    normalized = emg_normalize(envelope, reference)
    flags, notes = channel_flags(quality_sample(emg.samples_mv, emg.rate_hz), emg.channels,
                                 emg.rate_hz, full_scale_mv=full_scale_mv, signal=emg.signal)
    return MuscleActivity(
        envelope=np.asarray(normalized.values), tkeo_envelope=tkeo, channels=emg.channels,
        rate_hz=emg.rate_hz, start_s=emg.start_s,
        normalization=EmgNormalization(normalized.normalization).value,
        reference_mv=np.asarray(reference.values_mv), flags=flags, notes=notes)


def noise_floor_mv(envelope: np.ndarray, rate_hz: float, start_s: float,
                   rest_s: tuple[float, float] | None) -> np.ndarray:
    """Per-channel envelope level at rest: the median over ``rest_s`` (the standing
    calibration), else the lowest :data:`FLOOR_PERCENTILE` % of the whole envelope."""
    if rest_s is not None:
        a = max(0, round((rest_s[0] - start_s) * rate_hz))
        b = min(len(envelope), round((rest_s[1] - start_s) * rate_hz))
        # Skip the filter's start-up transient at the very beginning of a recording.
        a = min(max(a, round(0.5 * rate_hz)), b)
        if b - a >= rate_hz:
            return np.median(envelope[a:b], axis=0)
    return np.percentile(envelope[::10], FLOOR_PERCENTILE, axis=0)


def channel_flags(raw_mv: np.ndarray, channels: tuple[str, ...], rate_hz: float, *,
                  full_scale_mv: float, signal: str = "raw", quality: EmgQuality | None = None
                  ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per channel: ``flags`` that leave it out (flat, saturated) and ``notes`` of what was
    worked around (mains hum: notched in :func:`emg_preprocess`, the channel still counts).
    ``quality``: ``emg_quality(raw_mv, rate_hz, full_scale_mv)`` when the caller has it."""
    if quality is None:
        quality = emg_quality(raw_mv, rate_hz, full_scale_mv)
    flags: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    for i, channel in enumerate(channels):
        found = [name for name, bad in (("flat", quality.flat[i]),
                                        ("saturated", quality.saturated[i])) if bad]
        if found:
            flags[channel] = found
        if quality.mains[i] and signal != "envelope":
            notes[channel] = ["mains"]
    return flags, notes


def quality_sample(x: np.ndarray, rate_hz: float, *, chunk_s: float = 5.0,
                   every_s: float = 60.0) -> np.ndarray:
    """5 s out of every minute: enough to judge a channel flat, saturated or humming, at a
    twelfth of the cost of a spectrum over an hour-long session."""
    chunk, step = round(chunk_s * rate_hz), round(every_s * rate_hz)
    if len(x) <= 2 * step:
        return x
    return np.concatenate([x[i:i + chunk] for i in range(0, len(x) - chunk, step)])


def remove_floor(envelope: np.ndarray, floor_mv: np.ndarray) -> np.ndarray:
    """Take independent noise out of a rectified-mean envelope.

    Muscle signal and electrode noise add as powers, and a rectified-mean envelope is
    proportional to the RMS, so the muscle's part is sqrt(env² − floor²). Subtracting the
    floor linearly would bias a weak muscle low by about floor / envelope.
    """
    power = np.square(envelope)
    floor_power = np.square(floor_mv)
    if np.result_type(power, floor_power) == power.dtype:  # in place: no fresh pages
        np.subtract(power, floor_power, out=power)
    else:
        power = power - floor_power
    np.clip(power, 0.0, None, out=power)
    return np.sqrt(power, out=power)


def _window(activity: MuscleActivity, ic_s: float, stride_s: float,
            rel: tuple[float, float]) -> tuple[int, int]:
    n = len(activity.envelope)
    lo = max(0, activity.sample(ic_s + rel[0] * stride_s))
    hi = min(n, activity.sample(ic_s + rel[1] * stride_s))
    return lo, hi


def muscle_onset_ms(activity: MuscleActivity, channel: str, ic_s: float, stride_s: float
                    ) -> float:
    """Onset of ``channel``'s burst around IC, in ms relative to IC (NaN if none)."""
    i = activity.index(channel)
    if i is None or channel in activity.flags:
        return math.nan
    lo, hi = _window(activity, ic_s, stride_s, BASELINE_SEARCH)
    s_lo, s_hi = _window(activity, ic_s, stride_s, ONSET_SEARCH)
    if hi - lo < activity.rate_hz * 0.3 or s_hi <= s_lo:
        return math.nan
    trace = activity.tkeo_envelope[lo:hi, i]
    baseline = emg_quiet_window(trace, activity.rate_hz)
    onsets, _ = emg_onsets(trace, activity.rate_hz, baseline=baseline)
    onsets = onsets[(onsets > s_lo - lo) & (onsets < s_hi - lo)]
    if not len(onsets):
        return math.nan
    t_onset = activity.start_s + (lo + onsets[0]) / activity.rate_hz
    return (t_onset - ic_s) * 1000.0


def _mean_envelope(activity: MuscleActivity, channels: list[str]) -> np.ndarray | None:
    idx = [activity.index(c) for c in channels
           if activity.index(c) is not None and c not in activity.flags]
    if not idx:
        return None
    return activity.envelope[:, idx].mean(axis=1)


def _segment(curve: np.ndarray, start_s: float, rate_hz: float, t0: float, t1: float
             ) -> tuple[np.ndarray, int]:
    lo = max(0, math.ceil((t0 - start_s) * rate_hz))
    hi = min(len(curve), math.floor((t1 - start_s) * rate_hz) + 1)
    return curve[lo:hi], lo


def _extremum_time(values: np.ndarray, lo: int, start_s: float, rate_hz: float,
                   *, maximum: bool) -> tuple[float, float]:
    """Value and time of the max (or min), refined by a parabola through its neighbours."""
    k = int(np.nanargmax(values) if maximum else np.nanargmin(values))
    value, offset = float(values[k]), 0.0
    if 0 < k < len(values) - 1:
        a, b, c = values[k - 1], values[k], values[k + 1]
        denom = a - 2 * b + c
        if denom != 0:
            offset = 0.5 * (a - c) / denom
            value = float(b - 0.25 * (a - c) * offset)
    return value, start_s + (lo + k + offset) / rate_hz


def stride_rows(side: str, events: GaitEvents, kinematics: Kinematics | None,
                activity: MuscleActivity | None) -> list[dict]:
    """One row per stride of one side (keys: :data:`schema.STRIDE_COLUMNS`)."""
    rows = []
    hip = kinematics.hip_flexion_deg.get(side) if kinematics else None
    tilt = kinematics.pelvic_tilt_deg if kinematics else None
    glute = f"glute_max_{side}"
    hamstrings = [f"biceps_femoris_{side}", f"semitendinosus_{side}"]
    glute_env = _mean_envelope(activity, [glute]) if activity else None
    ham_env = _mean_envelope(activity, hamstrings) if activity else None
    base_flags: list[str] = []
    if activity is None:
        base_flags.append("missing:emg")
    else:
        for channel in [glute, *hamstrings[:1]]:
            if activity.index(channel) is None:
                base_flags.append(f"missing:{channel}")
            base_flags += [f"{flag}:{channel}" for flag in activity.flags.get(channel, [])]
            base_flags += [f"{note}:{channel}" for note in activity.notes.get(channel, [])]
    if hip is None:
        base_flags.append(f"missing:imu_thigh_{side}")
    if tilt is None:
        base_flags.append("missing:imu_pelvis")
    for k in range(events.n_strides):
        ic, ic_next = float(events.ic_s[k]), float(events.ic_s[k + 1])
        period = ic_next - ic
        row: dict = dict.fromkeys(STRIDE_COLUMNS, math.nan)
        row.update(side=side, stride_index=k, stride_start_s=ic, stride_time_s=period,
                   cadence_spm=120.0 / period, valid=bool(events.valid[k]),
                   gait_method=events.method,
                   normalization=activity.normalization if activity else "",
                   quality=";".join(base_flags))
        toe_off = events.toe_off_s[k]
        if np.isfinite(toe_off):
            row["toe_off_pct"] = (toe_off - ic) / period * 100.0
        t_ext = math.nan
        if hip is not None:
            seg, lo = _segment(hip, kinematics.start_s, kinematics.rate_hz, ic, ic_next)
            if len(seg) > 3 and np.isfinite(seg).any():
                low, t_ext = _extremum_time(seg, lo, kinematics.start_s, kinematics.rate_hz,
                                            maximum=False)
                high, _ = _extremum_time(seg, lo, kinematics.start_s, kinematics.rate_hz,
                                         maximum=True)
                row.update(peak_hip_extension_deg=-low,
                           peak_hip_extension_pct=(t_ext - ic) / period * 100.0,
                           peak_hip_flexion_deg=high, hip_rom_deg=high - low)
        if tilt is not None:
            seg, _ = _segment(tilt, kinematics.start_s, kinematics.rate_hz, ic, ic_next)
            if len(seg) > 3 and np.isfinite(seg).any():
                row.update(peak_anterior_tilt_deg=float(np.nanmax(seg)),
                           pelvic_tilt_range_deg=float(np.nanmax(seg) - np.nanmin(seg)))
        if activity is not None:
            row["glute_onset_ms"] = muscle_onset_ms(activity, glute, ic, period)
            ham_onsets = [muscle_onset_ms(activity, c, ic, period) for c in hamstrings]
            ham_onsets = [o for o in ham_onsets if np.isfinite(o)]
            row["hamstring_onset_ms"] = min(ham_onsets) if ham_onsets else math.nan
            row["onset_lag_ms"] = row["glute_onset_ms"] - row["hamstring_onset_ms"]
            if glute_env is not None and ham_env is not None and hip is not None:
                row["glute_ham_ratio"] = _extension_ratio(
                    glute_env, ham_env, activity, hip, kinematics, ic, period, t_ext)
        rows.append(row)
    return rows


def _extension_ratio(glute: np.ndarray, hamstring: np.ndarray, activity: MuscleActivity,
                     hip: np.ndarray, kinematics: Kinematics, ic: float, period: float,
                     t_extension: float) -> float:
    """∫ glute / ∫ hamstring (normalised envelopes) from peak flexion to peak extension."""
    if not np.isfinite(t_extension):
        return math.nan
    seg, lo = _segment(hip, kinematics.start_s, kinematics.rate_hz,
                       ic + FLEXION_PEAK_SEARCH[0] * period, ic + FLEXION_PEAK_SEARCH[1] * period)
    if len(seg) < 3 or not np.isfinite(seg).any():
        return math.nan
    _, t_flexion = _extremum_time(seg, lo, kinematics.start_s, kinematics.rate_hz,
                                  maximum=True)
    a, b = activity.sample(t_flexion), activity.sample(t_extension)
    if a < 0 or b > len(glute) or b - a < 2:
        return math.nan
    ham = emg_integrate(hamstring, a, b, activity.rate_hz)
    return float(emg_integrate(glute, a, b, activity.rate_hz) / ham) if ham > 0 else math.nan
