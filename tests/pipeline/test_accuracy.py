"""Accuracy against the simulator's ground truth on fixed seeds: a regression fails CI.

The same functions write docs/validation.md (``python -m hipstride.pipeline.validation``);
these cases are the quick subset.
"""

from __future__ import annotations

import pytest

from hipstride.pipeline.validation import TARGETS, Case, glute_drive_drop, run_case

CASES = [
    Case("healthy", "healthy", 21, 130.0),
    Case("hamstring dominant", "hamstring_dominant", 22, 130.0),
    Case("limited extension, straps 20° off", "limited_extension", 23, 130.0,
         {"misalignment_deg": 20.0}),
    Case("asymmetry, 3x IMU noise", "asymmetry", 24, 130.0, {"imu_noise": 3.0}),
    Case("jog to fast run", "healthy", 25, 150.0,
         {"speed_schedule": ((0.0, 7.0), (30.0, 7.0), (70.0, 18.0))}, judge_cues=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine_meets_the_published_targets(case):
    metrics = run_case(case)
    for name, (op, target) in TARGETS.items():
        value = metrics[name]
        assert (value >= target) if op == "≥" else (value <= target), (name, value, target)
    assert metrics["glute_ham_ratio_error_pct"] <= 15
    if case.judge_cues:
        assert metrics["cues_ok"], (metrics["cues"], metrics["truth_cues"])


def test_a_30_percent_drop_in_glute_drive_shows_in_the_ratio():
    result = glute_drive_drop(seed=1)
    assert result["truth_drop_pct"] > 20
    assert result["error_pct_of_drop"] <= 10, result
