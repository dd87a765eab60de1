"""What the athlete on a station is doing now, for the Live page: running (cues apply), the
standing calibration, MVC trial *k* of *n* with its countdown, the prone test, or the engine's
own calibration while the first strides are learnt. Pure: no MQTT, no Streamlit.

Where it comes from (docs/protocol.md): the retained ``…/session`` state says whether a
calibration phase is open (``phase``); the live message's ``session_phase`` adds its muscle or
side and when it started; the live message's ``phase`` is the engine's (``standing`` until the
standing calibration is done, ``calibrating`` while it learns the running stride, then
``running``). Only ``running`` is running: the Live page never says "keep going" otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .guide import MVC_EFFORT_S, MVC_POSITION_S, SIDE_WORDS, muscle_words

__all__ = ["CALIBRATION_PHASES", "PhaseView", "Signal", "phase_view", "signals"]

CALIBRATION_PHASES = ("standing", "mvc", "prone")
#: After a phase's stop the athlete gets back to running (and the demo starts its next MVC
#: trial within a few seconds): no running cue for this long.
AFTER_PHASE_S = 8.0
PHASE_WORDS = {"standing": "Standing calibration", "mvc": "MVC trial", "prone": "Prone test"}


@dataclass(frozen=True)
class PhaseView:
    """The station's phase in words."""

    kind: str       # running | standing | mvc | prone | after_phase | engine_standing
                    # | engine_calibrating | unknown
    title: str      # "MVC trial 2 of 6: glute max, left"
    detail: str     # "Get in position… 2 s", "Push as hard as you can: 4 s left"
    step: str       # mvc: "position" | "effort" | "over"; else ""
    running: bool   # the athlete runs and the running cues apply


@dataclass(frozen=True)
class Signal:
    """One live number that is meaningful before any stride: an EMG envelope or an angle."""

    key: str        # "emg/glute_max_l", "hip_l", "tilt"
    label: str
    text: str       # "0.041 mV", "21.4°", "—"
    value: float


def _secs(x: float) -> str:
    return f"{max(0, math.ceil(x - 1e-9)):d} s"


def _mvc(open_phase: Mapping[str, Any], order: Sequence[str], n_channels: int,
         now_ns: int) -> PhaseView:
    muscle = open_phase.get("muscle")
    if isinstance(muscle, str) and muscle:
        k = (list(order).index(muscle) + 1) if muscle in order else len(order) + 1
        n = max(n_channels, len(order), k)
        title = f"MVC trial {k} of {n}: {muscle_words(muscle)}"
    else:
        title = "MVC trial"
    start = open_phase.get("start_ns")
    if not isinstance(start, int) or start <= 0:
        return PhaseView("mvc", title, "Maximal contraction under way", "", False)
    elapsed = max(0.0, (now_ns - start) / 1e9)
    if elapsed < MVC_POSITION_S:
        return PhaseView("mvc", title, f"Get in position… {_secs(MVC_POSITION_S - elapsed)}",
                         "position", False)
    if elapsed < MVC_POSITION_S + MVC_EFFORT_S:
        left = MVC_POSITION_S + MVC_EFFORT_S - elapsed
        return PhaseView("mvc", title, f"Push as hard as you can: {_secs(left)} left",
                         "effort", False)
    return PhaseView("mvc", title, "Relax: the effort is over", "over", False)


def phase_view(*, session: Mapping[str, Any] | None, open_phase: Mapping[str, Any] | None,
               engine_phase: str | None, mvc_order: Sequence[str], n_channels: int,
               now_ns: int) -> PhaseView:
    """The phase from the session state (is a calibration phase open?), the live message's
    ``session_phase`` (which muscle or side, since when) and the engine's phase."""
    session = session or {}
    phase = session.get("phase") if session.get("state") == "running" else None
    if phase not in CALIBRATION_PHASES and isinstance(open_phase, Mapping) and \
            open_phase.get("phase") in CALIBRATION_PHASES and not session:
        phase = open_phase.get("phase")  # no session state seen (yet): the live field says
    details = open_phase if isinstance(open_phase, Mapping) and \
        open_phase.get("phase") == phase else _opened_by(session, phase)
    start = details.get("start_ns")
    elapsed = (max(0.0, (now_ns - start) / 1e9) if isinstance(start, int) and start > 0
               else None)
    since = f": {elapsed:.0f} s" if elapsed is not None else ""
    if phase == "mvc":
        return _mvc(details or {"phase": "mvc"}, mvc_order, n_channels, now_ns)
    if phase == "standing":
        return PhaseView("standing", "Standing calibration",
                         f"Stand upright and still{since}", "", False)
    if phase == "prone":
        side = SIDE_WORDS.get(str(details.get("side")), "")
        what = f"Prone test, {side} leg" if side else "Prone test"
        return PhaseView("prone", what, f"Lying face down, lifting the leg when told{since}",
                         "", False)
    closed = _just_closed(session, now_ns)
    if closed is not None:
        what = PHASE_WORDS.get(str(closed.get("phase")), "Calibration")
        muscle, side = closed.get("muscle"), SIDE_WORDS.get(str(closed.get("side")), "")
        of = (f": {muscle_words(muscle)}" if isinstance(muscle, str) and muscle
              else f", {side} leg" if side else "")
        return PhaseView("after_phase", f"{what} done{of}", "Back to running", "", False)
    if engine_phase == "standing":
        return PhaseView("engine_standing", "Standing calibration",
                         "Stand still: the sensors are being zeroed, then run", "", False)
    if engine_phase == "calibrating":
        return PhaseView("engine_calibrating", "Learning the running stride",
                         "Keep running: numbers per stride follow in a few strides", "", False)
    if engine_phase == "running":
        return PhaseView("running", "Running", "", "", True)
    return PhaseView("unknown", "Waiting for the pipeline", "No live data yet", "", False)


def _mv(value: float) -> str:
    """An envelope in mV with three significant digits at rest as in an effort."""
    if not math.isfinite(value):
        return "—"
    return f"{value:.3f} mV" if abs(value) >= 0.1 else f"{value:.4f} mV"


def _opened_by(session: Mapping[str, Any], phase: Any) -> Mapping[str, Any]:
    """The phase's start from the ``…/session`` reply to the ``calibrate start`` that opened
    it (its ``time_ns``), until the live message's ``session_phase`` says more."""
    result = session.get("result")
    t = session.get("time_ns")
    if (phase in CALIBRATION_PHASES and isinstance(result, Mapping) and result.get("ok")
            and result.get("command") == "calibrate" and "phase" not in result
            and isinstance(t, int)):
        return {"phase": phase, "start_ns": t}
    return {}


def _just_closed(session: Mapping[str, Any], now_ns: int) -> Mapping[str, Any] | None:
    """The phase the session's last command closed, within :data:`AFTER_PHASE_S` of its
    end (the retained ``…/session`` reply's ``result.phase``), else None."""
    result = session.get("result")
    if not isinstance(result, Mapping) or not result.get("ok"):
        return None
    closed = result.get("phase")
    if not isinstance(closed, Mapping) or result.get("command") != "calibrate":
        return None
    end = closed.get("end_ns")
    if not isinstance(end, int) or not 0 <= (now_ns - end) / 1e9 < AFTER_PHASE_S:
        return None
    return closed


def _newest(rows: Sequence[tuple], index: int) -> float:
    for row in reversed(rows):
        v = row[index]
        if isinstance(v, float) and math.isfinite(v):
            return v
    return math.nan


def signals(samples: Sequence[tuple], angles: Sequence[tuple],
            latest: Sequence[float] = (math.nan, math.nan, math.nan)) -> tuple[Signal, ...]:
    """The newest EMG envelope of every channel and the newest hip and pelvis angles, from
    the feed's rolling windows (rows as in :class:`hipstride.dashboard.feed.StationState`);
    an angle the windows do not have yet (the angle series starts once the engine runs) is
    the live message's latest one (there from the standing calibration on), ``latest``."""
    out: list[Signal] = []
    channels = sorted({c for s in samples for c in s[4]})
    for channel in channels:
        value = math.nan
        for s in reversed(samples):
            v = s[4].get(channel)
            if isinstance(v, float) and math.isfinite(v):
                value = v
                break
        out.append(Signal(f"emg/{channel}", f"EMG {muscle_words(channel)}",
                          _mv(value), value))
    rows = [*angles, *((s[0], s[1], s[2], s[3]) for s in samples)]
    rows.sort(key=lambda r: r[0])
    for key, label, i in (("hip_l", "Hip flexion, left", 1), ("hip_r", "Hip flexion, right", 2),
                          ("tilt", "Pelvic tilt", 3)):
        value = _newest(rows, i)
        if not math.isfinite(value) and i - 1 < len(latest):
            value = float(latest[i - 1])
        text = f"{value + 0.0:.1f}°" if math.isfinite(value) else "—"
        out.append(Signal(key, label, text.replace("-0.0°", "0.0°"), value))
    return tuple(out)
