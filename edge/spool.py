"""The on-disk spool: every frame is written here before it is published, and leaves only
when the broker has acknowledged it.

SQLite in WAL mode with ``synchronous=NORMAL`` survives a killed agent (SIGKILL, a crash, a
systemd restart): a frame committed here is sent after the restart. The spool also remembers
each stream's next sequence number and a random *epoch*, so a restarted agent continues its
sequences instead of reusing numbers the pipeline has already seen.

The spool is bounded. When a broker outage outlasts ``capacity_bytes``, the oldest frames
are evicted first, and every evicted frame and sample is counted — persistently — and shown
on the status topic. Nothing disappears silently.
"""

from __future__ import annotations

import secrets
import sqlite3
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
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    evicted_frames INTEGER NOT NULL DEFAULT 0,
    evicted_samples INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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

    def next_seq(self, stream: str) -> int:
        return self._next_seq.get(stream, 0)

    def append(self, frames: list[PendingFrame]) -> int:
        """Commit frames in one transaction; returns how many old frames were evicted."""
        if not frames:
            return 0
        with self._transaction():
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
            self._frames += len(frames)
            self._bytes += sum(len(f.payload) for f in frames)
            return self._evict_over_capacity()

    def _evict_over_capacity(self) -> int:
        evicted = 0
        while self._bytes > self.capacity_bytes and self._frames > 0:
            rows = self._db.execute(
                "SELECT id, stream, n_samples, LENGTH(payload) FROM frames ORDER BY id LIMIT 256"
            ).fetchall()
            excess = self._bytes - self.capacity_bytes
            victims = []
            for row in rows:
                victims.append(row)
                excess -= row[3]
                if excess <= 0:
                    break
            per_stream: dict[str, list[int]] = {}
            for _, stream, n_samples, _size in victims:
                counts = per_stream.setdefault(stream, [0, 0])
                counts[0] += 1
                counts[1] += n_samples
            self._db.execute("DELETE FROM frames WHERE id <= ?", (victims[-1][0],))
            self._db.executemany(
                "UPDATE streams SET evicted_frames = evicted_frames + ?, "
                "evicted_samples = evicted_samples + ? WHERE stream = ?",
                [(c[0], c[1], s) for s, c in per_stream.items()])
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
        """Forget frames the broker has acknowledged."""
        ids = list(ids)
        if not ids:
            return
        with self._transaction():
            rows = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM frames WHERE id IN "
                f"({','.join('?' * len(ids))})", ids).fetchone()
            self._db.execute(f"DELETE FROM frames WHERE id IN ({','.join('?' * len(ids))})", ids)
        self._frames -= int(rows[0])
        self._bytes -= int(rows[1])

    def depth(self) -> SpoolDepth:
        oldest = self._db.execute("SELECT t0_ns FROM frames ORDER BY id LIMIT 1").fetchone()
        return SpoolDepth(self._frames, self._bytes, oldest[0] if oldest else None)

    def evictions(self) -> dict[str, tuple[int, int]]:
        """Per stream: (frames, samples) evicted because the spool was full, ever."""
        return {s: (f, n) for s, f, n in self._db.execute(
            "SELECT stream, evicted_frames, evicted_samples FROM streams "
            "WHERE evicted_frames > 0")}

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
