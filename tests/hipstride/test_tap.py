"""``hipstride tap`` against a real Mosquitto and a running agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from hipstride.frames import encode_frame
from hipstride.tap import TapState, format_table
from tests.conftest import USERS


def test_tap_reports_rate_gaps_and_latency_of_a_live_station(mosquitto, tmp_path):
    env = {**os.environ, "HIPSTRIDE_BROKER_PASSWORD": USERS["edge-tm1"]}
    agent = subprocess.Popen(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
         mosquitto.url_for("edge-tm1"), "--spool", str(tmp_path / "s.sqlite"), "--duration",
         "9"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        tap = subprocess.run(
            [sys.executable, "-m", "hipstride.cli", "tap", "--broker",
             mosquitto.url_for("witness"), "--station", "tm1", "--interval", "2", "--duration",
             "7", "--json"],
            env={**os.environ, "HIPSTRIDE_BROKER_PASSWORD": USERS["witness"]},
            capture_output=True, text=True, timeout=30)
    finally:
        agent.wait(60)
    assert tap.returncode == 0, tap.stderr
    reports = [json.loads(line) for line in tap.stdout.splitlines()]
    last = {r["stream"]: r for r in reports[-1]["streams"]}
    assert set(last) == {"emg", "imu_pelvis", "imu_thigh_l", "imu_thigh_r", "imu_shank_l",
                         "imu_shank_r"}
    assert abs(last["emg"]["measured_hz"] - 2000) < 200
    assert abs(last["imu_pelvis"]["measured_hz"] - 200) < 20
    assert all(r["missing"] == 0 and r["described"] for r in last.values())
    assert 0 < last["emg"]["latency_p50_ms"] < 1000


def test_tap_counts_gaps_duplicates_and_rejects():
    state = TapState()
    frame = lambda seq: encode_frame("emg", seq, 0, 2000.0, np.zeros((100, 6), np.float32))  # noqa: E731
    for seq in (0, 1, 1, 4):
        state.on_frame("tm1", "emg", frame(seq), arrival_ns=50_000_000)
    state.on_frame("tm1", "emg", b"garbage", arrival_ns=0)
    (row,) = state.report(interval_s=1.0)
    assert (row["frames"], row["missing"], row["duplicates"]) == (3, 2, 1)
    assert row["latency_p50_ms"] == 50.0
    table = format_table([row], state.rejected, {})
    assert "rejected from tm1: 1 frame(s), inconsistent" in table
    assert "no stream description" in table
