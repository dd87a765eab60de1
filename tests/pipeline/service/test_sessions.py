"""Control commands and the session state machine (pure: no broker, no store)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hipstride.pipeline.engine.stream import StreamOutput
from hipstride.pipeline.service.control import add_arguments, build_command
from hipstride.pipeline.service.sessions import (
    UNASSIGNED,
    CommandError,
    Interval,
    SessionState,
    StationSessions,
    Timeline,
    default_session_id,
    parse_command,
    peek_command,
)
from hipstride.pipeline.service.station import StationOutput, output_points
from hipstride.pipeline.store.base import CUES, PROCESSED, SESSIONS, STRIDES

T0 = 1_700_000_000_000_000_000


def cmd(**body) -> bytes:
    return json.dumps({"version": 1, **body}).encode()


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json", "not_json"),
    (b"\xff\xfe", "not_json"),
    (b"[1, 2]", "not_json"),
    (cmd(command="dance"), "unknown_command"),
    (cmd(), "unknown_command"),
    (json.dumps({"version": 2, "command": "stop"}).encode(), "unsupported_version"),
    (cmd(command="start"), "missing_athlete"),
    (cmd(command="start", athlete="  "), "missing_athlete"),
    (cmd(command="start", athlete=7), "bad_field"),
    (cmd(command="start", athlete="a", session="has space"), "bad_name"),
    (cmd(command="start", athlete="a", session=UNASSIGNED), "bad_name"),
    (cmd(command="start", athlete="a" * 201), "bad_name"),
    (cmd(command="mark"), "missing_label"),
    (cmd(command="calibrate", phase="sitting"), "bad_phase"),
    (cmd(command="calibrate"), "bad_phase"),
    (cmd(command="calibrate", phase="mvc", action="pause"), "bad_field"),
    (cmd(command="calibrate", phase="mvc", muscle="Glute Max"), "bad_field"),
    (cmd(command="calibrate", phase="standing", muscle="glute_max_l"), "bad_field"),
    (cmd(command="calibrate", phase="prone", side="left"), "bad_field"),
    (cmd(command="calibrate", phase="mvc", side="l"), "bad_field"),
    (cmd(command="profile", profile="healthy"), "not_session"),
])
def test_bad_commands_are_refused_with_a_reason(payload, reason):
    with pytest.raises(CommandError) as err:
        parse_command(payload)
    assert err.value.reason == reason
    assert str(err.value)


def test_good_commands_parse():
    c = parse_command(cmd(command="start", athlete=" ana ", label="5k", notes="n",
                          session="s-1", request="r1", extra="ignored"))
    assert (c.command, c.athlete, c.label, c.notes, c.session, c.request) == \
        ("start", "ana", "5k", "n", "s-1", "r1")
    assert parse_command(cmd(command="mark", label="x", note="y")).note == "y"
    c = parse_command(cmd(command="calibrate", phase="prone", action="stop"))
    assert (c.phase, c.action) == ("prone", "stop")
    assert parse_command(cmd(command="calibrate", phase="mvc")).action == "start"
    c = parse_command(cmd(command="calibrate", phase="mvc", muscle="glute_max_r"))
    assert (c.muscle, c.side) == ("glute_max_r", None)
    assert parse_command(cmd(command="calibrate", phase="prone", side="l")).side == "l"
    assert parse_command(b'{"command": "stop"}').command == "stop"  # version defaults to 1
    assert peek_command(cmd(command="dance", request="r9")) == ("dance", "r9")
    assert peek_command(b"garbage") == (None, None)


def test_default_session_id_is_station_and_utc_second():
    assert default_session_id("tm1", T0) == "tm1-20231114T221320"


def apply(ss: StationSessions, now: int, **body):
    return ss.apply(parse_command(cmd(**body)), now)


def test_state_machine_start_mark_calibrate_stop():
    ss = StationSessions("tm1")
    assert apply(ss, T0, command="stop").reason == "no_session"
    assert apply(ss, T0, command="mark", label="x").reason == "no_session"
    assert apply(ss, T0, command="calibrate", phase="mvc").reason == "no_session"
    out = apply(ss, T0, command="start", athlete="ana", label="easy")
    assert out.ok and out.meta.session == "tm1-20231114T221320" and out.meta.end_ns is None
    assert ss.reply(T0, out)["state"] == "running"
    assert apply(ss, T0 + 1, command="start", athlete="bo").reason == "session_running"
    assert apply(ss, T0 + 2, command="mark", label="cramp", note="left").meta.meta["marks"] \
        == [{"label": "cramp", "note": "left", "time_ns": T0 + 2}]
    assert apply(ss, T0 + 3, command="calibrate", phase="standing").ok
    assert ss.state.phase == "standing"
    assert apply(ss, T0 + 4, command="calibrate", phase="mvc").reason == "phase_active"
    assert apply(ss, T0 + 4, command="calibrate", phase="mvc",
                 action="stop").reason == "phase_not_active"
    assert apply(ss, T0 + 5, command="calibrate", phase="standing", action="stop").ok
    assert apply(ss, T0 + 6, command="calibrate", phase="prone").ok
    assert apply(ss, T0 + 7, command="stop", session="other").reason == "wrong_session"
    out = apply(ss, T0 + 8, command="stop")  # also ends the open prone phase
    assert out.ok and out.meta.end_ns == T0 + 8 and out.meta.label == "easy"
    assert out.meta.meta["phases"] == [
        {"phase": "standing", "start_ns": T0 + 3, "end_ns": T0 + 5},
        {"phase": "prone", "start_ns": T0 + 6, "end_ns": T0 + 8}]
    reply = ss.reply(T0 + 8, out, "r")
    assert reply["state"] == "idle" and reply["session"] is None
    assert reply["result"] == {"command": "stop", "ok": True, "request": "r",
                               "session": "tm1-20231114T221320", "end_ns": T0 + 8,
                               "phase": {"phase": "prone", "start_ns": T0 + 6,
                                         "end_ns": T0 + 8}}
    assert out.closed_phase["athlete"] == "ana"  # the pipeline analyses the prone window
    assert apply(ss, T0 + 9, command="start", athlete="ana",
                 session="tm1-20231114T221320").reason == "session_exists"


def test_refusal_keeps_the_state_and_says_why():
    ss = StationSessions("tm1")
    apply(ss, T0, command="start", athlete="ana", session="s1")
    out = apply(ss, T0 + 1, command="start", athlete="bo")
    reply = ss.reply(T0 + 1, out, "r2")
    assert reply["session"] == "s1" and reply["athlete"] == "ana" and reply["marks"] == 0
    assert reply["result"]["ok"] is False and reply["result"]["reason"] == "session_running"
    assert "stop it first" in reply["result"]["message"]


def test_state_survives_a_restart_and_redelivery_is_recognised():
    ss = StationSessions("tm1")
    apply(ss, T0, command="start", athlete="ana", session="s1", request="a")
    apply(ss, T0 + 5, command="mark", label="m", request="b")
    again = StationSessions("tm1", SessionState.from_json("tm1", ss.state.to_json()))
    assert again.state.session == "s1" and len(again.state.marks) == 1
    assert again.timeline.at(T0 + 10) == ("s1", "ana")
    dup = apply(again, T0 + 20, command="mark", label="m", request="b")
    assert dup.ok and dup.duplicate and len(again.state.marks) == 1
    apply(again, T0 + 30, command="stop", request="c")
    dup = apply(again, T0 + 40, command="stop", request="c")  # redelivered stop
    assert dup.duplicate and dup.meta.end_ns == T0 + 30 and dup.meta.session == "s1"


def test_timeline_assigns_times_to_sessions():
    tl = Timeline([Interval("a", "ana", 100, 200), Interval("b", None, 300)])
    assert [tl.at(t)[0] for t in (99, 100, 199, 200, 299, 300, 10**20)] == \
        [UNASSIGNED, "a", "a", UNASSIGNED, UNASSIGNED, "b", "b"]
    groups = {s: m.nonzero()[0].tolist() for s, _a, m in tl.split(np.array([50, 150, 350]))}
    assert groups == {"a": [1], "b": [2], UNASSIGNED: [0]}


def test_outputs_are_tagged_by_time_with_the_session():
    row = {"stride_index": 0, "side": "l", "stride_start_s": 1.0, "stride_time_s": 1.0}
    later = {**row, "stride_index": 1, "stride_start_s": 3.0}
    cue = {"cue": "asymmetry", "kind": "raise", "level": "caution", "message": "m",
           "stride_start_s": 3.0, "evidence": {}}
    engine = StreamOutput(rows=[row, later], cue_events=[cue],
                          snapshot={"processed": {"time_s": [1.0, 2.5, 3.0],
                                                  "envelope_mv": {"c": [0.1, 0.2, 0.3]}}})
    tl = Timeline([Interval("s1", "ana", T0 + 2 * 10**9)])
    points = output_points(StationOutput("tm1", T0, engine), tl)
    by = {(p.measurement.name, p.time_ns): p.tags.get("session") for p in points}
    assert by[(STRIDES.name, T0 + 10**9)] == UNASSIGNED
    assert by[(STRIDES.name, T0 + 3 * 10**9)] == "s1"
    assert by[(CUES.name, T0 + 3 * 10**9)] == "s1"
    assert [by[(PROCESSED.name, T0 + t)] for t in (10**9, 25 * 10**8, 3 * 10**9)] == \
        [UNASSIGNED, "s1", "s1"]
    athletes = {p.tags.get("session"): p.tags.get("athlete") for p in points
                if p.measurement is STRIDES}
    assert athletes == {UNASSIGNED: None, "s1": "ana"}
    assert SESSIONS.name == "sessions"


def test_cli_builds_versioned_commands():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    body = build_command(parser.parse_args(["start", "--station", "tm1", "--athlete", "ana",
                                            "--label", "L"]))
    assert body["version"] == 1 and body["command"] == "start" and body["request"]
    assert parse_command(json.dumps(body)).athlete == "ana"
    body = build_command(parser.parse_args(["calibrate", "--station", "tm1", "--phase",
                                            "prone", "--action", "stop"]))
    assert (body["phase"], body["action"]) == ("prone", "stop")
    with pytest.raises(SystemExit):
        parser.parse_args(["start", "--station", "tm1"])  # --athlete is required
