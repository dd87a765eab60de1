"""The binary sensor frame: one block of samples from one stream (wire format v1).

Layout (little-endian), documented for outsiders in ``docs/protocol.md``::

    offset size field
    0      2    magic        b"HS"
    2      1    version      1
    3      1    dtype code   see DTYPE_CODES
    4      1    flags        0 (reserved, must be 0)
    5      1    name length  1..64 bytes of the stream name (ASCII)
    6      2    n_channels   1..256
    8      4    epoch        sequence epoch: changes only when the agent lost its sequence state
    12     8    seq          frame sequence number within (station, stream, epoch), from 0
    20     8    t0_ns        timestamp of the first sample, integer ns since the Unix epoch
    28     8    rate_hz      sample rate, float64, 0.01 Hz <= rate <= 100 kHz
    36     4    n_samples    1..65536
    40     name              stream name
    ..     payload           n_samples x n_channels values, sample-major (channels interleaved)
    end-4  4    crc32        zlib.crc32 of every preceding byte

Sample *i* of a frame is at ``t0_ns + i * 1e9 / rate_hz``. Decoding checks every length and
bound and raises a :class:`FrameError` subclass whose ``reason`` is a short stable code, so
services can count rejections by kind. The checks run in the order docs/protocol.md lists
("Validation"): size limit, magic (before any length: 4 bytes of garbage are
``inconsistent``), minimum length, version, header bounds, total length, CRC, stream name,
finite values; ``tests/hipstride/test_protocol_docs.py`` holds the two to each other.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"HS"
VERSION = 1
HEADER = struct.Struct("<2sBBBBHIQqdI")
CRC = struct.Struct("<I")
MAX_NAME_BYTES = 64
MAX_CHANNELS = 256
MAX_SAMPLES = 65536
MAX_RATE_HZ = 100_000.0
#: Slowest sample rate: below it a frame's duration (samples / rate) leaves float and int64
#: range (a rate of 1e-300 Hz would make a 1e309 ns frame).
MIN_RATE_HZ = 0.01
#: Largest frame the decoder accepts at all; anything longer is rejected before parsing.
MAX_FRAME_BYTES = HEADER.size + MAX_NAME_BYTES + 4 * 1024 * 1024 + CRC.size

DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype("<i2"),
    2: np.dtype("<i4"),
    3: np.dtype("<f4"),
    4: np.dtype("<f8"),
    5: np.dtype("<u2"),
    6: np.dtype("i1"),
    7: np.dtype("u1"),
}
_CODE_BY_DTYPE = {dt: code for code, dt in DTYPE_CODES.items()}
STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")  # \Z: "emg\n" is no stream name


class FrameError(ValueError):
    """A frame that cannot be decoded. ``reason`` is a stable code for counters."""

    reason = "malformed"


class TruncatedFrame(FrameError):
    reason = "truncated"


class OversizedFrame(FrameError):
    reason = "oversized"


class UnsupportedVersion(FrameError):
    reason = "unsupported_version"


class InconsistentFrame(FrameError):
    reason = "inconsistent"


class ChecksumMismatch(FrameError):
    reason = "checksum"


class NonFiniteSamples(FrameError):
    reason = "non_finite"


@dataclass(frozen=True, eq=False)
class Frame:
    """A decoded frame. ``samples`` has shape (n_samples, n_channels)."""

    stream: str
    seq: int
    t0_ns: int
    rate_hz: float
    samples: np.ndarray
    epoch: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_ns(self) -> int:
        return round(self.n_samples * 1e9 / self.rate_hz)

    def timestamps_ns(self) -> np.ndarray:
        """Per-sample timestamps (int64 ns) from the sample clock: t0 + i / rate."""
        offsets = np.round(np.arange(self.n_samples) * (1e9 / self.rate_hz)).astype(np.int64)
        return self.t0_ns + offsets

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            (self.stream, self.seq, self.t0_ns, self.rate_hz, self.epoch)
            == (other.stream, other.seq, other.t0_ns, other.rate_hz, other.epoch)
            and self.samples.dtype == other.samples.dtype
            and self.samples.shape == other.samples.shape
            and self.samples.tobytes() == other.samples.tobytes()
        )

    __hash__ = None  # type: ignore[assignment]


def encode_frame(
    stream: str,
    seq: int,
    t0_ns: int,
    rate_hz: float,
    samples: np.ndarray,
    *,
    epoch: int = 0,
) -> bytes:
    """Pack one block of samples (n_samples x n_channels) into a v1 frame."""
    if not STREAM_NAME.match(stream):
        raise ValueError(f"stream name {stream!r} must match {STREAM_NAME.pattern}")
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise ValueError(f"samples must be 2-D (n_samples, n_channels), got {samples.shape}")
    n_samples, n_channels = samples.shape
    dtype = samples.dtype.newbyteorder("<") if samples.dtype.itemsize > 1 else samples.dtype
    code = _CODE_BY_DTYPE.get(dtype)
    if code is None:
        raise ValueError(f"dtype {samples.dtype} is not in the frame format; use one of "
                         f"{sorted(str(d) for d in DTYPE_CODES.values())}")
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise ValueError(f"n_samples {n_samples} outside 1..{MAX_SAMPLES}")
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise ValueError(f"n_channels {n_channels} outside 1..{MAX_CHANNELS}")
    if not (MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ):
        raise ValueError(f"rate_hz {rate_hz} outside [{MIN_RATE_HZ}, {MAX_RATE_HZ}]")
    if not 0 <= seq < 2**64 or not 0 <= epoch < 2**32:
        raise ValueError("seq must fit in u64 and epoch in u32")
    name = stream.encode("ascii")
    header = HEADER.pack(MAGIC, VERSION, code, 0, len(name), n_channels, epoch, seq, int(t0_ns),
                         float(rate_hz), n_samples)
    body = header + name + np.ascontiguousarray(samples, dtype=dtype).tobytes()
    return body + CRC.pack(zlib.crc32(body))


def decode_frame(data: bytes | bytearray | memoryview, *, require_finite: bool = False) -> Frame:
    """Decode and validate one frame; raise a :class:`FrameError` naming what is wrong.

    With ``require_finite`` a frame holding NaN or infinite samples is rejected too.
    """
    data = bytes(data)
    size = len(data)
    if size > MAX_FRAME_BYTES:
        raise OversizedFrame(f"frame of {size} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    if size < 2 or data[:2] != MAGIC:
        raise InconsistentFrame("not a HipStride frame (magic bytes 'HS' missing)")
    if size < HEADER.size + CRC.size:
        raise TruncatedFrame(f"frame of {size} bytes is shorter than the "
                             f"{HEADER.size + CRC.size}-byte header and checksum")
    (_, version, code, flags, name_len, n_channels, epoch, seq, t0_ns, rate_hz,
     n_samples) = HEADER.unpack_from(data)
    if version != VERSION:
        raise UnsupportedVersion(f"frame version {version}; this decoder reads version {VERSION}")
    if flags != 0:
        raise InconsistentFrame(f"reserved flags byte is {flags}, expected 0")
    dtype = DTYPE_CODES.get(code)
    if dtype is None:
        raise InconsistentFrame(f"unknown dtype code {code}")
    if not 1 <= name_len <= MAX_NAME_BYTES:
        raise InconsistentFrame(f"stream name length {name_len} outside 1..{MAX_NAME_BYTES}")
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise InconsistentFrame(f"n_channels {n_channels} outside 1..{MAX_CHANNELS}")
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise InconsistentFrame(f"n_samples {n_samples} outside 1..{MAX_SAMPLES}")
    if not (MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ):  # also rejects NaN
        raise InconsistentFrame(f"rate_hz {rate_hz} outside [{MIN_RATE_HZ}, {MAX_RATE_HZ}]")
    payload_len = n_samples * n_channels * dtype.itemsize
    expected = HEADER.size + name_len + payload_len + CRC.size
    if size < expected:
        raise TruncatedFrame(f"frame is {size} bytes but its header announces {expected}")
    if size > expected:
        raise OversizedFrame(f"frame is {size} bytes but its header announces {expected}")
    (crc,) = CRC.unpack_from(data, size - CRC.size)
    if zlib.crc32(memoryview(data)[: size - CRC.size]) != crc:
        raise ChecksumMismatch("checksum mismatch: the frame was corrupted in transit or on disk")
    name_bytes = data[HEADER.size : HEADER.size + name_len]
    try:
        stream = name_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise InconsistentFrame("stream name is not ASCII") from None
    if not STREAM_NAME.match(stream):
        raise InconsistentFrame(f"stream name {stream!r} must match {STREAM_NAME.pattern}")
    start = HEADER.size + name_len
    samples = np.frombuffer(data, dtype=dtype, count=n_samples * n_channels, offset=start)
    samples = samples.reshape(n_samples, n_channels)
    if require_finite and samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise NonFiniteSamples(f"stream {stream!r} frame {seq} holds NaN or infinite samples")
    return Frame(stream=stream, seq=seq, t0_ns=t0_ns, rate_hz=rate_hz, samples=samples,
                 epoch=epoch)
