import numpy as np
import pytest

from hipstride.frames import encode_frame
from hipstride.recording import RecordingError, RecordingWriter, read_recording
from hipstride.streams import emg_description


def _write(path, n_frames=5):
    d = emg_description()
    payloads = [encode_frame("emg", i, i * 50_000_000, 2000.0,
                             np.full((100, 6), i, np.float32)) for i in range(n_frames)]
    with RecordingWriter(path) as w:
        w.write_metadata({"station": "tm1"})
        w.write_description(d)
        for p in payloads:
            w.write_frame(p, "emg")
    return d, payloads


def test_a_recording_gives_back_every_frame_in_order(tmp_path):
    d, payloads = _write(tmp_path / "s.hsrec")
    rec = read_recording(tmp_path / "s.hsrec")
    assert rec.descriptions == {"emg": d}
    assert [f.seq for f in rec.frames] == list(range(len(payloads)))
    assert rec.metadata == [{"station": "tm1"}] and rec.problems == []


def test_a_cut_off_tail_keeps_everything_before_it(tmp_path):
    path = tmp_path / "s.hsrec"
    _write(path)
    path.write_bytes(path.read_bytes()[:-100])
    rec = read_recording(path)
    assert [f.seq for f in rec.frames] == [0, 1, 2, 3]
    assert len(rec.problems) == 1 and "cut short" in rec.problems[0]


def test_appending_continues_an_existing_recording(tmp_path):
    path = tmp_path / "s.hsrec"
    d, _ = _write(path, 2)
    with RecordingWriter(path, append=True) as w:
        w.write_description(d)
        w.write_frame(encode_frame("emg", 2, 0, 2000.0, np.zeros((1, 6), np.float32)), "emg")
    assert [f.seq for f in read_recording(path).frames] == [0, 1, 2]


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / "x.hsrec"
    path.write_bytes(b"hello world")
    with pytest.raises(RecordingError, match="not a HipStride recording"):
        read_recording(path)
    with pytest.raises(RecordingError, match="refusing"):
        RecordingWriter(path, append=True)


def test_frames_before_their_description_are_refused(tmp_path):
    with RecordingWriter(tmp_path / "s.hsrec") as w, pytest.raises(RecordingError):
        w.write_frame(b"x", "emg")
