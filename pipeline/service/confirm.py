"""The store confirmation: per station, the retained ``…/stored`` message saying which
sequence numbers of each stream the store holds (docs/protocol.md, "Store confirmation").

The edge agent keeps a frame in its spool until a confirmation covers it, so the promise
"every sample reaches the store" does not depend on the broker keeping what it acknowledged.
What is confirmed is what :class:`.ingest.DedupIndex` records as *stored*: written to the
store or to the pipeline's on-disk store spool (both durable), or a batch the store refused
(kept in the state DB).

The pipeline tells :class:`Confirmations` which frames became durable (:meth:`stored`) and
which already-stored frames came in again (:meth:`seen_again`: the agent is waiting for a
confirmation the broker may have lost); :meth:`tick` publishes, per station, at most every
:data:`MARK_INTERVAL_S` while something changed, and every :data:`MARK_REFRESH_S` anyway, so
an agent can tell a pipeline that stores nothing new from one that is gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from hipstride import topics

from .ingest import DedupIndex, FrameKey

__all__ = ["MARK_INTERVAL_S", "MARK_REFRESH_S", "MARK_VERSION", "MAX_RANGES", "Confirmations",
           "mark_message"]

MARK_VERSION = 1
#: A station's confirmation at most this often while frames are being stored (s).
MARK_INTERVAL_S = 0.5
#: ... and at least this often while the pipeline knows the station (s), unchanged or not.
MARK_REFRESH_S = 2.0
#: Runs of stored sequence numbers per stream in one message (the lowest ones).
MAX_RANGES = 32

Publish = Callable[[str, bytes], None]


def mark_message(station: str, streams: dict[str, tuple[int, list[tuple[int, int]]]],
                 partition: str, time_ns: int) -> dict:
    """The ``…/stored`` JSON: ``streams`` maps a stream to (epoch, inclusive runs)."""
    body = {}
    for stream, (epoch, runs) in sorted(streams.items()):
        if runs:
            body[stream] = {"epoch": epoch, "seq": runs[0][1],
                            "ranges": [[a, b] for a, b in runs]}
    return {"version": MARK_VERSION, "station": station, "time_ns": time_ns,
            "partition": partition, "streams": body}


class Confirmations:
    """Which stations' confirmations are due, and publishing them (main thread only)."""

    def __init__(self, dedup: DedupIndex, publish: Publish, partition: str, *,
                 interval_s: float = MARK_INTERVAL_S, refresh_s: float = MARK_REFRESH_S
                 ) -> None:
        self.dedup = dedup
        self.publish = publish
        self.partition = partition
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        #: station -> stream -> the epoch last stored or seen (the agent's current one)
        self._epochs: dict[str, dict[str, int]] = {}
        self._changed: set[str] = set()
        self._last: dict[str, float] = {}  # station -> monotonic time of its last message
        self.published = 0

    def stored(self, keys: Iterable[FrameKey]) -> None:
        """These frames are durable now (the batch is written or spooled)."""
        for station, stream, epoch, _seq in keys:
            self._epochs.setdefault(station, {})[stream] = epoch
            self._changed.add(station)

    def seen_again(self, key: FrameKey) -> None:
        """A frame already stored came again: its sender may lack the confirmation."""
        self.stored((key,))

    def tick(self, now: float | None = None) -> None:
        """Publish every confirmation that is due."""
        now = time.monotonic() if now is None else now
        for station in self._epochs:
            last = self._last.get(station, -float("inf"))
            due = (station in self._changed and now - last >= self.interval_s) or \
                now - last >= self.refresh_s
            if due:
                self._publish(station, now)

    def _publish(self, station: str, now: float) -> None:
        streams = {stream: (epoch, self.dedup.stored_ranges((station, stream, epoch),
                                                            MAX_RANGES))
                   for stream, epoch in self._epochs[station].items()}
        body = mark_message(station, streams, self.partition, time.time_ns())
        self.publish(topics.stored(station), json.dumps(body).encode())
        self._changed.discard(station)
        self._last[station] = now
        self.published += 1
