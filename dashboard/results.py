"""Calibration and prone-test results as tables and words: pure functions over the pipeline's
``…/results`` messages and the store's rows (``Store.calibration``, ``Store.phe``).

The prone test's per-side averages and advice come from the engine's own rules
(:func:`hipstride.pipeline.engine.phe.phe_advice`), so the dashboard and the ``hipstride
analyze`` report say the same thing — as coaching advice, never a diagnosis.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hipstride.pipeline.engine.phe import (
    MUSCLE_NAMES,
    PHE_NOTES,
    PheSideSummary,
    phe_advice,
)

from .data import SIDE_NAMES, local_time
from .guide import muscle_words

__all__ = ["PHE_NOTES", "calibration_facts", "mvc_reference_table", "mvc_result_table",
           "phe_advice_for", "phe_side_summaries", "repetition_table", "side_table",
           "standing_result_table"]

REPETITION_COLUMNS = ("Side", "Repetition", "Glute max onset (ms)", "Hamstring onset (ms)",
                      "Lower back onset (ms)", "Firing order", "Glute − hamstring lag (ms)",
                      "Pelvic tilt (°)", "Pelvic rotation (°)", "Pelvis moved > 5°",
                      "Lift (°)")


def _num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _when(ns: Any) -> str:
    if not isinstance(ns, int | float) or not ns:
        return "—"
    t = local_time(int(ns))
    return f"{t:%a} {t.day} {t:%b %Y, %H:%M}"


def calibration_facts(cal: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    """(what, when, details) for each stored kind of an athlete's calibration."""
    if not cal:
        return []
    times = cal.get("time_ns") or {}
    out = []
    standing = cal.get("standing")
    if standing:
        segments = sorted((standing.get("imu") or {}).keys())
        emg = standing.get("emg") or {}
        details = (f"IMU zero for {', '.join(segments)}" if segments else "no IMU")
        if emg.get("channels"):
            details += f"; EMG rest level of {len(emg['channels'])} channels"
        out.append(("Standing calibration", _when(times.get("standing")), details))
    mvc = cal.get("mvc")
    if mvc:
        out.append(("Maximal contractions (MVC)", _when(times.get("mvc")),
                    f"{len(mvc.get('channels') or ())} muscles; EMG ratios are "
                    "normalised to them"))
    base = cal.get("baseline")
    if base:
        strides = base.get("n_strides") or {}
        counts = ", ".join(f"{SIDE_NAMES.get(s, s).lower()} {n}" for s, n in strides.items())
        out.append(("Running baseline", _when(times.get("baseline")),
                    f"from {counts} strides" if counts else "stored"))
    return out


def mvc_reference_table(cal: Mapping[str, Any] | None) -> pd.DataFrame:
    """The stored MVC reference per muscle (mV)."""
    mvc = (cal or {}).get("mvc") or {}
    channels, refs = mvc.get("channels") or [], mvc.get("reference_mv") or []
    return pd.DataFrame({"Muscle": [muscle_words(c) for c in channels],
                         "MVC reference (mV)": [_num(v) for v in refs]},
                        columns=["Muscle", "MVC reference (mV)"])


def mvc_result_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per muscle of an MVC result: peak (mV), good or not, and the problem."""
    muscles = ((result.get("result") or {}).get("muscles") or {})
    rows = [{"Muscle": muscle_words(ch), "Peak (mV)": _num(m.get("peak_mv")),
             "Good": "yes" if m.get("ok") else "no", "Problem": m.get("problem") or ""}
            for ch, m in muscles.items() if isinstance(m, Mapping)]
    return pd.DataFrame(rows, columns=["Muscle", "Peak (mV)", "Good", "Problem"])


def _order_words(order: Any) -> str:
    if isinstance(order, str):
        order = [m for m in order.split(",") if m]
    return " → ".join(MUSCLE_NAMES.get(m, m) for m in order or ()) or "—"


def repetition_table(reps: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per repetition (from a result's ``repetitions`` or ``Store.phe`` rows)."""
    counts: Counter[str] = Counter()
    rows = []
    for r in sorted(reps, key=lambda r: (r.get("side") or "", _num(r.get("movement_onset_s"))
                                         if r.get("time_ns") is None else r["time_ns"])):
        side = r.get("side") or ""
        counts[side] += 1
        rows.append({
            "Side": SIDE_NAMES.get(side, side), "Repetition": counts[side],
            "Glute max onset (ms)": _num(r.get("glute_onset_ms")),
            "Hamstring onset (ms)": _num(r.get("hamstring_onset_ms")),
            "Lower back onset (ms)": _num(r.get("erector_onset_ms")),
            "Firing order": _order_words(r.get("order")),
            "Glute − hamstring lag (ms)": _num(r.get("glute_ham_lag_ms")),
            "Pelvic tilt (°)": _num(r.get("pelvic_tilt_deg")),
            "Pelvic rotation (°)": _num(r.get("pelvic_rotation_deg")),
            "Pelvis moved > 5°": "yes" if r.get("pelvic_flag") else "no",
            "Lift (°)": _num(r.get("lift_deg"))})
    return pd.DataFrame(rows, columns=list(REPETITION_COLUMNS))


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def phe_side_summaries(reps: Sequence[Mapping[str, Any]]) -> dict[str, PheSideSummary]:
    """Per-side averages of repetitions, as the engine computes them (NaN-aware means, the
    most common firing order, flags counted)."""
    out = {}
    for side in ("l", "r"):
        mine = [r for r in reps if r.get("side") == side]
        if not mine:
            continue
        orders = Counter(tuple(o.split(",") if isinstance(o, str) else o)
                         for o in (r.get("order") for r in mine) if o)
        out[side] = PheSideSummary(
            n_reps=len(mine),
            glute_onset_ms=_mean([_num(r.get("glute_onset_ms")) for r in mine]),
            hamstring_onset_ms=_mean([_num(r.get("hamstring_onset_ms")) for r in mine]),
            erector_onset_ms=_mean([_num(r.get("erector_onset_ms")) for r in mine]),
            glute_ham_lag_ms=_mean([_num(r.get("glute_ham_lag_ms")) for r in mine]),
            order=orders.most_common(1)[0][0] if orders else (),
            pelvic_tilt_deg=_mean([_num(r.get("pelvic_tilt_deg")) for r in mine]),
            pelvic_rotation_deg=_mean([_num(r.get("pelvic_rotation_deg")) for r in mine]),
            n_pelvic_flags=sum(bool(r.get("pelvic_flag")) for r in mine),
            lift_deg=_mean([_num(r.get("lift_deg")) for r in mine]))
    return out


def side_table(summaries: Mapping[str, PheSideSummary]) -> pd.DataFrame:
    """The per-side averages as a table (one row per side)."""
    rows = [{"Side": SIDE_NAMES[s], "Repetitions": m.n_reps,
             "Glute max onset (ms)": m.glute_onset_ms,
             "Hamstring onset (ms)": m.hamstring_onset_ms,
             "Lower back onset (ms)": m.erector_onset_ms,
             "Glute − hamstring lag (ms)": m.glute_ham_lag_ms,
             "Usual firing order": _order_words(m.order),
             "Pelvic tilt (°)": m.pelvic_tilt_deg, "Pelvic rotation (°)": m.pelvic_rotation_deg,
             "Pelvis moved > 5°": f"{m.n_pelvic_flags} of {m.n_reps}"}
            for s, m in summaries.items()]
    return pd.DataFrame(rows)


def phe_advice_for(summaries: Mapping[str, PheSideSummary],
                   given: Any = None) -> list[str]:
    """The advice to show: the pipeline's own when the result carries it (a list, or per
    side), else the engine's rules applied to the averages."""
    if isinstance(given, Mapping):
        return [str(a) for side in ("r", "l") for a in given.get(side) or ()]
    if isinstance(given, list | tuple) and given:
        return [str(a) for a in given]
    return [a for side in ("r", "l") if side in summaries
            for a in phe_advice(summaries[side], side)]


def standing_result_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per IMU segment of a standing result: how much it moved, good or not."""
    segments = ((result.get("result") or {}).get("segments") or {})
    rows = [{"Sensor": name.replace("_", " "), "Moved (°)": _num(s.get("moved_deg")),
             "Good": "yes" if s.get("ok", True) else "no"}
            for name, s in sorted(segments.items()) if isinstance(s, Mapping)]
    return pd.DataFrame(rows, columns=["Sensor", "Moved (°)", "Good"])
