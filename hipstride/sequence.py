"""Sequence accounting per (station, stream): gaps, duplicates, restarts of the epoch.

Pure bookkeeping over the frame header, shared by ``hipstride tap``, the tests and the
pipeline, so that "nothing lost" is judged the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SequenceTracker:
    """Which sequence numbers of one stream have arrived (within the current epoch)."""

    epoch: int | None = None
    received: int = 0
    duplicates: int = 0
    epoch_changes: int = 0
    first: int | None = None
    _seen: set[int] = field(default_factory=set, repr=False)
    _low: int | None = None  # every seq below _low (and >= first) has been seen
    _high: int = -1

    def add(self, seq: int, epoch: int = 0) -> bool:
        """Record a frame; returns False for a duplicate."""
        if self.epoch is not None and epoch != self.epoch:
            self.epoch_changes += 1
            self._seen.clear()
            self._low, self._high, self.first = None, -1, None
        self.epoch = epoch
        if (self._low is not None and seq < self._low) or seq in self._seen:
            self.duplicates += 1
            return False
        self.received += 1
        self._seen.add(seq)
        if self._low is None:
            self._low = self.first = seq
        self._high = max(self._high, seq)
        while self._low in self._seen:  # compact the contiguous prefix
            self._seen.discard(self._low)
            self._low += 1
        return True

    @property
    def missing(self) -> int:
        """Sequence numbers between the lowest and highest seen that have not arrived."""
        if self._low is None:
            return 0
        return (self._high - self._low + 1) - len(self._seen)

    def missing_ranges(self, limit: int = 10) -> list[tuple[int, int]]:
        """Up to ``limit`` inclusive ranges of missing sequence numbers."""
        ranges: list[tuple[int, int]] = []
        if self._low is None:
            return ranges
        expected = self._low
        for seq in sorted(self._seen):
            if seq > expected:
                ranges.append((expected, seq - 1))
                if len(ranges) >= limit:
                    break
            expected = seq + 1
        return ranges
