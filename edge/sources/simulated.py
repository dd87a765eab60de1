"""The physiological simulator as a :class:`~.base.Source` (``source = "sim"``).

Configured by the ``[sim]`` table of the agent's TOML file::

    [sim]
    profile = "healthy"        # healthy | hamstring_dominant | limited_extension | asymmetry
    seed = 0
    speed = 1.0                # real-time factor; 0 = as fast as possible
    duration_s = 3600          # then the source is finished; 0 or "forever" = endless
    ground_truth = "runs/truth.json"   # optional: truth written here (+ .npz) on finish/close
    hold_max_s = 120           # an instructed runner left alone resumes running after this
    emg_channels = ["glute_max_l", "glute_max_r", "biceps_femoris_l", "biceps_femoris_r"]
    segments = ["pelvis", "thigh_l", "thigh_r"]
    mains_hz = 50              # 0 = no hum
    speed_kmh = 10.0           # or speed_schedule = [[0, 10.0], [120, 12.0]]
    misalignment_deg = 10.0    # random strap error per segment (unknown to the descriptions)
    glute_drive_drop = [60, 120, 0.3]
    [[sim.dropouts]]
    channel = "glute_max_r"
    start_s = 40
    end_s = 45
    mode = "flat"              # flat | noisy | hum

Every other :class:`~hipstride.edge.simulator.SessionConfig` field is a key of the same name.
The source hands out 20 ms blocks per stream (``chunk_ms``), paced at ``speed`` × real time.

**Endless** (``duration_s = 0`` or ``"forever"``, ``--duration 0``): the runner runs until the
agent stops, as the demo's stations do. Memory stays bounded: old strides are forgotten, no
ground truth is kept (``ground_truth`` is refused), and the scripted ``mvc``/``prone`` phases,
which follow the end of the run, are refused too — send calibrate commands instead.

**Control commands** (the station's control topic, docs/protocol.md): the simulated runner
follows the dashboard's instructions as an athlete would, from the next 0.25 s not yet
generated:

* ``{"command": "calibrate", "phase": "standing", "action": "start"}`` — stops running and
  stands still;
* ``"phase": "mvc"`` (``"muscle": "glute_max_l"``, an EMG channel; without it every channel in
  turn) — a 5 s maximal voluntary contraction of that muscle, the others at rest;
* ``"phase": "prone"`` (``"side": "l"`` or ``"r"``; without it left, then right) — lies down
  prone and does ``prone_reps`` hip extension lifts (lift, 2 s hold, lower);
* ``"action": "stop"`` (any phase) — back to running (getting up first if prone);
* ``{"command": "profile", "profile": name}`` — switches profile from the next stride.

A runner left without instructions resumes running ``hold_max_s`` after the last one. Session
commands (``start``, ``stop``, ``mark``) are the pipeline's and are ignored here; anything else
raises ValueError naming the problem, which the agent logs and ignores.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hipstride.config import ConfigError, Section

from ..simulator.profiles import PROFILE_NAMES
from ..simulator.session import (
    DROPOUT_MODES,
    ENDLESS,
    MOUNTING_PRESETS,
    Dropout,
    Saturation,
    SessionConfig,
    SessionGenerator,
    SimulatorSettingError,
)
from .base import Block, Source, SourceError

log = logging.getLogger("hipstride.edge.sim")

#: Most chunks per stream handed out by one read when catching up (or at speed 0).
MAX_CHUNKS_PER_READ = 5
#: Control commands that belong to the pipeline (sessions): not for the simulator.
SESSION_COMMANDS = ("start", "stop", "mark")


class SimulatedSource(Source):
    """Streams a simulated session at ``speed`` × real time (0 = as fast as the reader reads).

    Parameters
    ----------
    config
        The session to simulate.
    speed
        Real-time factor; ``realtime`` is True only when it is exactly 1.
    chunk_s
        Length of each handed-out block (10–100 ms).
    ground_truth
        Where to write the ground truth (``.json`` + ``.npz``) when finished or closed.
    """

    def __init__(self, config: SessionConfig, *, speed: float = 1.0, chunk_s: float = 0.02,
                 ground_truth: str | Path | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be >= 0, got {speed!r}")
        if ground_truth is not None and config.endless:
            raise ValueError("an endless simulation keeps no ground truth: set a finite "
                             "duration_s to write one")
        self.generator = SessionGenerator(config, record_curves=ground_truth is not None)
        self.descriptions = self.generator.descriptions
        self.speed = float(speed)
        self.realtime = self.speed == 1.0
        self.chunk_s = float(chunk_s)
        self.ground_truth_path = Path(ground_truth) if ground_truth is not None else None
        self._clock, self._sleep = clock, sleep
        self._started: float | None = None
        self._chunk = {d.stream: max(1, round(self.chunk_s * d.rate_hz))
                       for d in self.descriptions}
        self._rate = {d.stream: d.rate_hz for d in self.descriptions}
        self._truth_written = False
        self._closed = False

    @property
    def finished(self) -> bool:
        gen = self.generator
        return all(gen.remaining(s) == 0 for s in gen.streams)

    def _emitted_s(self) -> float:
        gen = self.generator
        return min((gen.total_samples[s] - gen.remaining(s)) / self._rate[s] for s in gen.streams)

    def read(self, timeout_s: float) -> list[Block]:
        if self._closed:
            raise SourceError("simulated source is closed")
        if self.finished:
            self._write_truth()
            return []
        now = self._clock()
        if self._started is None:
            self._started = now
        emitted = self._emitted_s()
        if self.speed == 0:
            due_s = emitted + MAX_CHUNKS_PER_READ * self.chunk_s
        else:
            due_s = (now - self._started) * self.speed
            next_s = min(emitted + self.chunk_s, self.generator.config.duration_s)
            if due_s < next_s:
                wait_s = (next_s - due_s) / self.speed
                if wait_s > timeout_s:
                    self._sleep(max(0.0, timeout_s))
                    return []
                self._sleep(wait_s)
                due_s = next_s
            due_s = min(due_s, emitted + MAX_CHUNKS_PER_READ * self.chunk_s)
        blocks = []
        gen = self.generator
        for stream in gen.streams:
            delivered = gen.total_samples[stream] - gen.remaining(stream)
            target = min(gen.total_samples[stream], math.floor(due_s * self._rate[stream] + 1e-9))
            while delivered < target:
                n = min(self._chunk[stream], target - delivered)
                blocks.append(Block(stream, gen.read(stream, n)))
                delivered += n
        if self.finished:
            self._write_truth()
        return blocks

    def control(self, command: dict) -> None:
        """Follow a control command (module docstring); ValueError names a bad one."""
        name = command.get("command")
        if command.get("version", 1) != 1:
            raise ValueError(f"control version {command.get('version')!r} not supported")
        if name in SESSION_COMMANDS:
            return
        if name == "profile":
            self.generator.switch_profile(str(command.get("profile")))
            log.info("simulated runner: profile %s", command.get("profile"))
            return
        if name != "calibrate":
            raise ValueError(f"unknown command {name!r} (the simulator follows calibrate and "
                             "profile)")
        phase, action = command.get("phase"), command.get("action", "start")
        if action not in ("start", "stop"):
            raise ValueError(f"calibrate action {action!r}: expected 'start' or 'stop'")
        if phase not in ("standing", "mvc", "prone"):
            raise ValueError(f"calibrate phase {phase!r}: expected standing, mvc or prone")
        if action == "stop":
            at = self.generator.instruct("running")
            log.info("simulated runner: %s done, back to running (t=%.2f s)", phase, at)
            return
        muscle, side = command.get("muscle"), command.get("side")
        for key, value in (("muscle", muscle), ("side", side)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"calibrate {key} must be a string, got {value!r}")
        if phase == "mvc" and muscle and side and muscle not in self.generator.config.emg_channels:
            muscle = f"{muscle}_{side}"  # {"muscle": "glute_max", "side": "l"}
        at = self.generator.instruct(phase, channels=(muscle,) if muscle else (),
                                     sides=(side,) if side and phase == "prone" else ())
        log.info("simulated runner: %s%s (t=%.2f s)", phase,
                 f" {muscle or side}" if (muscle or side) else "", at)

    def close(self) -> None:
        if not self._closed:
            self._write_truth()
            self._closed = True

    def _write_truth(self) -> None:
        if self.ground_truth_path is None or self._truth_written:
            return
        self._truth_written = True
        try:
            self.generator.truth().write(self.ground_truth_path)
        except OSError as err:
            raise SourceError(f"cannot write simulator ground truth to "
                              f"{self.ground_truth_path}: {err}") from None


SIM_KEYS = {
    "profile", "seed", "speed", "duration_s", "ground_truth", "chunk_ms", "emg_channels",
    "segments", "mains_hz", "mains_mv", "standing_s", "start_ramp_s", "speed_kmh",
    "speed_schedule", "warmup_s", "fatigue", "fatigue_start_s", "fatigue_ramp_s",
    "glute_drive_drop", "mounting", "misalignment_deg", "imu_noise", "gyro_bias_dps",
    "emg_floor_mv", "artefact_mv", "full_scale_mv", "dropouts", "saturations", "mvc", "prone",
    "prone_reps", "hold_max_s",
}


def _duration_s(section: Section) -> float:
    """``duration_s``: seconds, or 0 / ``"forever"`` for an endless session."""
    value = section.data.get("duration_s")
    if value == "forever":
        return ENDLESS
    if isinstance(value, str):
        raise section.fail("duration_s", 'seconds, or 0 or "forever" for an endless session')
    value = section.number("duration_s", 3600.0, minimum=0.0)
    return ENDLESS if value == 0 else value


def _strings(section: Section, key: str) -> tuple[str, ...] | None:
    value = section.data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise section.fail(key, "a non-empty array of strings")
    return tuple(value)


def _numbers(section: Section, key: str, length: int | None) -> list[float] | None:
    value = section.data.get(key)
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok or (length is not None and len(value) != length):
        raise section.fail(key, f"an array of {length or 'some'} numbers")
    return [float(v) for v in value]


def from_config(section: Section) -> SimulatedSource:
    """Build the source from the ``[sim]`` table; ConfigError names any bad field."""
    section.unknown_keys(SIM_KEYS)
    settings: dict[str, Any] = {
        "profile": section.string("profile", "healthy", choices=PROFILE_NAMES),
        "seed": section.number("seed", 0, minimum=0, integer=True),
        "duration_s": _duration_s(section),
        "mounting": section.string("mounting", "straps", choices=MOUNTING_PRESETS),
        "mvc": section.boolean("mvc", False),
        "prone": section.boolean("prone", False),
    }
    for key, minimum, maximum in (
            ("hold_max_s", 1.0, None), ("standing_s", 0.0, None),
            ("start_ramp_s", 0.1, None), ("warmup_s", 0.0, None),
            ("fatigue", 0.0, 1.0), ("fatigue_start_s", 0.0, None), ("fatigue_ramp_s", 1.0, None),
            ("misalignment_deg", 0.0, 45.0), ("imu_noise", 0.0, None),
            ("gyro_bias_dps", 0.0, None), ("emg_floor_mv", 0.0, None), ("artefact_mv", 0.0, None),
            ("mains_mv", 0.0, None), ("full_scale_mv", 0.001, None)):
        value = section.number(key, None, minimum=minimum, maximum=maximum)
        if value is not None:
            settings[key] = value
    mains = section.number("mains_hz", 0.0)
    if mains not in (0.0, 50.0, 60.0):
        raise section.fail("mains_hz", "0 (off), 50 or 60")
    settings["mains_hz"] = mains
    reps = section.number("prone_reps", None, minimum=1, maximum=10, integer=True)
    if reps is not None:
        settings["prone_reps"] = reps
    for key in ("emg_channels", "segments"):
        names = _strings(section, key)
        if names is not None:
            settings[key] = names
    if "speed_kmh" in section.data and "speed_schedule" in section.data:
        raise section.fail("speed_schedule", "either speed_kmh or speed_schedule, not both")
    speed_kmh = section.number("speed_kmh", None, minimum=3.0, maximum=30.0)
    if speed_kmh is not None:
        settings["speed_schedule"] = ((0.0, speed_kmh),)
    if "speed_schedule" in section.data:
        points = section.data["speed_schedule"]
        if not isinstance(points, list) or not points:
            raise section.fail("speed_schedule", "an array of [time_s, speed_kmh] pairs")
        pairs = []
        for i, _ in enumerate(points):
            sub = Section({"p": points[i]}, section.where("speed_schedule"))
            pair = _numbers(sub, "p", 2)
            pairs.append((pair[0], pair[1]))
        settings["speed_schedule"] = tuple(pairs)
    drop = _numbers(section, "glute_drive_drop", 3)
    if drop is not None:
        settings["glute_drive_drop"] = tuple(drop)
    settings["dropouts"] = tuple(
        Dropout(channel=t.string("channel"), start_s=t.number("start_s"),
                end_s=t.number("end_s"), mode=t.string("mode", "flat", choices=DROPOUT_MODES))
        for t in _windows(section, "dropouts", {"channel", "start_s", "end_s", "mode"}))
    settings["saturations"] = tuple(
        Saturation(channel=t.string("channel"), start_s=t.number("start_s"),
                   end_s=t.number("end_s"), gain=t.number("gain", 50.0, minimum=1.0))
        for t in _windows(section, "saturations", {"channel", "start_s", "end_s", "gain"}))
    speed = section.number("speed", 1.0, minimum=0.0, maximum=1000.0)
    chunk_ms = section.number("chunk_ms", 20.0, minimum=5.0, maximum=100.0)
    truth = section.string("ground_truth", None)
    try:
        config = SessionConfig(**settings)
    except SimulatorSettingError as err:
        raise ConfigError(f"{section.where(err.field)}: {str(err).split(': ', 1)[1]}") from None
    if truth and config.endless:
        raise section.fail("ground_truth", "none in an endless session (duration_s 0 or "
                           "forever keeps no truth); set a finite duration_s to write one")
    return SimulatedSource(config, speed=speed, chunk_s=chunk_ms / 1000.0,
                           ground_truth=truth or None)


def _windows(section: Section, key: str, known: set[str]) -> list[Section]:
    tables = section.tables(key)
    for t in tables:
        t.unknown_keys(known)
        for required in ("channel", "start_s", "end_s"):
            if required not in t.data:
                raise ConfigError(f"{t.where(required)}: required")
    return tables
