"""``hipstride analyze --recording`` on a pipeline session recording that starts mid-run.

A station of the pipeline (:class:`~hipstride.pipeline.service.station.Station`, in process,
no broker) is fed a simulated run frame by frame, as the service feeds it, with a session that
starts once the runner is running; its session recording carries the engine's calibration
(record kind 4). ``hipstride analyze`` must use it and give the strides the station produced.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hipstride.edge.simulator.session import SessionConfig, SessionGenerator
from hipstride.frames import decode_frame, encode_frame
from hipstride.pipeline.io import SessionInputError, read_recording
from hipstride.pipeline.io.recording import choose_calibration
from hipstride.pipeline.service.sessions import Interval, Timeline
from hipstride.pipeline.service.station import Station
from hipstride.recording import read_recording as read_hsrec

T0_NS = 1_700_000_000_000_000_000
DURATION_S, START_S, END_S = 45.0, 22.0, 42.0


def run_station(folder: Path, start_s: float, end_s: float) -> tuple[list[dict], Path]:
    """Stride rows the station produced in the session (absolute ``time_ns`` added), and
    the session's recording. 20 ms frames per stream, a poll every 100 ms of data."""
    gen = SessionGenerator(SessionConfig(duration_s=DURATION_S, profile="healthy", seed=5))
    timeline = Timeline([Interval("s1", "ana", T0_NS + round(start_s * 1e9),
                                  T0_NS + round(end_s * 1e9))])
    station = Station("tm1", folder, timeline=timeline)
    for description in gen.descriptions:
        station.describe(description)
    rates = {d.stream: d.rate_hz for d in gen.descriptions}
    seq = dict.fromkeys(rates, 0)
    rows = []
    for k in range(round(DURATION_S / 0.02)):
        for stream, rate in rates.items():
            n = round(0.02 * rate)
            payload = encode_frame(stream, seq[stream],
                                   T0_NS + round(seq[stream] * n / rate * 1e9), rate,
                                   gen.read(stream, n))
            station.accept(decode_frame(payload), payload)
            seq[stream] += 1
        if k % 5 == 4:
            out = station.poll()
            rows += [{**r, "time_ns": out.origin_ns + round(r["stride_start_s"] * 1e9)}
                     for r in out.engine.rows]
            station.calibration_update()
            station.flush()
    station.close()
    iv = timeline.intervals[0]
    return ([r for r in rows if iv.start_ns <= r["time_ns"] < iv.end_ns],
            folder / "tm1" / "tm1-s1.hsrec")


def analyze(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipstride.cli", "analyze", "--no-progress",
                           *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def mid_run(tmp_path_factory) -> tuple[list[dict], Path]:
    return run_station(tmp_path_factory.mktemp("mid-run"), START_S, END_S)


def test_a_mid_run_session_is_analysed_with_the_recorded_calibration(mid_run, tmp_path):
    live, recording = mid_run
    rec = read_hsrec(recording)
    assert rec.calibrations and rec.calibrations[0]["index"] == 0  # written at session start
    assert rec.calibrations[0]["station"] == "tm1"
    assert rec.calibrations[0]["made_ns"] == T0_NS + 5 * 10**9  # end of the standing period
    proc = analyze("--recording", recording, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("calibration from the recording, made at 2023-11-14 22:13:25 UTC on station tm1"
            in proc.stdout), proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["calibration"]["source"] == "recording"
    assert summary["calibration"]["station"] == "tm1"
    with open(tmp_path / "strides.csv", newline="") as f:
        offline = {(r["side"], summary["start_time_ns"] + round(float(r["stride_start_s"])
                                                                * 1e9)): r
                   for r in csv.DictReader(f)}
    matched = kinematic = 0
    for row in live:
        hit = [r for (side, t), r in offline.items()
               if side == row["side"] and abs(t - row["time_ns"]) < 3_000_000]
        if not hit:  # only the last stride per side: its closing IC is past the file's end
            assert T0_NS + END_S * 1e9 - row["time_ns"] < 1.5e9, row["time_ns"]
            continue
        matched += 1
        (off,) = hit
        for metric, tol in (("glute_onset_ms", 1.0), ("hamstring_onset_ms", 1.0),
                            ("peak_hip_extension_deg", 1.0), ("hip_rom_deg", 1.0),
                            ("peak_anterior_tilt_deg", 0.5), ("stride_time_s", 1e-3)):
            a, b = row[metric], float(off[metric]) if off[metric] else math.nan
            if math.isfinite(a) and math.isfinite(b):
                kinematic += metric == "peak_hip_extension_deg"
                assert abs(a - b) <= tol, (metric, a, b)
        a, b = row["glute_ham_ratio"], float(off["glute_ham_ratio"] or "nan")
        assert not (math.isfinite(a) and math.isfinite(b)) or abs(a - b) <= 0.05 * a
        # the first 8 s after the file's start are the orientation filters' recovery
        if float(off["stride_start_s"]) < 7.5:
            assert "dropout:imu" in off["quality"] and not off["peak_hip_extension_deg"]
    assert matched == len(offline) and matched >= len(live) - 2 and kinematic >= 20


def test_a_recording_with_a_standing_period_keeps_the_standing_calibration(tmp_path):
    _live, recording = run_station(tmp_path / "rec", 0.0, 30.0)
    assert read_hsrec(recording).calibrations[0]["index"] > 0  # calibrated during the file
    session = read_recording(recording)
    assert session.calibration is None
    proc = analyze("--recording", recording, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "calibration from the standing period (first 5 s)" in proc.stdout


def test_a_recording_without_standing_or_calibration_says_what_to_do(mid_run, tmp_path):
    _live, recording = mid_run
    data = recording.read_bytes()
    stripped = tmp_path / "no-calibration.hsrec"
    # rewrite the file without its calibration records (kind 4)
    from hipstride.recording import KIND_CALIBRATION, MAGIC, RECORD, iter_records

    with open(recording, "rb") as f:
        stripped.write_bytes(MAGIC + b"".join(RECORD.pack(kind, len(body)) + body
                                              for kind, body in iter_records(f)
                                              if kind != KIND_CALIBRATION))
    assert len(stripped.read_bytes()) < len(data)
    with pytest.raises(SessionInputError) as err:
        read_recording(stripped)
    message = str(err.value)
    assert "no standing period" in message and "session recording the pipeline keeps" in message
    assert "record about 5 s of quiet standing" in message or "--standing-s" in message
    proc = analyze("--recording", stripped, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "session recording the pipeline keeps" in proc.stderr


def test_choose_calibration_keeps_what_the_engine_learned_later_and_notes_a_recalibration():
    standing = {"version": 1, "imu": {"pelvis": {"a": 1}}, "emg": None}
    first = {"index": 0, "station": "tm1", "made_ns": 1, "data_ns": 10, "state": {
        "standing": standing, "mvc": None, "baseline": None,
        "running": {"version": 1, "emg_reference": None, "imu": {}}}}
    later = {"index": 50, "station": "tm1", "made_ns": 1, "data_ns": 20, "state": {
        "standing": standing, "mvc": None, "baseline": {"b": 2},
        "running": {"version": 1, "emg_reference": {"channels": ["x"]}, "imu": {}}}}
    other = {"index": 90, "station": "tm1", "made_ns": 30 * 10**9, "data_ns": 31, "state": {
        "standing": {**standing, "imu": {}}, "mvc": None, "baseline": None, "running": None}}
    chosen, notes = choose_calibration([first, later, other])
    assert chosen["state"]["running"] == later["state"]["running"]
    assert chosen["state"]["baseline"] == {"b": 2} and chosen["learned_until_ns"] == 20
    assert chosen["state"]["standing"] == standing and chosen["made_ns"] == 1
    assert len(notes) == 2 and "calibrated again" in notes[1]
    assert "1970-01-01 00:00:30 UTC" in notes[1]
