"""The sample clock: sample *i* of a stream is at t0 + i / fs, with t0 kept near the wall clock.

An ADC's crystal is the best clock for spacing samples, but it drifts against the (chrony- or
PTP-disciplined) wall clock by tens of ppm. The clock watches when blocks arrive: a block's
last sample cannot be later than its arrival, so the smallest (arrival − nominal time) over a
window is the transport latency plus accumulated drift. A straight line through those minima
gives the drift in ppm; when the offset grows past ``max_offset_ms`` t0 is re-anchored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass
class ClockEstimate:
    offset_ms: float
    drift_ppm: float
    reanchors: int


class SampleClock:
    """Maps a stream's sample index to Unix-epoch nanoseconds.

    Parameters
    ----------
    rate_hz
        Nominal sample rate.
    max_offset_ms
        Re-anchor t0 when the clock has drifted this far from the wall clock.
    window_s
        Length of the windows whose minimum latency feeds the drift estimate.
    """

    def __init__(self, rate_hz: float, *, max_offset_ms: float = 5.0, window_s: float = 5.0):
        self.rate_hz = rate_hz
        self.max_offset_ns = max_offset_ms * 1e6
        self.window_ns = window_s * NS_PER_S
        self.t0_ns: int | None = None
        self._anchor_index = 0  # sample index at which t0_ns holds
        self._window_start_ns: int | None = None
        self._window_min_ns = float("inf")
        self._minima: deque[tuple[int, float]] = deque(maxlen=24)  # (wall ns, min residual ns)
        self._baseline_ns: float | None = None
        self.reanchors = 0

    def timestamp_ns(self, index: int) -> int:
        """Timestamp of sample ``index`` (0 = the first sample the stream produced)."""
        if self.t0_ns is None:
            raise RuntimeError("clock not started: call observe() with the first block")
        return self.t0_ns + round((index - self._anchor_index) * NS_PER_S / self.rate_hz)

    def observe(self, end_index: int, arrival_ns: int) -> None:
        """Record that samples up to ``end_index`` (exclusive) were in hand at ``arrival_ns``."""
        if self.t0_ns is None:
            self.t0_ns = arrival_ns - round(end_index * NS_PER_S / self.rate_hz)
            self._window_start_ns = arrival_ns
        residual = arrival_ns - self.timestamp_ns(end_index)
        self._window_min_ns = min(self._window_min_ns, residual)
        if arrival_ns - self._window_start_ns < self.window_ns:
            return
        self._minima.append((arrival_ns, self._window_min_ns))
        if self._baseline_ns is None:
            self._baseline_ns = self._window_min_ns  # the transport latency, not drift
        drift = self._window_min_ns - self._baseline_ns
        if abs(drift) > self.max_offset_ns:
            # Shift the anchor to "now" so earlier timestamps are never rewritten.
            self._anchor_index, self.t0_ns = end_index, self.timestamp_ns(end_index) + round(drift)
            self._minima = deque(((t, m - drift) for t, m in self._minima), maxlen=24)
            self.reanchors += 1
        self._window_start_ns, self._window_min_ns = arrival_ns, float("inf")

    def estimate(self) -> ClockEstimate:
        offset = 0.0
        drift_ppm = 0.0
        if self._minima and self._baseline_ns is not None:
            offset = (self._minima[-1][1] - self._baseline_ns) / 1e6
        if len(self._minima) >= 3:
            t = [m[0] for m in self._minima]
            r = [m[1] for m in self._minima]
            t_mean, r_mean = sum(t) / len(t), sum(r) / len(r)
            var = sum((x - t_mean) ** 2 for x in t)
            if var > 0:
                slope = sum((x - t_mean) * (y - r_mean) for x, y in zip(t, r, strict=True)) / var
                drift_ppm = slope * 1e6
        return ClockEstimate(offset_ms=offset, drift_ppm=drift_ppm, reanchors=self.reanchors)
