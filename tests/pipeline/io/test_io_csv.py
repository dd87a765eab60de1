from __future__ import annotations

import numpy as np
import pytest

from hipstride.csvformat import CsvTable, write_csv
from hipstride.pipeline.io import SessionInputError, read_csv_session
from hipstride.streams import IMU_CHANNELS

SEGMENTS = ("pelvis", "thigh_l", "thigh_r")


def write_pair(tmp_path, sim, *, segments=SEGMENTS, emg_start_s=100.0, imu_start_s=100.0):
    emg = CsvTable.from_arrays("emg", sim.description("emg").channel_names, sim.data["emg"],
                               2000.0, start_s=emg_start_s)
    columns = [f"{seg}_{c}" for seg in segments for c in IMU_CHANNELS]
    imu = CsvTable.from_arrays("imu", columns,
                               np.hstack([sim.data[f"imu_{seg}"] for seg in segments]),
                               200.0, start_s=imu_start_s)
    return write_csv(tmp_path / "emg.csv", emg), write_csv(tmp_path / "imu.csv", imu)


def test_csv_pair_on_session_time(tmp_path, sim):
    emg_path, imu_path = write_pair(tmp_path, sim, emg_start_s=100.25, imu_start_s=100.0)
    s = read_csv_session(emg_path, imu_path)
    assert s.source == "emg.csv + imu.csv" and s.start_time_ns is None
    assert s.problems == []
    assert s.metadata["file_time_s"] == pytest.approx(100.0)
    assert s.emg.start_s == pytest.approx(0.25) and s.emg.rate_hz == 2000.0
    # 9 significant digits in the file: exact at the recorded (float32) precision
    assert np.array_equal(s.emg.samples_mv.astype(np.float32), sim.data["emg"])
    assert list(s.imus) == list(SEGMENTS)
    for seg, imu in s.imus.items():
        assert imu.start_s == 0.0 and imu.rate_hz == 200.0
        assert np.array_equal(imu.mounting, np.eye(3))
        assert np.array_equal(imu.gyr_dps.astype(np.float32), sim.data[f"imu_{seg}"][:, 3:])


def test_missing_file_or_segment_is_a_problem_not_an_error(tmp_path, sim):
    _, imu_path = write_pair(tmp_path, sim, segments=("pelvis", "thigh_l"))
    s = read_csv_session(None, imu_path)
    assert s.emg is None
    assert "no EMG file given" in s.problems
    assert any(p.startswith("no EMG: no onsets") for p in s.problems)
    assert any(p.startswith("no thigh_r or shank_r IMU: no strides on the right side")
               for p in s.problems)


def test_no_files_and_format_errors(tmp_path, sim):
    with pytest.raises(SessionInputError, match="no EMG and no IMU file given"):
        read_csv_session(None, None)
    _, imu_path = write_pair(tmp_path, sim)
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,glute_max_l\n0.0,0.1\n0.0005,abc\n")
    with pytest.raises(SessionInputError, match=r"bad\.csv line 3, column 'glute_max_l'"):
        read_csv_session(bad, imu_path)


def test_files_that_do_not_share_a_time_base(tmp_path, sim):
    emg_path, imu_path = write_pair(tmp_path, sim, emg_start_s=5000.0)
    s = read_csv_session(emg_path, imu_path)
    assert any("do not overlap in time" in p for p in s.problems)


def test_gyro_in_rad_s_is_caught(tmp_path, sim):
    columns = [f"{seg}_{c}" for seg in SEGMENTS for c in IMU_CHANNELS]
    x = np.hstack([sim.data[f"imu_{seg}"] for seg in SEGMENTS]).astype(np.float64)
    gyr = [i for i, c in enumerate(columns) if "_gyr_" in c]
    x[:, gyr] = np.deg2rad(x[:, gyr])
    imu = write_csv(tmp_path / "imu.csv", CsvTable.from_arrays("imu", columns, x, 200.0))
    with pytest.raises(SessionInputError, match="looks like rad/s"):
        read_csv_session(None, imu)
    s = read_csv_session(None, imu, gyr_unit="rad/s")
    assert np.allclose(s.imus["pelvis"].gyr_dps, sim.data["imu_pelvis"][:, 3:], atol=1e-4)
