"""What every reader returns — :class:`SessionInput` — and the checks they share.

A reader turns a file (``.hsrec`` recording, CSV pair, C3D) into the engine's inputs
(:class:`~hipstride.pipeline.engine.data.EmgData`, :class:`~hipstride.pipeline.engine.data.ImuData`)
on one clock: session second 0 is the earliest first sample over all streams. The shared checks
here decide what can still be computed when channels are missing, catch files in the wrong
unit, and make sure the static calibration has a standing period to work with. Only a file
from which nothing at all can be computed is refused (:class:`SessionInputError`); everything
else is computed and the rest is listed in :attr:`SessionInput.problems`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hipstride.csvformat import (
    ACC_MOVING_STD_MS2,
    EMG_COLUMNS,
    GYR_MIN_PEAK_MOVING_DPS,
    CsvFormatError,
    CsvTable,
    check_plausible,
)
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.streams import (
    EMG_CHANNELS_REQUIRED,
    IMU_CHANNELS,
    IMU_SEGMENTS,
    IMU_SEGMENTS_REQUIRED,
)

SIDE_NAMES = {"l": "left", "r": "right"}
#: Gaps up to this long are filled by linear interpolation; longer ones are left as NaN.
INTERPOLATE_MAX_S = 0.100
#: Length of the windows in which the standing check looks for movement.
STILL_WINDOW_S = 0.5


class SessionInputError(ValueError):
    """A session file that cannot be analysed; the message names the problem and what to do."""


@dataclass(frozen=True)
class Gap:
    """A stretch of one stream with no samples in the file, in session seconds.

    ``filled`` is ``"interpolated"`` (≤ 100 ms, linear) or ``"nan"`` (longer: samples are NaN;
    the engine must skip strides that overlap it).
    """

    stream: str
    start_s: float
    end_s: float
    filled: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, eq=False)
class SessionInput:
    """A session read from a file, ready for the engine.

    ``emg`` holds every EMG channel found (canonical names, mV); ``imus`` maps segment → IMU
    (sensor frame plus its mounting). Times are session seconds: 0 is the earliest first sample
    of any stream, and ``start_time_ns`` is that instant in Unix ns when the file knows it.
    ``problems`` lists what was found wrong but did not stop the reading (a corrupt tail, gaps,
    missing channels and the metrics they cost), in words for the user; ``gaps`` lists the gaps
    in machine form. ``metadata`` keeps what the file said about itself (format, file names,
    descriptions, the file's own time of session 0 ...). ``calibration``: when the file has no
    standing period but carries the station engine's calibration (a pipeline session
    recording), the calibration record to analyse it with (``state``, ``station``,
    ``made_ns``, ``data_ns`` ...: docs/formats.md, kind 4); None otherwise.
    """

    emg: EmgData | None
    imus: dict[str, ImuData]
    source: str
    start_time_ns: int | None = None
    problems: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    gaps: tuple[Gap, ...] = ()
    calibration: dict[str, Any] | None = None
    #: Gait events per side the file itself gives (a lab C3D's force plates, EVENT section
    #: or markers), session seconds; the engine uses them instead of IMU events.
    events: dict[str, Any] = field(default_factory=dict)
    #: Kinematics the file gives itself (a lab C3D's marker angles), session time; or None.
    kinematics: Any = None

    @property
    def emg_channels(self) -> tuple[str, ...]:
        return self.emg.channels if self.emg is not None else ()

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.imus)

    @property
    def end_s(self) -> float:
        """Session time just after the last sample of the longest stream."""
        ends = [imu.start_s + len(imu.acc_mps2) / imu.rate_hz for imu in self.imus.values()]
        if self.emg is not None:
            ends.append(self.emg.start_s + len(self.emg.samples_mv) / self.emg.rate_hz)
        if self.kinematics is not None:
            ends.append(self.kinematics.start_s + self.kinematics.n_samples
                        / self.kinematics.rate_hz)
        return max(ends, default=0.0)


# --- what can be computed --------------------------------------------------------------------

def coverage_problems(emg_channels: Sequence[str], segments: Sequence[str], *,
                      source: str = "session") -> list[str]:
    """What cannot be computed with these channels, one line each.

    Raises :class:`SessionInputError` when nothing at all can be computed: no EMG and no IMU,
    or no thigh or shank IMU on either side (no strides, so no per-stride metric).
    """
    emg = set(emg_channels)
    segs = set(segments)
    found = (f"found EMG: {', '.join(emg_channels) or 'none'}; IMU segments: "
             f"{', '.join(segments) or 'none'}")
    needed = (f"needed: EMG {', '.join(EMG_CHANNELS_REQUIRED)} and IMU segments "
              f"{', '.join(IMU_SEGMENTS_REQUIRED)} (shank_l, shank_r optional)")
    if not emg and not segs:
        raise SessionInputError(f"{source}: no EMG and no IMU data found ({found}); {needed}. "
                                "Check the file, or map its channel names to canonical ones")
    stride_sides = [s for s in SIDE_NAMES if f"thigh_{s}" in segs or f"shank_{s}" in segs]
    if not stride_sides:
        raise SessionInputError(
            f"{source}: no thigh or shank IMU on either side, so no stride can be found and no "
            f"per-stride metric can be computed ({found}); {needed}")
    problems: list[str] = []
    if not emg:
        problems.append("no EMG: no onsets and no glute:hamstring ratio (glute_onset_ms, "
                        "hamstring_onset_ms, onset_lag_ms, glute_ham_ratio); kinematics only")
    if "pelvis" not in segs:
        problems.append("no pelvis IMU: no pelvic tilt (peak_anterior_tilt_deg, "
                        "pelvic_tilt_range_deg), and hip angles are the thigh's angle to the "
                        "vertical, not relative to the pelvis")
    for side, name in SIDE_NAMES.items():
        if side not in stride_sides:
            problems.append(f"no thigh_{side} or shank_{side} IMU: no strides on the {name} "
                            f"side, so no {name}-side metrics (and no symmetry indices)")
            continue
        if f"thigh_{side}" not in segs:
            problems.append(f"no thigh_{side} IMU: {name} strides from the shank; no {name} "
                            "hip angles (peak_hip_extension_deg, peak_hip_flexion_deg, "
                            "hip_rom_deg) and no glute:hamstring ratio (its phase needs them)")
        if emg:
            if f"glute_max_{side}" not in emg:
                problems.append(f"no glute_max_{side} EMG: no {name} glute_onset_ms, "
                                "onset_lag_ms, glute_ham_ratio")
            if f"biceps_femoris_{side}" not in emg:
                problems.append(f"no biceps_femoris_{side} EMG: no {name} hamstring_onset_ms, "
                                "onset_lag_ms, glute_ham_ratio")
    return problems


# --- units -----------------------------------------------------------------------------------

def check_units(emg: EmgData | None, imus: dict[str, ImuData], *, source: str,
                emg_unit: str = "mV", acc_unit: str = "m/s^2", gyr_unit: str = "deg/s",
                advice: str = "") -> None:
    """Refuse data that look like the wrong unit (EMG in V or µV, gyroscope in rad/s ...).

    The checks are :mod:`hipstride.csvformat`'s, run on the finite samples of canonical
    channels; ``*_unit`` say what the file claimed (for the message), ``advice`` what to do in
    this format. An envelope EMG (analog module output) is not checked: it is not at the
    electrode.
    """
    tables = []
    if emg is not None and emg.signal == "raw":
        keep = [i for i, c in enumerate(emg.channels) if c in EMG_COLUMNS]
        x = emg.samples_mv[:, keep]
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) >= 2 and keep:
            tables.append(CsvTable.from_arrays("emg", [emg.channels[i] for i in keep], x,
                                               emg.rate_hz))
    for segment, imu in imus.items():
        if segment not in IMU_SEGMENTS:
            continue
        x = np.hstack([imu.acc_mps2, imu.gyr_dps])
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) >= 2:
            tables.append(CsvTable.from_arrays(
                "imu", [f"{segment}_{c}" for c in IMU_CHANNELS], x, imu.rate_hz))
    for table in tables:
        try:
            check_plausible(table, emg_unit, acc_unit, gyr_unit)
        except CsvFormatError as err:
            message = str(err).removeprefix("table: ")
            raise SessionInputError(f"{source}: {message}" + (f". {advice}" if advice else "")
                                    ) from None


# --- standing period -------------------------------------------------------------------------

def moving_from_s(imu: ImuData, standing_s: float) -> float | None:
    """Session time at which the segment first moves within ``[0, standing_s)``.

    ``standing_s`` when it stays still throughout; ``None`` when there is less than one
    window of data in the period. Still = in every 0.5 s window, the accelerometer magnitude
    varies by less than 1 m/s² (SD) and the gyroscope, less its median over the period
    (bias), stays below 20 deg/s (95th percentile of the magnitude).
    """
    i0 = max(0, math.ceil(-imu.start_s * imu.rate_hz - 1e-9))
    i1 = min(len(imu.acc_mps2), math.floor((standing_s - imu.start_s) * imu.rate_hz + 1e-9))
    window = max(2, round(STILL_WINDOW_S * imu.rate_hz))
    if i1 - i0 < window:
        return None
    acc = imu.acc_mps2[i0:i1]
    gyr = imu.gyr_dps[i0:i1]
    finite = np.isfinite(acc).all(axis=1) & np.isfinite(gyr).all(axis=1)
    if finite.sum() < window:
        return None
    bias = np.median(gyr[finite], axis=0)
    for start in range(0, i1 - i0 - window + 1, window):
        ok = finite[start:start + window]
        if ok.sum() < window // 2:
            continue
        a = np.linalg.norm(acc[start:start + window][ok], axis=1)
        g = np.linalg.norm(gyr[start:start + window][ok] - bias, axis=1)
        if a.std() > ACC_MOVING_STD_MS2 or np.quantile(g, 0.95) > GYR_MIN_PEAK_MOVING_DPS:
            return imu.start_s + (i0 + start) / imu.rate_hz
    return standing_s


def standing_problems(imus: dict[str, ImuData], standing_s: float, *, source: str) -> list[str]:
    """Check that the first ``standing_s`` seconds are a standing period (static calibration).

    Raises :class:`SessionInputError` when every IMU moves (or has no data) in that period;
    returns a problem per segment that moves while the others stand still.
    """
    if standing_s <= 0 or not imus:
        return []
    moving = {seg: moving_from_s(imu, standing_s) for seg, imu in imus.items()}
    still = [seg for seg, t in moving.items() if t is not None and t >= standing_s]
    if still:
        return [f"{seg} IMU " + ("has no data in" if t is None else f"moves from t = {t:.2f} s "
                                 "in") + f" the standing period (first {standing_s:g} s): its "
                "static calibration may be off"
                for seg, t in moving.items() if seg not in still]
    detail = ", ".join(f"{seg} " + ("has no data" if t is None else f"moves from {t:.2f} s")
                       for seg, t in moving.items())
    longest = max((t for t in moving.values() if t is not None), default=0.0)
    hint = (f"if the runner stood still only at the start, pass --standing-s "
            f"{math.floor(longest / STILL_WINDOW_S) * STILL_WINDOW_S:g} (standing_s) or less"
            if longest >= 1.0 else "record about 5 s of quiet standing before the run starts")
    raise SessionInputError(
        f"{source}: no standing period: every IMU moves within the first {standing_s:g} s "
        f"({detail}), but the static calibration (zero of the hip and pelvis angles) needs the "
        f"runner standing still then; {hint}")


# --- assembling ------------------------------------------------------------------------------

def assemble_session(emg: EmgData | None, imus: dict[str, ImuData], *, source: str,
                     start_time_ns: int | None = None, problems: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, gaps: tuple[Gap, ...] = (),
                     standing_s: float = 5.0, units: dict[str, str] | None = None,
                     unit_advice: str = "") -> SessionInput:
    """Put the streams on session time (0 = earliest first sample) and run the shared checks.

    ``start_s`` of the streams and gaps may be on any origin (a file's ``time_s``); the shift
    to session time is added to ``start_time_ns`` and kept in ``metadata["file_time_s"]`` (the
    file's time of session second 0). ``units`` are the file's claimed units for the unit
    check's message (keys ``emg_unit``, ``acc_unit``, ``gyr_unit``).
    """
    problems = list(problems or [])
    metadata = dict(metadata or {})
    starts = [imu.start_s for imu in imus.values()] + ([emg.start_s] if emg is not None else [])
    origin = min(starts, default=0.0)
    if origin != 0.0:
        if emg is not None:
            emg = dataclasses.replace(emg, start_s=emg.start_s - origin)
        imus = {seg: dataclasses.replace(imu, start_s=imu.start_s - origin)
                for seg, imu in imus.items()}
        gaps = tuple(dataclasses.replace(g, start_s=g.start_s - origin, end_s=g.end_s - origin)
                     for g in gaps)
        if start_time_ns is not None:
            start_time_ns += round(origin * 1e9)
    metadata.setdefault("file_time_s", origin)
    problems += coverage_problems(emg.channels if emg is not None else (), tuple(imus),
                                  source=source)
    check_units(emg, imus, source=source, advice=unit_advice, **(units or {}))
    problems += standing_problems(imus, standing_s, source=source)
    return SessionInput(emg=emg, imus=imus, source=source, start_time_ns=start_time_ns,
                        problems=problems, metadata=metadata, gaps=tuple(gaps))
