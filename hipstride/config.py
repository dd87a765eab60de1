"""Configuration plumbing shared by every component: TOML files, environment, broker URLs.

Precedence, lowest first: built-in defaults, the TOML file (``--config``), environment
variables (``HIPSTRIDE_*``), command-line flags. Every problem is a :class:`ConfigError` whose
message names the field (``[spool] capacity_mb``), what was found and what is expected.
Secrets never live in the file itself: passwords come from ``HIPSTRIDE_*_PASSWORD`` or a
``*_password_file``; files that hold them are written with :func:`write_private`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with a message that names the field and what to do."""


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


class Section:
    """Typed reads from one table of a TOML file, with errors that name the field.

    ``Section(data, "spool").number("capacity_mb", default=512, minimum=1)``
    """

    def __init__(self, data: Mapping[str, Any] | None, name: str) -> None:
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"[{name}] must be a table, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data or {}
        self.name = name

    def where(self, key: str) -> str:
        return f"[{self.name}] {key}" if self.name else key

    def _get(self, key: str, default: T) -> Any:
        return self.data.get(key, default)

    def fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: expected {expected}, got {self.data.get(key)!r}")

    def string(self, key: str, default: str | None = None, *, choices: tuple[str, ...] = ()
               ) -> str | None:
        value = self._get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "a string")
        if choices and value not in choices:
            raise self.fail(key, "one of " + ", ".join(repr(c) for c in choices))
        return value

    def number(self, key: str, default: float | None = None, *, minimum: float | None = None,
               maximum: float | None = None, integer: bool = False) -> float | None:
        value = self._get(key, default)
        if value is None:
            return None
        kind = "a whole number" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, kind)
        if integer and not float(value).is_integer():
            raise self.fail(key, kind)
        if minimum is not None and value < minimum:
            raise self.fail(key, f"{kind} >= {minimum}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"{kind} <= {maximum}")
        return int(value) if integer else float(value)

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        value = self._get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def table(self, key: str) -> Section:
        return Section(self.data.get(key), f"{self.name}.{key}" if self.name else key)

    def tables(self, key: str) -> list[Section]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "an array of tables ([[...]])")
        return [Section(item, f"{self.name}.{key}[{i}]" if self.name else f"{key}[{i}]")
                for i, item in enumerate(value)]

    def convert(self, key: str, default: Any, parse: Callable[[Any], T], expected: str) -> T:
        value = self._get(key, default)
        try:
            return parse(value)
        except (TypeError, ValueError):
            raise self.fail(key, expected) from None

    def unknown_keys(self, known: set[str]) -> None:
        """Reject misspelt keys rather than silently ignoring them."""
        extra = sorted(set(self.data) - known)
        if extra:
            raise ConfigError(f"[{self.name}]: unknown setting(s) {', '.join(extra)}; known: "
                              + ", ".join(sorted(known)))


def write_private(path: str | Path, text: str) -> None:
    """Replace ``path`` atomically (temp file, fsync, rename), mode 0600, keeping the previous
    file's owner when run as root (so a service reading it as its own user still can)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        previous = path.stat()
    except FileNotFoundError:
        previous = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        if previous is not None and os.geteuid() == 0:
            os.fchown(fd, previous.st_uid, previous.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def port_number(text: str) -> int:
    """A ``--port`` flag's value (argparse ``type=``): a whole number in 1..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1..65535")
    return port


def env(name: str, default: str | None = None) -> str | None:
    """Read ``HIPSTRIDE_<NAME>``; empty counts as unset."""
    value = os.environ.get(f"HIPSTRIDE_{name}")
    return value if value else default


def read_secret(direct_env: str, file_path: str | None, what: str) -> str | None:
    """A secret from ``HIPSTRIDE_<direct_env>`` or from a file (first line), never logged."""
    value = env(direct_env)
    if value:
        return value
    if file_path:
        try:
            return Path(file_path).read_text().splitlines()[0].strip() if Path(
                file_path).stat().st_size else ""
        except OSError as err:
            raise ConfigError(f"{what}: cannot read password file {file_path}: "
                              f"{err.strerror}") from None
    return None


@dataclass(frozen=True)
class BrokerURL:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` (TLS). Port 1883 / 8883."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        hint = "expected mqtt://[user@]host[:port] or mqtts://[user@]host[:port]"
        if "://" not in url:
            url = "mqtt://" + url
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise ConfigError(f"broker URL {url!r}: {err}; {hint}") from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"broker URL {url!r}: scheme {parts.scheme!r} unknown; {hint}")
        if not parts.hostname:
            raise ConfigError(f"broker URL {url!r} has no host; {hint}")
        if parts.path not in ("", "/"):
            raise ConfigError(f"broker URL {url!r} must not have a path; {hint}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def redacted(self) -> str:
        """The URL for logs and messages: never the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
