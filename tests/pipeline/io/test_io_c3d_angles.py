"""Hip and pelvis angles from a lab C3D's markers, on real treadmill running (Fukuchi et al.
2017, tests/data/README.md) written as a C3D in a z-up lab with a static trial and foot
strike events: the angles match the marker truth of the virtual-IMU validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hipstride.pipeline import virtual_imu
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.io import SessionInputError, read_c3d
from hipstride.pipeline.io.c3d_angles import pelvis_markers, thigh_markers

ezc3d = pytest.importorskip("ezc3d")

DATA = Path(__file__).resolve().parents[2] / "data" / "rbds001_run35_excerpt.npz"
SECONDS = 8.0
Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # x fwd, y up, z right -> z up


def _write(path: Path, trial: virtual_imu.Trial, frames: dict[str, np.ndarray],
           events: list[tuple[str, str, float]] = ()) -> Path:
    names = sorted(frames)
    n = len(frames[names[0]])
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [trial.marker_rate_hz]
    c["parameters"]["POINT"]["LABELS"]["value"] = tuple(names)
    c["parameters"]["POINT"]["UNITS"]["value"] = ("mm",)
    pts = np.ones((4, len(names), n))
    for k, m in enumerate(names):
        xyz = frames[m] @ Z_UP.T * 1000.0
        pts[:3, k, :] = np.nan_to_num(xyz).T
        pts[3, k, ~np.isfinite(xyz).all(axis=1)] = 0.0
    c["data"]["points"] = pts
    if events:
        c.add_parameter("EVENT", "USED", [len(events)])
        c.add_parameter("EVENT", "LABELS", [e[0] for e in events])
        c.add_parameter("EVENT", "CONTEXTS", [e[1] for e in events])
        c.add_parameter("EVENT", "TIMES", np.array([[0.0] * len(events),
                                                    [e[2] for e in events]]))
    c.write(str(path))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    trial = virtual_imu.load_trial(DATA)
    n = round(SECONDS * trial.marker_rate_hz)
    markers = {m: x[:n].copy() for m, x in trial.markers.items()}
    markers["L.Thigh.Top.Lateral"][300:312] = np.nan    # 80 ms: filled
    markers["R.Thigh.Top.Lateral"][900:990] = np.nan    # 0.6 s: reported
    f = trial.force_n[:round(SECONDS * trial.force_rate_hz)]
    contacts = virtual_imu.assign_feet(trial, virtual_imu.contacts_from_force(
        f, trial.force_rate_hz))
    side = {"l": "Left", "r": "Right"}
    events = [(label, side[c.side], t) for c in contacts
              for label, t in (("Foot Strike", c.ic_s), ("Foot Off", c.toe_off_s))]
    folder = tmp_path_factory.mktemp("c3d_angles")
    run = _write(folder / "run.c3d", trial, markers, events)
    static = _write(folder / "static.c3d", trial,
                    {m: np.tile(trial.static[m], (150, 1)) for m in trial.static})
    rots = {s: virtual_imu.segment_motion(trial, s, rate_hz=trial.marker_rate_hz)[0][:n]
            for s in ("pelvis", "thigh_l", "thigh_r")}
    hip, tilt = virtual_imu.hip_and_tilt(rots)
    return run, static, hip, tilt, trial.marker_rate_hz


def test_marker_angles_match_the_truth_stride_by_stride(lab):
    run, static, hip, tilt, rate = lab
    session = read_c3d(run, static=static)
    kin = session.kinematics
    assert kin is not None and kin.quality["zero"] == "static trial"
    assert {ev.method for ev in session.events.values()} == {"c3d_events"}
    assert any("R.Thigh.Top.Lateral: gap 6.00-6.60 s" in p for p in session.problems)
    assert not any("L.Thigh.Top.Lateral: gap" in p for p in session.problems)
    result = analyze(None, {}, events=session.events, kinematics=kin)
    rows = [r for r in result.rows if r["valid"]]
    assert len(rows) > 16
    errors, tilt_errors = [], []
    for r in rows:
        a = round(r["stride_start_s"] * rate)
        b = round((r["stride_start_s"] + r["stride_time_s"]) * rate)
        if np.isfinite(r["peak_hip_extension_deg"]):
            errors.append(abs(r["peak_hip_extension_deg"] + hip[r["side"]][a:b + 1].min()))
        tilt_errors.append(abs(r["peak_anterior_tilt_deg"] - tilt[a:b + 1].max()))
    assert np.median(errors) < 1.0 and np.median(tilt_errors) < 0.5
    assert 5.0 < np.median([r["peak_hip_extension_deg"] for r in rows
                            if np.isfinite(r["peak_hip_extension_deg"])]) < 12.0
    # The long gap costs the right strides that overlap it their hip angles, nothing else.
    gap = [r for r in rows if r["side"] == "r" and r["stride_start_s"] < 6.6
           and r["stride_start_s"] + r["stride_time_s"] > 6.0]
    assert gap and all(not np.isfinite(r["peak_hip_extension_deg"]) for r in gap)
    assert all("not_recorded:emg" in r["quality"] for r in rows)


def test_without_a_static_trial_or_standing_the_message_says_what_to_give(lab):
    run, *_ = lab
    with pytest.raises(SessionInputError, match=r"no standing second.*--static FILE"):
        read_c3d(run)


@pytest.mark.parametrize("names, found", [
    (["LASI", "RASI", "LPSI", "RPSI", "LTHI", "LKNE"], (["LASI"], ["RASI"], 2, ["LTHI", "LKNE"])),
    (["L.ASIS", "R.ASIS", "L.PSIS", "R.PSIS", "L.Iliac.Crest", "L.Knee"],
     (["L.ASIS"], ["R.ASIS"], 2, ["L.Knee"])),
    (["L_IAS", "R_IAS", "L_IPS", "R_IPS", "L_FLE"], (["L_IAS"], ["R_IAS"], 2, ["L_FLE"])),
    (["l asis", "r asis", "sacrum", "l knee 1", "l bar 1"], (["l asis"], ["r asis"], 1,
                                                             ["l knee 1"])),
    (["LASI", "RASI", "SACR", "LTH1", "LTH2", "LTH3"], (["LASI"], ["RASI"], 1,
                                                        ["LTH1", "LTH2", "LTH3"])),
])
def test_known_marker_sets(names, found):
    pel = pelvis_markers(names)
    assert (pel["asis_l"], pel["asis_r"], len(pel["back"]), thigh_markers(names, "l")) == found


def test_map_names_a_labs_own_markers(lab, tmp_path):
    """A lab's own ASIS names are unknown (the iliac crests stand in) until mapped."""
    run, static, *_ = lab
    renamed = {}
    for src, name in ((run, "run.c3d"), (static, "static.c3d")):
        c = ezc3d.c3d(str(src))
        labels = [{"L.ASIS": "FrontHipLeft", "R.ASIS": "FrontHipRight"}.get(m, m)
                  for m in c["parameters"]["POINT"]["LABELS"]["value"]]
        c["parameters"]["POINT"]["LABELS"]["value"] = tuple(labels)
        renamed[name] = tmp_path / name
        c.write(str(renamed[name]))
    fallback = read_c3d(renamed["run.c3d"], static=renamed["static.c3d"])
    assert fallback.kinematics.quality["pelvis_front"] == "iliac crests"
    mapping = {"FrontHipLeft": "LASI", "FrontHipRight": "RASI"}
    session = read_c3d(renamed["run.c3d"], static=renamed["static.c3d"], mapping=mapping)
    assert session.kinematics is not None
    assert session.kinematics.quality["markers"]["asis_l"] == ["LASI"]
    assert session.kinematics.quality["pelvis_front"] == "ASIS"
    with pytest.raises(SessionInputError, match="marker targets are LASI"):
        read_c3d(renamed["run.c3d"], mapping={"FrontHipLeft": "glute_max_l"})


def test_iliac_crests_stand_in_for_missing_asis(lab, tmp_path):
    run, static, hip, tilt, _ = lab
    paths = {}
    for src in (run, static):
        c = ezc3d.c3d(str(src))
        labels = list(c["parameters"]["POINT"]["LABELS"]["value"])
        keep = [k for k, m in enumerate(labels) if m not in ("L.ASIS", "R.ASIS")]
        c["parameters"]["POINT"]["LABELS"]["value"] = tuple(labels[k] for k in keep)
        c["data"]["points"] = c["data"]["points"][:, keep, :]
        if "meta_points" in c["data"]:
            del c["data"]["meta_points"]
        paths[src.name] = tmp_path / src.name
        c.write(str(paths[src.name]))
    session = read_c3d(paths[run.name], static=paths[static.name])
    kin = session.kinematics
    assert kin is not None and kin.quality["pelvis_front"] == "iliac crests"
    assert any("built on the iliac crests" in p for p in session.problems)
    n = min(len(tilt), kin.n_samples)
    ok = np.isfinite(kin.pelvic_tilt_deg[:n]) & np.isfinite(kin.hip_flexion_deg["l"][:n])
    # Fewer pelvis points (soft tissue moves each differently): tilt within 2°, and the hip
    # (thigh minus pelvis) carries that tilt error.
    assert np.median(np.abs(kin.pelvic_tilt_deg[:n][ok] - tilt[:n][ok])) < 2.0
    assert np.median(np.abs(kin.hip_flexion_deg["l"][:n][ok] - hip["l"][:n][ok])) < 2.5
