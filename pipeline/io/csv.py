"""Read a HipStride CSV pair (EMG file, IMU file) into a
:class:`~hipstride.pipeline.io.session.SessionInput`.

Reading and validation are :func:`hipstride.csvformat.read_csv`'s (header, time, cells, units);
this module puts the two files on one session clock (they share ``time_s``), turns IMU columns
``<segment>_<acc|gyr>_<x|y|z>`` into one :class:`ImuData` per segment and decides what can be
computed with the channels present. CSV IMU data are in the *segment* frame by definition, so
every segment's mounting is the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hipstride.csvformat import CsvFormatError, CsvTable, imu_segments, read_csv
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.io.session import SessionInput, SessionInputError, assemble_session
from hipstride.streams import IMU_CHANNELS


def read_csv_session(
    emg_path: str | Path | None,
    imu_path: str | Path | None,
    *,
    rename: Mapping[str, str] | None = None,
    standing_s: float = 5.0,
    emg_unit: str = "mV",
    acc_unit: str = "m/s^2",
    gyr_unit: str = "deg/s",
) -> SessionInput:
    """Read an EMG CSV and an IMU CSV that share one time base (``time_s``, seconds).

    Parameters
    ----------
    emg_path, imu_path
        The two files; either may be ``None`` (recorded in ``problems``: what cannot be
        computed without it).
    rename
        Column map applied to both headers (``{"EMG 1 (mV)": "glute_max_l"}``; ``""`` drops).
    standing_s
        Length of the standing period at the start (s) for the static calibration; 0 skips
        the check.
    emg_unit, acc_unit, gyr_unit
        The files' units, converted to mV, m/s², deg/s.

    Raises
    ------
    SessionInputError
        A file that breaks the CSV format (the :class:`CsvFormatError` message, naming file and
        line), missing both files, no standing period, or nothing to compute.
    """
    if emg_path is None and imu_path is None:
        raise SessionInputError("no EMG and no IMU file given; pass both CSV files (EMG in mV, "
                                "IMU in m/s² and deg/s, sharing time_s)")
    problems: list[str] = []
    names: list[str] = []
    emg: EmgData | None = None
    imus: dict[str, ImuData] = {}
    units = {"emg_unit": emg_unit, "acc_unit": acc_unit, "gyr_unit": gyr_unit}
    tables: dict[str, CsvTable] = {}
    for kind, path in (("emg", emg_path), ("imu", imu_path)):
        if path is None:
            problems.append(f"no {kind.upper()} file given")
            continue
        try:
            tables[kind] = read_csv(path, kind, rename=rename, required=(), **units)
        except CsvFormatError as err:
            raise SessionInputError(str(err)) from None
        names.append(Path(path).name)
    if "emg" in tables:
        t = tables["emg"]
        emg = EmgData(np.ascontiguousarray(t.samples), t.channels, t.rate_hz, t.start_s)
    if "imu" in tables:
        t = tables["imu"]
        for segment in imu_segments(t.channels):
            x = t.samples[:, [t.channels.index(f"{segment}_{c}") for c in IMU_CHANNELS]]
            imus[segment] = ImuData(segment, x[:, :3].copy(), x[:, 3:].copy(), t.rate_hz,
                                    t.start_s, np.eye(3))
    if len(tables) == 2:
        a, b = tables["emg"], tables["imu"]
        overlap = min(a.start_s + a.duration_s, b.start_s + b.duration_s) - max(a.start_s,
                                                                               b.start_s)
        if overlap <= 0:
            problems.append(
                f"the EMG file (time_s {a.start_s:g}–{a.start_s + a.duration_s:g} s) and the "
                f"IMU file ({b.start_s:g}–{b.start_s + b.duration_s:g} s) do not overlap in "
                "time: they must share one time base, or no EMG metric can be computed")
    metadata = {
        "format": "csv",
        "files": {k: str(t.path) for k, t in tables.items()},
        "rates_hz": {k: t.rate_hz for k, t in tables.items()},
        "units": units,
        "frame": "segment (CSV IMU data are in the segment frame; mounting = identity)",
    }
    return assemble_session(emg, imus, source=" + ".join(names), start_time_ns=None,
                            problems=problems, metadata=metadata, standing_s=standing_s,
                            units=units)
