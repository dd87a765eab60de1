"""Lab C3D pieces: force-plate contacts, feet, the EVENT section, marker events, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hipstride.pipeline.engine.data import EmgData
from hipstride.pipeline.engine.lab import ACTIVE_MIN_CONTRAST, envelope_contrast
from hipstride.pipeline.engine.strides import emg_preprocess
from hipstride.pipeline.io import SessionInputError, read_c3d, recognise_label
from hipstride.pipeline.io.c3d_lab import (
    Contact,
    Markers,
    assign_feet,
    contacts_from_force,
    file_events,
    marker_events,
    side_of,
    to_gait_events,
)

ezc3d = pytest.importorskip("ezc3d")


def test_contacts_need_the_on_threshold_and_end_at_the_off_threshold():
    rate = 1000.0
    t = np.arange(3000) / rate
    f = np.zeros_like(t)
    f[(t >= 0.5) & (t < 0.8)] = 600.0          # a contact
    f[(t >= 1.2) & (t < 1.5)] = 35.0           # above off (20 N), never reaches on (50 N)
    f[(t >= 2.0) & (t < 2.3)] = 600.0
    f[(t >= 2.1) & (t < 2.12)] = 25.0          # a dip above off: the same contact
    contacts = contacts_from_force(f, rate)
    assert len(contacts) == 2
    (a, b), (c, d) = contacts
    assert abs(a - 0.4995) < 2e-3 and abs(b - 0.7995) < 2e-3
    assert abs(c - 1.9995) < 2e-3 and abs(d - 2.2995) < 2e-3


def test_each_contact_goes_to_the_foot_nearest_the_centre_of_pressure():
    rate, n = 100.0, 300
    heel_l = np.tile([0.0, 0.05, -0.1], (n, 1))
    heel_r = np.tile([0.8, 0.05, 0.1], (n, 1))
    pelvis = np.tile([0.4, 1.0, 0.0], (n, 1))
    markers = Markers({"LHEE": heel_l, "RHEE": heel_r, "LASI": pelvis, "RASI": pelvis},
                      rate, 0.0)
    contacts = [Contact(0.5, 1.0, 0, np.array([0.78, 0.0, 0.12])),
                Contact(1.2, 1.7, 1, np.array([0.02, 0.0, -0.09]))]
    out, method = assign_feet(contacts, markers)
    assert [c.side for c in out] == ["r", "l"] and method == "force_plate"
    out, method = assign_feet(contacts, Markers({}, rate, 0.0))
    assert [c.side for c in out] == ["l", "r"] and method == "force_plate_alternation"


def test_event_section_foot_strike_and_short_labels(tmp_path):
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100.0]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("M0",)
    c["data"]["points"] = np.zeros((4, 1, 200))
    c.add_parameter("EVENT", "USED", [5])
    c.add_parameter("EVENT", "LABELS", ["Foot Strike", "Foot Off", "Foot Strike", "RHS",
                                        "Unrelated"])
    c.add_parameter("EVENT", "CONTEXTS", ["Left", "Left", "Left", "", "General"])
    c.add_parameter("EVENT", "TIMES", np.array([[0, 0, 0, 0, 0], [0.5, 1.1, 1.6, 1.0, 0.2]]))
    path = tmp_path / "ev.c3d"
    c.write(str(path))
    events = file_events(ezc3d.c3d(str(path)))
    assert np.allclose(events["l"]["ic"], [0.5, 1.6]) and np.allclose(events["l"]["toe_off"],
                                                                         [1.1])
    assert np.allclose(events["r"]["ic"], [1.0]) and events["r"]["toe_off"] == []


def test_marker_events_find_heel_strikes_of_a_walking_pattern():
    rate, n = 100.0, 600
    t = np.arange(n) / rate
    walk = 1.2 * t  # pelvis walks along x at 1.2 m/s
    pelvis_front = np.stack([walk + 0.1, np.ones(n), np.zeros(n)], axis=1)
    pelvis_back = np.stack([walk - 0.1, np.ones(n), np.zeros(n)], axis=1)
    xyz = {"LASI": pelvis_front, "LPSI": pelvis_back}
    for side, phase in (("L", 0.0), ("R", np.pi)):
        rel = 0.35 * np.cos(2 * np.pi * t / 1.1 + phase)  # heel ahead of pelvis at IC
        xyz[f"{side}HEE"] = np.stack([walk + rel, np.full(n, 0.05), np.zeros(n)], axis=1)
        xyz[f"{side}TOE"] = np.stack([walk + rel + 0.15, np.full(n, 0.03), np.zeros(n)], axis=1)
    events = marker_events(Markers(xyz, rate, 2.0))
    ic_l = np.asarray(events["l"]["ic"])
    assert len(ic_l) >= 4 and np.allclose(np.diff(ic_l), 1.1, atol=0.02)
    assert abs((ic_l[0] - 2.0) % 1.1) < 0.02 or abs((ic_l[0] - 2.0) % 1.1 - 1.1) < 0.02
    assert len(events["r"]["ic"]) >= 4 and len(events["l"]["toe_off"]) >= 4


def test_strides_from_events_mark_a_missed_contact_invalid():
    ev = to_gait_events("l", np.array([0.0, 1.0, 2.0, 4.0, 5.0]), np.array([0.6, 1.6, 4.6]),
                        "force_plate")
    assert ev.n_strides == 4 and ev.method == "force_plate"
    assert ev.valid.tolist() == [True, True, False, True]
    assert "2.00 s" in ev.rejected_reason[2]
    assert ev.toe_off_s[0] == 0.6 and math.isnan(ev.toe_off_s[2])


@pytest.mark.parametrize("label, name", [
    ("LGRF", "glute_max_l"), ("RBIC", "biceps_femoris_r"), ("LISC", "semitendinosus_l"),
    ("Left Semimembranosus", "semitendinosus_l"), ("R.Med.Hams", "semitendinosus_r"),
    ("Right Biceps Femoris Caput Longu", "biceps_femoris_r"), ("LREC", None), ("FX1", None)])
def test_lab_labels(label, name):
    assert recognise_label(label) == name


def test_sides_of_marker_labels():
    assert [side_of(x) for x in ("LHEE", "L.Heel", "l heel", "R_FCC", "Right foot", "TOE_L",
                                 "VSAC", "LATT")] == ["l", "l", "l", "r", "r", "l", None, "l"]


def test_mapping_keys_match_vendor_prefixes_and_truncated_labels(tmp_path):
    n, rate = 4000, 1000.0
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100.0]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("M0",)
    c["data"]["points"] = np.zeros((4, 1, n // 10))
    c["parameters"]["ANALOG"]["RATE"]["value"] = [rate]
    labels = ["Delsys: EMG 1", "Gluteus Maximus"[:12] + "Lef"]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ("mV", "mV")
    rng = np.random.default_rng(1)
    c["data"]["analogs"] = rng.normal(0, 0.05, (1, 2, n))
    path = tmp_path / "m.c3d"
    c.write(str(path))
    with pytest.raises(SessionInputError, match=r"EMG found \(glute_max_l, glute_max_r\) but no "
                                                r"strides.*gait events"):
        read_c3d(path, mapping={"EMG 1": "glute_max_l", "Gluteus MaxiLeft side": "glute_max_r"})


def test_noise_has_no_bursts_and_real_bursts_do():
    rate = 1000.0
    rng = np.random.default_rng(2)
    t = np.arange(8000) / rate
    noise = rng.normal(0, 0.01, t.size)
    bursts = noise + rng.normal(0, 0.3, t.size) * ((t % 1.0) < 0.2)
    env, _ = emg_preprocess(EmgData(np.stack([noise, bursts], axis=1), ("a", "b"), rate))
    contrast = envelope_contrast(np.asarray(env, float))
    assert contrast[0] < ACTIVE_MIN_CONTRAST < contrast[1]


def test_emg_only_file_at_1080_hz_with_foot_strike_events(tmp_path):
    """EMG bursts after every left and right foot strike of the EVENT section, at 1080 Hz:
    per-stride onsets where the bursts start, ratios, gait_method c3d_events."""
    from hipstride.pipeline.engine.analysis import analyze

    rate, n = 1080.0, 1080 * 12
    t = np.arange(n) / rate
    rng = np.random.default_rng(4)
    strikes = {"Left": np.arange(1.0, 11.0, 1.0), "Right": np.arange(1.5, 11.0, 1.0)}
    cols = []
    for side in ("Left", "Right"):
        for lag in (0.05, 0.0):  # glute 50 ms after IC, hamstring at IC
            on = np.zeros(n, bool)
            for ic in strikes[side]:
                on |= (t >= ic + lag) & (t < ic + lag + 0.25)
            cols.append(rng.normal(0, 0.005, n) + rng.normal(0, 0.4, n) * on)
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [120.0]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("M0",)
    c["data"]["points"] = np.zeros((4, 1, n // 9))
    c["parameters"]["ANALOG"]["RATE"]["value"] = [rate]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ("L Glut Max", "L Bic Fem", "R Glut Max",
                                                     "R Bic Fem")
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ("mV",) * 4
    c["data"]["analogs"] = np.asarray(cols)[None]
    labels = [lb for side in strikes for lb in ["Foot Strike"] * len(strikes[side])]
    contexts = [side for side in strikes for _ in strikes[side]]
    times = np.concatenate([strikes["Left"], strikes["Right"]])
    c.add_parameter("EVENT", "USED", [len(times)])
    c.add_parameter("EVENT", "LABELS", labels)
    c.add_parameter("EVENT", "CONTEXTS", contexts)
    c.add_parameter("EVENT", "TIMES", np.stack([np.zeros_like(times), times]))
    path = tmp_path / "emg1080.c3d"
    c.write(str(path))
    session = read_c3d(path)
    assert set(session.events) == {"l", "r"}
    assert all(ev.method == "c3d_events" for ev in session.events.values())
    result = analyze(session.emg, session.imus, events=session.events)
    rows = [r for r in result.rows if r["valid"]]
    assert len(rows) == 18
    glute = np.array([r["glute_onset_ms"] for r in rows])
    ham = np.array([r["hamstring_onset_ms"] for r in rows])
    assert np.nanmedian(np.abs(glute - 50.0)) < 20 and np.nanmedian(np.abs(ham)) < 20
    assert np.isfinite(glute).sum() >= 15
    assert all(r["glute_ham_ratio"] > 0 for r in rows)
    assert result.summary["quality"]["gait_method"] == {"l": "c3d_events", "r": "c3d_events"}


def test_emg_that_is_never_negative_is_taken_as_an_envelope(tmp_path):
    rate, n = 400.0, 400 * 6
    rng = np.random.default_rng(5)
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100.0]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("M0",)
    c["data"]["points"] = np.zeros((4, 1, n // 4))
    c["parameters"]["ANALOG"]["RATE"]["value"] = [rate]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ("L.Med.Hams", "R.Med.Hams")
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ("uV", "uV")
    c["data"]["analogs"] = np.abs(rng.normal(0, 0.1, (1, 2, n)))
    times = np.array([1.0, 2.0, 3.0, 4.0, 1.5, 2.5, 3.5, 4.5])
    c.add_parameter("EVENT", "USED", [8])
    c.add_parameter("EVENT", "LABELS", ["Foot Strike"] * 8)
    c.add_parameter("EVENT", "CONTEXTS", ["Left"] * 4 + ["Right"] * 4)
    c.add_parameter("EVENT", "TIMES", np.stack([np.zeros(8), times]))
    path = tmp_path / "env.c3d"
    c.write(str(path))
    session = read_c3d(path)
    assert session.emg.signal == "envelope"
    assert any("taken as already rectified" in p for p in session.problems)
