from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import pytest

from hipstride.config import ConfigError, Section
from hipstride.csvformat import write_csv
from hipstride.edge.sources.base import Block, SourceError
from hipstride.edge.sources.replay import ReplaySource, from_config
from hipstride.frames import encode_frame
from hipstride.recording import RecordingWriter
from hipstride.streams import emg_description, imu_description
from tests.support.csvdata import emg_table, imu_table

T0_NS = 1_700_000_000_123_456_789


def make_recording(path, *, n_frames: int = 6, skip: tuple[int, ...] = ()):
    """EMG frames of 100 samples at 2 kHz and pelvis IMU frames of 10 at 200 Hz, interleaved."""
    rng = np.random.default_rng(7)
    emg, imu = emg_description(), imu_description("pelvis")
    sent: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    with RecordingWriter(path) as w:
        w.write_metadata({"station": "tm1"})
        w.write_description(emg)
        w.write_description(imu)
        for i in range(n_frames):
            for desc, n in ((emg, 100), (imu, 10)):
                t0 = T0_NS + i * 50_000_000
                x = rng.normal(0, 1, (n, desc.n_channels)).astype(np.float32)
                if i in skip:
                    continue
                w.write_frame(encode_frame(desc.stream, i, t0, desc.rate_hz, x), desc.stream)
                sent[desc.stream].append((t0, x))
    return sent


def drain(source, *, limit_s: float = 10.0) -> list[Block]:
    blocks: list[Block] = []
    deadline = time.monotonic() + limit_s
    while not source.finished and time.monotonic() < deadline:
        blocks += source.read(0.2)
    assert source.finished
    return blocks


def by_stream(blocks: list[Block]) -> dict[str, list[Block]]:
    out: dict[str, list[Block]] = defaultdict(list)
    for b in blocks:
        out[b.stream].append(b)
    return out


def test_recording_replays_every_frame_with_its_timestamp(tmp_path):
    sent = make_recording(tmp_path / "s.hsrec")
    source = from_config(Section({"recording": str(tmp_path / "s.hsrec"), "speed": 0}, "replay"))
    assert source.realtime is False and not source.finished
    assert {d.stream for d in source.descriptions} == {"emg", "imu_pelvis"}
    assert source.metadata == [{"station": "tm1"}]
    got = by_stream(drain(source))
    for stream, frames in sent.items():
        assert [b.first_timestamp_ns for b in got[stream]] == [t0 for t0, _ in frames]
        assert np.array_equal(np.vstack([b.samples for b in got[stream]]),
                              np.vstack([x for _, x in frames]))
        assert all(b.dropped_before == 0 for b in got[stream])
    assert source.problems == []
    assert source.read(0.01) == []


def test_a_missing_frame_shows_as_dropped_samples(tmp_path):
    make_recording(tmp_path / "s.hsrec", skip=(2,))
    got = by_stream(drain(ReplaySource(recording=tmp_path / "s.hsrec", speed=0)))
    assert [b.dropped_before for b in got["emg"]] == [0, 0, 100, 0, 0]
    assert [b.dropped_before for b in got["imu_pelvis"]] == [0, 0, 10, 0, 0]


def test_a_corrupt_tail_replays_everything_before_it_and_is_reported(tmp_path):
    path = tmp_path / "s.hsrec"
    sent = make_recording(path)
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # the last frame (an IMU frame) is cut short
    source = ReplaySource(recording=path, speed=0)
    got = by_stream(drain(source))
    assert len(got["emg"]) == len(sent["emg"])
    assert len(got["imu_pelvis"]) == len(sent["imu_pelvis"]) - 1
    assert np.array_equal(got["imu_pelvis"][-1].samples, sent["imu_pelvis"][-2][1])
    assert len(source.problems) == 1 and "cut short" in source.problems[0]
    assert str(path) in source.problems[0]


def test_a_corrupt_frame_is_skipped_and_reported(tmp_path):
    path = tmp_path / "s.hsrec"
    sent = make_recording(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # somewhere inside a frame's samples
    path.write_bytes(bytes(data))
    source = ReplaySource(recording=path, speed=0)
    got = drain(source)
    assert len(got) == sum(len(v) for v in sent.values()) - 1
    assert len(source.problems) == 1 and "checksum" in source.problems[0]


def test_csv_replay_returns_every_sample_at_start_plus_time_s(tmp_path):
    emg, imu = emg_table(n=450, start_s=2.0), imu_table(n=45, start_s=2.0)
    write_csv(tmp_path / "emg.csv", emg)
    write_csv(tmp_path / "imu.csv", imu)
    start_s = 1_700_000_000
    source = from_config(Section({"emg": "emg.csv", "imu": "imu.csv", "speed": 0,
                                  "start": start_s, "block_ms": 20}, "replay"),
                         base_dir=tmp_path)
    got = by_stream(drain(source))
    assert sorted(got) == ["emg", "imu_pelvis", "imu_thigh_l", "imu_thigh_r"]
    emg_blocks = got["emg"]
    assert [len(b.samples) for b in emg_blocks] == [40] * 11 + [10]
    assert np.array_equal(np.vstack([b.samples for b in emg_blocks]),
                          emg.samples.astype(np.float32))
    expected_t0 = [start_s * 10**9 + round(emg.time_s[i] * 1e9) for i in range(0, 450, 40)]
    assert [b.first_timestamp_ns for b in emg_blocks] == expected_t0
    thigh = np.vstack([b.samples for b in got["imu_thigh_l"]])
    columns = [imu.channels.index(f"thigh_l_{c}") for c in
               ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")]
    assert np.array_equal(thigh, imu.samples[:, columns].astype(np.float32))
    assert got["imu_pelvis"][1].first_timestamp_ns == (start_s + 2) * 10**9 + 20_000_000


def test_csv_replay_starts_now_by_default(tmp_path):
    write_csv(tmp_path / "emg.csv", emg_table(n=100, start_s=30.0))
    source = ReplaySource(emg_csv=tmp_path / "emg.csv", speed=0)
    before = time.time_ns()
    first = source.read(1.0)[0]
    assert before - 10**6 <= first.first_timestamp_ns <= time.time_ns()


def test_speed_one_takes_about_real_time_and_speed_zero_does_not(tmp_path):
    write_csv(tmp_path / "emg.csv", emg_table(n=1000))  # 0.5 s at 2 kHz
    for speed, low, high in ((1.0, 0.45, 0.9), (2.0, 0.22, 0.5), (0.0, 0.0, 0.2)):
        source = ReplaySource(emg_csv=tmp_path / "emg.csv", speed=speed)
        begin = time.monotonic()
        blocks = drain(source)
        elapsed = time.monotonic() - begin
        assert sum(len(b.samples) for b in blocks) == 1000
        assert low <= elapsed <= high, (speed, elapsed)


def test_read_returns_nothing_before_the_next_block_is_due(tmp_path):
    write_csv(tmp_path / "emg.csv", emg_table(n=1000))
    source = ReplaySource(emg_csv=tmp_path / "emg.csv", speed=1.0, block_ms=200)
    begin = time.monotonic()
    assert source.read(0.05) == []
    assert 0.04 <= time.monotonic() - begin < 0.15
    assert len(source.read(0.5)[0].samples) == 400


def test_loop_starts_over_with_increasing_timestamps(tmp_path):
    sent = make_recording(tmp_path / "s.hsrec", n_frames=3)
    source = ReplaySource(recording=tmp_path / "s.hsrec", speed=0, loop=True)
    blocks: list[Block] = []
    while len(blocks) < 4 * 6:
        blocks += source.read(0.1)
    assert not source.finished
    emg = [b for b in blocks if b.stream == "emg"]
    stamps = [b.first_timestamp_ns for b in emg]
    assert stamps == [T0_NS + i * 50_000_000 for i in range(len(stamps))]
    assert np.array_equal(emg[3].samples, sent["emg"][0][1])


def test_config_problems_name_the_key_and_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"\[replay\] recording: file .*nope.hsrec does not"):
        from_config(Section({"recording": str(tmp_path / "nope.hsrec")}, "replay"))
    with pytest.raises(ConfigError, match="nothing to replay"):
        from_config(Section({"speed": 1}, "replay"))
    with pytest.raises(ConfigError, match=r"unknown setting.*sped"):
        from_config(Section({"sped": 1}, "replay"))
    write_csv(tmp_path / "emg.csv", emg_table(n=100))
    with pytest.raises(ConfigError, match=r"\[replay\] speed: expected a number >= 0"):
        from_config(Section({"emg": str(tmp_path / "emg.csv"), "speed": -1}, "replay"))
    (tmp_path / "bad.hsrec").write_bytes(b"not a recording")
    with pytest.raises(SourceError, match=r"bad\.hsrec: not a HipStride recording"):
        from_config(Section({"recording": str(tmp_path / "bad.hsrec")}, "replay"))


def test_a_bad_csv_names_the_file_and_a_rename_file_fixes_it(tmp_path):
    table = emg_table(n=100)
    text = (tmp_path / "x.csv")
    write_csv(text, table)
    content = text.read_text().replace("glute_max_l", "EMG1", 1)
    text.write_text(content)
    with pytest.raises(SourceError, match=r"emg CSV: .*x\.csv: unknown column\(s\) 'EMG1'"):
        from_config(Section({"emg": str(text), "speed": 0}, "replay"))
    (tmp_path / "map.txt").write_text("EMG1=glute_max_l\n")
    source = from_config(Section({"emg": "x.csv", "map": "map.txt", "speed": 0}, "replay"),
                         base_dir=tmp_path)
    blocks = drain(source)
    assert source.descriptions[0].channel_names[0] == "glute_max_l"
    assert np.array_equal(np.vstack([b.samples for b in blocks]),
                          table.samples.astype(np.float32))
