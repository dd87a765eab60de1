"""Guided phases in the service: the recent-sample ring, windows cut from it, result messages.

The operator's ``calibrate --phase … --action start|stop`` marks a window in wall-clock time
(docs/protocol.md, "Control"). Every station keeps the last :data:`RING_S` seconds of the
samples its engine uses (:class:`SampleRing`, in engine units, bounded), so when a phase ends
the window is there to cut; the pure functions of :mod:`hipstride.pipeline.engine.phases`
compute the result; :func:`results_message` is the retained ``…/results`` message.
A phase is analysed once the station's data reaches its end (or :data:`WAIT_S` after it).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hipstride.jsonsafe import jsonable

__all__ = ["RESULTS_VERSION", "RING_S", "WAIT_S", "PhaseJob", "SampleRing", "results_message"]

RESULTS_VERSION = 1
#: Seconds of samples kept per stream (6 EMG channels at 2 kHz ≈ 8.6 MB, float32).
RING_S = 180.0
#: Longest wait (s) after a phase's end for its last samples to arrive.
WAIT_S = 3.0
#: EMG taken before a prone window (s): the onset baseline of the first lift.
PRONE_PAD_S = 1.0


@dataclass
class PhaseJob:
    """A phase that ended and awaits its analysis (``due``: monotonic deadline)."""

    station: str
    session: str
    athlete: str | None
    phase: str
    start_ns: int
    end_ns: int
    muscle: str | None = None
    side: str | None = None
    due: float = math.inf

    @classmethod
    def from_record(cls, station: str, record: dict[str, Any], due: float) -> PhaseJob:
        return cls(station, record["session"], record.get("athlete"), record["phase"],
                   int(record["start_ns"]), int(record["end_ns"]), record.get("muscle"),
                   record.get("side"), due)


@dataclass
class _Block:
    t0_ns: int
    rate_hz: float
    values: np.ndarray  # (n, channels) float32

    @property
    def end_ns(self) -> int:
        return self.t0_ns + round(len(self.values) * 1e9 / self.rate_hz)


@dataclass
class SampleRing:
    """The last ``keep_s`` seconds of each stream's samples (by sample time), in blocks as
    they arrived. Bounded: blocks older than the newest sample minus ``keep_s`` are dropped,
    and at most ``max_blocks`` blocks are kept per stream."""

    keep_s: float = RING_S
    max_blocks: int = 20_000
    _blocks: dict[str, deque[_Block]] = field(default_factory=dict)

    def add(self, stream: str, t0_ns: int, rate_hz: float, values: np.ndarray) -> None:
        blocks = self._blocks.setdefault(stream, deque())
        blocks.append(_Block(int(t0_ns), float(rate_hz), np.asarray(values, np.float32)))
        newest = max(b.end_ns for b in (blocks[-1], blocks[0]))
        limit = newest - round(self.keep_s * 1e9)
        while blocks and (blocks[0].end_ns < limit or len(blocks) > self.max_blocks):
            blocks.popleft()

    def streams(self) -> list[str]:
        return sorted(self._blocks)

    def end_ns(self, stream: str) -> int | None:
        """Time one sample past the latest sample of ``stream``."""
        blocks = self._blocks.get(stream)
        return max(b.end_ns for b in blocks) if blocks else None

    def blocks_since(self, stream: str, t_ns: int) -> list[tuple[int, np.ndarray]]:
        """Blocks (in arrival order) cut to their samples at or after ``t_ns``: (t0_ns, values)."""
        out = []
        for b in self._blocks.get(stream, ()):
            if b.end_ns <= t_ns:
                continue
            skip = max(0, math.ceil((t_ns - b.t0_ns) * b.rate_hz / 1e9 - 1e-6))
            if skip < len(b.values):
                out.append((b.t0_ns + round(skip * 1e9 / b.rate_hz), b.values[skip:]))
        return out

    def window(self, stream: str, start_ns: int, end_ns: int
               ) -> tuple[int, float, np.ndarray, int] | None:
        """Samples of ``[start_ns, end_ns)`` on one uniform grid: (t0_ns of the first, rate,
        values (n, channels) float64, samples missing — filled by linear interpolation).
        None when the ring has none of that time."""
        blocks = [b for b in self._blocks.get(stream, ()) if b.end_ns > start_ns
                  and b.t0_ns < end_ns]
        if not blocks:
            return None
        rate = blocks[-1].rate_hz
        first = min(b.t0_ns for b in blocks)
        # grid anchored on the blocks' own sample times (no resampling of whole blocks)
        k0 = max(0, math.ceil((start_ns - first) * rate / 1e9 - 1e-6))
        t0 = first + round(k0 * 1e9 / rate)
        n = max(0, math.ceil((min(end_ns, max(b.end_ns for b in blocks)) - t0) * rate / 1e9
                             - 1e-6))
        width = blocks[-1].values.shape[1]
        grid = np.full((n, width), np.nan)
        for b in blocks:
            if b.rate_hz != rate or b.values.shape[1] != width:
                continue
            i = round((b.t0_ns - t0) * rate / 1e9)
            a, z = max(0, i), min(n, i + len(b.values))
            if z > a:
                grid[a:z] = b.values[a - i:z - i]
        ok = np.isfinite(grid).all(axis=1)
        missing = int(n - ok.sum())
        if not ok.any():
            return None
        if missing:
            idx = np.arange(n)
            for j in range(width):
                grid[:, j] = np.interp(idx, idx[ok], grid[ok, j])
        return t0, rate, grid, missing


def results_message(job: PhaseJob, ok: bool, problems: list[str], result: dict[str, Any],
                    now_ns: int) -> dict[str, Any]:
    """The retained ``…/results`` message of a phase (docs/protocol.md, "Results")."""
    body: dict[str, Any] = {"version": RESULTS_VERSION, "station": job.station,
                            "session": job.session, "athlete": job.athlete,
                            "phase": job.phase}
    if job.muscle:
        body["muscle"] = job.muscle
    if job.side:
        body["side"] = job.side
    body.update(ok=bool(ok), problems=list(problems), result=jsonable(result),
                start_ns=job.start_ns, end_ns=job.end_ns, time_ns=now_ns)
    return body
