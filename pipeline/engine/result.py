"""What one analysis of a session produces (the engine's whole-file output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import GaitEvents, Kinematics
from .strides import MuscleActivity


@dataclass(frozen=True)
class Ensemble:
    """A curve averaged over the gait cycle: 101 points from IC (0 %) to the next IC."""

    mean: np.ndarray
    sd: np.ndarray
    n_strides: int
    unit: str


@dataclass(eq=False)
class AnalysisResult:
    """Everything ``hipstride analyze`` writes, and the report draws.

    ``rows``: one dict per stride and side (``schema.STRIDE_COLUMNS``).
    ``ensembles[side][name]``: ``hip_flexion_deg``, ``glute_envelope``, ``hamstring_envelope``
    (normalised) over the gait cycle. ``cue_events``: raised/cleared cues in time order
    (``CueEvent.to_dict()``: ``cue``, ``kind`` "raise"/"clear", ``side``, ``level``,
    ``stride_start_s``, ``message``, ``evidence``). ``phe``: ``PheResult.to_dict()``.
    ``summary``: the content of ``summary.json``. ``problems``: what could not be computed and
    why, in words for the user.
    """

    rows: list[dict]
    events: dict[str, GaitEvents]
    kinematics: Kinematics | None
    activity: MuscleActivity | None
    ensembles: dict[str, dict[str, Ensemble]]
    cue_events: list[dict]
    phe: dict[str, Any] | None
    summary: dict[str, Any]
    problems: list[str] = field(default_factory=list)
