"""One whole session through the engine: EMG and IMU arrays in, :class:`AnalysisResult` out.

The order matters and is the same live (:mod:`.stream`) and offline:

1. kinematics from the IMUs (static calibration on the standing period, then fusion);
2. gait events per side — from the shanks when present, else from the thighs;
3. EMG normalised to MVC trials, or dynamically to the session's first steady strides;
4. per-stride rows; cues over the rows; summaries and gait-cycle ensembles;
5. the prone hip extension test, when the session has one.

Whatever cannot be computed (a missing channel, no pelvis IMU) is named in ``problems`` and
the rest goes on. A session with holes (streams without samples for a while: :mod:`.holes`)
is analysed in contiguous parts: no stride and no calibration window spans a hole, and the
parts after one reuse the standing period's static calibration (:mod:`.imu_resume`).
Numerical failures become an :class:`AnalysisError` naming the window.

A recording that starts mid-run (a pipeline session) has no standing period; it carries the
station engine's calibration instead, and :func:`analyze_calibrated` runs it through the
streaming engine resumed from that calibration — the path the live pipeline took — so the
re-analysis gives the strides the pipeline stored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from .cues import Baseline, CueThresholds, classify_session, evaluate_cues
from .data import SIDES, EmgData, GaitEvents, ImuData, Kinematics
from .gait import gait_events_shank, gait_events_thigh
from .holes import (
    MIN_PART_S,
    Hole,
    HoleError,
    contiguous_parts,
    find_holes,
    slice_imu,
    standing_window,
)
from .imu import kinematics_from_imu
from .imu_calibration import ImuCalibration, imu_calibrate
from .imu_resume import CONVERGE_S, kinematics_resumed
from .phe import phe_analyze
from .result import AnalysisResult, Ensemble
from .stream import EmgStream, ImuStream, StreamingEngine, StreamSettings
from .strides import (
    MuscleActivity,
    channel_flags,
    emg_preprocess,
    muscle_activity,
    quality_sample,
    stride_rows,
)
from .summary import cycle_ensemble, summarise

Progress = Callable[[str, float], None]

#: What the user can do about a numerical failure inside the engine.
NUMERICS_ADVICE = ("check that sensor for a loose strap, a stuck or saturated channel, or "
                   "samples missing around that time; analyse the rest of the session by "
                   "cutting the file before or after that window")


class AnalysisError(ValueError):
    """A failure inside the engine, named by the window (start–end s, stream or segment) it
    happened in, with what to do; ``hipstride analyze`` exits with code 2 on it."""


@contextmanager
def _numerics(where: str) -> Iterator[None]:
    """Turn a numerical failure (LinAlgError, floating-point error) into an
    :class:`AnalysisError` naming ``where`` (the window and streams being processed)."""
    try:
        yield
    except (np.linalg.LinAlgError, FloatingPointError) as err:
        raise AnalysisError(f"numerical failure in {where}: {err}; {NUMERICS_ADVICE}"
                            ) from None


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
                                 start_s=kinematics.start_s, side=side,
                                 axial_acc_mps2=kinematics.axial_acc_mps2.get(thigh))
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
            events: Mapping[str, GaitEvents] | None = None,
            kinematics: Kinematics | None = None,
            progress: Progress = _no_progress) -> AnalysisResult:
    """Analyse one session. Raises ValueError only when nothing at all can be computed.

    ``prone_s`` is the (start, end) of a prone hip extension test in the same recording.
    The running analysis uses everything before ``running_end_s`` and before the prone test
    (protocols such as MVC trials follow the run). ``events``: gait events per side from
    outside the IMUs (a lab file's force plates, EVENT section or markers), with
    ``kinematics`` the file's own angles (markers) if any: :func:`.lab.analyze_with_events`
    analyses them instead of the IMUs.
    """
    phe = None
    if prone_s is not None:
        phe = _prone_test(emg, imus, prone_s)
    ends = [t for t in (running_end_s, prone_s[0] if prone_s else None) if t is not None]
    if ends:
        emg, imus = before(emg, imus, min(ends))
    if events:
        from .lab import analyze_with_events

        result = analyze_with_events(emg, imus, dict(events), mvc=mvc, baseline=baseline,
                                     thresholds=thresholds, kinematics=kinematics,
                                     progress=progress)
        if phe is not None:
            result.summary["prone_hip_extension"] = phe
        return result
    problems: list[str] = []
    if emg is None and not imus:
        raise ValueError("no EMG and no IMU data: nothing to analyse")
    holes = find_holes(emg, imus)
    kinematics = None
    found_events: dict[str, GaitEvents | None] = {}
    parts: list[dict[str, Any]] = []
    if holes:
        progress("orientation", 0.0)
        kinematics, found_events, parts, standing_s, notes = _analyze_parts(
            imus, standing_s, holes)
        problems += notes
    elif imus:
        progress("orientation", 0.0)
        with _numerics(f"IMU kinematics (standing period {standing_s[0]:g}–{standing_s[1]:g} "
                       f"s, segments {', '.join(imus)})"):
            kinematics = kinematics_from_imu(imus, standing=standing_s)
        problems += [str(p) for p in kinematics.quality.get("problems", [])]
    progress("gait events", 0.3)
    events: dict[str, GaitEvents] = {}
    for side in SIDES:
        if holes:
            found = found_events.get(side)
        else:
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
            with _numerics("EMG processing (envelopes, noise floor, normalisation)"):
                activity = _muscle_activity(emg, np.sort(steady_ic), mvc, standing_s,
                                            [h for h in holes if "emg" in h.streams])
        except AnalysisError:
            raise
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
    if holes:
        rows = _rows_between_holes(rows, holes)
    from .lab import layout_flags

    rows = layout_flags(rows, emg.channels if emg is not None else (), set(imus))
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
    summary["holes"] = [h.to_dict() for h in holes]
    if parts:
        for part in parts:
            part["strides"] = sum(1 for r in rows if r["valid"]
                                  and part["start_s"] <= r["stride_start_s"] < part["end_s"])
        summary["parts"] = parts
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
    # The streaming engine sees every hole as a gap (its fusion restarts, strides touching
    # it carry dropout flags): the holes are listed, the session is not split.
    summary["holes"] = [h.to_dict() for h in find_holes(emg, imus)]
    if phe is not None:
        summary["prone_hip_extension"] = phe
    progress("done", 1.0)
    return AnalysisResult(rows=rows, events={}, kinematics=None, activity=None, ensembles={},
                          cue_events=cue_events, phe=phe, summary=summary, problems=problems)


# --- sessions with holes ----------------------------------------------------------------------

def _analyze_parts(imus: dict[str, ImuData], standing_s: tuple[float, float],
                   holes: list[Hole]) -> tuple[Kinematics | None, dict[str, GaitEvents | None],
                                               list[dict[str, Any]], tuple[float, float],
                                               list[str]]:
    """Kinematics and gait events of a session with holes, part by part (:mod:`.holes`).

    The standing period is cut at the first hole in it; the first part (the one with the
    standing period) is analysed as a whole session is, every later part with that part's
    static calibration (:func:`.imu_resume.kinematics_resumed`). Returns the kinematics of
    all parts on one time base (NaN in the holes), each side's gait events (a stride that
    would span a hole is kept invalid so the indices stay stable; its row is dropped), what
    summary.json says per part, the standing period used, and notes for the user.
    """
    try:
        standing = standing_window(standing_s, holes)
    except HoleError as err:
        raise AnalysisError(str(err)) from None
    notes = [f"hole at {h.describe()}: the session is analysed in parts, and no stride spans "
             "it" for h in holes]
    if standing != standing_s:
        notes.append(f"the standing period {standing_s[0]:g}–{standing_s[1]:g} s is cut by a "
                     f"hole: calibrated on {standing[0]:g}–{standing[1]:.2f} s")
    if not imus:
        return None, {}, [], standing, notes
    t0 = min(i.start_s for i in imus.values())
    t1 = max(i.start_s + len(i.acc_mps2) / i.rate_hz for i in imus.values())
    spans = contiguous_parts(t0, t1, holes)
    static: dict[str, ImuCalibration] | None = None
    kins: list[Kinematics] = []
    per_side: dict[str, list[GaitEvents]] = {side: [] for side in SIDES}
    parts: list[dict[str, Any]] = []
    for k, (a, b) in enumerate(spans):
        part = {seg: slice_imu(imu, a, b) for seg, imu in imus.items()}
        part = {seg: imu for seg, imu in part.items() if len(imu.acc_mps2) >= 3}
        where = f"the part {a:.2f}–{b:.2f} s (segments {', '.join(part) or 'none'})"
        info: dict[str, Any] = {"start_s": round(a, 4), "end_s": round(b, 4)}
        parts.append(info)
        if k == 0:
            with _numerics(f"the static calibration on the standing period {standing[0]:g}–"
                           f"{standing[1]:.2f} s of {where}"):
                static = {seg: imu_calibrate(imu, standing=standing, functional=False)
                          for seg, imu in part.items()}
            info["calibration"] = "standing period"
        else:
            info["calibration"] = (f"static from the standing period {standing[0]:g}–"
                                   f"{standing[1]:.2f} s; functional axes and orientation from "
                                   f"this part (first {CONVERGE_S:g} s to settle)")
        if b - a < MIN_PART_S:
            info["analysed"] = False
            notes.append(f"{where} is under {MIN_PART_S:g} s long: no strides taken from it")
            continue
        with _numerics(f"the IMU kinematics of {where}"):
            try:
                kin = (kinematics_from_imu(part, standing=standing) if k == 0 else
                       kinematics_resumed(part, {s: c for s, c in (static or {}).items()
                                                 if s in part}))
            except ValueError as err:  # LinAlgError included: the rest is still analysed
                if k == 0:
                    raise
                info["analysed"] = False
                notes.append(f"{where} not analysed: " + (
                    f"numerical failure ({err}); {NUMERICS_ADVICE}"
                    if isinstance(err, np.linalg.LinAlgError) else str(err)))
                continue
            info["analysed"] = True
            kins.append(kin)
            for side in SIDES:
                found = gait_events(kin, side)
                if found is not None and found.n_strides > 0:
                    per_side[side].append(found)
    events = {side: _join_events(found) for side, found in per_side.items() if found}
    return _join_kinematics(kins), events, parts, standing, notes


def _join_events(parts: list[GaitEvents]) -> GaitEvents:
    """One side's events over several parts; the stride across each hole is invalid."""
    ic, toe, valid, reasons = [], [], [], []
    for k, ev in enumerate(parts):
        if k:
            toe.append(math.nan)
            valid.append(False)
            reasons.append("spans a hole in the recording")
        ic.append(ev.ic_s)
        toe.append(ev.toe_off_s)
        valid.append(ev.valid)
        reasons += list(ev.rejected_reason)
    return GaitEvents(parts[0].side, np.concatenate(ic), np.hstack(toe).astype(float),
                      np.hstack(valid).astype(bool), tuple(reasons), parts[0].method)


def _join_kinematics(parts: list[Kinematics]) -> Kinematics | None:
    """Kinematics of several parts on one time base, NaN between them."""
    if not parts:
        return None
    rate = parts[0].rate_hz
    start = parts[0].start_s
    n = max(round((k.start_s - start) * rate) + k.n_samples for k in parts)

    def join(get: Callable[[Kinematics], np.ndarray | None]) -> np.ndarray | None:
        if all(get(k) is None for k in parts):
            return None
        out = np.full(n, np.nan)
        for k in parts:
            x = get(k)
            if x is not None:
                i = round((k.start_s - start) * rate)
                out[i:i + len(x)] = x
        return out

    hip_keys = sorted({s for k in parts for s in k.hip_flexion_deg})
    seg_keys = sorted({s for k in parts for s in k.sagittal_deg})
    quality = dict(parts[0].quality)
    quality["parts_after_holes"] = [{k: v for k, v in p.quality.items() if k != "problems"}
                                    for p in parts[1:]]
    joined = Kinematics(
        rate_hz=rate, start_s=start,
        hip_flexion_deg={s: join(lambda k, s=s: k.hip_flexion_deg.get(s)) for s in hip_keys},
        pelvic_tilt_deg=join(lambda k: k.pelvic_tilt_deg),
        sagittal_deg={s: join(lambda k, s=s: k.sagittal_deg.get(s)) for s in seg_keys},
        sagittal_rate_dps={s: join(lambda k, s=s: k.sagittal_rate_dps.get(s))
                           for s in seg_keys},
        quality=quality)
    # Every other per-segment series of the kinematics (e.g. the axial specific force the
    # thigh gait events may use) is joined the same way.
    extra = {f.name: getattr(parts[0], f.name) for f in dataclasses.fields(Kinematics)
             if f.name not in {"rate_hz", "start_s", "hip_flexion_deg", "pelvic_tilt_deg",
                               "sagittal_deg", "sagittal_rate_dps", "quality"}}
    for name, value in extra.items():
        if isinstance(value, dict):
            keys = sorted({s for k in parts for s in getattr(k, name)})
            joined = dataclasses.replace(joined, **{name: {
                s: join(lambda k, s=s, name=name: getattr(k, name).get(s)) for s in keys}})
    return joined


def _muscle_activity(emg: EmgData, ic_s: np.ndarray, mvc: EmgData | None,
                     rest_s: tuple[float, float], holes: list[Hole]) -> MuscleActivity:
    """:func:`.strides.muscle_activity`; with holes in the EMG, the missing samples are set to
    zero for the filters (no stride reads them: :func:`_rows_between_holes`) and the channel
    checks (flat, saturated, hum) look at the recorded samples only."""
    if not holes:
        return muscle_activity(emg, ic_s=ic_s, mvc=mvc, rest_s=rest_s,
                               preprocessed=emg_preprocess(emg))
    raw = np.asarray(emg.samples_mv, float)
    filled = dataclasses.replace(emg, samples_mv=np.nan_to_num(raw, nan=0.0, posinf=0.0,
                                                               neginf=0.0))
    activity = muscle_activity(filled, ic_s=ic_s, mvc=mvc, rest_s=rest_s,
                               preprocessed=emg_preprocess(filled))
    recorded = raw[np.isfinite(raw).all(axis=1)]
    flags, notes = channel_flags(quality_sample(recorded, emg.rate_hz), emg.channels,
                                 emg.rate_hz, full_scale_mv=10.0, signal=emg.signal)
    return dataclasses.replace(activity, flags=flags, notes=notes)


#: The EMG a stride's metrics read: from half a stride and 1 s before its IC (onset baseline,
#: filter edges) to 0.4 s after its end, as the streaming engine cuts it.
EMG_BEFORE_S, EMG_AFTER_S = 1.0, 0.4


def _rows_between_holes(rows: list[dict], holes: list[Hole]) -> list[dict]:
    """Rows that span no hole; a row whose EMG window touches an EMG hole loses its EMG
    metrics and carries ``dropout:emg`` (as live)."""
    kept = []
    for row in rows:
        a, t = row["stride_start_s"], row["stride_time_s"]
        if any(h.overlaps(a, a + t) for h in holes):
            continue
        if any("emg" in h.streams and h.overlaps(a - t / 2 - EMG_BEFORE_S, a + t + EMG_AFTER_S)
               for h in holes):
            row = dict(row, glute_onset_ms=math.nan, hamstring_onset_ms=math.nan,
                       onset_lag_ms=math.nan, glute_ham_ratio=math.nan,
                       quality=";".join(q for q in (row["quality"], "dropout:emg") if q))
        kept.append(row)
    return kept


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
