from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hipstride.edge.framing import Framer
from hipstride.edge.sources.base import Block
from hipstride.frames import encode_frame
from hipstride.pipeline.io import SessionInputError, read_recording
from hipstride.recording import RecordingWriter
from hipstride.streams import imu_description

T0 = 1_700_000_000 * 10**9
EMG_DELAY_NS = 3_000_000  # the EMG stream starts 3 ms after the IMUs


def frames_of(sim, stream: str) -> list[bytes]:
    """The stream framed in 50 ms frames, as the edge agent publishes them."""
    desc = sim.description(stream)
    framer = Framer(desc, frame_ms=50, next_seq=0, epoch=7)
    t0 = T0 + (EMG_DELAY_NS if stream == "emg" else 0)
    out = framer.push(Block(stream, sim.data[stream], first_timestamp_ns=t0)) + framer.flush()
    return [f.payload for f in out]


def write(path, sim, *, streams=None, edit=None, descriptions=None):
    """Write a recording; ``edit(stream, payloads)`` may drop, repeat or reorder frames."""
    streams = streams or [d.stream for d in sim.descriptions]
    with RecordingWriter(path) as w:
        w.write_metadata({"station": "tm1", "athlete": "a1"})
        for stream in streams:
            w.write_description((descriptions or {}).get(stream, sim.description(stream)))
            payloads = frames_of(sim, stream)
            for p in edit(stream, payloads) if edit else payloads:
                w.write_frame(p, stream)
    return path


def test_round_trip_is_sample_exact_on_session_time(tmp_path, sim_straps):
    sim = sim_straps
    s = read_recording(write(tmp_path / "s.hsrec", sim))
    assert s.start_time_ns == T0
    assert s.problems == [] and s.gaps == ()
    assert s.emg.channels == sim.description("emg").channel_names
    assert s.emg.rate_hz == 2000.0 and s.emg.signal == "raw"
    assert s.emg.start_s == pytest.approx(0.003, abs=1e-12)
    assert np.array_equal(s.emg.samples_mv, sim.data["emg"].astype(np.float64))
    assert list(s.imus) == ["pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"]
    for seg, imu in s.imus.items():
        x = sim.data[f"imu_{seg}"].astype(np.float64)
        assert imu.start_s == 0.0 and imu.rate_hz == 200.0
        assert np.array_equal(imu.acc_mps2, x[:, :3]) and np.array_equal(imu.gyr_dps, x[:, 3:])
        assert np.array_equal(imu.mounting, np.asarray(sim.description(f"imu_{seg}").mounting))
    assert s.metadata["recording"] == {"station": "tm1", "athlete": "a1"}
    assert s.source == "s.hsrec"


def test_duplicates_are_dropped_and_gaps_filled_and_reported(tmp_path, sim):
    def edit(stream, payloads):
        if stream == "emg":
            # frames 10-12 delivered twice (at-least-once), out of order; 40-44 lost (250 ms)
            return payloads[:13] + payloads[12:9:-1] + payloads[13:40] + payloads[45:]
        if stream == "imu_thigh_l":
            return payloads[:20] + payloads[21:]  # one 50 ms frame lost
        return payloads

    s = read_recording(write(tmp_path / "s.hsrec", sim, edit=edit))
    assert s.metadata["streams"]["emg"]["duplicates"] == 3
    assert len(s.emg.samples_mv) == len(sim.data["emg"])
    # The short gap: interpolated, everything else untouched.
    thigh = s.imus["thigh_l"]
    x = sim.data["imu_thigh_l"].astype(np.float64)
    assert len(thigh.acc_mps2) == len(x)
    assert np.array_equal(thigh.acc_mps2[:200], x[:200, :3])
    assert np.array_equal(thigh.gyr_dps[210:], x[210:, 3:])
    w = np.arange(1, 11)[:, None] / 11
    assert np.allclose(thigh.acc_mps2[200:210], x[199, :3] * (1 - w) + x[210, :3] * w)
    # The long gap: NaN, reported with what it costs.
    emg = s.emg.samples_mv
    assert np.isnan(emg[4000:4500]).all() and np.isfinite(np.delete(emg, range(4000, 4500),
                                                                     axis=0)).all()
    by_stream = {g.stream: g for g in s.gaps}
    assert by_stream["imu_thigh_l"].filled == "interpolated"
    assert by_stream["imu_thigh_l"].start_s == pytest.approx(1.0)
    assert by_stream["imu_thigh_l"].end_s == pytest.approx(1.05)
    assert by_stream["emg"].filled == "nan"
    assert by_stream["emg"].start_s == pytest.approx(2.003)
    assert by_stream["emg"].duration_s == pytest.approx(0.25)
    text = "\n".join(s.problems)
    assert "'imu_thigh_l': 50 ms gap at t = 1.000–1.050 s (1 frame(s) missing, seq 20)" in text
    assert "filled by linear interpolation" in text
    assert "'emg': 250 ms gap at t = 2.003–2.253 s (5 frame(s) missing, seq 40–44)" in text
    assert "left as NaN" in text and "EMG onsets and glute:hamstring ratios" in text


def test_timestamps_going_backwards_are_an_error_naming_the_stream(tmp_path, sim):
    desc = sim.description("imu_pelvis")
    x = sim.data["imu_pelvis"]
    with RecordingWriter(tmp_path / "s.hsrec") as w:
        w.write_description(desc)
        w.write_frame(encode_frame("imu_pelvis", 0, T0, 200.0, x[:10]))
        w.write_frame(encode_frame("imu_pelvis", 1, T0 + 50_000_000, 200.0, x[10:20]))
        w.write_frame(encode_frame("imu_pelvis", 2, T0 - 10**9, 200.0, x[20:30]))
    with pytest.raises(SessionInputError, match=r"stream 'imu_pelvis': timestamps overlap or go "
                                                r"backwards: frame seq 2 \(epoch 0\)"):
        read_recording(tmp_path / "s.hsrec")


def test_small_clock_steps_are_absorbed_and_summarised(tmp_path, sim):
    x = sim.data["imu_thigh_r"]

    def edit(stream, payloads):
        if stream != "imu_thigh_r":
            return payloads
        # a re-anchor of +5 ms between frames 30 and 31 (seq contiguous): one sample at 200 Hz
        return payloads[:31] + [encode_frame("imu_thigh_r", 31 + k, T0 + (31 + k) * 50_000_000
                                             + 5_000_000, 200.0, x[(31 + k) * 10:(32 + k) * 10],
                                             epoch=7) for k in range(len(payloads) - 31)]

    s = read_recording(write(tmp_path / "s.hsrec", sim, edit=edit))
    assert s.gaps == ()
    assert len(s.imus["thigh_r"].acc_mps2) == len(x) + 1
    assert any("'imu_thigh_r': 1 timestamp step(s)" in p and "+5.0 ms" in p for p in s.problems)


def test_corrupt_tail_is_reported_and_the_rest_kept(tmp_path, sim):
    path = write(tmp_path / "s.hsrec", sim)
    with open(path, "ab") as f:
        f.write(b"\x02\xff\x00\x00\x00abc")  # a frame record cut short by a crash
    s = read_recording(path)
    assert any("cut short" in p for p in s.problems)
    assert np.array_equal(s.emg.samples_mv, sim.data["emg"].astype(np.float64))


def test_envelope_module_and_units_from_the_description(tmp_path, sim):
    emg = sim.description("emg")
    envelope = dataclasses.replace(
        emg, channels=tuple(dataclasses.replace(c, unit="uV", scale=1000.0)
                            for c in emg.channels), extra={"signal": "envelope"})
    s = read_recording(write(tmp_path / "s.hsrec", sim, descriptions={"emg": envelope}))
    assert s.emg.signal == "envelope"
    # raw x 1000 (scale) in µV -> x 1 in mV
    assert np.allclose(s.emg.samples_mv, sim.data["emg"].astype(np.float64))


def test_emg_in_implausible_units_is_refused(tmp_path, sim):
    emg = sim.description("emg")
    wrong = dataclasses.replace(emg, channels=tuple(dataclasses.replace(c, scale=1000.0)
                                                    for c in emg.channels))
    with pytest.raises(SessionInputError, match=r"s\.hsrec: EMG channel .* microvolts.*stream "
                                                r"description"):
        read_recording(write(tmp_path / "s.hsrec", sim, descriptions={"emg": wrong}))


def test_missing_streams_become_problems_naming_the_lost_metrics(tmp_path, sim):
    s = read_recording(write(tmp_path / "s.hsrec", sim,
                             streams=["emg", "imu_thigh_l", "imu_thigh_r"]))
    assert any(p.startswith("no pelvis IMU: no pelvic tilt") for p in s.problems)
    assert set(s.imus) == {"thigh_l", "thigh_r"}


def test_emg_alone_cannot_give_strides(tmp_path, sim):
    with pytest.raises(SessionInputError, match="no thigh or shank IMU on either side"):
        read_recording(write(tmp_path / "s.hsrec", sim, streams=["emg", "imu_pelvis"]))


def test_no_standing_period_suggests_standing_s(tmp_path):
    from hipstride.edge.simulator import simulate

    running = simulate(4.0, seed=5, standing_s=1.0, start_ramp_s=0.5, mounting="identity")
    path = write(tmp_path / "s.hsrec", running)
    with pytest.raises(SessionInputError, match=r"no standing period: every IMU moves within "
                                                r"the first 5 s .*--standing-s 1\b"):
        read_recording(path)
    s = read_recording(path, standing_s=1.0)
    assert s.problems == []


def test_not_a_recording(tmp_path):
    (tmp_path / "x.hsrec").write_bytes(b"nope")
    with pytest.raises(SessionInputError, match="not a HipStride recording"):
        read_recording(tmp_path / "x.hsrec")


def test_unknown_unit_in_description(tmp_path, sim):
    desc = imu_description("thigh_l")
    bad = dataclasses.replace(desc, channels=tuple(
        dataclasses.replace(c, unit="furlongs") if c.name == "acc_x" else c
        for c in desc.channels))
    with pytest.raises(SessionInputError, match="'imu_thigh_l' channel 'acc_x': unit 'furlongs'"):
        read_recording(write(tmp_path / "s.hsrec", sim, descriptions={"imu_thigh_l": bad}))


def test_a_hole_in_some_streams_is_reported_per_stream_and_found_by_the_engine(tmp_path):
    from hipstride.edge.simulator import simulate
    from hipstride.pipeline.engine.holes import find_holes

    sim = simulate(12.0, seed=6, mounting="identity")

    def edit(stream, payloads):  # 2 s of frames lost (Wi-Fi), in two streams only
        return payloads[:140] + payloads[180:] if stream in ("emg", "imu_pelvis") else payloads

    s = read_recording(write(tmp_path / "s.hsrec", sim, edit=edit))
    long = sorted((g.stream, g.start_s, g.end_s) for g in s.gaps if g.filled == "nan")
    assert [g[0] for g in long] == ["emg", "imu_pelvis"]
    assert long[1][1:] == pytest.approx((7.0, 9.0))
    assert np.isnan(s.imus["pelvis"].gyr_dps[1400:1800]).all()
    assert np.isfinite(s.imus["thigh_l"].gyr_dps).all()
    holes = find_holes(s.emg, s.imus)
    assert len(holes) == 1 and holes[0].streams == ("emg", "imu_pelvis")
    assert (holes[0].start_s, holes[0].end_s) == pytest.approx((7.0, 9.003), abs=1e-6)
