"""A session's guided phases over a window of samples: standing calibration, MVC, prone test.

The operator marks where a phase starts and stops (docs/protocol.md, "Control"); the pipeline
cuts that window out of the station's recent samples and hands it here. Each function returns
a :class:`PhaseResult`: whether the phase is usable (``ok``), what went wrong in plain words
with what to do (``problems``), a JSON-ready ``result`` for the dashboard, and the ``state``
to store per athlete and give the engine.

* :func:`phase_standing` — the static calibration the streaming engine makes from its own
  standing period (:meth:`.stream.StreamingEngine.calibrate_standing`, same code), plus a
  check that the runner stood still: each segment's rotation over the window, from its
  gyroscope with the median as bias (DOMAIN.md: 5 s standing still).
* :func:`phase_mvc` — per muscle, the MVC reference of DOMAIN.md (highest 500 ms mean of the
  zero-phase envelope, noise floor removed as the engine does), with checks that the effort
  was real: clearly above the resting level, held for at least a second, and not below the
  muscle's level while running.
* :func:`phase_prone` — :func:`.phe.phe_analyze` on the window: per repetition onsets, order,
  lag and pelvic motion, per-side means, and the coaching advice (advice, not a diagnosis).

Times are seconds from the phase start. Pure numpy/scipy: no file, network or UI imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .data import EmgData, ImuData
from .emg import emg_mvc_reference
from .phe import SIDE_NAMES, phe_analyze
from .stream import EmgStream, ImuStream, StreamingEngine, StreamSettings
from .strides import emg_preprocess, noise_floor_mv, remove_floor

__all__ = [
    "MVC_MIN_HOLD_S",
    "MVC_MIN_RATIO",
    "STANDING_MAX_MOTION_DEG",
    "STANDING_MIN_S",
    "PhaseResult",
    "phase_mvc",
    "phase_prone",
    "phase_standing",
    "segment_motion_deg",
]

#: Standing: shortest usable window (s) and largest rotation of any segment (deg) (*defaults*).
STANDING_MIN_S = 3.0
STANDING_MAX_MOTION_DEG = 5.0
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


def phase_standing(imus: Mapping[str, ImuData], emg: EmgData | None,
                   window: tuple[float, float], *, settings: StreamSettings | None = None,
                   max_motion_deg: float = STANDING_MAX_MOTION_DEG,
                   min_s: float = STANDING_MIN_S) -> PhaseResult:
    """Standing calibration from a window in which the runner stood still.

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
        Stillness limit per segment and shortest window.

    Returns
    -------
    PhaseResult
        ``state`` is ``calibration_state()["standing"]`` of the engine (IMU axes, gyro bias,
        EMG floor), usable as ``StreamingEngine(calibration=...)``; ``result`` holds per
        segment ``moved_deg`` and ``ok``, ``emg_floor_mv`` per channel and ``duration_s``.
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
    for name, imu in sorted(imus.items()):
        moved = segment_motion_deg(imu)
        still = math.isfinite(moved) and moved <= max_motion_deg
        result["segments"][name] = {"moved_deg": _finite(moved), "ok": still}
        if not still:
            problems.append(f"the {SEGMENT_NAMES.get(name, name)} moved {moved:.0f}° during "
                            "standing calibration: stand still and repeat")
    s = replace(settings or StreamSettings(), standing_s=duration)
    engine = StreamingEngine(
        EmgStream(emg.channels, emg.rate_hz, emg.signal) if emg is not None else None,
        [ImuStream(n, i.rate_hz, i.mounting) for n, i in imus.items()], settings=s,
        start_s=span[0])
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
    """Prone hip extension test over a window (:func:`.phe.phe_analyze`).

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
        (side → sentences; advice, never a diagnosis), ``notes``. No state.
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
    if problems:
        return PhaseResult("prone", False, problems, {"repetitions": [], "sides": {},
                                                      "advice": {}, "notes": []})
    out = phe_analyze(thighs, emg, pelvis, start_s=window[0], end_s=window[1])
    result = out.to_dict()
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
