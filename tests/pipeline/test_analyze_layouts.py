"""``hipstride analyze`` on sensor layouts other than EMG + IMU, and the unit flags."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hipstride.cli import main
from hipstride.edge.simulator import simulate
from hipstride.edge.simulator.export import write_csv_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layouts")
    emg, imu = write_csv_pair(simulate(30.0, profile="healthy", seed=5), folder)
    return emg, imu, folder


def test_imu_only_gives_kinematics_and_no_sensor_alarm_for_the_absent_emg(pair, tmp_path,
                                                                          capsys):
    _, imu, _ = pair
    assert main(["analyze", "--no-progress", "--imu", str(imu), "--out", str(tmp_path)]) == 0
    with open(tmp_path / "strides.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["valid"] == "True"]
    assert len(rows) > 20 and all(r["peak_hip_extension_deg"] != "" for r in rows)
    assert all("not_recorded:emg" in r["quality"] and "missing:emg" not in r["quality"]
               for r in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not [c for c in summary["cues"] if c["cue"] == "signal_problem"]


def test_emg_unit_flag_reads_a_csv_in_microvolts(pair, tmp_path, capsys):
    emg, imu, folder = pair
    with open(emg) as f:
        lines = f.read().splitlines()
    header, body = lines[0], [line.split(",") for line in lines[1:]]
    micro = folder / "emg_uv.csv"
    micro.write_text("\n".join([header] + [",".join([c[0]] + [f"{float(x) * 1000:.3f}"
                                                               for x in c[1:]]) for c in body]))
    code = main(["analyze", "--no-progress", "--emg", str(micro), "--imu", str(imu),
                 "--out", str(tmp_path / "a")])
    assert code == 2 and "microvolts" in capsys.readouterr().err
    code = main(["analyze", "--no-progress", "--emg", str(micro), "--imu", str(imu),
                 "--emg-unit", "uV", "--out", str(tmp_path / "b")])
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / "b" / "strides.csv") as f:
        ratios = [float(r["glute_ham_ratio"]) for r in csv.DictReader(f) if r["glute_ham_ratio"]]
    assert len(ratios) > 10 and np.all(np.isfinite(ratios))
