"""Property: whatever a station sends — valid, corrupted or edge-of-type frames, descriptions
and control payloads — the real message handler of a Pipeline (SQLite store, state DB and
recordings in a temp dir) lets no exception escape, acknowledges every message exactly once,
counts every rejection by a reason of REASONS, quarantines nothing (a quarantine would be a
defect), and keeps streams and stations within their caps."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hipstride.frames import HEADER
from hipstride.pipeline.service.ingest import REASONS
from hipstride.pipeline.service.limits import IngestLimits
from tests.pipeline.service.hostile import EMG, Harness, emg_frame, now_ns

LIMITS = IngestLimits(max_streams=4, max_stations=3)
STATIONS = ("tm-a", "tm-b", "tm-c", "tm-d", "tm-e")
STREAMS = ("emg", "imu_pelvis", "x1", "x2", "x3", "x4", "x5")
U64 = st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1]) | \
    st.integers(0, 2**64 - 1)
I64 = st.sampled_from([-(2**63), -1, 0, 2**62, 2**63 - 1]) | st.integers(-(2**63), 2**63 - 1)
F64 = st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 0.01, 2000.0, 100_000.0, 1e300,
                       float("nan"), float("inf"), float("-inf")]) | st.floats()
NUMBERS = st.one_of(st.booleans(), st.none(), st.integers(-(2**70), 2**70), F64,
                    st.text(max_size=8))
NOW = now_ns()  # strategies must not change between runs: times are drawn around this


#: Values a lying header field takes (edges of its type and of the bounds).
LIES = {
    "version": st.sampled_from([0, 2, 255]), "code": st.sampled_from([0, 1, 2, 4, 8, 99, 255]),
    "flags": st.sampled_from([1, 128, 255]), "channels": st.sampled_from([0, 1, 5, 7, 256, 257,
                                                                          65535]),
    "epoch": st.sampled_from([0, 2**32 - 1]), "seq": U64,
    "t0": st.integers(NOW - 10**14, NOW + 10**12) | I64, "rate": F64,
    "n": st.sampled_from([0, 1, 99, 101, 65536, 65537, 2**32 - 1]),
}


@st.composite
def frames(draw: st.DrawFn, stream: str) -> bytes:
    """A frame like the EMG description's (6 float32 channels at 2 kHz), with one header
    field lying (an edge-of-type value) or not, the bytes after it cut or flipped or not."""
    f = {"version": 1, "code": 3, "flags": 0, "channels": 6, "epoch": draw(st.integers(0, 3)),
         "seq": draw(st.integers(0, 60)), "t0": NOW - draw(st.integers(0, 10**12)),
         "rate": 2000.0, "n": draw(st.integers(1, 40))}
    payload = draw(st.binary(min_size=4, max_size=4)) * (f["n"] * f["channels"])
    lie = draw(st.sampled_from([None, "seq", "t0", *LIES]))
    if lie is not None:
        f[lie] = draw(LIES[lie])
    name = stream.encode()
    body = HEADER.pack(b"HS", f["version"], f["code"], f["flags"], len(name), f["channels"],
                       f["epoch"], f["seq"], f["t0"], f["rate"], f["n"]) + name + payload
    frame = body + struct.pack("<I", zlib.crc32(body))
    damage = draw(st.sampled_from([None, None, None, None, "cut", "flip", "extra"]))
    if damage == "cut":
        frame = frame[:draw(st.integers(0, len(frame) - 1))]
    elif damage == "flip":
        i = draw(st.integers(0, len(frame) - 1))
        frame = frame[:i] + bytes([frame[i] ^ 0xFF]) + frame[i + 1:]
    elif damage == "extra":
        frame += draw(st.binary(min_size=1, max_size=8))
    return frame


@st.composite
def descriptions(draw: st.DrawFn, stream: str) -> bytes:
    body = json.loads(EMG.to_json())
    body["stream"] = draw(st.sampled_from([stream, stream, "other", "Bad Name", 7]))
    for key in draw(st.sets(st.sampled_from(["rate_hz", "dtype", "kind", "gain", "sensor",
                                             "segment", "extra", "mounting", "version"]))):
        body[key] = draw(NUMBERS | st.lists(NUMBERS, max_size=3)
                         | st.dictionaries(st.text(max_size=4), NUMBERS, max_size=3))
    how = draw(st.sampled_from(["keep", "keep", "many", "empty", "junk", "fields"]))
    if how == "many":
        body["channels"] = [{"name": f"c{i}", "unit": "mV"} for i in
                            range(draw(st.sampled_from([257, 2000, 20_000])))]
    elif how == "empty":
        body["channels"] = []
    elif how == "junk":
        body["channels"] = draw(NUMBERS | st.lists(NUMBERS, max_size=3))
    elif how == "fields":
        body["channels"] = [{"name": draw(NUMBERS | st.text(max_size=70)),
                             "unit": draw(NUMBERS), "scale": draw(NUMBERS),
                             "offset": draw(NUMBERS), "range": draw(NUMBERS
                                                                     | st.lists(NUMBERS))}]
    text = json.dumps(body, allow_nan=True)
    return text.encode() if draw(st.booleans()) else text.encode()[: draw(st.integers(0, 400))]


CONTROL = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 2]) | NUMBERS,
     "command": st.sampled_from(["start", "stop", "mark", "calibrate", "profile"]) | NUMBERS},
    optional={"athlete": st.text(max_size=80) | NUMBERS, "label": st.text(max_size=300) | NUMBERS,
              "session": st.text(max_size=80) | NUMBERS, "request": st.text(max_size=80) | NUMBERS,
              "phase": st.sampled_from(["standing", "mvc", "prone", "x"]) | NUMBERS,
              "action": st.sampled_from(["start", "stop"]) | NUMBERS,
              "muscle": st.text(max_size=70) | NUMBERS, "side": NUMBERS,
              "note": st.text(max_size=70) | NUMBERS})


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes]:
    station = draw(st.sampled_from(STATIONS[:2] * 3 + STATIONS))  # mostly described ones
    stream = draw(st.sampled_from(("emg",) * 6 + STREAMS))
    prefix = f"hipstride/v1/{station}"
    kind = draw(st.sampled_from(["frame", "frame", "good", "description", "description",
                                 "control", "status", "topic", "bytes"]))
    if kind == "good":
        return f"{prefix}/frames/emg", emg_frame(draw(st.integers(0, 30)),
                                                 now_ns() - draw(st.integers(0, 10**12)))
    if kind == "frame":
        return f"{prefix}/frames/{stream}", draw(frames(stream))
    if kind == "description":
        return f"{prefix}/streams/{stream}", draw(descriptions(stream))
    if kind == "control":
        body = draw(CONTROL)
        return f"{prefix}/control", json.dumps(body, allow_nan=True).encode()
    if kind == "status":
        return f"{prefix}/status", draw(st.binary(max_size=50))
    if kind == "topic":
        return draw(st.sampled_from([f"{prefix}/frames/", f"{prefix}/frames/a/b",
                                     "hipstride/v1//frames/emg", "hipstride/v2/x/frames/emg",
                                     "hipstride/v1/UPPER/frames/emg", "x" * 300,
                                     f"{prefix}/frames/{'x' * 80}", f"{prefix}/nonsense"])), b"\0"
    return f"{prefix}/{draw(st.sampled_from(['frames/emg', 'streams/emg', 'control']))}", \
        draw(st.binary(max_size=200))


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("hostile"), LIMITS)
    for station in STATIONS[:2]:  # two stations with a good description to begin with
        h.send(f"hipstride/v1/{station}/streams/emg", EMG.to_json())
    yield h
    h.close()


@settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(messages(), min_size=1, max_size=25))
def test_no_message_escapes_the_handler_unacknowledged_or_uncounted(harness, batch):
    before = sum(harness.pipeline.rejected.values())
    first = harness.mid + 1
    for topic, payload in batch:
        harness.send(topic, payload)  # an exception here fails the test
    harness.flush()
    acks = Counter(m for m in harness.wire.acks if m >= first)
    assert sorted(acks) == list(range(first, harness.mid + 1))
    assert set(acks.values()) == {1}, "a message acknowledged twice"
    rejected = harness.pipeline.rejected
    assert {reason for _s, reason in rejected} <= set(REASONS)
    assert sum(rejected.values()) - before <= len(batch)
    assert not any(reason == "quarantined" for _s, reason in rejected), \
        harness.pipeline.state.quarantined()[-1]["error"]
    p = harness.pipeline
    assert len(p.stations.keys() | p.sessions.keys()) <= LIMITS.max_stations
    assert all(len(s.descriptions) <= LIMITS.max_streams for s in p.stations.values())
    assert p.dedup.pending == 0


def test_the_examples_reached_many_reasons_and_stored_frames(harness):
    """(Runs after the property, on its pipeline.) The generated input is not all one kind."""
    reasons = {reason for _s, reason in harness.pipeline.rejected}
    assert len(reasons) >= 8, sorted(reasons)
    frames = harness.pipeline.metrics.counters["frames_total"]
    assert sum(frames.values()) > 0
