"""The control client (hipstride/control.py): pure command building, and against a real
Mosquitto and the real pipeline subprocess: replies matched by request id, refusals, the
retained results a calibration phase produces, and the one-shot form the CLI uses."""

from __future__ import annotations

import json

import pytest

from hipstride import topics
from hipstride.control import ControlClient, build_command, send_command
from hipstride.pipeline.service.sessions import parse_command
from tests.support.pipeline import USERS, PipelineProcess


def test_build_command_fills_version_and_a_fresh_request():
    a = build_command("start", athlete="ana", label=None, notes="easy")
    b = build_command("start", athlete="ana")
    assert a["version"] == 1 and a["command"] == "start" and a["notes"] == "easy"
    assert "label" not in a and a["request"] != b["request"]
    cmd = parse_command(json.dumps(a))  # the pipeline's own parser accepts it
    assert (cmd.athlete, cmd.notes, cmd.request) == ("ana", "easy", a["request"])
    cal = build_command("calibrate", phase="mvc", action="stop", muscle="glute_max_r")
    assert (cal["phase"], cal["action"], cal["muscle"]) == ("mvc", "stop", "glute_max_r")


@pytest.mark.parametrize(("command", "fields", "words"), [
    ("jump", {}, "unknown command 'jump'"),
    ("start", {"phase": "mvc"}, "unknown field(s) phase"),
    ("calibrate", {"phase": "sitting"}, "phase 'sitting'"),
    ("calibrate", {"phase": "prone", "side": "left"}, "side 'left'"),
    ("calibrate", {"phase": "prone", "action": "pause"}, "action 'pause'"),
])
def test_build_command_names_what_is_wrong(command, fields, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build_command(command, **fields)


@pytest.mark.timeout(90)
def test_commands_get_their_replies_from_the_real_pipeline(broker, tmp_path):
    pipeline = PipelineProcess(broker, f"sqlite:///{tmp_path / 'store.sqlite'}", tmp_path)
    pipeline.start()
    try:
        with ControlClient(broker.url_for("coach"), password=USERS["coach"]) as client:
            assert client.connected
            refused = client.send("tm1", build_command("stop"), timeout_s=15)
            assert refused is not None and refused["result"]["ok"] is False
            assert refused["result"]["reason"] == "no_session"

            started = client.send("tm1", build_command("start", athlete="ana",
                                                       label="calibration"), timeout_s=15)
            assert started["result"]["ok"] and started["state"] == "running"
            assert client.session_state("tm1")["athlete"] == "ana"
            assert "tm1" in client.stations()

            body = build_command("calibrate", phase="standing")
            reply = client.send("tm1", body, timeout_s=15)
            assert reply["result"]["request"] == body["request"] and reply["phase"] == "standing"

            # the one-shot form (what `hipstride session` does) sees the same state
            stop = send_command(broker.url_for("coach"), "tm1", build_command("stop"),
                                timeout_s=15, password=USERS["coach"])
            assert stop["result"]["ok"] and stop["state"] == "idle" and stop["result"]["end_ns"]
    finally:
        pipeline.stop()


@pytest.mark.timeout(60)
def test_results_and_stream_channels_are_followed(broker):
    with ControlClient(broker.url_for("coach"), password=USERS["coach"]) as client:
        before = client.mark()
        assert client.wait_for("results", "tm1", before, timeout_s=0.2) is None
        broker.publish(topics.stream_description("tm1", "emg"), {
            "version": 1, "stream": "emg", "kind": "emg",
            "channels": [{"name": "glute_max_l"}, {"name": "glute_max_r"}]},
            user="pipeline", retain=True)
        result = {"version": 1, "station": "tm1", "phase": "mvc", "muscle": "glute_max_r",
                  "ok": False, "problems": ["the effort was too short"], "result": {}}
        broker.publish(topics.results("tm1"), result, user="pipeline", retain=True)
        got = client.wait_for("results", "tm1", before,
                              lambda b: b.get("muscle") == "glute_max_r", timeout_s=10)
        assert got is not None and got.body["problems"] == ["the effort was too short"]
        assert client.emg_channels("tm1") == ("glute_max_l", "glute_max_r")
        # a later wait starting from this arrival does not see it again
        assert client.wait_for("results", "tm1", got.seq, timeout_s=0.2) is None

    # a new client gets the retained result at once
    with ControlClient(broker.url_for("coach"), password=USERS["coach"]) as late:
        got = late.wait_for("results", "tm1", 0, timeout_s=10)
        assert got is not None and got.body["muscle"] == "glute_max_r"


def test_no_pipeline_means_no_reply_not_a_hang(broker):
    reply = send_command(broker.url_for("coach"), "tm9", build_command("stop"), timeout_s=1.5,
                         password=USERS["coach"])
    assert reply is None
