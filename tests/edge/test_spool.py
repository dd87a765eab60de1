import pytest

from hipstride.config import ConfigError
from hipstride.edge.framing import PendingFrame
from hipstride.edge.spool import Spool


def _frames(stream, first_seq, n, size=100):
    return [PendingFrame(stream, s, s * 1000, 10, bytes([s % 256]) * size)
            for s in range(first_seq, first_seq + n)]


def test_frames_survive_reopening_and_sequences_continue(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", station="tm1", capacity_bytes=10**6)
    spool.append(_frames("emg", 0, 5) + _frames("imu_pelvis", 0, 2))
    pending = spool.pending(0, 100)
    spool.ack([pending[0].id, pending[1].id])
    epoch = spool.epoch
    spool.close()
    again = Spool(tmp_path / "s.sqlite", station="tm1", capacity_bytes=10**6)
    assert again.epoch == epoch
    assert again.next_seq("emg") == 5 and again.next_seq("imu_pelvis") == 2
    assert [(f.stream, f.seq) for f in again.pending(0, 100)] == (
        [("emg", s) for s in (2, 3, 4)] + [("imu_pelvis", 0), ("imu_pelvis", 1)])
    assert again.depth().frames == 5 and again.depth().bytes == 500


def test_a_full_spool_evicts_the_oldest_and_counts_them(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", station="tm1", capacity_bytes=1000)
    evicted = spool.append(_frames("emg", 0, 15))
    assert evicted == 5
    assert [f.seq for f in spool.pending(0, 100)] == list(range(5, 15))
    assert spool.evictions() == {"emg": (5, 50)}
    assert spool.depth().bytes <= 1000
    spool.close()
    assert Spool(tmp_path / "s.sqlite", station="tm1", capacity_bytes=1000).evictions() == {
        "emg": (5, 50)}


def test_a_spool_belongs_to_one_station(tmp_path):
    Spool(tmp_path / "s.sqlite", station="tm1", capacity_bytes=1000).close()
    with pytest.raises(ConfigError, match="belongs to station 'tm1'"):
        Spool(tmp_path / "s.sqlite", station="tm2", capacity_bytes=1000)


def test_an_unwritable_spool_path_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"\[spool\] path"):
        Spool(tmp_path / "file" / "s.sqlite", station="tm1", capacity_bytes=1000)


# --- store confirmation (docs/protocol.md, "Store confirmation") ----------------------------
def _spool_of(tmp_path, capacity=10**6):
    return Spool(tmp_path / "s.sqlite", station="tm1", capacity_bytes=capacity)


def test_the_spool_keeps_acknowledged_frames_until_a_confirmation_covers_them(tmp_path):
    spool = _spool_of(tmp_path)
    spool.append(_frames("emg", 0, 6) + _frames("imu_pelvis", 0, 3))
    ids = {(f.stream, f.seq): f.id for f in spool.pending(0, 100)}
    spool.mark_acked([ids[("emg", s)] for s in range(4)], acked_s=100.0)
    assert spool.depth().frames == 9 and spool.acked_frames == 4
    # a confirmation covering emg 0..4: only the acknowledged ones (0..3) leave
    assert spool.confirm("emg", [(0, 4)]) == 4
    assert [(f.stream, f.seq) for f in spool.pending(0, 100)] == (
        [("emg", 4), ("emg", 5)] + [("imu_pelvis", s) for s in range(3)])
    assert spool.acked_frames == 0 and spool.stream_frames("emg") == 2
    assert spool.depth().bytes == 500
    # the PUBACK of emg 4 arrives later: the confirmation already covers it
    spool.append(_frames("emg", 6, 1), acked=[ids[("emg", 4)]], acked_s=101.0)
    assert spool.confirm("emg", [(0, 4)]) == 1
    assert spool.confirm("imu_pelvis", [(0, 2)]) == 0      # never acknowledged: kept
    assert spool.stream_frames("imu_pelvis") == 3


def test_unconfirmed_frames_survive_a_restart_with_their_acknowledgements(tmp_path):
    spool = _spool_of(tmp_path)
    spool.append(_frames("emg", 0, 5))
    first = spool.pending(0, 100)
    spool.mark_acked([f.id for f in first[:3]], acked_s=50.0)
    spool.mark_acked([first[0].id], acked_s=80.0)       # resent and acknowledged again
    spool.close()
    again = _spool_of(tmp_path)
    assert again.depth().frames == 5 and again.acked_frames == 3
    assert again.oldest_ack_s() == 50.0
    assert again.confirm("emg", [(0, 1), (3, 9)]) == 2     # seq 0, 1 (3, 4 not acked)
    assert [f.seq for f in again.pending(0, 100)] == [2, 3, 4]
    assert again.oldest_ack_s() == 50.0 and again.acked_frames == 1


def test_eviction_counts_unconfirmed_frames_and_those_the_broker_had(tmp_path):
    spool = _spool_of(tmp_path, capacity=1000)
    spool.append(_frames("emg", 0, 8))                 # 800 bytes
    spool.mark_acked([f.id for f in spool.pending(0, 100)])  # sent, never confirmed
    evicted = spool.append(_frames("emg", 8, 5))       # 1300 bytes: 3 must go
    assert evicted == 3
    assert spool.evictions() == {"emg": (3, 30)} and spool.evicted_acked() == {"emg": 3}
    assert [f.seq for f in spool.pending(0, 100)] == list(range(3, 13))
    assert spool.acked_frames == 5 and spool.stream_frames("emg") == 10


def test_a_spool_of_the_first_format_is_upgraded_in_place(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE frames (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,
                seq INTEGER NOT NULL, t0_ns INTEGER NOT NULL, n_samples INTEGER NOT NULL,
                payload BLOB NOT NULL);
            CREATE TABLE streams (stream TEXT PRIMARY KEY, next_seq INTEGER NOT NULL,
                evicted_frames INTEGER NOT NULL DEFAULT 0,
                evicted_samples INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('station', 'tm1'), ('epoch', '77');
            INSERT INTO streams VALUES ('emg', 2, 0, 0);
            INSERT INTO frames (stream, seq, t0_ns, n_samples, payload)
                VALUES ('emg', 0, 0, 10, x'00'), ('emg', 1, 1, 10, x'01');
        """)
    spool = Spool(path, station="tm1", capacity_bytes=1000)
    assert spool.epoch == 77 and spool.next_seq("emg") == 2 and spool.acked_frames == 0
    spool.mark_acked([f.id for f in spool.pending(0, 10)])
    assert spool.confirm("emg", [(0, 1)]) == 2 and spool.depth().frames == 0
