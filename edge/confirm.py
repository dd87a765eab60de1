"""The agent's view of the store confirmation (docs/protocol.md, "Store confirmation").

The pipeline publishes, retained on ``hipstride/v1/<station>/stored``, which sequence numbers
of each stream the store holds (inclusive runs). The agent keeps a frame in its spool until
the broker has acknowledged it *and* a confirmation of the agent's own epoch covers it. Pure
bookkeeping: the agent's loop feeds messages in and asks what is covered and whether a
pipeline is confirming at all.
"""

from __future__ import annotations

import json
import math
import time

__all__ = ["PIPELINE_SILENCE_S", "MarkError", "StoreMarks", "parse_mark"]

#: No confirmation for this long (s): "no pipeline confirming". The pipeline refreshes its
#: confirmation at least every 2 s while it knows a station (docs/protocol.md).
PIPELINE_SILENCE_S = 10.0
MAX_RANGES = 1024

Runs = list[tuple[int, int]]


class MarkError(ValueError):
    """A ``…/stored`` message that does not follow the protocol."""


def _runs(value: object, where: str) -> Runs:
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise MarkError(f"{where}: 'ranges' must be a list of at most {MAX_RANGES} [first, last]")
    runs = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
                or not 0 <= item[0] <= item[1]):
            raise MarkError(f"{where}: range {item!r} is not [first, last] with "
                            "0 <= first <= last")
        runs.append((item[0], item[1]))
    return runs


def parse_mark(payload: bytes, station: str, epoch: int
               ) -> tuple[dict[str, tuple[int, Runs]], int | None]:
    """(stream -> (contiguous ``seq``, runs held) of ``epoch``, the message's ``time_ns``);
    other epochs are left out."""
    try:
        body = json.loads(payload)
    except ValueError as err:
        raise MarkError(f"not JSON ({err})") from None
    if not isinstance(body, dict):
        raise MarkError("expected a JSON object")
    if body.get("version") != 1:
        raise MarkError(f"unsupported version {body.get('version')!r} (this agent knows 1)")
    if body.get("station") != station:
        raise MarkError(f"confirmation of station {body.get('station')!r}, not {station!r}")
    streams = body.get("streams")
    if not isinstance(streams, dict):
        raise MarkError("'streams' must be an object")
    out: dict[str, tuple[int, Runs]] = {}
    for stream, entry in streams.items():
        where = f"stream {stream!r}"
        if not isinstance(entry, dict):
            raise MarkError(f"{where}: expected an object")
        if entry.get("epoch") != epoch:
            continue
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise MarkError(f"{where}: 'seq' must be an integer")
        out[stream] = (seq, _runs(entry.get("ranges"), where))
    sent = body.get("time_ns")
    return out, sent if isinstance(sent, int) and not isinstance(sent, bool) else None


class StoreMarks:
    """The latest confirmation per stream, and when one was last heard (monotonic s)."""

    def __init__(self, station: str, epoch: int) -> None:
        self.station = station
        self.epoch = epoch
        self.runs: dict[str, Runs] = {}
        self.seq: dict[str, int] = {}
        self.heard_at: float | None = None
        self.messages = 0
        self.changed: set[str] = set()  # streams whose runs changed since the last look

    def take(self, payload: bytes, now: float, *, live: bool = True) -> None:
        """Apply one ``…/stored`` message; raises :class:`MarkError` (nothing applied).
        ``live``: it was just published (not the broker's retained copy), so a pipeline is
        confirming now — unless its ``time_ns`` is older than :data:`PIPELINE_SILENCE_S`
        (a copy the broker queued while the agent was away)."""
        marks, sent_ns = parse_mark(payload, self.station, self.epoch)
        if sent_ns is not None and time.time_ns() - sent_ns > PIPELINE_SILENCE_S * 1e9:
            live = False
        for stream, (seq, runs) in marks.items():
            if self.runs.get(stream) != runs:
                self.changed.add(stream)
            self.runs[stream], self.seq[stream] = runs, seq
        if live:
            self.heard_at = now
        self.messages += 1

    def confirming(self, now: float) -> bool:
        """Whether a pipeline has confirmed anything lately."""
        return self.heard_at is not None and now - self.heard_at < PIPELINE_SILENCE_S

    def age_s(self, now: float) -> float:
        return math.inf if self.heard_at is None else now - self.heard_at
