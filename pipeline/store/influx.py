"""The InfluxDB store, through ``influxdb-client``: line protocol in, InfluxQL out.

- **Version first.** On first use the store asks ``/ping`` for ``X-Influxdb-Version`` and picks
  the write path: the v2 write API (``/api/v2/write``) for InfluxDB ≥ 1.8, 2.x and 3.x, the 1.x
  ``/write`` endpoint for older 1.x servers (Debian's 1.6.7), and the matching credentials:
  HTTP Basic ``USER:PASSWORD`` before 1.8, ``Token USER:PASSWORD`` on 1.8.x, ``Token TOKEN`` on
  2.x/3.x. After the server was unreachable the version is asked again (it may be upgraded).
- **Reads** are InfluxQL over ``/query`` (``epoch=ns``, chunked), which 1.x serves natively,
  2.x through its DBRP mapping and 3.x natively.
- **Writes** are synchronous, in batches of ``batch_size`` points, nanosecond precision; no
  background writer (it drops data on close and on errors). Connection errors, timeouts, 429
  and 5xx are retried with exponential backoff, then raise :class:`StoreUnavailable` — spool
  and resend, the writes are idempotent. On a write, 401/403 (credentials refused, no write
  access) and 404 (database or bucket missing, e.g. dropped) raise :class:`StoreUnavailable` at
  once, with its ``reason``: an outage to spool through, not a verdict on the batch. Any other
  4xx (400 bad line protocol, a field type conflict …) raises :class:`StoreRejected` with the
  server's message (retrying cannot help); so does every 4xx of a read (a configuration
  problem for whoever reads).
- **The database.** :meth:`InfluxStore.ensure_database` checks with an empty write that the
  database exists and the account may write to it; a missing 1.x database is created when
  allowed (``CREATE DATABASE``, an admin account), as Telegraf does; otherwise
  :class:`StoreSetupError` gives the statements (or the ``influx bucket create`` command for
  2.x) to run.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from .base import (
    Measurement,
    Point,
    PointSeries,
    Store,
    StoreRejected,
    StoreSetupError,
    StoreUnavailable,
)

__all__ = ["InfluxStore", "encode_line", "encode_lines", "influxql_ident", "influxql_string",
           "parse_version"]

T = TypeVar("T")

# --- line protocol ------------------------------------------------------------------------------
_ESC_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_ESC_KEY = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


def _field_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    # a string field: backslash and quote escaped (InfluxDB unescapes both, so any text,
    # a trailing backslash or a line break included, reads back exactly)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tag_value(key: str, value: str) -> str:
    """A tag value in line protocol: ``,``, space and ``=`` escaped; a backslash stays as it
    is (InfluxDB 1.x reads it literally, also before an escaped character). A value that
    ends in a backslash or holds a line break has no spelling InfluxDB reads back: refused
    before the request, naming the tag (the name rules keep such names out of the pipeline:
    docs/protocol.md, "Names") — not a bare HTTP 400 for the whole batch."""
    if value.endswith("\\") or "\n" in value or "\r" in value:
        raise StoreRejected(f"tag {key}={value!r} cannot be written to InfluxDB: a tag value "
                            "may not end with a backslash or hold a line break (see the name "
                            "rules in docs/protocol.md, \"Names\")")
    return value.translate(_ESC_KEY)


def _series_key(m: Measurement, tags: Mapping[str, str]) -> str:
    """Measurement and tags (sorted): the start of every line of one series."""
    parts = [m.name.translate(_ESC_MEASUREMENT)]
    for key in sorted(tags):
        parts.append(f"{key.translate(_ESC_KEY)}={_tag_value(key, tags[key])}")
    return ",".join(parts)


def encode_line(point: Point) -> str:
    """One point as a line of InfluxDB line protocol (keys sorted, time in ns)."""
    fields = ",".join(f"{k.translate(_ESC_KEY)}={_field_value(v)}"
                      for k, v in sorted(point.fields.items()))
    return f"{_series_key(point.measurement, point.tags)} {fields} {point.time_ns}"


def encode_lines(items: Sequence[Point | PointSeries]) -> list[str]:
    """Points and series as lines; a series' lines are the ones its points would give
    (the key is built once, each value is ``repr`` of the float as for a point)."""
    lines: list[str] = []
    for item in items:
        if isinstance(item, PointSeries):
            prefix = (f"{_series_key(item.measurement, item.tags)} "
                      f"{item.field.translate(_ESC_KEY)}=")
            lines += [f"{prefix}{v!r} {t}" for t, v in
                      zip(item.time_ns.tolist(), item.values.tolist(), strict=True)]
        else:
            lines.append(encode_line(item))
    return lines


# --- InfluxQL -----------------------------------------------------------------------------------
def influxql_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influxql_string(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _influxql_where(where: Mapping[str, str | Sequence[str]], start_ns: int | None,
                    end_ns: int | None) -> str:
    terms = []
    for tag, value in where.items():
        values = [value] if isinstance(value, str) else list(value)
        alts = [f"{influxql_ident(tag)} = {influxql_string(v)}" for v in values]
        terms.append(alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")")
    if start_ns is not None:
        terms.append(f"time >= {int(start_ns)}")
    if end_ns is not None:
        terms.append(f"time < {int(end_ns)}")
    return (" WHERE " + " AND ".join(terms)) if terms else ""


def parse_version(header: str | None) -> tuple[int, int, int] | None:
    """``"1.6.7~rc0"``, ``"v2.7.11"``, ``"3.0.1"`` → (major, minor, patch); None if absent."""
    match = re.match(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", (header or "").strip())
    if not match:
        return None
    return tuple(int(g or 0) for g in match.groups())  # type: ignore[return-value]


_MISSING = re.compile(r"(database|bucket)\b.*not found", re.IGNORECASE)


def _outage_reason(err: ApiException) -> str:
    """StoreUnavailable's reason for a 401, 403 or 404."""
    if err.status in (401, 403):
        return "unauthorized"
    body = err.body.decode(errors="replace") if isinstance(err.body, bytes) else err.body
    return "database_missing" if _MISSING.search(body or "") else "not_found"


def uses_v2_write(version: tuple[int, int, int] | None) -> bool:
    """The v2 write API exists from 1.8 on; a server that does not say is taken as modern."""
    return version is None or version >= (1, 8, 0)


# --- the store ----------------------------------------------------------------------------------
class InfluxStore(Store):
    """The store in an InfluxDB database.

    Parameters
    ----------
    url : str
        ``http://host:port`` or ``https://host:port``.
    database : str
        1.x database (2.x: bucket name for writes, DBRP-mapped database for reads; 3.x database).
    username, token : str, optional
        1.x user and password; 2.x/3.x: the token (``username`` is then ignored).
    retention_policy : str, optional
        1.x retention policy; default: the database's default.
    org : str
        2.x organisation for v2 writes (1.8 and 3.x ignore it).
    timeout_s : float
        Per HTTP request.
    retries, backoff_s : int, float
        Retries of a failing request; waits ``backoff_s · 2**k`` (at most 5 s) between them.
    batch_size : int
        Points per write request.
    verify_ssl, ssl_ca_cert : bool, str
        TLS checks for ``https://``.
    """

    kind = "influx"

    def __init__(self, url: str, database: str, *, username: str | None = None,
                 token: str | None = None, retention_policy: str | None = None,
                 org: str = "-", timeout_s: float = 5.0, retries: int = 3,
                 backoff_s: float = 0.1, batch_size: int = 5000, verify_ssl: bool = True,
                 ssl_ca_cert: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.username = username
        self._token = token
        self.retention_policy = retention_policy
        self.org = org
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.batch_size = batch_size
        self._tls = {"verify_ssl": verify_ssl, "ssl_ca_cert": ssl_ca_cert}
        self._client: InfluxDBClient | None = None
        self._lock = threading.RLock()
        self._version: str | None = None
        self._v2 = False

    def __repr__(self) -> str:  # never the token
        return f"InfluxStore({self.url!r}, {self.database!r}, username={self.username!r})"

    # --- connection -------------------------------------------------------------------------
    def _new_client(self, token: str | None = None, basic: bool = False) -> InfluxDBClient:
        return InfluxDBClient(self.url, token=token, org=self.org, auth_basic=basic,
                              timeout=int(self.timeout_s * 1000), **self._tls)

    def _auth(self, version: tuple[int, int, int] | None) -> tuple[str | None, bool]:
        """(token for the client, Basic?) for this server version."""
        if not self._token and not self.username:
            return None, False
        if version is not None and version[0] == 1:
            credentials = f"{self.username or ''}:{self._token or ''}"
            return credentials, version < (1, 8, 0)
        return self._token, False

    def _probe(self) -> str:
        """``X-Influxdb-Version`` from ``/ping`` (no credentials needed), with retries."""
        probe = self._new_client()
        try:
            _, _, headers = self._call(lambda: probe.api_client.call_api(
                "/ping", "GET", auth_settings=[], _return_http_data_only=False,
                _preload_content=True, response_type=None))
        finally:
            probe.close()
        found = {k.lower(): v for k, v in dict(headers).items()}
        return found.get("x-influxdb-version", "")

    def _connect(self) -> InfluxDBClient:
        with self._lock:
            if self._client is None:
                self._version = self._probe()
                parsed = parse_version(self._version)
                token, basic = self._auth(parsed)
                self._v2 = uses_v2_write(parsed)
                self._client = self._new_client(token, basic)
            return self._client

    def _call(self, fn: Callable[[], T], *, write: bool = False) -> T:
        """Run one HTTP request with retries; map failures to the store's errors (``write``:
        401/403/404 are an outage, see the module docstring)."""
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(5.0, self.backoff_s * 2 ** (attempt - 1)))
            try:
                return fn()
            except ApiException as err:
                status = err.status or 0
                if write and status in (401, 403, 404):  # an outage, not the batch's fault
                    raise StoreUnavailable(self._message(err), _outage_reason(err)) from None
                if status and status < 500 and status not in (408, 429):
                    raise StoreRejected(self._message(err), status) from None
                if not status and "SSLError" in str(err.reason):  # a TLS setup problem
                    raise StoreRejected(f"InfluxDB at {self.url}: TLS: {err.reason}") from None
                reason = self._message(err)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                reason = f"{type(err).__name__}: {err}"
        if self._client is not None:  # ask the version again once it is back
            self._client.close()
            self._client = None
        raise StoreUnavailable(f"InfluxDB at {self.url} unavailable after "
                               f"{self.retries + 1} attempts: {reason}")

    def _message(self, err: ApiException) -> str:
        body = err.body.decode(errors="replace") if isinstance(err.body, bytes) else err.body
        try:
            detail = json.loads(body or "{}")
            text = detail.get("error") or detail.get("message") or body
        except (ValueError, AttributeError):
            text = body or err.reason or ""
        what = {401: "authentication failed", 403: "not authorised"}.get(err.status, "")
        prefix = f"InfluxDB at {self.url} ({self.database})"
        return f"{prefix}: HTTP {err.status} {what + ': ' if what else ''}{text}".strip()

    # --- backend ----------------------------------------------------------------------------
    def _write(self, points: Sequence[Point | PointSeries]) -> None:
        client = self._connect()
        lines = encode_lines(points)
        for i in range(0, len(lines), self.batch_size):
            body = "\n".join(lines[i:i + self.batch_size]).encode()
            if self._v2:
                self._write_v2(client, body)
            else:
                self._write_v1(client, body)

    def _write_v1(self, client: InfluxDBClient, body: bytes) -> None:
        """POST /write?db=…&precision=ns (InfluxDB 1.x before 1.8)."""
        params = [("db", self.database), ("precision", "ns")]
        if self.retention_policy:
            params.append(("rp", self.retention_policy))
        self._call(lambda: client.api_client.call_api(
            "/write", "POST", query_params=params, body=body, auth_settings=[],
            header_params={"Content-Type": "text/plain; charset=utf-8"},
            _return_http_data_only=True, _preload_content=True, response_type=None),
            write=True)

    def bucket(self) -> str:
        """The v2 bucket: ``database/retention_policy`` or the database."""
        if self.retention_policy:
            return f"{self.database}/{self.retention_policy}"
        return self.database

    def _write_v2(self, client: InfluxDBClient, body: bytes) -> None:
        """POST /api/v2/write?bucket=…&org=…&precision=ns (InfluxDB ≥ 1.8, 2.x, 3.x)."""
        writer = client.write_api(write_options=SYNCHRONOUS)
        self._call(lambda: writer.write(bucket=self.bucket(), org=self.org, record=body,
                                        write_precision=WritePrecision.NS), write=True)

    def query(self, q: str, *, method: str = "GET") -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series (``name``, ``tags``, ``columns``, ``values``)."""
        client = self._connect()
        params = [("db", self.database), ("q", q), ("epoch", "ns"), ("chunked", "true"),
                  ("chunk_size", "10000")]
        if self.retention_policy:
            params.append(("rp", self.retention_policy))
        response = self._call(lambda: client.api_client.call_api(
            "/query", method, query_params=params, auth_settings=[],
            _return_http_data_only=True, _preload_content=False, response_type=None))
        try:
            data = response.data
        finally:
            response.release_conn()
        series: list[dict[str, Any]] = []
        for line in data.decode().splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            if doc.get("error"):
                raise StoreRejected(f"InfluxDB at {self.url} ({self.database}): {doc['error']}")
            for result in doc.get("results", []):
                if result.get("error"):
                    raise StoreRejected(f"InfluxDB at {self.url} ({self.database}): "
                                        f"{result['error']} [{q}]")
                series += result.get("series", [])
        return series

    def _select(self, m: Measurement, where: Mapping[str, str | Sequence[str]],
                start_ns: int | None = None, end_ns: int | None = None) -> list[dict[str, Any]]:
        q = f"SELECT * FROM {influxql_ident(m.name)}{_influxql_where(where, start_ns, end_ns)}"
        out = []
        for s in self.query(q):
            cols = s["columns"]
            for values in s["values"]:
                row = dict.fromkeys((*m.tags, *m.fields))
                row.update({k: v for k, v in zip(cols, values, strict=True)
                            if k in row or k == "time"})
                for tag in m.tags:
                    if row[tag] == "":
                        row[tag] = None
                for f, kind in m.fields.items():  # JSON has one number type
                    if kind is float and isinstance(row[f], int):
                        row[f] = float(row[f])
                out.append(row)
        return out

    def _sum(self, m: Measurement, value: str, by: tuple[str, ...],
             where: Mapping[str, str | Sequence[str]], start_ns: int | None = None,
             end_ns: int | None = None) -> dict[tuple[str, ...], tuple[int, int]]:
        v = influxql_ident(value)
        q = (f"SELECT count({v}), sum({v}) FROM {influxql_ident(m.name)}"
             f"{_influxql_where(where, start_ns, end_ns)} "
             f"GROUP BY {', '.join(map(influxql_ident, by))}")
        out = {}
        for s in self.query(q):
            tags = s.get("tags") or {}
            for _, count, total in s["values"]:
                out[tuple(tags.get(t, "") for t in by)] = (int(count or 0), int(total or 0))
        return out

    # --- service ----------------------------------------------------------------------------
    def create_database(self) -> None:
        """``CREATE DATABASE`` (1.x; needs an admin user; a no-op when it exists)."""
        self.query(f"CREATE DATABASE {influxql_ident(self.database)}", method="POST")

    def ensure_database(self, *, create: bool = True) -> str:
        """See :meth:`Store.ensure_database`: an empty write tells whether the database exists
        and the account may write to it (InfluxDB checks both before reading the body)."""
        try:
            self._probe_write()
            return "exists"
        except StoreUnavailable as err:
            if err.reason == "unauthorized":
                raise StoreSetupError(f"{err}; {self.setup_hint()}") from None
            if err.reason != "database_missing":
                raise
        if not create or self.server_major() >= 2:
            raise StoreSetupError(self._missing_message(
                "" if create else "the pipeline does not create it (create_database = false)"))
        try:
            self.create_database()
        except StoreRejected as err:
            if err.status not in (401, 403):
                raise
            raise StoreSetupError(self._missing_message(
                f"{self.username or 'this account'} may not create it ({err})")) from None
        try:
            self._probe_write()
        except StoreUnavailable as err:
            if err.reason != "unauthorized":
                raise
            raise StoreSetupError(f"{err}; {self.setup_hint()}") from None
        return "created"

    def _probe_write(self) -> None:
        """An empty write: 204 when the database exists and the account may write to it.
        A 400 (a server that wants points) got past those checks too."""
        client = self._connect()
        try:
            if self._v2:
                params = [("org", self.org), ("bucket", self.bucket()), ("precision", "ns")]
                self._call(lambda: client.api_client.call_api(
                    "/api/v2/write", "POST", query_params=params, body=b"", auth_settings=[],
                    header_params={"Content-Type": "text/plain; charset=utf-8"},
                    _return_http_data_only=True, _preload_content=True, response_type=None),
                    write=True)
            else:
                self._write_v1(client, b"")
        except StoreRejected:
            pass

    def server_major(self) -> int:
        """The server's major version (1 when it does not say)."""
        self._connect()
        parsed = parse_version(self._version)
        return parsed[0] if parsed else 1

    def setup_hint(self) -> str:
        """What an administrator runs so that this store can be written to."""
        if self.server_major() >= 2:
            return (f"create the bucket with: influx bucket create --name {self.bucket()} "
                    f"--org {self.org}, and give the token write access to it")
        db = influxql_ident(self.database)
        statements = [f"CREATE DATABASE {db}"]
        if self.username:
            statements.append(f"GRANT ALL ON {db} TO {influxql_ident(self.username)}")
        return ("as an InfluxDB admin run: " + "; ".join(statements)
                + f" (e.g. influx -host HOST -username ADMIN -execute '{statements[0]}')")

    def _missing_message(self, why: str) -> str:
        what = (f"bucket {self.bucket()!r} of org {self.org!r}" if self.server_major() >= 2
                else f"database {self.database!r}")
        return (f"InfluxDB at {self.url} has no {what}" + (f"; {why}" if why else "")
                + f"; {self.setup_hint()}")

    def ping(self) -> bool:
        try:
            self._probe()
            return True
        except StoreUnavailable:
            return False

    def version(self) -> str:
        self._connect()
        return self._version or ""

    @property
    def write_api(self) -> str:
        """``"v2"`` or ``"v1"``: the write path chosen from the server's version."""
        self._connect()
        return "v2" if self._v2 else "v1"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
