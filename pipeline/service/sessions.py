"""Sessions: control commands, the per-station session state machine and its timeline.

Pure logic, no I/O: :func:`parse_command` validates one ``…/control`` payload
(docs/protocol.md, "Control"); :class:`StationSessions` applies commands to one station's
state and says what to store and publish; :class:`Timeline` maps a sample time to the session
it belongs to (time-based, so late, redelivered or spooled data lands in the right session).
Data outside every session belongs to :data:`UNASSIGNED`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hipstride import names
from hipstride.pipeline.store.base import SessionMeta

__all__ = ["COMMANDS", "CONTROL_VERSION", "PHASES", "UNASSIGNED", "Command", "CommandError",
           "Interval", "Outcome", "SessionState", "StationSessions", "Timeline",
           "default_session_id", "parse_command", "peek_command"]

CONTROL_VERSION = 1
UNASSIGNED = "unassigned"
COMMANDS = ("start", "stop", "mark", "calibrate")
PHASES = ("standing", "mvc", "prone")
RUNNING = "running"  # the phase of a session outside calibration and the prone test
SIDES = ("l", "r")
MAX_MARKS = 1000
KEEP_INTERVALS = 8  # closed sessions remembered for late data
KEEP_REQUESTS = 32  # request ids remembered to recognise a redelivered command

log = logging.getLogger(__name__)


class CommandError(ValueError):
    """A control command refused; ``reason`` is a short metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Command:
    """One validated control command (fields not used by ``command`` are None)."""

    command: str
    request: str | None = None
    athlete: str | None = None
    session: str | None = None
    label: str | None = None
    notes: str | None = None
    note: str | None = None
    phase: str | None = None
    action: str | None = None
    muscle: str | None = None  # calibrate mvc: the EMG channel of the effort
    side: str | None = None  # calibrate prone: the leg tested ("l" or "r")


def _text(body: dict[str, Any], key: str, rule: names.Rule, *,
          required: str | None = None) -> str | None:
    """A string field checked against its name rule (docs/protocol.md, "Names"): None when
    absent or blank, :class:`CommandError` ``bad_field`` (not a string) or ``bad_name``."""
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip(" ")):
        if required:
            raise CommandError(required, f"{key!r} is required")
        return None
    if not isinstance(value, str):
        raise CommandError("bad_field", f"{key!r} must be a string, got {type(value).__name__}")
    try:
        return names.check(rule, value)
    except names.BadName as err:
        raise CommandError(names.BAD_NAME, f"{key!r}: {err}") from None


def parse_command(payload: bytes | str) -> Command:
    """Validate a control payload; :class:`CommandError` (with a reason) when it is refused.

    Commands for the edge (e.g. ``profile``) are not session commands: they raise with reason
    ``not_session`` and the caller simply ignores them.
    """
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise CommandError("not_json", f"not JSON: {err}") from None
    if not isinstance(body, dict):
        raise CommandError("not_json", "not a JSON object")
    version = body.get("version", CONTROL_VERSION)
    if version != CONTROL_VERSION:
        raise CommandError("unsupported_version",
                           f"version {version!r} not supported (expected {CONTROL_VERSION})")
    command = body.get("command")
    if not isinstance(command, str) or not command:
        raise CommandError("unknown_command", "no 'command'")
    request = _text(body, "request", names.REQUEST)
    if command not in COMMANDS:
        if command == "profile":  # the simulator's command (docs/protocol.md)
            raise CommandError("not_session", f"{command!r} is for the edge agent")
        raise CommandError("unknown_command", f"unknown command {command[:64]!r}; expected "
                                              f"one of {', '.join(COMMANDS)}")
    if command == "start":
        return Command(command, request,
                       athlete=_text(body, "athlete", names.ATHLETE, required="missing_athlete"),
                       session=_text(body, "session", names.SESSION),
                       label=_text(body, "label", names.LABEL),
                       notes=_text(body, "notes", names.NOTES))
    if command == "stop":
        return Command(command, request, session=_text(body, "session", names.SESSION))
    if command == "mark":
        return Command(command, request,
                       label=_text(body, "label", names.LABEL, required="missing_label"),
                       note=_text(body, "note", names.NOTES))
    phase = body.get("phase")
    if phase not in PHASES:
        raise CommandError("bad_phase", f"phase {str(phase)[:64]!r}: expected one of "
                                        f"{', '.join(PHASES)}")
    action = body.get("action", "start")
    if action not in ("start", "stop"):
        raise CommandError("bad_field", f"action {str(action)[:64]!r}: expected 'start' or "
                                        "'stop'")
    muscle = body.get("muscle")
    if muscle is not None and (phase != "mvc" or names.problem(names.CHANNEL, muscle)):
        raise CommandError("bad_field", f"muscle {str(muscle)[:64]!r}: only with phase "
                                        "'mvc', as an EMG channel name such as 'glute_max_l'")
    side = body.get("side")
    if side is not None and (phase != "prone" or side not in SIDES):
        raise CommandError("bad_field", f"side {str(side)[:64]!r}: only with phase 'prone', "
                                        "'l' or 'r'")
    return Command(command, request, phase=phase, action=action, muscle=muscle, side=side)


def peek_command(payload: bytes | str) -> tuple[str | None, str | None]:
    """(command, request) of a payload, as far as readable — to address a refusal."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    command, request = body.get("command"), body.get("request")
    return (command[:64] if isinstance(command, str) else None,
            request[:64] if isinstance(request, str) else None)


def default_session_id(station: str, start_ns: int) -> str:
    """``<station>-<UTC yyyymmddThhmmss>``: stable, sortable, readable."""
    return f"{station}-{dt.datetime.fromtimestamp(start_ns / 1e9, dt.UTC):%Y%m%dT%H%M%S}"


def _meta_from(body: dict[str, Any] | None) -> SessionMeta | None:
    return None if body is None else SessionMeta(**body)


# --- timeline ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    session: str
    athlete: str | None
    start_ns: int
    end_ns: int | None = None  # None: still open

    def covers(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns and (self.end_ns is None or t_ns < self.end_ns)


class Timeline:
    """Sessions of one station as time intervals: which session a sample time belongs to."""

    def __init__(self, intervals: list[Interval] | None = None) -> None:
        self.intervals: list[Interval] = list(intervals or [])

    def at(self, t_ns: int) -> tuple[str, str | None]:
        """(session, athlete) of a time; (UNASSIGNED, None) outside every session."""
        for iv in reversed(self.intervals):
            if iv.covers(t_ns):
                return iv.session, iv.athlete
        return UNASSIGNED, None

    def split(self, times_ns: np.ndarray) -> Iterator[tuple[str, str | None, np.ndarray]]:
        """(session, athlete, boolean mask) for every group of ``times_ns``; masks partition."""
        times_ns = np.asarray(times_ns, dtype=np.int64)
        left = np.ones(len(times_ns), dtype=bool)
        for iv in reversed(self.intervals):
            mask = left & (times_ns >= iv.start_ns)
            if iv.end_ns is not None:
                mask &= times_ns < iv.end_ns
            if mask.any():
                left &= ~mask
                yield iv.session, iv.athlete, mask
        if left.any():
            yield UNASSIGNED, None, left


# --- state machine ----------------------------------------------------------------------------
@dataclass
class SessionState:
    """What one station's session is now (``session=None``: idle) — persisted as JSON."""

    station: str
    session: str | None = None
    athlete: str | None = None
    label: str | None = None
    notes: str | None = None
    start_ns: int | None = None
    phase: str | None = None  # RUNNING or a PHASES entry while a session is open
    marks: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    intervals: list[list[Any]] = field(default_factory=list)  # Interval fields
    requests: list[str] = field(default_factory=list)
    closed: dict[str, Any] | None = None  # the last stopped session's metadata

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, station: str, text: str) -> SessionState:
        """The state saved by :meth:`to_json`. Names saved before the name rules (an athlete
        with a line break, say) are repaired with :func:`hipstride.names.sanitise` and each
        repair is logged: a restored session must never stop the pipeline."""
        body = json.loads(text)
        body["station"] = station
        state = cls(**{k: v for k, v in body.items() if k in cls.__dataclass_fields__})
        for what, before, after in state.repair_names():
            log.warning("station %s: the restored session's %s %r breaks the name rule "
                        "(docs/protocol.md, \"Names\"); continuing with %r", station, what,
                        before, after)
        return state

    def repair_names(self) -> list[tuple[str, Any, Any]]:
        """Make every stored name pass its rule; returns (field, before, after) per fix."""
        fixes: list[tuple[str, Any, Any]] = []

        def fix(what: str, value: Any, rule: names.Rule, fallback: str) -> Any:
            if value is None or (isinstance(value, str) and names.problem(rule, value) is None
                                 and names.check(rule, value) == value):
                return value
            repaired = names.sanitise(rule, value, fallback)
            fixes.append((what, value, repaired))
            return repaired

        self.session = fix("session id", self.session, names.SESSION, "restored")
        self.athlete = fix("athlete", self.athlete, names.ATHLETE, "unknown athlete")
        self.label = fix("label", self.label, names.LABEL, "restored")
        self.notes = fix("notes", self.notes, names.NOTES, "")
        for mark in self.marks:
            if isinstance(mark, dict):
                mark["label"] = fix("mark label", mark.get("label"), names.LABEL, "mark")
                if mark.get("note") is not None:
                    mark["note"] = fix("mark note", mark["note"], names.NOTES, "")
        for iv in self.intervals:
            if isinstance(iv, list) and len(iv) >= 2:
                iv[0] = fix("session id", iv[0], names.SESSION, "restored")
                iv[1] = fix("athlete", iv[1], names.ATHLETE, "unknown athlete")
        if isinstance(self.closed, dict):
            closed = self.closed
            closed["session"] = fix("session id", closed.get("session"), names.SESSION,
                                    "restored")
            closed["athlete"] = fix("athlete", closed.get("athlete"), names.ATHLETE,
                                    "unknown athlete")
            closed["label"] = fix("label", closed.get("label"), names.LABEL, "restored")
        return fixes


@dataclass
class Outcome:
    """The result of one command: the state to publish, the session metadata to store."""

    command: str | None
    ok: bool
    reason: str | None = None
    message: str | None = None
    meta: SessionMeta | None = None
    duplicate: bool = False
    calibration: dict[str, Any] | None = None  # start: what was reused for the athlete
    closed_phase: dict[str, Any] | None = None  # the phase this command ended, if any


class StationSessions:
    """One station's session state machine: idle ⇄ running (with phases, marks)."""

    def __init__(self, station: str, state: SessionState | None = None) -> None:
        self.state = state or SessionState(station)
        self.timeline = Timeline([Interval(*iv) for iv in self.state.intervals])

    @property
    def station(self) -> str:
        return self.state.station

    @property
    def active(self) -> bool:
        return self.state.session is not None

    def meta(self, end_ns: int | None = None) -> SessionMeta:
        s = self.state
        extra: dict[str, Any] = {"marks": s.marks, "phases": s.phases}
        if s.notes:
            extra["notes"] = s.notes
        return SessionMeta(session=s.session, station=s.station, athlete=s.athlete,
                           start_ns=s.start_ns, end_ns=end_ns, label=s.label, meta=extra)

    def apply(self, cmd: Command, now_ns: int) -> Outcome:
        """Apply a command at wall-clock ``now_ns``; refusals come back as ``ok=False``."""
        s = self.state
        if cmd.request and cmd.request in s.requests:
            # redelivered after a crash: already applied; store the metadata again (idempotent)
            meta = self.meta() if self.active else _meta_from(s.closed)
            return Outcome(cmd.command, True, meta=meta, duplicate=True)
        open_phase = s.phases[-1] if (self.active and s.phase not in (None, RUNNING)
                                      and s.phases) else None
        try:
            meta = getattr(self, f"_{cmd.command}")(cmd, now_ns)
        except CommandError as err:
            return Outcome(cmd.command, False, err.reason, str(err))
        if cmd.request:
            s.requests = [*s.requests, cmd.request][-KEEP_REQUESTS:]
        self._sync_intervals()
        closed = None
        if open_phase is not None and open_phase.get("end_ns") is not None:
            closed = {**open_phase, "session": meta.session, "athlete": meta.athlete}
        return Outcome(cmd.command, True, meta=meta, closed_phase=closed)

    def _need_session(self, what: str) -> None:
        if not self.active:
            raise CommandError("no_session", f"{what} without a session: start one first")

    def _start(self, cmd: Command, now_ns: int) -> SessionMeta:
        s = self.state
        if self.active:
            raise CommandError("session_running", f"session {s.session} is running on "
                                                  f"{s.station}: stop it first")
        session = cmd.session or default_session_id(s.station, now_ns)
        if any(iv.session == session for iv in self.timeline.intervals):
            raise CommandError("session_exists", f"session {session} was already used")
        s.session, s.athlete, s.label, s.notes = session, cmd.athlete, cmd.label, cmd.notes
        s.start_ns, s.phase, s.marks, s.phases = now_ns, RUNNING, [], []
        self.timeline.intervals.append(Interval(session, cmd.athlete, now_ns))
        self.timeline.intervals = self.timeline.intervals[-KEEP_INTERVALS:]
        return self.meta()

    def _stop(self, cmd: Command, now_ns: int) -> SessionMeta:
        self._need_session("stop")
        s = self.state
        if cmd.session and cmd.session != s.session:
            raise CommandError("wrong_session", f"stop {cmd.session}: the running session is "
                                                f"{s.session}")
        self._end_phase(now_ns)
        meta = self.meta(end_ns=now_ns)
        last = self.timeline.intervals[-1]
        self.timeline.intervals[-1] = Interval(last.session, last.athlete, last.start_ns, now_ns)
        s.session = s.athlete = s.label = s.notes = s.start_ns = s.phase = None
        s.marks, s.phases = [], []
        s.closed = {**asdict(meta), "meta": dict(meta.meta)}
        return meta

    def _mark(self, cmd: Command, now_ns: int) -> SessionMeta:
        self._need_session("mark")
        if len(self.state.marks) >= MAX_MARKS:
            raise CommandError("too_many_marks", f"a session keeps at most {MAX_MARKS} marks")
        mark = {"label": cmd.label, "time_ns": now_ns}
        if cmd.note:
            mark["note"] = cmd.note
        self.state.marks.append(mark)
        return self.meta()

    def _calibrate(self, cmd: Command, now_ns: int) -> SessionMeta:
        self._need_session("calibrate")
        s = self.state
        if cmd.action == "start":
            if s.phase not in (None, RUNNING):
                raise CommandError("phase_active", f"phase {s.phase} is active: stop it first")
            s.phase = cmd.phase
            record: dict[str, Any] = {"phase": cmd.phase, "start_ns": now_ns, "end_ns": None}
            if cmd.muscle:
                record["muscle"] = cmd.muscle
            if cmd.side:
                record["side"] = cmd.side
            s.phases.append(record)
        else:
            if s.phase != cmd.phase:
                raise CommandError("phase_not_active", f"phase {cmd.phase} is not active "
                                   f"(now: {s.phase}): start it first (calibrate --phase "
                                   f"{cmd.phase} --action start), then stop it")
            if cmd.muscle:
                s.phases[-1]["muscle"] = cmd.muscle
            if cmd.side:
                s.phases[-1]["side"] = cmd.side
            self._end_phase(now_ns)
        return self.meta()

    def _end_phase(self, now_ns: int) -> None:
        s = self.state
        if s.phase not in (None, RUNNING) and s.phases and s.phases[-1]["end_ns"] is None:
            s.phases[-1]["end_ns"] = now_ns
        s.phase = RUNNING if self.active else None

    def _sync_intervals(self) -> None:
        self.state.intervals = [[iv.session, iv.athlete, iv.start_ns, iv.end_ns]
                                for iv in self.timeline.intervals]

    def reply(self, now_ns: int, outcome: Outcome | None = None,
              request: str | None = None) -> dict:
        """The retained ``…/session`` message: current state plus the last command's result."""
        s = self.state
        body: dict[str, Any] = {
            "version": CONTROL_VERSION, "station": s.station, "time_ns": now_ns,
            "state": "running" if self.active else "idle", "session": s.session,
            "athlete": s.athlete, "label": s.label, "start_ns": s.start_ns, "phase": s.phase,
            "marks": len(s.marks),
        }
        if outcome is not None:
            result: dict[str, Any] = {"command": outcome.command, "ok": outcome.ok,
                                      "request": request}
            if not outcome.ok:
                result.update(reason=outcome.reason, message=outcome.message)
            if outcome.calibration is not None:
                result["calibration"] = outcome.calibration
            if outcome.closed_phase is not None:
                result["phase"] = {k: outcome.closed_phase.get(k) for k in
                                   ("phase", "start_ns", "end_ns", "muscle", "side")
                                   if outcome.closed_phase.get(k) is not None}
            if outcome.meta is not None:
                result["session"] = outcome.meta.session
                if outcome.meta.end_ns is not None:
                    result["end_ns"] = outcome.meta.end_ns
            body["result"] = result
        return body
