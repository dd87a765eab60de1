"""Real lab C3D files through ``hipstride analyze``: a clinical gait trial end to end (markers,
force plates, analog EMG), and every sample file either analysed or refused in HipStride's
words (exit 2), never a traceback or a library's text, each in bounded time."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hipstride.cli import main
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.io import read_c3d

DATA = Path(__file__).resolve().parents[1] / "data"
GAIT = DATA / "btk_gait.c3d"
SGI = DATA / "btk_sample02_sgi_int.c3d"
SAMPLES = [Path("/work/shared/realdata") / d for d in ("c3d-samples", "running")]
SHARED = sorted(p for d in SAMPLES if d.is_dir() for p in d.glob("*.c3d"))
FOREIGN = ("github", "traceback", "ezc3d", "please open")


def test_gait_trial_end_to_end(tmp_path):
    """Strides from the markers with the force plates' times, EMG onsets and ratios from the
    French-labelled analog channels (V at the amplifier output: --emg-unit mV)."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "hipstride.cli", "analyze", "--no-progress",
                           "--c3d", str(GAIT), "--emg-unit", "mV", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "strides from the file's gait events: l markers+force_plate, r markers+force_plate" \
        in proc.stdout
    with open(out / "strides.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["side"] for r in rows} == {"l", "r"}
    assert all(r["gait_method"] == "markers+force_plate" and r["valid"] == "True" for r in rows)
    for r in rows:
        assert 0.8 < float(r["stride_time_s"]) < 1.2  # walking, about 1 s a stride
        assert 50 < float(r["toe_off_pct"]) < 70       # walking stance is ~60 % of the stride
        assert float(r["glute_ham_ratio"]) > 0
        assert r["peak_hip_extension_deg"] == ""       # no IMU: no angles claimed
    assert any(r["glute_onset_ms"] for r in rows) and any(r["hamstring_onset_ms"] for r in rows)
    # The left stride's first IC is the left force plate's contact (1.55 s into the file).
    first_l = min(float(r["stride_start_s"]) for r in rows if r["side"] == "l")
    assert abs(first_l - 1.55) < 0.02
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quality"]["gait_method"] == {"l": "markers+force_plate",
                                                 "r": "markers+force_plate"}
    assert not any("emg (missing)" in p for p in summary["quality"]["problems"])
    # Markers, but no static trial and no standing second: no angles, and the note says why.
    assert any("no marker angles: no static trial" in p and "--static" in p
               for p in summary["quality"]["problems"])


def test_gait_trial_in_the_files_own_unit_is_refused_with_the_flag_to_use(capsys, tmp_path):
    assert main(["analyze", "--no-progress", "--c3d", str(GAIT), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "looks like microvolts" in err and "--emg-unit" in err


def test_a_channel_of_pure_noise_is_flagged_and_gives_no_ratio():
    session = read_c3d(GAIT, emg_unit="mV")
    emg = session.emg
    samples = emg.samples_mv.copy()
    i = emg.channels.index("glute_max_l")
    samples[:, i] = np.random.default_rng(0).normal(0, 0.02, len(samples))
    noisy = dataclasses.replace(emg, samples_mv=samples)
    result = analyze(noisy, {}, events=session.events)
    assert "no_activity" in result.summary["quality"]["channel_flags"]["glute_max_l"]
    assert any("glute_max_l shows no muscle activity" in p for p in result.problems)
    left = [r for r in result.rows if r["side"] == "l"]
    right = [r for r in result.rows if r["side"] == "r"]
    assert left and all(math.isnan(r["glute_ham_ratio"]) and math.isnan(r["glute_onset_ms"])
                        for r in left)
    assert right and all(r["glute_ham_ratio"] > 0 for r in right)


@pytest.mark.parametrize("path", [GAIT, SGI, *SHARED], ids=lambda p: p.name)
def test_every_sample_analyses_or_is_refused_in_hipstrides_words(path, capsys, tmp_path):
    start = time.monotonic()
    code = main(["analyze", "--no-progress", "--c3d", str(path), "--out", str(tmp_path)])
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    assert code in (0, 2), captured.err
    assert elapsed < 60, f"{path.name} took {elapsed:.0f} s"
    if code == 2:
        message = captured.err.strip().splitlines()[-1]
        assert message.startswith("hipstride analyze: ") and len(message) > 60
        words = message.replace(str(path), "").replace(path.name, "").lower()
        assert not any(word in words for word in FOREIGN), message
    else:
        assert (tmp_path / "strides.csv").is_file()


def test_the_sgi_file_gets_hipstrides_own_message(capsys, tmp_path):
    assert main(["analyze", "--no-progress", "--c3d", str(SGI), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "SGI/MIPS" in err and "save it again as a PC (Intel) C3D" in err
