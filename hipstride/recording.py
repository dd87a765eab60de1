"""The recording format (``.hsrec``): raw frames of a session, as they crossed the wire.

A recording is the exact bytes a station published, so a session can be re-analysed
sample for sample. Layout (documented in ``docs/formats.md``)::

    file    := MAGIC record*
    MAGIC   := b"HSREC\\x00\\x01\\n"        (8 bytes; the trailing 1 is the format version)
    record  := kind:u8 length:u32le body[length]
    kind 1  := stream description, JSON (hipstride.streams), body = the retained payload
    kind 2  := frame (hipstride.frames), body = the MQTT payload, checksum included
    kind 3  := metadata, a JSON object (station, athlete, session, notes, ...)
    kind 4  := calibration, a JSON object: the station engine's calibration state (versioned)

A description always precedes the first frame of its stream. Files are append-only; a record
cut short by a crash is reported by :func:`read_recording` and everything before it is kept.
Unknown record kinds, and calibration records of an unknown version, are skipped and listed
in :attr:`Recording.problems`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hipstride.frames import Frame, FrameError, decode_frame
from hipstride.streams import DescriptionError, StreamDescription

MAGIC = b"HSREC\x00\x01\n"
RECORD = struct.Struct("<BI")
KIND_DESCRIPTION = 1
KIND_FRAME = 2
KIND_METADATA = 3
KIND_CALIBRATION = 4
#: Version of the calibration record's envelope (its ``state`` carries its own version).
CALIBRATION_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024 * 1024


class RecordingError(ValueError):
    """A recording file that cannot be read; the message says where and why."""


class RecordingWriter:
    """Appends descriptions, frames and metadata to a recording file."""

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = append and self.path.exists() and self.path.stat().st_size > 0
        self._file: BinaryIO = open(self.path, "ab" if exists else "wb")  # noqa: SIM115
        if exists:
            with open(self.path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    self._file.close()
                    raise RecordingError(f"{self.path}: not a HipStride recording; refusing to "
                                         "append to it")
        else:
            self._file.write(MAGIC)
        self._described: set[str] = set()

    def _record(self, kind: int, body: bytes) -> None:
        self._file.write(RECORD.pack(kind, len(body)) + body)

    def write_description(self, description: StreamDescription) -> None:
        self._record(KIND_DESCRIPTION, description.to_json())
        self._described.add(description.stream)

    def write_frame(self, payload: bytes, stream: str | None = None) -> None:
        """Append one encoded frame (the wire bytes)."""
        if stream is not None and stream not in self._described:
            raise RecordingError(f"frame for stream {stream!r} before its description")
        self._record(KIND_FRAME, bytes(payload))

    def write_metadata(self, metadata: dict[str, Any]) -> None:
        self._record(KIND_METADATA, json.dumps(metadata).encode())

    def write_calibration(self, state: dict[str, Any], *, station: str, data_ns: int | None,
                          made_ns: int | None = None, resumed: bool = False,
                          settings: dict[str, Any] | None = None) -> None:
        """Append the station engine's calibration state (``StreamingEngine.
        calibration_state()``) as it is at data time ``data_ns`` (Unix ns; frames recorded
        after this record are analysed with it). ``made_ns``: end of the standing period it
        was made from, when known; ``resumed``: the engine took it over from a previous
        pipeline run; ``settings``: the engine's ``StreamSettings`` as a dict."""
        body = {"version": CALIBRATION_VERSION, "station": station, "data_ns": data_ns,
                "made_ns": made_ns, "resumed": resumed, "settings": settings, "state": state}
        self._record(KIND_CALIBRATION, json.dumps(body).encode())

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Recording:
    descriptions: dict[str, StreamDescription] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    #: Calibration records (kind 4) in file order, each with ``index``: its frame count
    #: before it (frames ``[index:]`` were recorded after it).
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    #: Problems met while reading (a truncated tail, a corrupt frame); the rest was kept.
    problems: list[str] = field(default_factory=list)


def iter_records(file: BinaryIO, name: str = "recording") -> Iterator[tuple[int, bytes]]:
    """Yield (kind, body) records; raise RecordingError on a bad magic or a cut-off record."""
    if file.read(len(MAGIC)) != MAGIC:
        raise RecordingError(f"{name}: not a HipStride recording (bad magic bytes)")
    offset = len(MAGIC)
    while True:
        head = file.read(RECORD.size)
        if not head:
            return
        if len(head) < RECORD.size:
            raise RecordingError(f"{name}: record header cut short at byte {offset}")
        kind, length = RECORD.unpack(head)
        if length > MAX_RECORD_BYTES:
            raise RecordingError(f"{name}: record at byte {offset} claims {length} bytes")
        body = file.read(length)
        if len(body) < length:
            raise RecordingError(f"{name}: record at byte {offset} cut short "
                                 f"({len(body)} of {length} bytes)")
        yield kind, body
        offset += RECORD.size + length


def read_recording(path: str | Path) -> Recording:
    """Read a whole recording, keeping every good record and listing the bad ones."""
    path = Path(path)
    rec = Recording()
    with open(path, "rb") as f:
        try:
            for index, (kind, body) in enumerate(iter_records(f, str(path))):
                try:
                    if kind == KIND_DESCRIPTION:
                        d = StreamDescription.from_json(body)
                        rec.descriptions[d.stream] = d
                    elif kind == KIND_FRAME:
                        rec.frames.append(decode_frame(body))
                    elif kind == KIND_METADATA:
                        rec.metadata.append(json.loads(body))
                    elif kind == KIND_CALIBRATION:
                        calibration = _calibration(body)
                        calibration["index"] = len(rec.frames)
                        rec.calibrations.append(calibration)
                    else:
                        rec.problems.append(f"record {index}: unknown kind {kind}, skipped")
                except (FrameError, DescriptionError, RecordingError, ValueError) as err:
                    rec.problems.append(f"record {index}: {err}")
        except RecordingError as err:
            if not rec.descriptions and not rec.frames:
                raise
            rec.problems.append(str(err))
    return rec


def _calibration(body: bytes) -> dict[str, Any]:
    """A calibration record's JSON, checked; RecordingError saying why it is skipped."""
    record = json.loads(body)
    if not isinstance(record, dict) or not isinstance(record.get("state"), dict):
        raise RecordingError("calibration record without a 'state' object, skipped")
    version = record.get("version")
    if version != CALIBRATION_VERSION:
        raise RecordingError(f"calibration record of version {version!r}; this reader knows "
                             f"version {CALIBRATION_VERSION}: skipped (a newer HipStride "
                             "wrote it; upgrade to use it)")
    return record
