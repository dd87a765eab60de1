"""The simulator as a Source: [sim] config, pacing, exact sample counts, truth file."""

import numpy as np
import pytest

from hipstride.config import ConfigError, Section
from hipstride.edge.simulator import GroundTruth, SessionConfig, simulate
from hipstride.edge.sources.simulated import SimulatedSource, from_config


def _drain(source, timeout_s=0.1):
    blocks = []
    for _ in range(100_000):
        if source.finished:
            break
        blocks.extend(source.read(timeout_s))
    return blocks


def test_exact_sample_counts_at_speed_zero():
    source = from_config(Section({"speed": 0, "duration_s": 1.234, "seed": 1}, "sim"))
    assert not source.realtime
    blocks = _drain(source)
    assert source.finished and source.read(0.0) == []
    counts = {}
    for b in blocks:
        assert b.samples.dtype == np.float32 and b.samples.ndim == 2
        assert 1 <= len(b.samples) <= (40 if b.stream == "emg" else 4)
        counts[b.stream] = counts.get(b.stream, 0) + len(b.samples)
    assert counts == {"emg": 2468, "imu_pelvis": 247, "imu_thigh_l": 247, "imu_thigh_r": 247,
                      "imu_shank_l": 247, "imu_shank_r": 247}
    widths = {d.stream: d.n_channels for d in source.descriptions}
    assert all(b.samples.shape[1] == widths[b.stream] for b in blocks)


def test_blocks_are_the_whole_session():
    source = from_config(Section({"speed": 0, "duration_s": 3.0, "seed": 2}, "sim"))
    blocks = _drain(source)
    whole = simulate(3.0, seed=2)
    for stream, data in whole.data.items():
        joined = np.concatenate([b.samples for b in blocks if b.stream == stream])
        assert joined.tobytes() == data.tobytes()


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def test_paces_itself_at_the_real_time_factor():
    clock = FakeClock()
    source = SimulatedSource(SessionConfig(duration_s=2.0, seed=3), speed=2.0,
                             clock=clock, sleep=clock.sleep)
    assert not source.realtime
    _drain(source, timeout_s=0.05)
    # 2 s of session at 2x real time take 1 s of (fake) wall clock
    assert clock.now - 100.0 == pytest.approx(1.0, abs=0.02)
    realtime = SimulatedSource(SessionConfig(duration_s=1.0), speed=1.0)
    assert realtime.realtime


def test_read_times_out_when_nothing_is_due():
    clock = FakeClock()
    source = SimulatedSource(SessionConfig(duration_s=2.0), speed=1.0, chunk_s=0.02,
                             clock=clock, sleep=clock.sleep)
    assert source.read(0.001) == []
    assert clock.slept == [0.001]
    blocks = source.read(1.0)
    assert {b.stream for b in blocks} == {d.stream for d in source.descriptions}
    assert sum(len(b.samples) for b in blocks if b.stream == "emg") == 40


def test_writes_ground_truth_when_finished(tmp_path):
    path = tmp_path / "run" / "truth.json"
    source = from_config(Section({"speed": 0, "duration_s": 12, "seed": 4,
                                  "ground_truth": str(path)}, "sim"))
    _drain(source)
    truth = GroundTruth.read(path)
    assert truth.metadata["duration_s"] == 12
    assert len(truth.curves["t_s"]) == 12 * 200
    assert len(truth.strides) > 5


def test_close_writes_partial_truth_and_control_switches_profile(tmp_path):
    path = tmp_path / "truth.json"
    source = from_config(Section({"speed": 0, "duration_s": 60, "seed": 5,
                                  "ground_truth": str(path)}, "sim"))
    for _ in range(200):  # 200 reads x 100 ms = 20 s
        source.read(0.1)
    source.control({"command": "mark"})  # not for the simulator
    source.control({"command": "profile", "profile": "limited_extension"})
    for _ in range(150):
        source.read(0.1)
    source.close()
    source.close()
    truth = GroundTruth.read(path)
    assert truth.metadata["generated_s"] < 60
    profiles = [s["profile"] for s in truth.strides]
    assert profiles[0] == "healthy" and profiles[-1] == "limited_extension"
    assert truth.profile_changes[-1]["profile"] == "limited_extension"
    with pytest.raises(ValueError, match="unknown simulator profile"):
        source.control({"command": "profile", "profile": "sprinter"})


def test_config_with_everything():
    source = from_config(Section({
        "profile": "asymmetry", "seed": 7, "speed": 0.5, "duration_s": 30,
        "emg_channels": ["glute_max_l", "glute_max_r", "biceps_femoris_l", "biceps_femoris_r"],
        "segments": ["pelvis", "thigh_l", "thigh_r"], "mains_hz": 50, "mains_mv": 0.01,
        "speed_schedule": [[0, 9.0], [20, 11]], "misalignment_deg": 15, "mounting": "identity",
        "glute_drive_drop": [10, 20, 0.3], "chunk_ms": 10, "warmup_s": 0, "fatigue": 0.5,
        "dropouts": [{"channel": "glute_max_r", "start_s": 5, "end_s": 6, "mode": "noisy"}],
        "saturations": [{"channel": "biceps_femoris_l", "start_s": 7, "end_s": 8}],
    }, "sim"))
    cfg = source.generator.config
    assert cfg.profile == "asymmetry" and cfg.seed == 7 and cfg.mains_hz == 50.0
    assert cfg.speed_schedule == ((0.0, 9.0), (20.0, 11.0))
    assert cfg.dropouts[0].mode == "noisy" and cfg.saturations[0].gain == 50.0
    assert [d.stream for d in source.descriptions] == ["emg", "imu_pelvis", "imu_thigh_l",
                                                       "imu_thigh_r"]
    assert source.speed == 0.5 and source.chunk_s == 0.01


@pytest.mark.parametrize(("table", "field"), [
    ({"profile": "sprinter"}, "[sim] profile"),
    ({"seed": 1.5}, "[sim] seed"),
    ({"speed": -1}, "[sim] speed"),
    ({"duration_s": "long"}, "[sim] duration_s"),
    ({"mains_hz": 55}, "[sim] mains_hz"),
    ({"emg_channels": ["glute_max_x"]}, "[sim] emg_channels"),
    ({"emg_channels": "glute_max_l"}, "[sim] emg_channels"),
    ({"segments": ["foot_l"]}, "[sim] segments"),
    ({"speed_schedule": [[0, 10], [5]]}, "speed_schedule"),
    ({"speed_schedule": [[10, 10], [5, 12]]}, "[sim] speed_schedule"),
    ({"glute_drive_drop": [20, 10, 0.3]}, "[sim] glute_drive_drop"),
    ({"misalignment_deg": 90}, "[sim] misalignment_deg"),
    ({"fatigue": 3}, "[sim] fatigue"),
    ({"dropouts": [{"channel": "glute_max_l", "start_s": 1, "end_s": 2, "mode": "x"}]},
     "dropouts[0]] mode"),
    ({"dropouts": [{"channel": "semitendinosus_l", "start_s": 1, "end_s": 2}]},
     "[sim] dropouts"),
    ({"dropouts": [{"start_s": 1, "end_s": 2}]}, "channel"),
    ({"duration_s": 20, "mvc": True, "prone": True}, "[sim] duration_s"),
    ({"speedd": 1}, "speedd"),
])
def test_bad_config_names_the_field(table, field):
    with pytest.raises(ConfigError) as err:
        from_config(Section(table, "sim"))
    assert field in str(err.value)
