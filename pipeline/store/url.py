"""``--store`` URLs: ``influx[s]://[USER[:TOKEN]@]HOST[:PORT]/DATABASE[/RP][?org=ORG]`` and
``sqlite:///PATH``.

The token (1.x: the user's password; 2.x/3.x: an API token) may sit in the URL, but is better
kept out of command lines: it is read from ``HIPSTRIDE_STORE_TOKEN`` or from the first line of
a token file when the URL has none. Every problem is a :class:`ConfigError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from hipstride.config import ConfigError, read_secret

from .base import Store

__all__ = ["StoreURL", "open_store"]

DEFAULT_INFLUX_PORT = 8086
_HINT = ("expected influx://[USER[:TOKEN]@]HOST[:PORT]/DATABASE, influxs://… (TLS) or "
         "sqlite:///PATH")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL (``token`` is never shown in ``repr``)."""

    kind: str  # "influx" or "sqlite"
    path: str | None = None
    host: str | None = None
    port: int | None = None
    tls: bool = False
    database: str | None = None
    retention_policy: str | None = None
    org: str = "-"
    username: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @classmethod
    def parse(cls, url: str, *, token_file: str | None = None, what: str = "--store"
              ) -> StoreURL:
        """Parse ``url``; a missing token comes from ``HIPSTRIDE_STORE_TOKEN`` or
        ``token_file``."""
        if not url or "://" not in url:
            raise ConfigError(f"{what}: {url!r} is not a store URL; {_HINT}")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            return cls._sqlite(url, parts.netloc, parts.path, what)
        if scheme not in ("influx", "influxs"):
            raise ConfigError(f"{what}: unknown store scheme {parts.scheme!r}; {_HINT}")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{what}: port in {_redact(url)} is not a number in 1..65535"
                              ) from None
        if not parts.hostname:
            raise ConfigError(f"{what}: no host in {_redact(url)}; {_HINT}")
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if not segments:
            raise ConfigError(f"{what}: no database in {_redact(url)} (add /DATABASE); {_HINT}")
        if len(segments) > 2:
            raise ConfigError(f"{what}: path {parts.path!r} has more than DATABASE/RP")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"org"}
        if unknown:
            raise ConfigError(f"{what}: unknown option(s) {', '.join(sorted(unknown))}; "
                              "known: org")
        username = unquote(parts.username) if parts.username else None
        token = unquote(parts.password) if parts.password is not None else None
        if not token:
            token = read_secret("STORE_TOKEN", token_file, f"{what} token") or None
        if username and not token:
            raise ConfigError(f"{what}: user {username!r} but no token: put it in "
                              "HIPSTRIDE_STORE_TOKEN or a token file (or USER:TOKEN@ in the URL)")
        return cls(kind="influx", host=parts.hostname, port=port or DEFAULT_INFLUX_PORT,
                   tls=scheme == "influxs", database=segments[0],
                   retention_policy=segments[1] if len(segments) > 1 else None,
                   org=options.get("org", "-"), username=username, token=token)

    @classmethod
    def _sqlite(cls, url: str, netloc: str, path: str, what: str) -> StoreURL:
        if netloc:
            raise ConfigError(f"{what}: {url!r} has a host; a SQLite store is a local file: "
                              "sqlite:///relative/or/absolute/path (three slashes)")
        path = unquote(path)
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:]  # sqlite:///data/x.db → data/x.db; sqlite:////abs/x.db → /abs/x.db
        elif path.startswith("//"):
            path = path[1:]
        if not path or path.endswith("/"):
            raise ConfigError(f"{what}: {url!r} names no file; expected sqlite:///PATH")
        if path != ":memory:" and Path(path).is_dir():
            raise ConfigError(f"{what}: {path} is a directory, not a database file")
        return cls(kind="sqlite", path=path)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_store(url: str | StoreURL, *, token_file: str | None = None, timeout_s: float = 5.0,
               ssl_ca_cert: str | None = None) -> Store:
    """The store a URL names. Nothing is contacted yet: an InfluxDB that is down shows up as
    :class:`~.base.StoreUnavailable` on the first write or read."""
    parsed = url if isinstance(url, StoreURL) else StoreURL.parse(url, token_file=token_file)
    if parsed.kind == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore(parsed.path)
    from .influx import InfluxStore

    return InfluxStore(parsed.http_url, parsed.database, username=parsed.username,
                       token=parsed.token, retention_policy=parsed.retention_policy,
                       org=parsed.org, timeout_s=timeout_s, ssl_ca_cert=ssl_ca_cert)
