"""What the simulated runner does when the dashboard instructs them (calibration commands).

A real athlete follows the physio's screen: *stand still*, *contract your left glute as hard as
you can*, *lie prone and lift your right leg*, *back to running*. :class:`Instructions` turns
those commands into a timeline the generator evaluates like the scripted protocols:

* **holds**: ``[stop_s, resume_s]`` — the runner comes to a stop over ``STOP_S`` (the running
  pattern fades out as after the scripted run) and starts again from ``resume_s`` over the
  session's ``start_ramp_s``; ``resume_s`` is ``inf`` while the hold is open;
* **lying**: ``[down_s, up_s]`` — lying down prone and getting up, ``PRONE_LIE_DOWN_S`` each;
* **MVC trials** and **prone repetitions** in the very format of :mod:`.protocols`, so the same
  activation, posture and ground-truth code serves scripted and commanded protocols.

Every instruction takes effect at ``t_s``, the first session time not yet generated, so samples
already handed out never change. Whatever was asked, a runner left alone resumes running
``hold_max_s`` after the last instruction's activity ends (:meth:`Instructions.expire`).
Pure bookkeeping: no I/O, no randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import protocols
from .gait import smoothstep
from .profiles import Profile

#: Running to standing still (the same fade as at the end of the scripted run).
STOP_S = 2.0
#: From "go" (or from standing still) to the start of an MVC effort.
MVC_REACT_S = 1.0
#: What the runner is doing, as far as the instructions go.
STATES = ("running", "standing", "mvc", "prone")


@dataclass
class Instructions:
    """The commanded timeline of one simulated runner (see the module docstring)."""

    start_ramp_s: float = 2.0
    hold_max_s: float = 120.0
    holds: list[list[float]] = field(default_factory=list)
    lying: list[list[float]] = field(default_factory=list)
    mvc_trials: list[dict] = field(default_factory=list)
    prone_reps: list[dict] = field(default_factory=list)
    #: {"name", "start_s", "end_s"} per instructed phase, for the ground truth.
    phases: list[dict] = field(default_factory=list)
    state: str = "running"
    busy_until_s: float = -math.inf
    deadline_s: float = math.inf

    # --- instructions --------------------------------------------------------------------
    def stand(self, t_s: float) -> None:
        """Stand still (static calibration) until :meth:`resume`."""
        ready = self._upright(t_s)
        self._hold(t_s)
        self._enter("standing", t_s, ready)

    def mvc(self, t_s: float, channels: tuple[str, ...]) -> list[dict]:
        """Maximal voluntary contractions of ``channels``, one after the other; returns them.

        The runner stops first; an athlete already prone does them prone.
        """
        still = self._hold(t_s)
        base = max(t_s, still, self.busy_until_s) + MVC_REACT_S - protocols.MVC_REST_S
        trials = protocols.mvc_trials(channels, base)
        self.mvc_trials += trials
        self._enter("mvc", t_s, base + protocols.mvc_duration_s(channels))
        return trials

    def prone(self, t_s: float, sides: tuple[str, ...], n_reps: int, profile: Profile
              ) -> list[dict]:
        """Lie prone (if not already) and do ``n_reps`` hip extension lifts per side."""
        still = self._hold(t_s)
        if not self._lying_now():
            down = max(t_s, still, self.busy_until_s)
            self.lying.append([down, math.inf])
            first = down + protocols.PRONE_LIE_DOWN_S
        else:
            first = max(t_s, self.busy_until_s)
        reps = []
        for i, side in enumerate(sides):
            reps += protocols.prone_side_reps(first, side, n_reps, profile,
                                              first_slot=i * n_reps)
        self.prone_reps += reps
        self._enter("prone", t_s, first + len(sides) * n_reps * protocols.PRONE_REP_S)
        return reps

    def resume(self, t_s: float) -> float:
        """Back to running: what has not started is dropped, an effort under way is released,
        a lift under way is finished, a prone athlete gets up. Returns when running resumes."""
        if self.state == "running":
            return t_s
        edge = protocols.MVC_EDGE_S
        self.mvc_trials = [tr for tr in self.mvc_trials if tr["effort_start_s"] < t_s]
        for tr in self.mvc_trials:
            if tr["effort_end_s"] > t_s + edge:
                tr["effort_end_s"] = max(t_s + edge, tr["effort_start_s"] + 2 * edge)
        self.prone_reps = [r for r in self.prone_reps if r["movement_onset_s"] - 0.5 < t_s]
        done = max([t_s] + [tr["effort_end_s"] for tr in self.mvc_trials]
                   + [r["lower_end_s"] + 0.5 for r in self.prone_reps])
        self.busy_until_s = done
        ready = self._upright(done)
        if self.holds and math.isinf(self.holds[-1][1]):
            self.holds[-1][1] = ready
        self._close_phase(t_s)
        self.state, self.busy_until_s, self.deadline_s = "running", ready, math.inf
        return ready

    def expire(self, t_s: float) -> bool:
        """Resume running if the runner was left waiting ``hold_max_s``; True if so."""
        if self.state != "running" and t_s >= self.deadline_s:
            self.resume(t_s)
            return True
        return False

    def forget_before(self, t_s: float) -> None:
        """Drop what no longer shapes samples after ``t_s`` (endless sessions stay bounded)."""
        margin = self.start_ramp_s + protocols.PRONE_LIE_DOWN_S + 5.0
        self.holds = [h for h in self.holds if h[1] + margin > t_s]
        self.lying = [ly for ly in self.lying if ly[1] + margin > t_s]
        self.mvc_trials = [tr for tr in self.mvc_trials if tr["effort_end_s"] + margin > t_s]
        self.prone_reps = [r for r in self.prone_reps if r["lower_end_s"] + margin > t_s]
        self.phases = [p for p in self.phases if p["end_s"] is None or p["end_s"] + margin > t_s]

    # --- evaluation ----------------------------------------------------------------------
    def running_factor(self, t_s: np.ndarray) -> np.ndarray:
        """1 while running, 0 while holding still; smooth stop and restart."""
        out = np.ones(len(t_s))
        for stop_s, resume_s in self.holds:
            if t_s[-1] >= stop_s and t_s[0] <= resume_s + self.start_ramp_s:
                out *= np.clip(1.0 - smoothstep((t_s - stop_s) / STOP_S)
                               + smoothstep((t_s - resume_s) / self.start_ramp_s), 0.0, 1.0)
        return out

    def lying_fraction(self, t_s: np.ndarray) -> np.ndarray:
        return protocols.lying_fraction(self.lying, t_s)

    # --- helpers -------------------------------------------------------------------------
    def _hold(self, t_s: float) -> float:
        """Open a hold at ``t_s`` unless one is open; return when the runner stands still."""
        if not (self.holds and math.isinf(self.holds[-1][1])):
            self.holds.append([t_s, math.inf])
        return self.holds[-1][0] + STOP_S

    def _lying_now(self) -> bool:
        return bool(self.lying) and math.isinf(self.lying[-1][1])

    def _upright(self, t_s: float) -> float:
        """Get up if lying (from ``t_s``, after any lift); return when upright."""
        if not self._lying_now():
            return t_s
        up = max(t_s, self.busy_until_s)
        self.lying[-1][1] = up
        return up + protocols.PRONE_LIE_DOWN_S

    def _enter(self, state: str, t_s: float, busy_until_s: float) -> None:
        self._close_phase(t_s)
        self.phases.append({"name": state, "start_s": t_s, "end_s": None, "commanded": True})
        self.state = state
        self.busy_until_s = max(self.busy_until_s, busy_until_s)
        self.deadline_s = max(t_s, self.busy_until_s) + self.hold_max_s

    def _close_phase(self, t_s: float) -> None:
        if self.phases and self.phases[-1]["end_s"] is None:
            self.phases[-1]["end_s"] = t_s
