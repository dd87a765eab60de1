"""The store confirmation: per station, the retained ``…/stored`` message saying which
sequence numbers of each stream the store holds (docs/protocol.md, "Store confirmation").

The edge agent keeps a frame in its spool until a confirmation covers it, so the promise
"every sample reaches the store" does not depend on the broker keeping what it acknowledged.
What is confirmed is what :class:`.ingest.DedupIndex` records as *stored*: written to the
store or to the pipeline's on-disk store spool (both durable), or a batch the store refused
(kept in the state DB).

The pipeline tells :class:`Confirmations` which frames became durable (:meth:`stored`),
which already-stored frames came in again (:meth:`seen_again`: the agent is waiting for a
confirmation the broker may have lost) and which it refused (:meth:`refused`: a frame refused
for its content is *settled* — counted on ``…/ingest`` — and confirmed too, else the agent
would keep and resend it for ever; one a resend can cure, damaged in transit or of a stream
not yet described, is not); :meth:`tick` publishes, per station, at most every
:data:`MARK_INTERVAL_S` while something changed, and every :data:`MARK_REFRESH_S` anyway while
the station sends (:data:`MARK_ACTIVE_S`), so an agent can tell a pipeline that stores nothing
new from one that is gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from hipstride import topics
from hipstride.frames import FrameError, decode_frame

from .ingest import DedupIndex, FrameKey

__all__ = ["MARK_INTERVAL_S", "MARK_REFRESH_S", "MARK_VERSION", "MAX_RANGES", "Confirmations",
           "mark_message"]

MARK_VERSION = 1
#: A station's confirmation at most this often while frames are being stored (s).
MARK_INTERVAL_S = 0.5
#: ... and at least this often while the station sends (s), unchanged or not.
MARK_REFRESH_S = 2.0
#: A station counts as sending for this long after its last frame (s): no refreshes queue up
#: in the broker for an agent that is gone.
MARK_ACTIVE_S = 60.0
#: Runs of stored sequence numbers per stream in one message (the lowest ones).
MAX_RANGES = 32

#: Refusals a resend can cure: not confirmed, so the agent sends the frame again.
CURABLE = frozenset({"truncated", "oversized", "unsupported_version", "inconsistent",
                     "checksum", "malformed", "no_description", "bad_topic"})
#: Refused frames remembered per stream and epoch (beyond: not confirmed, resent).
MAX_REFUSED = 10_000

Publish = Callable[[str, bytes], None]


def merge_runs(runs: Iterable[tuple[int, int]], singles: Iterable[int], limit: int
               ) -> list[tuple[int, int]]:
    """Inclusive runs and single numbers as at most ``limit`` merged runs, lowest first."""
    out: list[tuple[int, int]] = []
    for a, b in sorted([*runs, *((x, x) for x in singles)]):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif len(out) < limit:
            out.append((a, b))
        else:
            break
    return out


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
        self._refused: dict[tuple[str, str, int], set[int]] = {}
        self._last: dict[str, float] = {}  # station -> monotonic time of its last message
        self._active: dict[str, float] = {}  # station -> monotonic time of its last frame
        self.active_s = MARK_ACTIVE_S
        self.published = 0

    def stored(self, keys: Iterable[FrameKey]) -> None:
        """These frames are durable now (the batch is written or spooled)."""
        now = time.monotonic()
        for station, stream, epoch, _seq in keys:
            self._epochs.setdefault(station, {})[stream] = epoch
            self._changed.add(station)
            self._active[station] = now

    def seen_again(self, key: FrameKey) -> None:
        """A frame already stored came again: its sender may lack the confirmation."""
        self.stored((key,))

    def refused(self, station: str, reason: str, topic: str, payload: bytes) -> None:
        """The pipeline refused a message (``reason``, docs/pipeline.md): if it is a frame
        refused for its content, confirm it as settled."""
        if reason in CURABLE:
            return
        try:
            parsed = topics.parse(topic)
            frame = decode_frame(payload)
        except (ValueError, FrameError):
            return
        if parsed.kind != topics.FRAMES or parsed.station != station:
            return
        seqs = self._refused.setdefault((station, parsed.stream, frame.epoch), set())
        if len(seqs) < MAX_REFUSED:
            seqs.add(frame.seq)
            self._epochs.setdefault(station, {})[parsed.stream] = frame.epoch
            self._changed.add(station)
            self._active[station] = time.monotonic()

    def tick(self, now: float | None = None) -> None:
        """Publish every confirmation that is due."""
        now = time.monotonic() if now is None else now
        for station in self._epochs:
            last = self._last.get(station, -float("inf"))
            active = time.monotonic() - self._active.get(station, -float("inf")) < self.active_s
            due = (station in self._changed and now - last >= self.interval_s) or \
                (active and now - last >= self.refresh_s)
            if due:
                self._publish(station, now)

    def _publish(self, station: str, now: float) -> None:
        streams = {stream: (epoch, merge_runs(
                       self.dedup.stored_ranges((station, stream, epoch), MAX_RANGES),
                       self._refused.get((station, stream, epoch), ()), MAX_RANGES))
                   for stream, epoch in self._epochs[station].items()}
        body = mark_message(station, streams, self.partition, time.time_ns())
        self.publish(topics.stored(station), json.dumps(body).encode())
        self._changed.discard(station)
        self._last[station] = now
        self.published += 1
