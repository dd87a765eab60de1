"""The docker-compose deployment, as the tests can run it without Docker.

- :func:`load_compose` parses ``docker-compose.yml``; :func:`interpolate` does Compose's
  ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` against an env file.
- :func:`make_site` is what an operator does: copy ``.env.example`` to ``.env`` in a fresh
  deployment directory and run the real ``hipstride admin init`` / ``add-station`` there.
- :class:`ComposeMosquitto` starts Debian's Mosquitto with ``deploy/mosquitto/mosquitto.conf``
  itself. Container paths are translated to host paths through the compose file's own volume
  list (bind mounts to their source, named volumes to a temp folder). The only other changes:
  ``listener 1883`` (stations) and ``listener 1884`` (services) become ``listener <free port>
  127.0.0.1`` (:attr:`port`, :attr:`services_port`), ``log_dest stdout`` becomes a
  log file, and ``user root`` is appended when the tests run as root (Mosquitto would drop to
  user ``mosquitto``, which cannot enter the test's private temp folder; in the container the
  image's entrypoint gives /mosquitto to that user instead).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.mosquitto import Mosquitto, free_port
from tests.support.pipeline import clean_env

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SITE = "./deploy/site/"  # compose sources under here are written by `hipstride admin`

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def load_compose() -> dict[str, Any]:
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def referenced_variables(text: str) -> set[str]:
    return {m.group(1) or m.group(4) for m in _VAR.finditer(text) if m.group(0) != "$$"}


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose variable substitution, recursively; a ``:?`` variable unset raises."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        found = env.get(name)
        if op in (":-", "-"):
            return found if found or (op == "-" and found is not None) else arg
        if op in (":?", "?") and not found:
            raise KeyError(f"{name}: {arg}")
        return found or ""

    return _VAR.sub(one, value)


def hipstride(*args: str, cwd: Path, env: dict[str, str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hipstride.cli", *args], cwd=cwd,
                          env=env or clean_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"hipstride {' '.join(args)} -> {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def make_site(root: Path, stations: tuple[str, ...] = ("tm1", "tm2")) -> dict[str, str]:
    """A deployment folder as an operator makes it; returns its .env values."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".env").write_text(ENV_EXAMPLE.read_text())
    hipstride("admin", "init", cwd=root)
    for station in stations:
        hipstride("admin", "add-station", station, "--password-out",
                  f"{station}.password", cwd=root)
    return read_env_file(root / ".env")


def station_password(root: Path, station: str) -> str:
    return (root / f"{station}.password").read_text().strip()


def volume_map(service: dict[str, Any], site: Path, volumes_root: Path) -> dict[str, Path]:
    """Container path -> host path, from a service's ``volumes`` list."""
    mapping = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source.startswith("./"):
            host = (site if source.startswith(SITE) else REPO) / source[2:]
        else:
            host = volumes_root / source
            host.mkdir(parents=True, exist_ok=True)
        mapping[target] = host
    return mapping


def to_host(text: str, mapping: dict[str, Path]) -> str:
    """Replace container paths (longest first) by their host paths."""
    for target in sorted(mapping, key=len, reverse=True):
        text = text.replace(target, str(mapping[target]))
    return text


class ComposeMosquitto(Mosquitto):
    """Debian's Mosquitto running the compose service's configuration (see module doc)."""

    def __init__(self, workdir: Path, site: Path, *, conf_d: Path | None = None) -> None:
        service = load_compose()["services"]["mosquitto"]
        self.workdir, self.users, self.proc = workdir, {}, None
        self.tls_port, self.ca_file = None, None
        self.port = free_port()  # the stations' listener
        self.services_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        mapping = volume_map(service, site, workdir / "volumes")
        if conf_d is not None:
            mapping["/mosquitto/config/conf.d"] = conf_d
        self.mapping = mapping
        source = mapping["/mosquitto/config/mosquitto.conf"].read_text()
        text = to_host(source, mapping)
        text, n = re.subn(r"^listener 1883$", f"listener {self.port} 127.0.0.1", text,
                          flags=re.M)
        assert n == 1, "mosquitto.conf must have exactly one `listener 1883`"
        text, n = re.subn(r"^listener 1884$", f"listener {self.services_port} 127.0.0.1", text,
                          flags=re.M)
        assert n == 1, "mosquitto.conf must have exactly one `listener 1884`"
        text = text.replace("log_dest stdout", f"log_dest file {workdir}/mosquitto.log")
        if os.geteuid() == 0:
            text += "user root\n"
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(text)

    def services_url_for(self, user: str) -> str:
        return f"mqtt://{user}@127.0.0.1:{self.services_port}"

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text() if path.exists() else ""
