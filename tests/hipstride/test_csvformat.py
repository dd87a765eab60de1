from __future__ import annotations

import math

import numpy as np
import pytest

from hipstride.csvformat import (
    CsvFormatError,
    CsvTable,
    load_rename,
    parse_rename,
    read_csv,
    write_csv,
)
from hipstride.streams import EMG_CHANNELS_DEFAULT, IMU_CHANNELS
from tests.support.csvdata import emg_table, imu_table


def write_text(path, header: list[str], rows: np.ndarray, sep: str = ",") -> None:
    lines = [sep.join(header)] + [sep.join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_emg_round_trip_keeps_every_sample_and_the_rate(tmp_path):
    table = emg_table(n=500, start_s=12.5)
    path = write_csv(tmp_path / "emg.csv", table)
    back = read_csv(path, "emg")
    assert back.rate_hz == 2000.0
    assert back.start_s == pytest.approx(12.5)
    assert back.channels == EMG_CHANNELS_DEFAULT
    assert np.array_equal(back.samples.astype(np.float32), table.samples.astype(np.float32))
    [(desc, samples)] = back.streams()
    assert desc.stream == "emg" and desc.kind == "emg" and desc.rate_hz == 2000.0
    assert desc.channel_names == EMG_CHANNELS_DEFAULT
    assert {c.unit for c in desc.channels} == {"mV"}
    assert samples.dtype == np.float32 and samples.shape == (500, 6)


def test_imu_streams_follow_the_canonical_channel_order_whatever_the_column_order(tmp_path):
    table = imu_table(n=80)
    order = np.random.default_rng(3).permutation(len(table.channels))
    header = ["time_s"] + [table.channels[i] for i in order]
    write_text(tmp_path / "imu.csv", header,
               np.column_stack([table.time_s, table.samples[:, order]]))
    back = read_csv(tmp_path / "imu.csv", "imu")
    assert back.rate_hz == 200.0
    streams = {d.stream: (d, s) for d, s in back.streams()}
    assert sorted(streams) == ["imu_pelvis", "imu_thigh_l", "imu_thigh_r"]
    desc, samples = streams["imu_thigh_r"]
    assert desc.segment == "thigh_r" and desc.channel_names == IMU_CHANNELS
    expected = table.samples[:, [table.channels.index(f"thigh_r_{c}") for c in IMU_CHANNELS]]
    assert np.array_equal(samples, expected.astype(np.float32))


def test_a_rename_map_turns_an_export_into_canonical_columns_and_can_drop_columns(tmp_path):
    table = emg_table(n=200)
    export = ["X [s]"] + [f"EMG {i + 1} (mV)" for i in range(6)] + ["Trigger"]
    rows = np.column_stack([table.time_s, table.samples, np.zeros(200)])
    write_text(tmp_path / "delsys.csv", export, rows)
    lines = "\n".join(["# Delsys Trigno export", '"X [s]" = time_s', "Trigger ="]
                      + [f"EMG {i + 1} (mV)={c}" for i, c in enumerate(EMG_CHANNELS_DEFAULT)])
    (tmp_path / "map.txt").write_text(lines)
    toml = "\n".join(['"X [s]" = "time_s"', '"Trigger" = ""'] + [
        f'"EMG {i + 1} (mV)" = "{c}"' for i, c in enumerate(EMG_CHANNELS_DEFAULT)])
    (tmp_path / "map.toml").write_text(toml)
    assert load_rename(tmp_path / "map.txt") == load_rename(tmp_path / "map.toml")
    back = read_csv(tmp_path / "delsys.csv", "emg", rename=load_rename(tmp_path / "map.txt"))
    assert back.channels == EMG_CHANNELS_DEFAULT
    assert np.array_equal(back.samples.astype(np.float32), table.samples.astype(np.float32))


def test_parse_rename_rejects_a_line_without_equals():
    with pytest.raises(CsvFormatError, match="line 2: expected old=new"):
        parse_rename("a=b\nnonsense\n")


def test_semicolons_and_a_delsys_rate_are_read(tmp_path):
    rate = 2148.1481
    table = emg_table(n=300, rate_hz=rate)
    write_text(tmp_path / "e.csv", ["time_s", *table.channels],
               np.column_stack([table.time_s, table.samples]), sep=";")
    back = read_csv(tmp_path / "e.csv", "emg")
    assert back.rate_hz == pytest.approx(rate, rel=1e-9)


def test_missing_time_column_says_what_to_rename(tmp_path):
    table = emg_table(n=50)
    write_text(tmp_path / "e.csv", ["Time", *table.channels],
               np.column_stack([table.time_s, table.samples]))
    with pytest.raises(CsvFormatError, match=r"no 'time_s' column.*'Time' = 'time_s'"):
        read_csv(tmp_path / "e.csv", "emg")


def test_unknown_and_missing_columns_are_named_with_what_is_needed(tmp_path):
    table = emg_table(n=50)
    header = ["time_s", "Glute_Max_L", *table.channels[1:3]]
    write_text(tmp_path / "e.csv", header, np.column_stack([table.time_s, table.samples[:, :3]]))
    with pytest.raises(CsvFormatError) as err:
        read_csv(tmp_path / "e.csv", "emg")
    message = str(err.value)
    assert "unknown column(s) 'Glute_Max_L' (did you mean 'glute_max_l'?)" in message
    assert "missing column(s) glute_max_l, biceps_femoris_r" in message
    assert "Found columns: Glute_Max_L, glute_max_r, biceps_femoris_l" in message
    assert "column map" in message


def test_an_incomplete_imu_segment_lists_its_missing_columns(tmp_path):
    table = imu_table(n=40)
    keep = [i for i, c in enumerate(table.channels) if c not in ("thigh_l_gyr_z", "pelvis_acc_y")]
    write_text(tmp_path / "i.csv", ["time_s"] + [table.channels[i] for i in keep],
               np.column_stack([table.time_s, table.samples[:, keep]]))
    with pytest.raises(CsvFormatError, match=r"missing column.*pelvis_acc_y, thigh_l_gyr_z"):
        read_csv(tmp_path / "i.csv", "imu")


def test_time_going_backwards_is_located(tmp_path):
    table = emg_table(n=100)
    time_s = table.time_s.copy()
    time_s[[40, 41]] = time_s[[41, 40]]
    write_text(tmp_path / "e.csv", ["time_s", *table.channels],
               np.column_stack([time_s, table.samples]))
    with pytest.raises(CsvFormatError, match=r"not increasing: data row 42 \(line 43\) "
                                             r"has 0.02 after 0.0205"):
        read_csv(tmp_path / "e.csv", "emg")


def test_a_gap_in_time_is_located_and_sized(tmp_path):
    table = emg_table(n=100)
    rows = np.column_stack([table.time_s, table.samples])
    rows = np.delete(rows, [60, 61, 62], axis=0)
    write_text(tmp_path / "e.csv", ["time_s", *table.channels], rows)
    with pytest.raises(CsvFormatError, match=r"not uniform: from data row 60 to 61 .*gap of "
                                             r"about 3 sample"):
        read_csv(tmp_path / "e.csv", "emg")


def test_nan_and_empty_cells_are_located(tmp_path):
    table = emg_table(n=50)
    rows = np.column_stack([table.time_s, table.samples])
    rows[17, 3] = math.nan
    write_text(tmp_path / "nan.csv", ["time_s", *table.channels], rows)
    with pytest.raises(CsvFormatError, match=r"1 NaN .*data row 18 \(line 19.*'biceps_femoris_l'"):
        read_csv(tmp_path / "nan.csv", "emg")
    text = (tmp_path / "nan.csv").read_text().replace("nan", "")
    (tmp_path / "empty.csv").write_text(text)
    with pytest.raises(CsvFormatError, match=r"line 19, column 'biceps_femoris_l': empty cell"):
        read_csv(tmp_path / "empty.csv", "emg")


def test_a_short_row_and_text_in_cells_are_located(tmp_path):
    table = emg_table(n=30)
    write_csv(tmp_path / "e.csv", table)
    lines = (tmp_path / "e.csv").read_text().splitlines()
    short = lines.copy()
    short[5] = short[5].rsplit(",", 1)[0]
    (tmp_path / "short.csv").write_text("\n".join(short))
    with pytest.raises(CsvFormatError, match="line 6: 6 cells but the header has 7"):
        read_csv(tmp_path / "short.csv", "emg")
    cells = lines[9].split(",")
    cells[1] = "0.3 mV"
    lines[9] = ",".join(cells)
    (tmp_path / "text.csv").write_text("\n".join(lines))
    with pytest.raises(CsvFormatError, match=r"line 10, column 'glute_max_l': '0\.3 mV' is not"):
        read_csv(tmp_path / "text.csv", "emg")


def test_emg_in_volts_or_microvolts_is_recognised_and_the_unit_option_fixes_it(tmp_path):
    table = emg_table(n=400)
    for factor, unit, words in ((1e-3, "V", "looks like volts"), (1e3, "uV", "microvolts")):
        path = write_csv(tmp_path / f"{unit}.csv", CsvTable.from_arrays(
            "emg", table.channels, table.samples * factor, table.rate_hz))
        with pytest.raises(CsvFormatError, match=f"{words}.*emg_unit = \"{unit}\""):
            read_csv(path, "emg")
        back = read_csv(path, "emg", emg_unit=unit)
        assert np.allclose(back.samples, table.samples, rtol=1e-6, atol=1e-9)


def test_gyro_in_rad_per_s_and_acc_in_g_are_recognised(tmp_path):
    table = imu_table(n=200)
    gyr = np.array(["_gyr_" in c for c in table.channels])
    rad = table.samples.copy()
    rad[:, gyr] *= math.pi / 180
    path = write_csv(tmp_path / "rad.csv", CsvTable.from_arrays(
        "imu", table.channels, rad, table.rate_hz), digits=17)
    with pytest.raises(CsvFormatError, match='looks like rad/s \\(set gyr_unit = "rad/s"\\)'):
        read_csv(path, "imu")
    assert np.allclose(read_csv(path, "imu", gyr_unit="rad/s").samples, table.samples)
    g = table.samples.copy()
    g[:, ~gyr] /= 9.80665
    path = write_csv(tmp_path / "g.csv", CsvTable.from_arrays(
        "imu", table.channels, g, table.rate_hz), digits=17)
    with pytest.raises(CsvFormatError, match=r"median magnitude is 1.*looks like g"):
        read_csv(path, "imu")
    assert np.allclose(read_csv(path, "imu", acc_unit="g").samples, table.samples)


def test_empty_files_and_single_rows_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CsvFormatError, match="empty"):
        read_csv(tmp_path / "empty.csv", "emg")
    table = emg_table(n=1)
    path = write_csv(tmp_path / "one.csv", table)
    with pytest.raises(CsvFormatError, match=r"1 data row.*at least 2"):
        read_csv(path, "emg")
    with pytest.raises(CsvFormatError, match="cannot open"):
        read_csv(tmp_path / "absent.csv", "emg")
