"""Holes in a session — stretches where a stream has no samples — and the parts between them.

A recording keeps every frame that reached the pipeline; a Wi-Fi drop, a station that was not
yet assigned, or an agent restart leaves a *hole*: the readers put the missing samples on the
stream's grid as NaN (short gaps, up to 100 ms, are interpolated and are not holes). Nothing
that integrates or filters over time (orientation, zero-phase EMG filters, gait detection) can
run across one, so the whole-file analysis (:func:`.analysis.analyze`) cuts the session into
*contiguous parts* at the holes of every stream, analyses each on its own (no stride spans a
hole), and takes its calibration windows inside one part only (:func:`standing_window`).

Holes are found in the arrays themselves (any run of non-finite samples in any channel of a
stream), so every reader's output is treated alike. Pure numpy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .data import EmgData, ImuData

__all__ = [
    "MIN_PART_S",
    "MIN_STANDING_S",
    "Hole",
    "HoleError",
    "contiguous_parts",
    "find_holes",
    "slice_emg",
    "slice_imu",
    "standing_window",
]

#: A part shorter than this (s) holds no stride worth measuring: it is skipped with a note.
MIN_PART_S = 2.0
#: Shortest standing period left before a hole that still calibrates (s): the IMU check needs
#: 0.5 s still, the EMG noise floor 1 s after the filters' 0.5 s start-up.
MIN_STANDING_S = 1.5


class HoleError(ValueError):
    """A calibration window that a hole leaves unusable; the message names both."""


@dataclass(frozen=True)
class Hole:
    """No samples in ``streams`` over ``[start_s, end_s)`` (session seconds)."""

    start_s: float
    end_s: float
    streams: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def overlaps(self, a_s: float, b_s: float) -> bool:
        return self.start_s < b_s and a_s < self.end_s

    def describe(self) -> str:
        return (f"{self.start_s:.2f}–{self.end_s:.2f} s ({self.duration_s:.2f} s without "
                f"samples in {', '.join(self.streams)})")

    def to_dict(self) -> dict[str, object]:
        return {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4),
                "duration_s": round(self.duration_s, 4), "streams": list(self.streams)}


def _nan_runs(x: np.ndarray, start_s: float, rate_hz: float) -> list[tuple[float, float]]:
    """(start, end) session seconds of the runs of rows with a non-finite value."""
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not bad.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.view(np.int8), [0]])))
    return [(start_s + a / rate_hz, start_s + b / rate_hz)
            for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)]


def find_holes(emg: EmgData | None, imus: Mapping[str, ImuData]) -> list[Hole]:
    """The holes of every stream, overlapping ones merged, in time order.

    Streams are named as in a recording: ``emg`` and ``imu_<segment>``.
    """
    runs: list[tuple[float, float, str]] = []
    if emg is not None:
        runs += [(a, b, "emg") for a, b in _nan_runs(emg.samples_mv, emg.start_s, emg.rate_hz)]
    for seg, imu in imus.items():
        both = np.hstack([np.asarray(imu.acc_mps2, float), np.asarray(imu.gyr_dps, float)])
        runs += [(a, b, f"imu_{seg}") for a, b in _nan_runs(both, imu.start_s, imu.rate_hz)]
    merged: list[list] = []
    for a, b, stream in sorted(runs):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2].add(stream)
        else:
            merged.append([a, b, {stream}])
    return [Hole(a, b, tuple(sorted(s))) for a, b, s in merged]


def contiguous_parts(start_s: float, end_s: float, holes: Sequence[Hole]
                     ) -> list[tuple[float, float]]:
    """``[start_s, end_s)`` without the holes: the parts between them, in order."""
    parts, a = [], start_s
    for hole in sorted(holes, key=lambda h: h.start_s):
        if hole.start_s > a:
            parts.append((a, min(hole.start_s, end_s)))
        a = max(a, hole.end_s)
    if end_s > a:
        parts.append((a, end_s))
    return [(a, b) for a, b in parts if b > a]


def standing_window(standing: tuple[float, float], holes: Sequence[Hole], *,
                    min_s: float = MIN_STANDING_S) -> tuple[float, float]:
    """The standing period, cut where the first hole inside it begins (never spanning one).

    Raises :class:`HoleError` when less than ``min_s`` of standing is left before the hole,
    naming the window, the hole and what to do.
    """
    a, b = standing
    inside = [h for h in holes if h.overlaps(a, b)]
    if not inside:
        return standing
    first = min(inside, key=lambda h: h.start_s)
    cut = (a, first.start_s)
    if cut[1] - cut[0] >= min_s:
        return cut
    raise HoleError(
        f"the standing period {a:g}–{b:g} s is cut by a hole at {first.describe()}: only "
        f"{max(0.0, cut[1] - cut[0]):.2f} s of standing before it, and the static calibration "
        f"(zero of the hip and pelvis angles, gyro bias, EMG noise floor) needs at least "
        f"{min_s:g} s of standing still without a hole; analyse a recording with quiet "
        "standing before the run (or the pipeline's session recording, which carries the "
        "station's calibration), or record the session again")


def slice_imu(imu: ImuData, a_s: float, b_s: float) -> ImuData:
    """The samples of ``imu`` in ``[a_s, b_s)``."""
    i0 = max(0, math.ceil((a_s - imu.start_s) * imu.rate_hz - 1e-6))
    i1 = max(i0, min(len(imu.acc_mps2), math.ceil((b_s - imu.start_s) * imu.rate_hz - 1e-6)))
    return dataclasses.replace(imu, acc_mps2=imu.acc_mps2[i0:i1], gyr_dps=imu.gyr_dps[i0:i1],
                               start_s=imu.start_s + i0 / imu.rate_hz)


def slice_emg(emg: EmgData, a_s: float, b_s: float) -> EmgData:
    """The samples of ``emg`` in ``[a_s, b_s)``."""
    i0 = max(0, math.ceil((a_s - emg.start_s) * emg.rate_hz - 1e-6))
    i1 = max(i0, min(len(emg.samples_mv), math.ceil((b_s - emg.start_s) * emg.rate_hz - 1e-6)))
    return dataclasses.replace(emg, samples_mv=emg.samples_mv[i0:i1],
                               start_s=emg.start_s + i0 / emg.rate_hz)
