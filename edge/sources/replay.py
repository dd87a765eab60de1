"""Replay of a recorded session: a ``.hsrec`` recording or a pair of HipStride CSV files.

Timestamps come from the file, not from the agent's clock (``realtime`` is False): a
recording's frames keep their ``t0_ns``; CSV rows are placed at ``start + time_s``. Blocks are
released when their last sample would have been in hand, ``speed`` times faster than real time
(0 = as fast as the agent takes them). With ``loop`` the file starts over and the timestamps
keep increasing by the file's span each round.

A recording is streamed from disk (two passes: one to learn the streams and check the file, one
to replay), so an hour-long session does not have to fit in a Pi's memory. Bad records are
skipped and listed in :attr:`ReplaySource.problems`; a corrupt tail ends the replay there.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from hipstride.config import ConfigError, Section
from hipstride.csvformat import (
    ACC_UNITS_TO_MS2,
    EMG_UNITS_TO_MV,
    GYR_UNITS_TO_DPS,
    CsvFormatError,
    CsvTable,
    load_rename,
    read_csv,
)
from hipstride.frames import Frame, FrameError, decode_frame
from hipstride.recording import (
    KIND_CALIBRATION,
    KIND_DESCRIPTION,
    KIND_FRAME,
    KIND_METADATA,
    RecordingError,
    iter_records,
)
from hipstride.streams import DescriptionError, StreamDescription

from .base import Block, Source, SourceError

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
#: At most this many blocks per read(), so a fast replay still yields to the agent's loop.
MAX_BLOCKS_PER_READ = 64
CONFIG_KEYS = {"recording", "emg", "imu", "speed", "loop", "map", "start", "block_ms",
               "emg_unit", "acc_unit", "gyr_unit"}


@dataclass(frozen=True)
class _Item:
    """One block due at ``release_ns`` (file clock, end of its last sample)."""

    release_ns: int
    block: Block


class _RecordingPlan:
    """A recording, checked once, then replayed frame by frame in file order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.descriptions: dict[str, StreamDescription] = {}
        self.metadata: list[dict] = []
        self._n_good_records = 0
        self._skip: set[int] = set()  # records found bad in the checking pass
        first_t0: int | None = None
        last_end = 0
        n_frames = 0
        for index, kind, body, problem in self._records(limit=None):
            if problem:
                self.problems.append(problem)
                continue
            self._n_good_records = index + 1
            if kind == KIND_DESCRIPTION:
                try:
                    d = StreamDescription.from_json(body)
                except DescriptionError as err:
                    self.problems.append(f"{path} record {index}: {err}")
                    continue
                self.descriptions.setdefault(d.stream, d)
            elif kind == KIND_FRAME:
                frame = self._frame(index, body)
                if frame is None:
                    self._skip.add(index)
                else:
                    n_frames += 1
                    first_t0 = frame.t0_ns if first_t0 is None else min(first_t0, frame.t0_ns)
                    last_end = max(last_end, frame.t0_ns + frame.duration_ns)
            elif kind == KIND_METADATA:
                try:
                    self.metadata.append(json.loads(body))
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    self.problems.append(f"{path} record {index}: metadata is not JSON: {err}")
            elif kind == KIND_CALIBRATION:
                pass  # the pipeline's calibration: for analysis, not for the station to replay
            else:
                self.problems.append(f"{path} record {index}: unknown record kind {kind}, "
                                     "skipped")
        if not n_frames:
            raise SourceError(f"{path}: the recording holds no replayable frames"
                              + (f" ({'; '.join(self.problems)})" if self.problems else ""))
        self.origin_ns = first_t0 or 0
        self.span_ns = last_end - self.origin_ns

    def _records(self, limit: int | None) -> Iterator[tuple[int, int, bytes, str | None]]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed in finally
        except OSError as err:
            raise SourceError(f"{self.path}: cannot open the recording ({err.strerror})") from None
        try:
            records = iter_records(f, str(self.path))
            index = 0
            while limit is None or index < limit:
                try:
                    kind, body = next(records)
                except StopIteration:
                    return
                except RecordingError as err:
                    if limit is None:  # only the checking pass reports the tail
                        yield index, 0, b"", f"{err}; replaying everything before it"
                    return
                yield index, kind, body, None
                index += 1
        finally:
            f.close()

    def _frame(self, index: int, body: bytes) -> Frame | None:
        """Decode and check a frame in the checking pass; report and return None if bad."""
        try:
            frame = decode_frame(body)
        except FrameError as err:
            self.problems.append(f"{self.path} record {index}: {err}; frame skipped")
            return None
        d = self.descriptions.get(frame.stream)
        problem = None
        if d is None:
            problem = f"frame of stream {frame.stream!r} before any description of it"
        elif frame.n_channels != d.n_channels or frame.samples.dtype != d.numpy_dtype:
            problem = (f"frame of stream {frame.stream!r} has {frame.n_channels} x "
                       f"{frame.samples.dtype}, its description {d.n_channels} x {d.dtype}")
        if problem:
            self.problems.append(f"{self.path} record {index}: {problem}; frame skipped")
            return None
        return frame

    def items(self, offset_ns: int, _start_ns: int) -> Iterator[_Item]:
        expected: dict[str, int] = {}  # next sample's t0 per stream
        for index, kind, body, problem in self._records(limit=self._n_good_records):
            if problem or kind != KIND_FRAME or index in self._skip:
                continue
            frame = decode_frame(body)
            t0 = frame.t0_ns + offset_ns
            dropped = 0
            if frame.stream in expected:
                gap = (t0 - expected[frame.stream]) * frame.rate_hz / NS_PER_S
                dropped = max(0, round(gap))
            expected[frame.stream] = t0 + frame.duration_ns
            block = Block(frame.stream, frame.samples, first_timestamp_ns=t0,
                          dropped_before=dropped)
            yield _Item(t0 + frame.duration_ns, block)


class _CsvPlan:
    """EMG and/or IMU CSV tables, cut into blocks of ``block_ms``."""

    def __init__(self, tables: list[CsvTable], block_ms: float) -> None:
        self.problems: list[str] = []
        self.metadata: list[dict] = []
        self.descriptions = {}
        self._streams: list[tuple[StreamDescription, np.ndarray, np.ndarray]] = []
        for table in tables:
            for desc, samples in table.streams(sensor=f"csv:{table.path.name}"
                                               if table.path else "csv"):
                if desc.stream in self.descriptions:
                    raise SourceError(f"stream {desc.stream!r} comes from two files")
                self.descriptions[desc.stream] = desc
                time_ns = np.round(table.time_s * NS_PER_S).astype(np.int64)
                self._streams.append((desc, samples, time_ns))
        self.block_ms = block_ms
        self.origin_ns = min(int(t[0]) for _, _, t in self._streams)
        ends = [int(t[-1]) + round(NS_PER_S / d.rate_hz) for d, _, t in self._streams]
        self.span_ns = max(ends) - self.origin_ns

    def items(self, offset_ns: int, start_ns: int) -> Iterator[_Item]:
        def one(desc: StreamDescription, samples: np.ndarray, time_ns: np.ndarray
                ) -> Iterator[_Item]:
            step = max(1, round(desc.rate_hz * self.block_ms / 1000))
            period_ns = NS_PER_S / desc.rate_hz
            for i in range(0, len(samples), step):
                chunk = samples[i:i + step]
                t0 = int(time_ns[i]) + offset_ns
                block = Block(desc.stream, chunk, first_timestamp_ns=start_ns + t0)
                yield _Item(t0 + round(len(chunk) * period_ns), block)

        return heapq.merge(*(one(*s) for s in self._streams), key=lambda item: item.release_ns)


class ReplaySource(Source):
    """Replays a ``.hsrec`` recording, or EMG and/or IMU CSV files, as blocks.

    Parameters
    ----------
    recording
        A ``.hsrec`` file; or give ``emg_csv`` and/or ``imu_csv`` instead.
    speed
        Real-time factor: 1 = real time, 2 = twice as fast, 0 = as fast as possible.
    loop
        Start over at the end, timestamps increasing by the file's span each round.
    rename
        Column renames for the CSV files (see :mod:`hipstride.csvformat`).
    start_ns
        CSV only: the Unix time (ns) of ``time_s`` = 0. Default: the wall clock at the first
        :meth:`read` minus the first ``time_s``, so the replay starts "now".
    block_ms
        CSV only: block length.
    """

    realtime = False

    def __init__(
        self,
        *,
        recording: str | Path | None = None,
        emg_csv: str | Path | None = None,
        imu_csv: str | Path | None = None,
        speed: float = 1.0,
        loop: bool = False,
        rename: Mapping[str, str] | None = None,
        start_ns: int | None = None,
        block_ms: float = 50.0,
        emg_unit: str = "mV",
        acc_unit: str = "m/s^2",
        gyr_unit: str = "deg/s",
    ) -> None:
        if (recording is None) == (emg_csv is None and imu_csv is None):
            raise SourceError("replay needs either a recording or CSV files (emg and/or imu), "
                              "not both and not neither")
        if not (speed >= 0 and math.isfinite(speed)):
            raise SourceError(f"replay speed {speed!r} must be a finite number >= 0")
        self.speed = float(speed)
        self.loop = loop
        self._plan: _RecordingPlan | _CsvPlan
        if recording is not None:
            self._plan = _RecordingPlan(Path(recording))
        else:
            tables = []
            for kind, path in (("emg", emg_csv), ("imu", imu_csv)):
                if path is None:
                    continue
                try:
                    tables.append(read_csv(path, kind, rename=rename, emg_unit=emg_unit,
                                           acc_unit=acc_unit, gyr_unit=gyr_unit))
                except CsvFormatError as err:
                    raise SourceError(f"{kind} CSV: {err}") from None
            self._plan = _CsvPlan(tables, block_ms)
        if self.loop and self._plan.span_ns <= 0:
            raise SourceError("cannot loop a replay that spans no time")
        self.problems: list[str] = list(self._plan.problems)
        for problem in self.problems:
            log.warning("replay: %s", problem)
        self.descriptions = tuple(self._plan.descriptions.values())
        self.metadata = self._plan.metadata
        self._start_ns = start_ns
        self._round = 0
        self._items: Iterator[_Item] | None = None
        self._pending: _Item | None = None
        self._wall0_ns: int | None = None
        self._finished = False
        self._closed = False

    @property
    def finished(self) -> bool:
        return self._finished

    def _next(self) -> _Item | None:
        if self._pending is None:
            while True:
                if self._items is None:
                    offset = self._round * self._plan.span_ns
                    self._items = self._plan.items(offset, self._start_ns or 0)
                self._pending = next(self._items, None)
                if self._pending is not None or not self.loop:
                    break
                self._items, self._round = None, self._round + 1
        return self._pending

    def read(self, timeout_s: float) -> list[Block]:
        if self._closed:
            raise SourceError("replay source is closed")
        if self._finished:
            return []
        now = time.monotonic_ns()
        if self._wall0_ns is None:
            self._wall0_ns = now
            if self._start_ns is None and isinstance(self._plan, _CsvPlan):
                self._start_ns = time.time_ns() - self._plan.origin_ns
        deadline = now + max(0.0, timeout_s) * NS_PER_S
        out: list[Block] = []
        while len(out) < MAX_BLOCKS_PER_READ:
            item = self._next()
            if item is None:
                self._finished = True
                break
            if self.speed > 0:
                due = self._wall0_ns + (item.release_ns - self._plan.origin_ns) / self.speed
                now = time.monotonic_ns()
                if due > now:
                    if out or now >= deadline:
                        break
                    time.sleep((min(due, deadline) - now) / NS_PER_S)
                    if time.monotonic_ns() < due:
                        break
            out.append(item.block)
            self._pending = None
        return out

    def close(self) -> None:
        self._closed = True
        self._items = None


# --- configuration ---------------------------------------------------------------------------

def from_config(section: Section, *, base_dir: str | Path | None = None) -> ReplaySource:
    """Build a replay from the ``[replay]`` table; relative paths resolve against ``base_dir``.

    Keys: ``recording`` (a .hsrec file) or ``emg`` / ``imu`` (CSV files); ``speed`` (1);
    ``loop`` (false); ``map`` (column renames: an inline table or a file of old=new lines /
    TOML); ``start`` (CSV: Unix seconds or an RFC 3339 date-time of time_s = 0; default now);
    ``block_ms`` (50); ``emg_unit`` ("mV"), ``acc_unit`` ("m/s^2"), ``gyr_unit`` ("deg/s").
    """
    section.unknown_keys(CONFIG_KEYS)
    base = Path(base_dir) if base_dir is not None else None

    def existing(key: str) -> Path | None:
        value = section.string(key)
        if value is None:
            return None
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ConfigError(f"{section.where(key)}: file {path} does not exist"
                              + (" (it is a directory)" if path.is_dir() else ""))
        return path

    recording, emg, imu = existing("recording"), existing("emg"), existing("imu")
    if recording is not None and (emg or imu):
        raise ConfigError(f"[{section.name}]: give either recording or emg/imu CSV files, not "
                          "both")
    if recording is None and emg is None and imu is None:
        raise ConfigError(f"[{section.name}]: nothing to replay; set recording = \"x.hsrec\" or "
                          "emg = \"emg.csv\" and/or imu = \"imu.csv\"")
    rename = _rename(section, base)
    if rename and recording is not None:
        raise ConfigError(f"{section.where('map')}: column renames apply to CSV files only")
    try:
        return ReplaySource(
            recording=recording,
            emg_csv=emg,
            imu_csv=imu,
            speed=section.number("speed", 1.0, minimum=0),
            loop=section.boolean("loop", False),
            rename=rename,
            start_ns=_start_ns(section),
            block_ms=section.number("block_ms", 50.0, minimum=1, maximum=10_000),
            emg_unit=section.string("emg_unit", "mV", choices=tuple(EMG_UNITS_TO_MV)),
            acc_unit=section.string("acc_unit", "m/s^2", choices=tuple(ACC_UNITS_TO_MS2)),
            gyr_unit=section.string("gyr_unit", "deg/s", choices=tuple(GYR_UNITS_TO_DPS)),
        )
    except SourceError as err:
        raise SourceError(f"[{section.name}]: {err}") from None


def _rename(section: Section, base: Path | None) -> dict[str, str] | None:
    value = section.data.get("map")
    if value is None:
        return None
    if isinstance(value, Mapping):
        if not all(isinstance(v, str) for v in value.values()):
            raise section.fail("map", "a table of \"old column\" = \"new column\" strings")
        return dict(value)
    if isinstance(value, str):
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            return load_rename(path)
        except CsvFormatError as err:
            raise ConfigError(f"{section.where('map')}: {err}") from None
    raise section.fail("map", "a table of renames or the path of a rename file")


def _start_ns(section: Section) -> int | None:
    value = section.data.get("start", "now")
    if value == "now":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise section.fail("start", "a date-time with a UTC offset (2024-05-01T10:00:00Z)")
        return round(value.timestamp() * NS_PER_S)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return round(value * NS_PER_S)
    raise section.fail("start", "\"now\", Unix seconds or an RFC 3339 date-time")
