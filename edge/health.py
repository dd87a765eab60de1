"""Sensor health: flat, saturated, non-finite and silent channels, named per channel.

:func:`channel_problems` is pure — a window of samples in, problems out — so the pipeline
can apply the same checks. :class:`StreamHealth` keeps the last second of a stream and its
counters for the agent's status message.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from hipstride.streams import StreamDescription

#: A channel whose peak-to-peak over the window is below this fraction of its range is flat.
FLAT_FRACTION = 1e-5
#: A channel with at least this fraction of samples within 0.5 % of a rail is saturated.
SATURATED_FRACTION = 0.01
#: A stream with no samples for this long is silent.
SILENT_AFTER_S = 1.0


@dataclass(frozen=True)
class Problem:
    stream: str
    channel: str | None
    problem: str  # "flat" | "saturated" | "non_finite" | "silent" | "source"
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def channel_problems(description: StreamDescription, samples: np.ndarray) -> list[Problem]:
    """Flat, saturated or non-finite channels in a window of raw samples (n, channels)."""
    problems: list[Problem] = []
    if len(samples) < 2:
        return problems
    physical = description.to_physical(samples)
    for i, channel in enumerate(description.channels):
        values = physical[:, i]
        where = f"{description.stream}/{channel.name}"
        finite = np.isfinite(values)
        if not finite.all():
            problems.append(Problem(description.stream, channel.name, "non_finite",
                                    f"{where}: {int((~finite).sum())} NaN/inf samples — "
                                    "check the sensor driver"))
            values = values[finite]
            if len(values) < 2:
                continue
        low, high = channel.range if channel.range else (values.min(), values.max())
        span = max(high - low, 1e-12)
        if np.ptp(values) <= FLAT_FRACTION * span:
            hint = ("electrode off or lead broken? check the electrode and its cable"
                    if description.kind == "emg" else "sensor frozen? check the cable")
            problems.append(Problem(description.stream, channel.name, "flat",
                                    f"{where} is flat at {values[0]:.4g} {channel.unit}: {hint}"))
            continue
        if channel.range:
            margin = 0.005 * span
            railed = np.mean((values <= low + margin) | (values >= high - margin))
            if railed >= SATURATED_FRACTION:
                hint = ("poor electrode contact or gain too high"
                        if description.kind == "emg" else "range too small for the movement")
                problems.append(Problem(description.stream, channel.name, "saturated",
                                        f"{where} is saturated {railed:.0%} of the time: {hint}"))
    return problems


@dataclass
class StreamCounters:
    samples: int = 0
    frames: int = 0
    frames_acked: int = 0
    samples_dropped_at_source: int = 0


class StreamHealth:
    """The last ``window_s`` of one stream plus rate measurement."""

    def __init__(self, description: StreamDescription, window_s: float = 1.0) -> None:
        self.description = description
        self.window_samples = max(2, int(description.rate_hz * window_s))
        self._blocks: deque[np.ndarray] = deque()
        self._held = 0
        self._arrivals: deque[tuple[float, int]] = deque()  # (monotonic s, samples)
        self.last_arrival_s: float | None = None

    def add(self, samples: np.ndarray, now_s: float) -> None:
        if not len(samples):
            return
        self._blocks.append(samples)
        self._held += len(samples)
        while self._held - len(self._blocks[0]) >= self.window_samples:
            self._held -= len(self._blocks.popleft())
        self._arrivals.append((now_s, len(samples)))
        while self._arrivals and now_s - self._arrivals[0][0] > 5.0:
            self._arrivals.popleft()
        self.last_arrival_s = now_s

    def measured_rate_hz(self, now_s: float) -> float:
        """Samples per second over the last few seconds (0 when silent)."""
        recent = [(t, n) for t, n in self._arrivals if now_s - t <= 5.0]
        if len(recent) < 2:
            return 0.0
        span = now_s - recent[0][0]
        return sum(n for _, n in recent[1:]) / span if span > 0 else 0.0

    def problems(self, now_s: float) -> list[Problem]:
        stream = self.description.stream
        if self.last_arrival_s is None or now_s - self.last_arrival_s > SILENT_AFTER_S:
            since = ("no samples yet" if self.last_arrival_s is None
                     else f"no samples for {now_s - self.last_arrival_s:.1f} s")
            return [Problem(stream, None, "silent",
                            f"{stream} is silent ({since}): sensor unplugged or asleep?")]
        window = np.concatenate(self._blocks)[-self.window_samples:]
        return channel_problems(self.description, window)
