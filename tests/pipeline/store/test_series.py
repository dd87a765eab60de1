"""Columnar point series (``PointSeries``) are stored exactly as their points: same lines of
line protocol, same rows read back from SQLite and a real ``influxd``, through the spool too."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hipstride.pipeline.service.ingest import points_from_bytes, points_to_bytes
from hipstride.pipeline.store import Store, open_store
from hipstride.pipeline.store.base import (
    FRAMES,
    PROCESSED,
    Point,
    PointSeries,
    count_points,
    expand_points,
)
from hipstride.pipeline.store.influx import encode_line, encode_lines
from tests.support.influxdb import InfluxDB

T0 = 1_700_000_000_123_456_789
USER = ("pipeline", "pipe-secret")
_names = itertools.count()


def open_pair(kind: str, tmp_path, request) -> tuple[Store, Store]:
    if kind == "sqlite":
        return (open_store(f"sqlite:///{tmp_path}/a.db"), open_store(f"sqlite:///{tmp_path}/b.db"))
    server: InfluxDB = request.getfixturevalue("influxd")
    stores = []
    for _ in range(2):
        name = f"series_{next(_names)}"
        server.create_database(name, users=dict([USER]))
        stores.append(open_store(server.store_url(*USER, name)))
    return stores[0], stores[1]


def batch() -> list:
    rng = np.random.default_rng(3)
    t = T0 + np.arange(40) * 10_000_000
    values = rng.normal(size=40) * 1e-3
    values[[5, 17]] = np.nan  # not stored
    values[8] = 1e-300  # repr round trip of awkward floats
    values[9] = 123456.78901234567
    series = [PointSeries.make(PROCESSED, {"station": "tm 1", "session": "s,1",
                                           "stream": "emg_envelope", "channel": c},
                               "value", t, values * (j + 1))
              for j, c in enumerate(["glute=max", "ham"])]
    series.append(PointSeries.make(PROCESSED, {"station": "tm 1", "session": "s,1",
                                               "stream": "hip_angle", "channel": "x"},
                                   "value", t[:3], [np.nan] * 3))  # nothing finite: None
    frames = [Point.make(FRAMES, T0 + k, {"station": "tm 1", "stream": "emg"},
                         {"epoch": 7, "seq": k, "n_samples": 100, "rate_hz": 2000,
                          "session": "s,1"}) for k in range(3)]
    return [*frames, *series]


def test_series_lines_are_the_points_lines():
    items = [p for p in batch() if p is not None]
    assert items[-1].measurement is PROCESSED and count_points(items) == 3 + 2 * 38
    points = expand_points(items)
    assert len(points) == count_points(items)
    assert encode_lines(items) == [encode_line(p) for p in points]
    back = points_from_bytes(points_to_bytes(items))
    assert encode_lines(back) == encode_lines(items)
    assert batch()[-1] is None


@pytest.mark.parametrize("kind", ["sqlite", "influx"])
def test_series_read_back_as_the_same_points(kind, tmp_path, request):
    a, b = open_pair(kind, tmp_path, request)
    try:
        items = batch()
        assert a.write_points(items) == b.write_points(expand_points(items)) == 79
        for m in (PROCESSED, FRAMES):
            rows_a, rows_b = a.select(m), b.select(m)
            assert rows_a == rows_b and len(rows_a) == (76 if m is PROCESSED else 3)
        env = a.processed("tm 1", "emg_envelope", session="s,1")
        assert env.channels == ("glute=max", "ham") and len(env) == 38
        a.write_points(items)  # again: idempotent
        assert a.select(PROCESSED) == b.select(PROCESSED)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("kind", ["sqlite", "influx"])
def test_one_batch_with_a_key_twice_merges_in_order(kind, tmp_path, request):
    """The SQLite store writes many rows per statement: a key repeated in one batch must
    still end as InfluxDB ends it (later fields win, others kept), also past a chunk edge."""
    a, b = open_pair(kind, tmp_path, request)
    try:
        tags = {"station": "tm1", "stream": "emg"}
        fill = [Point.make(FRAMES, T0 + 1000 + k, tags, {"seq": k}) for k in range(400)]
        fill.insert(1, Point.make(FRAMES, T0 + 1000, tags, {"seq": 77}))  # same statement
        fill.append(Point.make(FRAMES, T0 + 1001, tags, {"seq": 88}))  # the next statement
        first = Point.make(FRAMES, T0, tags, {"seq": 1, "n_samples": 100, "session": "x"})
        second = Point.make(FRAMES, T0, tags, {"seq": 2, "session": "y"})
        a.write_points([first, *fill, second])
        row = a.select(FRAMES, start_ns=T0, end_ns=T0 + 1)[0]
        assert (row["seq"], row["n_samples"], row["session"]) == (2, 100, "y")
        got = {r["time"]: r["seq"] for r in a.select(FRAMES)}
        assert len(got) == 401 and got[T0 + 1000] == 77 and got[T0 + 1001] == 88
    finally:
        a.close()
        b.close()
