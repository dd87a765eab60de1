"""Stream descriptions: what the numbers in a stream's frames mean (contract v1).

A station publishes one retained JSON description per stream before its first frame. It names
every channel with its unit, the sample rate and dtype, how raw values become physical units
(``value * scale + offset``), the amplifier gain, and where the sensor sits on the body.

Canonical names come from DOMAIN.md: EMG channels such as ``glute_max_l``; one IMU stream per
segment, ``imu_<segment>``, with channels ``acc_x acc_y acc_z`` (m/s²) and ``gyr_x gyr_y
gyr_z`` (deg/s) in the segment's frame as mounted (see ``mounting``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hipstride.frames import DTYPE_CODES, MAX_CHANNELS, MAX_RATE_HZ, MIN_RATE_HZ, STREAM_NAME

DESCRIPTION_VERSION = 1
#: Bounds of a description (docs/protocol.md, "Bounds and rejections"): its JSON size, the
#: length of each text field, and a channel name's characters.
MAX_DESCRIPTION_BYTES = 64 * 1024
MAX_TEXT = 200
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")  # \Z: no trailing newline

EMG_MUSCLES = ("glute_max", "biceps_femoris", "semitendinosus", "erector_spinae")
EMG_CHANNELS_REQUIRED = ("glute_max_l", "glute_max_r", "biceps_femoris_l", "biceps_femoris_r")
#: The default EMG set: glutes, lateral hamstrings and the lower back, both sides.
EMG_CHANNELS_DEFAULT = (*EMG_CHANNELS_REQUIRED, "erector_spinae_l", "erector_spinae_r")
IMU_SEGMENTS_REQUIRED = ("pelvis", "thigh_l", "thigh_r")
IMU_SEGMENTS = (*IMU_SEGMENTS_REQUIRED, "shank_l", "shank_r")
IMU_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
IMU_UNITS = ("m/s^2",) * 3 + ("deg/s",) * 3
EMG_STREAM = "emg"
EMG_RATE_HZ = 2000.0
IMU_RATE_HZ = 200.0

#: SENIAM placements (DOMAIN.md), shown to whoever straps the sensors on.
PLACEMENT = {
    "glute_max": "half the line from sacrum to greater trochanter (SENIAM)",
    "biceps_femoris": "half the line from ischial tuberosity to lateral tibial epicondyle (SENIAM)",
    "semitendinosus": "half the line from ischial tuberosity to medial tibial epicondyle (SENIAM)",
    "erector_spinae": "two finger-widths lateral of L1 spinous process",
    "pelvis": "over S1-S2 (sacrum)",
    "thigh": "lateral thigh, mid-length",
    "shank": "anteromedial tibia, mid-length",
}

#: Sensor axes relative to the segment when not configured: x anterior, y superior, z to the
#: runner's right, for every segment. A 3x3 matrix maps sensor-frame vectors to segment frame.
IDENTITY_MOUNTING = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


class DescriptionError(ValueError):
    """A stream description that does not follow the contract."""


@dataclass(frozen=True)
class Channel:
    name: str
    unit: str
    scale: float = 1.0
    offset: float = 0.0
    #: Physical full-scale range [low, high] in ``unit``; values at the rails count as saturated.
    range: tuple[float, float] | None = None
    placement: str = ""


@dataclass(frozen=True)
class StreamDescription:
    stream: str
    kind: str  # "emg" | "imu" | "other"
    rate_hz: float
    dtype: str
    channels: tuple[Channel, ...]
    gain: float = 1.0
    sensor: str = ""
    segment: str | None = None
    mounting: tuple[tuple[float, float, float], ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise DescriptionError(f"stream description {self.stream!r}: " + "; ".join(problems))

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def to_physical(self, samples: np.ndarray) -> np.ndarray:
        """Raw frame samples -> float64 physical units, channel by channel."""
        scale = np.array([c.scale for c in self.channels])
        offset = np.array([c.offset for c in self.channels])
        return np.asarray(samples, dtype=np.float64) * scale + offset

    def to_json(self) -> bytes:
        body = asdict(self)
        body["version"] = DESCRIPTION_VERSION
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> StreamDescription:
        if len(data) > MAX_DESCRIPTION_BYTES:
            raise DescriptionError(f"stream description of {len(data)} bytes exceeds the "
                                   f"{MAX_DESCRIPTION_BYTES}-byte limit")
        try:
            body = json.loads(data, parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DescriptionError(f"stream description is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise DescriptionError("stream description must be a JSON object")
        version = body.pop("version", None)
        if version != DESCRIPTION_VERSION:
            raise DescriptionError(
                f"stream description version {version!r}; this reader knows {DESCRIPTION_VERSION}"
            )
        try:
            raw_channels = body.pop("channels")
            if not isinstance(raw_channels, list) or len(raw_channels) > MAX_CHANNELS:
                raise DescriptionError(f"channels must be a list of 1..{MAX_CHANNELS} channels")
            channels = tuple(
                Channel(**{**c, "range": tuple(c["range"]) if c.get("range") else None})
                for c in raw_channels
            )
            mounting = body.pop("mounting", None)
            if mounting is not None:
                mounting = tuple(tuple(float(v) for v in row) for row in mounting)
            return cls(channels=channels, mounting=mounting, **body)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, DescriptionError):
                raise
            raise DescriptionError(f"stream description is incomplete or mistyped: {err}") from None


def _no_constant(name: str) -> float:
    raise DescriptionError(f"stream description holds {name}: numbers must be finite")


def _is_number(value: Any) -> bool:
    """A finite int or float; a bool is not a number here (``True`` is not 1 Hz)."""
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _is_text(value: Any, limit: int = MAX_TEXT) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def _problems(d: StreamDescription) -> list[str]:
    problems = []
    if not isinstance(d.stream, str) or not STREAM_NAME.match(d.stream):
        problems.append(f"stream name must match {STREAM_NAME.pattern}")
    if d.kind not in ("emg", "imu", "other"):
        problems.append(f"kind {d.kind!r} must be 'emg', 'imu' or 'other'")
    if not _is_number(d.rate_hz) or not (MIN_RATE_HZ <= d.rate_hz <= MAX_RATE_HZ):
        problems.append(f"rate_hz {d.rate_hz!r} must be a number in "
                        f"[{MIN_RATE_HZ}, {MAX_RATE_HZ:g}]")
    try:
        if not isinstance(d.dtype, str) or \
                np.dtype(d.dtype).newbyteorder("<") not in DTYPE_CODES.values():
            problems.append(f"dtype {d.dtype!r} is not a frame dtype")
    except (TypeError, ValueError):
        problems.append(f"dtype {d.dtype!r} is not a numpy dtype")
    if not _is_number(d.gain):
        problems.append(f"gain {d.gain!r} must be a finite number")
    if not _is_text(d.sensor):
        problems.append(f"sensor must be printable text of at most {MAX_TEXT} characters")
    if d.segment is not None and not _is_text(d.segment, 64):
        problems.append("segment must be null or printable text of at most 64 characters")
    if not isinstance(d.extra, dict):
        problems.append("extra must be a JSON object")
    elif len(json.dumps(d.extra, default=str)) > MAX_DESCRIPTION_BYTES // 4:
        problems.append(f"extra must stay under {MAX_DESCRIPTION_BYTES // 4} bytes")
    if not isinstance(d.channels, tuple) or not 1 <= len(d.channels) <= MAX_CHANNELS:
        problems.append(f"needs at least one channel and at most {MAX_CHANNELS}")
        return problems
    for c in d.channels:
        if not isinstance(c.name, str) or not CHANNEL_NAME.match(c.name):
            problems.append(f"channel name {str(c.name)[:70]!r} must match "
                            f"{CHANNEL_NAME.pattern}")
        elif not _is_text(c.unit, 32) or not _is_text(c.placement):
            problems.append(f"channel {c.name!r}: unit (≤ 32) and placement (≤ {MAX_TEXT}) "
                            "must be printable text")
        elif not _is_number(c.scale) or c.scale == 0 or not _is_number(c.offset):
            problems.append(f"channel {c.name!r}: scale must be finite and non-zero")
        elif c.range is not None and (len(c.range) != 2
                                      or not all(_is_number(v) for v in c.range)):
            problems.append(f"channel {c.name!r}: range must be null or [low, high] numbers")
        if len(problems) > 5:
            break
    if problems:
        return problems
    names = [c.name for c in d.channels]
    if len(set(names)) != len(names):
        problems.append(f"channel names repeat: {names}")
    if d.mounting is not None:
        m = np.asarray(d.mounting, dtype=float)
        if m.shape != (3, 3) or not np.isfinite(m).all() or \
                not np.allclose(m @ m.T, np.eye(3), atol=1e-3):
            problems.append("mounting must be a 3x3 rotation matrix (sensor -> segment)")
    return problems


def emg_description(
    channels: tuple[str, ...] = EMG_CHANNELS_DEFAULT,
    *,
    rate_hz: float = EMG_RATE_HZ,
    dtype: str = "float32",
    scale: float = 1.0,
    full_scale_mv: float = 10.0,
    gain: float = 1.0,
    sensor: str = "simulator",
    stream: str = EMG_STREAM,
) -> StreamDescription:
    """Description of an EMG stream whose physical unit is millivolts at the electrode."""
    return StreamDescription(
        stream=stream,
        kind="emg",
        rate_hz=rate_hz,
        dtype=dtype,
        gain=gain,
        sensor=sensor,
        channels=tuple(
            Channel(name, "mV", scale=scale, range=(-full_scale_mv, full_scale_mv),
                    placement=PLACEMENT.get(name.rsplit("_", 1)[0], ""))
            for name in channels
        ),
    )


def imu_description(
    segment: str,
    *,
    rate_hz: float = IMU_RATE_HZ,
    dtype: str = "float32",
    acc_scale: float = 1.0,
    gyr_scale: float = 1.0,
    acc_range: float = 16 * 9.80665,
    gyr_range_dps: float = 2000.0,
    mounting: tuple[tuple[float, float, float], ...] = IDENTITY_MOUNTING,
    sensor: str = "simulator",
) -> StreamDescription:
    """Description of one IMU on one segment: accelerometer in m/s², gyroscope in deg/s."""
    if segment not in IMU_SEGMENTS:
        raise DescriptionError(f"segment {segment!r}: expected one of {IMU_SEGMENTS}")
    acc = [Channel(n, IMU_UNITS[i], scale=acc_scale, range=(-acc_range, acc_range))
           for i, n in enumerate(IMU_CHANNELS[:3])]
    gyr = [Channel(n, IMU_UNITS[3 + i], scale=gyr_scale, range=(-gyr_range_dps, gyr_range_dps))
           for i, n in enumerate(IMU_CHANNELS[3:])]
    return StreamDescription(
        stream=f"imu_{segment}",
        kind="imu",
        rate_hz=rate_hz,
        dtype=dtype,
        sensor=sensor,
        segment=segment,
        mounting=mounting,
        channels=tuple(acc + gyr),
        extra={"placement": PLACEMENT[segment.split("_")[0]]},
    )
