"""A whole simulated session: settings, the block-by-block generator, and ground truth.

Timeline: a quiet standing period (``standing_s``, all segment angles 0, EMG at the noise
floor) for static calibration; running, speeding up from standing over ``start_ramp_s``; then,
when enabled, a 2 s stop, MVC trials and the prone hip extension test (:mod:`.protocols`).
``duration_s = inf`` runs forever (:data:`ENDLESS`): no scripted protocols, no ground truth,
and memory stays bounded. At any time the runner follows instructions (stand still, MVC,
prone test, back to running; :mod:`.instructions`) from the first sample not yet generated.

Determinism: samples are generated in fixed blocks of 0.25 s. Block *b*'s noise comes from
``default_rng([seed, stream kind, b])``, filter and bias states carry over from block *b − 1*,
and strides are planned ahead with per-step random draws (:mod:`.gait`). Reading the streams in
any chunk sizes therefore gives bit-identical samples to :func:`simulate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from hipstride.streams import (
    EMG_CHANNELS_DEFAULT,
    EMG_MUSCLES,
    EMG_RATE_HZ,
    EMG_STREAM,
    IMU_RATE_HZ,
    IMU_SEGMENTS,
    StreamDescription,
    emg_description,
    imu_description,
)

from . import protocols
from .emg import MVC_MV, BandNoise, artefact_mv, running_activation
from .gait import (
    GaitWindow,
    Modifiers,
    StridePlanner,
    hermite_time_at_phase,
    smoothstep,
)
from .instructions import Instructions
from .kinematics import SEGMENTS, Pose, imu_truth, segment_angles_deg
from .profiles import PROFILE_NAMES, profile_named
from .truth import GroundTruth

log = logging.getLogger("hipstride.edge.sim")

BLOCK_S = 0.25
#: ``duration_s`` of a session that never ends.
ENDLESS = math.inf
#: Sample count standing in for "no end" (about 73 million years at 2 kHz).
ENDLESS_SAMPLES = 2**62
DROPOUT_MODES = ("flat", "noisy", "hum")
MOUNTING_PRESETS = ("identity", "straps")
ACC_RANGE_MS2 = 16 * 9.80665
GYR_RANGE_DPS = 2000.0


def _m(*cols: tuple[float, float, float]) -> np.ndarray:
    """Mounting matrix from the sensor's x, y, z axes written in the segment frame."""
    return np.column_stack(cols).astype(float)


#: Typical strap placements (sensor -> segment): the pelvis sensor flat on the sacrum (z out of
#: the skin = posterior), thigh sensors on the lateral thigh upside down (z lateral), shank
#: sensors on the front of the tibia (z anterior).
STRAP_MOUNTING = {
    "pelvis": _m((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
    "thigh_l": _m((-1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "thigh_r": _m((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    "shank_l": _m((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "shank_r": _m((0, 0, -1), (0, 1, 0), (1, 0, 0)),
}


class SimulatorSettingError(ValueError):
    """A bad :class:`SessionConfig` value; ``field`` names the setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Dropout:
    """Electrode ``channel`` off between two session times: flat line, noise, or mains hum."""

    channel: str
    start_s: float
    end_s: float
    mode: str = "flat"


@dataclass(frozen=True)
class Saturation:
    """Gain error on ``channel``: the signal times ``gain``, clipped at the full scale."""

    channel: str
    start_s: float
    end_s: float
    gain: float = 50.0


@dataclass(frozen=True)
class SessionConfig:
    """Everything that shapes a simulated session. Invalid values raise ValueError naming them.

    ``speed_schedule`` is ((time_s, speed_kmh), ...) interpolated linearly (held after the
    last point). ``fatigue`` (0…1) is the level reached ``fatigue_ramp_s`` after
    ``fatigue_start_s``: less extension, more anterior tilt, weaker glutes, stronger
    hamstrings, more variability. ``glute_drive_drop`` = (start_s, end_s, fraction) lowers
    glute activation linearly by ``fraction`` between the two times, and keeps it there.
    ``misalignment_deg`` is either the size of a random strap error for every segment, or a
    mapping segment -> rotation vector in degrees.
    """

    duration_s: float = 60.0
    profile: str = "healthy"
    seed: int = 0
    standing_s: float = 5.0
    start_ramp_s: float = 2.0
    speed_schedule: tuple[tuple[float, float], ...] = ((0.0, 10.0),)
    warmup_s: float = 60.0
    fatigue: float = 0.0
    fatigue_start_s: float = 120.0
    fatigue_ramp_s: float = 600.0
    glute_drive_drop: tuple[float, float, float] | None = None
    emg_channels: tuple[str, ...] = EMG_CHANNELS_DEFAULT
    segments: tuple[str, ...] = IMU_SEGMENTS
    mounting: str = "straps"
    misalignment_deg: float | Mapping[str, Sequence[float]] = 0.0
    imu_noise: float = 1.0
    gyro_bias_dps: float = 0.3
    emg_floor_mv: float = 0.004
    artefact_mv: float = 0.15
    mains_hz: float = 0.0
    mains_mv: float = 0.02
    full_scale_mv: float = 10.0
    dropouts: tuple[Dropout, ...] = ()
    saturations: tuple[Saturation, ...] = ()
    mvc: bool = False
    prone: bool = False
    prone_reps: int = 4
    hold_max_s: float = 120.0

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> SimulatorSettingError:
            return SimulatorSettingError(name, f"expected {expected}, "
                                         f"got {getattr(self, name)!r}")

        if not self.duration_s > 0:
            raise bad("duration_s", "a positive duration (inf = endless)")
        if self.endless and (self.mvc or self.prone):
            raise bad("duration_s", "a finite duration for the scripted mvc/prone phases (an "
                      "endless session takes calibrate commands instead)")
        if not self.hold_max_s > 0:
            raise bad("hold_max_s", "a duration > 0")
        if self.profile not in PROFILE_NAMES:
            raise bad("profile", "one of " + ", ".join(PROFILE_NAMES))
        if not self.standing_s >= 0:
            raise bad("standing_s", "a duration >= 0")
        if not self.speed_schedule or any(not (3.0 <= v <= 30.0)
                                          for _, v in self.speed_schedule):
            raise bad("speed_schedule", "(time_s, speed_kmh) points with 3 <= speed <= 30")
        if list(self.speed_schedule) != sorted(self.speed_schedule):
            raise bad("speed_schedule", "points in time order")
        if not 0.0 <= self.fatigue <= 1.0:
            raise bad("fatigue", "a level between 0 and 1")
        if self.glute_drive_drop is not None:
            t0, t1, frac = self.glute_drive_drop
            if not (0 <= t0 < t1 and 0 <= frac < 1):
                raise bad("glute_drive_drop", "(start_s, end_s, fraction) with start < end, "
                          "0 <= fraction < 1")
        if not self.emg_channels or len(set(self.emg_channels)) != len(self.emg_channels):
            raise bad("emg_channels", "distinct channel names")
        for ch in self.emg_channels:
            muscle, _, side = ch.rpartition("_")
            if muscle not in EMG_MUSCLES or side not in ("l", "r"):
                raise bad("emg_channels", "names like glute_max_l from " + ", ".join(EMG_MUSCLES))
        if not set(self.segments) <= set(IMU_SEGMENTS) or len(set(self.segments)) != len(
                self.segments):
            raise bad("segments", "distinct names from " + ", ".join(IMU_SEGMENTS))
        if self.mounting not in MOUNTING_PRESETS:
            raise bad("mounting", "one of " + ", ".join(MOUNTING_PRESETS))
        if isinstance(self.misalignment_deg, Mapping):
            for seg, rv in self.misalignment_deg.items():
                if seg not in IMU_SEGMENTS or len(rv) != 3:
                    raise bad("misalignment_deg", "segment -> [x, y, z] rotation vector (deg)")
        elif not 0 <= self.misalignment_deg <= 45:
            raise bad("misalignment_deg", "an angle between 0 and 45 degrees")
        for name in ("imu_noise", "gyro_bias_dps", "emg_floor_mv", "artefact_mv", "mains_mv"):
            if not getattr(self, name) >= 0:
                raise bad(name, "a value >= 0")
        if self.mains_hz not in (0, 0.0, 50, 60, 50.0, 60.0):
            raise bad("mains_hz", "0 (off), 50 or 60")
        for d in self.dropouts:
            if d.channel not in self.emg_channels or d.mode not in DROPOUT_MODES or not (
                    d.start_s < d.end_s):
                raise bad("dropouts", "windows on configured channels with mode "
                          + "/".join(DROPOUT_MODES) + " and start < end")
        for s in self.saturations:
            if s.channel not in self.emg_channels or not s.start_s < s.end_s or s.gain <= 0:
                raise bad("saturations", "windows on configured channels with a gain > 0")
        if self.prone_reps < 1:
            raise bad("prone_reps", "at least 1")
        if self.extras_s and self.running_end_s < self.standing_s:
            need = self.extras_s + self.standing_s
            raise bad("duration_s", f"at least {need:.0f} s for standing, MVC and prone phases")

    @property
    def endless(self) -> bool:
        return math.isinf(self.duration_s)

    @property
    def extras_s(self) -> float:
        extra = 0.0
        if self.mvc:
            extra += protocols.mvc_duration_s(self.emg_channels)
        if self.prone:
            extra += protocols.prone_duration_s(self.prone_reps)
        return extra + (2.0 if extra else 0.0)

    @property
    def running_end_s(self) -> float:
        return self.duration_s - self.extras_s


@dataclass
class SimulatedSession:
    """A whole session at once: samples per stream (float32, (n, channels)) and its truth."""

    config: SessionConfig
    descriptions: tuple[StreamDescription, ...]
    data: dict[str, np.ndarray]
    truth: GroundTruth

    def description(self, stream: str) -> StreamDescription:
        return next(d for d in self.descriptions if d.stream == stream)


def simulate(duration_s: float, *, profile: str = "healthy", seed: int = 0,
             **settings: Any) -> SimulatedSession:
    """Generate a whole session (see :class:`SessionConfig` for ``settings``)."""
    config = SessionConfig(duration_s=duration_s, profile=profile, seed=seed, **settings)
    gen = SessionGenerator(config)
    data = {s: gen.read(s, gen.total_samples[s]) for s in gen.streams}
    return SimulatedSession(config, gen.descriptions, data, gen.truth())


@dataclass
class _Curves:
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)

    enabled: bool = True

    def add(self, name: str, values: np.ndarray) -> None:
        if self.enabled:
            self.parts.setdefault(name, []).append(values)

    def arrays(self, n: int) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v)[:n] for k, v in self.parts.items()}


class SessionGenerator:
    """Incremental generator: :meth:`read` hands out the next samples of any stream."""

    def __init__(self, config: SessionConfig, *, record_curves: bool = True) -> None:
        self.config = c = config
        self.record_curves = record_curves and not c.endless
        self.emg_rate_hz, self.imu_rate_hz = EMG_RATE_HZ, IMU_RATE_HZ
        self.emg_block = round(BLOCK_S * self.emg_rate_hz)
        self.imu_block = round(BLOCK_S * self.imu_rate_hz)
        self.run_start_s = c.standing_s
        self.run_end_s = c.running_end_s
        self.planner = StridePlanner(c.seed, c.profile, self.run_start_s - 2.0,
                                     self._speed_kmh_at, self._modifiers_at)
        known = {seg: (np.eye(3) if c.mounting == "identity" else STRAP_MOUNTING[seg])
                 for seg in SEGMENTS}
        self.mounting_known = known
        self.misalignment_deg = self._misalignments()
        self.mounting_actual = {
            seg: Rotation.from_rotvec(self.misalignment_deg[seg], degrees=True).as_matrix()
            @ known[seg] for seg in SEGMENTS}
        imu = tuple(imu_description(seg, mounting=tuple(map(tuple, known[seg].tolist())),
                                    sensor="simulator") for seg in c.segments)
        emg = emg_description(c.emg_channels, sensor="simulator", full_scale_mv=c.full_scale_mv)
        self.descriptions: tuple[StreamDescription, ...] = (emg, *imu)
        self.streams = tuple(d.stream for d in self.descriptions)
        self.total_samples = {d.stream: (ENDLESS_SAMPLES if c.endless
                                         else round(c.duration_s * d.rate_hz))
                              for d in self.descriptions}
        self._rate = {d.stream: d.rate_hz for d in self.descriptions}
        self._buffers: dict[str, list[np.ndarray]] = {s: [] for s in self.streams}
        self._buffered = dict.fromkeys(self.streams, 0)
        self._delivered = dict.fromkeys(self.streams, 0)
        self._block = 0
        self._n_blocks = (ENDLESS_SAMPLES if c.endless
                          else int(np.ceil(c.duration_s / BLOCK_S - 1e-9)))
        rng = np.random.default_rng([c.seed, 5])
        self._gyro_bias = {seg: c.gyro_bias_dps * rng.standard_normal(3) for seg in SEGMENTS}
        self._acc_bias = {seg: 0.05 * c.imu_noise * rng.standard_normal(3) for seg in SEGMENTS}
        self._mvc_mv = {ch: MVC_MV[ch.rsplit("_", 1)[0]] * float(np.exp(0.15 * z))
                        for ch, z in zip(c.emg_channels, rng.standard_normal(len(c.emg_channels)),
                                         strict=True)}
        self._hum_phase = rng.uniform(0, 2 * np.pi, len(c.emg_channels))
        self._noise = BandNoise(self.emg_rate_hz, len(c.emg_channels))
        self._curves = _Curves(enabled=self.record_curves)
        self.instructions = Instructions(start_ramp_s=c.start_ramp_s, hold_max_s=c.hold_max_s)
        self.mvc_start_s = self.run_end_s + 2.0
        self.mvc_trials = (protocols.mvc_trials(c.emg_channels, self.mvc_start_s)
                           if c.mvc else [])
        self.prone_start_s = self.mvc_start_s + (
            protocols.mvc_duration_s(c.emg_channels) if c.mvc else 0.0)
        self._prone_reps: list[dict] | None = None

    # --- public -----------------------------------------------------------------------------
    @property
    def generated_until_s(self) -> float:
        return self._block * BLOCK_S

    def remaining(self, stream: str) -> int:
        return self.total_samples[stream] - self._delivered[stream]

    def read(self, stream: str, n: int) -> np.ndarray:
        """The next ``n`` samples of ``stream`` (fewer at the end of the session)."""
        n = max(0, min(n, self.remaining(stream)))
        while self._buffered[stream] < n:
            self._generate_block()
        parts, out, need = self._buffers[stream], [], n
        while need:
            head = parts[0]
            if len(head) <= need:
                out.append(parts.pop(0))
                need -= len(head)
            else:
                out.append(head[:need])
                parts[0] = head[need:]
                need = 0
        self._buffered[stream] -= n
        self._delivered[stream] += n
        width = next(d.n_channels for d in self.descriptions if d.stream == stream)
        return np.concatenate(out) if out else np.zeros((0, width), np.float32)

    def switch_profile(self, profile: str) -> float:
        """Switch to ``profile`` from the first stride not yet generated; return its IC (s)."""
        first = self.planner.switch_profile(profile, self.generated_until_s)
        self.planner.plan_until(self.generated_until_s)
        planner = self.planner
        return (planner.step(first).ic_s if first - planner.first_index < len(planner.steps)
                else float("nan"))

    # --- instructions (calibration commands), from the first sample not yet generated ------
    def instruct(self, phase: str, *, channels: Sequence[str] = (), sides: Sequence[str] = ()
                 ) -> float:
        """Start an instructed ``phase`` (standing | mvc | prone) or ``running`` (back to
        running); return the session time it takes effect.

        ``mvc``: ``channels`` one after the other (default: every EMG channel); ``prone``:
        ``prone_reps`` lifts of each of ``sides`` (default: left, then right). ValueError
        names a bad phase, channel or side.
        """
        t = self.generated_until_s
        ins = self.instructions
        if phase == "running":
            ins.resume(t)
        elif phase == "standing":
            ins.stand(t)
        elif phase == "mvc":
            chosen = tuple(channels) or self.config.emg_channels
            unknown = [ch for ch in chosen if ch not in self.config.emg_channels]
            if unknown:
                raise ValueError(f"no EMG channel {unknown[0]!r}; this runner has "
                                 + ", ".join(self.config.emg_channels))
            ins.mvc(t, chosen)
        elif phase == "prone":
            chosen = tuple(sides) or ("l", "r")
            if not set(chosen) <= {"l", "r"}:
                raise ValueError(f"prone side {chosen!r}: expected 'l' or 'r'")
            ins.prone(t, chosen, self.config.prone_reps, profile_named(self.planner.profile))
        else:
            raise ValueError(f"phase {phase!r}: expected running, standing, mvc or prone")
        return t

    def phases(self) -> list[dict]:
        c = self.config
        out = [{"name": "standing", "start_s": 0.0, "end_s": self.run_start_s},
               {"name": "running", "start_s": self.run_start_s, "end_s": self.run_end_s}]
        if c.mvc:
            out.append({"name": "mvc", "start_s": self.mvc_start_s,
                        "end_s": self.mvc_start_s + protocols.mvc_duration_s(c.emg_channels)})
        if c.prone:
            out.append({"name": "prone", "start_s": self.prone_start_s,
                        "end_s": self.prone_start_s + protocols.prone_duration_s(c.prone_reps)})
        return out + [dict(p) for p in self.instructions.phases]

    # --- drift --------------------------------------------------------------------------------
    def _speed_kmh_at(self, t_s: float) -> float:
        times, speeds = zip(*self.config.speed_schedule, strict=True)
        return float(np.interp(t_s, times, speeds))

    def _modifiers_at(self, t_s: float) -> Modifiers:
        c = self.config
        run = t_s - self.run_start_s
        warm = max(0.0, 1.0 - run / c.warmup_s) if c.warmup_s > 0 else 0.0
        tired = c.fatigue * float(np.clip((t_s - c.fatigue_start_s) / c.fatigue_ramp_s, 0, 1))
        return Modifiers(
            extension_delta_deg=-1.5 * warm - 3.0 * tired,
            flexion_delta_deg=-3.0 * warm,
            tilt_delta_deg=2.5 * tired,
            glute_scale=(1.0 - 0.1 * warm) * (1.0 - 0.25 * tired),
            hamstring_scale=1.0 + 0.15 * tired,
            cadence_delta_spm=-3.0 * warm - 3.0 * tired,
            variability_scale=1.0 + 0.6 * tired,
        )

    def running_weight(self, t_s: np.ndarray) -> np.ndarray:
        """1 while running, 0 standing or in the protocols; smooth start and stop."""
        w = smoothstep((np.asarray(t_s) - self.run_start_s) / self.config.start_ramp_s)
        if self.config.extras_s:
            w = w * (1.0 - smoothstep((np.asarray(t_s) - self.run_end_s) / 2.0))
        if self.instructions.holds:
            w = w * self.instructions.running_factor(np.asarray(t_s, dtype=float))
        return w

    def glute_drive(self, t_s: np.ndarray) -> np.ndarray:
        drop = self.config.glute_drive_drop
        if drop is None:
            return np.ones(len(t_s))
        t0, t1, frac = drop
        return 1.0 - frac * np.clip((t_s - t0) / (t1 - t0), 0.0, 1.0)

    @property
    def prone_reps(self) -> list[dict]:
        if not self.config.prone:
            return []
        if self._prone_reps is None:  # the profile in force when the run ends
            prof = self.planner.profile_changes[-1][1]
            self._prone_reps = protocols.prone_reps(self.prone_start_s, self.config.prone_reps,
                                                    profile_named(prof))
        return self._prone_reps

    def pose(self, t_s: np.ndarray) -> Pose:
        scripted = self.config.prone and t_s[-1] >= self.prone_start_s
        ins = self.instructions
        if not ins.lying:
            if not scripted:
                return Pose(self.running_weight(t_s))
            return Pose(self.running_weight(t_s),
                        extra_deg=protocols.prone_extra_deg(self.prone_reps, t_s, SEGMENTS),
                        base=protocols.prone_base(self.prone_start_s, t_s))
        reps = (self.prone_reps if scripted else []) + ins.prone_reps
        lying = ins.lying_fraction(t_s)
        if scripted:
            lying = lying + smoothstep((t_s - self.prone_start_s) / protocols.PRONE_LIE_DOWN_S)
        return Pose(self.running_weight(t_s),
                    extra_deg=protocols.prone_extra_deg(reps, t_s, SEGMENTS),
                    base=protocols.lying_rotation(lying))

    def activation(self, win: GaitWindow, channel: str, t_s: np.ndarray) -> np.ndarray:
        """Activation (fraction of MVC) of ``channel`` at ``t_s``: the noise-free truth."""
        a = running_activation(win, channel, t_s) * self.running_weight(t_s)
        if channel.startswith("glute_max"):
            a = a * self.glute_drive(t_s)
        if self.mvc_trials:
            a = a + protocols.mvc_activation(self.mvc_trials, channel, t_s)
        if self.config.prone and t_s[-1] >= self.prone_start_s:
            a = a + protocols.prone_activation(self.prone_reps, channel, t_s)
        ins = self.instructions
        if ins.mvc_trials:
            a = a + protocols.mvc_activation(ins.mvc_trials, channel, t_s)
        if ins.prone_reps:
            a = a + protocols.prone_activation(ins.prone_reps, channel, t_s)
        return a

    # --- generation ------------------------------------------------------------------------
    def _misalignments(self) -> dict[str, np.ndarray]:
        m = self.config.misalignment_deg
        if isinstance(m, Mapping):
            return {seg: np.asarray(m.get(seg, (0.0, 0.0, 0.0)), float) for seg in SEGMENTS}
        rng = np.random.default_rng([self.config.seed, 17])
        out = {}
        for seg in SEGMENTS:
            axis = rng.standard_normal(3)
            axis /= np.linalg.norm(axis)
            out[seg] = axis * m * rng.uniform(0.5, 1.0)
        return out

    def _generate_block(self) -> None:
        if self._block >= self._n_blocks:
            raise RuntimeError("simulated session is over")
        b = self._block
        t0 = b * BLOCK_S
        if self.instructions.expire(t0):
            log.info("simulated runner: no instruction for %.0f s, back to running",
                     self.config.hold_max_s)
        if self.config.endless:
            self.planner.forget_before(t0)
            self.instructions.forget_before(t0)
        win = self.planner.window(t0, t0 + BLOCK_S)
        t_imu = (b * self.imu_block + np.arange(self.imu_block)) / self.imu_rate_hz
        t_emg = (b * self.emg_block + np.arange(self.emg_block)) / self.emg_rate_hz
        self._imu_block(b, win, t_imu)
        self._emg_block(b, win, t_emg, t_imu)
        self._block += 1

    def _imu_block(self, b: int, win: GaitWindow, t: np.ndarray) -> None:
        c = self.config
        acc, gyr, ang = imu_truth(win, t, self.pose, self.mounting_actual)
        rng = np.random.default_rng([c.seed, 11, b])
        n = len(t)
        walk_dps = 0.005 * c.imu_noise * np.sqrt(1.0 / self.imu_rate_hz)
        for seg in SEGMENTS:
            noise = rng.standard_normal((n, 9))
            bias = self._gyro_bias[seg] + np.cumsum(walk_dps * noise[:, 6:], axis=0)
            self._gyro_bias[seg] = bias[-1]
            if seg not in c.segments:
                continue
            a = acc[seg] + self._acc_bias[seg] + 0.03 * c.imu_noise * noise[:, :3]
            g = gyr[seg] + bias + 0.1 * c.imu_noise * noise[:, 3:6]
            block = np.hstack([np.clip(a, -ACC_RANGE_MS2, ACC_RANGE_MS2),
                               np.clip(g, -GYR_RANGE_DPS, GYR_RANGE_DPS)]).astype(np.float32)
            self._push(f"imu_{seg}", block)
        self._curves.add("t_s", t)
        for side in "lr":
            self._curves.add(f"hip_flexion_{side}_deg",
                             ang[f"thigh_{side}"][:, 0] - ang["pelvis"][:, 0])
        self._curves.add("pelvic_tilt_deg", -ang["pelvis"][:, 0])
        for seg in SEGMENTS:
            self._curves.add(f"sagittal_{seg}_deg", ang[seg][:, 0])

    def _emg_block(self, b: int, win: GaitWindow, t: np.ndarray, t_imu: np.ndarray) -> None:
        c = self.config
        rng = np.random.default_rng([c.seed, 13, b])
        n, chans = len(t), c.emg_channels
        white = rng.standard_normal((n, len(chans)))
        band = self._noise.filter(white)
        out = np.empty((n, len(chans)))
        for i, ch in enumerate(chans):
            act = self.activation(win, ch, t)
            self._curves.add(f"activation_{ch}", act[:: self.emg_block // self.imu_block])
            amp = np.sqrt((act * self._mvc_mv[ch]) ** 2 + c.emg_floor_mv**2)
            x = amp * band[:, i] + artefact_mv(win, ch, t, c.artefact_mv) * self.running_weight(t)
            if c.mains_hz:
                x += c.mains_mv * np.sin(2 * np.pi * c.mains_hz * t + self._hum_phase[i])
            for d in c.dropouts:
                sel = (t >= d.start_s) & (t < d.end_s)
                if d.channel != ch or not sel.any():
                    continue
                if d.mode == "flat":
                    x[sel] = 0.0
                else:
                    hum_hz = c.mains_hz or 50.0
                    hum = 0.5 * np.sin(2 * np.pi * hum_hz * t[sel] + self._hum_phase[i])
                    x[sel] = hum + (0.05 * white[sel, i] if d.mode == "noisy" else 0.0)
            for s in c.saturations:
                sel = (t >= s.start_s) & (t < s.end_s)
                if s.channel == ch:
                    x[sel] *= s.gain
            out[:, i] = np.clip(x, -c.full_scale_mv, c.full_scale_mv)
        self._push(EMG_STREAM, out.astype(np.float32))

    def _push(self, stream: str, block: np.ndarray) -> None:
        self._buffers[stream].append(block)
        self._buffered[stream] += len(block)

    # --- truth -------------------------------------------------------------------------------
    def truth(self) -> GroundTruth:
        """Ground truth of everything generated so far (the whole session once it is read)."""
        c = self.config
        end_s = min(self.generated_until_s, c.duration_s)
        n_imu = round(end_s * self.imu_rate_hz)
        curves = self._curves.arrays(n_imu) if self._curves.parts else {}
        first_steps = {j: name for j, name in self.planner.profile_changes}
        planner = self.planner
        changes = [{"from_step": j, "from_s": planner.step(j).ic_s
                    if 0 <= j - planner.first_index < len(planner.steps) else None,
                    "profile": name}
                   for j, name in first_steps.items()]
        return GroundTruth(
            metadata={
                "seed": c.seed, "profile": c.profile, "duration_s": c.duration_s,
                "generated_s": end_s, "emg_rate_hz": self.emg_rate_hz,
                "imu_rate_hz": self.imu_rate_hz, "emg_channels": list(c.emg_channels),
                "segments": list(c.segments), "mvc_mv": self._mvc_mv,
                "conventions": "segment x anterior, y superior, z right; sagittal angle = ZXY "
                               "Cardan z angle; hip flexion = thigh - pelvis sagittal angle; "
                               "pelvic tilt + = anterior = -rotation about z; all relative to "
                               "standing; acc = specific force (+g up at rest)",
                "config": _config_summary(c),
            },
            phases=self.phases(),
            strides=self._stride_rows(end_s),
            curves=curves,
            profile_changes=changes,
            mounting={s: self.mounting_known[s].tolist() for s in SEGMENTS},
            misalignment_deg={s: self.misalignment_deg[s].tolist() for s in SEGMENTS},
            dropouts=[vars(d).copy() for d in c.dropouts],
            saturations=[vars(s).copy() for s in c.saturations],
            mvc_trials=[dict(t) for t in self.mvc_trials + self.instructions.mvc_trials
                        if t["effort_end_s"] <= end_s],
            prone_reps=[r for r in self.prone_reps + self.instructions.prone_reps
                        if r["lower_end_s"] <= end_s],
        )

    def _stride_rows(self, end_s: float) -> list[dict]:
        rows = []
        steps = self.planner.steps
        for j, step in enumerate(steps):
            if j + 2 >= len(steps) or step.ic_s < self.run_start_s:
                continue
            nxt = steps[j + 2]  # next IC of the same side
            if nxt.ic_s > min(end_s, self.run_end_s):
                continue
            rows.append(self._stride_row(step, nxt))
        rows.sort(key=lambda r: r["stride_start_s"])
        return rows

    def _stride_row(self, step, nxt) -> dict:
        side, ic, ic_next = step.side, step.ic_s, nxt.ic_s
        stride_s = ic_next - ic
        win = self.planner.window(ic - stride_s, ic_next)
        lo = ic - 0.5 * stride_s
        t = lo + np.arange(int(np.ceil((ic_next - lo) * 1000.0)) + 1) / 1000.0
        t = t[t <= ic_next]
        angles = segment_angles_deg(win, t, self.pose(t))
        flex = angles[f"thigh_{side}"][:, 0] - angles["pelvis"][:, 0]
        tilt = -angles["pelvis"][:, 0]
        inside = (t >= ic) & (t < ic_next)
        i_ext = np.flatnonzero(inside)[np.argmin(flex[inside])]
        before = np.flatnonzero(t <= t[i_ext])
        i_flex_prev = before[np.argmax(flex[before])]
        ext_deg = -flex[i_ext]
        peak_flex = float(flex[inside].max())
        t_a, t_b = t[i_flex_prev], t[i_ext]
        ta = np.linspace(t_a, t_b, max(2, round((t_b - t_a) * self.emg_rate_hz) + 1))
        glute = np.trapezoid(self.activation(win, f"glute_max_{side}", ta), ta)
        ham = np.trapezoid(self.activation(win, f"biceps_femoris_{side}", ta), ta)
        side_ic = win.side_ic_s[side]
        k = int(np.searchsorted(side_ic, ic))
        toe_off = hermite_time_at_phase(side_ic, k, step.stance_fraction)
        weight = self.running_weight(np.array([lo, ic_next]))
        return {
            "side": side,
            "stride_index": step.index // 2,
            "profile": step.profile,
            "stride_start_s": ic,
            "toe_off_s": toe_off,
            "stride_time_s": stride_s,
            "cadence_spm": 120.0 / stride_s,
            "peak_hip_extension_deg": float(ext_deg),
            "peak_hip_extension_pct": float((t[i_ext] - ic) / stride_s * 100.0),
            "peak_hip_flexion_deg": peak_flex,
            "hip_rom_deg": float(peak_flex + ext_deg),
            "glute_onset_ms": float(step.glute.onset_ms),
            "hamstring_onset_ms": float(step.hamstring.onset_ms),
            "onset_lag_ms": float(step.glute.onset_ms - step.hamstring.onset_ms),
            "glute_ham_ratio": float(glute / ham) if ham > 0 else float("nan"),
            "peak_anterior_tilt_deg": float(tilt[inside].max()),
            "pelvic_tilt_range_deg": float(np.ptp(tilt[inside])),
            "speed_kmh": step.speed_kmh,
            "extension_phase_start_s": float(t_a),
            "extension_phase_end_s": float(t_b),
            "steady": bool(np.all(weight == 1.0)),
        }


def _config_summary(c: SessionConfig) -> dict:
    out = {}
    for name in c.__dataclass_fields__:
        value = getattr(c, name)
        if isinstance(value, tuple) and value and hasattr(value[0], "__dataclass_fields__"):
            value = [vars(v).copy() for v in value]
        elif isinstance(value, Mapping):
            value = {k: list(v) for k, v in value.items()}
        out[name] = value
    return out
