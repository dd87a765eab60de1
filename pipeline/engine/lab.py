"""Sessions whose strides come from the file, not from IMUs: a lab C3D's force plates, its
EVENT section or its markers (``gait_method`` ``force_plate``, ``c3d_events``, ``markers``).

EMG-only is first-class here: onsets per stride as always, and — with no hip angle to find
the extension phase — the glute:hamstring ratio over the gait phase that holds it, from late
swing (:data:`RATIO_FROM` of the previous stride before IC) to toe-off (or
:data:`RATIO_TO_DEFAULT` of the stride when toe-off is unknown). A channel whose envelope
has no bursts over its baseline (:func:`envelope_contrast`) is taken as showing no muscle
activity (noise, an electrode off the muscle): it is flagged ``no_activity`` and gets no onset
or ratio.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .cues import Baseline, CueThresholds, classify_session, evaluate_cues
from .data import EmgData, GaitEvents, ImuData, Kinematics
from .result import AnalysisResult
from .strides import MuscleActivity, emg_integrate, emg_preprocess, stride_rows
from .summary import summarise

#: Late swing, as a fraction of the stride before IC, where the extension phase starts.
RATIO_FROM = 0.15
RATIO_TO_DEFAULT = 0.4
#: A channel shows muscle activity when its envelope's 95th percentile is at least this many
#: times its 5th (bursts over a quiet baseline). Real EMG of a gait trial: 6-14; the envelope
#: of pure noise: about 1.3.
ACTIVE_MIN_CONTRAST = 3.0


def envelope_contrast(envelope_mv: np.ndarray) -> np.ndarray:
    """Per channel: 95th / 5th percentile of the (raw, mV) envelope; inf for a zero floor."""
    x = np.asarray(envelope_mv, float)
    out = []
    for i in range(x.shape[1]):
        col = x[:, i][np.isfinite(x[:, i])]
        if not len(col):
            out.append(math.nan)
            continue
        lo, hi = np.percentile(col, [5, 95])
        out.append(float(hi / lo) if lo > 0 else math.inf)
    return np.asarray(out)


def layout_flags(rows: list[dict], emg_channels: tuple[str, ...], segments: set[str]
                 ) -> list[dict]:
    """``missing:<x>`` becomes ``not_recorded:<x>`` where the whole session has no ``x`` (an
    IMU-only or EMG-only layout is not a fault: no "Check the sensors" alarm for it); a
    channel that is there but fails keeps its ``missing``/``flat``/... flag."""
    def absent(what: str) -> bool:
        if what == "emg":
            return not emg_channels
        if what.startswith("imu_"):
            return what[4:] not in segments
        return what not in emg_channels

    out = []
    for row in rows:
        flags = [f"not_recorded:{f[8:]}" if f.startswith("missing:") and absent(f[8:]) else f
                 for f in str(row.get("quality") or "").split(";") if f]
        out.append(dict(row, quality=";".join(flags)))
    return out


#: What a stride loses when the angles have a gap (markers missing too long) inside it.
HIP_METRICS = ("peak_hip_extension_deg", "peak_hip_extension_pct", "peak_hip_flexion_deg",
               "hip_rom_deg", "glute_ham_ratio")
TILT_METRICS = ("peak_anterior_tilt_deg", "pelvic_tilt_range_deg")


def _without_gapped_angles(row: dict, kinematics: Kinematics | None) -> dict:
    """A stride whose angles have a gap inside it gets no angle metrics (a peak could be in
    the gap) and ``gap:markers`` in its quality."""
    if kinematics is None:
        return row
    a = max(0, math.floor((row["stride_start_s"] - kinematics.start_s) * kinematics.rate_hz))
    b = math.ceil((row["stride_start_s"] + row["stride_time_s"] - kinematics.start_s)
                  * kinematics.rate_hz) + 1
    row = dict(row)
    gapped = False
    hip = kinematics.hip_flexion_deg.get(row["side"])
    if hip is not None and not np.isfinite(hip[a:b]).all():
        row.update(dict.fromkeys(HIP_METRICS, math.nan))
        gapped = True
    tilt = kinematics.pelvic_tilt_deg
    if tilt is not None and not np.isfinite(tilt[a:b]).all():
        row.update(dict.fromkeys(TILT_METRICS, math.nan))
        gapped = True
    if gapped:
        row["quality"] = ";".join(q for q in (row["quality"], "gap:markers") if q)
    return row


def emg_by_phase(row: dict, activity: MuscleActivity, events: GaitEvents, k: int) -> float:
    """∫ glute / ∫ hamstrings (normalised envelopes) from late swing to toe-off."""
    from .strides import _mean_envelope

    side = row["side"]
    glute = _mean_envelope(activity, [f"glute_max_{side}"])
    ham = _mean_envelope(activity, [f"biceps_femoris_{side}", f"semitendinosus_{side}"])
    if glute is None or ham is None:
        return math.nan
    ic, period = row["stride_start_s"], row["stride_time_s"]
    toe = events.toe_off_s[k]
    end = toe if np.isfinite(toe) else ic + RATIO_TO_DEFAULT * period
    a, b = activity.sample(ic - RATIO_FROM * period), activity.sample(end)
    if a < 0 or b > len(glute) or b - a < 2:
        return math.nan
    h = emg_integrate(ham, a, b, activity.rate_hz)
    return float(emg_integrate(glute, a, b, activity.rate_hz) / h) if h > 0 else math.nan


def analyze_with_events(emg: EmgData | None, imus: dict[str, ImuData],
                        events: dict[str, GaitEvents], *, mvc: EmgData | None = None,
                        baseline: Baseline | None = None,
                        thresholds: CueThresholds | None = None,
                        kinematics: Kinematics | None = None,
                        progress: Callable[[str, float], None] | None = None
                        ) -> AnalysisResult:
    """Per-stride rows from given events, EMG and the file's own kinematics (marker angles),
    if any. Raises ValueError when there is neither EMG nor kinematics, or no stride."""
    from .analysis import _muscle_activity

    def step(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    events = {s: e for s, e in events.items() if e.n_strides > 0}
    if emg is None and kinematics is None:
        raise ValueError("gait events but no EMG and no angles: nothing to analyse per stride")
    if not events:
        raise ValueError("too few strides: the file's gait events give no stride (two initial "
                         "contacts of the same foot) on either side")
    problems: list[str] = []
    if imus:
        problems.append(f"IMU {', '.join(imus)} not used: strides come from the file's gait "
                        "events, and IMU kinematics need thigh IMUs")
    step("EMG", 0.3)
    ic = np.sort(np.concatenate([e.ic_s for e in events.values()]))
    activity = None
    try:
        if emg is not None:
            activity = _muscle_activity(emg, ic, mvc, None, [])  # type: ignore[arg-type]
    except ValueError as err:
        problems.append(f"EMG not analysed: {err}")
    if activity is not None and emg is not None:
        raw_env, _ = emg_preprocess(emg)
        for channel, contrast in zip(emg.channels, envelope_contrast(raw_env), strict=True):
            if not contrast >= ACTIVE_MIN_CONTRAST:
                activity.flags.setdefault(channel, []).append("no_activity")
                problems.append(
                    f"{channel} shows no muscle activity (its envelope has no bursts: 95th/5th "
                    f"percentile {contrast:.1f}, real EMG is above {ACTIVE_MIN_CONTRAST:g}): no "
                    "onset or ratio from it; check the electrode's placement and skin contact")
        if activity.normalization == "relative":
            problems.append("no MVC trials: EMG is normalised to the session's own strides, "
                            "so glute:hamstring ratios are relative (compare them within this "
                            "session only)")
    step("strides", 0.7)
    rows = []
    for side, ev in events.items():
        for k, row in enumerate(stride_rows(side, ev, kinematics, activity)):
            row = _without_gapped_angles(row, kinematics)
            if activity is not None and (kinematics is None
                                         or side not in kinematics.hip_flexion_deg):
                row["glute_ham_ratio"] = emg_by_phase(row, activity, ev, k)
            if not ev.valid[k]:
                row["quality"] = ";".join(q for q in (row["quality"], "rejected") if q)
            rows.append(row)
    rows.sort(key=lambda r: (r["stride_start_s"], r["side"]))
    segments = set(imus) | set(kinematics.sagittal_deg if kinematics is not None else ())
    rows = layout_flags(rows, emg.channels if emg is not None else (), segments)
    cue_events = [e.to_dict() for e in evaluate_cues(rows, baseline,
                                                     thresholds=thresholds or CueThresholds())]
    summary: dict[str, Any] = summarise(rows)
    summary["cues"] = cue_events
    summary["classification"] = sorted(classify_session(rows, baseline, thresholds=thresholds))
    summary["quality"] = {
        "normalization": activity.normalization if activity else None,
        "gait_method": {side: ev.method for side, ev in events.items()},
        "ratio_window": (None if activity is None else
                         "peak hip flexion to peak extension (marker angles)"
                         if kinematics is not None else
                         "late swing to toe-off (no hip angles)"),
        "channel_flags": dict(activity.flags) if activity else {},
        "channel_notes": dict(activity.notes) if activity else {},
        "problems": problems,
    }
    if kinematics is not None:
        summary["quality"]["kinematics"] = {k: v for k, v in kinematics.quality.items()}
    summary["holes"] = []
    step("done", 1.0)
    from .analysis import _ensembles

    return AnalysisResult(rows=rows, events=events, kinematics=kinematics, activity=activity,
                          ensembles=_ensembles(events, kinematics, activity),
                          cue_events=cue_events, phe=None, summary=summary, problems=problems)
