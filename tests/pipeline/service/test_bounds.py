"""Bounds and rejections through the real message handler of a Pipeline (SQLite store, state
DB, recordings in a temp dir): poison frames and descriptions, time jumps, caps, quarantine,
idle recordings, start-up directory checks, and the docs' list of reasons."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from hipstride.config import ConfigError
from hipstride.pipeline.service.config import PipelineConfig, check_directories
from hipstride.pipeline.service.ingest import REASONS
from hipstride.pipeline.service.limits import IngestLimits
from tests.pipeline.service.hostile import (
    EMG,
    Harness,
    description,
    emg_frame,
    now_ns,
    poison,
)
from tests.support.pipeline import clean_env

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    h.close()


def stored_seqs(tmp: Path, station: str) -> list[int]:
    with sqlite3.connect(tmp / "store.db") as db:
        return sorted(r[0] for r in db.execute(
            "SELECT seq FROM frames WHERE station = ?", (station,)))


def test_every_poison_is_counted_acknowledged_and_the_good_station_goes_on(harness, tmp_path):
    base = now_ns()
    harness.send("hipstride/v1/good/streams/emg", EMG.to_json())
    for i in range(10):
        harness.send("hipstride/v1/good/frames/emg", emg_frame(i, base + i * 50_000_000))
        for topic, payload in poison("bad", base)[i * 6:(i + 1) * 6]:
            harness.send(topic, payload)
    for topic, payload in poison("bad", base)[60:]:
        harness.send(topic, payload)
    for i in range(10, 20):
        harness.send("hipstride/v1/good/frames/emg", emg_frame(i, base + i * 50_000_000))
    harness.flush()
    acks = Counter(harness.wire.acks)
    assert sorted(acks) == sorted(harness.sent) and set(acks.values()) == {1}
    assert stored_seqs(tmp_path, "good") == list(range(20))
    bad = harness.rejected("bad")
    assert {"seq_range", "bad_description", "time_window", "inconsistent",
            "too_many_streams"} <= set(bad), bad
    assert bad["seq_range"] == 2 and bad["time_window"] == 4  # 1970, 1677, 2262, +1 day
    assert harness.rejected("good") == {}
    # the day-old frame is data (within max_past_s), the jumps after it are gaps
    assert stored_seqs(tmp_path, "bad") == [4, 5, 6]
    assert harness.pipeline.metrics.counters["time_jumps_total"][("bad", "emg")] == 2
    ingest = harness.wire.last("hipstride/v1/bad/ingest")
    assert ingest["rejected"]["seq_range"] >= 1


def test_a_time_jump_is_a_gap_not_filled_memory(harness):
    base = now_ns() - 3 * 3600 * 10**9
    harness.send("hipstride/v1/tm/streams/emg", EMG.to_json())
    for i in range(40):
        harness.send("hipstride/v1/tm/frames/emg", emg_frame(i, base + i * 50_000_000))
    harness.flush()
    tracemalloc.start()
    try:
        start = time.perf_counter()
        harness.send("hipstride/v1/tm/frames/emg", emg_frame(40, base + 2 * 3600 * 10**9))
        for i in range(41, 80):  # and the stream carries on from there
            harness.send("hipstride/v1/tm/frames/emg",
                         emg_frame(i, base + 2 * 3600 * 10**9 + (i - 40) * 50_000_000))
        for _ in range(3):
            harness.pipeline._poll_guarded("tm")
        harness.flush()
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6, f"{peak / 1e6:.0f} MB for a 2 h jump"  # filled: 2 h x 6 x 2 kHz x 8 B
    assert took < 10
    counters = harness.pipeline.metrics.counters
    assert counters["time_jumps_total"][("tm", "emg")] == 1
    assert harness.wire.last("hipstride/v1/tm/ingest")["time_jumps"] == {"emg": 1}
    assert harness.rejected("tm") == {}


def test_a_defect_quarantines_one_message_and_restarts_only_that_station(harness, tmp_path):
    base = now_ns()
    for station in ("a", "b"):
        harness.send(f"hipstride/v1/{station}/streams/emg", EMG.to_json())
    harness.send("hipstride/v1/a/frames/emg", emg_frame(0, base))
    broken = harness.pipeline.stations["a"]

    def defect(*_args, **_kwargs):
        raise ZeroDivisionError("a bug in the engine")

    broken.accept = defect  # a defect in this station's state
    harness.send("hipstride/v1/a/frames/emg", emg_frame(1, base + 50_000_000))
    for i in range(5):
        harness.send("hipstride/v1/b/frames/emg", emg_frame(i, base + i * 50_000_000))
    harness.send("hipstride/v1/a/frames/emg", emg_frame(2, base + 100_000_000))
    harness.flush()
    assert sorted(harness.wire.acks) == sorted(harness.sent)
    assert harness.rejected("a") == {"quarantined": 1}
    assert harness.pipeline.stations["a"] is not broken  # started afresh, descriptions kept
    assert "emg" in harness.pipeline.stations["a"].descriptions
    kept = harness.pipeline.state.quarantined()
    assert len(kept) == 1 and kept[0]["topic"] == "hipstride/v1/a/frames/emg"
    assert "ZeroDivisionError: a bug in the engine" in kept[0]["error"]
    assert kept[0]["payload"] == emg_frame(1, base + 50_000_000)
    assert stored_seqs(tmp_path, "b") == list(range(5))
    assert stored_seqs(tmp_path, "a") == [0, 2]
    assert 'reason="quarantined"' in _metrics(harness)


def _metrics(harness) -> str:
    from hipstride.pipeline.service.runtime import render_metrics
    return render_metrics(harness.pipeline.metrics)


def test_caps_on_streams_and_stations_are_counted(tmp_path):
    h = Harness(tmp_path, IngestLimits(max_streams=3, max_stations=2))
    try:
        for i in range(5):
            h.send(f"hipstride/v1/s1/streams/emg{i}", description(stream=f"emg{i}"))
        h.send("hipstride/v1/s2/streams/emg", EMG.to_json())
        for i in range(3, 6):
            h.send(f"hipstride/v1/s{i}/streams/emg", EMG.to_json())
            h.send(f"hipstride/v1/s{i}/control", b'{"version": 1, "command": "stop"}')
        h.send("hipstride/v1/s2/frames/emg", emg_frame(0, now_ns()))
        h.flush()
        assert sorted(h.wire.acks) == sorted(h.sent)
        assert h.rejected("s1") == {"too_many_streams": 2}
        assert sorted(h.pipeline.stations["s1"].descriptions) == ["emg0", "emg1", "emg2"]
        assert h.rejected("_overflow") == {"too_many_stations": 6}
        assert set(h.pipeline.stations) | set(h.pipeline.sessions) == {"s1", "s2"}
        assert stored_seqs(tmp_path, "s2") == [0]
    finally:
        h.close()


def test_recordings_of_an_idle_station_are_closed_and_reopened(tmp_path):
    h = Harness(tmp_path, IngestLimits(idle_close_s=0.3))
    try:
        h.send("hipstride/v1/tm/streams/emg", EMG.to_json())
        h.send("hipstride/v1/tm/frames/emg", emg_frame(0, now_ns()))
        h.flush()
        st = h.pipeline.stations["tm"]
        assert len(st._writers) == 1
        time.sleep(0.4)
        h.pipeline._idle_check = 0.0
        h.flush()
        assert st._writers == {}
        h.send("hipstride/v1/tm/frames/emg", emg_frame(1, now_ns()))
        h.flush()
        assert len(st._writers) == 1
        assert h.pipeline.metrics.counters["idle_closed_total"][()] == 1
    finally:
        h.close()


@pytest.mark.parametrize("which", ["state_dir", "recordings_dir"])
def test_an_unusable_directory_is_refused_at_start_naming_the_setting(tmp_path, which):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    dirs = {"state_dir": tmp_path / "state", "recordings_dir": tmp_path / "rec"}
    dirs[which] = blocker / "sub"
    config = PipelineConfig(broker=None, store_url="sqlite:///x.db",  # type: ignore[arg-type]
                            **dirs)
    with pytest.raises(ConfigError, match=re.escape(which)) as err:
        check_directories(config)
    assert str(blocker / "sub") in str(err.value)
    flag = {"state_dir": "--state-dir", "recordings_dir": "--recordings"}
    args = {"--state-dir": str(tmp_path / "state"), "--recordings": str(tmp_path / "rec")}
    args[flag[which]] = str(blocker / "sub")
    run = subprocess.run([sys.executable, "-m", "hipstride.cli", "pipeline", "--broker",
                          "mqtt://127.0.0.1:1", "--store", f"sqlite:///{tmp_path / 's.db'}",
                          *[x for kv in args.items() for x in kv]],
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert which in run.stderr and str(blocker / "sub") in run.stderr
    assert flag[which] in run.stderr


def test_the_protocol_doc_lists_every_rejection_reason():
    text = (REPO / "docs" / "protocol.md").read_text()
    section = text.split("## Bounds and rejections", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert listed == set(REASONS)


def test_description_churn_and_epoch_floods_stay_bounded(tmp_path):
    h = Harness(tmp_path, IngestLimits(max_epochs=3, description_interval_s=30))
    try:
        h.send("hipstride/v1/tm/streams/emg", EMG.to_json())
        h.send("hipstride/v1/tm/streams/emg", EMG.to_json())  # a reconnect: the same
        for gain in (2.0, 3.0, 4.0):
            h.send("hipstride/v1/tm/streams/emg", description(gain=gain))
        base = now_ns()
        for epoch in range(10):
            h.send("hipstride/v1/tm/frames/emg", emg_frame(0, base + epoch * 10**6,
                                                           epoch=epoch))
        h.flush()
        assert sorted(h.wire.acks) == sorted(h.sent)
        assert h.rejected("tm") == {"description_churn": 2}
        assert h.pipeline.stations["tm"].descriptions["emg"].gain == 2.0
        assert sorted(k[2] for k in h.pipeline.dedup._stored) == [7, 8, 9]
        assert sorted(k[2] for k in h.pipeline.state.load_seen()) == [7, 8, 9]
        with sqlite3.connect(tmp_path / "store.db") as db:
            assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 10
    finally:
        h.close()


def test_the_largest_sequence_numbers_are_refused_before_the_dedup_index_overflows(harness,
                                                                                  tmp_path):
    """The dedup index keeps a run's end as ``seq + 1`` in a signed 64-bit column: the largest
    seq it can hold is 2**63 - 2 (found by the property test)."""
    base = now_ns()
    harness.send("hipstride/v1/big/streams/emg", EMG.to_json())
    for i, seq in enumerate((2**63 - 2, 2**63 - 1, 2**63, 2**64 - 1)):
        harness.send("hipstride/v1/big/frames/emg", emg_frame(seq, base + i * 50_000_000))
    harness.flush()
    assert stored_seqs(tmp_path, "big") == [2**63 - 2]
    assert harness.rejected("big") == {"seq_range": 3}
