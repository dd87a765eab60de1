"""The simulated runner follows calibration instructions, and runs forever in bounded memory."""

import numpy as np
import pytest

from hipstride.edge.simulator import SessionConfig, SessionGenerator
from hipstride.edge.simulator.session import ENDLESS
from hipstride.pipeline.engine.data import ImuData
from hipstride.pipeline.engine.phe import phe_detect_repetitions


def _advance(gen: SessionGenerator, seconds: float) -> dict[str, np.ndarray]:
    """The next ``seconds`` of every stream."""
    return {s: gen.read(s, round(seconds * gen._rate[s])) for s in gen.streams}


def _emg_rms(x: np.ndarray, window: int = 1000) -> np.ndarray:
    """Moving RMS over ``window`` samples (500 ms at 2 kHz), per channel."""
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x.astype(float) ** 2]), axis=0)
    return np.sqrt((c[window:] - c[:-window]) / window)


def _sagittal_gyro_dps(gen: SessionGenerator, stream: str, data: np.ndarray) -> np.ndarray:
    mounting = np.asarray(next(d for d in gen.descriptions if d.stream == stream).mounting)
    return data[:, 3:].astype(float) @ mounting.T


def test_endless_session_has_no_end_and_bounded_memory():
    gen = SessionGenerator(SessionConfig(duration_s=ENDLESS, seed=5))
    assert gen.config.endless and not gen.record_curves
    sizes = []
    for _ in range(4):
        _advance(gen, 60.0)
        gen.instruct("standing")
        _advance(gen, 5.0)
        gen.instruct("mvc", channels=("glute_max_l",))
        _advance(gen, 10.0)
        gen.instruct("running")
        sizes.append((len(gen.planner.steps), len(gen.instructions.holds),
                      len(gen.instructions.mvc_trials), len(gen.instructions.phases)))
        assert gen.remaining("emg") > 10**15
    assert gen.generated_until_s >= 4 * 75.0
    assert gen.planner.first_index > 500  # old strides were forgotten ...
    assert max(s[0] for s in sizes) < 120  # ... so the plan stays a few dozen steps long
    assert max(s[1] for s in sizes) <= 2 and max(s[2] for s in sizes) <= 2
    assert gen._curves.parts == {}


def test_endless_refuses_scripted_protocols():
    with pytest.raises(ValueError, match="duration_s"):
        SessionConfig(duration_s=ENDLESS, mvc=True)


def test_standing_instruction_stills_the_runner_until_stop():
    gen = SessionGenerator(SessionConfig(duration_s=ENDLESS, seed=6), record_curves=False)
    running = _advance(gen, 20.0)
    at = gen.instruct("standing")
    assert at == pytest.approx(20.0, abs=0.25)
    still = _advance(gen, 15.0)
    again = _advance(gen, 10.0)  # no stop yet: still standing (hold_max_s is 120 s)
    gen.instruct("running")
    back = _advance(gen, 10.0)
    for seg in ("pelvis", "thigh_l", "thigh_r"):
        stream = f"imu_{seg}"
        run_dps = np.abs(_sagittal_gyro_dps(gen, stream, running[stream][2000:]))
        still_dps = np.abs(_sagittal_gyro_dps(gen, stream, still[stream][600:]))  # after 3 s
        more_dps = np.abs(_sagittal_gyro_dps(gen, stream, again[stream]))
        back_dps = np.abs(_sagittal_gyro_dps(gen, stream, back[stream][1000:]))
        assert still_dps.max() < 3.0 and more_dps.max() < 3.0  # noise and bias only
        assert run_dps.max() > 20.0 and back_dps.max() > 20.0  # pelvis ~40, thighs ~400
    emg_still = _emg_rms(still["emg"][6000:]).max()
    emg_run = _emg_rms(running["emg"][4000:]).max()
    assert emg_still < 0.02 < emg_run


def test_standing_runner_resumes_by_itself_after_hold_max():
    gen = SessionGenerator(SessionConfig(duration_s=ENDLESS, seed=6, hold_max_s=10.0),
                           record_curves=False)
    _advance(gen, 10.0)
    gen.instruct("standing")
    _advance(gen, 12.0)
    assert gen.instructions.state == "running"
    later = _advance(gen, 8.0)
    assert np.abs(_sagittal_gyro_dps(gen, "imu_thigh_l", later["imu_thigh_l"][800:])).max() > 50


def test_mvc_instruction_contracts_that_muscle_far_above_running():
    gen = SessionGenerator(SessionConfig(duration_s=60.0, seed=7, profile="hamstring_dominant"))
    channels = list(gen.config.emg_channels)
    running = _advance(gen, 20.0)
    gen.instruct("mvc", channels=("glute_max_r",))
    effort = _advance(gen, 12.0)
    trial = gen.instructions.mvc_trials[0]
    assert trial["channel"] == "glute_max_r"
    start = round((trial["effort_start_s"] - 20.0 + 0.5) * 2000)
    end = round((trial["effort_end_s"] - 20.0 - 0.5) * 2000)
    rms = np.sqrt(np.mean(effort["emg"][start:end].astype(float) ** 2, axis=0))
    i = channels.index("glute_max_r")
    run_peak = _emg_rms(running["emg"][12000:])[:, i].max()
    truth = gen.truth()
    assert rms[i] == pytest.approx(truth.metadata["mvc_mv"]["glute_max_r"], rel=0.1)
    assert rms[i] > 3.0 * run_peak  # far above its running envelope
    assert np.delete(rms, i).max() < 0.02  # the others at rest
    assert [t["channel"] for t in truth.mvc_trials] == ["glute_max_r"]
    assert any(p["name"] == "mvc" and p.get("commanded") for p in truth.phases)


def test_mvc_without_a_muscle_does_every_channel_and_stop_releases_the_effort():
    gen = SessionGenerator(SessionConfig(duration_s=120.0, seed=8))
    _advance(gen, 10.0)
    trials = gen.instructions.mvc(gen.generated_until_s, gen.config.emg_channels)
    assert [t["channel"] for t in trials] == list(gen.config.emg_channels)
    planned_end_s = trials[0]["effort_end_s"]
    _advance(gen, trials[0]["effort_start_s"] - 10.0 + 1.0)  # 1 s into the first effort
    gen.instruct("running")
    assert len(gen.instructions.mvc_trials) == 1  # the trials not begun are dropped
    assert gen.instructions.mvc_trials[0]["effort_end_s"] < planned_end_s - 3.0
    rest = _advance(gen, 2.0)
    assert _emg_rms(rest["emg"][1000:], 500).max() < 0.2  # released within a second


def test_unknown_instructions_name_the_problem():
    gen = SessionGenerator(SessionConfig(duration_s=30.0, seed=9))
    with pytest.raises(ValueError, match="glute_max_x"):
        gen.instruct("mvc", channels=("glute_max_x",))
    with pytest.raises(ValueError, match="side"):
        gen.instruct("prone", sides=("left",))
    with pytest.raises(ValueError, match="phase 'dance'"):
        gen.instruct("dance")
    assert gen.instructions.state == "running" and not gen.instructions.holds


@pytest.mark.parametrize("side", ["l", "r"])
def test_prone_instruction_gives_the_lifts_the_engine_finds(side):
    gen = SessionGenerator(SessionConfig(duration_s=70.0, seed=10, prone_reps=3,
                                         profile="hamstring_dominant"))
    parts = [_advance(gen, 15.0)]
    gen.instruct("prone", sides=(side,))
    parts.append(_advance(gen, 30.0))
    gen.instruct("running")
    parts.append(_advance(gen, 25.0))
    data = {k: np.concatenate([p[k] for p in parts]) for k in gen.streams}
    reps = gen.truth().prone_reps
    assert [(r["side"], r["rep"]) for r in reps] == [(side, 0), (side, 1), (side, 2)]
    assert reps[-1]["lower_end_s"] < 45.0

    def imu(seg):
        d = next(d for d in gen.descriptions if d.stream == f"imu_{seg}")
        x = data[f"imu_{seg}"].astype(float)
        return ImuData(seg, x[:, :3], x[:, 3:], d.rate_hz, 0.0, np.asarray(d.mounting))

    lifts = phe_detect_repetitions(imu(f"thigh_{side}"), imu("pelvis"), start_s=20.0,
                                   end_s=47.0)
    assert len(lifts) == 3
    for lift, rep in zip(lifts, reps, strict=True):
        assert lift.side == side
        assert lift.movement_onset_s == pytest.approx(rep["movement_onset_s"], abs=0.05)
    other = "r" if side == "l" else "l"  # the other leg stays down
    assert phe_detect_repetitions(imu(f"thigh_{other}"), imu("pelvis"), start_s=20.0,
                                  end_s=47.0) == []
    # lying prone: gravity along the pelvis's anterior axis, pointing down
    pelvis = imu("pelvis")
    k = round((reps[0]["movement_onset_s"] - 0.5) * 200)
    np.testing.assert_allclose(pelvis.mounting @ pelvis.acc_mps2[k], [-9.81, 0, 0], atol=0.5)
    # got up and running again: the thigh swings once more
    assert np.abs(_sagittal_gyro_dps(gen, f"imu_thigh_{side}",
                                     data[f"imu_thigh_{side}"][-1000:])).max() > 50
