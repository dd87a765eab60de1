"""Guided calibration and prone-test flows as a pure state machine over time.

A flow is a list of :class:`Step` — stand still 10 s; push as hard as you can, glute max
right, 5 s; lift the right leg, hold 2 s, lower, × N. Each step runs through the stages

    ready (countdown) → recording (timed prompts) → waiting (for the pipeline's result)
      → result (ok or not: repeat, or go on) … → done;   any stage → failed (with a reason)

:func:`tick` says when to send the calibrate ``start`` and ``stop`` commands; the page sends
them and reports back with :func:`started`, :func:`stopped`, :func:`got_result` or
:func:`failed`. Times are the caller's clock in seconds (``time.monotonic()``), so every
transition can be tested without waiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Cue", "Flow", "Step", "cue_at", "mvc_steps", "prone_steps", "standing_steps",
           "tick"]

IDLE, READY, RECORDING, WAITING, RESULT, FAILED, DONE = (
    "idle", "ready", "recording", "waiting", "result", "failed", "done")
READY_S = 3.0
#: An MVC trial after its ``calibrate start``: get in position (a runner stops, turns, finds
#: the resistance), then the maximal effort. The demo's physio and the Live page's countdown
#: use the same two numbers.
MVC_POSITION_S = 3.0
MVC_EFFORT_S = 5.0
RESULT_TIMEOUT_S = 30.0
SIDE_WORDS = {"l": "left", "r": "right"}
MUSCLE_WORDS = {"glute_max": "glute max", "biceps_femoris": "hamstrings (biceps femoris)",
                "semitendinosus": "hamstrings (semitendinosus)",
                "erector_spinae": "lower back (erector spinae)"}
#: How to position the athlete for each muscle's maximal contraction (DOMAIN.md).
MVC_HOW = {
    "glute_max": "Prone, knee bent 90°: lift the thigh against your hand on the back of the "
                 "thigh.",
    "biceps_femoris": "Prone, knee bent about 45°: pull the heel towards the buttock against "
                      "your hand on the ankle.",
    "semitendinosus": "Prone, knee bent about 45°: pull the heel towards the buttock against "
                      "your hand on the ankle.",
    "erector_spinae": "Prone, hands by the sides: lift the chest against your hands on the "
                      "upper back.",
}


@dataclass(frozen=True)
class Cue:
    """One timed prompt while recording."""

    text: str
    seconds: float


@dataclass(frozen=True)
class Step:
    """One recorded effort: what to say, which phase it is, and its timed prompts."""

    key: str
    title: str
    how: str
    phase: str
    cues: tuple[Cue, ...]
    muscle: str | None = None
    side: str | None = None
    ready_s: float = READY_S

    @property
    def duration_s(self) -> float:
        return sum(c.seconds for c in self.cues)

    def command_fields(self) -> dict[str, Any]:
        """The calibrate command's fields for this step (without ``action``)."""
        return {"phase": self.phase, "muscle": self.muscle, "side": self.side}

    def accepts(self, result: Mapping[str, Any], session: str | None = None) -> bool:
        """Whether a ``…/results`` message answers this step."""
        return (result.get("phase") == self.phase
                and (self.muscle is None or result.get("muscle") == self.muscle)
                and (self.side is None or result.get("side") == self.side)
                and (session is None or result.get("session") in (None, session)))


def muscle_words(channel: str) -> str:
    """``glute_max_r`` → "glute max, right"."""
    base, _, side = channel.rpartition("_")
    if side not in SIDE_WORDS:
        return channel.replace("_", " ")
    return f"{MUSCLE_WORDS.get(base, base.replace('_', ' '))}, {SIDE_WORDS[side]}"


def standing_steps(seconds: float = 10.0) -> list[Step]:
    return [Step("standing", "Standing calibration",
                 "Stand upright and relaxed on the treadmill, feet hip-width apart, arms by "
                 "the sides, looking ahead.", "standing", (Cue("Stand still", seconds),))]


def mvc_steps(channels: Sequence[str], *, trials: int = 3, effort_s: float = MVC_EFFORT_S,
              position_s: float = MVC_POSITION_S) -> list[Step]:
    """One step per channel and trial: "Get in position" (``position_s``, inside the recorded
    window, so an athlete who needs a moment to stop and turn still gives a full effort),
    then "Push as hard as you can: glute max, right" (``effort_s``)."""
    steps = []
    for channel in channels:
        base = channel.rpartition("_")[0]
        for k in range(1, trials + 1):
            words = muscle_words(channel)
            steps.append(Step(
                f"mvc-{channel}-{k}", f"Maximal contraction: {words} — trial {k} of {trials}",
                MVC_HOW.get(base, "Contract the muscle as hard as possible against "
                                  "resistance."),
                "mvc", (*((Cue(f"Get in position: {words}", position_s),) if position_s > 0
                          else ()),
                        Cue(f"Push as hard as you can: {words}", effort_s)), muscle=channel))
    return steps


def prone_steps(*, sides: Sequence[str] = ("r", "l"), reps: int = 3, lift_s: float = 1.0,
                hold_s: float = 2.0, lower_s: float = 1.0, rest_s: float = 3.0) -> list[Step]:
    """One step per side: ``reps`` × (lift, hold, lower, rest) with the knee straight."""
    steps = []
    for side in sides:
        word = SIDE_WORDS[side]
        cues: list[Cue] = [Cue("Relax, lie still", 2.0)]
        for k in range(1, reps + 1):
            cues += [Cue(f"Lift the {word} leg ({k} of {reps})", lift_s),
                     Cue("Hold it up", hold_s), Cue("Lower slowly", lower_s),
                     Cue("Relax", rest_s)]
        steps.append(Step(
            f"prone-{side}", f"Prone hip extension, {word} leg",
            f"Lying face down, arms by the sides, forehead on the hands. Keep the {word} knee "
            "straight and lift the leg about 10–15 cm, hold 2 s, lower.",
            "prone", tuple(cues), side=side))
    return steps


def cue_at(step: Step, elapsed_s: float) -> tuple[int, Cue | None, float]:
    """(index, cue, seconds left in it) ``elapsed_s`` into the recording; (len, None, 0)
    once it is over."""
    t = max(0.0, elapsed_s)
    for i, cue in enumerate(step.cues):
        if t < cue.seconds:
            return i, cue, cue.seconds - t
        t -= cue.seconds
    return len(step.cues), None, 0.0


@dataclass(frozen=True)
class Flow:
    """Where a guided flow is. ``after``: the control client's arrival mark when ``stop`` was
    sent (a result must be newer); ``results``: the result message of each finished step."""

    steps: tuple[Step, ...]
    index: int = 0
    stage: str = IDLE
    since_s: float = 0.0
    after: int = 0
    message: str = ""
    results: tuple[Mapping[str, Any] | None, ...] = ()

    @property
    def step(self) -> Step | None:
        return self.steps[self.index] if self.index < len(self.steps) else None

    @property
    def active(self) -> bool:
        """Commands are being sent or awaited: the page keeps ticking."""
        return self.stage in (READY, RECORDING, WAITING)

    @property
    def result(self) -> Mapping[str, Any] | None:
        return self.results[self.index] if self.index < len(self.results) else None


def new_flow(steps: Sequence[Step]) -> Flow:
    return Flow(tuple(steps), results=(None,) * len(steps))


def begin(flow: Flow, now_s: float, index: int | None = None) -> Flow:
    """Start (or repeat) a step: the get-ready countdown."""
    i = flow.index if index is None else index
    return replace(flow, index=i, stage=READY if i < len(flow.steps) else DONE, since_s=now_s,
                   message="")


def advance(flow: Flow, now_s: float) -> Flow:
    """On to the next step's countdown, or done."""
    return begin(flow, now_s, flow.index + 1)


def tick(flow: Flow, now_s: float, *, result_timeout_s: float = RESULT_TIMEOUT_S
         ) -> tuple[Flow, str | None]:
    """Time passes: returns the flow and the command to send now (``"start"``/``"stop"``)."""
    step, elapsed = flow.step, now_s - flow.since_s
    if step is None:
        return flow, None
    if flow.stage == READY and elapsed >= step.ready_s:
        return flow, "start"
    if flow.stage == RECORDING and elapsed >= step.duration_s:
        return flow, "stop"
    if flow.stage == WAITING and elapsed >= result_timeout_s:
        return failed(flow, f"No result from the pipeline within {result_timeout_s:.0f} s. "
                            "Is the pipeline running and up to date? Repeat the step to try "
                            "again.", now_s), None
    return flow, None


def started(flow: Flow, now_s: float) -> Flow:
    """The pipeline accepted the calibrate ``start``: recording begins now."""
    return replace(flow, stage=RECORDING, since_s=now_s)


def stopped(flow: Flow, now_s: float, after: int) -> Flow:
    """The pipeline accepted the ``stop``: wait for a result newer than ``after``."""
    return replace(flow, stage=WAITING, since_s=now_s, after=after)


def got_result(flow: Flow, result: Mapping[str, Any], now_s: float) -> Flow:
    results = list(flow.results) + [None] * (len(flow.steps) - len(flow.results))
    results[flow.index] = dict(result)
    return replace(flow, stage=RESULT, since_s=now_s, results=tuple(results),
                   message="" if result.get("ok") else "; ".join(problems(result)))


def failed(flow: Flow, message: str, now_s: float) -> Flow:
    return replace(flow, stage=FAILED, since_s=now_s, message=message)


def cancel(flow: Flow) -> Flow:
    return replace(flow, stage=IDLE, message="")


def problems(result: Mapping[str, Any]) -> list[str]:
    """A result's problems as plain strings (what the pipeline said, or why it failed)."""
    found = [str(p) for p in result.get("problems") or () if p]
    if not result.get("ok") and not found:
        found = ["the pipeline marked this effort as not good enough, without a reason"]
    return found
