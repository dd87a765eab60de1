"""Lab Streaming Layer input: any device with an LSL outlet (Delsys, OpenBCI, BITalino ...).

Each configured stream is resolved on the network by name and/or type (and optionally
source_id), its channels are mapped onto canonical names, and its samples are passed through
unchanged: the unit conversion goes into the stream description (``Channel.scale``), so the raw
values stay sample-exact.

Timestamps: the inlet applies LSL's clock synchronisation (``proc_clocksync``, i.e. the
sender's ``time_correction()``), which puts them on this machine's ``local_clock()``; that is
mapped to Unix-epoch ns by the measured offset between ``local_clock()`` and ``time.time_ns()``.
Samples are regarded as contiguous at the nominal rate: each block's ``first_timestamp_ns`` is
the previous block's end, slowly steered towards the LSL timestamps (device-clock drift), and
when the LSL timestamps jump ahead by more than ``gap_tolerance_ms`` the block reports the
missing samples in ``dropped_before``. Dejitter is off by default because it smooths such gaps
away.

pylsl is imported lazily so the agent starts without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hipstride.config import ConfigError, Section
from hipstride.frames import STREAM_NAME
from hipstride.streams import (
    EMG_CHANNELS_DEFAULT,
    EMG_MUSCLES,
    EMG_STREAM,
    IMU_CHANNELS,
    IMU_SEGMENTS,
    StreamDescription,
    emg_description,
    imu_description,
)

from .base import Block, Source, SourceError

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
EMG_NAMES = tuple(f"{m}_{side}" for m in EMG_MUSCLES for side in ("l", "r"))
#: How fast the block timestamps follow the LSL timestamps (fraction of the residual per chunk).
STEER_GAIN = 0.05
STREAM_KEYS = {"name", "type", "source_id", "kind", "stream", "channels", "scale", "acc_scale",
               "gyr_scale", "segment", "resolve_timeout_s", "dejitter", "gap_tolerance_ms"}
SECTION_KEYS = {"stream", "resolve_timeout_s"}


@dataclass(frozen=True)
class LslStreamConfig:
    """Which LSL stream to read and how its channels map onto a HipStride stream.

    ``channels`` maps canonical names to the LSL channel: a label (str) or a 0-based index.
    Empty means "the LSL labels are already canonical names".
    """

    kind: str  # "emg" | "imu"
    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    channels: dict[str, str | int] = field(default_factory=dict)
    scale: float = 1.0  # EMG: raw LSL value -> mV
    acc_scale: float = 1.0  # IMU: raw -> m/s²
    gyr_scale: float = 1.0  # IMU: raw -> deg/s
    segment: str | None = None
    stream: str | None = None  # HipStride stream name; default "emg" or "imu_<segment>"
    resolve_timeout_s: float = 5.0
    dejitter: bool = False
    gap_tolerance_ms: float = 20.0

    @property
    def stream_name(self) -> str:
        if self.stream:
            return self.stream
        return EMG_STREAM if self.kind == "emg" else f"imu_{self.segment}"

    def predicate(self) -> str:
        """The XPath predicate LSL resolves by."""
        terms = [f"{key}='{value}'" for key, value in
                 (("name", self.name), ("type", self.type), ("source_id", self.source_id)) if value]
        return " and ".join(terms)

    def describe(self) -> str:
        return ", ".join(f"{k} {v!r}" for k, v in
                         (("name", self.name), ("type", self.type), ("source_id", self.source_id))
                         if v)


# LSL channel formats -> numpy dtypes the frame format carries (int64 is widened to float64).
_FORMATS = {1: "float32", 2: "float64", 4: "int32", 5: "int16", 6: "int8", 7: "int64"}


class _Reader:
    """One inlet: pulls chunks, maps channels, keeps the contiguous sample clock."""

    def __init__(self, config: LslStreamConfig, inlet: Any, info: Any,
                 description: StreamDescription, index: list[int], lsl_dtype: str) -> None:
        self.config = config
        self.inlet = inlet
        self.info = info
        self.description = description
        self.index = index
        self.rate_hz = float(info.nominal_srate())
        self.max_samples = int(min(65536, max(1024, self.rate_hz)))
        self.buffer = np.empty((self.max_samples, info.channel_count()), dtype=lsl_dtype)
        self.next_lsl_s: float | None = None  # model time (LSL clock) of the next sample
        self.gap_s = max(3.0 / self.rate_hz, config.gap_tolerance_ms / 1000.0)
        self.dropped_total = 0

    def pull(self, offset_ns: int) -> Block | None:
        from pylsl.util import LostError  # lazy: see the module docstring

        try:
            _, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=self.max_samples,
                                              dest_obj=self.buffer)
        except LostError:
            raise SourceError(f"LSL stream {self.info.name()!r} ({self.config.describe()}) was "
                              "lost and cannot be recovered; check the device and its outlet") \
                from None
        n = len(stamps)
        if not n:
            return None
        samples = self.buffer[:n, self.index].astype(self.description.dtype, copy=False)
        first_s = float(stamps[0])
        dropped = 0
        if self.next_lsl_s is None:
            self.next_lsl_s = first_s
        else:
            residual = first_s - self.next_lsl_s
            if residual > self.gap_s:
                dropped = round(residual * self.rate_hz)
                self.next_lsl_s += dropped / self.rate_hz
                self.dropped_total += dropped
                residual = first_s - self.next_lsl_s
            if abs(residual) > 10 * self.gap_s:  # a clock reset or a stream restart
                self.next_lsl_s = first_s
            else:
                self.next_lsl_s += STEER_GAIN * residual
        t0_ns = round(self.next_lsl_s * NS_PER_S) + offset_ns
        self.next_lsl_s += n / self.rate_hz
        return Block(self.description.stream, samples, first_timestamp_ns=t0_ns,
                     dropped_before=dropped)


class LslSource(Source):
    """Reads one or more LSL streams; see the module docstring for timestamps.

    Resolves and opens every stream in the constructor (the descriptions depend on what the
    outlets announce) and raises :class:`SourceError` when one cannot be found.
    """

    realtime = True

    def __init__(self, streams: Sequence[LslStreamConfig], *, poll_s: float = 0.002) -> None:
        if not streams:
            raise SourceError("LSL source needs at least one stream")
        names = [s.stream_name for s in streams]
        if len(set(names)) != len(names):
            raise SourceError(f"two LSL streams would both become HipStride stream(s) "
                              f"{sorted({n for n in names if names.count(n) > 1})}; set "
                              "`stream` to tell them apart")
        try:
            import pylsl  # lazy: see the module docstring
        except ImportError:
            raise SourceError("the LSL source needs pylsl: pip install 'hipstride[edge]'") \
                from None
        self._pylsl = pylsl
        self.poll_s = poll_s
        self._readers: list[_Reader] = []
        try:
            for config in streams:
                self._readers.append(self._open(config))
        except BaseException:
            self.close()
            raise
        self.descriptions = tuple(r.description for r in self._readers)
        self._all_readers = tuple(self._readers)
        self._offset_ns = self._measure_offset_ns()
        self._offset_at = time.monotonic()

    def _open(self, config: LslStreamConfig) -> _Reader:
        pylsl = self._pylsl
        found = pylsl.resolve_bypred(config.predicate(), 1, config.resolve_timeout_s)
        if not found:
            visible = pylsl.resolve_streams(1.0)
            listing = "; ".join(
                f"name {i.name()!r} type {i.type()!r} ({i.channel_count()} ch @ "
                f"{i.nominal_srate():g} Hz, source_id {i.source_id()!r}, host {i.hostname()!r})"
                for i in visible) or "none"
            raise SourceError(f"no LSL stream with {config.describe()} found within "
                              f"{config.resolve_timeout_s:g} s. Visible streams: {listing}. "
                              "Check the device's outlet, the name/type in [[lsl.stream]], and "
                              "that multicast works (or set KnownPeers in lsl_api.cfg)")
        if len(found) > 1:
            log.warning("several LSL streams match %s; using %s", config.describe(),
                        found[0].source_id() or found[0].name())
        flags = pylsl.proc_clocksync | pylsl.proc_monotonize
        if config.dejitter:
            flags |= pylsl.proc_dejitter
        inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=flags)
        try:
            info = inlet.info(config.resolve_timeout_s)
            inlet.open_stream(config.resolve_timeout_s)
            if info.nominal_srate() <= 0:
                raise SourceError(f"LSL stream {info.name()!r} has an irregular rate; HipStride "
                                  "needs a stream with a nominal sample rate")
            lsl_dtype = _FORMATS.get(info.channel_format())
            if lsl_dtype is None:
                raise SourceError(f"LSL stream {info.name()!r} carries strings or an unknown "
                                  f"channel format ({info.channel_format()}), not samples")
            labels = list(info.get_channel_labels() or [])
            names, index = _map_channels(config, labels, info.channel_count(), info.name())
            dtype = "float64" if lsl_dtype == "int64" else lsl_dtype
            sensor = f"lsl:{info.name()}@{info.hostname()}"
            if config.kind == "emg":
                description = emg_description(tuple(names), rate_hz=info.nominal_srate(),
                                              dtype=dtype, scale=config.scale, sensor=sensor,
                                              stream=config.stream_name)
            else:
                if tuple(names) != IMU_CHANNELS:
                    order = [names.index(c) for c in IMU_CHANNELS]
                    index = [index[i] for i in order]
                description = imu_description(config.segment, rate_hz=info.nominal_srate(),
                                              dtype=dtype, acc_scale=config.acc_scale,
                                              gyr_scale=config.gyr_scale, sensor=sensor)
            return _Reader(config, inlet, info, description, index, lsl_dtype)
        except BaseException:
            inlet.close_stream()
            raise

    def _measure_offset_ns(self) -> int:
        """Unix-epoch ns minus LSL local_clock ns, from the tightest of a few readings."""
        best: tuple[int, int] | None = None
        for _ in range(5):
            before = time.time_ns()
            local_ns = round(self._pylsl.local_clock() * NS_PER_S)
            after = time.time_ns()
            if best is None or after - before < best[0]:
                best = (after - before, (before + after) // 2 - local_ns)
        assert best is not None
        return best[1]

    def read(self, timeout_s: float) -> list[Block]:
        if not self._readers:
            raise SourceError("LSL source is closed")
        if time.monotonic() - self._offset_at > 10.0:  # follow wall-clock discipline
            self._offset_ns, self._offset_at = self._measure_offset_ns(), time.monotonic()
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            blocks = [b for r in self._readers if (b := r.pull(self._offset_ns)) is not None]
            if blocks or time.monotonic() >= deadline:
                return blocks
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    @property
    def dropped_samples(self) -> dict[str, int]:
        """Samples the LSL timestamps showed missing, per stream, since the start."""
        return {r.description.stream: r.dropped_total for r in self._all_readers}

    def close(self) -> None:
        for reader in self._readers:
            try:
                reader.inlet.close_stream()
            except Exception:  # closing is best effort
                log.debug("closing LSL inlet failed", exc_info=True)
        self._readers = []


def _map_channels(config: LslStreamConfig, labels: list[str], count: int, lsl_name: str
                  ) -> tuple[list[str], list[int]]:
    """Canonical channel names and the LSL channel index each one reads."""
    known = EMG_NAMES if config.kind == "emg" else IMU_CHANNELS
    where = f"LSL stream {lsl_name!r} ({config.describe()})"
    shown = ", ".join(f"{i}:{label!r}" for i, label in enumerate(labels)) or "no labels"
    if not config.channels:
        if labels and all(label in known for label in labels):
            mapping: dict[str, str | int] = {label: i for i, label in enumerate(labels)}
        else:
            example = ", ".join(f'{n} = {i}' for i, n in enumerate(
                EMG_CHANNELS_DEFAULT if config.kind == "emg" else IMU_CHANNELS))
            raise SourceError(f"{where}: its channels ({count}; {shown}) are not canonical "
                              f"names; map them in [[lsl.stream]] channels, e.g. "
                              f"channels = {{ {example} }}")
    else:
        mapping = config.channels
    names, index = [], []
    for name, source in mapping.items():
        if isinstance(source, str):
            if source not in labels:
                raise SourceError(f"{where}: no channel labelled {source!r} (for {name}); "
                                  f"its channels are {shown}")
            position = labels.index(source)
        else:
            position = source
            if not 0 <= position < count:
                raise SourceError(f"{where}: channel index {position} (for {name}) is outside "
                                  f"0..{count - 1}")
        names.append(name)
        index.append(position)
    if config.kind == "imu" and set(names) != set(IMU_CHANNELS):
        raise SourceError(f"{where}: an IMU stream needs exactly the channels "
                          f"{', '.join(IMU_CHANNELS)}; mapped: {', '.join(names)}")
    return names, index


# --- configuration ---------------------------------------------------------------------------

def stream_config(section: Section, default_timeout_s: float = 5.0) -> LslStreamConfig:
    """One ``[[lsl.stream]]`` entry."""
    section.unknown_keys(STREAM_KEYS)
    kind = section.string("kind", None, choices=("emg", "imu"))
    if kind is None:
        raise section.fail("kind", "\"emg\" or \"imu\"")
    name, type_ = section.string("name"), section.string("type")
    source_id = section.string("source_id")
    if not (name or type_ or source_id):
        raise ConfigError(f"[{section.name}]: select the LSL stream by name and/or type (or "
                          "source_id), e.g. type = \"EMG\", name = \"OpenBCI\"")
    for key, value in (("name", name), ("type", type_), ("source_id", source_id)):
        if value and "'" in value:
            raise section.fail(key, "a value without single quotes")
    segment = section.string("segment", None, choices=IMU_SEGMENTS)
    if kind == "imu" and segment is None:
        raise section.fail("segment", "the body segment of this IMU: one of "
                           + ", ".join(IMU_SEGMENTS))
    known = EMG_NAMES if kind == "emg" else IMU_CHANNELS
    channels = _channels(section, known)
    stream = section.string("stream")
    if stream is not None and not STREAM_NAME.match(stream):
        raise section.fail("stream", f"a stream name matching {STREAM_NAME.pattern}")
    return LslStreamConfig(
        kind=kind,
        name=name,
        type=type_,
        source_id=source_id,
        channels=channels,
        scale=_nonzero(section, "scale"),
        acc_scale=_nonzero(section, "acc_scale"),
        gyr_scale=_nonzero(section, "gyr_scale"),
        segment=segment,
        stream=stream,
        resolve_timeout_s=section.number("resolve_timeout_s", default_timeout_s, minimum=0.1),
        dejitter=section.boolean("dejitter", False),
        gap_tolerance_ms=section.number("gap_tolerance_ms", 20.0, minimum=0),
    )


def _nonzero(section: Section, key: str) -> float:
    value = section.number(key, 1.0)
    if value == 0:
        raise section.fail(key, "a non-zero factor (raw LSL value -> canonical unit)")
    return value


def _channels(section: Section, known: Sequence[str]) -> dict[str, str | int]:
    """``channels``: a list (position i = LSL channel i, "" skips) or a table name = label/index."""
    value = section.data.get("channels")
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        mapping: dict[str, str | int] = {name: i for i, name in enumerate(value) if name}
        if len(mapping) != len([v for v in value if v]):
            raise section.fail("channels", "each canonical name once")
    elif isinstance(value, dict) and all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
            for v in value.values()):
        mapping = dict(value)
    else:
        raise section.fail("channels", "a list of canonical names in LSL channel order, or a "
                           "table canonical name = LSL label or 0-based index")
    unknown = [n for n in mapping if n not in known]
    if unknown:
        raise ConfigError(f"{section.where('channels')}: unknown channel name(s) "
                          f"{', '.join(unknown)}; expected some of {', '.join(known)}")
    return mapping


def from_config(section: Section) -> LslSource:
    """Build an LSL source from the ``[lsl]`` table and its ``[[lsl.stream]]`` entries."""
    section.unknown_keys(SECTION_KEYS)
    timeout = section.number("resolve_timeout_s", 5.0, minimum=0.1)
    entries = section.tables("stream")
    if not entries:
        raise ConfigError(f"[{section.name}]: no [[{section.name}.stream]] entries; add one per "
                          "LSL stream, e.g. type = \"EMG\", kind = \"emg\"")
    return LslSource([stream_config(entry, timeout) for entry in entries])
