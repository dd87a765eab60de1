"""Physiological simulator: runner kinematics, IMU and EMG signals, and their ground truth.

Modules, one job each: :mod:`.profiles` (what a runner does), :mod:`.gait` (when feet land),
:mod:`.kinematics` (segment orientations and IMU readings), :mod:`.emg` (activation and
electrode signal), :mod:`.protocols` (MVC trials, prone hip extension test), :mod:`.session`
(the timeline and the block-by-block generator), :mod:`.truth` (ground truth and its files).
"""

from .profiles import PROFILE_NAMES, Profile, profile_named
from .session import (
    Dropout,
    Saturation,
    SessionConfig,
    SessionGenerator,
    SimulatedSession,
    SimulatorSettingError,
    simulate,
)
from .truth import GroundTruth

__all__ = [
    "PROFILE_NAMES",
    "Dropout",
    "GroundTruth",
    "Profile",
    "Saturation",
    "SessionConfig",
    "SessionGenerator",
    "SimulatedSession",
    "SimulatorSettingError",
    "profile_named",
    "simulate",
]
