"""The store confirmation from the real pipeline's handler (tests/pipeline/service/hostile.py's
harness: real SQLite store and state DB, paho's client replaced by a recorder): what is
confirmed is what was stored; each partition confirms only its own stations; a frame refused
for its content is confirmed as settled, one refused as undescribed is not."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np

from hipstride import topics
from hipstride.frames import encode_frame
from hipstride.pipeline.service.config import Partition, station_bucket
from tests.pipeline.service.hostile import EMG, Harness, emg_frame, now_ns


def harness(tmp_path, index: int, count: int) -> Harness:
    h = Harness(tmp_path / f"p{index}")
    p = h.pipeline
    p.config = replace(p.config, partition=Partition(index, count))
    p.partition = p.config.partition
    p.confirm.partition = str(p.partition)
    p.connection.connected.set()  # _publish_stored publishes only while connected
    return h


def close(h: Harness) -> None:
    h.pipeline.connection.connected.clear()  # no broker to say goodbye to
    h.close()


def stored(h: Harness, station: str) -> dict | None:
    h.pipeline.confirm._last.clear()  # past the rate limit
    h.pipeline.confirm.tick()
    return h.wire.last(topics.stored(station))


def test_each_partition_confirms_what_it_stored_of_its_own_stations(tmp_path):
    a = next(s for s in (f"tm{i}" for i in range(100)) if station_bucket(s, 2) == 0)
    b = next(s for s in (f"tm{i}" for i in range(100)) if station_bucket(s, 2) == 1)
    parts = [harness(tmp_path, 0, 2), harness(tmp_path, 1, 2)]
    try:
        t0 = now_ns() - 10**9
        for h in parts:
            for station in (a, b):
                h.send(topics.stream_description(station, "emg"), EMG.to_json())
                for seq in (0, 1, 2, 4):
                    h.send(topics.frames(station, "emg"),
                           emg_frame(seq, t0 + seq * 50_000_000, epoch=9))
            h.flush()
        for h, own, other in ((parts[0], a, b), (parts[1], b, a)):
            body = stored(h, own)
            assert body["version"] == 1 and body["station"] == own
            assert body["partition"] == str(h.pipeline.partition)
            assert body["streams"] == {"emg": {"epoch": 9, "seq": 2,
                                               "ranges": [[0, 2], [4, 4]]}}
            assert stored(h, other) is None
            published = [t for t, _p, q, r in h.wire.published if t.endswith("/stored")]
            assert set(published) == {topics.stored(own)}
            assert all(q == 1 and r for t, _p, q, r in h.wire.published
                       if t.endswith("/stored"))
    finally:
        for h in parts:
            close(h)


def test_refused_for_content_is_settled_undescribed_is_not(tmp_path):
    h = harness(tmp_path, 0, 1)
    try:
        t0 = now_ns() - 10**9
        h.send(topics.frames("tm1", "emg"), emg_frame(0, t0, epoch=3))   # before its description
        h.send(topics.stream_description("tm1", "emg"), EMG.to_json())
        h.send(topics.frames("tm1", "emg"), emg_frame(1, t0 + 50_000_000, epoch=3))
        bad = np.full((100, 6), np.nan, np.float32)
        h.send(topics.frames("tm1", "emg"), encode_frame("emg", 2, t0 + 10**8, 2000.0, bad,
                                                         epoch=3))
        h.send(topics.frames("tm1", "emg"), emg_frame(3, t0 + 150_000_000, epoch=3))
        h.flush()
        assert h.rejected("tm1") == {"no_description": 1, "non_finite": 1}
        body = stored(h, "tm1")
        # 0 was refused as undescribed: a resend (now that the description is known) cures it
        assert body["streams"]["emg"]["ranges"] == [[1, 3]]
        h.send(topics.frames("tm1", "emg"), emg_frame(0, t0, epoch=3))   # the agent resends
        h.flush()
        assert stored(h, "tm1")["streams"]["emg"] == {"epoch": 3, "seq": 3, "ranges": [[0, 3]]}
        confirm = h.pipeline.confirm
        confirm._last["tm1"] = time.monotonic() - 1.0  # past the 0.5 s interval, before a refresh
        n = len(h.wire.published)
        confirm.tick()
        assert len(h.wire.published) == n       # nothing new: nothing due
        h.send(topics.frames("tm1", "emg"), emg_frame(1, t0 + 50_000_000, epoch=3))  # again
        confirm.tick()
        assert len(h.wire.published) == n + 1   # a repeat makes the confirmation go out
        assert json.loads(h.wire.published[-1][1])["streams"]["emg"]["seq"] == 3
    finally:
        close(h)
