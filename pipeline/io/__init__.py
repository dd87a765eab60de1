"""Readers that turn session files into the engine's inputs (``hipstride analyze``).

One function per format, each returning a :class:`SessionInput` on session time (0 = the
earliest first sample): :func:`read_recording` (``.hsrec``), :func:`read_csv_session` (an EMG
and an IMU CSV), :func:`read_c3d` (C3D analog channels; needs ``ezc3d``, imported lazily).
"""

from .c3d import read_c3d, recognise_label
from .csv import read_csv_session
from .recording import read_recording
from .session import Gap, SessionInput, SessionInputError, coverage_problems

__all__ = [
    "Gap",
    "SessionInput",
    "SessionInputError",
    "coverage_problems",
    "read_c3d",
    "read_csv_session",
    "read_recording",
    "recognise_label",
]
