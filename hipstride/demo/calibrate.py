"""The demo's physio: guided MVC trials for a station whose athlete has no MVC reference yet.

Without MVC references the engine's EMG is "relative" (each muscle against its own running
level, so a glute:hamstring ratio is ~1 for everybody) and a runner who is hamstring-dominant
from the first stride is never cued. So, as a physio would before the first run, the demo
asks each runner for a maximal contraction of every EMG channel, one muscle at a time
(docs/protocol.md, "Control"): ``calibrate`` ``mvc`` start, ~8 s (the simulated runner needs
~3 s to stop and get in position, then pushes for 5 s), stop, then the pipeline's result on
``…/results``; one retry if it is not ok. The pipeline stores good references per athlete and
reuses them at the athlete's next session start, which the start reply says: then nothing is
asked. The rows become ``"mvc"``-normalised once every channel has a reference.

:func:`plan` and :func:`describe` are pure; :func:`calibrate_station` talks to the pipeline
through a :class:`hipstride.control.ControlClient`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hipstride.dashboard.guide import MVC_EFFORT_S, MVC_POSITION_S

#: From ``calibrate … start`` to ``stop``: 3 s to stop running and get in position, 5 s push
#: (the dashboard's guided MVC step, and the Live page's countdown, use the same two numbers).
TRIAL_S = MVC_POSITION_S + MVC_EFFORT_S
#: The pipeline analyses a window once the station's data reaches its end (or 3 s after).
RESULT_TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 10.0
TRIES = 2  # one retry

_DATE = re.compile(r"MVC references of (\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Plan:
    """What to do for one station after its session started."""

    channels: tuple[str, ...]   # the EMG channels still needing an MVC trial
    reused: tuple[str, ...]     # channels whose stored reference was reused
    reused_date: str            # "2026-11-24", or "" when not said


def plan(start_reply: Mapping[str, Any] | None, channels: Sequence[str]) -> Plan:
    """The trials still needed, from the session start reply's ``result.calibration``."""
    cal = ((start_reply or {}).get("result") or {}).get("calibration") or {}
    stored = set(cal.get("mvc_channels") or ()) if "mvc" in (cal.get("reused") or ()) else set()
    match = _DATE.search(str(cal.get("message") or ""))
    return Plan(channels=tuple(c for c in channels if c not in stored),
                reused=tuple(c for c in channels if c in stored),
                reused_date=match.group(1) if match else "")


def describe(result: Mapping[str, Any], muscle: str) -> tuple[bool, str]:
    """(ok, words) of an MVC phase result for ``muscle``: "ok (peak 0.41 mV)" or the
    pipeline's problem in its own words."""
    detail = ((result.get("result") or {}).get("muscles") or {}).get(muscle) or {}
    ok = bool(result.get("ok")) and detail.get("ok", True) is not False
    peak = detail.get("peak_mv")
    if ok:
        return True, f"ok (peak {peak:.2f} mV)" if isinstance(peak, int | float) else "ok"
    problems = [detail.get("problem")] if detail.get("problem") else []
    problems += [p for p in result.get("problems") or () if p not in problems]
    return False, "not ok: " + ("; ".join(str(p) for p in problems) or "no reason given")


def _refusal(reply: Mapping[str, Any] | None) -> str | None:
    """None when the pipeline accepted the command, else why not."""
    if reply is None:
        return "no reply from the pipeline"
    result = reply.get("result") or {}
    if result.get("ok"):
        return None
    return f"refused: {result.get('message') or result.get('reason') or 'no reason given'}"


def mvc_trial(control: Any, station: str, session: str | None, muscle: str, *,
              stopping: threading.Event, trial_s: float = TRIAL_S,
              result_timeout_s: float = RESULT_TIMEOUT_S) -> tuple[bool, str]:
    """One maximal contraction of ``muscle``: start, wait, stop, the pipeline's result."""
    from hipstride.control import build_command

    fields = {"phase": "mvc", "muscle": muscle}
    why = _refusal(control.send(station, build_command("calibrate", action="start", **fields),
                                timeout_s=REPLY_TIMEOUT_S))
    if why:
        return False, why
    if stopping.wait(trial_s):
        return False, "stopped"
    after = control.mark()
    why = _refusal(control.send(station, build_command("calibrate", action="stop", **fields),
                                timeout_s=REPLY_TIMEOUT_S))
    if why:
        return False, why
    got = control.wait_for(
        "results", station, after,
        lambda b: b.get("phase") == "mvc" and b.get("muscle") == muscle
        and (session is None or b.get("session") in (None, session)),
        timeout_s=result_timeout_s)
    if got is None:
        return False, f"no result within {result_timeout_s:g} s"
    return describe(got.body, muscle)


def calibrate_station(control: Any, station: str, start_reply: Mapping[str, Any] | None,
                      channels: Sequence[str], say: Callable[[str], None], *,
                      stopping: threading.Event, trial_s: float = TRIAL_S) -> bool:
    """MVC trials for every channel the athlete has no reference for; True when every
    channel has one at the end. Prints one line per trial (and per retry)."""
    todo = plan(start_reply, channels)
    head = f"calibrate   {station} …"
    if not todo.channels:
        when = f" of {todo.reused_date}" if todo.reused_date else ""
        say(f"{head} reused MVC{when} ({len(todo.reused)} muscles): no trials needed")
        return True
    if todo.reused:
        say(f"{head} reused MVC of {', '.join(todo.reused)}")
    session = (start_reply or {}).get("session")
    all_ok = True
    for muscle in todo.channels:
        for attempt in range(1, TRIES + 1):
            if stopping.is_set():
                return False
            ok, words = mvc_trial(control, station, session, muscle, stopping=stopping,
                                  trial_s=trial_s)
            if stopping.is_set():
                return False
            again = " (retry)" if attempt > 1 else ""
            say(f"{head} MVC {muscle}{again} {words}")
            if ok:
                break
        else:
            all_ok = False
    return all_ok
