"""A real Mosquitto broker for tests, on a free loopback port, with a password file.

It fails loudly when Mosquitto is not installed (``.ci/run`` installs Debian's package):
a test that needs a broker must never pass because there was none.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs: bound, never listening,
    so no other process (a server started by a parallel test) can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca, key, csr, cert = (workdir / n for n in ("ca.key", "ca.crt", "server.key",
                                                         "server.csr", "server.crt"))
    ext = workdir / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=HipStride test CA", "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
         "2", "-extfile", ext, "-out", cert],
    ):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    return ca, cert, key


class Mosquitto:
    """Start, kill and restart one broker; state (persistence) survives restarts."""

    def __init__(self, workdir: Path, users: dict[str, str], *, acl: str | None = None,
                 tls: bool = False, autosave_interval_s: int = 1) -> None:
        """``autosave_interval_s``: how often the broker saves its state (queues, sessions,
        retained messages) to disk; a SIGKILL loses what came after the last save (a large
        value: everything since the start)."""
        if not Path(MOSQUITTO).exists():
            raise RuntimeError("mosquitto is not installed: apt-get install mosquitto "
                               "mosquitto-clients (see .ci/run)")
        self.workdir = workdir
        self.port = free_port()
        self.users = users
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        passwd = workdir / "passwd"
        passwd.touch()
        for user, password in users.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), user, password], check=True,
                           capture_output=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {passwd}",
            "persistence true",
            f"persistence_location {workdir}/",
            f"autosave_interval {autosave_interval_s}",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"log_dest file {workdir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # Started as root, Mosquitto drops to user "mosquitto", which cannot read the
            # test's private temp dir; stay root (CI runs as root, developers usually not).
            lines.append("user root")
        self.tls_port: int | None = None
        self.ca_file: Path | None = None
        if tls:
            self.tls_port = free_port()
            self.ca_file, cert, key = make_certificates(workdir)
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.ca_file}",
                      f"certfile {cert}", f"keyfile {key}"]
        if acl is not None:
            (workdir / "acl").write_text(acl)
            lines.append(f"acl_file {workdir / 'acl'}")
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def url_for(self, user: str) -> str:
        return f"mqtt://{user}@127.0.0.1:{self.port}"

    def publish(self, topic: str, body: dict, *, user: str, retain: bool = False) -> None:
        """Publish one JSON message as ``user`` (QoS 1, waits for the broker's
        acknowledgement)."""
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}-publisher")
        c.username_pw_set(user, self.users[user])
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        try:
            c.publish(topic, json.dumps(body), qos=1, retain=retain).wait_for_publish(10)
        finally:
            c.disconnect()
            c.loop_stop()

    def start(self, timeout_s: float = 10.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} in {timeout_s} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
