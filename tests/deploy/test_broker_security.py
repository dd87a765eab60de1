"""The broker as deployed: Debian's Mosquitto with deploy/mosquitto/mosquitto.conf (only the
port and paths substituted, see tests/support/deploy.py) and the password and ACL files that
the real ``hipstride admin init`` and ``add-station tm1``/``tm2`` write.

Refusal is shown by the broker itself: a CONNACK return code, or a message that never
reaches a subscriber that has the right to read it (checked after an allowed sentinel from
the same publisher has arrived, so the denied message had its chance).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hipstride.broker_auth import mosquitto_hash
from tests.support.deploy import (
    REPO,
    ComposeMosquitto,
    hipstride,
    interpolate,
    load_compose,
    make_site,
    read_env_file,
    station_password,
    to_host,
)
from tests.support.mosquitto import MOSQUITTO_PASSWD, free_port, make_certificates
from tests.support.pipeline import wait_until

STATIONS = ("tm1", "tm2")
KINDS = ("frames/emg", "streams/emg", "status", "control", "live", "cues", "session",
         "results", "ingest")

# The policy, written out independently of hipstride/broker_auth.py (the brief's rules).
STATION_WRITES = {"frames/emg", "streams/emg", "status"}
PIPELINE_READS = {"frames/emg", "streams/emg", "status", "control"}
PIPELINE_WRITES = {"live", "cues", "session", "results", "ingest"}
DASHBOARD_READS = {"live", "cues", "session", "status", "results", "ingest"}
DASHBOARD_WRITES = {"control"}


def may_write(user: str, station: str, kind: str) -> bool:
    if user in STATIONS:
        return user == station and kind in STATION_WRITES
    return kind in {"pipeline": PIPELINE_WRITES, "dashboard": DASHBOARD_WRITES}[user]


def may_read(user: str, station: str, kind: str) -> bool:
    if user in STATIONS:
        return user == station and kind == "control"
    return kind in {"pipeline": PIPELINE_READS, "dashboard": DASHBOARD_READS}[user]


class Client:
    """A paho client that records what it receives and how its CONNACK went."""

    def __init__(self, port: int, user: str | None, password: str | None, *,
                 tls_ca: Path | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connack: object | None = None
        self.suback: list = []
        self._connected, self._subscribed = threading.Event(), threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(15):
            raise AssertionError("no CONNACK within 15 s")

    def _on_connect(self, _c, _u, _flags, reason_code, _props) -> None:
        self.connack = reason_code
        self._connected.set()

    def _on_subscribe(self, _c, _u, _mid, reason_codes, _props) -> None:
        self.suback = list(reason_codes)
        self._subscribed.set()

    @property
    def accepted(self) -> bool:
        return not self.connack.is_failure

    def subscribe(self, filters: list[str]) -> None:
        self._subscribed.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self._subscribed.wait(15), "no SUBACK within 15 s"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(15)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def deployed(tmp_path):
    site = tmp_path / "site"
    env = make_site(site, STATIONS)
    broker = ComposeMosquitto(tmp_path / "mosquitto", site)
    broker.start()
    passwords = {"pipeline": env["MQTT_PIPELINE_PASSWORD"],
                 "dashboard": env["MQTT_DASHBOARD_PASSWORD"],
                 **{s: station_password(site, s) for s in STATIONS}}
    yield broker, site, passwords
    broker.stop()


def port_of(broker: ComposeMosquitto, user: str) -> int:
    """Stations use the stations' listener, the services theirs (docs/deployment.md)."""
    return broker.port if user in STATIONS else broker.services_port


def check_mosquitto_hash(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (the oracle for mosquitto_passwd's own)."""
    try:
        _, kind, iterations, salt, digest = encoded.split("$")
        if kind != "7":
            return False
        actual = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"),
                                     base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(actual, base64.b64decode(digest))
    except ValueError:
        return False


def test_python_hash_is_mosquitto_passwd_format(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "alice", "pässword 1"], check=True,
                   capture_output=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert check_mosquitto_hash("pässword 1", theirs)
    assert not check_mosquitto_hash("pässword 2", theirs)
    _, _, iterations, salt, _ = theirs.split("$")
    ours = mosquitto_hash("pässword 1", salt=base64.b64decode(salt),
                          iterations=int(iterations))
    assert ours == theirs


def test_anonymous_and_wrong_passwords_are_refused(deployed):
    broker, _site, passwords = deployed
    cases = {"anonymous": (None, None), "wrong password": ("tm1", "not-the-password"),
             "tm1's password for tm2": ("tm2", passwords["tm1"]),
             "unknown user": ("intruder", passwords["tm1"]), "empty password": ("tm1", "")}
    for what, (user, password) in cases.items():
        client = Client(broker.port, user, password)
        try:
            assert not client.accepted, f"{what}: the broker accepted the connection"
            assert client.connack == "Not authorized", (what, client.connack)
        finally:
            client.close()
    good = Client(broker.port, "tm1", passwords["tm1"])
    assert good.accepted
    good.close()
    assert "not authorised" in broker.log()


def test_every_account_has_exactly_the_rights_it_needs(deployed):
    """Each of the 4 accounts publishes on all 18 topics of tm1 and tm2; each also subscribes
    to all 18. A message must reach a reader iff the publisher may write and the reader may
    read that topic. Every topic has a reader and a writer, so each rule is exercised."""
    broker, _site, passwords = deployed
    users = ("tm1", "tm2", "pipeline", "dashboard")
    all_topics = [(s, k, f"hipstride/v1/{s}/{k}") for s in STATIONS for k in KINDS]
    sentinel = {"tm1": "hipstride/v1/tm1/status", "tm2": "hipstride/v1/tm2/status",
                "pipeline": "hipstride/v1/tm1/live", "dashboard": "hipstride/v1/tm1/control"}
    clients = {u: Client(port_of(broker, u), u, passwords[u]) for u in users}
    try:
        for client in clients.values():
            assert client.accepted
            client.subscribe([topic for _, _, topic in all_topics])
        expected: dict[str, set[tuple[str, bytes]]] = {u: set() for u in users}
        for pub in users:
            for station, kind, topic in all_topics:
                payload = f"{pub}->{topic}".encode()
                clients[pub].publish(topic, payload)
                for reader in users:
                    if may_write(pub, station, kind) and may_read(reader, station, kind):
                        expected[reader].add((topic, payload))
            clients[pub].publish(sentinel[pub], f"sentinel {pub}".encode())
        # the sentinels reach whoever may read them: proof each publisher was processed
        sentinel_readers = {"tm1": "pipeline", "tm2": "pipeline", "pipeline": "dashboard",
                            "dashboard": "tm1"}
        for pub, reader in sentinel_readers.items():
            wait_until(lambda p=pub, r=reader: (sentinel[p], f"sentinel {p}".encode())
                       in clients[r].received, 20, f"{pub}'s sentinel at {reader}")
        for reader in users:
            wait_until(lambda r=reader: expected[r] <= set(clients[r].received), 20,
                       f"every allowed message at {reader}")
        time.sleep(1.0)  # a denied message delivered late would show up here
        for reader in users:
            got = {m for m in clients[reader].received if not m[1].startswith(b"sentinel")}
            assert got == expected[reader], (
                f"{reader}: unexpected {sorted(got - expected[reader])}, "
                f"missing {sorted(expected[reader] - got)}")
        assert expected["pipeline"] and expected["dashboard"] and expected["tm1"]
    finally:
        for client in clients.values():
            client.close()


def test_a_station_cannot_read_other_stations_with_wildcards(deployed):
    broker, _site, passwords = deployed
    spy = Client(broker.port, "tm1", passwords["tm1"])
    witness = Client(broker.services_port, "pipeline", passwords["pipeline"])
    tm2 = Client(broker.port, "tm2", passwords["tm2"])
    try:
        spy.subscribe(["#", "hipstride/v1/+/frames/+", "hipstride/v1/tm2/#"])
        witness.subscribe(["hipstride/v1/+/frames/+"])
        for i in range(5):
            tm2.publish("hipstride/v1/tm2/frames/emg", f"raw {i}".encode())
        wait_until(lambda: len(witness.received) == 5, 20, "the pipeline to get tm2's frames")
        time.sleep(1.0)
        assert spy.received == []
    finally:
        for client in (spy, witness, tm2):
            client.close()


def test_renewing_a_station_replaces_its_password_after_a_reload(deployed):
    broker, site, passwords = deployed
    done = hipstride("admin", "add-station", "tm1", cwd=site)
    new_password = done.stdout.strip()
    assert new_password and new_password != passwords["tm1"]
    assert new_password not in done.stderr  # shown once, on stdout only
    broker.proc.send_signal(1)  # SIGHUP, as `docker compose kill -s SIGHUP mosquitto`

    def old_refused() -> bool:
        client = Client(broker.port, "tm1", passwords["tm1"])
        client.close()
        return not client.accepted

    wait_until(old_refused, 10, "the old password to be refused after SIGHUP")
    fresh = Client(broker.port, "tm1", new_password)
    assert fresh.accepted
    fresh.close()
    acl = (site / "deploy/site/broker/acl").read_text()
    assert acl.count("user tm1\n") == 1


def test_bad_station_ids_are_refused_with_a_reason(tmp_path):
    site = tmp_path / "site"
    make_site(site, ())
    for bad, reason in {"pipeline": "reserved", "hipstride-pipeline-0-of-1": "reserved",
                        "hipstride-edge-tm2": "reserved", "Treadmill 1": "not valid"}.items():
        done = hipstride("admin", "add-station", bad, cwd=site, check=False)
        assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert "user pipeline" in (site / "deploy/site/broker/services.acl").read_text()
    assert "user pipeline" not in (site / "deploy/site/broker/acl").read_text()


def test_compose_healthcheck_command_logs_in(deployed, tmp_path):
    """The mosquitto service's health check, run as compose would (host and port mapped)."""
    broker, site, _ = deployed
    service = load_compose()["services"]["mosquitto"]
    env = read_env_file(site / ".env")
    command = interpolate(service["healthcheck"]["test"], env)
    assert command[0] == "CMD-SHELL"
    shell = command[1].replace("-p 1884", f"-p {broker.services_port}")
    health_env = {"PATH": "/usr/bin:/bin", **interpolate(service["environment"], env)}
    ok = subprocess.run(["sh", "-c", shell], env=health_env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["sh", "-c", shell], env={**health_env, "MQTT_HEALTH_PASSWORD": "x"},
                         capture_output=True, timeout=30)
    assert bad.returncode != 0


def test_optional_tls_listener(tmp_path):
    """conf.d/tls.conf.example enabled (its listener port mapped, certificates in
    deploy/site/broker/certs as the example says): stations log in over TLS, anonymous
    clients are refused there too."""
    site = tmp_path / "site"
    make_site(site, ("tm1",))
    certs = site / "deploy/site/broker/certs"
    certs.mkdir()
    ca, cert, key = make_certificates(tmp_path)
    for source, name in ((ca, "ca.crt"), (cert, "server.crt"), (key, "server.key")):
        shutil.copy(source, certs / name)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    tls_port = free_port()
    example = (REPO / "deploy/mosquitto/conf.d/tls.conf.example").read_text()
    assert "listener 8883\n" in example
    broker = ComposeMosquitto(tmp_path / "mosquitto", site, conf_d=conf_d)
    (conf_d / "tls.conf").write_text(to_host(
        example.replace("listener 8883", f"listener {tls_port} 127.0.0.1"), broker.mapping))
    broker.start()
    try:
        wait_until(lambda: "port " + str(tls_port) in broker.log(), 10, "the TLS listener")
        station = Client(tls_port, "tm1", station_password(site, "tm1"), tls_ca=ca)
        assert station.accepted
        station.close()
        anonymous = Client(tls_port, None, None, tls_ca=ca)
        assert not anonymous.accepted
        anonymous.close()
    finally:
        broker.stop()


def test_an_operator_account_reads_everything_on_the_services_listener_only(deployed):
    """`hipstride admin add-operator` (for `hipstride tap`): reads every station's frames on
    the services' listener, sends control; refused on the stations' listener."""
    broker, site, passwords = deployed
    done = hipstride("admin", "add-operator", "operator", cwd=site)
    password = done.stdout.strip()
    assert password and password not in done.stderr
    broker.proc.send_signal(1)  # SIGHUP: reread the files
    def accepted(port: int) -> bool:
        client = Client(port, "operator", password)
        client.close()
        return client.accepted

    wait_until(lambda: accepted(broker.services_port), 10, "the operator account after SIGHUP")
    assert not accepted(broker.port)
    operator = Client(broker.services_port, "operator", password)
    tm1 = Client(broker.port, "tm1", passwords["tm1"])
    try:
        operator.subscribe(["hipstride/v1/#"])
        tm1.subscribe(["hipstride/v1/tm1/control"])
        tm1.publish("hipstride/v1/tm1/frames/emg", b"frame")
        operator.publish("hipstride/v1/tm1/control", b"command")
        wait_until(lambda: ("hipstride/v1/tm1/frames/emg", b"frame") in operator.received, 20,
                   "the operator to read tm1's frame")
        wait_until(lambda: ("hipstride/v1/tm1/control", b"command") in tm1.received, 20,
                   "tm1 to get the operator's command")
    finally:
        operator.close()
        tm1.close()
    assert "user operator" in (site / "deploy/site/broker/services.acl").read_text()
    assert "operator" not in (site / "deploy/site/broker/acl").read_text()


def test_init_moves_service_accounts_off_the_stations_listener(tmp_path):
    """A site from before the two listeners had `pipeline` and `dashboard` in the stations'
    files; `hipstride admin init` again moves them to the services' files."""
    from hipstride import broker_auth

    site = tmp_path / "site"
    make_site(site, ("tm1",))
    broker_dir = site / "deploy/site/broker"
    broker_auth.set_password(broker_dir / "passwd", "pipeline", "old-secret-123")
    broker_auth.set_acl(broker_dir / "acl", "pipeline", broker_auth.pipeline_rights())
    done = hipstride("admin", "init", cwd=site)
    assert "moved broker account pipeline" in done.stderr, done.stderr
    assert set(broker_auth.read_passwd(broker_dir / "passwd")) == {"tm1"}
    assert set(broker_auth.read_acl(broker_dir / "acl")) == {"tm1"}
    assert set(broker_auth.read_passwd(broker_dir / "services.passwd")) == {"pipeline",
                                                                             "dashboard"}


def test_init_brings_station_acl_blocks_from_before_confirmations_up_to_date(tmp_path):
    """A station block written before protocol 1.1 cannot read its `…/stored` topic, so the
    agent would keep every frame; `hipstride admin init` again rewrites it to today's rights."""
    from hipstride import broker_auth

    site = tmp_path / "site"
    make_site(site, ("tm1", "tm2"))
    acl = site / "deploy/site/broker/acl"
    old = [r for r in broker_auth.station_rights("tm1") if "/stored" not in r]
    assert len(old) < len(broker_auth.station_rights("tm1"))
    broker_auth.set_acl(acl, "tm1", old)
    done = hipstride("admin", "init", cwd=site)
    assert "station tm1: ACL block brought up to date" in done.stderr, done.stderr
    assert "station tm2" not in done.stderr  # already current: left alone
    blocks = broker_auth.read_acl(acl)
    assert blocks == {s: broker_auth.station_rights(s) for s in ("tm1", "tm2")}
