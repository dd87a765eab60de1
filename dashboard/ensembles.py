"""Gait-cycle ensembles from stored series: mean ± SD over normalised stride time (0–100 %).

Pure numpy over arrays: a processed stream as it comes out of the store (sample times in ns,
possibly with gaps and NaN) and the strides' initial contacts. Unlike
:func:`hipstride.pipeline.engine.summary.cycle_ensemble`, which works on an evenly sampled
curve of a whole file, these series may have holes (a dropped connection, a sensor that fell
off): a stride whose samples do not cover it closely enough is left out, never bridged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CYCLE_POINTS", "CycleEnsemble", "cycle_ensemble_ns", "cycle_frame",
           "hamstring_channels", "hip_channel", "stride_bounds_ns"]

CYCLE_POINTS = 101  # 0, 1, …, 100 % of the stride
#: A stride is left out when its samples leave a hole longer than this share of it.
MAX_GAP_FRACTION = 0.05


@dataclass(frozen=True)
class CycleEnsemble:
    """``mean``/``sd`` at ``pct`` (0..100, 101 points) over ``n_strides`` strides; NaN when
    none; ``skipped``: strides the series did not cover."""

    mean: np.ndarray
    sd: np.ndarray
    n_strides: int
    skipped: int

    @property
    def pct(self) -> np.ndarray:
        return np.linspace(0.0, 100.0, CYCLE_POINTS)


def stride_bounds_ns(rows: Sequence[Mapping[str, Any]], side: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(initial contact, next initial contact) in ns of the side's valid strides, from the
    store's stride rows (``time_ns`` is the stride's IC, ``stride_time_s`` its length)."""
    starts, ends = [], []
    for r in rows:
        t, length = r.get("time_ns"), r.get("stride_time_s")
        if r.get("side") != side or not r.get("valid") or t is None or length is None:
            continue
        length = float(length)
        if np.isfinite(length) and length > 0:
            starts.append(int(t))
            ends.append(int(t) + round(length * 1e9))
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def cycle_ensemble_ns(time_ns: np.ndarray, values: np.ndarray, starts_ns: np.ndarray,
                      ends_ns: np.ndarray, *, max_gap_fraction: float = MAX_GAP_FRACTION
                      ) -> CycleEnsemble:
    """Mean and SD of ``values`` (sampled at ``time_ns``, sorted) over every stride
    [``starts_ns[k]``, ``ends_ns[k]``], each resampled onto 0..100 % by linear interpolation.

    A stride counts only if finite samples reach within ``max_gap_fraction`` of its length
    of both ends and leave no hole longer than that inside."""
    t = np.asarray(time_ns, dtype=np.int64)
    x = np.asarray(values, dtype=float)
    keep = np.isfinite(x)
    t, x = t[keep], x[keep]
    phase = np.linspace(0.0, 1.0, CYCLE_POINTS)
    cycles, skipped = [], 0
    for start, end in zip(np.asarray(starts_ns, np.int64), np.asarray(ends_ns, np.int64),
                          strict=True):
        length = int(end - start)
        if length <= 0:
            skipped += 1
            continue
        tol = max_gap_fraction * length
        lo = max(0, int(np.searchsorted(t, start, "left")) - 1)
        hi = min(len(t), int(np.searchsorted(t, end, "right")) + 1)
        tt = t[lo:hi]
        if len(tt) < 2 or tt[0] > start + tol or tt[-1] < end - tol or \
                np.diff(tt).max() > tol:
            skipped += 1
            continue
        at = start + phase * length
        cycles.append(np.interp(at, tt.astype(float), x[lo:hi]))
    if not cycles:
        nan = np.full(CYCLE_POINTS, np.nan)
        return CycleEnsemble(nan, nan.copy(), 0, skipped)
    stack = np.vstack(cycles)
    return CycleEnsemble(stack.mean(axis=0), stack.std(axis=0), len(cycles), skipped)


def hip_channel(channels: Sequence[str], side: str) -> str | None:
    """The hip flexion channel of a side in a ``hip_angle`` stream (``hip_flexion_r`` or
    ``hip_flexion_r_deg``), or None."""
    for name in (f"hip_flexion_{side}_deg", f"hip_flexion_{side}"):
        if name in channels:
            return name
    return None


def hamstring_channels(channels: Sequence[str], side: str) -> list[str]:
    """The side's hamstring EMG channels present (biceps femoris, semitendinosus)."""
    return [c for c in (f"biceps_femoris_{side}", f"semitendinosus_{side}") if c in channels]


def cycle_frame(ensembles: Mapping[str, CycleEnsemble]) -> Any:
    """Ensembles per side ("Left"/"Right" → ensemble) as one long table for charting:
    ``pct``, ``side``, ``mean``, ``low`` and ``high`` (mean ∓ SD), ``strides``."""
    import pandas as pd

    parts = [pd.DataFrame({"pct": e.pct, "side": side, "mean": e.mean, "low": e.mean - e.sd,
                           "high": e.mean + e.sd, "strides": e.n_strides})
             for side, e in ensembles.items() if e.n_strides]
    if not parts:
        return pd.DataFrame(columns=["pct", "side", "mean", "low", "high", "strides"])
    return pd.concat(parts, ignore_index=True)
