"""``hipstride analyze`` end to end: simulated files in, the documented outputs out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.edge.simulator.export import write_csv_pair, write_recording
from hipstride.pipeline.engine.schema import METRIC_COLUMNS, STRIDE_COLUMNS


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipstride.cli", "analyze", "--no-progress",
                           *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("session")
    session = simulate(60.0, profile="hamstring_dominant", seed=31)
    emg, imu = write_csv_pair(session, folder)
    recording = write_recording(session, folder / "session.hsrec", start_ns=1_750_000_000 * 10**9)
    return {"emg": emg, "imu": imu, "recording": recording, "folder": folder,
            "truth": session.truth}


def test_csv_pair_gives_strides_summary_and_report(files, tmp_path):
    out = tmp_path / "out"
    proc = analyze("--emg", files["emg"], "--imu", files["imu"], "--out", out,
                   "--athlete", "Sam <b>")
    assert proc.returncode == 0, proc.stderr
    with open(out / "strides.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == STRIDE_COLUMNS
    assert set(METRIC_COLUMNS) <= set(reader.fieldnames)
    assert {r["side"] for r in rows} == {"l", "r"}
    valid = [r for r in rows if r["valid"] == "True"]
    truth_steady = [s for s in files["truth"].strides if s["steady"]]
    assert len(valid) >= 0.95 * len(truth_steady)
    assert {r["normalization"] for r in rows} == {"relative"}
    summary = json.loads((out / "summary.json").read_text())
    for side in ("l", "r"):
        stats = summary["sides"][side]
        assert stats["strides"] == sum(1 for r in valid if r["side"] == side)
        ext = [float(r["peak_hip_extension_deg"]) for r in valid if r["side"] == side]
        assert stats["peak_hip_extension_deg"]["mean"] == pytest.approx(np.mean(ext), abs=1e-3)
    assert "symmetry_pct" in summary and "cues" in summary
    assert any("relative" in p for p in summary["quality"]["problems"])
    report = (out / "report.html").read_text()
    assert "Sam &lt;b&gt;" in report and "<img" in report


def test_recording_gives_the_same_strides_as_the_csv_pair(files, tmp_path):
    a = analyze("--emg", files["emg"], "--imu", files["imu"], "--out", tmp_path / "a")
    b = analyze("--recording", files["recording"], "--out", tmp_path / "b")
    assert a.returncode == 0 and b.returncode == 0, b.stderr

    def starts(folder):
        with open(folder / "strides.csv") as f:
            return [(r["side"], float(r["stride_start_s"])) for r in csv.DictReader(f)
                    if r["valid"] == "True"]

    sa, sb = starts(tmp_path / "a"), starts(tmp_path / "b")
    assert len(sa) == len(sb)
    assert all(x[0] == y[0] and abs(x[1] - y[1]) < 0.002 for x, y in zip(sa, sb, strict=True))


def test_missing_channels_are_named_and_the_rest_is_computed(files, tmp_path):
    emg_only_glutes = tmp_path / "emg.csv"
    with open(files["emg"]) as src, open(emg_only_glutes, "w") as dst:
        for line in src:
            cells = line.rstrip("\n").split(",")
            dst.write(",".join(cells[:2] + cells[3:]) + "\n")  # drop glute_max_r
    proc = analyze("--emg", emg_only_glutes, "--imu", files["imu"], "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert "glute_max_r" in proc.stderr
    with open(tmp_path / "o" / "strides.csv") as f:
        right = [r for r in csv.DictReader(f) if r["side"] == "r" and r["valid"] == "True"]
    assert right and all(r["glute_ham_ratio"] == "" for r in right)
    assert all(r["peak_hip_extension_deg"] != "" for r in right)


@pytest.mark.parametrize("args, message", [
    (["--emg", "nope.csv", "--imu", "nope2.csv"], "nope"),
    ([], "give exactly one input"),
    (["--recording", "x.hsrec", "--c3d", "y.c3d"], "give exactly one input"),
])
def test_bad_inputs_exit_with_a_message(tmp_path, args, message):
    proc = analyze(*args, "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_file_without_running_says_too_few_strides(tmp_path):
    session = simulate(12.0, profile="healthy", seed=3, standing_s=11.0)
    emg, imu = write_csv_pair(session, tmp_path)
    proc = analyze("--emg", emg, "--imu", imu, "--out", tmp_path / "o")
    assert proc.returncode == 1
    assert "too few strides" in proc.stderr


def test_help_explains_inputs_and_outputs():
    proc = subprocess.run([sys.executable, "-m", "hipstride.cli", "analyze", "--help"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for word in ("--emg", "--recording", "--c3d", "strides.csv", "summary.json", "report.html",
                 "--standing-s", "--mvc", "relative"):
        assert word in proc.stdout


def test_one_recording_with_run_mvc_and_prone_test(tmp_path):
    session = simulate(200.0, profile="hamstring_dominant", seed=33, mvc=True, prone=True)
    recording = write_recording(session, tmp_path / "s.hsrec")
    mvc, prone = session.truth.phase("mvc"), session.truth.phase("prone")
    proc = analyze("--recording", recording, "--out", tmp_path / "o",
                   "--mvc-window", f"{mvc['start_s']}:{mvc['end_s']}",
                   "--prone", f"{prone['start_s']}:{prone['end_s']}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["quality"]["normalization"] == "mvc"
    assert "hamstring_dominant" in summary["classification"]
    phe = summary["prone_hip_extension"]
    assert len(phe["repetitions"]) == len(session.truth.prone_reps)
    assert any("glute" in advice for side in phe["advice"].values() for advice in side)
    report = (tmp_path / "o" / "report.html").read_text()
    assert "Prone hip extension" in report and "bird dogs" in report


def test_bad_window_option_is_named(files, tmp_path):
    proc = analyze("--emg", files["emg"], "--imu", files["imu"], "--out", tmp_path / "o",
                   "--prone", "later")
    assert proc.returncode != 0
    assert "--prone 'later': expected START:END" in proc.stderr
