"""The engine in streaming form: one :class:`StreamingEngine` per station, fed sensor blocks.

What :func:`.analysis.analyze` does with a whole file, done as the samples arrive, with the
same code wherever the maths allows it:

1. **Standing calibration** — the first ``standing_s`` seconds (default 5): each IMU's static
   calibration and gyro bias, the EMG noise floor (median zero-phase envelope, as offline; it
   waits for 1 s more EMG so the filter edges are gone), and the MVC reference when MVC trials
   are given. A stored calibration (:meth:`StreamingEngine.calibration_state`) skips it.
   A pipeline restarted mid-run resumes with :meth:`StreamingEngine.resume` (the whole
   stored state, including its ``running`` part): no standing, no functional calibration,
   the learned tilt reference kept; the first ``gap_recovery_s`` are a gap recovery.
2. **Orientation** per segment by the causal fusion filter, with the offline settings and tilt
   reference window (:mod:`.stream_kinematics`).
3. **Functional calibration** once, after ``functional_s`` seconds of running (default 10):
   the segment axes from that window (offline: the whole run). Gait detection starts then,
   replaying the buffered run, so the strides of that first phase come out together when it
   ends; from then on each row follows its stride within a fraction of a stride.
4. **Gait events** per side: :class:`.gait.GaitEventDetector` on the shank (the offline ICs
   exactly), else :class:`.stream_kinematics.ThighEventDetector` on the thigh. Plausibility is
   the causal form of :func:`.gait.gait_reject_implausible` (previous strides only).
5. **Stride rows** — when a stride's next IC is known and the EMG reaches ``tail_s`` (0.4 s)
   past the last EMG sample the row reads (``max(IC + T/2, peak extension)``): the EMG of
   ``[IC − T/2 − 1 s, that + 0.4 s]`` is processed zero-phase by the offline code
   (:func:`.strides.emg_preprocess`, floor removal, normalisation), kinematics come from the
   causal chain, and :func:`.strides.stride_rows` measures the row. Rows are released in IC
   order across sides (a row waits while the other side may still close an earlier stride).
6. **Cues**: :class:`.cues.CueTracker`, one row at a time.

Normalisation without MVC: the offline reference is the mean per-step envelope peak between
the first 31 valid IC of the session (both sides, sorted). Live, until those 30 steps are in,
the reference is the mean over the steps seen so far (before the first step: the row's own
stride window) — a *provisional* reference; rows stay labelled ``"relative"`` throughout and
the reference is frozen at 30 steps, after which ratios equal the offline ones.

**Input contract.** Per stream, blocks arrive in time order and contiguous: block ``k + 1``
starts where block ``k`` ended (``t0_s`` of a block = session time of its first sample; it is
checked to half a sample). The caller de-duplicates and orders frames. Missing samples are
announced with :meth:`StreamingEngine.gap`; a block that starts later than expected is taken
as an unannounced gap, samples already covered are dropped (counted in ``stats``). After an
IMU gap the segment's fusion restarts from its orientation one stride earlier with a faster
tilt correction for ``gap_recovery_s``; strides touching the gap or that recovery carry
``dropout:imu_<segment>`` and no kinematic metrics. After an EMG gap the envelope filter
restarts and strides whose EMG window touches the gap carry ``dropout:emg``.

Equivalence with :func:`.analysis.analyze` on the same session (tests/.../test_stream.py):
the same ICs (shank method: < 3 µs), peak hip extension, flexion and tilt within 0.04°
(functional axes from 10 s instead of the whole run, trailing instead of centred heading
reference), onsets within 0.003 ms and MVC-normalised ratios within 0.2 % (median 2e-5 %:
window edges of the zero-phase filters). Row latency after the closing IC with 50 ms blocks:
0.08–0.28 s (IC confirmation ~70 ms + IMU batch ≤ 0.2 s + block). Cost in steady running:
~0.6 ms CPU per 50 ms block of 6 EMG × 2 kHz + 5 IMUs × 200 Hz (one core, this machine):
about 45 % the IMU chain, 30 % the per-row zero-phase EMG window, the rest gait detection,
causal envelopes and bookkeeping (benchmarks/bench_stream.py).

Pure numpy/scipy: no file, network or UI imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .cues import Baseline, CueThresholds, CueTracker
from .data import SIDES, EmgData, GaitEvents, Kinematics
from .emg import emg_mvc_reference, emg_quality
from .emg_filters import EmgEnvelopeFilter, emg_filter_design
from .gait import GaitEventDetector, gait_reject_implausible
from .stream_kinematics import SampleBuffer, SegmentStream, ThighEventDetector
from .strides import (
    MuscleActivity,
    channel_flags,
    emg_preprocess,
    noise_floor_mv,
    remove_floor,
    stride_rows,
)

__all__ = ["EmgStream", "ImuStream", "StreamOutput", "StreamSettings", "StreamingEngine"]

STATE_VERSION = 1


@dataclass(frozen=True)
class EmgStream:
    """The EMG stream a station sends: channel names (canonical), rate (Hz), and
    ``signal`` ``"raw"`` or ``"envelope"`` (as :class:`.data.EmgData`)."""

    channels: tuple[str, ...]
    rate_hz: float
    signal: str = "raw"


@dataclass(frozen=True)
class ImuStream:
    """One IMU stream: segment, rate (Hz), known sensor → segment mounting (3×3)."""

    segment: str
    rate_hz: float
    mounting: Any = field(default_factory=lambda: np.eye(3))


@dataclass(frozen=True)
class StreamSettings:
    """Settings of the streaming engine (times in s).

    Attributes
    ----------
    standing_s : float
        Standing calibration at the start (when no stored calibration is given).
    functional_s : float
        Running time before the functional calibration (and the first rows).
    margin_s : float
        EMG processed before a row's earliest EMG sample, so zero-phase edges do not matter.
    tail_s : float
        EMG waited for after a row's latest EMG sample (zero-phase edge at the end).
    keep_s : float
        History kept per stream once running.
    gap_recovery_s, recovery_time_constant_s : float
        After an IMU gap: no kinematic metrics for this long; faster tilt correction (s).
    stale_side_s : float
        A side with no IC for this long no longer holds back the other side's rows.
    snapshot_rate_hz : float
        Rate of the processed envelopes in the snapshot (≤ 100 Hz).
    imu_batch_s : float
        IMU samples are run through the chain in batches of at least this long: the fusion
        filter costs ~0.25 ms per call whatever its length, so batching is what keeps a
        station's cost low; rows come up to this much later.
    full_scale_mv : float
        EMG amplifier range, for the saturation check.
    """

    standing_s: float = 5.0
    functional_s: float = 10.0
    margin_s: float = 1.0
    tail_s: float = 0.4
    keep_s: float = 8.0
    gap_recovery_s: float = 8.0
    recovery_time_constant_s: float = 1.0
    stale_side_s: float = 1.5
    snapshot_rate_hz: float = 100.0
    full_scale_mv: float = 10.0
    imu_batch_s: float = 0.2


@dataclass
class StreamOutput:
    """What one :meth:`StreamingEngine.poll` returns.

    ``rows``: new stride rows (``schema.STRIDE_COLUMNS`` dicts); ``row_latency_s``: for each,
    the data time at output minus its closing IC (s); ``cue_events``: dicts as
    ``AnalysisResult.cue_events``; ``snapshot``: ``time_s``, ``phase``, ``hip_flexion_deg``
    (side → deg), ``pelvic_tilt_deg``, ``processed`` (``time_s`` and ``envelope_mv`` per channel:
    the causal envelope since the last poll at ≤ 100 Hz, lagging ~40 ms), ``active_cues``
    (:meth:`CueTracker.active_cues`, the cues active now); ``problems``: new
    messages for the user; ``calibration``: the standing calibration when it was just made.
    """

    rows: list[dict] = field(default_factory=list)
    row_latency_s: list[float] = field(default_factory=list)
    cue_events: list[dict] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None


@dataclass
class _Stride:
    side: str
    index: int
    ic: float
    ic_next: float
    toe_off: float
    valid: bool
    reason: str
    method: str
    t_ext: float | None = None
    kin: tuple[Kinematics | None, list[str]] | None = None


class StreamingEngine:
    """Per-station streaming engine (see the module docstring for the chain and contract).

    Parameters
    ----------
    emg : EmgStream or None
        The EMG stream, if any.
    imus : sequence of ImuStream
        The IMU streams (``pelvis``, ``thigh_l``, ``thigh_r``, optional shanks).
    calibration : dict, optional
        A stored standing calibration (``calibration_state()["standing"]``): skips the
        standing period. The runner must still start from the standing pose (unless
        ``running`` is given).
    mvc : EmgData or dict, optional
        MVC trials of the same channels (reference computed at calibration, as offline), or a
        stored reference ``{"channels": [...], "reference_mv": [...]}``.
    baseline : Baseline, optional
        Stored cue baseline; None learns one from the session (as offline).
    thresholds : CueThresholds, optional
        Cue rules.
    settings : StreamSettings
        See there.
    start_s : float, optional
        Session time the standing period starts; default the first sample received.
    running : dict, optional
        ``calibration_state()["running"]`` of an engine that was running: the runner is
        running now (with ``calibration`` holding the functional axes). Each IMU starts from
        the standing pose with the gap-recovery correction and the stored tilt reference;
        strides in the first ``gap_recovery_s`` carry ``dropout:imu_<segment>``. A stored
        relative EMG reference (complete, 30 steps) is used as is. Prefer :meth:`resume`.
    """

    def __init__(self, emg: EmgStream | None, imus: Sequence[ImuStream], *,
                 calibration: Mapping[str, Any] | None = None,
                 mvc: EmgData | Mapping[str, Any] | None = None,
                 baseline: Baseline | None = None, thresholds: CueThresholds | None = None,
                 settings: StreamSettings | None = None, start_s: float | None = None,
                 running: Mapping[str, Any] | None = None) -> None:
        self.settings = s = settings or StreamSettings()
        self.emg = emg
        self.imu_streams = {i.segment: i for i in imus}
        self._stored = dict(calibration) if calibration else None
        if running is not None and not self._stored:
            raise ValueError("running (resume) needs a stored calibration")
        self._running = dict(running) if running is not None else None
        self._mvc = mvc
        self.tracker = CueTracker(baseline, thresholds=thresholds)
        self._start_s = start_s
        self.stats = {"dropped_samples": 0, "gaps": 0, "rows": 0}
        self.problems: list[str] = []
        self._new_problems: list[str] = []
        self.phase = "standing"
        self.standing: tuple[float, float] | None = None
        # EMG
        self._emg_start: float | None = None
        self._emg_raw = SampleBuffer((len(emg.channels),) if emg else (1,))
        self._emg_gaps: list[tuple[int, int]] = []
        self._env_filter = (EmgEnvelopeFilter(emg_filter_design(emg.rate_hz), len(emg.channels))
                            if emg and emg.signal == "raw" else None)
        self._snap_step = max(1, math.ceil(emg.rate_hz / min(100.0, s.snapshot_rate_hz))) \
            if emg else 1
        self._snap_t: list[np.ndarray] = []
        self._snap_env: list[np.ndarray] = []
        self.floor_mv: np.ndarray | None = None
        self.reference_mv: np.ndarray | None = None
        self.normalization = "mvc" if mvc is not None else "relative"
        self._step_peaks: list[np.ndarray] = []
        self._reference_frozen = False  # relative reference complete (30 steps, or stored)
        stored_ref = (self._running or {}).get("emg_reference")
        if emg and stored_ref and self.normalization == "relative":
            ref = dict(zip(stored_ref["channels"], stored_ref["reference_mv"], strict=True))
            if all(c in ref for c in emg.channels):
                self.reference_mv = np.array([float(ref[c]) for c in emg.channels])
                self._reference_frozen = True
        self._valid_starts: list[float] = []
        # IMU
        self.segments: dict[str, SegmentStream] = {}
        self._detectors: dict[str, Any] = {}
        self._fed: dict[str, int] = {}
        self._ics: dict[str, list[float]] = {side: [] for side in SIDES}
        self._toe: dict[str, float] = {}
        self._pending: list[_Stride] = []
        self._angle_next: dict[str, int] = {}  # processed angle channel -> next grid index
        self._unusable: set[str] = set()  # IMUs whose standing calibration failed
        self._out = StreamOutput()

    @classmethod
    def resume(cls, emg: EmgStream | None, imus: Sequence[ImuStream],
               state: Mapping[str, Any], **kwargs: Any) -> StreamingEngine:
        """An engine that carries on mid-run from ``state`` (:meth:`calibration_state`, e.g.
        as JSON): its standing calibration, MVC reference, baseline and ``running`` part.
        Without a ``running`` part it is a stored calibration (standing pose first)."""
        base = state.get("baseline")
        kwargs.setdefault("mvc", state.get("mvc"))
        kwargs.setdefault("baseline", Baseline.from_dict(base) if base else None)
        return cls(emg, imus, calibration=state.get("standing"), running=state.get("running"),
                   **kwargs)

    # --- input --------------------------------------------------------------------------------
    def _session_start(self, t0: float) -> None:
        if self._start_s is None:
            self._start_s = t0
        if self.standing is None:
            length = 0.0 if self._stored else self.settings.standing_s
            self.standing = (self._start_s, self._start_s + length)

    def _expect(self, end: int, rate: float, start: float, t0: float) -> int:
        """Samples missing (> 0) or overlapping (< 0) before a block starting at ``t0``."""
        return round((t0 - start) * rate - end)

    def push_emg(self, samples_mv: ArrayLike, t0_s: float) -> None:
        """Next EMG block, shape (n, channels) in mV, first sample at session time ``t0_s``."""
        if self.emg is None:
            raise ValueError("this engine was built without an EMG stream")
        x = np.asarray(samples_mv, dtype=float).reshape(-1, len(self.emg.channels))
        rate = self.emg.rate_hz
        if self._emg_start is None:
            self._emg_start = float(t0_s)
            self._session_start(float(t0_s))
            self._emg_raw.reset(0)
        else:
            d = self._expect(self._emg_raw.end, rate, self._emg_start, t0_s)
            if d > 0:
                self.gap("emg", self._emg_start + self._emg_raw.end / rate, t0_s)
            elif d < 0:
                self.stats["dropped_samples"] += min(-d, len(x))
                x = x[-d:]
        if not len(x):
            return
        i0 = self._emg_raw.end
        self._emg_raw.append(x)
        env = self._env_filter.process(x) if self._env_filter else x
        idx = np.arange(i0, i0 + len(x))
        pick = idx % self._snap_step == 0
        if pick.any():
            self._snap_t.append(self._emg_start + idx[pick] / rate)
            self._snap_env.append(env[pick])

    def push_imu(self, segment: str, acc_mps2: ArrayLike, gyr_dps: ArrayLike, t0_s: float
                 ) -> None:
        """Next block of one IMU: (n, 3) m/s² and deg/s (sensor frame), first at ``t0_s``."""
        if segment not in self.imu_streams:
            raise ValueError(f"unknown IMU segment {segment!r}; declared: "
                             + ", ".join(sorted(self.imu_streams)))
        acc = np.asarray(acc_mps2, dtype=float).reshape(-1, 3)
        gyr = np.asarray(gyr_dps, dtype=float).reshape(-1, 3)
        if len(acc) != len(gyr):
            raise ValueError(f"IMU {segment}: {len(acc)} acc but {len(gyr)} gyro samples")
        if segment in self._unusable:  # not calibrated: unused until the next standing
            self.stats["dropped_samples"] += len(acc)
            return
        seg = self.segments.get(segment)
        if seg is None:
            desc = self.imu_streams[segment]
            self._session_start(float(t0_s))
            seg = self.segments[segment] = SegmentStream(
                segment, desc.rate_hz, desc.mounting, float(t0_s), keep_s=self.settings.keep_s,
                recovery_s=self.settings.gap_recovery_s,
                recovery_time_constant_s=self.settings.recovery_time_constant_s)
        else:
            d = self._expect(seg.acc.end, seg.rate_hz, seg.start_s, t0_s)
            if d > 0:
                self.gap(segment, seg.end_s, t0_s)
            elif d < 0:
                self.stats["dropped_samples"] += min(-d, len(acc))
                acc, gyr = acc[-d:], gyr[-d:]
        seg.append(acc, gyr)

    def gap(self, stream: str, start_s: float, end_s: float) -> None:
        """Samples of ``stream`` (``"emg"`` or a segment) in ``[start_s, end_s)`` will never
        come. Resets what cannot run across missing samples (see the module docstring)."""
        self.stats["gaps"] += 1
        if stream == "emg":
            if self._emg_start is None or self.emg is None:
                return
            i_next = round((end_s - self._emg_start) * self.emg.rate_hz)
            n = i_next - self._emg_raw.end
            if n <= 0:
                return
            self._emg_gaps.append((self._emg_raw.end, i_next))
            self._emg_raw.fill(n)
            if self._env_filter:
                self._env_filter.reset()
            return
        seg = self.segments.get(stream)
        if seg is None:
            return
        n = seg.index(end_s) - seg.acc.end
        if n <= 0:
            return
        side = stream[-1] if stream[-2:] in ("_l", "_r") else None
        seg.gap(n, self._period(side))
        for s in list(self._fed):
            if self._detector_segment(s) == stream:
                self._restart_detector(s, seg.acc.end)
        if self.phase == "standing" and not self._stored:
            self._problem(f"{stream}: gap during the standing calibration; it starts again")
            self._start_s = None
            self.standing = None
            self._emg_start = None
            self.segments.clear()

    # --- output -------------------------------------------------------------------------------
    def poll(self) -> StreamOutput:
        """Process what arrived; return new rows, cue events and the live snapshot."""
        for seg in self.segments.values():
            if seg.acc.end - seg.rot.end >= self.settings.imu_batch_s * seg.rate_hz \
                    or seg.rot.end == seg.rot.start:
                seg.process()
        if self.phase == "standing":
            self._try_standing()
        if self.phase == "calibrating":
            self._try_functional()
        if self.phase == "running":
            self._detect()
            self._release()
        out, self._out = self._out, StreamOutput()
        out.problems = self._new_problems
        self._new_problems = []
        out.snapshot = self._snapshot()
        return out

    def calibrate_standing(self) -> dict[str, Any]:
        """Calibrate now from the standing data received so far (e.g. the operator ends the
        standing phase); returns the standing calibration (:meth:`calibration_state`)."""
        if self.phase != "standing":
            raise ValueError("already calibrated")
        if not self.segments and self._emg_start is None:
            raise ValueError("no data yet: cannot calibrate")
        end = min(self._stream_ends())
        self.standing = (self.standing[0], end)
        self._calibrate()
        return self.calibration_state()["standing"]

    def set_mvc_reference(self, reference: Mapping[str, float] | None) -> tuple[str, ...]:
        """Normalise to these MVC references (mV per channel, e.g. from a guided MVC phase or
        stored for the athlete) from the next row on; returns the channels still lacking one.

        Ratios need every channel on one scale: with a reference for each EMG channel rows
        become ``"mvc"``; otherwise (or with None) they stay (or go back to) ``"relative"``,
        the dynamic reference learnt afresh from the next strides.
        """
        if self.emg is None:
            return ()
        ref = {c: float(v) for c, v in (reference or {}).items()
               if math.isfinite(float(v)) and float(v) > 0}
        missing = tuple(c for c in self.emg.channels if c not in ref)
        if reference and not missing:
            self._mvc = {"channels": list(self.emg.channels),
                         "reference_mv": [ref[c] for c in self.emg.channels]}
            self.reference_mv = np.array(self._mvc["reference_mv"])
            self.normalization = "mvc"
        elif self.normalization == "mvc" or self._mvc is not None:
            self._mvc = None
            self.normalization = "relative"
            self.reference_mv = None
            self._step_peaks, self._valid_starts = [], []
            self._reference_frozen = False
        return missing

    def set_baseline(self, baseline: Baseline | None) -> None:
        """Cue baseline from now on (a stored one, or None to learn one from the next
        strides); active cues and their windows start afresh."""
        self.tracker = CueTracker(baseline, thresholds=self.tracker.thresholds,
                                  baseline_strides=self.tracker.baseline_strides)

    def emg_levels(self) -> dict[str, dict[str, float] | None]:
        """Per channel: ``floor_mv`` (standing noise floor) and ``running_mv`` (the dynamic
        reference: mean per-step envelope peak while running), None when not known yet."""
        if self.emg is None:
            return {"floor_mv": None, "running_mv": None}
        chans = self.emg.channels
        floor = None if self.floor_mv is None else dict(zip(chans, self.floor_mv.tolist(),
                                                            strict=True))
        running = None
        if self.normalization == "relative" and self.reference_mv is not None \
                and (self._step_peaks or self._reference_frozen):
            running = dict(zip(chans, self.reference_mv.tolist(), strict=True))
        return {"floor_mv": floor, "running_mv": running}

    def calibration_state(self) -> dict[str, Any]:
        """Everything to store per athlete, as plain lists and dicts (JSON-ready)."""
        standing = None
        if self.phase != "standing":
            standing = {
                "version": STATE_VERSION,
                "imu": {k: s.state() for k, s in self.segments.items() if s.static},
                "emg": None if self.floor_mv is None or self.emg is None else {
                    "channels": list(self.emg.channels), "floor_mv": self.floor_mv.tolist()},
            }
        mvc = None
        if self.normalization == "mvc" and self.reference_mv is not None and self.emg:
            mvc = {"channels": list(self.emg.channels),
                   "reference_mv": self.reference_mv.tolist(), "normalization": "mvc"}
        base = self.tracker.baseline or self.tracker.session_baseline
        running = None
        if self.phase == "running":
            emg_ref = None
            if self.emg and self.normalization == "relative" and self.reference_mv is not None \
                    and (self._reference_frozen or len(self._step_peaks) >= 30):
                emg_ref = {"channels": list(self.emg.channels),
                           "reference_mv": self.reference_mv.tolist()}
            running = {"version": STATE_VERSION, "emg_reference": emg_ref,
                       "imu": {k: s.running_state() for k, s in self.segments.items()
                               if s.static}}
        return {"standing": standing, "mvc": mvc,
                "baseline": base.to_dict() if base else None, "running": running}

    # --- calibration --------------------------------------------------------------------------
    def _stream_ends(self) -> list[float]:
        ends = [s.end_s for s in self.segments.values()]
        if self._emg_start is not None and self.emg:
            ends.append(self._emg_start + self._emg_raw.end / self.emg.rate_hz)
        return ends

    def _try_standing(self) -> None:
        if self.standing is None:
            return
        need = self.standing[1]
        ends = {k: s.end_s for k, s in self.segments.items()}
        ok = all(ends.get(k, -math.inf) >= need for k in self.imu_streams)
        if self.emg:
            emg_end = (-math.inf if self._emg_start is None
                       else self._emg_start + self._emg_raw.end / self.emg.rate_hz)
            ok = ok and emg_end >= need + (0 if self._stored else self.settings.margin_s)
        late = max(self._stream_ends(), default=-math.inf) >= need + self.settings.margin_s + 2
        if ok or late:
            self._calibrate()

    def _calibrate(self) -> None:
        stored_imu = (self._stored or {}).get("imu") or {}
        for name, seg in list(self.segments.items()):
            resume = None
            if self._running is not None:
                resume = (self._running.get("imu") or {}).get(name) or {}
            try:
                seg.calibrate_static(self.standing, stored=stored_imu.get(name)
                                     if self._stored else None, resume=resume)
            except (ValueError, KeyError) as err:
                self._problem(f"IMU {name} not used: {err}; stand still and run a standing "
                              "calibration phase to use it")
                del self.segments[name]
                self._unusable.add(name)
        for name in self.imu_streams:
            if name not in self.segments and name not in self._unusable:
                self._problem(f"IMU {name}: no calibration (no data in the standing period)")
        if self.emg and self._emg_start is not None:
            self._calibrate_emg()
        self.phase = "calibrating"
        self._out.calibration = self.calibration_state()["standing"]
        if all(s.functional is not None for s in self.segments.values()) and self.segments:
            self._start_running()

    def _calibrate_emg(self) -> None:
        stored = (self._stored or {}).get("emg")
        chans = self.emg.channels
        if stored:
            floor = dict(zip(stored["channels"], stored["floor_mv"], strict=True))
            self.floor_mv = np.array([floor.get(c, 0.0) for c in chans])
        else:
            raw = self._emg_raw.get(0, self._emg_raw.end)
            env, _ = emg_preprocess(EmgData(raw, chans, self.emg.rate_hz, self._emg_start,
                                            self.emg.signal))
            self.floor_mv = noise_floor_mv(env, self.emg.rate_hz, self._emg_start,
                                           self.standing)
        mvc = self._mvc
        if isinstance(mvc, EmgData):
            missing = [c for c in chans if c not in mvc.channels]
            if missing:
                self._problem("MVC trials lack " + ", ".join(missing) + ": relative ratios")
                self.normalization = "relative"
            else:
                order = [mvc.channels.index(c) for c in chans]
                mvc_env, _ = emg_preprocess(EmgData(mvc.samples_mv[:, order], chans,
                                                    mvc.rate_hz, signal=mvc.signal))
                self.reference_mv = np.asarray(emg_mvc_reference(
                    remove_floor(mvc_env, self.floor_mv), mvc.rate_hz).values_mv)
        elif mvc is not None:
            ref = dict(zip(mvc["channels"], mvc["reference_mv"], strict=True))
            if all(c in ref for c in chans):
                self.reference_mv = np.array([float(ref[c]) for c in chans])
            else:
                self._problem("stored MVC reference lacks channels: relative ratios")
                self.normalization = "relative"

    def _try_functional(self) -> None:
        end = self.standing[1] + self.settings.functional_s
        if not self.segments:
            return
        if min(s.end_s for s in self.segments.values()) < end:
            return
        for seg in self.segments.values():
            if seg.functional is None:
                seg.calibrate_functional(self.standing, end)
        self._start_running()

    def _start_running(self) -> None:
        self.phase = "running"
        for seg in self.segments.values():
            seg.process()
        for side in SIDES:
            name = self._detector_segment(side)
            if name is not None:
                self._restart_detector(side, self.segments[name].angle.start)
        if not self._fed:
            self._problem("no thigh or shank IMU: no strides")

    def _detector_segment(self, side: str) -> str | None:
        for name in (f"shank_{side}", f"thigh_{side}"):
            if name in self.segments:
                return name
        return None

    def _restart_detector(self, side: str, i0: int) -> None:
        name = self._detector_segment(side)
        if name is None or self.phase != "running":
            return
        seg = self.segments[name]
        t0 = float(seg.time(i0))
        if name.startswith("shank"):
            self._detectors[side] = GaitEventDetector(seg.rate_hz, side=side, start_s=t0)
        else:
            self._detectors[side] = ThighEventDetector(seg.rate_hz, start_s=t0)
        self._fed[side] = i0
        if self._ics[side]:  # a stride cannot span the gap
            self._ics[side] = []

    # --- strides ------------------------------------------------------------------------------
    def _period(self, side: str | None) -> float | None:
        ics = [t for s in (SIDES if side is None else (side,)) for t in self._ics[s][-9:]]
        d = np.diff(sorted(ics)) if side else []
        if side and len(d):
            return float(np.median(d))
        return None

    def _detect(self) -> None:
        for side, det in self._detectors.items():
            name = self._detector_segment(side)
            seg = self.segments[name]
            i0, i1 = self._fed[side], seg.final_end
            if i1 <= i0:
                continue
            if name.startswith("shank"):
                found = [(e.ic_s, e.toe_off_s) for e in det.push(seg.rate.get(i0, i1))]
                method = "shank_gyro"
            else:
                found = [(t, math.nan) for t in det.push(seg.angle.get(i0, i1),
                                                          seg.axial.get(i0, i1))]
                method = "thigh_flexion"
            self._fed[side] = i1
            for ic, toe in found:
                self._new_ic(side, ic, toe, method)

    def _new_ic(self, side: str, ic: float, toe: float, method: str) -> None:
        ics = self._ics[side]
        ics.append(ic)
        key = f"n_{side}"
        self.stats[key] = self.stats.get(key, -1) + 1
        if len(ics) < 2:
            return
        start = ics[-2]
        if not (start < toe < ic):
            toe = math.nan
        valid, reasons = gait_reject_implausible(np.array(ics[-20:]), causal=True)
        self._pending.append(_Stride(side, self.stats[key] - 1, start, ic, toe,
                                     bool(valid[-1]), reasons[-1], method))
        del ics[:-20]

    def _kin_segments(self, side: str) -> list[str]:
        return [n for n in ("pelvis", f"thigh_{side}") if n in self.segments]

    def _data_time(self) -> float:
        return min(self._stream_ends(), default=math.nan)

    def _emg_end_s(self) -> float:
        if self.emg is None or self._emg_start is None:
            return math.inf
        return self._emg_start + self._emg_raw.end / self.emg.rate_hz

    def _release(self) -> None:
        self._pending.sort(key=lambda st: (st.ic, st.side))
        while self._pending:
            st = self._pending[0]
            if not self._others_past(st):
                return
            if st.kin is None:
                st.kin = self._kinematics(st)
            kin = st.kin
            if st.t_ext is None:
                st.t_ext = self._extension_time(st, kin)
            period = st.ic_next - st.ic
            last = max(st.ic + 0.5 * period, st.t_ext if math.isfinite(st.t_ext) else st.ic_next)
            emg_end = last + self.settings.tail_s
            if self.emg is not None and self.floor_mv is not None \
                    and self._emg_end_s() < emg_end:
                return
            self._pending.pop(0)
            row = self._row(st, kin, emg_end)
            self._out.rows.append(row)
            self._out.row_latency_s.append(self._data_time() - st.ic_next)
            self.stats["rows"] += 1
            self._out.cue_events += [e.to_dict() for e in self.tracker.update(row)]

    def _others_past(self, st: _Stride) -> bool:
        for side, det in self._detectors.items():
            if side == st.side:
                continue
            ics = self._ics[side]
            if ics and ics[-1] >= st.ic:
                continue
            seg = self.segments[self._detector_segment(side)]
            last = ics[-1] if ics else det.start_s
            if float(seg.time(seg.final_end)) - max(last, st.ic) < self.settings.stale_side_s:
                return False
        return True

    def _kinematics(self, st: _Stride) -> tuple[Kinematics | None, list[str]]:
        period = st.ic_next - st.ic
        names = self._kin_segments(st.side)
        if f"thigh_{st.side}" not in names:
            return None, []
        grid = max((self.segments[n] for n in names), key=lambda s: s.rate_hz)
        i0 = grid.index(st.ic - 0.45 * period) - 2
        i1 = grid.index(st.ic_next) + 3
        t = np.asarray(grid.time(np.arange(i0, i1)), dtype=float)
        angles, flags = {}, []
        for n in names:
            seg = self.segments[n]
            j0, j1 = seg.index(t[0]) - 1, seg.index(t[-1]) + 2
            a = seg.angle.get(j0, j1)
            if seg is grid:
                a = grid.angle.get(i0, i1)
                ok = len(a) == len(t)
            else:
                ok = len(a) == j1 - j0
                if ok:
                    a = np.interp(t, np.asarray(seg.time(np.arange(j0, j1))), a)
            if not ok or seg.recovering(j0, j1):
                a = np.full(len(t), math.nan)
                flags.append(f"dropout:imu_{n}")
            angles[n] = np.asarray(a, dtype=float)
        pelvis = angles.get("pelvis")
        hip = angles[f"thigh_{st.side}"] - (pelvis if pelvis is not None else 0.0)
        kin = Kinematics(rate_hz=grid.rate_hz, start_s=float(t[0]),
                         hip_flexion_deg={st.side: hip},
                         pelvic_tilt_deg=None if pelvis is None else -pelvis,
                         sagittal_deg=angles, sagittal_rate_dps={})
        return kin, flags

    def _events(self, st: _Stride) -> GaitEvents:
        return GaitEvents(side=st.side, ic_s=np.array([st.ic, st.ic_next]),
                          toe_off_s=np.array([st.toe_off]), valid=np.array([st.valid]),
                          rejected_reason=(st.reason,), method=st.method)

    def _extension_time(self, st: _Stride, kin: tuple[Kinematics | None, list[str]]
                        ) -> float:
        if kin[0] is None:
            return math.nan
        row = stride_rows(st.side, self._events(st), kin[0], None)[0]
        pct = row["peak_hip_extension_pct"]
        return st.ic + pct / 100.0 * (st.ic_next - st.ic) if math.isfinite(pct) else math.nan

    def _row(self, st: _Stride, kin: tuple[Kinematics | None, list[str]], emg_end: float
             ) -> dict:
        kinematics, flags = kin
        activity = None
        if self.emg is not None and self.floor_mv is not None:
            activity, emg_flags = self._activity(st, emg_end)
            flags += emg_flags
        row = stride_rows(st.side, self._events(st), kinematics, activity)[0]
        row["stride_index"] = st.index
        if activity is None and "dropout:emg" in flags:
            row["normalization"] = self.normalization
            q = [f for f in row["quality"].split(";") if f and f != "missing:emg"]
        else:
            q = [f for f in row["quality"].split(";") if f]
        row["quality"] = ";".join(q + [f for f in flags if f not in q])
        return row

    def _activity(self, st: _Stride, emg_end: float) -> tuple[MuscleActivity | None, list[str]]:
        rate, chans = self.emg.rate_hz, self.emg.channels
        period = st.ic_next - st.ic
        t0 = st.ic - 0.5 * period
        dynamic = (self.normalization == "relative" and not self._reference_frozen
                   and len(self._step_peaks) < 30)
        prev = self._valid_starts[-1] if (dynamic and st.valid and self._valid_starts) else None
        if prev is not None:
            t0 = min(t0, prev)
        i0 = max(self._emg_raw.start, round((t0 - self.settings.margin_s - self._emg_start)
                                            * rate))
        i1 = round((emg_end - self._emg_start) * rate)
        if any(a < i1 and i0 < b for a, b in self._emg_gaps):
            return None, ["dropout:emg"]
        use = [i for i, c in enumerate(chans) if dynamic or c.endswith(f"_{st.side}")]
        raw = self._emg_raw.get(i0, i1)[:, use]
        names = tuple(chans[i] for i in use)
        start = self._emg_start + i0 / rate
        quality = emg_quality(raw, rate, self.settings.full_scale_mv)  # once for both uses
        env, tkeo = emg_preprocess(EmgData(raw, names, rate, start, self.emg.signal),
                                   quality=quality)
        env = remove_floor(env, self.floor_mv[use])
        if dynamic:
            self._update_reference(st, env, i0, prev)
        ref = self.reference_mv[use] if self.reference_mv is not None else None
        if ref is None or not np.all(np.isfinite(ref) & (ref > 0)):
            return None, ["missing:emg_reference"]
        flags, notes = channel_flags(raw, names, rate, full_scale_mv=self.settings.full_scale_mv,
                                     signal=self.emg.signal, quality=quality)
        activity = MuscleActivity(envelope=env / ref, tkeo_envelope=tkeo, channels=names,
                                  rate_hz=rate, start_s=start, normalization=self.normalization,
                                  reference_mv=ref, flags=flags, notes=notes)
        return activity, []

    def _update_reference(self, st: _Stride, env: np.ndarray, i0: int, prev: float | None
                          ) -> None:
        """Dynamic (provisional) reference: per-step peaks between consecutive valid ICs."""
        rate = self.emg.rate_hz
        if st.valid:
            if prev is not None:
                a = round((prev - self._emg_start) * rate) - i0
                b = round((st.ic - self._emg_start) * rate) - i0
                if 0 <= a < b <= len(env):
                    self._step_peaks.append(env[a:b].max(axis=0))
            self._valid_starts.append(st.ic)
            del self._valid_starts[:-2]
        if self._step_peaks:
            self.reference_mv = np.mean(self._step_peaks, axis=0)
        elif self.reference_mv is None:
            period = st.ic_next - st.ic
            a = max(0, round((st.ic - 0.5 * period - self._emg_start) * rate) - i0)
            b = round((st.ic + 0.5 * period - self._emg_start) * rate) - i0
            if b > a:
                self.reference_mv = env[a:b].max(axis=0)

    # --- misc ---------------------------------------------------------------------------------
    def _problem(self, message: str) -> None:
        self.problems.append(message)
        self._new_problems.append(message)

    def _snapshot(self) -> dict[str, Any]:
        angle = {n: s.latest_static_angle_deg() for n, s in self.segments.items()}
        pelvis = angle.get("pelvis", 0.0)
        hip = {side: angle[f"thigh_{side}"] - pelvis for side in SIDES
               if f"thigh_{side}" in angle}
        processed: dict[str, Any] = {"time_s": np.zeros(0), "envelope_mv": {}}
        if self._snap_t:
            t = np.concatenate(self._snap_t)
            env = np.concatenate(self._snap_env)
            processed = {"time_s": t, "envelope_mv": {c: env[:, i] for i, c in
                                                      enumerate(self.emg.channels)}}
            self._snap_t, self._snap_env = [], []
        return {"time_s": self._data_time(), "phase": self.phase, "hip_flexion_deg": hip,
                "pelvic_tilt_deg": -angle["pelvis"] if "pelvis" in angle else math.nan,
                "processed": processed, "angles_deg": self._angle_series(),
                "active_cues": self.tracker.active_cues()}

    def _angle_series(self) -> dict[str, dict[str, np.ndarray]]:
        """Hip flexion per side and pelvic tilt (deg) since the last poll, from the final
        (functionally calibrated) chain, on a grid of ``k / snapshot_rate_hz`` s (≤ 100 Hz).
        Each channel goes as far as its segments have final angles; NaN in gaps."""
        rate = min(100.0, self.settings.snapshot_rate_hz)
        wanted = {"pelvic_tilt_deg": ("pelvis",)}
        for side in SIDES:
            if f"thigh_{side}" in self.segments:
                wanted[f"hip_flexion_{side}_deg"] = tuple(
                    n for n in ("pelvis", f"thigh_{side}") if n in self.segments)
        out: dict[str, dict[str, np.ndarray]] = {}
        for channel, names in wanted.items():
            segs = [self.segments.get(n) for n in names]
            if not segs or any(s is None or s.angle.end <= s.angle.start for s in segs):
                continue
            first = max(float(s.time(s.angle.start)) for s in segs)
            last = min(float(s.time(s.angle.end - 1)) for s in segs)
            k0 = max(self._angle_next.get(channel, 0), math.ceil(first * rate - 1e-9))
            k1 = math.floor(last * rate + 1e-9) + 1
            if k1 <= k0:
                continue
            t = np.arange(k0, k1) / rate
            values = {}
            for s in segs:
                ts = np.asarray(s.time(np.arange(s.angle.start, s.angle.end)), dtype=float)
                values[s.segment] = np.interp(t, ts, s.angle.get(s.angle.start, s.angle.end))
            pelvis = values.get("pelvis")
            if channel == "pelvic_tilt_deg":
                v = -pelvis
            else:
                v = values[f"thigh_{channel[-5]}"] - (pelvis if pelvis is not None else 0.0)
            out[channel] = {"time_s": t, "value": v}
            self._angle_next[channel] = k1
        return out
