"""The agent's reading of the store confirmation (edge/confirm.py) and how tap shows it."""

from __future__ import annotations

import json
import time

import pytest

from hipstride.edge.confirm import PIPELINE_SILENCE_S, MarkError, StoreMarks, parse_mark
from hipstride.tap import store_line


def _mark(streams, **extra) -> bytes:
    return json.dumps({"version": 1, "station": "tm1", "time_ns": time.time_ns(),
                       "partition": "0/1", "streams": streams, **extra}).encode()


def test_only_the_agents_epoch_counts_and_changes_are_noticed():
    marks = StoreMarks("tm1", epoch=7)
    marks.take(_mark({"emg": {"epoch": 7, "seq": 9, "ranges": [[0, 9], [12, 15]]},
                      "imu_pelvis": {"epoch": 8, "seq": 3, "ranges": [[0, 3]]}}), now=5.0)
    assert marks.runs == {"emg": [(0, 9), (12, 15)]} and marks.seq == {"emg": 9}
    assert marks.changed == {"emg"}
    marks.changed.clear()
    marks.take(_mark({"emg": {"epoch": 7, "seq": 9, "ranges": [[0, 9], [12, 15]]}}), now=6.0)
    assert marks.changed == set()                 # a refresh: nothing new
    assert marks.confirming(6.0 + PIPELINE_SILENCE_S - 0.1)
    assert not marks.confirming(6.0 + PIPELINE_SILENCE_S)
    assert not StoreMarks("tm1", 7).confirming(0.0)


@pytest.mark.parametrize(("payload", "message"), [
    (b"{", "not JSON"),
    (_mark({}, version=2), "unsupported version 2"),
    (json.dumps({"version": 1, "station": "tm2", "streams": {}}).encode(), "station 'tm2'"),
    (_mark([]), "'streams' must be an object"),
    (_mark({"emg": {"epoch": 7, "seq": "9", "ranges": []}}), "'seq' must be an integer"),
    (_mark({"emg": {"epoch": 7, "seq": 9, "ranges": [[5, 2]]}}), "0 <= first <= last"),
    (_mark({"emg": {"epoch": 7, "seq": 9, "ranges": [[0, True]]}}), "[first, last]"),
], ids=lambda value: value if isinstance(value, str) else "payload")  # stable for xdist
def test_a_bad_confirmation_is_refused_naming_the_problem(payload, message):
    marks = StoreMarks("tm1", epoch=7)
    with pytest.raises(MarkError, match=message.replace("[", r"\[").replace("(", r"\(")):
        marks.take(payload, now=1.0)
    assert marks.runs == {} and marks.heard_at is None
    with pytest.raises(MarkError):
        parse_mark(payload, "tm1", 7)


def test_tap_shows_how_far_behind_the_store_is():
    status = {"state": "online",
              "store": {"state": "no pipeline confirming", "resends": 2, "resent_frames": 40},
              "streams": {"emg": {"unconfirmed_frames": 120, "stored_seq": None,
                                  "confirm_lag_s": 6.2}}}
    line = store_line(status)
    assert "store: no pipeline confirming (2 resend(s), 40 frames)" in line
    assert "emg" in line and "unconfirmed    120" in line and "lag 6.2 s" in line
    status["streams"]["emg"]["confirm_lag_s"] = None          # a replay source
    assert "lag -" in store_line(status)
    assert store_line({"store": {"confirmation": "off", "state": "off"}}) == \
        ", store confirmation off"
    assert store_line({"state": "online"}) == ""      # an agent before protocol 1.1


def test_a_retained_copy_covers_frames_but_does_not_mean_a_pipeline_is_there():
    marks = StoreMarks("tm1", epoch=7)
    marks.take(_mark({"emg": {"epoch": 7, "seq": 3, "ranges": [[0, 3]]}}), now=1.0, live=False)
    assert marks.runs == {"emg": [(0, 3)]} and not marks.confirming(1.0)
    marks.take(_mark({"emg": {"epoch": 7, "seq": 3, "ranges": [[0, 3]]}}), now=2.0)
    assert marks.confirming(2.0)

    old = json.loads(_mark({}))
    old["time_ns"] -= int(PIPELINE_SILENCE_S * 2e9)    # queued by the broker while away
    late = StoreMarks("tm1", epoch=7)
    late.take(json.dumps(old).encode(), now=3.0)
    assert late.messages == 1 and not late.confirming(3.0)
