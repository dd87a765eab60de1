"""What the pipeline accepts: frame validation, de-duplication, sequence gaps, durable state.

Pure bookkeeping plus one SQLite file (:class:`StateDB`, in the state directory) — no MQTT.

* :func:`validate_frame` decodes a frame and checks it against its stream's description; a
  frame that fails raises :class:`Rejected` with a stable ``reason`` (:data:`REASONS`).
* :class:`DedupIndex` knows, per (station, stream, epoch), which sequence numbers are *stored*
  (written to the store or to the spool: durable) and which are *pending* (accepted, in a batch
  not yet written). Only stored ones are persisted, in the same transaction as the spool, so a
  crash can cause a frame to be processed again (the store's writes are idempotent), never to
  be skipped.
* :class:`StateDB` holds the dedup index, the last description of every stream (a restarted
  pipeline gets queued frames before the retained descriptions), the store spool (batches of
  points kept while the store is down, replayed oldest first) and batches the store refused.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hipstride.frames import Frame, FrameError, decode_frame
from hipstride.pipeline.store.base import MEASUREMENTS, Point, PointSeries, count_points
from hipstride.sequence import SequenceTracker
from hipstride.streams import DescriptionError, StreamDescription

__all__ = [
    "REASONS", "DedupIndex", "FrameKey", "GapTracker", "RejectCounter", "Rejected", "SeenSet",
    "StateDB", "points_from_bytes", "points_to_bytes", "validate_description",
    "validate_frame",
]

#: Every rejection reason. The decoder's own (truncated … non_finite, see docs/protocol.md),
#: then the checks against the topic and the stream description.
REASONS = (
    "truncated", "oversized", "unsupported_version", "inconsistent", "checksum", "non_finite",
    "malformed",
    "stream_mismatch",   # the frame names another stream than its topic
    "no_description",    # no (valid) description of this stream has been seen: unknown stream
    "channel_count",     # channels differ from the description's
    "dtype",             # sample type differs from the description's
    "rate",              # sample rate differs from the description's
    "bad_description",   # a stream description that does not follow the contract
    "bad_topic",         # a topic outside the v1 layout (counted under station "_invalid")
    "seq_range",         # seq not below 2**63 - 1 (the stores' signed 64-bit integers)
    "time_window",       # t0 outside [clock - limits.max_past_s, clock + limits.max_future_s]
    "too_many_streams",  # a description beyond limits.max_streams for the station
    "too_many_stations", # a station beyond limits.max_stations (counted under "_overflow")
    "quarantined",       # handling it failed unexpectedly: kept in the state DB's quarantine
    "description_churn", # a description changed again within limits.description_interval_s
)

#: (station, stream, epoch, seq): what identifies a frame (docs/protocol.md).
FrameKey = tuple[str, str, int, int]
StreamKey = tuple[str, str, int]


class Rejected(Exception):
    """Input refused; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def validate_frame(payload: bytes, topic_stream: str,
                   description: StreamDescription | None) -> Frame:
    """Decode ``payload`` (published on ``…/frames/<topic_stream>``) and check it against the
    stream's description; raise :class:`Rejected` naming what is wrong."""
    try:
        frame = decode_frame(payload, require_finite=True)
    except FrameError as err:
        raise Rejected(err.reason, str(err)) from None
    if frame.stream != topic_stream:
        raise Rejected("stream_mismatch", f"frame of stream {frame.stream!r} published on the "
                                          f"topic of stream {topic_stream!r}")
    if description is None:
        raise Rejected("no_description", f"stream {topic_stream!r} has no description yet: "
                                         "the station must publish it before frames")
    if frame.n_channels != description.n_channels:
        raise Rejected("channel_count", f"stream {frame.stream!r} frame {frame.seq} has "
                                        f"{frame.n_channels} channels; the description "
                                        f"declares {description.n_channels}")
    if frame.samples.dtype != description.numpy_dtype.newbyteorder("<") and \
            frame.samples.dtype != description.numpy_dtype:
        raise Rejected("dtype", f"stream {frame.stream!r} frame {frame.seq} holds "
                                f"{frame.samples.dtype}; the description declares "
                                f"{description.dtype}")
    if not math.isclose(frame.rate_hz, description.rate_hz, rel_tol=1e-9):
        raise Rejected("rate", f"stream {frame.stream!r} frame {frame.seq} at "
                               f"{frame.rate_hz} Hz; the description declares "
                               f"{description.rate_hz} Hz")
    return frame


def validate_description(payload: bytes, topic_stream: str) -> StreamDescription:
    """Parse a retained description; raise :class:`Rejected` (``bad_description``)."""
    try:
        description = StreamDescription.from_json(payload)
    except DescriptionError as err:
        raise Rejected("bad_description", str(err)) from None
    if description.stream != topic_stream:
        raise Rejected("bad_description", f"description of {description.stream!r} on the "
                                          f"topic of stream {topic_stream!r}")
    return description


class RejectCounter(Counter):
    """Rejections counted per (station, reason)."""

    def add(self, station: str, reason: str) -> None:
        self[(station, reason)] += 1

    def for_station(self, station: str) -> dict[str, int]:
        return {r: n for (s, r), n in self.items() if s == station}


# --- de-duplication -------------------------------------------------------------------------
@dataclass
class SeenSet:
    """Sequence numbers seen in one (station, stream, epoch): ``[first, low)`` plus ``extra``
    (out-of-order arrivals outside that run; small in practice)."""

    first: int | None = None
    low: int = 0
    extra: set[int] = field(default_factory=set)

    def __contains__(self, seq: int) -> bool:
        return (self.first is not None and self.first <= seq < self.low) or seq in self.extra

    def add(self, seq: int) -> None:
        if seq in self:
            return
        if self.first is None:
            self.first, self.low = seq, seq + 1
        elif seq == self.low:
            self.low += 1
        elif seq == self.first - 1:
            self.first -= 1
        else:
            self.extra.add(seq)
        while self.low in self.extra:
            self.extra.discard(self.low)
            self.low += 1
        while self.first - 1 in self.extra:
            self.extra.discard(self.first - 1)
            self.first -= 1

    def ranges(self, limit: int) -> list[tuple[int, int]]:
        """The sequence numbers held, as at most ``limit`` inclusive ``(first, last)`` runs,
        lowest first (the store confirmation, docs/protocol.md); read-only."""
        if self.first is None:
            return []
        runs = [(self.first, self.low - 1)]
        for seq in sorted(self.extra):
            if seq == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], seq)
            elif len(runs) < limit:
                runs.append((seq, seq))
            else:
                break
        return sorted(runs)


class DedupIndex:
    """Stored and pending frames, by (station, stream, epoch, seq).

    ``check`` → ``"new"``, ``"pending"`` (accepted, batch not yet written) or ``"stored"``;
    ``reserve`` marks a new frame pending; ``commit`` moves pending frames to stored and
    returns the changed :class:`SeenSet` entries for :meth:`StateDB.commit` to persist.
    """

    def __init__(self, stored: dict[StreamKey, SeenSet] | None = None) -> None:
        self._stored: dict[StreamKey, SeenSet] = stored or {}
        self._pending: set[FrameKey] = set()
        self._epochs: dict[tuple[str, str], list[int]] = {}  # (station, stream) -> epochs
        for station, stream, epoch in sorted(self._stored, key=lambda k: (k[0], k[1])):
            self._epochs.setdefault((station, stream), []).append(epoch)

    def limit_epochs(self, key: FrameKey, keep: int) -> list[StreamKey]:
        """Note the frame's epoch; beyond ``keep`` epochs of its stream forget the oldest
        (returned, for :meth:`StateDB.forget_seen`), so an epoch flood stays bounded."""
        epochs = self._epochs.setdefault(key[:2], [])
        if key[2] in epochs:
            return []
        epochs.append(key[2])
        forgotten = []
        while len(epochs) > keep:
            old = (key[0], key[1], epochs.pop(0))
            self._stored.pop(old, None)
            forgotten.append(old)
        return forgotten

    def check(self, key: FrameKey) -> str:
        if key in self._pending:
            return "pending"
        seen = self._stored.get(key[:3])
        return "stored" if seen is not None and key[3] in seen else "new"

    def reserve(self, key: FrameKey) -> None:
        self._pending.add(key)

    def commit(self, keys: Iterable[FrameKey]) -> dict[StreamKey, SeenSet]:
        keys = list(keys)
        changed = self.stage(keys)
        self.release(keys)
        return changed

    def stage(self, keys: Iterable[FrameKey]) -> dict[StreamKey, SeenSet]:
        """For a batch handed to the store writer: the :class:`SeenSet` entries to persist
        with it (copies, safe to use in another thread). The keys stay *pending* until
        :meth:`release`, so a redelivered copy waits for its original's write."""
        changed: dict[StreamKey, SeenSet] = {}
        for key in keys:
            epochs = self._epochs.get(key[:2])
            if epochs is not None and key[2] not in epochs:
                continue  # an epoch forgotten meanwhile (limit_epochs): not remembered again
            seen = self._stored.setdefault(key[:3], SeenSet())
            seen.add(key[3])
            changed[key[:3]] = seen
        return {k: SeenSet(v.first, v.low, set(v.extra)) for k, v in changed.items()}

    def release(self, keys: Iterable[FrameKey]) -> None:
        """The batch holding ``keys`` is stored or spooled: they are *stored* now."""
        for key in keys:
            self._pending.discard(key)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def stored_ranges(self, key: StreamKey, limit: int = 32) -> list[tuple[int, int]]:
        """Inclusive runs of sequence numbers of ``(station, stream, epoch)`` that are stored
        (in the store or the spool: durable), lowest first; read-only."""
        seen = self._stored.get(key)
        return [] if seen is None else seen.ranges(limit)


class GapTracker:
    """Sequence gaps per (station, stream), judged by :class:`hipstride.sequence`."""

    def __init__(self) -> None:
        self.trackers: dict[tuple[str, str], SequenceTracker] = {}

    def add(self, station: str, stream: str, seq: int, epoch: int) -> None:
        self.trackers.setdefault((station, stream), SequenceTracker()).add(seq, epoch)

    def missing(self) -> dict[tuple[str, str], int]:
        return {k: t.missing for k, t in self.trackers.items()}

    def station_missing(self, station: str) -> dict[str, list[tuple[int, int]]]:
        """Missing ranges per stream of one station (for its status report)."""
        return {stream: t.missing_ranges() for (s, stream), t in self.trackers.items()
                if s == station and t.missing}


# --- the spool's point encoding ---------------------------------------------------------------
_MEASUREMENT = {m.name: m for m in MEASUREMENTS}


def points_to_bytes(points: Sequence[Point | PointSeries]) -> bytes:
    """Points as compressed JSON (field types survive: int, float, bool, str); a series as
    one entry with lists of times and values."""
    body = [[p.measurement.name, p.time_ns.tolist(), dict(p.tags),
             {p.field: p.values.tolist()}] if isinstance(p, PointSeries) else
            [p.measurement.name, p.time_ns, dict(p.tags), dict(p.fields)] for p in points]
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)


def points_from_bytes(data: bytes) -> list[Point | PointSeries]:
    out: list[Point | PointSeries] = []
    for m, t, tags, fields in json.loads(zlib.decompress(data)):
        if isinstance(t, list):
            (name, values), = fields.items()
            out.append(PointSeries(_MEASUREMENT[m], tags, name, np.asarray(t, dtype=np.int64),
                                   np.asarray(values, dtype=float)))
        else:
            out.append(Point(_MEASUREMENT[m], t, tags, fields))
    return out


# --- durable state ------------------------------------------------------------------------------
class StateDB:
    """The pipeline's own state in ``<state_dir>/pipeline-<I>-of-<N>.sqlite`` (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the metrics thread reads spool depth
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (station TEXT, stream TEXT, "
                             "epoch INTEGER, first INTEGER, low INTEGER, extra TEXT, "
                             "PRIMARY KEY (station, stream, epoch))")
            self._db.execute("CREATE TABLE IF NOT EXISTS descriptions (station TEXT, "
                             "stream TEXT, body BLOB, PRIMARY KEY (station, stream))")
            self._db.execute("CREATE TABLE IF NOT EXISTS sessions (station TEXT PRIMARY KEY, "
                             "body TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS calibration (station TEXT PRIMARY "
                             "KEY, body TEXT, data_ns INTEGER)")
            self._db.execute("CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY "
                             "AUTOINCREMENT, time_ns INTEGER, station TEXT, topic TEXT, "
                             "payload BLOB, payload_bytes INTEGER, error TEXT)")
            for table in ("spool", "refused"):
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY "
                                 "AUTOINCREMENT, created_ns INTEGER, n_points INTEGER, "
                                 "body BLOB, error TEXT)")

    # dedup
    def forget_seen(self, keys: Iterable[StreamKey]) -> None:
        with self._lock, self._db:
            self._db.executemany("DELETE FROM seen WHERE station = ? AND stream = ? AND "
                                 "epoch = ?", list(keys))

    def load_seen(self) -> dict[StreamKey, SeenSet]:
        with self._lock:
            rows = self._db.execute("SELECT station, stream, epoch, first, low, extra "
                                    "FROM seen").fetchall()
        return {(s, st, e): SeenSet(first, low, set(json.loads(extra)))
                for s, st, e, first, low, extra in rows}

    def commit(self, seen: dict[StreamKey, SeenSet], *,
               spool: Sequence[Point | PointSeries] = (),
               refused: tuple[Sequence[Point | PointSeries], str] | None = None) -> None:
        """In one transaction: record frames as stored and (optionally) spool a batch of
        points or keep a batch the store refused."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?, ?, ?)",
                [(*k, v.first, v.low, json.dumps(sorted(v.extra))) for k, v in seen.items()])
            if spool:
                self._db.execute("INSERT INTO spool (created_ns, n_points, body) "
                                 "VALUES (?, ?, ?)",
                                 (time.time_ns(), count_points(spool),
                                  points_to_bytes(spool)))
            if refused is not None:
                self._db.execute("INSERT INTO refused (created_ns, n_points, body, error) "
                                 "VALUES (?, ?, ?, ?)", (time.time_ns(), count_points(refused[0]),
                                                         points_to_bytes(refused[0]),
                                                         refused[1]))

    # descriptions
    def save_description(self, station: str, description: StreamDescription) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO descriptions VALUES (?, ?, ?)",
                             (station, description.stream, description.to_json()))

    def load_descriptions(self) -> Iterator[tuple[str, StreamDescription]]:
        with self._lock:
            rows = self._db.execute("SELECT station, body FROM descriptions").fetchall()
        for station, body in rows:
            try:
                yield station, StreamDescription.from_json(body)
            except DescriptionError:
                continue

    # sessions (pipeline/service/sessions.py: SessionState as JSON)
    def save_session(self, station: str, body: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (station, body))

    def load_sessions(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute("SELECT station, body FROM sessions").fetchall()

    # engine calibration (StreamingEngine.calibration_state() as JSON, and the data time it
    # is known to hold until)
    def save_calibration(self, station: str, body: str | None, data_ns: int) -> None:
        """Store a new calibration state (``body``), or only move its data time on (None)."""
        with self._lock, self._db:
            if body is None:
                self._db.execute("UPDATE calibration SET data_ns = ? WHERE station = ?",
                                 (data_ns, station))
            else:
                self._db.execute("INSERT OR REPLACE INTO calibration VALUES (?, ?, ?)",
                                 (station, body, data_ns))

    def load_calibrations(self) -> dict[str, tuple[str, int]]:
        """station -> (calibration JSON, data time in ns)."""
        with self._lock:
            rows = self._db.execute("SELECT station, body, data_ns FROM calibration").fetchall()
        return {s: (b, int(t)) for s, b, t in rows}

    # quarantine: messages whose handling failed unexpectedly, for inspection
    def quarantine(self, station: str, topic: str, payload: bytes, error: str, *,
                   keep: int, max_bytes: int) -> None:
        """Keep one message (its first ``max_bytes``), and only the latest ``keep``."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO quarantine (time_ns, station, topic, payload, "
                             "payload_bytes, error) VALUES (?, ?, ?, ?, ?, ?)",
                             (time.time_ns(), station, topic[:512], payload[:max_bytes],
                              len(payload), error[-max_bytes:]))
            self._db.execute("DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM "
                             "quarantine) - ?", (keep,))

    def quarantined(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute("SELECT time_ns, station, topic, payload, payload_bytes, "
                                    "error FROM quarantine ORDER BY id").fetchall()
        return [dict(zip(("time_ns", "station", "topic", "payload", "payload_bytes", "error"),
                         row, strict=True)) for row in rows]

    # spool
    def spool_oldest(self) -> tuple[int, list[Point | PointSeries]] | None:
        with self._lock:
            row = self._db.execute("SELECT id, body FROM spool ORDER BY id LIMIT 1").fetchone()
        return None if row is None else (row[0], points_from_bytes(row[1]))

    def spool_remove(self, batch_id: int) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM spool WHERE id = ?", (batch_id,))

    def spool_refuse(self, batch_id: int, error: str) -> None:
        """Move a spooled batch the store refused to ``refused`` (kept for inspection)."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO refused (created_ns, n_points, body, error) "
                             "SELECT created_ns, n_points, body, ? FROM spool WHERE id = ?",
                             (error, batch_id))
            self._db.execute("DELETE FROM spool WHERE id = ?", (batch_id,))

    def spool_depth(self) -> tuple[int, int]:
        """(batches, points) waiting in the spool."""
        with self._lock:
            n, points = self._db.execute("SELECT COUNT(*), COALESCE(SUM(n_points), 0) "
                                         "FROM spool").fetchone()
        return int(n), int(points)

    def refused_depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM refused").fetchone()[0])

    def refused_list(self) -> list[tuple[int, int, str]]:
        """(id, points, the store's error) of every refused batch, oldest first."""
        with self._lock:
            return [(int(i), int(n), e or "") for i, n, e in self._db.execute(
                "SELECT id, n_points, error FROM refused ORDER BY id").fetchall()]

    def refused_points(self, batch_id: int) -> list[Point | PointSeries]:
        with self._lock:
            row = self._db.execute("SELECT body FROM refused WHERE id = ?",
                                   (batch_id,)).fetchone()
        if row is None:
            raise KeyError(f"no refused batch {batch_id}")
        return points_from_bytes(row[0])

    def refused_remove(self, batch_id: int) -> None:
        """Forget a refused batch (it was written)."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM refused WHERE id = ?", (batch_id,))

    def refused_note(self, batch_id: int, error: str) -> None:
        """The store refused the batch again: keep its latest error."""
        with self._lock, self._db:
            self._db.execute("UPDATE refused SET error = ? WHERE id = ?", (error, batch_id))

    def close(self) -> None:
        with self._lock:
            self._db.close()
