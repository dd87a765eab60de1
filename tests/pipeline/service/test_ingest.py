"""The pipeline's ingest core without services: validation, dedup across restarts, partitions,
the store spool and recording repair."""

from __future__ import annotations

import logging
import struct
import time

import numpy as np
import pytest

from hipstride.config import ConfigError
from hipstride.frames import HEADER, encode_frame
from hipstride.pipeline.service.config import Partition, station_bucket
from hipstride.pipeline.service.ingest import (
    DedupIndex,
    Rejected,
    SeenSet,
    StateDB,
    points_from_bytes,
    points_to_bytes,
    validate_description,
    validate_frame,
)
from hipstride.pipeline.service.runtime import Metrics, RateLimitedLog, StoreSink, render_metrics
from hipstride.pipeline.service.station import repair_recording
from hipstride.pipeline.store import StoreRejected, StoreUnavailable
from hipstride.pipeline.store.base import FRAMES, STRIDES, Point
from hipstride.pipeline.store.sqlite import SqliteStore
from hipstride.recording import RECORD, RecordingWriter, read_recording
from hipstride.streams import emg_description, imu_description

EMG = emg_description()  # 6 channels, float32, 2 kHz


def emg_frame(seq: int = 0, *, channels: int = 6, dtype: str = "float32", rate: float = 2000.0,
              stream: str = "emg", value: float = 0.1) -> bytes:
    return encode_frame(stream, seq, 1_700_000_000_000_000_000 + seq * 50_000_000, rate,
                        np.full((100, channels), value, dtype=dtype), epoch=7)


def reason(payload: bytes, stream: str = "emg", description=EMG) -> str:
    with pytest.raises(Rejected) as err:
        validate_frame(payload, stream, description)
    return err.value.reason


# --- validation -----------------------------------------------------------------------------
def test_a_good_frame_passes():
    frame = validate_frame(emg_frame(3), "emg", EMG)
    assert (frame.seq, frame.epoch, frame.n_samples, frame.n_channels) == (3, 7, 100, 6)


def test_every_bad_frame_is_rejected_with_its_reason():
    good = emg_frame()
    corrupt = bytearray(good)
    corrupt[HEADER.size + 10] ^= 0xFF
    wrong_version = bytearray(good)
    wrong_version[2] = 9
    absurd = bytearray(good)
    struct.pack_into("<I", absurd, 36, 65536)  # n_samples far beyond the payload
    assert reason(good[:30]) == "truncated"
    assert reason(good[:-9]) == "truncated"
    assert reason(good + b"\0") == "oversized"
    assert reason(bytes(absurd)) == "truncated"
    assert reason(bytes(corrupt)) == "checksum"
    assert reason(bytes(wrong_version)) == "unsupported_version"
    assert reason(b"garbage that is not a frame") == "inconsistent"
    assert reason(emg_frame(value=float("nan"))) == "non_finite"
    assert reason(emg_frame(value=float("inf"))) == "non_finite"
    assert reason(emg_frame(channels=4)) == "channel_count"
    assert reason(emg_frame(dtype="int16")) == "dtype"
    assert reason(emg_frame(rate=1000.0)) == "rate"
    assert reason(emg_frame(stream="imu_pelvis"), "emg") == "stream_mismatch"
    assert reason(good, "emg", None) == "no_description"


def test_descriptions_are_checked():
    assert validate_description(EMG.to_json(), "emg") == EMG
    for payload, stream in ((b"{not json", "emg"), (b'{"version": 2}', "emg"),
                            (EMG.to_json(), "imu_pelvis")):
        with pytest.raises(Rejected) as err:
            validate_description(payload, stream)
        assert err.value.reason == "bad_description"


# --- de-duplication -------------------------------------------------------------------------
def test_seen_set_compacts_out_of_order_arrivals():
    seen = SeenSet()
    for seq in (5, 6, 8, 4, 7, 10):
        seen.add(seq)
    assert (seen.first, seen.low, seen.extra) == (4, 9, {10})
    assert all(s in seen for s in (4, 5, 6, 7, 8, 10))
    assert 3 not in seen and 9 not in seen and 11 not in seen


def test_dedup_survives_a_restart_and_forgets_what_was_never_stored(tmp_path):
    db = StateDB(tmp_path / "state.sqlite")
    dedup = DedupIndex(db.load_seen())
    stored = [("tm1", "emg", 7, s) for s in range(5)]
    for key in stored:
        assert dedup.check(key) == "new"
        dedup.reserve(key)
        assert dedup.check(key) == "pending"
    db.commit(dedup.commit(stored))
    dedup.reserve(("tm1", "emg", 7, 5))  # accepted, then the process dies before storing it
    db.close()

    again = DedupIndex(StateDB(tmp_path / "state.sqlite").load_seen())
    assert [again.check(k) for k in stored] == ["stored"] * 5
    assert again.check(("tm1", "emg", 7, 5)) == "new"    # must be processed again
    assert again.check(("tm1", "emg", 8, 0)) == "new"    # another epoch
    assert again.check(("tm2", "emg", 7, 0)) == "new"    # another station
    assert again.check(("tm1", "imu_pelvis", 7, 0)) == "new"


# --- partitions -----------------------------------------------------------------------------
def test_partition_is_stable_and_splits_every_station_exactly_once():
    # Written-down values (BLAKE2b-64 of the id, modulo N): if the hash ever changed,
    # stations would silently move between processes and their dedup state.
    assert [station_bucket(s, 1000) for s in ("tm1", "tm2", "treadmill-1")] == [777, 428, 400]
    assert [Partition(1, 2).owns("tm1"), Partition(0, 2).owns("tm2")] == [True, True]
    stations = [f"station-{i}" for i in range(400)]
    for n in (1, 2, 3, 8):
        parts = [Partition(i, n) for i in range(n)]
        for s in stations:
            assert sum(p.owns(s) for p in parts) == 1
        shares = [sum(p.owns(s) for s in stations) for p in parts]
        assert min(shares) > 400 / n * 0.6, shares  # roughly even
    assert Partition.parse("1/3") == Partition(1, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            Partition.parse(bad)


# --- spool ----------------------------------------------------------------------------------
def _points(n: int, t0: int = 1_000) -> list[Point]:
    return [Point.make(FRAMES, t0 + i, {"station": "tm1", "stream": "emg"},
                       {"epoch": 1, "seq": i, "n_samples": 100, "rate_hz": 2000.0})
            for i in range(n)]


def test_points_survive_the_spool_encoding_with_their_types():
    stride = Point.make(STRIDES, 5, {"station": "tm1", "side": "l"},
                        {"stride_index": 2, "valid": True, "cadence_spm": 170.0, "quality": "ok"})
    points = [*_points(3), stride]
    back = points_from_bytes(points_to_bytes(points))
    assert back == points
    assert type(back[-1].fields["valid"]) is bool and type(back[0].fields["seq"]) is int


class FlakyStore(SqliteStore):
    """A SQLite store that is 'down' while ``down`` is set, and refuses marked batches."""

    down = False

    def _write(self, points):
        if self.down:
            raise StoreUnavailable("down for the test")
        if any(p.time_ns == 666 for p in points):
            raise StoreRejected("refused for the test", 400)
        super()._write(points)


def test_store_down_spools_in_order_and_replays_when_back(tmp_path):
    store = FlakyStore(tmp_path / "store.sqlite")
    state = StateDB(tmp_path / "state.sqlite")
    metrics = Metrics()
    sink = StoreSink(store, state, metrics, RateLimitedLog(logging.getLogger("t"), 60),
                     retry_s=0.05)
    assert sink.write(_points(2, 0), {}) == "stored"
    store.down = True
    assert sink.write(_points(3, 100), {("tm1", "emg", 1): SeenSet(0, 3)}) == "spooled"
    store.down = False
    # the spool is not empty: this batch queues behind it, whatever the store's state
    assert sink.write(_points(2, 200), {}) == "spooled"
    assert state.spool_depth() == (2, 5)
    assert "hipstride_pipeline_spool_batches 2" in render_metrics(metrics)
    assert StateDB(tmp_path / "state.sqlite").load_seen()[("tm1", "emg", 1)].low == 3
    time.sleep(0.06)
    sink.replay()
    assert state.spool_depth() == (0, 0)
    assert sorted(f.t0_ns for f in store.frame_index("tm1", "emg")) == \
        [0, 1, 100, 101, 102, 200, 201]
    assert sink.write(_points(1, 666), {}) == "refused"  # kept aside, not lost, not blocking
    assert state.refused_depth() == 1
    assert sink.write(_points(1, 300), {}) == "stored"


# --- recordings -----------------------------------------------------------------------------
def test_a_record_cut_by_a_crash_is_truncated_before_appending(tmp_path):
    path = tmp_path / "tm1.hsrec"
    with RecordingWriter(path) as w:
        w.write_description(EMG)
        w.write_frame(emg_frame(0), "emg")
    whole = path.stat().st_size
    with open(path, "ab") as f:
        frame = emg_frame(1)
        f.write(RECORD.pack(2, len(frame)) + frame[:-50])  # cut short by a crash
    assert repair_recording(path) > 0
    assert path.stat().st_size == whole
    with RecordingWriter(path, append=True) as w:
        w.write_description(imu_description("pelvis"))
        w.write_frame(emg_frame(1), None)
    rec = read_recording(path)
    assert [f.seq for f in rec.frames] == [0, 1] and not rec.problems
