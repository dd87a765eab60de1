"""Accuracy of the engine against the simulator's ground truth.

``python -m hipstride.pipeline.validation [--quick] [--out docs/validation.md]`` simulates
sessions — every profile, several seeds, jogging to fast running, misaligned straps, extra
noise and electrode dropouts — runs the whole engine on each (MVC trials included, so ratios
are comparable with the truth), matches detected strides to true ones and writes a table of
errors. The accuracy tests call the same functions on a few fixed seeds.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hipstride.edge.simulator import simulate
from hipstride.edge.simulator.session import Dropout, SimulatedSession
from hipstride.pipeline.engine.analysis import analyze
from hipstride.pipeline.engine.cues import classify_session
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.engine.result import AnalysisResult

MATCH_S = 0.06  # a detected IC within 60 ms of a true IC is the same stride
#: Per profile: the cues it must raise, and those it may raise too (population baseline,
#: MVC-normalised EMG). The simulated hamstring-dominant runner also has late glutes; the
#: limited-extension runner tips the pelvis forward; the asymmetric runner's weak right side
#: is itself hamstring-dominant with less extension. A healthy runner raises nothing.
EXPECTED_CUES = {
    "healthy": (set(), set()),
    "hamstring_dominant": ({"hamstring_dominant", "glutes_late"}, set()),
    "limited_extension": ({"limited_hip_extension", "pelvis_tipping_forward"}, set()),
    "asymmetry": ({"asymmetry"}, {"hamstring_dominant", "limited_hip_extension",
                                  "glutes_late"}),
}


def cues_correct(profile: str, raised: set[str], truth: set[str] | None = None) -> bool:
    """The profile's defining cues are raised, and the engine agrees with a perfect
    measurement (``truth``: the cues of the truth's own stride rows; a simulated runner's
    random variation can make a cue true) except on the profile's secondary cues, whose
    values sit near their thresholds by design (e.g. the asymmetric runner's weak-side onset
    lag of ~97 ms against a 100 ms limit)."""
    required, allowed = EXPECTED_CUES[profile]
    if truth is None:
        return required <= raised <= required | allowed
    return required <= raised and (raised ^ truth) <= allowed


def truth_cues(session: SimulatedSession) -> set[str]:
    """What the cues say about the truth's own per-stride values (MVC-normalised)."""
    rows = [dict(s, valid=True, normalization="mvc", quality="", gait_method="truth")
            for s in session.truth.strides if s["steady"]]
    return classify_session(rows)
TARGETS = {
    "stride_recall": ("≥", 0.99), "stride_precision": ("≥", 0.99),
    "ic_error_ms": ("≤", 10.0), "peak_hip_extension_error_deg": ("≤", 2.0),
    "peak_anterior_tilt_error_deg": ("≤", 2.0), "glute_onset_error_ms": ("≤", 20.0),
    "hamstring_onset_error_ms": ("≤", 20.0),
}


@dataclass(frozen=True)
class Case:
    name: str
    profile: str = "healthy"
    seed: int = 1
    duration_s: float = 150.0
    settings: dict[str, Any] = field(default_factory=dict)
    #: Whether the cue classification is judged: on the profile cases, whose point it is. The
    #: condition cases (speed changes, noise) measure strides and angles.
    judge_cues: bool = True


def engine_inputs(session: SimulatedSession) -> tuple[EmgData, dict[str, ImuData], EmgData]:
    """The session as the engine sees it: running EMG, IMUs, and the MVC trials' EMG."""
    d = session.description("emg")
    samples = np.asarray(session.data["emg"], dtype=float)
    mvc_phase = session.truth.phase("mvc")
    a, b = (round(mvc_phase[k] * d.rate_hz) for k in ("start_s", "end_s"))
    end = mvc_phase["start_s"]
    emg = EmgData(samples[: round(end * d.rate_hz)], d.channel_names, d.rate_hz)
    mvc = EmgData(samples[a:b], d.channel_names, d.rate_hz)
    imus = {}
    for name, data in session.data.items():
        desc = session.description(name)
        if desc.kind == "imu":
            n = round(end * desc.rate_hz)
            imus[desc.segment] = ImuData(desc.segment, np.asarray(data[:n, :3], float),
                                         np.asarray(data[:n, 3:], float), desc.rate_hz,
                                         mounting=np.asarray(desc.mounting))
    return emg, imus, mvc


def match_strides(truth_rows: list[dict], rows: list[dict], side: str
                  ) -> tuple[list[tuple[dict, dict]], int, int]:
    """Pairs (detected, true) of steady strides, and the counts of true and detected ones."""
    true = [s for s in truth_rows if s["side"] == side and s["steady"]]
    found = [r for r in rows if r["side"] == side and r["valid"]]
    if not true:
        return [], 0, len(found)
    true_ic = np.array([s["stride_start_s"] for s in true])
    lo, hi = true_ic.min() - MATCH_S, true_ic.max() + MATCH_S
    found = [r for r in found if lo <= r["stride_start_s"] <= hi]
    pairs, used = [], set()
    for r in found:
        k = int(np.argmin(np.abs(true_ic - r["stride_start_s"])))
        if abs(true_ic[k] - r["stride_start_s"]) <= MATCH_S and k not in used:
            used.add(k)
            pairs.append((r, true[k]))
    return pairs, len(true), len(found)


def _median_abs(values: list[float]) -> float:
    arr = np.abs(np.array(values, dtype=float))
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if len(arr) else math.nan


def compare(session: SimulatedSession, result: AnalysisResult) -> dict[str, float]:
    """Errors of one analysed session against its truth (medians over matched strides)."""
    truth = session.truth.strides
    pairs, n_true, n_found = [], 0, 0
    for side in "lr":
        p, t, f = match_strides(truth, result.rows, side)
        pairs += p
        n_true += t
        n_found += f

    def err(name: str, scale: float = 1.0) -> float:
        return _median_abs([(r[name] - t[name]) * scale for r, t in pairs])

    ratio = [r["glute_ham_ratio"] / t["glute_ham_ratio"] - 1 for r, t in pairs
             if t["glute_ham_ratio"] > 0]
    return {
        "stride_recall": len(pairs) / n_true if n_true else math.nan,
        "stride_precision": len(pairs) / n_found if n_found else math.nan,
        "ic_error_ms": err("stride_start_s", 1000.0),
        "peak_hip_extension_error_deg": err("peak_hip_extension_deg"),
        "peak_anterior_tilt_error_deg": err("peak_anterior_tilt_deg"),
        "glute_onset_error_ms": err("glute_onset_ms"),
        "hamstring_onset_error_ms": err("hamstring_onset_ms"),
        "glute_ham_ratio_error_pct": _median_abs(ratio) * 100,
    }


def run_case(case: Case) -> dict[str, Any]:
    session = simulate(case.duration_s, profile=case.profile, seed=case.seed, mvc=True,
                       **case.settings)
    emg, imus, mvc = engine_inputs(session)
    started = time.perf_counter()
    result = analyze(emg, imus, mvc=mvc)
    seconds = time.perf_counter() - started
    metrics = compare(session, result)
    cues = classify_session(result.rows)
    expected = truth_cues(session)
    metrics.update(cues=sorted(cues), truth_cues=sorted(expected),
                   cues_ok=cues_correct(case.profile, cues, expected) if case.judge_cues
                   else None,
                   realtime_factor=session.truth.phase("mvc")["start_s"] / seconds)
    return metrics


def glute_drive_drop(seed: int = 1, drop: float = 0.3) -> dict[str, float]:
    """A 30 % drop of glute drive mid-session: how much of it shows in glute_ham_ratio.

    The measured change of the median ratio between a window before and one after the drop
    is compared with the same change in the truth's per-stride ratio (which also carries the
    simulated warm-up, so it is not exactly 30 %).
    """
    session = simulate(220.0, profile="healthy", seed=seed, mvc=True,
                       glute_drive_drop=(60.0, 75.0, drop))
    emg, imus, mvc = engine_inputs(session)
    end = session.truth.phase("mvc")["start_s"]
    windows = ((20.0, 60.0), (80.0, end))

    def change(rows: list[dict]) -> float:
        before, after = (np.nanmedian([r["glute_ham_ratio"] for r in rows
                                       if a <= r["stride_start_s"] < b]) for a, b in windows)
        return float(1 - after / before)

    measured = change([r for r in analyze(emg, imus, mvc=mvc).rows if r["valid"]])
    truth = change([s for s in session.truth.strides if s["steady"]])
    return {"simulated_drop_pct": drop * 100, "truth_drop_pct": truth * 100,
            "measured_drop_pct": measured * 100,
            "error_pct_of_drop": abs(measured - truth) / truth * 100}


def cases(quick: bool = False) -> list[Case]:
    seeds = (1, 2) if quick else (1, 2, 3)
    out = [Case(f"{p} seed {s}", p, s) for p in EXPECTED_CUES for s in seeds]
    out += [
        Case("jog 7 → fast 18 km/h", "healthy", 4, 160.0,
             {"speed_schedule": ((0.0, 7.0), (40.0, 7.0), (90.0, 18.0))}, judge_cues=False),
        Case("straps 20° off", "healthy", 5, settings={"misalignment_deg": 20.0}),
        Case("straps 20° off, limited extension", "limited_extension", 6,
             settings={"misalignment_deg": 20.0}),
        Case("4x IMU noise, 50 Hz hum", "hamstring_dominant", 7,
             settings={"imu_noise": 4.0, "mains_hz": 50}, judge_cues=False),
        Case("electrode off: glute_max_r flat 40-60 s", "healthy", 9, settings={
            "dropouts": (Dropout("glute_max_r", 40.0, 60.0, "flat"),)}, judge_cues=False),
    ]
    if not quick:
        out.append(Case("fatigue over 3 min", "healthy", 8, 240.0, {"fatigue": 1.0},
                        judge_cues=False))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(value)


def write_markdown(results: list[tuple[Case, dict]], drop: dict[str, float], path: Path,
                   elapsed_s: float) -> None:
    cols = ["stride_recall", "stride_precision", "ic_error_ms", "peak_hip_extension_error_deg",
            "peak_anterior_tilt_error_deg", "glute_onset_error_ms", "hamstring_onset_error_ms",
            "glute_ham_ratio_error_pct", "cues", "truth_cues", "cues_ok"]
    heads = ["recall", "precision", "IC ms", "hip ext °", "tilt °", "glute onset ms",
             "ham onset ms", "ratio %", "cues raised", "cues on truth", "cues right"]
    lines = [
        "# Validation against simulator ground truth",
        "",
        "Written by `python -m hipstride.pipeline.validation` "
        f"({len(results)} sessions, {elapsed_s:.0f} s). Each session is simulated with its "
        "ground truth, analysed by the whole engine (static and functional IMU calibration, "
        "gait events, MVC-normalised EMG, per-stride metrics, cues), and every detected stride "
        f"is matched to a true stride within {MATCH_S * 1000:.0f} ms. Errors are medians of "
        "absolute per-stride errors over steady strides; recall and precision count strides.",
        "",
        "| target | value |", "|---|---|",
        *[f"| {k} | {op} {v:g} |" for k, (op, v) in TARGETS.items()],
        "| 30 % drop in glute drive shows in glute_ham_ratio | within 10 % of the drop |",
        "| every profile classified correctly by the cues | yes: the profile's own cues, and "
        "the same cues as its true stride values raise, but for the profile's borderline "
        "secondary cues |",
        "",
        "| session | " + " | ".join(heads) + " |",
        "|---" * (len(heads) + 1) + "|",
    ]
    for case, m in results:
        lines.append(f"| {case.name} | " + " | ".join(_fmt(m[c]) for c in cols) + " |")
    lines += [
        "",
        f"**Glute drive drop**: glute activation lowered by {drop['simulated_drop_pct']:.0f} % "
        "between 60 and 75 s. The median glute:hamstring ratio of the truth fell by "
        f"{drop['truth_drop_pct']:.1f} % (the simulated warm-up also moves it); the engine's by "
        f"{drop['measured_drop_pct']:.1f} % — {drop['error_pct_of_drop']:.1f} % of the drop off.",
        "",
        "**Real-time factor** of the offline engine on these sessions (5 IMUs, 6 EMG "
        f"channels): median {np.median([m['realtime_factor'] for _, m in results]):.0f}x.",
        "",
        "## What this does and does not show",
        "",
        "- The simulator is the ground truth of the tables above (real running is in \"Real "
        "data\" below). An algorithm that works on it is likely, "
        "not certain, to work on people: published IMU methods reach 3–8° RMSE for sagittal hip "
        "angles and a few ms to ~30 ms bias for initial contact against optical motion capture "
        "and force plates.",
        "- Initial contact: the simulator's IC lies between the two published shank-gyroscope "
        "landmarks (the zero crossing after mid-swing, ~44 ms early, and the following minimum, "
        "~39 ms late); the engine's default uses their midpoint. Check it against a force "
        "plate before trusting absolute IC timing on people; relative timing (onsets against "
        "IC, left against right) is unaffected by a constant bias.",
        "- Onsets are compared with the start of the simulated activation burst; the engine "
        "detects them on the band-passed EMG with TKEO, the method that cut onset error from "
        "~230 ms to ~40 ms on real EMG (Solnik et al. 2008).",
    ]
    # the "Real data" section comes from benchmarks/real_running.py: keep it
    old = path.read_text() if path.exists() else ""
    real = old.find("\n## Real data")
    path.write_text("\n".join(lines) + "\n" + (old[real:] if real >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer seeds, no fatigue case")
    parser.add_argument("--out", default="docs/validation.md", help="markdown file to write")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    started = time.perf_counter()
    results = []
    for case in tqdm(cases(args.quick), desc="validating", unit="session"):
        results.append((case, run_case(case)))
    drop = glute_drive_drop()
    write_markdown(results, drop, Path(args.out), time.perf_counter() - started)
    failed = [(c.name, k) for c, m in results for k, (op, v) in TARGETS.items()
              if not (m[k] >= v if op == "≥" else m[k] <= v)]
    failed += [(c.name, "cues") for c, m in results if m["cues_ok"] is False]
    if drop["error_pct_of_drop"] > 10:
        failed.append(("glute drive drop", "ratio"))
    print(f"wrote {args.out}; {len(failed)} target(s) missed"
          + "".join(f"\n  {name}: {what}" for name, what in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
