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


def test_calibration_records_come_back_with_the_frames_before_them_counted(tmp_path):
    path = tmp_path / "s.hsrec"
    d = emg_description()
    state = {"standing": {"version": 1, "imu": {}, "emg": None}, "mvc": None,
             "baseline": None, "running": None}
    with RecordingWriter(path) as w:
        w.write_description(d)
        w.write_calibration(state, station="tm1", data_ns=5, made_ns=3)
        w.write_frame(encode_frame("emg", 0, 0, 2000.0, np.zeros((4, 6), np.float32)), "emg")
        w.write_calibration(state, station="tm1", data_ns=9, resumed=True,
                            settings={"standing_s": 5.0})
    rec = read_recording(path)
    assert [(c["index"], c["data_ns"], c["made_ns"], c["resumed"]) for c in rec.calibrations
            ] == [(0, 5, 3, False), (1, 9, None, True)]
    assert rec.calibrations[0]["state"] == state and rec.calibrations[0]["station"] == "tm1"
    assert rec.calibrations[1]["settings"] == {"standing_s": 5.0} and rec.problems == []


def test_unknown_kinds_and_calibration_versions_are_skipped_and_named(tmp_path):
    import json

    from hipstride.recording import KIND_CALIBRATION, MAGIC, RECORD

    body = json.dumps({"version": 2, "state": {}}).encode()
    path = tmp_path / "s.hsrec"
    path.write_bytes(MAGIC + RECORD.pack(9, 2) + b"{}" + RECORD.pack(KIND_CALIBRATION,
                                                                      len(body)) + body)
    rec = read_recording(path)
    assert rec.calibrations == [] and len(rec.problems) == 2
    assert "unknown kind 9" in rec.problems[0]
    assert "version 2" in rec.problems[1] and "upgrade" in rec.problems[1]
