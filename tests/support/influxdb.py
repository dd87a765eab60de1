"""A real InfluxDB (Debian's ``influxd`` 1.6.7) for tests, on free loopback ports, with auth.

Everything lives in a temporary directory: config, meta, data and WAL; reporting is off and
the system service is never touched. The first (admin) user is created through the HTTP API —
InfluxDB 1.x allows exactly that one unauthenticated statement on a server without users.
Fails loudly when ``influxd`` is not installed (``.ci/run`` installs Debian's package): a test
that needs a database must never pass because there was none.

The helpers here talk to the server with ``urllib`` and the ``influx`` CLI only — never through
the store under test — so they are independent witnesses of what it wrote.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.mosquitto import free_port

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
INFLUX = shutil.which("influx") or "/usr/bin/influx"
INSTALL_HINT = "apt-get install influxdb influxdb-client (see .ci/run)"


class InfluxDB:
    """Start, stop and restart one ``influxd``; data survives restarts (same ports)."""

    def __init__(self, workdir: Path, admin: tuple[str, str] = ("admin", "admin-secret")
                 ) -> None:
        if not Path(INFLUXD).exists():
            raise RuntimeError(f"influxd is not installed: {INSTALL_HINT}")
        self.workdir = workdir
        self.admin = admin
        self.port = free_port()
        self.bind_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._admin_created = False
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "influxdb.conf"
        self.config.write_text(f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{self.bind_port}"

[meta]
  dir = "{workdir}/meta"

[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = true
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
""")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def store_url(self, user: str, password: str, database: str) -> str:
        return f"influx://{user}:{password}@127.0.0.1:{self.port}/{database}"

    # --- process ----------------------------------------------------------------------------
    def start(self, timeout_s: float = 15.0) -> None:
        log = open(self.workdir / "influxd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([INFLUXD, "run", "-config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}: "
                                   + (self.workdir / "influxd.log").read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as r:
                    if r.status == 204:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"influxd did not answer on port {self.port} in {timeout_s} s")
        if not self._admin_created:
            self.query(f"CREATE USER {self.admin[0]} WITH PASSWORD '{self.admin[1]}' "
                       "WITH ALL PRIVILEGES", auth=False)
            self._admin_created = True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- administration (HTTP, independent of the store under test) -------------------------
    def query(self, q: str, *, database: str | None = None, auth: bool = True,
              user: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """POST an InfluxQL statement; returns ``results`` (raises on any error)."""
        params = {"q": q, "epoch": "ns"}
        if database:
            params["db"] = database
        request = urllib.request.Request(
            f"{self.url}/query", data=urllib.parse.urlencode(params).encode(), method="POST")
        if auth:
            u, p = user or self.admin
            request.add_header("Authorization",
                               "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                results = json.loads(r.read())["results"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"influxd: {q!r}: HTTP {err.code} {err.read()!r}") from None
        for res in results:
            if "error" in res:
                raise RuntimeError(f"influxd: {q!r}: {res['error']}")
        return results

    def create_database(self, name: str, *, users: Mapping[str, str] | None = None) -> None:
        """A database and, for each user, ``ALL`` (read + write) on it, no admin rights."""
        self.query(f'CREATE DATABASE "{name}"')
        for user, password in (users or {}).items():
            try:
                self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}'")
            except RuntimeError as err:
                if "user already exists" not in str(err):
                    raise
            self.query(f'GRANT ALL ON "{name}" TO "{user}"')

    def cli(self, database: str, statement: str, *, user: tuple[str, str] | None = None
            ) -> str:
        """Run the ``influx`` CLI (Debian's influxdb-client) and return its output."""
        if not Path(INFLUX).exists():
            raise RuntimeError(f"the influx CLI is not installed: {INSTALL_HINT}")
        u, p = user or self.admin
        done = subprocess.run(
            [INFLUX, "-host", "127.0.0.1", "-port", str(self.port), "-username", u,
             "-password", p, "-database", database, "-format", "json", "-precision", "ns",
             "-execute", statement], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"influx CLI failed ({done.returncode}): "
                               f"{done.stderr or done.stdout}")
        return done.stdout
