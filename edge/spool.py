"""The on-disk spool: every frame is written here before it is published, and leaves only
when the store has it — the broker acknowledged it (PUBACK, recorded as ``acked_s``) *and*
the pipeline's store confirmation covers it (:meth:`Spool.confirm`; docs/protocol.md, "Store
confirmation"). With ``require_store_confirmation = false`` the PUBACK alone removes it
(:meth:`Spool.ack`, the behaviour before protocol 1.1).

SQLite in WAL mode with ``synchronous=NORMAL`` survives a killed agent (SIGKILL, a crash, a
systemd restart): a frame committed here is sent after the restart. The spool also remembers
each stream's next sequence number and a random *epoch*, so a restarted agent continues its
sequences instead of reusing numbers the pipeline has already seen.

The spool is bounded, unconfirmed frames included. When an outage (of the broker or of the
pipeline) outlasts ``capacity_bytes``, the oldest frames are evicted first, and every evicted
frame and sample is counted — persistently, and apart those the broker had acknowledged (the
store may have them) — and shown on the status topic. Nothing disappears silently.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hipstride.config import ConfigError
from hipstride.edge.framing import PendingFrame

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t0_ns INTEGER NOT NULL,
    n_samples INTEGER NOT NULL,
    payload BLOB NOT NULL,
    acked_s REAL
);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    evicted_frames INTEGER NOT NULL DEFAULT 0,
    evicted_samples INTEGER NOT NULL DEFAULT 0,
    evicted_acked_frames INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: Columns added since the first spool format (an older spool file gets them on open).
_ADDED = (("frames", "acked_s", "REAL"),
          ("streams", "evicted_acked_frames", "INTEGER NOT NULL DEFAULT 0"))
_INDEXES = """
CREATE INDEX IF NOT EXISTS frames_stream_seq ON frames (stream, seq);
CREATE INDEX IF NOT EXISTS frames_acked ON frames (acked_s) WHERE acked_s IS NOT NULL;
"""
Runs = list[tuple[int, int]]


@dataclass(frozen=True)
class SpooledFrame:
    id: int
    stream: str
    seq: int
    payload: bytes


@dataclass(frozen=True)
class SpoolDepth:
    frames: int
    bytes: int
    oldest_t0_ns: int | None


class Spool:
    def __init__(self, path: str | Path, *, station: str, capacity_bytes: int) -> None:
        self.path = Path(path)
        self.capacity_bytes = capacity_bytes
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            for table, column, kind in _ADDED:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._db.executescript(_INDEXES)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(f"[spool] path: cannot open the spool at {self.path} ({err}); "
                              "choose a writable location with --spool or [spool] path") from None
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if "station" in meta and meta["station"] != station:
            raise ConfigError(
                f"the spool at {self.path} belongs to station {meta['station']!r}, not "
                f"{station!r}: give each station its own spool (--spool or [spool] path)")
        if "epoch" not in meta:
            meta = {"station": station, "epoch": str(secrets.randbits(32))}
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
        self.epoch = int(meta["epoch"])
        self._next_seq: dict[str, int] = dict(
            self._db.execute("SELECT stream, next_seq FROM streams"))
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM frames").fetchone()
        self._frames, self._bytes = int(count), int(size)
        #: frames per stream, and how many of all the broker has acknowledged
        self._per_stream: Counter[str] = Counter(dict(self._db.execute(
            "SELECT stream, COUNT(*) FROM frames GROUP BY stream")))
        self._acked = int(self._db.execute(
            "SELECT COUNT(*) FROM frames WHERE acked_s IS NOT NULL").fetchone()[0])

    def next_seq(self, stream: str) -> int:
        return self._next_seq.get(stream, 0)

    def append(self, frames: list[PendingFrame], *, acked: Iterable[int] = (),
               acked_s: float | None = None) -> int:
        """Commit frames in one transaction — with the PUBACKs of ``acked`` (spool ids) at
        ``acked_s`` (wall clock, s) — and return how many old frames were evicted."""
        acked = list(acked)
        if not frames:
            self.mark_acked(acked, acked_s)
            return 0
        with self._transaction():
            self._mark_acked(acked, acked_s)
            self._db.executemany(
                "INSERT INTO frames (stream, seq, t0_ns, n_samples, payload) VALUES (?,?,?,?,?)",
                [(f.stream, f.seq, f.t0_ns, f.n_samples, f.payload) for f in frames])
            latest: dict[str, int] = {}
            for f in frames:
                latest[f.stream] = max(latest.get(f.stream, 0), f.seq + 1)
            self._db.executemany(
                "INSERT INTO streams (stream, next_seq) VALUES (?, ?) ON CONFLICT(stream) "
                "DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq)", latest.items())
            self._next_seq.update(latest)
            self._per_stream.update(f.stream for f in frames)
            self._frames += len(frames)
            self._bytes += sum(len(f.payload) for f in frames)
            return self._evict_over_capacity()

    def _evict_over_capacity(self) -> int:
        evicted = 0
        while self._bytes > self.capacity_bytes and self._frames > 0:
            rows = self._db.execute(
                "SELECT id, stream, n_samples, LENGTH(payload), acked_s IS NOT NULL FROM frames "
                "ORDER BY id LIMIT 256").fetchall()
            excess = self._bytes - self.capacity_bytes
            victims = []
            for row in rows:
                victims.append(row)
                excess -= row[3]
                if excess <= 0:
                    break
            per_stream: dict[str, list[int]] = {}
            for _, stream, n_samples, _size, was_acked in victims:
                counts = per_stream.setdefault(stream, [0, 0, 0])
                counts[0] += 1
                counts[1] += n_samples
                counts[2] += int(was_acked)
            self._db.execute("DELETE FROM frames WHERE id <= ?", (victims[-1][0],))
            self._db.executemany(
                "UPDATE streams SET evicted_frames = evicted_frames + ?, "
                "evicted_samples = evicted_samples + ?, "
                "evicted_acked_frames = evicted_acked_frames + ? WHERE stream = ?",
                [(c[0], c[1], c[2], s) for s, c in per_stream.items()])
            for stream, c in per_stream.items():
                self._per_stream[stream] -= c[0]
                self._acked -= c[2]
            self._frames -= len(victims)
            self._bytes -= sum(v[3] for v in victims)
            evicted += len(victims)
        return evicted

    def pending(self, after_id: int, limit: int) -> list[SpooledFrame]:
        """Frames not yet handed to the broker, oldest first, with ids above ``after_id``."""
        rows = self._db.execute(
            "SELECT id, stream, seq, payload FROM frames WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit))
        return [SpooledFrame(*row) for row in rows]

    def ack(self, ids: Iterable[int]) -> None:
        """Forget frames the broker has acknowledged (``require_store_confirmation = false``:
        the PUBACK alone settles a frame)."""
        ids = list(ids)
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._transaction():
            rows = self._db.execute(
                f"SELECT stream, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), "
                f"COUNT(acked_s) FROM frames WHERE id IN ({marks}) GROUP BY stream",
                ids).fetchall()
            self._db.execute(f"DELETE FROM frames WHERE id IN ({marks})", ids)
        for stream, count, size, was_acked in rows:
            self._per_stream[stream] -= count
            self._frames -= count
            self._bytes -= size
            self._acked -= was_acked

    def mark_acked(self, ids: Iterable[int], acked_s: float | None = None) -> None:
        """Record the broker's PUBACK of these frames (they stay until confirmed)."""
        ids = list(ids)
        if ids:
            with self._transaction():
                self._mark_acked(ids, acked_s)

    def _mark_acked(self, ids: list[int], acked_s: float | None) -> None:
        if not ids:
            return
        when = time.time() if acked_s is None else acked_s
        marks = ",".join("?" * len(ids))
        fresh = self._db.execute(f"SELECT COUNT(*) FROM frames WHERE acked_s IS NULL AND id IN "
                                 f"({marks})", ids).fetchone()[0]
        self._db.execute(f"UPDATE frames SET acked_s = ? WHERE id IN ({marks})", (when, *ids))
        self._acked += int(fresh)

    def confirm(self, stream: str, runs: Runs) -> int:
        """Drop the frames of ``stream`` the broker acknowledged whose ``seq`` lies in one of
        the inclusive ``runs`` the store holds; returns how many left the spool."""
        if not runs or not self._per_stream.get(stream):
            return 0
        gone = 0
        with self._transaction():
            for first, last in runs:  # (no DELETE … RETURNING: SQLite < 3.35 on older Pis)
                where = ("FROM frames WHERE stream = ? AND seq BETWEEN ? AND ? "
                         "AND acked_s IS NOT NULL")
                count, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) {where}",
                    (stream, first, last)).fetchone()
                if count:
                    self._db.execute(f"DELETE {where}", (stream, first, last))
                gone += int(count)
                self._bytes -= int(size)
        self._per_stream[stream] -= gone
        self._frames -= gone
        self._acked -= gone
        return gone

    @property
    def acked_frames(self) -> int:
        """Frames the broker acknowledged that no store confirmation covers yet."""
        return self._acked

    def oldest_ack_s(self) -> float | None:
        """Wall-clock time of the oldest PUBACK still waiting for a confirmation."""
        row = self._db.execute("SELECT MIN(acked_s) FROM frames WHERE acked_s IS NOT NULL"
                               ).fetchone()
        return row[0]

    def stream_frames(self, stream: str) -> int:
        return self._per_stream.get(stream, 0)

    def oldest_t0_ns(self, stream: str) -> int | None:
        """First-sample time of the stream's oldest frame still spooled."""
        row = self._db.execute("SELECT t0_ns FROM frames WHERE stream = ? ORDER BY seq LIMIT 1",
                               (stream,)).fetchone()
        return row[0] if row else None

    def depth(self) -> SpoolDepth:
        oldest = self._db.execute("SELECT t0_ns FROM frames ORDER BY id LIMIT 1").fetchone()
        return SpoolDepth(self._frames, self._bytes, oldest[0] if oldest else None)

    def evictions(self) -> dict[str, tuple[int, int]]:
        """Per stream: (frames, samples) evicted because the spool was full, ever."""
        return {s: (f, n) for s, f, n in self._db.execute(
            "SELECT stream, evicted_frames, evicted_samples FROM streams "
            "WHERE evicted_frames > 0")}

    def evicted_acked(self) -> dict[str, int]:
        """Per stream: of the evicted frames, those the broker had acknowledged (sent, but
        never confirmed by a store: maybe stored, maybe lost)."""
        return dict(self._db.execute("SELECT stream, evicted_acked_frames FROM streams "
                                     "WHERE evicted_acked_frames > 0"))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
