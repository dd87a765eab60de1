"""Session summaries: per-side statistics, symmetry, and gait-cycle ensembles.

Pure functions over stride rows (:mod:`.strides`) and curves; what ``summary.json`` and the
report are built from.
"""

from __future__ import annotations

import math

import numpy as np

from .data import SIDES
from .schema import SUMMARY_METRICS, symmetry_index_pct

CYCLE_POINTS = 101  # 0, 1, ..., 100 % of the stride


def side_statistics(rows: list[dict], side: str) -> dict:
    """Mean, SD, coefficient of variation and count of each metric over valid strides."""
    valid = [r for r in rows if r["side"] == side and r["valid"]]
    stats: dict = {"strides": len(valid),
                   "strides_rejected": sum(1 for r in rows if r["side"] == side
                                           and not r["valid"])}
    for name in SUMMARY_METRICS:
        values = np.array([r[name] for r in valid], dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            stats[name] = {"mean": None, "sd": None, "cv_pct": None, "n": 0}
            continue
        mean, sd = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        stats[name] = {"mean": mean, "sd": sd,
                       "cv_pct": abs(sd / mean) * 100 if mean else None, "n": len(values)}
    return stats


def symmetry(per_side: dict[str, dict]) -> dict[str, float | None]:
    """Symmetry index (%) of every summary metric, from the side means."""
    out: dict[str, float | None] = {}
    for name in SUMMARY_METRICS:
        left = per_side.get("l", {}).get(name, {}).get("mean")
        right = per_side.get("r", {}).get(name, {}).get("mean")
        si = symmetry_index_pct(right, left) if left is not None and right is not None else None
        out[name] = None if si is None or math.isnan(si) else si
    return out


def cycle_ensemble(curve: np.ndarray, start_s: float, rate_hz: float, ic_s: np.ndarray,
                   valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and SD of ``curve`` over the gait cycle (101 points, IC to next IC).

    Every valid stride is resampled onto 0..100 % by linear interpolation before averaging,
    so strides of different lengths line up by phase.
    """
    curve = np.asarray(curve)
    n = len(curve)
    t = start_s + np.arange(n) / rate_hz
    phase = np.linspace(0.0, 1.0, CYCLE_POINTS)
    cycles = []
    for k in range(len(ic_s) - 1):
        if not valid[k] or ic_s[k] < t[0] or ic_s[k + 1] > t[-1]:
            continue
        # Interpolate on the stride's own samples (plus a neighbour each side): the same
        # result as on the whole curve, without converting the whole curve per stride.
        lo = max(0, math.floor((ic_s[k] - start_s) * rate_hz) - 1)
        hi = min(n, math.ceil((ic_s[k + 1] - start_s) * rate_hz) + 2)
        cycle = np.interp(ic_s[k] + phase * (ic_s[k + 1] - ic_s[k]), t[lo:hi],
                          np.asarray(curve[lo:hi], dtype=np.float64))
        if np.isfinite(cycle).all():
            cycles.append(cycle)
    if not cycles:
        nan = np.full(CYCLE_POINTS, np.nan)
        return nan, nan, 0
    stack = np.vstack(cycles)
    return stack.mean(axis=0), stack.std(axis=0), len(cycles)


def summarise(rows: list[dict]) -> dict:
    per_side = {side: side_statistics(rows, side) for side in SIDES}
    return {"sides": per_side, "symmetry_pct": symmetry(per_side)}
