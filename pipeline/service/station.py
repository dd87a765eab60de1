"""One station as the pipeline sees it: descriptions, a streaming engine, a raw recording.

Frames reach :meth:`Station.accept` validated and de-duplicated, in arrival order. Each is
appended to the station's recording (the wire bytes, ``.hsrec``) and, when the engine can use
its stream, converted to physical units and session seconds and pushed into the station's
:class:`~hipstride.pipeline.engine.stream.StreamingEngine`. Session seconds count from the
first frame's ``t0_ns`` this process saw (``origin_ns``); rows and cues become absolute times
again through it.

Recordings: one per session, ``<recordings_dir>/<station>/<station>-<session>.hsrec``, and for
frames outside every session ``<station>-<YYYY-MM-DD>.hsrec`` (UTC day of the frame). Which
session a frame belongs to is decided by its ``t0_ns`` on the station's session
:class:`~.sessions.Timeline`. Files are appended to after a restart (a record cut short by a
crash is truncated first). They are at-least-once: a frame redelivered after a crash can
appear twice; readers de-duplicate by (epoch, seq).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hipstride import __version__
from hipstride.csvformat import ACC_UNITS_TO_MS2, EMG_UNITS_TO_MV, GYR_UNITS_TO_DPS
from hipstride.frames import Frame
from hipstride.pipeline.engine.cues import Baseline
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.engine.phases import PhaseResult, phase_mvc, phase_prone, phase_standing
from hipstride.pipeline.engine.stream import (
    EmgStream,
    ImuStream,
    StreamingEngine,
    StreamOutput,
    StreamSettings,
)
from hipstride.pipeline.store.base import (
    FRAMES,
    PROCESSED,
    FrameRecord,
    Point,
    PointBuilder,
    PointSeries,
)
from hipstride.recording import MAGIC, RECORD, RecordingWriter
from hipstride.streams import EMG_STREAM, IMU_CHANNELS, IMU_SEGMENTS, StreamDescription

from .limits import IngestLimits
from .phases import PRONE_PAD_S, RING_S, PhaseJob, SampleRing
from .sessions import UNASSIGNED, Timeline

__all__ = ["Station", "StationOutput", "frame_points", "output_points", "repair_recording"]

log = logging.getLogger("hipstride.pipeline")
ENVELOPE_STREAM = "emg_envelope"
#: Processed angle streams (deg, ≤ 100 Hz) and the engine channels in each.
ANGLE_STREAMS = {"hip_flexion_l_deg": "hip_angle", "hip_flexion_r_deg": "hip_angle",
                 "pelvic_tilt_deg": "pelvis_angle"}
MAX_OPEN_RECORDINGS = 3  # a session's file, the day file, and one spare for late frames
#: A stored engine calibration is resumed only if the station's first frame after a restart
#: is at most this long after the data it was last known to hold for.
RESUME_WITHIN_S = 300.0
#: A stream whose frame starts more than this after the end of its previous frame (ns) has
#: jumped in time (e.g. a Pi's clock corrected by hours): the engine restarts at the frame
#: rather than fill the gap with samples (memory would grow with the jump).
#: Backwards too: the engine would drop samples until time caught up. The default of
#: ``[limits] max_jump_s``.
MAX_JUMP_NS = round(IngestLimits.max_jump_s * 1e9)
#: Engine inputs beyond these are kept and stored but not analysed (the engine's filters and
#: buffers are sized for EMG of a few channels at ~2 kHz and IMUs at ~200 Hz).
ENGINE_EMG_MAX_CHANNELS = 16
ENGINE_EMG_RATE_HZ = (250.0, 10_000.0)
ENGINE_IMU_RATE_HZ = (25.0, 2_000.0)


@dataclass
class _Feed:
    """How one stream's raw samples become engine input."""

    kind: str  # "emg" | "imu"
    segment: str | None
    index: np.ndarray  # column order
    factor: np.ndarray  # physical unit -> engine unit, per used column
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))  # raw -> physical, used
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))  # columns (description)
    all_columns: bool = False  # index is 0..n-1
    unit_scale: bool = False  # every scale is 1

    def engine_units(self, samples: np.ndarray) -> np.ndarray:
        """Raw frame samples -> the used columns in engine units; the same arithmetic as
        ``description.to_physical(samples)[:, index] * factor``, column by column."""
        if self.all_columns and samples.shape[1] == len(self.index):
            x = samples.astype(np.float64)  # every column, in order: no gather
        else:
            x = samples[:, self.index].astype(np.float64)
        if not self.unit_scale:  # x * 1.0 is x
            x *= self.scale
        x += self.offset
        x *= self.factor
        return x


@dataclass
class StationOutput:
    """What one poll of a station produced (engine output plus its time origin)."""

    station: str
    origin_ns: int
    engine: StreamOutput
    problems: list[str] = field(default_factory=list)


def repair_recording(path: Path) -> int:
    """Truncate a recording to its last complete record; returns the bytes cut (0 if none).

    A crash can leave half a record at the end; appending after it would hide every later
    record from readers.
    """
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return 0  # not ours: RecordingWriter refuses it with a clear message
        good = len(MAGIC)
        while good < size:
            head = f.read(RECORD.size)
            if len(head) < RECORD.size:
                break
            _kind, length = RECORD.unpack(head)
            if good + RECORD.size + length > size:
                break
            good += RECORD.size + length
            f.seek(good)
        if good < size:
            f.truncate(good)
        return size - good


def _feed_for(description: StreamDescription) -> tuple[_Feed | None, str | None]:
    """The conversion for a stream the engine uses, or (None, why not)."""
    feed, why = _feed_columns(description)
    if feed is not None:
        feed.scale = np.array([description.channels[i].scale for i in feed.index], dtype=float)
        feed.offset = np.array([description.channels[i].offset for i in feed.index],
                               dtype=float)
        feed.all_columns = bool(np.array_equal(feed.index, np.arange(len(description.channels))))
        feed.unit_scale = bool((feed.scale == 1.0).all())
    return feed, why


def _feed_columns(description: StreamDescription) -> tuple[_Feed | None, str | None]:
    units = [c.unit for c in description.channels]
    rate = description.rate_hz
    if description.stream == EMG_STREAM and description.kind == "emg":
        low, high = ENGINE_EMG_RATE_HZ
        if not low <= rate <= high or len(units) > ENGINE_EMG_MAX_CHANNELS:
            return None, (f"EMG outside what the engine analyses ({low:g}-{high:g} Hz, at "
                          f"most {ENGINE_EMG_MAX_CHANNELS} channels)")
        try:
            factor = [EMG_UNITS_TO_MV[u] for u in units]
        except KeyError as err:
            return None, f"EMG unit {err.args[0]!r} unknown"
        return _Feed("emg", None, np.arange(len(units)), np.array(factor)), None
    segment = description.stream[4:]
    if description.kind == "imu" and description.stream.startswith("imu_") \
            and segment in IMU_SEGMENTS:
        names = description.channel_names
        low, high = ENGINE_IMU_RATE_HZ
        if not low <= rate <= high:
            return None, f"IMU rate outside what the engine analyses ({low:g}-{high:g} Hz)"
        if not set(IMU_CHANNELS) <= set(names):
            return None, f"IMU channels {names} lack some of {IMU_CHANNELS}"
        index = np.array([names.index(c) for c in IMU_CHANNELS])
        try:
            factor = [(ACC_UNITS_TO_MS2 if c.startswith("acc") else GYR_UNITS_TO_DPS)[units[i]]
                      for c, i in zip(IMU_CHANNELS, index, strict=True)]
        except KeyError as err:
            return None, f"IMU unit {err.args[0]!r} unknown"
        return _Feed("imu", segment, index, np.array(factor)), None
    return None, "not an engine input"


class Station:
    """Per-station state (see the module docstring)."""

    def __init__(self, station: str, recordings_dir: Path, *,
                 settings: StreamSettings | None = None, timeline: Timeline | None = None,
                 calibration: tuple[str, int] | None = None, ring_s: float = RING_S,
                 max_jump_ns: int = MAX_JUMP_NS) -> None:
        """``calibration``: the engine state stored by a previous run (JSON, data time ns),
        resumed when this run's first frame is within :data:`RESUME_WITHIN_S` of it.
        ``ring_s``: seconds of recent samples kept for calibration phases. ``max_jump_ns``:
        a stream jumping further ahead restarts the engine (see :data:`MAX_JUMP_NS`)."""
        self.station = station
        self.timeline = timeline if timeline is not None else Timeline()
        self.recordings_dir = Path(recordings_dir)
        self.settings = settings
        self.descriptions: dict[str, StreamDescription] = {}
        self.engine: StreamingEngine | None = None
        self.engine_failed: str | None = None
        self.origin_ns: int | None = None
        self._feeds: dict[str, _Feed] = {}
        self._writers: dict[str, RecordingWriter] = {}  # file name -> writer, oldest use first
        self._dirty: set[str] = set()
        self.frames = 0
        self.samples = 0
        self.rows = 0
        self.not_analysed: dict[str, str] = {}
        self._problems: list[str] = []
        self._stored_calibration = calibration
        self._saved_calibration: str | None = calibration[0] if calibration else None
        self.last_ns: int | None = None  # t0 of the latest frame fed
        self._ends: dict[str, int] = {}  # engine stream -> end (ns) of its latest frame
        self._day: tuple[int, int, str] = (0, 0, "")  # [start, end) ns of the cached day name
        self.resumed = False
        self.ring = SampleRing(ring_s)
        self._specs: tuple[EmgStream | None, list[ImuStream]] | None = None
        self.athlete_mvc: dict[str, float] = {}  # the session athlete's MVC references (mV)
        self._athlete_baseline: Baseline | None = None
        self._athlete_set = False
        self.max_jump_ns = max_jump_ns
        self._stream_ends: dict[str, int] = {}  # every stream -> end (ns) of its latest frame
        self.jumps: list[tuple[str, int]] = []  # time jumps not yet reported: (stream, ns)
        self.restarts = 0  # engine restarts at time jumps
        self._restart_state: dict[str, Any] | None = None  # the state of the latest restart
        self._fed: set[str] = set()  # streams fed to the engine since it started

    # descriptions ----------------------------------------------------------------------------
    def describe(self, description: StreamDescription) -> bool:
        """Take a (new or repeated) description; True when it changed anything."""
        old = self.descriptions.get(description.stream)
        if old is not None and old.to_json() == description.to_json():
            return False
        self.descriptions[description.stream] = description
        for writer in self._writers.values():
            writer.write_description(description)
        if self.engine is not None and description.stream in self._feeds:
            feed, why = _feed_for(description)
            if feed is None:
                self._feeds.pop(description.stream)
                self.not_analysed[description.stream] = why or ""
            else:
                self._feeds[description.stream] = feed
        return True

    # frames --------------------------------------------------------------------------------
    def accept(self, frame: Frame, payload: bytes) -> None:
        """Record one validated, new frame and feed the engine with it."""
        self._record(frame, payload)
        self.frames += 1
        self.samples += frame.n_samples
        if self.origin_ns is None:
            self.origin_ns = frame.t0_ns
            self._build_engine()
        self.last_ns = frame.t0_ns if self.last_ns is None else max(self.last_ns, frame.t0_ns)
        end = frame.t0_ns + frame.duration_ns
        previous = self._stream_ends.get(frame.stream)
        self._stream_ends[frame.stream] = end
        if previous is not None and abs(frame.t0_ns - previous) > self.max_jump_ns:
            self.last_ns = frame.t0_ns
            self._time_jump(frame.stream, frame.t0_ns - previous)
        feed = self._feeds.get(frame.stream)
        if feed is None:
            return
        if end > self._ends.get(frame.stream, -1):
            self._ends[frame.stream] = end
        x = feed.engine_units(frame.samples)
        self.ring.add(frame.stream, frame.t0_ns, frame.rate_hz, x)
        if self.engine is None:
            return
        t0_s = (frame.t0_ns - self.origin_ns) / 1e9
        self._fed.add(frame.stream)
        try:
            if feed.kind == "emg":
                self.engine.push_emg(x, t0_s)
            else:
                self.engine.push_imu(feed.segment, x[:, :3], x[:, 3:], t0_s)
        except Exception as err:  # one station's engine must not stop the others
            self._engine_failed(err)

    def _time_jump(self, stream: str, jump_ns: int) -> None:
        """A stream jumped in time (``jump_ns`` > 0 ahead, < 0 back): a gap that is recorded,
        never filled. The engine restarts from its calibration (as after a pipeline restart),
        so what it holds stays bounded — unless it has had no data of this stream since it
        started (the other streams of one clock step then cost one restart, not one each).
        The recent-sample ring starts afresh too (a phase across a clock step is void)."""
        self.jumps.append((stream, jump_ns))
        self._problems.append(f"{self.station}: a stream jumped in time: {stream} by "
                              f"{jump_ns / 1e9:+.0f} s (a clock step or lost data); the "
                              "engine restarted there and the gap is left empty")
        self.ring = SampleRing(self.ring.keep_s)
        if self._specs is None or self.engine is None or stream not in self._fed:
            return
        self.restarts += 1
        self._fed = set()
        emg, imus = self._specs
        old = self.engine
        state = old.calibration_state() if old.phase != "standing" else None
        if old.phase != "running" and self._restart_state is not None:
            state = self._restart_state  # restarted again before it got running: as before
        self._restart_state = state
        try:
            if state and state.get("standing"):
                self.engine = StreamingEngine.resume(emg, imus, state, settings=self.settings)
            else:
                self.engine = StreamingEngine(emg, imus, settings=self.settings)
            self._apply_athlete()
        except Exception as err:  # one station's engine must not stop the others
            self._engine_failed(err)
        self._ends = {}

    def data_until_ns(self) -> int | None:
        """How far every stream the engine uses has arrived (the earliest end of their
        latest frames, ns), None before each has one: a live message polled now reflects
        data up to here."""
        if not self._feeds or len(self._ends) < len(self._feeds):
            return None
        return min(self._ends.get(name, -1) for name in self._feeds)

    def _build_engine(self) -> None:
        emg: EmgStream | None = None
        imus: list[ImuStream] = []
        for name, description in sorted(self.descriptions.items()):
            feed, why = _feed_for(description)
            if feed is None:
                self.not_analysed[name] = why or ""
                continue
            self._feeds[name] = feed
            if feed.kind == "emg":
                signal = "envelope" if description.extra.get("signal") == "envelope" else "raw"
                emg = EmgStream(description.channel_names, float(description.rate_hz), signal)
            else:
                mounting = (np.eye(3) if description.mounting is None
                            else np.asarray(description.mounting, float))
                imus.append(ImuStream(feed.segment, float(description.rate_hz), mounting))
        if emg is None and not imus:
            self._problems.append(f"{self.station}: no stream the engine can use; frames are "
                                  "kept but not analysed")
            return
        self._specs = (emg, imus)
        try:
            state = self._resume_state()
            if state is not None:
                self.engine = StreamingEngine.resume(emg, imus, state, settings=self.settings)
                self.resumed = True
                log.info("station %s: engine resumed from the stored calibration (%s)",
                         self.station, "running" if state.get("running") else "standing pose")
            else:
                self.engine = StreamingEngine(emg, imus, settings=self.settings)
            if self._athlete_set:
                self._apply_athlete()
        except Exception as err:  # one station's engine must not stop the others
            self._engine_failed(err)

    def _resume_state(self) -> dict[str, Any] | None:
        """The stored engine state to resume from, if recent enough and usable."""
        if self._stored_calibration is None or self.origin_ns is None:
            return None
        body, data_ns = self._stored_calibration
        # redelivered frames (not acknowledged before the crash) may be older than the
        # data time saved with the state: the runner was running then too
        if not abs(self.origin_ns - data_ns) <= RESUME_WITHIN_S * 1e9:
            log.info("station %s: stored calibration too old (%.0f s); calibrating afresh",
                     self.station, (self.origin_ns - data_ns) / 1e9)
            return None
        try:
            state = json.loads(body)
        except ValueError:
            log.error("station %s: stored calibration unreadable; calibrating afresh",
                      self.station)
            return None
        return state if isinstance(state, dict) and state.get("standing") else None

    def calibration_update(self) -> tuple[str | None, int] | None:
        """What to persist after a poll: (the engine's calibration state as JSON when it
        changed since last saved, else None; the data time it holds for). None before the
        engine has calibrated."""
        if self.engine is None or self.last_ns is None or self.engine.phase == "standing":
            return None
        body = json.dumps(self.engine.calibration_state(), sort_keys=True)
        if body == self._saved_calibration:
            return None, self.last_ns
        self._saved_calibration = body
        self._record_calibration(json.loads(body), list(self._writers.values()))
        return body, self.last_ns

    def _record_calibration(self, state: dict[str, Any], writers: list[RecordingWriter]
                            ) -> None:
        """The engine's calibration state into recordings (kind 4, docs/formats.md), so
        ``hipstride analyze`` can re-analyse a session that starts mid-run."""
        engine = self.engine
        made_ns = (None if self.resumed or engine.standing is None or self.origin_ns is None
                   else self.origin_ns + round(engine.standing[1] * 1e9))
        for writer in writers:
            writer.write_calibration(state, station=self.station, data_ns=self.last_ns,
                                     made_ns=made_ns, resumed=self.resumed,
                                     settings=asdict(engine.settings))
            self._dirty.add(writer.path.name)

    def _engine_failed(self, err: Exception) -> None:
        self.engine = None
        self.engine_failed = f"{type(err).__name__}: {err}"
        self._problems.append(f"{self.station}: the engine stopped ({self.engine_failed}); "
                              "frames are still kept and stored")
        log.exception("station %s: engine failed; its frames are still stored", self.station)

    def poll(self) -> StationOutput | None:
        """Run the engine on what arrived; None when there is nothing to report."""
        problems, self._problems = self._problems, []
        out = StreamOutput()
        if self.engine is not None:
            try:
                out = self.engine.poll()
            except Exception as err:
                self._engine_failed(err)
                problems += self._problems
                self._problems = []
        self.rows += len(out.rows)
        if self.origin_ns is None:
            return None
        return StationOutput(self.station, self.origin_ns, out, problems + out.problems)

    # calibration phases and the athlete ------------------------------------------------------
    def data_end_ns(self) -> int | None:
        """How far the samples of every analysed stream reach (ns), None before any."""
        ends = [self.ring.end_ns(name) for name in self._feeds]
        return min(ends) if ends and None not in ends else None

    def _window(self, start_ns: int, end_ns: int, emg_pad_s: float = 0.0
                ) -> tuple[EmgData | None, dict[str, ImuData], list[str]]:
        """The analysed streams' samples of a phase, times in seconds from ``start_ns``."""
        emg: EmgData | None = None
        imus: dict[str, ImuData] = {}
        problems: list[str] = []
        for name, feed in sorted(self._feeds.items()):
            a = start_ns - round(emg_pad_s * 1e9) if feed.kind == "emg" else start_ns
            got = self.ring.window(name, a, end_ns)
            if got is None:
                continue
            t0_ns, rate, x, missing = got
            if missing > rate * 0.05:
                problems.append(f"{name}: {missing / rate:.1f} s of samples are missing in the "
                                "window (frames lost); they were filled in")
            if t0_ns - a > 1e9:
                problems.append(f"{name}: only the last {(end_ns - t0_ns) / 1e9:.0f} s of the "
                                "phase were kept (the pipeline keeps "
                                f"{self.ring.keep_s:.0f} s): make phases shorter")
            t0_s = (t0_ns - start_ns) / 1e9
            description = self.descriptions[name]
            if feed.kind == "emg":
                signal = "envelope" if description.extra.get("signal") == "envelope" else "raw"
                emg = EmgData(x, description.channel_names, rate, t0_s, signal)
            else:
                mounting = (np.eye(3) if description.mounting is None
                            else np.asarray(description.mounting, float))
                imus[feed.segment] = ImuData(feed.segment, x[:, :3], x[:, 3:], rate, t0_s,
                                             mounting)
        return emg, imus, problems

    def run_phase(self, job: PhaseJob) -> PhaseResult:
        """Analyse a phase that ended (pure engine functions on the window)."""
        window = (0.0, (job.end_ns - job.start_ns) / 1e9)
        pad = PRONE_PAD_S if job.phase == "prone" else 0.0
        emg, imus, gaps = self._window(job.start_ns, job.end_ns, pad)
        if job.phase == "standing":
            res = phase_standing(imus, emg, window, settings=self.settings)
        elif job.phase == "mvc":
            if emg is None:
                res = PhaseResult("mvc", False, ["no EMG in the MVC window: is the EMG stream "
                                                 "on and sending?"])
            else:
                levels = self.engine.emg_levels() if self.engine is not None else {}
                res = phase_mvc(emg, window, muscles=[job.muscle] if job.muscle else None,
                                floor_mv=levels.get("floor_mv"),
                                running_mv=levels.get("running_mv"))
        else:
            thighs = {k: v for k, v in imus.items() if k.startswith("thigh_")}
            res = phase_prone(thighs, emg, imus.get("pelvis"), window, side=job.side)
        res.problems = gaps + res.problems
        res.result["duration_s"] = window[1]
        return res

    def apply_standing(self, standing: dict[str, Any], at_ns: int) -> str:
        """Restart the engine from a new standing calibration (the runner stood until
        ``at_ns``): the MVC references and baseline carry over, samples after ``at_ns`` in
        the ring are fed again. Returns what happened, in words."""
        if self._specs is None or self.origin_ns is None:
            return "not applied: the station has no stream the engine can use"
        emg, imus = self._specs
        old = self.engine
        mvc = old.calibration_state()["mvc"] if old is not None else None
        baseline = old.tracker.baseline if old is not None else self._athlete_baseline
        try:
            engine = StreamingEngine(emg, imus, calibration=standing, mvc=mvc,
                                     baseline=baseline, settings=self.settings,
                                     start_s=(at_ns - self.origin_ns) / 1e9)
            for name, feed in self._feeds.items():
                for t0_ns, x in self.ring.blocks_since(name, at_ns):
                    t0_s = (t0_ns - self.origin_ns) / 1e9
                    if feed.kind == "emg":
                        engine.push_emg(x, t0_s)
                    else:
                        engine.push_imu(feed.segment, x[:, :3], x[:, 3:], t0_s)
        except Exception as err:  # keep the running engine
            log.exception("station %s: new standing calibration not applied", self.station)
            return f"not applied ({type(err).__name__}: {err})"
        self.engine, self.engine_failed, self.resumed = engine, None, False
        self._restart_state = None  # a later time jump restarts from this calibration
        return "applied: the engine restarted from this standing pose"

    def apply_mvc(self, reference: dict[str, float]) -> tuple[str, ...]:
        """Add MVC references (mV) to the athlete's; the engine normalises to MVC once every
        EMG channel has one. Returns the channels still lacking one."""
        self.athlete_mvc.update(reference)
        return self._apply_athlete() if self.engine is not None else self.mvc_missing()

    def mvc_missing(self) -> tuple[str, ...]:
        emg = self._specs[0] if self._specs else None
        return tuple(c for c in (emg.channels if emg else ()) if c not in self.athlete_mvc)

    def use_athlete(self, calibration: dict[str, Any] | None) -> None:
        """The stored calibration of the session's athlete (``Store.calibration``): its MVC
        references and cue baseline replace the previous athlete's from now on."""
        cal = calibration or {}
        mvc = cal.get("mvc") or {}
        self.athlete_mvc = {c: float(v) for c, v in zip(mvc.get("channels", ()),
                                                        mvc.get("reference_mv", ()),
                                                        strict=True)}
        base = cal.get("baseline")
        self._athlete_baseline = Baseline.from_dict(base) if base else None
        self._athlete_set = True
        if self.engine is not None:
            self._apply_athlete()

    def _apply_athlete(self) -> tuple[str, ...]:
        engine = self.engine
        missing = engine.set_mvc_reference(self.athlete_mvc or None)
        if self._athlete_set:
            engine.set_baseline(self._athlete_baseline)
            self._athlete_set = False
        return missing

    # recording -----------------------------------------------------------------------------
    def _record(self, frame: Frame, payload: bytes) -> None:
        session, athlete = self.timeline.at(frame.t0_ns)
        if session == UNASSIGNED:
            start, end, name = self._day
            if not start <= frame.t0_ns < end:
                day = dt.datetime.fromtimestamp(frame.t0_ns / 1e9, dt.UTC).date()
                start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
                            .timestamp()) * 10**9
                name = f"{self.station}-{day.isoformat()}.hsrec"
                self._day = (start, start + 86_400 * 10**9, name)
        else:
            name = f"{self.station}-{session}.hsrec"
        writer = self._writers.pop(name, None) or self._open(name, session, athlete)
        self._writers[name] = writer  # most recently used last
        writer.write_frame(payload, frame.stream)
        self._dirty.add(name)

    def _open(self, name: str, session: str, athlete: str | None) -> RecordingWriter:
        while len(self._writers) >= MAX_OPEN_RECORDINGS:
            oldest = next(iter(self._writers))
            self._writers.pop(oldest).close()
            self._dirty.discard(oldest)
        path = self.recordings_dir / self.station / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            cut = repair_recording(path)
            if cut:
                log.warning("%s: cut %d bytes of a record left unfinished by a crash", path, cut)
        writer = RecordingWriter(path, append=True)
        meta: dict[str, Any] = {"station": self.station, "pipeline": __version__,
                                "session": session,
                                "opened_ns": int(dt.datetime.now(dt.UTC).timestamp() * 1e9)}
        if athlete:
            meta["athlete"] = athlete
        writer.write_metadata(meta)
        for description in self.descriptions.values():
            writer.write_description(description)
        if self.engine is not None and self.engine.phase != "standing":
            self._record_calibration(self.engine.calibration_state(), [writer])
        return writer

    def recording_path(self, session: str | None = None) -> Path | None:
        """Path of the most recently used recording (of ``session``, when given)."""
        for writer in reversed(self._writers.values()):
            if session is None or writer.path.name == f"{self.station}-{session}.hsrec":
                return writer.path
        return None

    def flush(self) -> None:
        """Hand recorded bytes to the OS (called before the frames are acknowledged)."""
        for name in self._dirty:
            self._writers[name].flush()
        self._dirty.clear()

    def close(self) -> None:
        while self._writers:
            _name, writer = self._writers.popitem()
            writer.flush()
            writer.close()
        self._dirty.clear()


# --- outputs as store points -------------------------------------------------------------------
def output_points(out: StationOutput, timeline: Timeline | None = None, *,
                  series: bool = False) -> list[Point | PointSeries]:
    """Stride rows, cue events, the processed EMG envelopes and angles of one poll, as points.

    Each item is tagged with the session its time falls in on ``timeline`` (a stride by its
    initial contact, a cue by its stride, a processed value by its sample time), else
    ``unassigned``. Processed streams: ``emg_envelope`` (a channel per EMG channel, mV),
    ``hip_angle`` (``hip_flexion_l_deg``, ``hip_flexion_r_deg``) and ``pelvis_angle``
    (``pelvic_tilt_deg``), all ≤ 100 Hz. With ``series`` each processed channel comes as one
    :class:`PointSeries` (stored the same, far cheaper to build and write), else as points.
    """
    timeline = timeline or Timeline()
    c = PointBuilder()
    e = out.engine

    def split(items: list[dict[str, Any]]) -> Any:
        times = [out.origin_ns + round(float(i.get("stride_start_s") or 0.0) * 1e9)
                 for i in items]
        for session, athlete, mask in timeline.split(np.asarray(times, dtype=np.int64)):
            yield session, athlete, [i for i, m in zip(items, mask.tolist(), strict=True) if m]

    if e.rows:
        for session, athlete, rows in split(e.rows):
            c.write_strides(out.station, session, athlete, rows, origin_ns=out.origin_ns)
    if e.cue_events:
        for session, athlete, events in split(e.cue_events):
            c.write_cues(out.station, session, athlete, events, origin_ns=out.origin_ns)
    blocks: list[tuple[str, str, Any, Any]] = []  # (stream, channel, time_s, values)
    processed = e.snapshot.get("processed") or {}
    times = processed.get("time_s", ())
    for channel, values in (processed.get("envelope_mv") or {}).items():
        blocks.append((ENVELOPE_STREAM, channel, times, values))
    for channel, s in (e.snapshot.get("angles_deg") or {}).items():
        blocks.append((ANGLE_STREAMS.get(channel, "angle"), channel, s["time_s"], s["value"]))
    for stream, channel, time_s, values in blocks:
        t = np.asarray(time_s, dtype=float)
        if not len(t):
            continue
        stamps = out.origin_ns + np.round(t * 1e9).astype(np.int64)
        v = np.asarray(values, dtype=float)
        for session, _athlete, mask in timeline.split(stamps):
            t_in, v_in = stamps[mask], v[mask]
            finite = np.isfinite(v_in)
            if not finite.all():
                t_in, v_in = t_in[finite], v_in[finite]
            if len(t_in):
                made = PointSeries(PROCESSED, _processed_tags(out.station, session, stream,
                                                              channel), "value", t_in, v_in)
                c.points += [made] if series else made.points()
    return c.points


@functools.lru_cache(maxsize=4096)
def _processed_tags(station: str, session: str, stream: str, channel: str) -> Mapping[str, str]:
    """Checked tags of a processed series (what :meth:`PointSeries.make` would check),
    made once per series key."""
    return Point.make(PROCESSED, 0, {"station": station, "session": session, "stream": stream,
                                     "channel": channel}, {"value": 0.0}).tags


def frame_points(station: str, records: list[FrameRecord]) -> list[Point]:
    """Frame index points of validated frames (the fields :meth:`Point.make` would give,
    without its checks: the decoder already guarantees the types)."""
    return [Point(FRAMES, f.t0_ns, {"station": station, "stream": f.stream},
                  {"epoch": f.epoch, "seq": f.seq, "n_samples": f.n_samples,
                   "rate_hz": float(f.rate_hz), "session": f.session})
            if f.session else
            Point.make(FRAMES, f.t0_ns, {"station": station, "stream": f.stream},
                       {"epoch": f.epoch, "seq": f.seq, "n_samples": f.n_samples,
                        "rate_hz": f.rate_hz, "session": f.session})
            for f in records]
