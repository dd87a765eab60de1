"""``hipstride analyze --recording`` on recordings with holes (frames missing for seconds).

The recordings are made the way the pipeline keeps them: the simulator's streams framed in
50 ms frames by the edge agent's framer, written with the .hsrec writer, with the frames of a
time span left out (a Wi-Fi drop, a station not yet assigned).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from hipstride.edge.framing import Framer
from hipstride.edge.simulator import simulate
from hipstride.edge.sources.base import Block
from hipstride.recording import RecordingWriter

T0 = 1_750_000_000 * 10**9
ALL = None


def analyze(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipstride.cli", "analyze", "--no-progress",
                           *map(str, args)], capture_output=True, text=True, timeout=180)


def write_with_hole(session, path, hole_s: tuple[float, float], streams=ALL):
    """The session as recorded, without the frames starting in ``hole_s`` (of ``streams``)."""
    with RecordingWriter(path) as w:
        w.write_metadata({"station": "tm1", "session": "unassigned"})
        for name, samples in session.data.items():
            desc = session.description(name)
            w.write_description(desc)
            framer = Framer(desc, frame_ms=50, next_seq=0, epoch=1)
            frames = framer.push(Block(name, samples, first_timestamp_ns=T0)) + framer.flush()
            for f in frames:
                t = (f.t0_ns - T0) / 1e9
                if hole_s[0] - 1e-9 <= t < hole_s[1] and (streams is ALL or name in streams):
                    continue
                w.write_frame(f.payload, name)
    return path


def strides(folder) -> list[dict]:
    with open(folder / "strides.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def session():
    return simulate(60.0, seed=31)


@pytest.fixture(scope="module")
def whole(session, tmp_path_factory):
    """The same session without a hole, analysed: the reference for every stride."""
    folder = tmp_path_factory.mktemp("whole")
    path = write_with_hole(session, folder / "whole.hsrec", (-1.0, -1.0))
    proc = analyze("--recording", path, "--out", folder / "out")
    assert proc.returncode == 0, proc.stderr
    return {(r["side"], round(float(r["stride_start_s"]), 3)): r for r in strides(folder / "out")}


def test_wifi_drop_mid_run_gives_strides_on_both_sides_and_none_across(session, whole,
                                                                      tmp_path):
    path = write_with_hole(session, tmp_path / "drop.hsrec", (25.0, 35.0))
    proc = analyze("--recording", path, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = strides(tmp_path / "out")
    for side in ("l", "r"):
        mine = [r for r in rows if r["side"] == side and r["valid"] == "True"]
        assert sum(float(r["stride_start_s"]) < 25.0 for r in mine) >= 20
        assert sum(float(r["stride_start_s"]) > 35.0 for r in mine) >= 25
    for r in rows:  # no stride spans the hole
        a = float(r["stride_start_s"])
        assert a + float(r["stride_time_s"]) <= 25.0 + 1e-6 or a >= 35.0 - 1e-6, r
    # Every stride is one the hole-free analysis found, with nearly the same metrics: before
    # the hole only the functional axes differ (from 20 s of running, not 55 s), after it the
    # orientation starts again without the standing pose.
    for r in rows:
        ref = whole[(r["side"], round(float(r["stride_start_s"]), 3))]
        tol = 0.1 if float(r["stride_start_s"]) < 25.0 else 1.0
        for col in ("peak_hip_extension_deg", "peak_hip_flexion_deg",
                    "peak_anterior_tilt_deg"):
            assert float(r[col]) == pytest.approx(float(ref[col]), abs=tol), (col, r)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["holes"]) == 1
    hole = summary["holes"][0]
    assert hole["start_s"] == pytest.approx(25.0, abs=1e-3)
    assert hole["end_s"] == pytest.approx(35.0, abs=1e-3)
    assert set(hole["streams"]) == {"emg", *(f"imu_{s}" for s in (
        "pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"))}
    assert [(p["start_s"], p["end_s"]) for p in summary["parts"]] == [(0.0, 25.0), (35.0, 60.0)]
    assert all(p["strides"] > 40 for p in summary["parts"])
    assert any("hole at 25.00–35.00 s" in p for p in summary["quality"]["problems"])
    assert "hole at 25.00–35.00 s" in (tmp_path / "out" / "report.html").read_text()


def test_the_issue_recording_analyses_after_its_hole(session, whole, tmp_path):
    """1.75 s of frames, a 16.7 s hole, then the rest (issue 11): the standing period is cut
    at the hole, and the running after it is analysed with that calibration."""
    path = write_with_hole(session, tmp_path / "unassigned.hsrec", (1.75, 18.45))
    proc = analyze("--recording", path, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "the standing period 0–5 s is cut by a hole: calibrated on 0–1.75 s" in proc.stderr
    rows = strides(tmp_path / "out")
    valid = [r for r in rows if r["valid"] == "True"]
    assert {r["side"] for r in valid} == {"l", "r"}
    assert len(valid) >= 100
    assert all(float(r["stride_start_s"]) >= 18.45 for r in rows)
    for r in valid:
        ref = whole[(r["side"], round(float(r["stride_start_s"]), 3))]
        assert float(r["peak_hip_extension_deg"]) == pytest.approx(
            float(ref["peak_hip_extension_deg"]), abs=1.0)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(h["start_s"], h["end_s"]) for h in summary["holes"]] == [(1.75, 18.45)]


def test_a_hole_in_one_stream_only_splits_too(session, tmp_path):
    path = write_with_hole(session, tmp_path / "thigh.hsrec", (25.0, 35.0), {"imu_thigh_l"})
    proc = analyze("--recording", path, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [h["streams"] for h in summary["holes"]] == [["imu_thigh_l"]]
    for r in strides(tmp_path / "out"):
        a = float(r["stride_start_s"])
        assert a + float(r["stride_time_s"]) <= 25.0 + 1e-6 or a >= 35.0 - 1e-6


def test_standing_cut_short_by_a_hole_is_refused_with_the_window_and_the_hole(session,
                                                                             tmp_path):
    path = write_with_hole(session, tmp_path / "short.hsrec", (0.6, 18.45))
    proc = analyze("--recording", path, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Eigenvalues" not in proc.stderr
    assert ("the standing period 0–5 s is cut by a hole at 0.60–18.45 s (17.85 s without "
            "samples in emg, imu_pelvis") in proc.stderr
    assert "only 0.60 s of standing before it" in proc.stderr
    assert "needs at least 1.5 s of standing still without a hole" in proc.stderr
    assert not (tmp_path / "out" / "strides.csv").exists()
