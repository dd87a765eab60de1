"""The recording format (``.hsrec``): raw frames of a session, as they crossed the wire.

A recording is the exact bytes a station published, so a session can be re-analysed
sample for sample. Layout (documented in ``docs/formats.md``)::

    file    := MAGIC record*
    MAGIC   := b"HSREC\\x00\\x01\\n"        (8 bytes; the trailing 1 is the format version)
    record  := kind:u8 length:u32le body[length]
    kind 1  := stream description, JSON (hipstride.streams), body = the retained payload
    kind 2  := frame (hipstride.frames), body = the MQTT payload, checksum included
    kind 3  := metadata, a JSON object (station, athlete, session, notes, ...)

A description always precedes the first frame of its stream. Files are append-only; a record
cut short by a crash is reported by :func:`read_recording` and everything before it is kept.
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
                    else:
                        rec.problems.append(f"record {index}: unknown kind {kind}, skipped")
                except (FrameError, DescriptionError, json.JSONDecodeError) as err:
                    rec.problems.append(f"record {index}: {err}")
        except RecordingError as err:
            if not rec.descriptions and not rec.frames:
                raise
            rec.problems.append(str(err))
    return rec
