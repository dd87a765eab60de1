"""The embedded store: one SQLite file (stdlib ``sqlite3``, WAL), same points as InfluxDB.

One table per measurement: ``time_ns INTEGER``, one ``TEXT NOT NULL`` column per tag ('' when
absent) and one column per field. The primary key is (tags…, time_ns), InfluxDB's identity of
a point, and writes are upserts that keep fields the new point does not carry — the same merge
InfluxDB does — so a re-sent batch changes nothing. Safe to share between threads (one lock).
Tables made since 2026-11 are ``WITHOUT ROWID`` (clustered on that key: one B-tree insert per
row instead of two); older files keep their layout and read the same. Rows go in multi-row
statements (:meth:`SqliteStore._upsert`).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from .base import (
    MEASUREMENTS,
    SCHEMA_VERSION,
    Measurement,
    Point,
    PointSeries,
    Store,
    StoreRejected,
    StoreUnavailable,
)

__all__ = ["SqliteStore"]

_SQL_TYPE = {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT"}
#: Extra indexes for the reads :class:`~.base.Store` makes (the key serves the rest).
_INDEXES = {
    "strides": ("session", "time_ns"),
    "cues": ("session", "time_ns"),
    "processed": ("station", "stream", "time_ns"),
    "sessions": ("athlete", "time_ns"),
    "phe": ("session", "time_ns"),
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: Parameters per statement (SQLite's limit is 999 before 3.32, 32766 since).
_MAX_PARAMS = 999


@functools.lru_cache(maxsize=256)
def _upsert_sql(name: str, tags: tuple[str, ...], fields: tuple[str, ...], n_rows: int) -> str:
    cols = ["time_ns", *tags, *fields]
    key = ", ".join([*map(_q, tags), "time_ns"])
    update = ", ".join(f"{_q(f)} = excluded.{_q(f)}" for f in fields)
    one = f"({', '.join('?' * len(cols))})"
    return (f"INSERT INTO {_q(name)} ({', '.join(map(_q, cols))}) "
            f"VALUES {', '.join([one] * n_rows)} ON CONFLICT ({key}) DO UPDATE SET {update}")


def _shape(p: Point | PointSeries) -> tuple[Measurement, tuple[str, ...]]:
    """Points of one shape share one INSERT statement."""
    if isinstance(p, PointSeries):
        return p.measurement, (p.field,)
    return p.measurement, tuple(sorted(p.fields))


def _rows(m: Measurement, fields: tuple[str, ...], items: Any) -> list[tuple]:
    """Parameter rows (time, tags…, fields…) of points and series of one shape."""
    rows: list[tuple] = []
    for p in items:
        tags = tuple(p.tags.get(t, "") for t in m.tags)
        if isinstance(p, PointSeries):
            rows += [(t, *tags, v) for t, v in
                     zip(p.time_ns.tolist(), p.values.tolist(), strict=True)]
        else:
            rows.append((p.time_ns, *tags, *(p.fields[f] for f in fields)))
    return rows


class SqliteStore(Store):
    """The store in a SQLite file (``":memory:"`` for a private in-memory one)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, *, timeout_s: float = 10.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout_s, check_same_thread=False,
                                       isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._create()
        except sqlite3.DatabaseError as err:
            raise StoreRejected(f"SQLite store {self.path}: {err}") from None

    def _create(self) -> None:
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        if found not in (0, SCHEMA_VERSION):
            raise StoreRejected(f"SQLite store {self.path} has schema version {found}; this "
                                f"HipStride reads version {SCHEMA_VERSION}")
        with self._db:
            for m in MEASUREMENTS:
                cols = ["time_ns INTEGER NOT NULL"]
                cols += [f"{_q(t)} TEXT NOT NULL DEFAULT ''" for t in m.tags]
                cols += [f"{_q(f)} {_SQL_TYPE[k]}" for f, k in m.fields.items()]
                key = ", ".join([*map(_q, m.tags), "time_ns"])
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {_q(m.name)} "
                                 f"({', '.join(cols)}, PRIMARY KEY ({key})) WITHOUT ROWID")
                if m.name in _INDEXES:
                    self._db.execute(
                        f"CREATE INDEX IF NOT EXISTS {_q(m.name + '_by_' + _INDEXES[m.name][0])}"
                        f" ON {_q(m.name)} ({', '.join(map(_q, _INDEXES[m.name]))})")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _run(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            try:
                return fn(*args)
            except sqlite3.OperationalError as err:
                if "locked" in str(err) or "busy" in str(err):
                    raise StoreUnavailable(f"SQLite store {self.path}: {err}") from None
                raise StoreRejected(f"SQLite store {self.path}: {err}") from None
            except sqlite3.DatabaseError as err:
                raise StoreRejected(f"SQLite store {self.path}: {err}") from None

    # --- backend ----------------------------------------------------------------------------
    def _write(self, points: Sequence[Point | PointSeries]) -> None:
        def write() -> None:
            with self._db:  # one transaction per batch: all or nothing
                for (m, fields), group in groupby(points, key=_shape):
                    self._upsert(m, fields, _rows(m, fields, group))
        self._run(write)

    def _upsert(self, m: Measurement, fields: tuple[str, ...], rows: list[tuple]) -> None:
        """Rows in multi-row statements: one statement step per ~160 rows instead of one per
        row (each step gives up the GIL; per row, that stalls the pipeline's other threads
        and is slower). Rows with the same key in one statement update in order, as with
        one statement per row."""
        width = 1 + len(m.tags) + len(fields)
        per = max(1, _MAX_PARAMS // width)
        for i in range(0, len(rows), per):
            chunk = rows[i:i + per]
            self._db.execute(_upsert_sql(m.name, m.tags, fields, len(chunk)),
                             [v for row in chunk for v in row])

    @staticmethod
    def _where(m: Measurement, where: Mapping[str, str | Sequence[str]], start_ns: int | None,
               end_ns: int | None) -> tuple[str, list[Any]]:
        terms, args = [], []
        for tag, value in where.items():
            values = [value] if isinstance(value, str) else list(value)
            terms.append(f"{_q(tag)} IN ({', '.join('?' * len(values))})")
            args += values
        if start_ns is not None:
            terms.append("time_ns >= ?")
            args.append(int(start_ns))
        if end_ns is not None:
            terms.append("time_ns < ?")
            args.append(int(end_ns))
        return (" WHERE " + " AND ".join(terms)) if terms else "", args

    def _select(self, m: Measurement, where: Mapping[str, str | Sequence[str]],
                start_ns: int | None = None, end_ns: int | None = None) -> list[dict[str, Any]]:
        cond, args = self._where(m, where, start_ns, end_ns)
        names = [*m.tags, *m.fields]
        sql = (f"SELECT time_ns, {', '.join(map(_q, names))} FROM {_q(m.name)}{cond} "
               "ORDER BY time_ns")
        rows = self._run(lambda: self._db.execute(sql, args).fetchall())
        bools = [f for f, k in m.fields.items() if k is bool]
        out = []
        for row in rows:
            d = {"time": row[0]}
            for name, value in zip(names, row[1:], strict=True):
                d[name] = None if value == "" and name in m.tags else value
            for f in bools:
                if d[f] is not None:
                    d[f] = bool(d[f])
            out.append(d)
        return out

    def _sum(self, m: Measurement, value: str, by: tuple[str, ...],
             where: Mapping[str, str | Sequence[str]], start_ns: int | None = None,
             end_ns: int | None = None) -> dict[tuple[str, ...], tuple[int, int]]:
        cond, args = self._where(m, where, start_ns, end_ns)
        group = ", ".join(map(_q, by))
        sql = (f"SELECT {group}, COUNT({_q(value)}), TOTAL({_q(value)}) FROM {_q(m.name)}{cond} "
               f"GROUP BY {group}")
        rows = self._run(lambda: self._db.execute(sql, args).fetchall())
        return {tuple(r[:len(by)]): (int(r[-2]), int(r[-1])) for r in rows}

    # --- service ----------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            self._run(lambda: self._db.execute("SELECT 1").fetchone())
            return True
        except Exception:
            return False

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"
