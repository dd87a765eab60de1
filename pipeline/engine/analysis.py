"""One whole session through the engine: EMG and IMU arrays in, :class:`AnalysisResult` out.

The order matters and is the same live (:mod:`.stream`) and offline:

1. kinematics from the IMUs (static calibration on the standing period, then fusion);
2. gait events per side — from the shanks when present, else from the thighs;
3. EMG normalised to MVC trials, or dynamically to the session's first steady strides;
4. per-stride rows; cues over the rows; summaries and gait-cycle ensembles;
5. the prone hip extension test, when the session has one.

Whatever cannot be computed (a missing channel, no pelvis IMU) is named in ``problems`` and
the rest goes on.

A recording that starts mid-run (a pipeline session) has no standing period; it carries the
station engine's calibration instead, and :func:`analyze_calibrated` runs it through the
streaming engine resumed from that calibration — the path the live pipeline took — so the
re-analysis gives the strides the pipeline stored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .cues import Baseline, CueThresholds, classify_session, evaluate_cues
from .data import SIDES, EmgData, GaitEvents, ImuData, Kinematics
from .gait import gait_events_shank, gait_events_thigh
from .imu import kinematics_from_imu
from .phe import phe_analyze
from .result import AnalysisResult, Ensemble
from .stream import EmgStream, ImuStream, StreamingEngine, StreamSettings
from .strides import MuscleActivity, emg_preprocess, muscle_activity, stride_rows
from .summary import cycle_ensemble, summarise

Progress = Callable[[str, float], None]


def _no_progress(_stage: str, _fraction: float) -> None:
    pass


def gait_events(kinematics: Kinematics, side: str) -> GaitEvents | None:
    """Shank gyroscope events when the shank IMU is there, thigh-based otherwise."""
    shank, thigh = f"shank_{side}", f"thigh_{side}"
    if shank in kinematics.sagittal_rate_dps:
        return gait_events_shank(kinematics.sagittal_rate_dps[shank], kinematics.rate_hz,
                                 start_s=kinematics.start_s, side=side)
    if thigh in kinematics.sagittal_deg:
        return gait_events_thigh(kinematics.sagittal_deg[thigh], kinematics.rate_hz,
                                 start_s=kinematics.start_s, side=side)
    return None


def _ensembles(rows_events: dict[str, GaitEvents], kinematics: Kinematics | None,
               activity: MuscleActivity | None) -> dict[str, dict[str, Ensemble]]:
    out: dict[str, dict[str, Ensemble]] = {}
    for side, events in rows_events.items():
        curves: dict[str, Ensemble] = {}
        if kinematics is not None and side in kinematics.hip_flexion_deg:
            mean, sd, n = cycle_ensemble(kinematics.hip_flexion_deg[side], kinematics.start_s,
                                         kinematics.rate_hz, events.ic_s, events.valid)
            curves["hip_flexion_deg"] = Ensemble(mean, sd, n, "deg")
        if kinematics is not None and kinematics.pelvic_tilt_deg is not None:
            mean, sd, n = cycle_ensemble(kinematics.pelvic_tilt_deg, kinematics.start_s,
                                         kinematics.rate_hz, events.ic_s, events.valid)
            curves["pelvic_tilt_deg"] = Ensemble(mean, sd, n, "deg")
        if activity is not None:
            unit = "fraction of MVC" if activity.normalization == "mvc" else "relative"
            for name, channels in (("glute_envelope", [f"glute_max_{side}"]),
                                   ("hamstring_envelope", [f"biceps_femoris_{side}",
                                                           f"semitendinosus_{side}"])):
                idx = [activity.index(c) for c in channels if activity.index(c) is not None]
                if idx:
                    curve = activity.envelope[:, idx].mean(axis=1)
                    mean, sd, n = cycle_ensemble(curve, activity.start_s, activity.rate_hz,
                                                 events.ic_s, events.valid)
                    curves[name] = Ensemble(mean, sd, n, unit)
        out[side] = curves
    return out


def analyze(emg: EmgData | None, imus: dict[str, ImuData], *,
            standing_s: tuple[float, float] = (0.0, 5.0), mvc: EmgData | None = None,
            baseline: Baseline | None = None, thresholds: CueThresholds | None = None,
            prone_s: tuple[float, float] | None = None, running_end_s: float | None = None,
            progress: Progress = _no_progress) -> AnalysisResult:
    """Analyse one session. Raises ValueError only when nothing at all can be computed.

    ``prone_s`` is the (start, end) of a prone hip extension test in the same recording.
    The running analysis uses everything before ``running_end_s`` and before the prone test
    (protocols such as MVC trials follow the run).
    """
    phe = None
    if prone_s is not None:
        phe = _prone_test(emg, imus, prone_s)
    ends = [t for t in (running_end_s, prone_s[0] if prone_s else None) if t is not None]
    if ends:
        emg, imus = before(emg, imus, min(ends))
    problems: list[str] = []
    if emg is None and not imus:
        raise ValueError("no EMG and no IMU data: nothing to analyse")
    kinematics = None
    if imus:
        progress("orientation", 0.0)
        kinematics = kinematics_from_imu(imus, standing=standing_s)
        problems += [str(p) for p in kinematics.quality.get("problems", [])]
    progress("gait events", 0.3)
    events: dict[str, GaitEvents] = {}
    for side in SIDES:
        found = gait_events(kinematics, side) if kinematics is not None else None
        if found is None or found.n_strides == 0:
            problems.append(f"no strides found on the {'left' if side == 'l' else 'right'} "
                            "side: is its thigh or shank IMU there and was the athlete running?")
            continue
        events[side] = found
    if not events:
        raise ValueError("too few strides: no running strides were found on either side "
                         "(check the IMUs, and that the file covers running, not only standing)")
    activity = None
    if emg is not None:
        progress("EMG", 0.5)
        steady_ic = np.concatenate([e.ic_s[:-1][e.valid] for e in events.values()])
        try:
            activity = muscle_activity(emg, ic_s=np.sort(steady_ic), mvc=mvc,
                                       rest_s=standing_s, preprocessed=emg_preprocess(emg))
        except ValueError as err:
            problems.append(f"EMG not analysed: {err}")
        if activity is not None and activity.notes:
            hummed = ", ".join(sorted(activity.notes))
            problems.append(f"mains hum dominates {hummed}: a notch filter was applied; check "
                            "those electrodes' skin contact and keep cables away from mains")
        if activity is not None and activity.flags:
            for channel, found in sorted(activity.flags.items()):
                problems.append(f"{channel} is {' and '.join(found)}: its metrics are left out "
                                "(electrode off or cable broken?)")
        if activity is not None and activity.normalization == "relative":
            problems.append("no MVC trials: EMG is normalised to the session's own first "
                            "strides, so glute:hamstring ratios are relative (compare them "
                            "within this session only)")
    else:
        problems.append("no EMG: no ratios or onsets")
    progress("strides", 0.8)
    rows = sorted((row for side, ev in events.items()
                   for row in stride_rows(side, ev, kinematics, activity)),
                  key=lambda r: (r["stride_start_s"], r["side"]))
    cue_events = [e.to_dict() for e in evaluate_cues(rows, baseline,
                                                     thresholds=thresholds or CueThresholds())]
    summary: dict[str, Any] = summarise(rows)
    summary["cues"] = cue_events
    # What kind of runner this was today, against the stored baseline or, without one, the
    # population defaults (a runner hamstring-dominant from the first stride has a low own
    # baseline, so the live cues against it stay quiet).
    summary["classification"] = sorted(classify_session(rows, baseline, thresholds=thresholds))
    if phe is not None:
        summary["prone_hip_extension"] = phe
    summary["quality"] = {
        "normalization": activity.normalization if activity else None,
        "gait_method": {side: ev.method for side, ev in events.items()},
        "channel_flags": dict(activity.flags) if activity else {},
        "channel_notes": dict(activity.notes) if activity else {},
        "problems": problems,
    }
    if kinematics is not None:
        summary["quality"]["imu"] = {k: v for k, v in kinematics.quality.items()
                                     if k != "problems"}
    progress("done", 1.0)
    return AnalysisResult(rows=rows, events=events, kinematics=kinematics, activity=activity,
                          ensembles=_ensembles(events, kinematics, activity),
                          cue_events=cue_events, phe=phe, summary=summary, problems=problems)


def analyze_calibrated(emg: EmgData | None, imus: dict[str, ImuData],
                       calibration: Mapping[str, Any], *,
                       settings: Mapping[str, Any] | StreamSettings | None = None,
                       mvc: EmgData | None = None, thresholds: CueThresholds | None = None,
                       prone_s: tuple[float, float] | None = None,
                       running_end_s: float | None = None, block_s: float = 0.05,
                       progress: Progress = _no_progress) -> AnalysisResult:
    """Analyse a session that has no standing period with a stored engine calibration.

    ``calibration`` is a :meth:`.stream.StreamingEngine.calibration_state` (as JSON): the
    streaming engine is resumed from it (:meth:`.stream.StreamingEngine.resume`) and fed the
    whole session in ``block_s`` blocks, as the live pipeline was. With a ``running`` part the
    first ``gap_recovery_s`` (8 s) of strides carry ``dropout:imu_<segment>`` and no
    kinematics (the orientation filters start from the standing pose), as after a pipeline
    restart. ``settings``: the live engine's :class:`.stream.StreamSettings` (or its dict);
    ``mvc``: MVC trials replacing the stored MVC reference; ``prone_s``, ``running_end_s``: as
    :func:`analyze`.
    Samples that are NaN (gaps) are not fed: the engine sees the gap. Strides whose closing
    EMG or IC lies past the end of the data are not produced. Cue events are the engine's,
    as they were raised live. Raises ValueError when nothing can be computed.
    """
    phe = _prone_test(emg, imus, prone_s) if prone_s is not None else None
    ends = [t for t in (running_end_s, prone_s[0] if prone_s else None) if t is not None]
    if ends:
        emg, imus = before(emg, imus, min(ends))
    if emg is None and not imus:
        raise ValueError("no EMG and no IMU data: nothing to analyse")
    if not calibration.get("standing"):
        raise ValueError("the stored calibration has no standing calibration: it cannot be used")
    if isinstance(settings, Mapping):
        known = {f.name for f in dataclasses.fields(StreamSettings)}
        settings = StreamSettings(**{k: v for k, v in settings.items() if k in known})
    engine = StreamingEngine.resume(
        None if emg is None else EmgStream(emg.channels, emg.rate_hz, emg.signal),
        [ImuStream(seg, imu.rate_hz, imu.mounting) for seg, imu in imus.items()],
        calibration, thresholds=thresholds, settings=settings,
        **({"mvc": mvc} if mvc is not None else {}))
    feeds: list[tuple[str, float, float, np.ndarray]] = []  # name, start, rate, samples
    if emg is not None:
        feeds.append(("emg", emg.start_s, emg.rate_hz, emg.samples_mv))
    for seg, imu in imus.items():
        feeds.append((seg, imu.start_s, imu.rate_hz, np.hstack([imu.acc_mps2, imu.gyr_dps])))
    end_s = max(start + len(x) / rate for _, start, rate, x in feeds)
    start_s = min(start for _, start, _, _ in feeds)
    finite = [np.isfinite(x).all(axis=1) for _, _, _, x in feeds]
    n_blocks = max(1, math.ceil((end_s - start_s) / block_s))
    poll_every = max(1, round(engine.settings.imu_batch_s / block_s))
    rows: list[dict] = []
    cue_events: list[dict] = []
    for k in range(n_blocks + 1):
        t1 = start_s + (k + 1) * block_s
        for (name, start, rate, x), ok in zip(feeds, finite, strict=True):
            i0 = max(0, math.ceil((t1 - block_s - start) * rate - 1e-9))
            i1 = min(len(x), math.ceil((t1 - start) * rate - 1e-9))
            for a, b in _runs(ok[i0:i1]):
                block, t0 = x[i0 + a:i0 + b], start + (i0 + a) / rate
                if name == "emg":
                    engine.push_emg(block, t0)
                else:
                    engine.push_imu(name, block[:, :3], block[:, 3:], t0)
        if k % poll_every == poll_every - 1 or k == n_blocks:
            out = engine.poll()
            rows += out.rows
            cue_events += out.cue_events
            progress("streaming engine", min(1.0, k / n_blocks) * 0.95)
    if not rows:
        raise ValueError("too few strides: the engine found no running strides with the "
                         "stored calibration (check that the file covers running)")
    rows.sort(key=lambda r: (r["stride_start_s"], r["side"]))
    summary: dict[str, Any] = summarise(rows)
    summary["cues"] = cue_events
    summary["classification"] = sorted(classify_session(rows, engine.tracker.baseline,
                                                        thresholds=thresholds))
    problems = list(engine.problems)
    norms = sorted({r["normalization"] for r in rows if r.get("normalization")})
    summary["quality"] = {
        "normalization": norms[0] if len(norms) == 1 else (norms or [None])[0],
        "gait_method": {side: next(r["gait_method"] for r in rows if r["side"] == side)
                        for side in SIDES if any(r["side"] == side for r in rows)},
        "channel_flags": {}, "channel_notes": {}, "problems": problems,
        "engine": "streaming (stored calibration)",
    }
    if phe is not None:
        summary["prone_hip_extension"] = phe
    progress("done", 1.0)
    return AnalysisResult(rows=rows, events={}, kinematics=None, activity=None, ensembles={},
                          cue_events=cue_events, phe=phe, summary=summary, problems=problems)


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of True in ``ok``."""
    if not len(ok):
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.view(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _prone_test(emg: EmgData | None, imus: dict[str, ImuData], window: tuple[float, float]
                ) -> dict[str, Any]:
    thighs = {s: imus[s] for s in ("thigh_l", "thigh_r") if s in imus}
    if emg is None or not thighs:
        raise ValueError("the prone hip extension test needs EMG and at least one thigh IMU")
    result = phe_analyze(thighs, emg, imus.get("pelvis"), start_s=window[0], end_s=window[1])
    return result.to_dict()


def window(emg: EmgData, span_s: tuple[float, float]) -> EmgData:
    """The EMG between two session times (e.g. the MVC trials recorded in the session)."""
    a = max(0, round((span_s[0] - emg.start_s) * emg.rate_hz))
    b = max(a, round((span_s[1] - emg.start_s) * emg.rate_hz))
    return EmgData(emg.samples_mv[a:b], emg.channels, emg.rate_hz, emg.start_s + a / emg.rate_hz,
                   emg.signal)


def before(emg: EmgData | None, imus: dict[str, ImuData], end_s: float
           ) -> tuple[EmgData | None, dict[str, ImuData]]:
    """The part of the session before ``end_s`` (the running part, ahead of a prone test)."""
    def cut(start_s: float, rate_hz: float) -> int:
        return max(0, round((end_s - start_s) * rate_hz))

    if emg is not None:
        n = cut(emg.start_s, emg.rate_hz)
        emg = EmgData(emg.samples_mv[:n], emg.channels, emg.rate_hz, emg.start_s, emg.signal)
    imus = {k: ImuData(v.segment, v.acc_mps2[:cut(v.start_s, v.rate_hz)],
                       v.gyr_dps[:cut(v.start_s, v.rate_hz)], v.rate_hz, v.start_s, v.mounting)
            for k, v in imus.items()}
    return emg, imus
