"""Prone hip extension test against the simulator's prone phase (fixed seeds)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine import phe as phe_module
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.engine.phe import (
    PheSideSummary,
    phe_advice,
    phe_analyze,
    phe_detect_repetitions,
)

REPS = 4
CASES = {"healthy": 1, "hamstring_dominant": 2, "limited_extension": 3, "asymmetry": 4}


def _inputs(session):
    desc = session.description("emg")
    emg = EmgData(session.data["emg"].astype(float), tuple(c.name for c in desc.channels),
                  desc.rate_hz)

    def imu(seg: str) -> ImuData:
        d = session.description(f"imu_{seg}")
        x = session.data[f"imu_{seg}"].astype(float)
        return ImuData(seg, x[:, :3], x[:, 3:], d.rate_hz,
                       mounting=np.array(d.mounting, dtype=float))

    return emg, {s: imu(f"thigh_{s}") for s in "lr"}, imu("pelvis")


@pytest.fixture(scope="module")
def sessions():
    out = {}
    for profile, seed in CASES.items():
        # Strap mountings (rotated, upside-down sensors) and a 3 deg strap error.
        s = simulate(58.0, profile=profile, seed=seed, prone=True, prone_reps=REPS,
                     standing_s=3.0, misalignment_deg=3.0 if profile == "healthy" else 0.0)
        emg, thighs, pelvis = _inputs(s)
        prone = s.truth.phase("prone")
        res = phe_analyze(thighs, emg, pelvis, start_s=prone["start_s"], end_s=prone["end_s"])
        out[profile] = (s, res)
    return out


def _pairs(session, result):
    truth = sorted(session.truth.prone_reps, key=lambda r: r["movement_onset_s"])
    return list(zip(result.repetitions, truth, strict=True))


@pytest.mark.parametrize("profile", CASES)
def test_every_repetition_is_found_on_its_side(sessions, profile):
    session, res = sessions[profile]
    assert len(res.repetitions) == 2 * REPS
    for side in "lr":
        assert res.sides[side].n_reps == REPS
    for rep, truth in _pairs(session, res):
        assert rep.side == truth["side"]
        assert rep.lift.lift_deg == pytest.approx(truth["lift_deg"], abs=1.0)
        assert rep.lift.hold_start_s == pytest.approx(truth["hold_start_s"], abs=0.1)
        assert rep.lift.lower_end_s == pytest.approx(truth["lower_end_s"], abs=0.1)


def test_movement_onset_is_back_tracked_to_where_the_thigh_starts(sessions):
    errors, detection_lag = [], []
    for session, res in sessions.values():
        for rep, truth in _pairs(session, res):
            errors.append((rep.lift.movement_onset_s - truth["movement_onset_s"]) * 1000.0)
            detection_lag.append((rep.lift.detection_s - truth["movement_onset_s"]) * 1000.0)
    errors = np.abs(errors)
    # A plain 5 deg/s threshold is tens of ms late; the back-tracked onset is within ~10 ms.
    assert np.median(detection_lag) > 30.0
    assert np.median(errors) <= 5.0 and errors.max() <= 10.0, errors


def test_muscle_onsets_match_truth(sessions):
    errs = {"glute": [], "hamstring": [], "erector": []}
    for session, res in sessions.values():
        for rep, truth in _pairs(session, res):
            errs["glute"].append(rep.glute_onset_ms - truth["glute_onset_ms"])
            errs["hamstring"].append(rep.hamstring_onset_ms - truth["hamstring_onset_ms"])
            errs["erector"].append(rep.erector_onset_ms - truth["erector_onset_ms"])
    for muscle, e in errs.items():
        e = np.abs(e)
        assert np.all(np.isfinite(e)), muscle
        assert np.median(e) <= 20.0 and e.max() <= 30.0, (muscle, e)


def test_firing_order_lag_and_pelvic_flag_match_truth(sessions):
    for session, res in sessions.values():
        for rep, truth in _pairs(session, res):
            assert list(rep.order) == truth["order"]
            assert rep.glute_ham_lag_ms == pytest.approx(truth["glute_ham_lag_ms"], abs=30.0)
            assert rep.pelvic_tilt_deg == pytest.approx(truth["pelvic_tilt_deg"], abs=1.0)
            assert rep.pelvic_rotation_deg == pytest.approx(truth["pelvic_rotation_deg"],
                                                            abs=1.0)
            expect = max(truth["pelvic_tilt_deg"], truth["pelvic_rotation_deg"]) > 5.0
            assert rep.pelvic_flag == expect


def test_side_averages(sessions):
    res = sessions["asymmetry"][1]
    left, right = res.sides["l"], res.sides["r"]
    assert left.glute_onset_ms == pytest.approx(-10.0, abs=15.0)
    assert right.glute_onset_ms == pytest.approx(100.0, abs=15.0)
    assert (left.n_pelvic_flags, right.n_pelvic_flags) == (0, REPS)
    assert right.order == ("hamstring", "erector_spinae", "glute_max")


def test_advice_is_coaching_not_diagnosis(sessions):
    healthy = sessions["healthy"][1]
    assert all("keep it up" in a[0] for a in healthy.advice.values())
    late = sessions["hamstring_dominant"][1]
    for side in "lr":
        text = " ".join(late.advice[side])
        assert "glute bridges" in text and "bird dogs" in text
        assert "hip-flexor" not in text
    limited = sessions["limited_extension"][1]
    assert all("hip-flexor and quadriceps flexibility" in " ".join(a)
               for a in limited.advice.values())
    asym = sessions["asymmetry"][1]
    assert "keep it up" in asym.advice["l"][0]
    assert len(asym.advice["r"]) == 2  # pelvic rotation 7 deg and late glutes
    notes = " ".join(healthy.notes)
    assert "hamstrings often fire first" in notes and "0.7" in notes
    assert "not a diagnosis" in notes
    for res in (healthy, late, limited, asym):
        for text in (*healthy.notes, *[a for adv in res.advice.values() for a in adv]):
            assert "diagnos" not in text.replace("not a diagnosis", "")


def test_advice_when_glutes_are_not_detected_or_no_lift_found():
    silent = PheSideSummary(n_reps=3, glute_onset_ms=math.nan, hamstring_onset_ms=-100.0,
                            erector_onset_ms=-50.0, glute_ham_lag_ms=math.nan,
                            order=("hamstring", "erector_spinae"), pelvic_tilt_deg=2.0,
                            pelvic_rotation_deg=1.0, n_pelvic_flags=0, lift_deg=8.0)
    assert "glute bridges" in phe_advice(silent, "l")[0]
    none = PheSideSummary(0, *([math.nan] * 4), (), math.nan, math.nan, 0, math.nan)
    assert "No right lifts" in phe_advice(none, "r")[0]


def test_result_serialises_to_json(sessions):
    res = sessions["healthy"][1]
    body = json.loads(json.dumps(res.to_dict()))
    assert len(body["repetitions"]) == 2 * REPS
    assert body["sides"]["l"]["n_reps"] == REPS
    first = body["repetitions"][0]
    assert first["order"] == ["hamstring", "erector_spinae", "glute_max"]
    assert set(first["channel_onsets_ms"]) >= {"glute_max_l", "biceps_femoris_l",
                                               "erector_spinae_l", "erector_spinae_r"}


def test_thigh_alone_still_finds_lifts_but_not_lying_down(sessions):
    session, _ = sessions["healthy"]
    _, thighs, _ = _inputs(session)
    prone = session.truth.phase("prone")
    # Without the pelvis the 90 deg roll onto the belly is in the thigh signal: too big for
    # a lift, so only the real lifts remain.
    lifts = phe_detect_repetitions(thighs["r"], start_s=prone["start_s"], end_s=prone["end_s"])
    truth = [r for r in session.truth.prone_reps if r["side"] == "r"]
    assert len(lifts) == REPS
    for lift, t in zip(lifts, truth, strict=True):
        assert lift.movement_onset_s == pytest.approx(t["movement_onset_s"], abs=0.015)


def test_detect_rejects_a_non_thigh_imu(sessions):
    _, _, pelvis = _inputs(sessions["healthy"][0])
    with pytest.raises(ValueError, match="thigh"):
        phe_detect_repetitions(pelvis)


def test_phe_module_imports_only_numpy_scipy_and_engine_siblings():
    tree = ast.parse(Path(phe_module.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level == 1
                continue
            assert node.module.split(".")[0] in {"__future__", "numpy", "scipy", "collections",
                                                 "dataclasses", "typing", "math"}
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in {"numpy", "math"} for a in node.names)
