"""Names of the engine's outputs: the per-stride table of DOMAIN.md and the cue names.

One place for the column names, so the engine, ``strides.csv``, the store and the dashboard
agree. A stride row is a plain ``dict`` with these keys (NaN where a metric could not be
computed, with the reason in ``quality``).
"""

from __future__ import annotations

#: DOMAIN.md's per-stride metrics, in its order and units.
METRIC_COLUMNS = (
    "stride_start_s",            # s, IC time of the stride (session time)
    "stride_time_s",             # s, IC to next IC
    "cadence_spm",               # steps/min = 120 / stride_time_s
    "peak_hip_extension_deg",    # deg, maximum hip extension (positive = extension)
    "peak_hip_extension_pct",    # %, when it occurs, as % of the stride from IC
    "peak_hip_flexion_deg",      # deg, maximum hip flexion
    "hip_rom_deg",               # deg, flexion-to-extension range
    "glute_onset_ms",            # ms, relative to IC (negative = before IC, in late swing)
    "hamstring_onset_ms",        # ms, relative to IC
    "onset_lag_ms",              # ms, glute onset - hamstring onset (positive = glutes later)
    "glute_ham_ratio",           # -, ∫ glute / ∫ hamstring normalised envelopes, extension phase
    "peak_anterior_tilt_deg",    # deg, pelvis, relative to standing (positive = anterior)
    "pelvic_tilt_range_deg",     # deg
)
#: Columns that say which stride and how far to trust it, and one extra measurement.
ID_COLUMNS = ("side", "stride_index")
EXTRA_COLUMNS = ("toe_off_pct",)  # %, toe-off as % of the stride (NaN without shank IMUs)
QUALITY_COLUMNS = (
    "valid",           # bool: False for strides rejected as implausible (not in statistics)
    "normalization",   # "mvc" | "relative": how EMG was normalised (ratios "relative" then)
    "gait_method",     # "shank_gyro" | "thigh_flexion"
    "quality",         # ";"-joined flags: missing:<channel>, saturated:<channel>, ...
)
STRIDE_COLUMNS = ID_COLUMNS + METRIC_COLUMNS + EXTRA_COLUMNS + QUALITY_COLUMNS

#: Metrics summarised per side and compared left/right with the symmetry index.
SUMMARY_METRICS = (
    "stride_time_s", "cadence_spm", "peak_hip_extension_deg", "peak_hip_flexion_deg",
    "hip_rom_deg", "glute_onset_ms", "hamstring_onset_ms", "onset_lag_ms", "glute_ham_ratio",
    "peak_anterior_tilt_deg", "pelvic_tilt_range_deg",
)

#: The live cues of DOMAIN.md; each has a plain-words message for the runner.
CUES = {
    "hamstring_dominant": "Drive from the glutes",
    "limited_hip_extension": "Push the ground behind you",
    "pelvis_tipping_forward": "Brace - tall posture",
    "asymmetry": "Even out left and right",
    "glutes_late": "Squeeze the glutes earlier",
    "signal_problem": "Check the sensors",
}


def symmetry_index_pct(right: float, left: float) -> float:
    """SI = (R - L) / (0.5 (R + L)) x 100 %; NaN when the mean is zero or undefined."""
    mean = 0.5 * (right + left)
    if mean == 0 or mean != mean:  # NaN check without numpy
        return float("nan")
    return (right - left) / mean * 100.0
