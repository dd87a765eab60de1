"""Where the pipeline keeps everything: one interface (:class:`Store`), two implementations.

- :class:`~.influx.InfluxStore` — InfluxDB through ``influxdb-client`` (deployment);
- :class:`~.sqlite.SqliteStore` — one SQLite file (``hipstride demo``, single treadmills);
- :func:`open_store` — either, from a ``--store`` URL.

The schema (measurements, tags, fields) is in :mod:`.base` and ``docs/schema.md``. The InfluxDB
store is imported lazily, so the SQLite path never loads ``influxdb_client``.
"""

from __future__ import annotations

from typing import Any

from .base import (
    MEASUREMENTS,
    TIME_PRECISION,
    FrameRecord,
    PointBuilder,
    ProcessedSeries,
    SessionMeta,
    Store,
    StoreError,
    StoreRejected,
    StoreSetupError,
    StoreUnavailable,
    StreamCount,
)
from .url import StoreURL, open_store

__all__ = [
    "MEASUREMENTS", "TIME_PRECISION", "FrameRecord", "InfluxStore", "PointBuilder",
    "ProcessedSeries",
    "SessionMeta", "SqliteStore", "Store", "StoreError", "StoreRejected", "StoreSetupError",
    "StoreURL", "StoreUnavailable", "StreamCount", "open_store",
]


def __getattr__(name: str) -> Any:
    if name == "InfluxStore":
        from .influx import InfluxStore

        return InfluxStore
    if name == "SqliteStore":
        from .sqlite import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
