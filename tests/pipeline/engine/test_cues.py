"""Live cues on synthetic stride rows: windows, hysteresis, baselines, asymmetry, signal."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from hipstride.pipeline.engine import cues as cues_module
from hipstride.pipeline.engine.cues import (
    POPULATION_REFERENCE,
    Baseline,
    CueThresholds,
    CueTracker,
    classify_session,
    evaluate_cues,
    parse_quality_flags,
    population_baseline,
)
from hipstride.pipeline.engine.schema import CUES, STRIDE_COLUMNS, symmetry_index_pct

HEALTHY = {"glute_ham_ratio": 1.0, "peak_hip_extension_deg": 10.0,
           "peak_anterior_tilt_deg": 6.0, "onset_lag_ms": 50.0}


def row(side: str = "l", k: int = 0, **metrics) -> dict:
    """A healthy stride row of ``side`` (stride ``k``), with ``metrics`` overriding."""
    out = dict.fromkeys(STRIDE_COLUMNS, math.nan)
    out.update(side=side, stride_index=k, stride_start_s=0.7 * k + (0.35 if side == "r" else 0),
               stride_time_s=0.7, cadence_spm=120 / 0.7, hip_rom_deg=60.0, valid=True,
               normalization="mvc", gait_method="shank_gyro", quality="")
    out.update(HEALTHY)
    out.update(metrics)
    return out


def stored() -> Baseline:
    return Baseline(values={s: dict(HEALTHY) for s in "lr"}, n_strides={"l": 30, "r": 30},
                    source="stored")


def feed(tracker: CueTracker, rows: list[dict]) -> list:
    events = []
    for r in rows:
        events += tracker.update(r)
    return events


def raises(events, cue):
    return [e for e in events if e.cue == cue and e.kind == "raise"]


# --- windows ---------------------------------------------------------------------------------
WINDOWED = [
    ("hamstring_dominant", {"glute_ham_ratio": 0.70}, {"glute_ham_ratio": 0.76}),
    ("limited_hip_extension", {"peak_hip_extension_deg": 4.0},
     {"peak_hip_extension_deg": 5.5}),
    ("pelvis_tipping_forward", {"peak_anterior_tilt_deg": 11.5},
     {"peak_anterior_tilt_deg": 10.5}),
    ("glutes_late", {"onset_lag_ms": 101.0}, {"onset_lag_ms": 99.0}),
]


@pytest.mark.parametrize(("cue", "bad", "almost"), WINDOWED, ids=[w[0] for w in WINDOWED])
def test_cue_is_raised_on_the_10th_bad_stride_of_15_not_the_9th(cue, bad, almost):
    tracker = CueTracker(stored())
    # 5 good strides, then bad ones: window 15 holds 5 good + n bad.
    assert feed(tracker, [row(k=k) for k in range(5)]) == []
    events = feed(tracker, [row(k=5 + k, **bad) for k in range(9)])
    assert raises(events, cue) == [], "9 of 15 must not raise"
    events = tracker.update(row(k=14, **bad))
    assert [(e.cue, e.kind, e.side) for e in events] == [(cue, "raise", "l")]
    ev = events[0]
    assert ev.evidence["count"] == 10 and ev.evidence["window"] == 15
    assert ev.message.startswith(CUES[cue]) and "left" in ev.message
    assert ev.stride_start_s == pytest.approx(0.7 * 14)
    assert tracker.is_active(cue, "l") and not tracker.is_active(cue, "r")


@pytest.mark.parametrize(("cue", "bad", "almost"), WINDOWED, ids=[w[0] for w in WINDOWED])
def test_values_just_inside_the_threshold_never_raise(cue, bad, almost):
    assert raises(evaluate_cues([row(k=k, **almost) for k in range(40)], stored()), cue) == []


def test_cue_clears_only_after_11_good_of_15_and_never_flickers():
    tracker = CueTracker(stored())
    bad = {"glute_ham_ratio": 0.5}
    feed(tracker, [row(k=k, **bad) for k in range(15)])
    assert tracker.is_active("hamstring_dominant", "l")
    # Alternating bad/good keeps 7-8 bad of 15: neither raise nor clear.
    events = feed(tracker, [row(k=15 + k, **(bad if k % 2 else {})) for k in range(40)])
    assert events == [] and tracker.is_active("hamstring_dominant", "l")
    # Good strides: after the alternation the window holds 8 bad; it clears when <= 4 remain.
    events, k = [], 55
    while not events:
        events = tracker.update(row(k=k))
        k += 1
    assert [(e.cue, e.kind) for e in events] == [("hamstring_dominant", "clear")]
    assert events[0].evidence["count"] == 4
    assert events[0].message.startswith("Cleared")


def test_alternating_sequence_never_raises_a_quiet_cue():
    rows = [row(k=k, **({"peak_hip_extension_deg": 2.0} if k % 2 else {})) for k in range(60)]
    assert evaluate_cues(rows, stored()) == []


def test_sides_have_their_own_windows():
    rows = []
    for k in range(20):
        rows += [row("l", k, glute_ham_ratio=0.4), row("r", k)]
    events = evaluate_cues(rows, stored())
    hd = raises(events, "hamstring_dominant")
    assert [e.side for e in hd] == ["l"] and "left" in hd[0].message


def test_invalid_rows_and_nan_metrics_are_ignored():
    tracker = CueTracker(stored())
    bad = {"peak_hip_extension_deg": 1.0}
    feed(tracker, [row(k=k, **bad) for k in range(9)])
    # Invalid strides, even bad ones, and NaN extension do not enter the window...
    junk = [row(k=9 + k, valid=False, **bad) for k in range(5)]
    junk += [row(k=14 + k, peak_hip_extension_deg=math.nan) for k in range(5)]
    assert feed(tracker, junk) == []
    # ... so the window still holds exactly 9 bad strides, and the next one raises.
    events = tracker.update(row(k=30, **bad))
    assert [(e.cue, e.kind) for e in events] == [("limited_hip_extension", "raise")]
    assert events[0].evidence["window"] == 10


def test_limited_extension_absolute_rule_and_relative_rule():
    # Absolute: < 5 deg even against a low baseline.
    low = Baseline(values={s: {**HEALTHY, "peak_hip_extension_deg": 4.0} for s in "lr"})
    assert raises(evaluate_cues([row(k=k, peak_hip_extension_deg=4.5)
                                 for k in range(15)], low), "limited_hip_extension")
    # Relative: 14 deg is fine in general but > 5 deg below a 20 deg baseline.
    high = Baseline(values={s: {**HEALTHY, "peak_hip_extension_deg": 20.0} for s in "lr"})
    events = evaluate_cues([row(k=k, peak_hip_extension_deg=14.0) for k in range(15)], high)
    assert raises(events, "limited_hip_extension")[0].evidence["limit"] == 15.0


def test_tipping_forward_evidence_carries_the_extension():
    rows = [row(k=k, peak_anterior_tilt_deg=13.0, peak_hip_extension_deg=6.0)
            for k in range(10)]
    ev = raises(evaluate_cues(rows, stored()), "pelvis_tipping_forward")[0]
    assert ev.evidence["peak_hip_extension_deg"] == 6.0
    assert ev.evidence["baseline"] == 6.0


def test_thresholds_are_configurable_and_validated():
    th = CueThresholds(window_strides=5, min_strides=3, clear_max_strides=1,
                       ratio_drop_frac=0.5)
    rows = [row(k=k, glute_ham_ratio=0.6) for k in range(10)]
    assert raises(evaluate_cues(rows, stored(), thresholds=th), "hamstring_dominant") == []
    rows = [row(k=k, glute_ham_ratio=0.4) for k in range(3)]
    assert raises(evaluate_cues(rows, stored(), thresholds=th), "hamstring_dominant")
    with pytest.raises(ValueError):
        CueThresholds(min_strides=4, clear_max_strides=4)


# --- baselines -------------------------------------------------------------------------------
def test_baseline_is_the_median_and_robust_to_one_bad_stride():
    rows = [row("l", k, glute_ham_ratio=1.0 + 0.01 * (k % 3)) for k in range(29)]
    rows.append(row("l", 29, glute_ham_ratio=25.0, peak_hip_extension_deg=-40.0))
    rows += [row("r", k) for k in range(30)]
    base = Baseline.from_rows(rows, 30)
    assert base.get("l", "glute_ham_ratio") == pytest.approx(1.01)
    assert base.get("l", "peak_hip_extension_deg") == 10.0
    assert base.n_strides == {"l": 30, "r": 30}
    assert base.normalization == "mvc"


def test_baseline_uses_only_the_first_n_valid_strides():
    rows = [row("l", 0, valid=False, glute_ham_ratio=0.1)]
    rows += [row("l", k, glute_ham_ratio=2.0) for k in range(1, 4)]
    rows += [row("l", k, glute_ham_ratio=0.2) for k in range(4, 10)]
    assert Baseline.from_rows(rows, 3).get("l", "glute_ham_ratio") == 2.0
    assert math.isnan(Baseline.from_rows(rows, 3).get("r", "glute_ham_ratio"))


def test_baseline_round_trips_through_json():
    rows = [row(s, k, onset_lag_ms=math.nan if k < 20 else 40.0) for k in range(30)
            for s in "lr"]
    base = Baseline.from_rows(rows, athlete="a17")
    # 20 of 30 lags are NaN: fewer than half had a value, so the lag baseline is unknown.
    assert math.isnan(base.get("l", "onset_lag_ms"))
    back = Baseline.from_dict(json.loads(json.dumps(base.to_dict())), source="stored")
    assert back.source == "stored" and back.athlete == "a17"
    assert back.get("r", "glute_ham_ratio") == 1.0
    assert math.isnan(back.get("r", "onset_lag_ms"))


def test_tracker_learns_a_session_baseline_before_relative_cues():
    tracker = CueTracker(baseline_strides=30)
    rows = [row("l", k, glute_ham_ratio=2.0) for k in range(30)]
    assert feed(tracker, rows) == []
    assert tracker.baseline_value("l", "glute_ham_ratio") == 2.0
    assert tracker.session_baseline is None  # the right side has not run yet
    events = feed(tracker, [row("l", 30 + k, glute_ham_ratio=1.4) for k in range(10)])
    assert [e.cue for e in raises(events, "hamstring_dominant")] == ["hamstring_dominant"]


def test_a_runner_hamstring_dominant_from_the_start_is_only_seen_against_a_reference():
    rows = [row(s, k, glute_ham_ratio=0.2) for k in range(120) for s in "lr"]
    relative = [{**r, "normalization": "relative"} for r in rows]
    assert raises(evaluate_cues(relative), "hamstring_dominant") == []  # own baseline is low
    live = raises(evaluate_cues(rows), "hamstring_dominant")  # MVC rows: population floor
    assert [(e.side, e.evidence["reference"]) for e in live] == [("l", "population"),
                                                                ("r", "population")]
    assert live[0].evidence["limit"] == pytest.approx(0.75 * POPULATION_REFERENCE[
        "glute_ham_ratio"])
    assert raises(evaluate_cues(rows, stored()), "hamstring_dominant")  # healthy stored one
    own = Baseline.from_rows(rows, source="stored")
    assert raises(evaluate_cues(rows, own), "hamstring_dominant") == []
    assert classify_session(rows) == {"hamstring_dominant"}  # population defaults
    assert classify_session(rows, Baseline.from_rows(rows)) == set()


def test_a_healthy_mvc_runner_keeps_their_own_higher_baseline():
    rows = [row(s, k, glute_ham_ratio=1.2) for k in range(40) for s in "lr"]
    drop = [row(s, 40 + k, glute_ham_ratio=0.85) for k in range(15) for s in "lr"]
    assert raises(evaluate_cues(rows), "hamstring_dominant") == []
    events = raises(evaluate_cues(rows + drop), "hamstring_dominant")
    assert [e.evidence["reference"] for e in events] == ["session", "session"]
    assert events[0].evidence["baseline"] == pytest.approx(1.2)


def test_a_ratio_learnt_on_another_normalisation_is_not_compared():
    # ~30 relative strides (ratio ~1 by construction), then MVC references arrive.
    relative = [row(s, k, glute_ham_ratio=1.0, normalization="relative") for k in range(30)
                for s in "lr"]
    healthy = [row(s, 30 + k, glute_ham_ratio=0.9) for k in range(30) for s in "lr"]
    assert raises(evaluate_cues(relative + healthy), "hamstring_dominant") == []
    weak = [row(s, 30 + k, glute_ham_ratio=0.3) for k in range(15) for s in "lr"]
    events = raises(evaluate_cues(relative + weak), "hamstring_dominant")
    assert [e.evidence["reference"] for e in events] == ["population", "population"]
    # Back to relative rows after a mixed learning window: no reference, no ratio cue.
    tracker = CueTracker()
    mixed = relative[:20] + healthy[:20]
    later = [row(s, 60 + k, glute_ham_ratio=0.3, normalization="relative") for k in range(30)
             for s in "lr"]
    assert raises(feed(tracker, mixed + later), "hamstring_dominant") == []
    assert tracker.session_baseline is not None  # learnt, but on both scales


def test_population_ratio_is_skipped_for_relative_normalisation():
    rows = [row(s, k, glute_ham_ratio=0.2, normalization="relative") for k in range(60)
            for s in "lr"]
    assert classify_session(rows) == set()
    base = population_baseline()
    assert base.source == "population" and base.get("r", "peak_hip_extension_deg") == 10.0
    assert dict(POPULATION_REFERENCE) == {k: base.get("l", k) for k in POPULATION_REFERENCE}


# --- asymmetry -------------------------------------------------------------------------------
def test_symmetry_index_math():
    assert symmetry_index_pct(110.0, 90.0) == pytest.approx(20.0)
    assert symmetry_index_pct(0.5, 1.0) == pytest.approx(-100.0 / 1.5)
    assert math.isnan(symmetry_index_pct(1.0, -1.0))


def test_asymmetry_waits_for_20_strides_per_side_then_alerts_with_the_si():
    rows = []
    for k in range(25):
        rows += [row("l", k, glute_ham_ratio=1.0), row("r", k, glute_ham_ratio=0.8)]
    tracker = CueTracker(stored())
    # both windows full at the 40th row; the alert holds 10 of 15 strides: the 49th raises it
    assert raises(feed(tracker, rows[:48]), "asymmetry") == []
    events = tracker.update(rows[48])
    assert [(e.cue, e.level, e.side) for e in events] == [("asymmetry", "alert", None)]
    assert events[0].evidence["si_pct"] == pytest.approx(symmetry_index_pct(0.8, 1.0))
    assert events[0].evidence["metric"] == "glute_ham_ratio"


def test_asymmetry_caution_band_and_si_hysteresis():
    tracker = CueTracker(stored())

    def run(right_ratio: float, n: int = 20) -> list:
        out = []
        for k in range(n):
            out += tracker.update(row("l", k, glute_ham_ratio=1.0))
            out += tracker.update(row("r", k, glute_ham_ratio=right_ratio))
        return [(e.kind, e.level) for e in out if e.cue == "asymmetry"]

    si = abs(symmetry_index_pct(0.88, 1.0))
    assert 10 < si < 15
    assert run(0.88, 25) == [("raise", "caution")]  # windows full after 20, held 10 of 15
    assert run(0.84) == [("raise", "alert")]  # |SI| ~ 17 %
    assert run(0.87) == []  # 13.9 %: still above 15 - 2
    assert run(0.88) == [("raise", "caution")]  # 12.8 % < 13
    assert run(0.91) == []  # 9.4 %: inside the 2 % margin below 10
    assert run(0.95) == [("clear", "caution")]


def test_asymmetry_ignores_metrics_near_zero():
    rows = []
    for k in range(25):
        rows += [row("l", k, peak_hip_extension_deg=1.0), row("r", k, peak_hip_extension_deg=2.0)]
    th = CueThresholds(extension_min_deg=0.0)
    assert raises(evaluate_cues(rows, stored(), thresholds=th), "asymmetry") == []


# --- signal problems -------------------------------------------------------------------------
def test_quality_flags_are_parsed():
    flags = parse_quality_flags("missing:glute_max_l;saturated:biceps_femoris_r;relative;"
                                "flat:glute_max_l")
    assert flags == {"glute_max_l": {"missing", "flat"}, "biceps_femoris_r": {"saturated"}}
    assert parse_quality_flags(None) == {}


def test_signal_problem_names_the_channel_and_clears():
    tracker = CueTracker(stored())
    bad = [row("r", k, quality="saturated:biceps_femoris_r") for k in range(3)]
    events = feed(tracker, bad[:2])
    assert events == []
    events = tracker.update(bad[2])
    assert len(events) == 1
    ev = events[0]
    assert (ev.cue, ev.kind, ev.channel, ev.side) == (
        "signal_problem", "raise", "biceps_femoris_r", "r")
    assert "biceps_femoris_r" in ev.message and "saturated" in ev.message
    assert ev.message.startswith(CUES["signal_problem"])
    events = feed(tracker, [row("r", 3 + k) for k in range(5)])
    assert [(e.kind, e.channel) for e in events] == [("clear", "biceps_femoris_r")]


def test_two_channels_raise_separately():
    rows = [row("l", k, quality="missing:glute_max_l;flat:imu_pelvis") for k in range(3)]
    events = evaluate_cues(rows, stored())
    assert {(e.channel, e.side) for e in events} == {("glute_max_l", "l"), ("imu_pelvis", None)}


# --- offline == streaming, classification, purity ----------------------------------------------
def test_evaluate_cues_is_the_tracker_over_all_rows():
    rows = []
    for k in range(80):
        rows += [row("l", k, glute_ham_ratio=1.0 if k < 40 else 0.5),
                 row("r", k, onset_lag_ms=50 + 2 * k, quality="flat:glute_max_r" if k > 70 else "")]
    tracker = CueTracker(stored())
    assert [e.to_dict() for e in feed(tracker, rows)] == [
        e.to_dict() for e in evaluate_cues(rows, stored())]
    json.dumps([e.to_dict() for e in evaluate_cues(rows, stored())])


def test_classify_session_needs_a_cue_for_half_the_session():
    early = [row(s, k, onset_lag_ms=200.0 if k < 40 else 50.0) for k in range(100)
             for s in "lr"]
    assert classify_session(early) == set()
    late = [row(s, k, onset_lag_ms=200.0 if k >= 40 else 50.0) for k in range(100)
            for s in "lr"]
    assert classify_session(late) == {"glutes_late"}
    assert classify_session(late, min_fraction=0.7) == set()


def test_cues_module_imports_only_numpy_and_the_stdlib():
    tree = ast.parse(Path(cues_module.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module.split(".")[0] in {"__future__", "numpy", "collections",
                                                 "dataclasses", "typing", "math"}
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in {"numpy", "math"} for a in node.names)
