"""Gait events and angles on real running: virtual IMUs from a runner's motion capture,
scored against the treadmill's force plate and the markers (tests/data/README.md).

The excerpt is 20 s of treadmill running at 3.5 m/s (Fukuchi et al. 2017, CC BY 4.0). The
virtual sensors carry noise, bias and 4° of strap misalignment unknown to the engine
(hipstride.pipeline.virtual_imu). Targets (docs/validation.md, "Real data"): IC median error
≤ 10 ms, toe-off ≤ 20 ms, peak hip extension and tilt ≤ 2°. Achieved on this excerpt
(seeds 1, 2): IC ~2–3 ms with shanks and ~2 ms without, toe-off ~3 ms, angles ~0.2°.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from hipstride.pipeline import real_running, virtual_imu
from hipstride.pipeline.engine.analysis import gait_events
from hipstride.pipeline.engine.gait import GaitEventDetector, gait_events_thigh
from hipstride.pipeline.engine.imu import kinematics_from_imu
from hipstride.pipeline.engine.stream_kinematics import ThighEventDetector

DATA = Path(__file__).resolve().parents[1] / "data" / "rbds001_run35_excerpt.npz"


@pytest.fixture(scope="module")
def trial() -> virtual_imu.Trial:
    return virtual_imu.load_trial(DATA)


def test_force_plate_truth_is_plausible(trial: virtual_imu.Trial) -> None:
    """About 171 steps/min at 3.5 m/s, alternating feet, stance ~0.23 s."""
    contacts = virtual_imu.assign_feet(
        trial, virtual_imu.contacts_from_force(trial.force_n, trial.force_rate_hz))
    assert 52 <= len(contacts) <= 60
    sides = [c.side for c in contacts]
    assert all(a != b for a, b in pairwise(sides)), sides
    stance = np.array([c.toe_off_s - c.ic_s for c in contacts])
    assert 0.18 < np.median(stance) < 0.30
    step = np.diff([c.ic_s for c in contacts])
    assert 160 < 60 / np.median(step) < 185


def test_virtual_imus_are_physical(trial: virtual_imu.Trial) -> None:
    """Standing reads gravity; the pelvis averages ~1 g over the run (periodic motion); the
    thigh gyroscope's sagittal rate integrates back to the marker angle."""
    vs = virtual_imu.virtual_session(trial, seed=3)
    fs = virtual_imu.IMU_RATE_HZ
    for imu in vs.imus.values():
        still = np.linalg.norm(imu.acc_mps2[: round(4 * fs)], axis=1)
        assert abs(np.median(still) - virtual_imu.G_MPS2) < 0.3
    run = vs.imus["pelvis"].acc_mps2[round(vs.running_from_s * fs):]
    assert abs(np.linalg.norm(run.mean(axis=0)) - virtual_imu.G_MPS2) < 0.3
    kin = kinematics_from_imu(vs.imus, standing=vs.standing)
    i0 = round((vs.running_from_s + 3.0) * fs)
    truth = vs.hip_flexion_deg["l"][i0 - round(vs.running_from_s * fs):]
    engine = kin.hip_flexion_deg["l"][i0:i0 + len(truth)]
    assert np.ptp(truth) > 40  # real running hip range
    assert np.median(np.abs(engine - truth[:len(engine)])) < 2.0


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("shanks", [True, False])
def test_events_and_angles_meet_the_real_running_targets(trial: virtual_imu.Trial,
                                                         shanks: bool, seed: int) -> None:
    vs = virtual_imu.virtual_session(trial, seed=seed)
    s = real_running.score(vs, shanks=shanks).summary()
    assert s["contacts"] >= 45 and s["recall"] >= 0.98, s
    assert s["ic_ms_median"] <= 10.0 and s["ic_ms_p90"] <= 20.0, s
    if shanks:
        assert s["toe_off_ms_median"] <= 20.0 and s["toe_off_ms_p90"] <= 30.0, s
    else:
        assert np.isnan(s["toe_off_ms_median"])  # no toe-off without a shank sensor
    assert s["hip_extension_deg_median"] <= 2.0, s
    assert s["tilt_deg_median"] <= 2.0, s


def test_the_earlier_landmarks_fail_on_real_running(trial: virtual_imu.Trial) -> None:
    """What the new landmarks fix, measured the same way: the walking toe-off landmark (the
    shank's swing minimum) reads ~95 ms late, the flexion-only thigh IC ~50 ms early."""
    vs = virtual_imu.virtual_session(trial, seed=1)
    with_shanks = real_running.score(vs, shanks=True, legacy=True).summary()
    assert with_shanks["toe_off_ms_bias"] > 60.0, with_shanks
    thighs = real_running.score(vs, shanks=False, legacy=True).summary()
    assert thighs["ic_ms_median"] > 20.0, thighs


def test_streaming_detectors_match_offline_on_real_running(trial: virtual_imu.Trial) -> None:
    """The causal detectors, fed 50 ms blocks, find the offline events on real motion."""
    vs = virtual_imu.virtual_session(trial, seed=1)
    kin = kinematics_from_imu(vs.imus, standing=vs.standing)
    block = 10
    off = gait_events(kin, "l")
    det = GaitEventDetector(kin.rate_hz, side="l", start_s=kin.start_s)
    g = kin.sagittal_rate_dps["shank_l"]
    for i in range(0, len(g), block):
        det.push(g[i:i + block])
    live = det.gait_events()
    np.testing.assert_allclose(live.ic_s, off.ic_s, atol=1e-6)
    np.testing.assert_allclose(live.toe_off_s, off.toe_off_s, atol=1e-6)

    thigh_off = gait_events_thigh(kin.sagittal_deg["thigh_l"], kin.rate_hz,
                                  start_s=kin.start_s, side="l",
                                  axial_acc_mps2=kin.axial_acc_mps2["thigh_l"])
    tdet = ThighEventDetector(kin.rate_hz, start_s=kin.start_s)
    a, x = kin.axial_acc_mps2["thigh_l"], kin.sagittal_deg["thigh_l"]
    ics = []
    for i in range(0, len(x), block):
        ics += tdet.push(x[i:i + block], a[i:i + block])
    ics = np.array(ics)
    assert len(ics) >= len(thigh_off.ic_s) - 2
    nearest = np.array([np.min(np.abs(thigh_off.ic_s - t)) for t in ics])
    assert np.median(nearest) < 1e-6 and nearest.max() < 0.005


def test_regenerating_the_simulator_validation_keeps_the_real_data_section(tmp_path) -> None:
    """docs/validation.md has two writers: the simulator tool must not erase the other's part."""
    from hipstride.pipeline.validation import Case, write_markdown

    out = tmp_path / "validation.md"
    out.write_text("# old simulator part\n\n## Real data\n\nfigures from real running\n")
    metrics = {c: 1.0 for c in ("stride_recall", "stride_precision", "ic_error_ms",
                                "peak_hip_extension_error_deg", "peak_anterior_tilt_error_deg",
                                "glute_onset_error_ms", "hamstring_onset_error_ms",
                                "glute_ham_ratio_error_pct", "realtime_factor")}
    metrics.update(cues=set(), truth_cues=set(), cues_ok=True)
    drop = {"simulated_drop_pct": 30.0, "truth_drop_pct": 27.0, "measured_drop_pct": 27.0,
            "error_pct_of_drop": 0.5}
    write_markdown([(Case("healthy seed 1"), metrics)], drop, out, 1.0)
    text = out.read_text()
    assert "# old simulator part" not in text
    assert text.count("## Real data") == 1 and text.endswith("figures from real running\n")
    assert "healthy seed 1" in text.split("## Real data")[0]
