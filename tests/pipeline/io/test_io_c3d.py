from __future__ import annotations

import numpy as np
import pytest

from hipstride.pipeline.io import SessionInputError, read_c3d, recognise_label

ezc3d = pytest.importorskip("ezc3d")

RATE = 2000.0
UP = 10  # IMU at 200 Hz held for 10 analog samples


def write_c3d(path, labels, units, columns, *, markers=1):
    """A C3D with analog channels (one column per label) at 2 kHz and a few markers."""
    c = ezc3d.c3d()
    n = len(columns[0])
    c["parameters"]["POINT"]["RATE"]["value"] = [RATE / 20]
    c["parameters"]["POINT"]["LABELS"]["value"] = tuple(f"M{i}" for i in range(markers))
    c["data"]["points"] = np.zeros((4, markers, n // 20))
    c["parameters"]["ANALOG"]["RATE"]["value"] = [RATE]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
    c["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(units)
    c["data"]["analogs"] = np.asarray(columns, dtype=np.float64)[None, :, :]
    c.write(str(path))
    return path


def lab_file(tmp_path, sim, unit_of=None, **kw):
    emg = sim.data["emg"].astype(np.float64)
    names = sim.description("emg").channel_names
    e = {n: emg[:, i] for i, n in enumerate(names)}
    imu = {s: np.repeat(sim.data[f"imu_{s}"].astype(np.float64), UP, axis=0)
           for s in ("pelvis", "thigh_l", "thigh_r")}
    labels, units, columns = [], [], []

    def add(label, unit, column):
        labels.append(label)
        units.append((unit_of or {}).get(label, unit))
        columns.append(column)

    add("Voltage.GluteMax_L", "V", e["glute_max_l"] / 1000)  # Vicon Nexus style, volts
    add("R GMAX", "mV", e["glute_max_r"])
    add("EMG3", "µV", e["biceps_femoris_l"] * 1000)  # numbered: needs the mapping
    add("EMG4", "mV", e["biceps_femoris_r"])
    add("Force.Fz1", "N", np.zeros(len(emg)))
    for k, axis in enumerate("XYZ"):
        add(f"Pelvis ACC {axis}", "g", imu["pelvis"][:, k] / 9.80665)
    for k, axis in enumerate("XYZ"):
        add(f"Pelvis GYRO {axis}", "deg/s", imu["pelvis"][:, 3 + k])
    for k, axis in enumerate(("Pitch", "Roll", "Yaw")):  # Delsys IM sensor, by number
        add(f"Sensor 2: IM ACC {axis}", "m/s^2", imu["thigh_l"][:, k])
    for k, axis in enumerate(("Pitch", "Roll", "Yaw")):
        add(f"Sensor 2: IM GYR {axis}", "deg/s", imu["thigh_l"][:, 3 + k])
    for k, axis in enumerate("XYZ"):
        add(f"R_Thigh_ACC_{axis}", "m/s^2", imu["thigh_r"][:, k])
    for k, axis in enumerate("XYZ"):
        add(f"R_Thigh_GYRO_{axis}", "rad/s", np.deg2rad(imu["thigh_r"][:, 3 + k]))
    return write_c3d(tmp_path / "lab.c3d", labels, units, columns, **kw), e, imu


MAPPING = {"EMG3": "biceps_femoris_l", "EMG4": "biceps_femoris_r", "Sensor 2": "thigh_l"}


def test_c3d_channels_units_rate_and_mapping(tmp_path, sim):
    path, e, imu = lab_file(tmp_path, sim)
    s = read_c3d(path, mapping=MAPPING)
    assert s.emg.channels == ("glute_max_l", "glute_max_r", "biceps_femoris_l",
                              "biceps_femoris_r")
    assert s.emg.rate_hz == RATE and s.emg.start_s == 0.0
    for name in s.emg.channels:  # stored as float32 by the C3D: compare to its precision
        assert np.allclose(s.emg.channel(name), e[name], rtol=1e-6, atol=1e-9), name
    assert list(s.imus) == ["pelvis", "thigh_l", "thigh_r"]
    for seg, data in s.imus.items():
        assert data.rate_hz == RATE and np.array_equal(data.mounting, np.eye(3))
        assert np.allclose(data.acc_mps2, imu[seg][:, :3], rtol=1e-6, atol=1e-5), seg
        assert np.allclose(data.gyr_dps, imu[seg][:, 3:], rtol=1e-6, atol=1e-4), seg
    assert s.metadata["labels"]["Sensor 2: IM GYR Yaw"] == "thigh_l_gyr_z"
    assert s.metadata["labels"]["Voltage.GluteMax_L"] == "glute_max_l"
    assert "analog channels not used: Force.Fz1" in s.metadata["notes"]
    assert any("marker trajectories (point data) ignored" in n for n in s.metadata["notes"])
    assert s.problems == []


def test_explicit_mounting(tmp_path, sim):
    path, _, _ = lab_file(tmp_path, sim)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    s = read_c3d(path, mapping=MAPPING, mountings={"pelvis": rot})
    assert np.array_equal(s.imus["pelvis"].mounting, rot)


def test_unmapped_numbered_labels_cost_metrics(tmp_path, sim):
    path, _, _ = lab_file(tmp_path, sim)
    s = read_c3d(path)  # no mapping: EMG3/EMG4 unknown, Sensor 2 has no segment
    assert s.emg.channels == ("glute_max_l", "glute_max_r")
    assert "thigh_l" not in s.imus
    text = "\n".join(s.problems)
    assert "no thigh_l or shank_l IMU: no strides on the left side" in text
    assert "no biceps_femoris_r EMG: no right hamstring_onset_ms" in text
    assert "unmapped analog labels: EMG3, EMG4" in text
    assert "map each sensor to a segment" in text and "{'Sensor 2': '<segment>'}" in text


def test_unknown_labels_are_an_error_listing_them(tmp_path):
    n = 4000
    t = np.arange(n) / RATE
    cols = [0.1 * np.sin(2 * np.pi * 80 * t + k) for k in range(2)]
    path = write_c3d(tmp_path / "x.c3d", ["EMG1", "EMG2"], ["mV", "mV"], cols)
    with pytest.raises(SessionInputError, match=r"no EMG or IMU channel recognised among the "
                                                r"analog labels 'EMG1', 'EMG2'.*mapping"):
        read_c3d(path)


def test_bad_mapping_target_and_duplicates(tmp_path, sim):
    path, _, _ = lab_file(tmp_path, sim)
    with pytest.raises(SessionInputError, match="did you mean 'glute_max_l'"):
        read_c3d(path, mapping={"EMG3": "glutemax_l"})
    with pytest.raises(SessionInputError, match=r"'Voltage\.GluteMax_L' and 'EMG3' both map "
                                                r"to 'glute_max_l'"):
        read_c3d(path, mapping={**MAPPING, "EMG3": "glute_max_l"})


def test_units_unknown_or_implausible(tmp_path, sim):
    path, _, _ = lab_file(tmp_path, sim, unit_of={"Pelvis ACC X": "furlong/s^2"})
    with pytest.raises(SessionInputError, match=r"'Pelvis ACC X': unit 'furlong/s.2'.*acc_unit"):
        read_c3d(path, mapping=MAPPING)
    # EMG recorded in mV but labelled V: 1000x too large -> refused, with the override named
    path, _, _ = lab_file(tmp_path, sim)
    with pytest.raises(SessionInputError, match=r"microvolts.*emg_unit"):
        read_c3d(path, mapping=MAPPING, emg_unit="V")


def test_not_a_c3d(tmp_path):
    (tmp_path / "x.c3d").write_text("hello")
    with pytest.raises(SessionInputError, match="cannot read it as C3D"):
        read_c3d(tmp_path / "x.c3d")


@pytest.mark.parametrize(("label", "name"), [
    ("Voltage.GluteMax_L", "glute_max_l"), ("L GMAX", "glute_max_l"), ("RGMAX", "glute_max_r"),
    ("R GLUTEUS MAXIMUS: EMG 3", "glute_max_r"), ("Left Biceps Femoris", "biceps_femoris_l"),
    ("Voltage.BF_R", "biceps_femoris_r"), ("semitendinosus_l", "semitendinosus_l"),
    ("ES_R", "erector_spinae_r"), ("EMG1", None), ("Glute Max", None),
    ("Pelvis ACC X", "pelvis_acc_x"), ("LThigh_GYRO_Y", "thigh_l_gyr_y"),
    ("R Shank: IM GYR Yaw", "shank_r_gyr_z"), ("Sensor 3: ACC X", None), ("Fz1", None),
])
def test_label_recogniser(label, name):
    assert recognise_label(label) == name
