"""Cuts a stream's blocks into fixed-length, timestamped, sequence-numbered frames."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hipstride.edge.clock import SampleClock
from hipstride.edge.sources.base import Block
from hipstride.frames import encode_frame
from hipstride.streams import StreamDescription


@dataclass(frozen=True)
class PendingFrame:
    """An encoded frame waiting for the spool: everything needed to publish it later."""

    stream: str
    seq: int
    t0_ns: int
    n_samples: int
    payload: bytes


class Framer:
    """Accumulates one stream's samples and emits frames of ``frame_ms`` worth of samples.

    Timestamps come from the block when the source owns a clock, else from the
    :class:`~hipstride.edge.clock.SampleClock`. ``next_seq`` continues across agent restarts (the
    spool remembers it) so that a restart shows no false gap.
    """

    def __init__(self, description: StreamDescription, *, frame_ms: float, next_seq: int,
                 epoch: int, clock: SampleClock | None = None) -> None:
        self.description = description
        self.frame_samples = max(1, round(description.rate_hz * frame_ms / 1000))
        self.next_seq = next_seq
        self.epoch = epoch
        self.clock = clock or SampleClock(description.rate_hz)
        self._dtype = description.numpy_dtype
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._buffer_t0_ns: int | None = None
        self._index = 0  # sample index of the first buffered sample
        self.samples_in = 0
        self.samples_dropped_at_source = 0

    def push(self, block: Block, arrival_ns: int | None = None) -> list[PendingFrame]:
        """Add a block; ``arrival_ns`` is when a real-time source delivered it (None for a
        source not paced by a real clock, whose timestamps then follow the sample clock
        alone). Returns the frames completed by it."""
        samples = np.asarray(block.samples, dtype=self._dtype)
        if samples.ndim != 2 or samples.shape[1] != self.description.n_channels:
            raise ValueError(f"stream {self.description.stream!r}: block of shape {samples.shape}"
                             f", expected (n, {self.description.n_channels})")
        frames: list[PendingFrame] = []
        if block.dropped_before:
            # The source lost samples: close the current frame so no frame spans the hole.
            frames += self.flush()
            self.samples_dropped_at_source += block.dropped_before
            self._index += block.dropped_before
        if block.first_timestamp_ns is not None and not self._buffer:
            self._buffer_t0_ns = block.first_timestamp_ns
        elif block.first_timestamp_ns is None:
            end = self._index + self._buffered + len(samples)
            if arrival_ns is not None:
                self.clock.observe(end, arrival_ns)
            elif self.clock.t0_ns is None:
                # Not paced by a real clock (a simulator running faster than real time): anchor
                # once, then the sample clock alone spaces the samples.
                self.clock.observe(end, time.time_ns())
        if len(samples):
            self._buffer.append(samples)
            self._buffered += len(samples)
            self.samples_in += len(samples)
        while self._buffered >= self.frame_samples:
            frames.append(self._emit(self.frame_samples))
        return frames

    def flush(self) -> list[PendingFrame]:
        """Emit whatever is buffered as a last, shorter frame (at shutdown or before a gap)."""
        return [self._emit(self._buffered)] if self._buffered else []

    def _emit(self, n: int) -> PendingFrame:
        data = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        chunk, rest = data[:n], data[n:]
        self._buffer = [rest] if len(rest) else []
        self._buffered = len(rest)
        if self._buffer_t0_ns is not None:
            t0 = self._buffer_t0_ns
            self._buffer_t0_ns = t0 + round(n * 1e9 / self.description.rate_hz)
        else:
            t0 = self.clock.timestamp_ns(self._index)
        self._index += n
        seq = self.next_seq
        self.next_seq += 1
        payload = encode_frame(self.description.stream, seq, t0, self.description.rate_hz, chunk,
                               epoch=self.epoch)
        return PendingFrame(self.description.stream, seq, t0, n, payload)
