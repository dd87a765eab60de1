"""The store confirmation the pipeline publishes (pipeline/service/confirm.py)."""

from __future__ import annotations

import json

from hipstride import topics
from hipstride.pipeline.service.confirm import Confirmations
from hipstride.pipeline.service.ingest import DedupIndex, SeenSet


def test_ranges_are_the_runs_held_lowest_first_and_bounded():
    seen = SeenSet()
    for seq in (5, 6, 7, 9, 10, 20, 4, 1):
        seen.add(seq)
    assert seen.ranges(32) == [(1, 1), (4, 7), (9, 10), (20, 20)]
    assert seen.ranges(2) == [(1, 1), (4, 7)]
    assert SeenSet().ranges(32) == []


def _committed(dedup: DedupIndex, keys) -> list:
    dedup.commit(keys)
    return list(keys)


def test_a_station_is_confirmed_rate_limited_and_refreshed():
    dedup = DedupIndex()
    sent: list[tuple[str, dict]] = []
    c = Confirmations(dedup, lambda t, b: sent.append((t, json.loads(b))), "0/1",
                      interval_s=0.5, refresh_s=2.0)
    c.tick(now=0.0)
    assert sent == []                              # nothing stored: nothing to confirm
    c.stored(_committed(dedup, [("tm1", "emg", 7, s) for s in range(10)]))
    c.tick(now=10.0)
    topic, body = sent[-1]
    assert topic == topics.stored("tm1")
    assert body["version"] == 1 and body["station"] == "tm1" and body["partition"] == "0/1"
    assert body["streams"] == {"emg": {"epoch": 7, "seq": 9, "ranges": [[0, 9]]}}
    c.stored(_committed(dedup, [("tm1", "emg", 7, s) for s in (12, 13)]))
    c.tick(now=10.2)                               # changed, but 0.2 s after the last one
    assert len(sent) == 1
    c.tick(now=10.5)
    assert sent[-1][1]["streams"]["emg"] == {"epoch": 7, "seq": 9,
                                             "ranges": [[0, 9], [12, 13]]}
    c.tick(now=11.0)                               # unchanged: only the refresh
    assert len(sent) == 2
    c.tick(now=12.5)
    assert len(sent) == 3 and sent[-1][1]["streams"] == sent[-2][1]["streams"]


def test_a_new_epoch_replaces_the_old_one_and_a_repeat_triggers_a_message():
    dedup = DedupIndex()
    sent: list[dict] = []
    c = Confirmations(dedup, lambda _t, b: sent.append(json.loads(b)), "1/2")
    c.stored(_committed(dedup, [("tm1", "emg", 1, 0), ("tm1", "imu_pelvis", 1, 0)]))
    c.tick(now=0.0)
    c.stored(_committed(dedup, [("tm1", "emg", 2, 0)]))   # the agent lost its spool
    c.tick(now=1.0)
    assert sent[-1]["streams"]["emg"]["epoch"] == 2
    assert sent[-1]["streams"]["imu_pelvis"]["epoch"] == 1
    c.seen_again(("tm1", "emg", 2, 0))
    c.tick(now=1.6)
    assert len(sent) == 3


def test_a_frame_refused_for_its_content_is_settled_one_a_resend_can_cure_is_not():
    import numpy as np

    from hipstride.frames import encode_frame
    from hipstride.pipeline.service.confirm import merge_runs

    dedup = DedupIndex()
    sent: list[dict] = []
    c = Confirmations(dedup, lambda _t, b: sent.append(json.loads(b)), "0/1")
    c.stored(_committed(dedup, [("tm1", "emg", 7, s) for s in (0, 1, 3)]))

    def frame(seq: int) -> bytes:
        return encode_frame("emg", seq, 0, 2000.0, np.zeros((4, 2), np.float32), epoch=7)

    topic = topics.frames("tm1", "emg")
    c.refused("tm1", "non_finite", topic, frame(2))        # resending cannot help
    c.refused("tm1", "no_description", topic, frame(4))    # resending can
    c.refused("tm1", "checksum", topic, b"HS\x01garbage")   # cannot even be read
    c.refused("tm1", "non_finite", topics.status("tm1"), frame(5))  # not a frame topic
    c.tick(now=0.0)
    assert sent[-1]["streams"]["emg"]["ranges"] == [[0, 3]]
    assert merge_runs([(0, 3), (8, 9)], [4, 6, 11], limit=3) == [(0, 4), (6, 6), (8, 9)]


def test_no_refreshes_for_a_station_that_stopped_sending():
    dedup = DedupIndex()
    sent: list[dict] = []
    c = Confirmations(dedup, lambda _t, b: sent.append(json.loads(b)), "0/1")
    c.stored(_committed(dedup, [("tm1", "emg", 1, 0)]))
    c.tick(now=0.0)
    c.active_s = 0.0                       # the station's last frame is "long" ago
    c.tick(now=100.0)
    assert len(sent) == 1                  # nothing queues up for an agent that is gone
    c.seen_again(("tm1", "emg", 1, 0))     # it is back
    c.active_s = 60.0
    c.tick(now=101.0)
    assert len(sent) == 2
