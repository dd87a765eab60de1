"""Clocks for drivers and emulations: real time, a virtual clock for tests, sped-up time.

Drivers wait through a clock, never through :func:`time.sleep` directly, so the same driver code
runs against an emulated chip on a :class:`VirtualClock` (deterministic, instant) or a
:class:`ScaledClock` (real threads, time running faster).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Time that only moves when someone sleeps or calls :meth:`advance` (one thread at a time)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds


class ScaledClock:
    """Real time running ``speed`` times faster: thread-safe, for multi-device source tests."""

    def __init__(self, speed: float = 10.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)
