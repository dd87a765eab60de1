"""A session's guided phases over a window of samples: standing calibration, MVC, prone test.

The operator marks where a phase starts and stops (docs/protocol.md, "Control"); the pipeline
cuts that window out of the station's recent samples and hands it here. Each function returns
a :class:`PhaseResult`: whether the phase is usable (``ok``), what went wrong in plain words
with what to do (``problems``), a JSON-ready ``result`` for the dashboard, and the ``state``
to store per athlete and give the engine.

* :func:`phase_standing` — the static calibration the streaming engine makes from its own
  standing period (:meth:`.stream.StreamingEngine.calibrate_standing`, same code), plus a
  check that the runner stood still: each segment's rotation, from its gyroscope with the
  median as bias (DOMAIN.md: 5 s standing still). A runner told to stand takes a moment to
  stop, so only the longest still stretch of the window is used (:func:`still_span`, at
  least ``STANDING_MIN_S``), and the result says which.
* :func:`phase_mvc` — per muscle, the MVC reference of DOMAIN.md (highest 500 ms mean of the
  zero-phase envelope, noise floor removed as the engine does), with checks that the effort
  was real: clearly above the resting level, held for at least a second, and not below the
  muscle's level while running.
* :func:`phase_prone` — :func:`.phe.phe_analyze` on the part of the window where the athlete
  lies prone (:func:`prone_span`: gravity along the pelvis's anterior–posterior axis instead
  of its vertical), so the steps of a runner who starts the test early are not taken for
  lifts: per repetition onsets, order, lag and pelvic motion, per-side means, and the
  coaching advice (advice, not a diagnosis).

Times are seconds from the phase start. Pure numpy/scipy: no file, network or UI imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .data import EmgData, ImuData
from .emg import emg_mvc_reference
from .phe import SIDE_NAMES, phe_analyze
from .stream import EmgStream, ImuStream, StreamingEngine, StreamSettings
from .strides import emg_preprocess, noise_floor_mv, remove_floor

__all__ = [
    "MVC_MIN_HOLD_S",
    "MVC_MIN_RATIO",
    "PRONE_MAX_TILT_DEG",
    "PRONE_MIN_LYING_S",
    "STANDING_MAX_MOTION_DEG",
    "STANDING_MIN_S",
    "STILL_MAX_RATE_DPS",
    "PhaseResult",
    "lying_prone_mask",
    "phase_mvc",
    "phase_prone",
    "phase_standing",
    "prone_span",
    "segment_motion_deg",
    "still_span",
]

#: Standing: shortest usable window (s) and largest rotation of any segment (deg) (*defaults*).
STANDING_MIN_S = 3.0
STANDING_MAX_MOTION_DEG = 5.0
#: Still, sample by sample: every segment's angular speed, averaged over ``STILL_SMOOTH_S``,
#: below this (*default*: running swings the thighs at hundreds of deg/s, quiet standing
#: sways at a few); ``STILL_EDGE_S`` is cut off each end of a still stretch inside the window
#: (the last or first small steps).
STILL_MAX_RATE_DPS = 10.0
STILL_SMOOTH_S = 0.5
STILL_EDGE_S = 0.25
#: Lying prone: gravity within this angle of the pelvis's posterior axis (segment −x;
#: upright it is along +y). Halfway between the two, so a strap fitted askew or a tilted
#: table still counts (*default*); averaged over ``STILL_SMOOTH_S``.
PRONE_MAX_TILT_DEG = 45.0
#: Shortest prone stretch that counts as lying (s; one repetition needs ~5 s) (*default*).
PRONE_MIN_LYING_S = 2.0
#: MVC: the 500 ms peak must be this many times the resting level, and the envelope must stay
#: above ``MVC_HOLD_FRACTION`` of that peak for at least ``MVC_MIN_HOLD_S`` (*defaults*;
#: DOMAIN.md's trials are 3 × 5 s).
MVC_MIN_RATIO = 5.0
MVC_HOLD_FRACTION = 0.5
MVC_MIN_HOLD_S = 1.0
MVC_WINDOW_MS = 500.0
#: An MVC below this fraction of the muscle's running level (mean per-step envelope peak)
#: cannot have been maximal. Not 1: running peaks are instantaneous, the MVC a 500 ms mean,
#: and hamstrings can exceed their isometric MVC when running fast (*default*).
MVC_MIN_RUNNING_FRACTION = 0.5

SEGMENT_NAMES = {"pelvis": "pelvis", "thigh_l": "left thigh", "thigh_r": "right thigh",
                 "shank_l": "left shank", "shank_r": "right shank"}


@dataclass
class PhaseResult:
    """What one phase gave: usable or not, problems in plain words, the JSON-ready result,
    and the state to store and apply (None when there is nothing usable)."""

    phase: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def segment_motion_deg(imu: ImuData) -> float:
    """How far a segment turned during a window (deg): the largest angle of the integrated
    gyroscope (median taken as bias, so a still sensor's bias does not count) from its
    position at the start."""
    gyr = np.asarray(imu.gyr_dps, dtype=float)
    if len(gyr) < 2:
        return math.nan
    angle = np.cumsum(gyr - np.median(gyr, axis=0), axis=0) / imu.rate_hz
    return float(np.max(np.linalg.norm(angle - angle[0], axis=1)))


def _smooth(x: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Centred moving mean over ``n`` samples along axis 0 (edges: shorter windows)."""
    n = max(1, min(n, len(x)))
    c = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), x]), axis=0)
    i = np.arange(len(x))
    lo, hi = np.clip(i - n // 2, 0, len(x)), np.clip(i - n // 2 + n, 0, len(x))
    width = (hi - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return (c[hi] - c[lo]) / width


def _longest_span(t_s: NDArray[np.float64], mask: NDArray[np.bool_], dt_s: float
                  ) -> tuple[float, float] | None:
    """(start, end) in s of the longest run of True samples at times ``t_s``; None if none."""
    if not mask.any():
        return None
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    starts, stops = edges[0::2], edges[1::2]
    k = int(np.argmax(stops - starts))
    return float(t_s[starts[k]]), float(t_s[stops[k] - 1] + dt_s)


def _cut_imu(imu: ImuData, a_s: float, b_s: float) -> ImuData:
    i0 = max(0, math.ceil((a_s - imu.start_s) * imu.rate_hz - 1e-6))
    i1 = max(i0, min(len(imu.gyr_dps), math.ceil((b_s - imu.start_s) * imu.rate_hz - 1e-6)))
    return replace(imu, acc_mps2=imu.acc_mps2[i0:i1], gyr_dps=imu.gyr_dps[i0:i1],
                   start_s=imu.start_s + i0 / imu.rate_hz)


def _cut_emg(emg: EmgData, a_s: float, b_s: float) -> EmgData:
    i0 = max(0, math.ceil((a_s - emg.start_s) * emg.rate_hz - 1e-6))
    i1 = max(i0, min(len(emg.samples_mv),
                     math.ceil((b_s - emg.start_s) * emg.rate_hz - 1e-6)))
    return replace(emg, samples_mv=emg.samples_mv[i0:i1],
                   start_s=emg.start_s + i0 / emg.rate_hz)


def still_span(imus: Mapping[str, ImuData], window: tuple[float, float], *,
               max_rate_dps: float = STILL_MAX_RATE_DPS, smooth_s: float = STILL_SMOOTH_S,
               edge_s: float = STILL_EDGE_S, grid_hz: float = 100.0
               ) -> tuple[float, float] | None:
    """The longest stretch of ``window`` (s) in which every segment is still.

    Still: the segment's angular speed (gyroscope magnitude; a bias of a few deg/s does not
    matter) averaged over ``smooth_s`` stays below ``max_rate_dps``, for every segment at
    once. Missing samples (NaN: a hole) are never still, nor within ``smooth_s`` of one, so
    the stretch never spans a hole. A stretch that ends inside the window loses ``edge_s``
    there (the first or last small movements). Returns (start, end) in s, None if no segment
    is ever still.
    """
    dt = 1.0 / grid_hz
    t = window[0] + np.arange(max(0, math.floor((window[1] - window[0]) * grid_hz))) * dt
    if not len(t) or not imus:
        return None
    mask = np.ones(len(t), bool)
    for imu in imus.values():
        if len(imu.gyr_dps) < 2:
            return None
        raw = np.linalg.norm(np.asarray(imu.gyr_dps, float), axis=1)
        bad = ~np.isfinite(raw)
        n_smooth = round(smooth_s * imu.rate_hz)
        speed = _smooth(np.where(bad, 0.0, raw), n_smooth)
        ts = imu.time_s
        inside = (t >= ts[0]) & (t <= ts[-1] + 1.0 / imu.rate_hz)
        mask &= inside & (np.interp(t, ts, speed) < max_rate_dps)
        if bad.any():  # a hole (NaN samples): never still, nor next to one
            near = _smooth(bad.astype(float), n_smooth) > 0
            mask &= np.interp(t, ts, near.astype(float)) == 0
    span = _longest_span(t, mask, dt)
    if span is None:
        return None
    a, b = span
    a += edge_s if a > t[0] + dt / 2 else 0.0
    b -= edge_s if b < t[-1] + dt / 2 else 0.0
    return (a, b) if b > a else None


def lying_prone_mask(imu: ImuData, *, max_tilt_deg: float = PRONE_MAX_TILT_DEG,
                     smooth_s: float = STILL_SMOOTH_S) -> NDArray[np.bool_]:
    """Per sample of ``imu`` (the pelvis, or a thigh): True while the body lies prone.

    The accelerometer at rest measures the upward reaction to gravity; in the segment frame
    (``mounting @ acc``: x anterior, y superior) that is +y when upright and −x when lying
    face down. Lying prone = the acceleration averaged over ``smooth_s`` (steps and lifts
    average out) within ``max_tilt_deg`` of −x.
    """
    acc = np.asarray(imu.acc_mps2, float) @ np.asarray(imu.mounting, float).T
    if not len(acc):
        return np.zeros(0, bool)
    mean = _smooth(acc, round(smooth_s * imu.rate_hz))
    norm = np.maximum(np.linalg.norm(mean, axis=1), 1e-9)
    return -mean[:, 0] / norm >= math.cos(math.radians(max_tilt_deg))


def prone_span(imu: ImuData, window: tuple[float, float], *,
               max_tilt_deg: float = PRONE_MAX_TILT_DEG) -> tuple[float, float] | None:
    """The longest stretch of ``window`` (s) in which ``imu`` shows the athlete lying prone
    (:func:`lying_prone_mask`); None if never."""
    t = imu.time_s
    inside = (t >= window[0]) & (t < window[1])
    return _longest_span(t, inside & lying_prone_mask(imu, max_tilt_deg=max_tilt_deg),
                         1.0 / imu.rate_hz)


def phase_standing(imus: Mapping[str, ImuData], emg: EmgData | None,
                   window: tuple[float, float], *, settings: StreamSettings | None = None,
                   max_motion_deg: float = STANDING_MAX_MOTION_DEG,
                   min_s: float = STANDING_MIN_S) -> PhaseResult:
    """Standing calibration from the longest still stretch of a window.

    A runner told to stand takes a moment to come to a stop (and may start again before the
    stop is sent): the calibration uses the longest stretch in which every segment is still
    (:func:`still_span`), if it lasts at least ``min_s``, and the result says which part.

    Parameters
    ----------
    imus : mapping of ImuData
        Segment → IMU data of the window (known mounting), times in phase seconds.
    emg : EmgData, optional
        Raw EMG of the window (its noise floor is part of the calibration).
    window : (float, float)
        The phase (s).
    settings : StreamSettings, optional
        The station engine's settings.
    max_motion_deg, min_s : float
        Stillness limit per segment (over the stretch used) and shortest still stretch.

    Returns
    -------
    PhaseResult
        ``state`` is ``calibration_state()["standing"]`` of the engine (IMU axes, gyro bias,
        EMG floor), usable as ``StreamingEngine(calibration=...)``; ``result`` holds per
        segment ``moved_deg`` and ``ok``, ``emg_floor_mv`` per channel, ``duration_s`` (the
        window), ``used_s`` ([start, end] of the still stretch used, phase seconds) and
        ``notes`` (which part was used, in words).
    """
    problems: list[str] = []
    ends = [imu.start_s + len(imu.gyr_dps) / imu.rate_hz for imu in imus.values()]
    starts = [imu.start_s for imu in imus.values()]
    if emg is not None:
        ends.append(emg.start_s + len(emg.samples_mv) / emg.rate_hz)
        starts.append(emg.start_s)
    span = (max(window[0], min(starts, default=window[0])),
            min(window[1], max(ends, default=window[0])))
    duration = max(0.0, span[1] - span[0])
    result: dict[str, Any] = {"duration_s": duration, "segments": {}, "emg_floor_mv": {}}
    if not imus:
        problems.append("no IMU data in the standing window: are the IMUs on and sending?")
    if duration < min_s:
        problems.append(f"the standing calibration lasted only {duration:.1f} s: stand still "
                        f"for about 5 s and repeat")
        return PhaseResult("standing", False, problems, result)
    used = still_span(imus, span) if imus else span
    if used is None or used[1] - used[0] < min_s:
        longest = 0.0 if used is None else used[1] - used[0]
        problems.append(f"no still stretch of {min_s:.0f} s in the standing window (the "
                        f"longest was {longest:.1f} s of {duration:.1f} s): stand still for "
                        "about 5 s and repeat")
        problems += _motion_checks(imus, max_motion_deg, result)
        return PhaseResult("standing", False, problems, result)
    a, b = used
    result["used_s"] = [round(a, 3), round(b, 3)]
    whole = a - span[0] < 0.05 and span[1] - b < 0.05
    result["notes"] = [f"the whole {duration:.1f} s window was still and used" if whole else
                       f"used the still part of the window, {a:.1f}-{b:.1f} s ({b - a:.1f} s "
                       f"of {duration:.1f} s): the rest had movement"]
    imus = {n: _cut_imu(i, a, b) for n, i in imus.items()}
    emg = _cut_emg(emg, a, b) if emg is not None else None
    problems += _motion_checks(imus, max_motion_deg, result)
    s = replace(settings or StreamSettings(), standing_s=b - a)
    engine = StreamingEngine(
        EmgStream(emg.channels, emg.rate_hz, emg.signal) if emg is not None else None,
        [ImuStream(n, i.rate_hz, i.mounting) for n, i in imus.items()], settings=s,
        start_s=a)
    if emg is not None and len(emg.samples_mv):
        engine.push_emg(emg.samples_mv, emg.start_s)
    for name, imu in imus.items():
        if len(imu.gyr_dps):
            engine.push_imu(name, imu.acc_mps2, imu.gyr_dps, imu.start_s)
    try:
        state = engine.calibrate_standing()
    except ValueError as err:
        problems.append(f"no standing calibration: {err}")
        return PhaseResult("standing", False, problems, result)
    for name in sorted(imus):
        if name not in (state.get("imu") or {}):
            result["segments"].setdefault(name, {})["ok"] = False
            if result["segments"][name].get("moved_deg") is not None and \
                    result["segments"][name]["moved_deg"] <= max_motion_deg:
                problems.append(f"the {SEGMENT_NAMES.get(name, name)} was not still enough "
                                "for its calibration (it shook or vibrated): stand still "
                                "and repeat")
    floor = (state.get("emg") or {})
    result["emg_floor_mv"] = dict(zip(floor.get("channels", ()), floor.get("floor_mv", ()),
                                      strict=True))
    ok = not problems
    return PhaseResult("standing", ok, problems, result, state if ok else None)


def _motion_checks(imus: Mapping[str, ImuData], max_motion_deg: float,
                   result: dict[str, Any]) -> list[str]:
    """Each segment's rotation (into ``result["segments"]``); a problem per moving one."""
    problems = []
    for name, imu in sorted(imus.items()):
        moved = segment_motion_deg(imu)
        still = math.isfinite(moved) and moved <= max_motion_deg
        result["segments"][name] = {"moved_deg": _finite(moved), "ok": still}
        if not still:
            problems.append(f"the {SEGMENT_NAMES.get(name, name)} moved {moved:.0f}° during "
                            "standing calibration: stand still and repeat")
    return problems


def _moving_mean(x: np.ndarray, n: int) -> np.ndarray:
    c = np.cumsum(np.r_[0.0, x])
    return (c[n:] - c[:-n]) / n


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return int(np.max(edges[1::2] - edges[0::2]))


def phase_mvc(emg: EmgData, window: tuple[float, float], *,
              muscles: Sequence[str] | None = None,
              floor_mv: Mapping[str, float] | None = None,
              running_mv: Mapping[str, float] | None = None,
              min_ratio: float = MVC_MIN_RATIO, min_hold_s: float = MVC_MIN_HOLD_S
              ) -> PhaseResult:
    """MVC references from a window of maximal efforts.

    Parameters
    ----------
    emg : EmgData
        The window's EMG (raw or envelope), times in phase seconds.
    window : (float, float)
        The phase (s).
    muscles : sequence of str, optional
        The channels that made an effort (the command's ``muscle``); default every channel.
    floor_mv : mapping, optional
        Each channel's noise floor from the standing calibration (removed as the engine
        does, so the reference divides the same envelope); default the window's own
        quietest level.
    running_mv : mapping, optional
        Each channel's level while running (the engine's relative reference): an MVC far
        below it (:data:`MVC_MIN_RUNNING_FRACTION`) cannot be maximal.
    min_ratio, min_hold_s : float
        Effort checks (see the module constants).

    Returns
    -------
    PhaseResult
        ``result["muscles"][channel]``: ``peak_mv`` (the reference), ``rest_mv``,
        ``ratio``, ``held_s``, ``ok``, ``problem``; ``state``: ``{"channels",
        "reference_mv", "normalization": "mvc"}`` of the channels that passed (None if none).
    """
    chans = list(emg.channels)
    wanted = list(muscles) if muscles else chans
    problems: list[str] = []
    unknown = [m for m in wanted if m not in chans]
    if unknown:
        problems.append(f"no EMG channel named {', '.join(unknown)} (channels: "
                        f"{', '.join(chans)}): name the muscle as its channel, e.g. "
                        f"{chans[0] if chans else 'glute_max_l'}")
    wanted = [m for m in wanted if m in chans]
    fs = emg.rate_hz
    n = len(emg.samples_mv)
    result: dict[str, Any] = {"duration_s": n / fs if fs else 0.0, "muscles": {}}
    n_ref = round(MVC_WINDOW_MS * fs / 1000.0)
    if n < max(n_ref, round(2 * fs)):
        problems.append(f"the MVC window holds only {n / fs:.1f} s of EMG: hold a maximal "
                        "effort for 3-5 s and repeat")
        return PhaseResult("mvc", False, problems, result)
    env, _ = emg_preprocess(emg)
    env = np.asarray(env, dtype=float)
    if floor_mv and all(c in floor_mv for c in chans):
        floor = np.array([float(floor_mv[c]) for c in chans])
    else:
        floor = noise_floor_mv(env, fs, emg.start_s, None)
    clean = remove_floor(env.copy(), floor)
    reference = np.asarray(emg_mvc_reference(clean, fs, MVC_WINDOW_MS).values_mv)
    n_hold = max(1, round(0.25 * fs))
    good_ch, good_mv = [], []
    for ch in wanted:
        j = chans.index(ch)
        mean500 = _moving_mean(env[:, j], n_ref)
        rest = max(float(np.percentile(mean500, 5)), float(floor[j]), 1e-9)
        peak = float(reference[j])
        smooth = _moving_mean(clean[:, j], n_hold)
        held = _longest_run(smooth >= MVC_HOLD_FRACTION * peak) / fs if peak > 0 else 0.0
        ratio = (peak + float(floor[j])) / rest
        problem = None
        running = float((running_mv or {}).get(ch, math.nan))
        if not ratio >= min_ratio:
            problem = (f"{ch}: no clear effort (peak {peak:.3f} mV, only {ratio:.1f}× the "
                       "resting level): check the electrode, push as hard as you can and "
                       "repeat")
        elif held < min_hold_s:
            problem = (f"{ch}: the effort was held only {held:.1f} s: hold a maximal effort "
                       "for 3-5 s and repeat")
        elif math.isfinite(running) and peak < MVC_MIN_RUNNING_FRACTION * running:
            problem = (f"{ch}: the effort ({peak:.3f} mV) was far below this muscle's level "
                       f"while running ({running:.3f} mV), so it was not maximal: push as "
                       "hard as you can and repeat")
        ok = problem is None
        result["muscles"][ch] = {"peak_mv": _finite(peak), "rest_mv": _finite(rest),
                                 "ratio": _finite(ratio), "held_s": held, "ok": ok,
                                 "problem": problem}
        if ok:
            good_ch.append(ch)
            good_mv.append(peak)
        else:
            problems.append(problem)
    state = ({"channels": good_ch, "reference_mv": good_mv, "normalization": "mvc",
              "version": 1} if good_ch else None)
    return PhaseResult("mvc", not problems and bool(good_ch), problems, result, state)


def phase_prone(thighs: Mapping[str, ImuData], emg: EmgData | None,
                pelvis: ImuData | None, window: tuple[float, float], *,
                side: str | None = None) -> PhaseResult:
    """Prone hip extension test over the part of a window where the athlete lies prone.

    The athlete may start the test before lying down (or get up before the stop): only the
    longest prone stretch of the window (:func:`prone_span` of the pelvis IMU, else of a
    thigh IMU) is analysed (:func:`.phe.phe_analyze`), and the notes say how much. Movements
    far bigger than a lift (``PheThresholds.max_lift_deg``) are not counted, and said so.

    Parameters
    ----------
    thighs : mapping of ImuData
        ``thigh_l``/``thigh_r`` of the window (known mounting), times in phase seconds.
    emg : EmgData
        Raw EMG of the window (a little before it helps the onset baseline).
    pelvis : ImuData, optional
        Pelvis IMU (pelvic compensation; cancels whole-body motion).
    window : (float, float)
        The phase (s).
    side : str, optional
        ``"l"`` or ``"r"``: only that leg was tested.

    Returns
    -------
    PhaseResult
        ``result``: ``repetitions`` (one row each), ``sides`` (per-side means), ``advice``
        (side → sentences; advice, never a diagnosis), ``notes``, ``used_s`` ([start, end]
        of the prone stretch analysed, phase seconds). No state.
    """
    problems: list[str] = []
    if side is not None:
        thighs = {k: v for k, v in thighs.items() if k == f"thigh_{side}"}
    if emg is None or emg.signal != "raw" or len(emg.samples_mv) < emg.rate_hz:
        problems.append("the prone test needs raw EMG (glute max, hamstrings, erector "
                        "spinae): check the EMG stream and repeat")
    if not thighs:
        which = f"the {SIDE_NAMES[side]} thigh IMU" if side else "a thigh IMU"
        problems.append(f"the prone test needs {which}: check it is on and sending, then "
                        "repeat")
    empty: dict[str, Any] = {"repetitions": [], "sides": {}, "advice": {}, "notes": []}
    if problems:
        return PhaseResult("prone", False, problems, empty)
    posture = pelvis if pelvis is not None else thighs[sorted(thighs)[0]]
    lying = prone_span(posture, window)
    if lying is None or lying[1] - lying[0] < PRONE_MIN_LYING_S:
        return PhaseResult("prone", False, ["no prone lying detected in the window: lie face "
                                            "down before starting the test"], empty)
    a, b = lying
    out = phe_analyze(thighs, emg, pelvis, start_s=a, end_s=b)
    result = out.to_dict()
    result["used_s"] = [round(a, 3), round(b, 3)]
    length = window[1] - window[0]
    notes = [f"analysed {a:.1f}-{b:.1f} s of the {length:.1f} s window ({b - a:.1f} s, "
             f"{100.0 * (b - a) / length:.0f} %): where the {SEGMENT_NAMES[posture.segment]} "
             "IMU shows the athlete lying prone"]
    notes += [f"a {SIDE_NAMES[r.side]} leg movement of {r.lift_deg:.0f}° at "
              f"{r.movement_onset_s:.1f} s was not counted: far above a prone lift of "
              "10-15 cm" for r in out.rejected]
    result["notes"] = notes + result["notes"]
    for name in sorted(thighs):
        s = name[-1]
        if not out.side_repetitions(s):
            problems.append(f"no {SIDE_NAMES[s]} lifts were found: lie prone, lift the "
                            "straight leg about 10-15 cm, hold 2 s, 3-5 times, and repeat")
    if pelvis is None:
        problems.append("no pelvis IMU: pelvic tilt and rotation are not measured")
    ok = bool(out.repetitions) and not any(p.startswith("no ") and "lifts" in p
                                           for p in problems)
    return PhaseResult("prone", ok, problems, result)
