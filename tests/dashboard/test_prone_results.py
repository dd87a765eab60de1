"""Prone-test and calibration results as tables and advice (dashboard/results.py): from the
engine's own analysis of a simulated prone test, and from the store's rows."""

from __future__ import annotations

import math

import pytest

from hipstride.dashboard import results
from hipstride.edge.simulator import simulate
from hipstride.pipeline.engine.phe import phe_advice
from hipstride.pipeline.store import SqliteStore


def _rep(side: str, glute: float, ham: float, flag: bool = False, **extra) -> dict:
    return {"side": side, "movement_onset_s": extra.pop("t", 1.0), "glute_onset_ms": glute,
            "hamstring_onset_ms": ham, "erector_onset_ms": extra.pop("erector", math.nan),
            "glute_ham_lag_ms": None if glute is None else glute - ham,
            "order": extra.pop("order", ["hamstring", "glute_max"]),
            "pelvic_tilt_deg": 7.0 if flag else 1.0, "pelvic_rotation_deg": 0.5,
            "pelvic_flag": flag, "lift_deg": 9.0, **extra}


def test_late_glutes_get_glute_work_and_a_moving_pelvis_gets_flexibility():
    reps = [_rep("r", 220, -60, t=1), _rep("r", 180, -40, t=9), _rep("r", None, -50, t=17),
            _rep("l", 5, -20, flag=True, t=30), _rep("l", 10, -10, flag=True, t=38),
            _rep("l", 8, -30, t=46)]
    summaries = results.phe_side_summaries(reps)
    assert summaries["r"].n_reps == 3 and summaries["r"].glute_onset_ms == pytest.approx(200)
    assert summaries["l"].n_pelvic_flags == 2 and summaries["l"].order == ("hamstring",
                                                                           "glute_max")
    advice = results.phe_advice_for(summaries)
    right = next(a for a in advice if a.startswith("Right leg"))
    left = next(a for a in advice if a.startswith("Left leg"))
    assert "glute bridges, bird dogs and direct glute training" in right
    assert "hip-flexor and quadriceps flexibility" in left
    table = results.repetition_table(reps)
    assert list(table.columns) == list(results.REPETITION_COLUMNS)
    assert table["Repetition"].tolist() == [1, 2, 3, 1, 2, 3]
    assert table.loc[0, "Firing order"] == "hamstrings → glute max"
    assert math.isnan(table.loc[5, "Glute max onset (ms)"])  # right rep 3: glutes not found
    sides = results.side_table(summaries)
    assert sides["Pelvis moved > 5°"].tolist() == ["2 of 3", "0 of 3"]


def test_the_pipelines_own_advice_is_shown_when_it_comes_with_the_result():
    summaries = results.phe_side_summaries([_rep("r", 220, -60)])
    given = {"r": ["Right leg: from the pipeline."], "l": []}
    assert results.phe_advice_for(summaries, given) == ["Right leg: from the pipeline."]
    assert results.phe_advice_for(summaries, ["one", "two"]) == ["one", "two"]
    assert results.phe_advice_for(summaries, None) == list(
        phe_advice(summaries["r"], "r"))


def test_stored_repetitions_from_the_engine_read_back_the_same(tmp_path):
    """A simulated prone test through the engine, the store and back: same table."""
    from hipstride.pipeline.engine.phe import phe_analyze
    from tests.pipeline.engine.test_phe import _inputs

    sim = simulate(58.0, profile="hamstring_dominant", seed=4, prone=True, prone_reps=3,
                   standing_s=3.0)
    emg, thighs, pelvis = _inputs(sim)
    prone = sim.truth.phase("prone")
    phe = phe_analyze(thighs, emg, pelvis, start_s=prone["start_s"],
                      end_s=prone["end_s"]).to_dict()
    assert phe["repetitions"], "the simulator's prone test should produce lifts"
    with SqliteStore(tmp_path / "s.db") as store:
        store.write_phe("tm1", "s1", "ana", phe["repetitions"], origin_ns=10**18)
        rows = store.phe("s1")
    fresh = results.repetition_table(phe["repetitions"])
    stored = results.repetition_table(rows)
    assert fresh["Firing order"].tolist() == stored["Firing order"].tolist()
    assert fresh["Glute max onset (ms)"].fillna(-1).round(3).tolist() == \
        stored["Glute max onset (ms)"].fillna(-1).round(3).tolist()
    assert results.phe_advice_for(results.phe_side_summaries(rows)) == \
        [a for s in ("r", "l") if s in phe["advice"] for a in phe["advice"][s]]


def test_calibration_facts_and_mvc_tables():
    cal = {"standing": {"imu": {"pelvis": {}, "thigh_l": {}},
                        "emg": {"channels": ["glute_max_l", "glute_max_r"]}},
           "mvc": {"channels": ["glute_max_r"], "reference_mv": [0.61]},
           "baseline": {"n_strides": {"l": 30, "r": 30}},
           "time_ns": {"standing": 1_767_600_000 * 10**9, "mvc": 1_767_600_100 * 10**9}}
    facts = results.calibration_facts(cal)
    assert [f[0] for f in facts] == ["Standing calibration", "Maximal contractions (MVC)",
                                     "Running baseline"]
    assert "pelvis, thigh_l" in facts[0][2] and "2 channels" in facts[0][2]
    assert facts[2][1] == "—" and "left 30" in facts[2][2]
    assert results.mvc_reference_table(cal).to_dict("list") == {
        "Muscle": ["glute max, right"], "MVC reference (mV)": [0.61]}
    assert results.calibration_facts(None) == []
    mvc = results.mvc_result_table({"result": {"muscles": {
        "glute_max_l": {"peak_mv": 0.3, "ok": False, "problem": "too short"}}}})
    assert mvc.to_dict("records") == [{"Muscle": "glute max, left", "Peak (mV)": 0.3,
                                       "Good": "no", "Problem": "too short"}]
    standing = results.standing_result_table({"result": {"segments": {
        "thigh_r": {"moved_deg": 0.4, "ok": True}, "pelvis": {"moved_deg": 6.0, "ok": False}}}})
    assert standing["Sensor"].tolist() == ["pelvis", "thigh r"]
    assert standing["Good"].tolist() == ["no", "yes"]
