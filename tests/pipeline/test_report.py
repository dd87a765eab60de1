"""The HTML session report: sections, numbers, wording, escaping, self-containment, degradation.

Results are built directly (synthetic rows, ensembles and summary) so the test needs no
engine run and stays fast.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from hipstride.pipeline.engine.data import GaitEvents
from hipstride.pipeline.engine.result import AnalysisResult, Ensemble
from hipstride.pipeline.engine.schema import STRIDE_COLUMNS
from hipstride.pipeline.engine.summary import summarise
from hipstride.pipeline.report import (
    CuePeriod,
    cue_periods,
    cue_sentence,
    extension_sentence,
    fmt_duration,
    fmt_num,
    key_findings,
    onset_sentence,
    ratio_sentence,
    render_report,
    rolling_median,
    symmetry_sentence,
    tilt_sentence,
)

pytestmark = pytest.mark.timeout(60)

#: Per-side means of the synthetic profiles.
PROFILES = {
    "healthy": {"l": dict(ratio=1.05, ext=9.6, tilt=6.0, lag=45.0),
                "r": dict(ratio=1.02, ext=9.3, tilt=6.2, lag=50.0)},
    "hamstring": {"l": dict(ratio=0.35, ext=3.6, tilt=13.5, lag=160.0),
                  "r": dict(ratio=0.50, ext=6.0, tilt=13.0, lag=120.0)},
}
STRIDE_S = 0.72


def _cycle(points: list[tuple[float, float]]) -> np.ndarray:
    """A smooth periodic curve over 0..100 % through control points (pct, value)."""
    x = np.linspace(0, 100, 101)
    px, py = zip(*points, strict=True)
    raw = np.interp(x, px, py)
    kernel = np.ones(9) / 9
    padded = np.concatenate([raw[-9:-1], raw, raw[1:9]])
    return np.convolve(padded, kernel, mode="same")[8:-8]


def _ensembles(side: str, ext: float, *, emg: bool, unit: str) -> dict[str, Ensemble]:
    hip = _cycle([(0, 42), (15, 30), (42, -ext), (55, 5), (85, 55), (100, 42)])
    out = {"hip_flexion_deg": Ensemble(hip, np.full(101, 3.0), 100, "deg")}
    if emg:
        x = np.linspace(0, 100, 101)
        glute = 0.35 * np.exp(-0.5 * ((x - 8) / 8) ** 2) + 0.2 * np.exp(-0.5 * ((x - 98) / 5) ** 2)
        ham = 0.45 * np.exp(-0.5 * ((x - 92) / 7) ** 2) + 0.25 * np.exp(-0.5 * (x / 6) ** 2)
        out["glute_envelope"] = Ensemble(glute, 0.25 * glute, 100, unit)
        out["hamstring_envelope"] = Ensemble(ham, 0.25 * ham, 100, unit)
    return out


def make_result(profile: str = "healthy", *, emg: bool = True, pelvis: bool = True,
                sides: tuple[str, ...] = ("l", "r"), cues: bool | None = None,
                phe: bool = True, valid: bool = True, n: int = 150,
                normalization: str = "mvc") -> AnalysisResult:
    """A synthetic analysed session of ``n`` strides per side."""
    rng = np.random.default_rng(7)
    means = PROFILES[profile]
    norm = normalization if emg else ""
    rows, events, ensembles = [], {}, {}
    for side in sides:
        m = means[side]
        offset = 0.0 if side == "l" else STRIDE_S / 2
        ic = 5.0 + offset + np.arange(n + 1) * STRIDE_S
        ok = np.full(n, valid)
        if valid:
            ok[[20, 77]] = False
        quality = [] if emg else ["missing:emg"]
        if not pelvis:
            quality.append("missing:imu_pelvis")
        for k in range(n):
            row = dict.fromkeys(STRIDE_COLUMNS, math.nan)
            drift = k / n  # a little fatigue across the session
            row.update(side=side, stride_index=k, stride_start_s=float(ic[k]),
                       stride_time_s=STRIDE_S, cadence_spm=120 / STRIDE_S, valid=bool(ok[k]),
                       normalization=norm, gait_method="shank_gyro", quality=";".join(quality),
                       peak_hip_extension_deg=m["ext"] - drift + rng.normal(0, 1.0),
                       peak_hip_extension_pct=42.0, peak_hip_flexion_deg=55 + rng.normal(0, 2),
                       toe_off_pct=38.0)
            row["hip_rom_deg"] = row["peak_hip_flexion_deg"] + row["peak_hip_extension_deg"]
            if emg:
                row.update(glute_ham_ratio=m["ratio"] * (1 - 0.1 * drift) + rng.normal(0, 0.08),
                           hamstring_onset_ms=-90 + rng.normal(0, 10))
                row["glute_onset_ms"] = row["hamstring_onset_ms"] + m["lag"] + rng.normal(0, 15)
                row["onset_lag_ms"] = row["glute_onset_ms"] - row["hamstring_onset_ms"]
            if pelvis:
                row.update(peak_anterior_tilt_deg=m["tilt"] + rng.normal(0, 1.0),
                           pelvic_tilt_range_deg=5 + rng.normal(0, 0.5))
            rows.append(row)
        reasons = tuple("" if v else "stride time 1.40 s outside 0.5-1.2 s" for v in ok)
        events[side] = GaitEvents(side, ic, np.full(n, np.nan), ok, reasons, "shank_gyro")
        if valid:
            ensembles[side] = _ensembles(side, m["ext"], emg=emg,
                                         unit="fraction of MVC" if norm == "mvc" else "relative")
    rows.sort(key=lambda r: r["stride_start_s"])
    cue_events = []
    if cues if cues is not None else profile == "hamstring":
        cue_events = [
            {"cue": "hamstring_dominant", "kind": "raise", "side": "l", "level": "alert",
             "message": "Drive from the glutes", "stride_start_s": 30.0, "channel": None},
            {"cue": "limited_hip_extension", "kind": "raise", "side": "l", "level": "alert",
             "message": "Push the ground behind you", "stride_start_s": 35.0, "channel": None},
            {"cue": "asymmetry", "kind": "raise", "side": None, "level": "caution",
             "message": "Even out left and right", "stride_start_s": 40.0, "channel": None},
            {"cue": "limited_hip_extension", "kind": "clear", "side": "l", "level": "alert",
             "message": "Push the ground behind you", "stride_start_s": 65.0, "channel": None},
        ]
    summary = summarise(rows)
    summary["start_time"] = "2024-05-14T09:30:00+00:00"
    summary["cues"] = cue_events
    summary["quality"] = {"normalization": norm or None,
                          "gait_method": dict.fromkeys(sides, "shank_gyro"),
                          "channel_flags": {}, "problems": []}
    problems = []
    if not emg:
        problems.append("no EMG: no ratios or onsets")
    if not pelvis:
        problems.append("no pelvis IMU: no pelvic tilt")
    if not valid:
        problems.append("all strides rejected: stride time outside 0.5-1.2 s")
    return AnalysisResult(rows=rows, events=events, kinematics=None, activity=None,
                          ensembles=ensembles, cue_events=cue_events,
                          phe=_phe() if phe else None, summary=summary, problems=problems)


def _phe() -> dict:
    """A prone hip extension result in the shape of ``PheResult.to_dict()``."""
    def rep(side: str, glute: float, ham: float, flag: bool) -> dict:
        return {"side": side, "movement_onset_s": 1.0, "lift_deg": 11.0,
                "glute_onset_ms": glute, "hamstring_onset_ms": ham, "erector_onset_ms": None,
                "order": ["hamstring", "glute_max"] if ham < glute else ["glute_max", "hamstring"],
                "glute_ham_lag_ms": glute - ham, "pelvic_tilt_deg": 6.5 if flag else 2.0,
                "pelvic_rotation_deg": 1.0, "pelvic_flag": flag, "channel_onsets_ms": {}}
    return {
        "repetitions": [rep("l", 140.0, -95.0, True), rep("l", 120.0, -80.0, True),
                        rep("r", -12.0, -101.0, False)],
        "sides": {"l": {"n_reps": 2, "glute_onset_ms": 130.0, "hamstring_onset_ms": -87.5,
                        "glute_ham_lag_ms": 217.5, "order": ["hamstring", "glute_max"],
                        "pelvic_tilt_deg": 6.5, "n_pelvic_flags": 2, "lift_deg": 11.0},
                  "r": {"n_reps": 1, "glute_onset_ms": -12.0, "hamstring_onset_ms": -101.0,
                        "glute_ham_lag_ms": 89.0, "order": ["hamstring", "glute_max"],
                        "pelvic_tilt_deg": 2.0, "n_pelvic_flags": 0, "lift_deg": 11.0}},
        "advice": {"l": ["Left leg: the glutes switched on late - try glute bridges."],
                   "r": ["Right leg: glutes on time and a steady pelvis - keep it up."]},
        "notes": [],
    }


def _text(html: str) -> str:
    """Visible text: tags removed, entities left as written."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', html)


@pytest.fixture(scope="module")
def healthy() -> tuple[AnalysisResult, str]:
    result = make_result("healthy")
    return result, render_report(result, title="Session review", athlete="Ana Runner",
                                 source="run_2024-05-14.hsrec")


@pytest.fixture(scope="module")
def hamstring() -> tuple[AnalysisResult, str]:
    result = make_result("hamstring")
    return result, render_report(result, title="Session review", athlete="Ben")


# --- the full report ----------------------------------------------------------------------------
def test_sections_in_order(hamstring):
    _, html = hamstring
    ids = ['id="header"', 'id="findings"', 'id="metrics"', 'id="figures"', 'id="phe"',
           'id="quality"', "<footer>"]
    positions = [html.index(i) for i in ids]
    assert positions == sorted(positions)
    assert html.startswith("<!DOCTYPE html>")
    assert "HipStride 0.1.0 — for coaching, not a medical diagnosis" in html


def test_header(healthy):
    _, html = healthy
    text = _text(html)
    for expected in ("Session review", "Ana Runner", "2024-05-14 09:30 UTC",
                     "run_2024-05-14.hsrec", "left: 148 valid / 2 rejected",
                     "right: 148 valid / 2 rejected", "MVC", "shank gyroscope"):
        assert expected in text, expected
    assert "Session length</dt> <dd>1 min 53 s" in text or "1 min 53 s" in text


def test_table_numbers_from_summary(healthy):
    result, html = healthy
    for side in ("l", "r"):
        ext = result.summary["sides"][side]["peak_hip_extension_deg"]
        assert f"{ext['mean']:.1f} ± {ext['sd']:.1f}°" in html
        ratio = result.summary["sides"][side]["glute_ham_ratio"]
        assert f"{ratio['mean']:.2f} ± {ratio['sd']:.2f}" in html
        assert f"n={ratio['n']}" in html
        cadence = result.summary["sides"][side]["cadence_spm"]
        assert f"{cadence['mean']:.0f} ± 0 steps/min" in html
    si = result.summary["symmetry_pct"]["peak_hip_extension_deg"]
    assert fmt_num(si, 0, "%", signed=True) in html


def test_asymmetry_highlighted_with_text(hamstring):
    result, html = hamstring
    si = result.summary["symmetry_pct"]["peak_hip_extension_deg"]
    assert abs(si) > 15
    assert f"⚠ {fmt_num(si, 0, '%', signed=True)} asymmetric" in html


def test_findings_hamstring_dominant_vs_healthy(healthy, hamstring):
    good = key_findings(healthy[0])
    bad = key_findings(hamstring[0])
    assert 3 <= len(good) <= 6 and 3 <= len(bad) <= 6
    good_text, bad_text = " ".join(good), " ".join(bad)
    assert "glutes are doing their share" in good_text
    assert "hamstring-dominant pattern" in bad_text and "hamstring-dominant" not in good_text
    assert "in the typical range" in good_text
    assert "limited" in bad_text and "limited" not in good_text
    assert "No coaching cues were raised" in good_text
    assert "“Drive from the glutes” on the left" in bad_text
    assert "Left and right are even" in good_text
    assert "Left and right differ" in bad_text
    assert "later than the usual" in bad_text and "a usual sequence" in good_text
    for sentence in good + bad:
        assert "diagnos" not in sentence.lower()
    # the sentences reach the HTML
    assert _text(hamstring[1]).count("hamstring-dominant pattern") == 1


def test_images_embedded_and_no_external_urls(healthy, hamstring):
    assert len(_images(healthy[1])) == 2  # cycle + session (no cues: no timeline)
    assert len(_images(hamstring[1])) == 3  # + cue timeline
    for _, html in (healthy, hamstring):
        stripped = re.sub(r'data:image/png;base64,[A-Za-z0-9+/=]+', "", html)
        assert "http" not in stripped.lower()
        assert "<script" not in stripped.lower()
        assert "src=\"//" not in stripped and "url(" not in stripped


def test_user_text_escaped():
    result = make_result("healthy", phe=False)
    result.problems.append("channel <b>glute_max_l</b> flat")
    html = render_report(result, title="Report <i>x</i>", athlete="<script>alert(1)</script>",
                         source='a"b.csv')
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Report &lt;i&gt;x&lt;/i&gt;" in html
    assert "&lt;b&gt;glute_max_l&lt;/b&gt;" in html
    assert "a&quot;b.csv" in html


def test_phe_section(hamstring):
    _, html = hamstring
    section = html[html.index('id="phe"'):html.index('id="quality"')]
    text = _text(section)
    assert "left 1" in text and "left 2" in text and "right 1" in text
    assert "−95 ms" in text and "+140 ms" in text
    assert "hamstrings → glute max" in text
    assert "yes — flagged" in text and "2 flagged" in text
    assert "Averages per side" in text and "+217.5" not in text and "+218 ms" in text
    assert "glute bridges" in text and "keep it up" in text
    assert "κ ≈ 0.7" in text and "hamstrings often fire first" in text


def test_quality_section(hamstring):
    _, html = hamstring
    section = _text(html[html.index('id="quality"'):html.index("<footer>")])
    assert "Rejected strides" in section
    assert "stride time 1.40 s outside 0.5-1.2 s (2)" in section


# --- degrading gracefully -----------------------------------------------------------------------
def test_no_emg():
    result = make_result("healthy", emg=False)
    html = render_report(result, title="t")
    text = _text(html)
    assert "No EMG in this session" in text
    assert "— (no EMG)" in text
    assert "no ratios or onsets" in text
    assert "missing:emg" in text
    assert len(_images(html)) == 2


def test_no_pelvis():
    html = render_report(make_result("healthy", pelvis=False), title="t")
    text = _text(html)
    assert "No pelvis sensor data" in text
    assert "— (no pelvis sensor)" in text


def test_one_side_only():
    html = render_report(make_result("healthy", sides=("r",)), title="t")
    text = _text(html)
    assert "Only the right side was measured" in text
    assert "Left (mean ± SD)" not in text and "Right (mean ± SD)" in text
    assert len(_images(html)) == 2


def test_no_cues_no_phe():
    html = render_report(make_result("hamstring", cues=False, phe=False), title="t")
    text = _text(html)
    assert "No coaching cues were raised" in text
    assert "no cue timeline" in text
    assert "No prone hip extension test in this session" in text
    assert len(_images(html)) == 2


def test_zero_valid_strides():
    result = make_result("healthy", valid=False, phe=False)
    html = render_report(result, title="t")
    text = _text(html)
    assert "No valid running strides were found" in text
    assert "No valid strides: there are no statistics to show" in text
    assert "left: 0 valid / 150 rejected" in text
    assert "all strides rejected" in text
    assert not _images(html)


def test_empty_result():
    result = AnalysisResult(rows=[], events={}, kinematics=None, activity=None, ensembles={},
                            cue_events=[], phe={}, summary={}, problems=[])
    html = render_report(result, title="t")
    assert "No valid running strides were found" in _text(html)
    assert "none found" in html


def test_relative_normalisation():
    html = render_report(make_result("healthy", normalization="relative"), title="t")
    text = _text(html)
    assert "relative — ratios compare within this session only" in text
    assert "Glute:hamstring ratio (relative)" in text


# --- wording rules and helpers ------------------------------------------------------------------
def test_fmt_num_and_duration():
    assert fmt_num(-4.04, 1, "°") == "−4.0°"
    assert fmt_num(-0.04, 1, "°") == "0.0°"
    assert fmt_num(12.3, 0, "ms", signed=True) == "+12 ms"
    assert fmt_num(float("nan")) == "—" and fmt_num(None) == "—" and fmt_num(True) == "—"
    assert fmt_duration(45) == "45 s"
    assert fmt_duration(75) == "1 min 15 s"
    assert fmt_duration(3725) == "1 h 02 min"
    assert fmt_duration(float("nan")) == "—"


def test_ratio_sentence():
    assert "share" in ratio_sentence({"l": 1.0, "r": 0.9}, "mvc")
    low = ratio_sentence({"l": 0.4, "r": 1.0}, "mvc")
    assert "On the left side the hamstrings do" in low or "left side the hamstrings" in low
    assert "on the right side the glutes" in low
    assert "left 0.40, right 1.00" in low
    assert "little more" in ratio_sentence({"l": 0.7}, "mvc")
    relative = ratio_sentence({"l": 1.0}, "relative")
    assert "relative" in relative and "within this session" in relative
    assert "could be measured" in ratio_sentence({}, "mvc")


def test_extension_and_tilt_sentences():
    assert "typical range" in extension_sentence({"l": 9.5, "r": 9.8})
    limited = extension_sentence({"l": 3.2, "r": 9.5})
    assert "left 3.2°, right 9.5°" in limited and "The left side is limited" in limited
    assert "a little under" in extension_sentence({"r": 6.5})
    assert "within the usual" in tilt_sentence({"l": 6.0, "r": 6.3}, {"l": 9.0})
    high = tilt_sentence({"l": 14.0, "r": 13.6}, {"l": 3.0})
    assert "up to 13.8° beyond standing posture" in high and "Brace" in high
    assert "making up for the hip" in high
    assert "making up" not in tilt_sentence({"l": 14.0}, {"l": 9.5})
    assert "not measured" in tilt_sentence({}, {})


def test_symmetry_and_onset_sentences():
    assert "even" in symmetry_sentence({"glute_ham_ratio": 4.0, "peak_hip_extension_deg": -7.0})
    caution = symmetry_sentence({"peak_hip_extension_deg": -12.4})
    assert "caution zone" in caution and "higher on the left" in caution
    alert = symmetry_sentence({"glute_ham_ratio": 30.0})
    assert "differ" in alert and "30% higher on the right" in alert and "+30%" in alert
    assert "could not be assessed" in symmetry_sentence({})
    assert "later than the usual" in onset_sentence({"l": 150.0, "r": 40.0})
    assert "150 ms after the hamstrings on the left and 40 ms after the hamstrings on the right" \
        in onset_sentence({"l": 150.0, "r": 40.0})
    early = onset_sentence({"l": -20.0})
    assert "20 ms before the hamstrings on the left" in early and "usual sequence" in early


def test_cue_periods_and_sentence():
    events = [
        {"cue": "hamstring_dominant", "kind": "raise", "side": "l", "level": "alert",
         "stride_start_s": 10.0},
        {"cue": "asymmetry", "kind": "raise", "side": None, "level": "caution",
         "stride_start_s": 20.0},
        {"cue": "asymmetry", "kind": "raise", "side": None, "level": "alert",
         "stride_start_s": 30.0},
        {"cue": "hamstring_dominant", "kind": "clear", "side": "l", "level": "alert",
         "stride_start_s": 70.0},
        {"cue": "bogus"},
    ]
    periods = cue_periods(events, end_s=100.0)
    assert [(p.cue, p.level, p.start_s, p.end_s) for p in periods] == [
        ("hamstring_dominant", "alert", 10.0, 70.0), ("asymmetry", "caution", 20.0, 30.0),
        ("asymmetry", "alert", 30.0, 100.0)]
    sentence = cue_sentence(periods, 100.0)
    assert "“Drive from the glutes” on the left for 1 min 00 s, 60% of the session" in sentence
    assert "(caution level) for 10 s" in sentence
    assert cue_sentence([], 100.0).startswith("No coaching cues")
    assert isinstance(periods[0], CuePeriod)


def test_rolling_median():
    values = [1.0, 100.0, 1.0, 1.0, float("nan"), 1.0, 1.0]
    out = rolling_median(values, window=3)
    assert out[1] == 1.0 and out[4] == 1.0
    assert np.isnan(rolling_median([np.nan] * 5, window=15)).all()
