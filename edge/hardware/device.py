"""What every driver shares: errors, a reading, 16/24-bit decoding and a DRDY block loop."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .clock import Clock


class DeviceError(Exception):
    """A chip that does not answer as its datasheet says; the message says what was seen."""


class DeviceAbsent(DeviceError):
    """Nothing answered at the configured bus and address."""


class DeviceLost(DeviceError):
    """A chip that worked stopped answering (unplugged, power, a loose wire)."""


@dataclass(frozen=True, eq=False)
class Reading:
    """Raw integer samples (n, channels) and samples known lost just before them."""

    samples: np.ndarray
    dropped_before: int = 0


def decode_int16_be(data: bytes, n_channels: int) -> np.ndarray:
    """Big-endian int16 words -> int16 array (n, n_channels); a trailing partial row is an error."""
    if len(data) % (2 * n_channels):
        raise ValueError(f"{len(data)} bytes is not a whole number of {n_channels}-word rows")
    return np.frombuffer(data, dtype=">i2").astype(np.int16).reshape(-1, n_channels)


def decode_int24_be(data: bytes) -> np.ndarray:
    """Big-endian 24-bit two's-complement words -> int32 array (one value per 3 bytes)."""
    if len(data) % 3:
        raise ValueError(f"{len(data)} bytes is not a whole number of 24-bit words")
    b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    value = (b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2]
    return ((value ^ 0x800000) - 0x800000).astype(np.int32)


def encode_int24_be(values: np.ndarray) -> bytes:
    """int32 values in [-2**23, 2**23) -> big-endian 24-bit two's-complement bytes."""
    v = np.asarray(values, dtype=np.int64) & 0xFFFFFF
    out = np.empty((v.size, 3), dtype=np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF
    return out.tobytes()


def empty_reading(n_channels: int, dtype: str) -> Reading:
    return Reading(np.empty((0, n_channels), dtype=dtype), 0)


class SampleQueue:
    """Samples as they come off a chip, cut into contiguous blocks.

    A driver calls :meth:`emit` for each sample and :meth:`lose` for each sample it knows it
    missed; :meth:`take` hands out the longest contiguous run from the front (at most
    ``max_rows``), whose ``dropped_before`` is the loss just before it. Samples after a gap wait
    for the next block, because a block is contiguous by contract.
    """

    def __init__(self, n_channels: int, dtype: str) -> None:
        self.n_channels = n_channels
        self.dtype = dtype
        self._events: deque[tuple[int, np.ndarray]] = deque()
        self._lost = 0

    def __len__(self) -> int:
        return len(self._events)

    def lose(self, n: int) -> None:
        self._lost += n

    def emit(self, row: np.ndarray) -> None:
        self._events.append((self._lost, row))
        self._lost = 0

    def ready(self, max_rows: int) -> bool:
        """True once a block can be handed out: full, or ended by a gap."""
        if len(self._events) >= max_rows:
            return True
        return any(d for d, _ in list(self._events)[1:])

    def take(self, max_rows: int) -> Reading:
        rows: list[np.ndarray] = []
        dropped = 0
        while self._events and len(rows) < max_rows:
            d, row = self._events[0]
            if rows and d:
                break
            self._events.popleft()
            dropped += d
            rows.append(row)
        if not rows:
            return empty_reading(self.n_channels, self.dtype)
        return Reading(np.vstack(rows).astype(self.dtype), dropped)

    def clear(self) -> None:
        self._events.clear()
        self._lost = 0


def wait_until(clock: Clock, t: float) -> None:
    clock.sleep(t - clock.now())
