"""The name rules (hipstride/names.py) and every place that applies them: topics, the control
client and the pipeline's control parser (same verdict), ``hipstride session`` (exit 2 before
any broker is asked), the dashboard accounts and the broker's password/ACL writers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hipstride import broker_auth, names, topics
from hipstride.accounts import Accounts, check_account
from hipstride.config import ConfigError
from hipstride.control import build_command
from hipstride.pipeline.service.sessions import CommandError, parse_command
from tests.support.pipeline import clean_env

#: Names shown to people: kept exactly (NFC), whatever their script or punctuation.
GOOD_ATHLETES = ["Zoë Müller", "ann", "O'Brien, Ann", 'say "hi"', "a=b c", "**bold**",
                 "![x](http://evil/x.png)", "李小龍", "Ana-María José", "x" * 64, "مهسا\u200cنوری"]
#: (athlete name, the words of the refusal)
BAD_ATHLETES = [
    ("ann\nbob", "a line break"), ("ann\r", "a carriage return"), ("a\tb", "a tab"),
    ("nul\0", "NUL"), ("back\\", "a backslash"), ("a\\b", "a backslash"),
    ("x" * 65, "65 characters long"), ("", "empty"), ("   ", "empty"),
    ("rtl\u202eevil", "U+202E"), ("line\u2028sep", "U+2028"), ("nb\u00a0sp", "U+00A0"),
    ("surrogate\ud800", "U+D800"), ("bell\x07", "U+0007"),
]


@pytest.mark.parametrize("name", GOOD_ATHLETES)
def test_athlete_names_of_any_script_are_kept_exactly(name):
    assert names.check(names.ATHLETE, name) == name
    body = build_command("start", athlete=name)
    assert body["athlete"] == name
    assert parse_command(json.dumps(body)).athlete == name  # the pipeline agrees


@pytest.mark.parametrize(("name", "words"), BAD_ATHLETES)
def test_bad_athlete_names_are_refused_naming_the_rule(name, words):
    with pytest.raises(names.BadName) as err:
        names.check(names.ATHLETE, name)
    assert words in str(err.value) and names.ATHLETE.text in str(err.value)
    with pytest.raises(ValueError, match="athlete name"):
        build_command("start", athlete=name)
    if name.strip(" "):  # blank is "missing", not a bad name
        with pytest.raises(CommandError) as refused:
            parse_command(json.dumps({"command": "start", "athlete": name}))
        assert refused.value.reason == names.BAD_NAME and words in str(refused.value)


def test_spaces_around_are_dropped_and_text_is_normalised():
    assert names.check(names.ATHLETE, "  Zoë  ") == "Zoë"
    assert names.check(names.ATHLETE, "Zoe\u0308") == "Zoë"  # decomposed -> NFC
    assert names.check(names.NOTES, "line 1\nline 2\ttab\r\n") == "line 1\nline 2\ttab\r\n"
    assert names.problem(names.NOTES, "bell\x07") == "contains U+0007 (a control character)"
    assert names.check(names.LABEL, "C:\\runs\\") == "C:\\runs\\"  # a field: fine
    assert "a line break" in names.problem(names.LABEL, "two\nlines")
    assert names.problem(names.LABEL, "x" * 201).startswith("is 201 characters")


@pytest.mark.parametrize(("rule", "good", "bad"), [
    (names.STATION, ["tm1", "treadmill-1", "a_b", "x" * 32],
     ["tm-c\n", "TM1", "-tm", "tm 1", "tm/1", "tm+1", "", "x" * 33, "tm1\0"]),
    (names.SESSION, ["s1", "tm1-20261202T101010", "a.b:c_d-e", "S" * 64],
     ["s1\n", "has space", "unassigned", ".hidden", "a/b", "x" * 65, ""]),
    (names.LOGIN, ["ana", "carla.c@club", "b_1-x"],
     ["ana\n", "bad name", "ann:x", "ann\\", "@x", ""]),
    (names.CHANNEL, ["glute_max_l"], ["Glute", "glute max", "glute_max_l\n"]),
])
def test_identifier_rules_match_the_whole_name(rule, good, bad):
    for name in good:
        assert names.check(rule, name) == name
    for name in bad:
        assert names.problem(rule, name), name
        with pytest.raises(names.BadName, match=rule.what):
            names.check(rule, name)


def test_a_trailing_newline_is_no_longer_a_valid_station():
    """``re.match`` with ``$`` let "tm-c\\n" through: every id is now matched whole."""
    with pytest.raises(ValueError, match="a line break"):
        topics.check_station("tm-c\n")
    with pytest.raises(ValueError):
        topics.control("tm1\n")
    with pytest.raises(ValueError):
        topics.parse("hipstride/v1/tm1\n/control")
    with pytest.raises(CommandError) as err:
        parse_command(json.dumps({"command": "start", "athlete": "a", "session": "s1\n"}))
    assert err.value.reason == names.BAD_NAME


@pytest.mark.parametrize(("field", "value"), [
    ("label", "two\nlines"), ("notes", "bell\x07"), ("session", "s 1"), ("request", "r\n1"),
])
def test_every_control_field_has_its_rule(field, value):
    body = {"command": "start", "athlete": "ann", field: value}
    with pytest.raises(CommandError) as err:
        parse_command(json.dumps(body))
    assert err.value.reason == names.BAD_NAME and repr(field) in str(err.value)
    mark = parse_command(json.dumps({"command": "mark", "label": "felt it \\ now",
                                     "note": "left\nhamstring"}))
    assert (mark.label, mark.note) == ("felt it \\ now", "left\nhamstring")


def test_sanitise_repairs_what_was_stored_before_the_rules():
    assert names.sanitise(names.ATHLETE, "ann\nbob", "?") == "ann bob"
    assert names.sanitise(names.ATHLETE, "ann\\", "?") == "ann"
    assert names.sanitise(names.ATHLETE, "\\\n", "unknown") == "unknown"
    assert names.sanitise(names.ATHLETE, "Zoë", "?") == "Zoë"
    assert names.sanitise(names.SESSION, "s1\n", "restored") == "s1_"
    assert names.sanitise(names.SESSION, "unassigned", "restored") == "restored"
    assert names.sanitise(names.NOTES, "a\nb\x07", "") == "a\nb"
    for rule in names.RULES:
        for raw in ("x\n\\y\0", "\u202e" * 300, "ok"):
            fixed = names.sanitise(rule, raw, "fallback")
            assert names.problem(rule, fixed) is None, (rule.what, raw, fixed)


def hs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipstride.cli", *args], cwd=cwd,
                          env=clean_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "words"), [
    (("--athlete", "ann\nbob"), "a line break"),
    (("--athlete", "ann\\"), "a backslash"),
    (("--athlete", "x" * 65), "65 characters"),
    (("--athlete", "ann", "--label", "a\tb"), "label"),
    (("--athlete", "ann", "--session", "s1\n"), "session id"),
])
def test_session_cli_refuses_bad_names_with_exit_2_before_the_broker(args, words):
    # port 1 is never a broker: a name refused here was never sent
    done = hs("session", "start", "--station", "tm1", "--broker", "mqtt://127.0.0.1:1", *args)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "is not valid" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_accounts_use_the_login_and_athlete_rules(tmp_path):
    assert check_account("carla", "coach", ("Zoë Müller", "O'Brien")).athletes == (
        "Zoë Müller", "O'Brien")
    for name in ("ana\n", "ana:x", "bad name"):
        with pytest.raises(ConfigError, match="account name"):
            check_account(name, "coach")
    with pytest.raises(ConfigError, match="a line break"):
        check_account("carla", "coach", ("ann\nbob",))
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"accounts": [{"name": "ana\n", "role": "athlete",
                                              "password": "scrypt$x"}]}))
    with pytest.raises(ConfigError, match=r"entry 1.*a line break"):
        Accounts.load(path)


@pytest.mark.parametrize("user", ["tm-c\n", "a:b", "a b", "", "x\\"])
def test_broker_files_never_take_a_name_that_breaks_them(tmp_path, user):
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    broker_auth.set_password(passwd, "tm1", "secret-1")
    before = passwd.read_bytes()
    with pytest.raises(ConfigError, match="broker account"):
        broker_auth.set_password(passwd, user, "secret-2")
    with pytest.raises(ConfigError, match="broker account"):
        broker_auth.set_acl(acl, user, ["topic read x"])
    assert passwd.read_bytes() == before and not acl.exists()


def test_admin_refuses_bad_names_and_writes_nothing(tmp_path):
    password = tmp_path / "pw"
    password.write_text("long-enough-password\n")
    for args, words in [
        (("add-station", "tm-c\n"), "station id 'tm-c\\n' is not valid: it contains a line"),
        (("add-athlete", "ann\n", "--password-file", str(password)), "account name"),
        (("add-coach", "carla", "--athlete", "ann\nbob", "--password-file", str(password)),
         "athlete 'ann\\nbob' is not valid"),
        (("add-admin", "lead:x", "--password-file", str(password)), "account name"),
    ]:
        done = hs("admin", *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]


def test_stream_and_channel_names_are_matched_whole_too():
    from hipstride.frames import STREAM_NAME
    from hipstride.streams import CHANNEL_NAME

    assert STREAM_NAME.match("emg") and CHANNEL_NAME.match("glute_max_l")
    assert not STREAM_NAME.match("emg\n") and not CHANNEL_NAME.match("glute_max_l\n")


def test_the_protocol_doc_states_every_rule_and_the_refusal_reason():
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    section = text.split("### Names", 1)[1].split("\n## ", 1)[0]
    rows = "\n".join(line for line in section.splitlines() if line.startswith("| "))
    for what in ("station id", "session id", "dashboard login", "EMG channel", "athlete name",
                 "`label`", "`request`", "`notes`"):
        assert what in rows, what
    assert "`bad_name`" in text.split("## Control", 1)[1].split("\n## ", 1)[0]
