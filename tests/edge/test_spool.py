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
