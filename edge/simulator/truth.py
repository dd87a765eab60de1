"""Ground truth of a simulated session, and its file format.

Two files side by side, ``<name>.json`` and ``<name>.npz``:

``<name>.json`` (UTF-8, one object)::

    {"format": "hipstride-sim-truth", "version": 1,
     "metadata":  {seed, profile, duration_s, rates, conventions, config ...},
     "phases":    [{"name": "standing"|"running"|"mvc"|"prone", "start_s", "end_s"}],
     "strides":   [one row per stride and side, see STRIDE_FIELDS],
     "profile_changes": [{"from_step": j, "from_s": IC time of step j, "profile": name}],
     "mounting":  {segment: 3x3 known sensor->segment matrix (also in the description)},
     "misalignment_deg": {segment: rotation vector (deg) of the unknown strap error},
     "dropouts":  [{"channel", "start_s", "end_s", "mode"}],
     "saturations": [{"channel", "start_s", "end_s", "gain"}],
     "mvc_trials": [{"channel", "effort_start_s", "effort_end_s", "activation"}],
     "prone_reps": [{"side", "rep", "movement_onset_s", "glute_onset_ms", ...}]}

``<name>.npz`` (numpy): the continuous curves at the IMU rate, sample *i* at ``t_s[i]``:
``t_s``, ``hip_flexion_l_deg``, ``hip_flexion_r_deg``, ``pelvic_tilt_deg`` and the sagittal
angle of every segment ``sagittal_<segment>_deg``; plus ``activation_<channel>`` (fraction of
MVC) at the IMU rate.

All times are session seconds from sample 0 of every stream. All angles are relative to the
standing calibration pose; the stride rows use the names of DOMAIN.md's per-stride table
(``stride_start_s`` is the IC time) plus ``side``, ``stride_index``, ``profile``, ``toe_off_s``,
``speed_kmh``, ``extension_phase_start_s``/``_end_s`` (the window of ``glute_ham_ratio``) and
``steady`` (False while the runner is still speeding up from standing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hipstride.jsonsafe import jsonable

TRUTH_FORMAT = "hipstride-sim-truth"
TRUTH_VERSION = 1

STRIDE_FIELDS = (
    "side", "stride_index", "profile", "stride_start_s", "toe_off_s", "stride_time_s",
    "cadence_spm", "peak_hip_extension_deg", "peak_hip_extension_pct", "peak_hip_flexion_deg",
    "hip_rom_deg", "glute_onset_ms", "hamstring_onset_ms", "onset_lag_ms", "glute_ham_ratio",
    "peak_anterior_tilt_deg", "pelvic_tilt_range_deg", "speed_kmh", "extension_phase_start_s",
    "extension_phase_end_s", "steady",
)


@dataclass
class GroundTruth:
    metadata: dict[str, Any]
    phases: list[dict[str, Any]]
    strides: list[dict[str, Any]]
    curves: dict[str, np.ndarray]
    profile_changes: list[dict[str, Any]] = field(default_factory=list)
    mounting: dict[str, list[list[float]]] = field(default_factory=dict)
    misalignment_deg: dict[str, list[float]] = field(default_factory=dict)
    dropouts: list[dict[str, Any]] = field(default_factory=list)
    saturations: list[dict[str, Any]] = field(default_factory=list)
    mvc_trials: list[dict[str, Any]] = field(default_factory=list)
    prone_reps: list[dict[str, Any]] = field(default_factory=list)

    def side_strides(self, side: str, *, steady_only: bool = False) -> list[dict[str, Any]]:
        return [s for s in self.strides
                if s["side"] == side and (s["steady"] or not steady_only)]

    def stride_column(self, name: str, side: str, *, steady_only: bool = True) -> np.ndarray:
        """One per-stride metric of one side as an array."""
        return np.array([s[name] for s in self.side_strides(side, steady_only=steady_only)],
                        dtype=float)

    def phase(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.phases if p["name"] == name), None)

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<path>.json`` and ``<path>.npz`` (any suffix of ``path`` is replaced)."""
        path = Path(path)
        json_path, npz_path = path.with_suffix(".json"), path.with_suffix(".npz")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "metadata": self.metadata,
            "phases": self.phases,
            "strides": self.strides,
            "profile_changes": self.profile_changes,
            "mounting": self.mounting,
            "misalignment_deg": self.misalignment_deg,
            "dropouts": self.dropouts,
            "saturations": self.saturations,
            "mvc_trials": self.mvc_trials,
            "prone_reps": self.prone_reps,
        }
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(jsonable(body, nan_as_null=False), indent=1))
        tmp.replace(json_path)
        with open(npz_path, "wb") as f:
            np.savez_compressed(f, **self.curves)
        return json_path, npz_path

    @classmethod
    def read(cls, path: str | Path) -> GroundTruth:
        path = Path(path)
        body = json.loads(path.with_suffix(".json").read_text())
        if body.get("format") != TRUTH_FORMAT or body.get("version") != TRUTH_VERSION:
            raise ValueError(f"{path}: not a version {TRUTH_VERSION} simulator ground truth")
        with np.load(path.with_suffix(".npz")) as data:
            curves = {k: data[k] for k in data.files}
        keys = ("metadata", "phases", "strides", "profile_changes", "mounting",
                "misalignment_deg", "dropouts", "saturations", "mvc_trials", "prone_reps")
        return cls(curves=curves, **{k: body[k] for k in keys})
