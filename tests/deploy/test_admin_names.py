"""``hipstride admin`` never writes a name that would break the broker's files: a station id
with a line break (``tm-c\\n`` used to pass), a ``:`` or a space is refused with exit 2 and the
rule, the files stay byte for byte as they were, and the site still loads in Debian's
Mosquitto with the deployment's own configuration (a station logs in)."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.deploy import ComposeMosquitto, hipstride, make_site, station_password

BROKER_FILES = ("deploy/site/broker/passwd", "deploy/site/broker/acl")


def connack(port: int, user: str, password: str) -> int:
    """The broker's CONNACK reason code for ``user`` (0: accepted)."""
    got: list[int] = []
    done = threading.Event()

    def on_connect(_c, _u, _f, reason, _p):
        got.append(reason.value)
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(15), "no CONNACK within 15 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_bad_names_never_reach_the_broker_files_and_the_site_still_loads(tmp_path):
    site = tmp_path / "site"
    make_site(site, ("tm1",))
    before = {name: (site / name).read_bytes() for name in BROKER_FILES}
    for bad, words in {"tm-c\n": "a line break", "tm-c:x": "contains ':'",
                       "tm c": "contains a space", "tm-c\r": "a carriage return",
                       "\ntm-c": "a line break"}.items():
        done = hipstride("admin", "add-station", bad, cwd=site, check=False)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and "station id" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert {name: (site / name).read_bytes() for name in BROKER_FILES} == before

    broker = ComposeMosquitto(tmp_path / "mosquitto", site)
    broker.start()
    try:
        assert connack(broker.port, "tm1", station_password(site, "tm1")) == 0
        assert connack(broker.port, "tm1", "wrong-password") != 0
    finally:
        broker.stop()


def test_a_broken_line_from_before_is_named_not_copied(tmp_path):
    """A password file a buggy version left with a bare ``tm-c`` line: the next
    ``add-station`` names the file and line instead of writing on top of it."""
    site = tmp_path / "site"
    make_site(site, ("tm1",))
    passwd = site / BROKER_FILES[0]
    passwd.write_text(passwd.read_text() + "tm-c\n:$7$101$c2FsdA==$aGFzaA==\n")
    done = hipstride("admin", "add-station", "tm2", cwd=site, check=False)
    assert done.returncode == 2, done.stderr
    assert f"{BROKER_FILES[0]}:2: not a `user:hash` line" in done.stderr, done.stderr
