"""The simulated source: endless mode and control commands as the agent hands them over."""

import logging
import math

import numpy as np
import pytest

from hipstride.config import ConfigError, Section
from hipstride.edge.sources.simulated import from_config


@pytest.mark.parametrize("duration", [0, "forever"])
def test_endless_duration_from_the_sim_table(duration):
    source = from_config(Section({"speed": 0, "duration_s": duration, "seed": 1}, "sim"))
    assert source.generator.config.endless and not source.finished
    n = 0
    for _ in range(60):  # far beyond a default session's worth of reads: never finished
        n += sum(len(b.samples) for b in source.read(0.0) if b.stream == "emg")
    assert n == 60 * 5 * 40 and not source.finished  # 5 chunks of 20 ms per read at speed 0
    source.close()


@pytest.mark.parametrize(("table", "field"), [
    ({"duration_s": "forever", "ground_truth": "truth.json"}, "ground_truth"),
    ({"duration_s": 0, "mvc": True}, "duration_s"),
    ({"duration_s": "always"}, "duration_s"),
    ({"duration_s": -1}, "duration_s"),
    ({"hold_max_s": 0}, "hold_max_s"),
])
def test_bad_endless_settings_name_the_field(table, field):
    with pytest.raises(ConfigError, match=rf"\[sim\] {field}"):
        from_config(Section(table, "sim"))


def _source():
    return from_config(Section({"speed": 0, "duration_s": 0, "seed": 2}, "sim"))


def test_calibrate_commands_drive_the_runner():
    source = _source()
    gen = source.generator
    source.read(0.0)
    source.control({"command": "calibrate", "phase": "standing", "action": "start"})
    assert gen.instructions.state == "standing"
    source.control({"version": 1, "command": "calibrate", "phase": "mvc",
                    "muscle": "biceps_femoris_l"})
    assert [t["channel"] for t in gen.instructions.mvc_trials] == ["biceps_femoris_l"]
    source.control({"command": "calibrate", "phase": "mvc", "muscle": "glute_max",
                    "side": "r"})
    assert gen.instructions.mvc_trials[-1]["channel"] == "glute_max_r"
    source.control({"command": "calibrate", "phase": "mvc", "action": "stop"})
    assert gen.instructions.state == "running"
    source.control({"command": "calibrate", "phase": "prone", "side": "r"})
    assert {r["side"] for r in gen.instructions.prone_reps} == {"r"}
    source.control({"command": "calibrate", "phase": "prone", "action": "stop"})
    assert gen.instructions.state == "running"
    source.control({"command": "profile", "profile": "asymmetry"})
    assert gen.planner.profile == "asymmetry"
    source.close()


def test_session_commands_are_left_to_the_pipeline():
    source = _source()
    for command in ({"command": "start", "athlete": "ana"}, {"command": "mark", "label": "x"},
                    {"command": "stop"}):
        source.control(command)
    assert source.generator.instructions.state == "running"
    assert not source.generator.instructions.holds


@pytest.mark.parametrize(("command", "named"), [
    ({"command": "dance"}, "'dance'"),
    ({"command": "calibrate", "phase": "yoga"}, "'yoga'"),
    ({"command": "calibrate", "phase": "mvc", "action": "pause"}, "'pause'"),
    ({"command": "calibrate", "phase": "mvc", "muscle": "quadriceps_l"}, "quadriceps_l"),
    ({"command": "calibrate", "phase": "mvc", "muscle": 3}, "muscle"),
    ({"command": "calibrate", "phase": "prone", "side": "left"}, "left"),
    ({"command": "profile", "profile": "sprinter"}, "sprinter"),
    ({"version": 2, "command": "calibrate", "phase": "standing"}, "version"),
])
def test_bad_commands_raise_naming_the_problem_and_change_nothing(command, named):
    source = _source()
    source.read(0.0)
    with pytest.raises(ValueError, match=named):
        source.control(command)
    ins = source.generator.instructions
    assert ins.state == "running" and not ins.holds and not ins.mvc_trials
    blocks = source.read(0.0)  # and it goes on
    assert blocks and all(np.isfinite(b.samples).all() for b in blocks)


def test_the_agent_logs_and_ignores_a_bad_command(caplog):
    """The agent's control path (Agent._obey) turns the ValueError into one log line."""
    from hipstride.edge.agent import Agent

    class Stub:
        source = _source()
        _commands = __import__("queue").SimpleQueue()

    stub = Stub()
    stub._commands.put(b'{"command": "calibrate", "phase": "stretching"}')
    stub._commands.put(b'{"command": "calibrate", "phase": "standing"}')
    with caplog.at_level(logging.INFO):
        Agent._obey(stub)
    assert "stretching" in caplog.text
    assert stub.source.generator.instructions.state == "standing"
    assert math.isinf(stub.source.generator.instructions.holds[0][1])
