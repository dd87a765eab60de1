"""The broker's password and ACL files (Mosquitto 2.0), written by ``hipstride admin``.

- **Password file**: ``user:$7$<iterations>$<salt b64>$<hash b64>``, PBKDF2-SHA512 with a
  12-byte salt, exactly what ``mosquitto_passwd`` writes, made here with ``hashlib`` so adding a
  station needs no Mosquitto tools.
- **Two sets of files**, one per broker listener (deploy/mosquitto/mosquitto.conf):
  ``passwd``/``acl`` hold the station accounts (the stations' listener, where the broker
  makes the client id the user name), ``services.passwd``/``services.acl`` the pipeline,
  dashboard and operator accounts (the services' listener). docs/deployment.md.
- **ACL file**: one ``user`` block per account, its rights derived from :mod:`hipstride.topics`
  (the one place where topics are defined). A station's account is named like the station and
  may publish only under its own prefix and read only its own ``control`` topic. No topic line
  precedes the first ``user`` line, so an anonymous client (were one let in) gets nothing.

Files are replaced atomically with mode 0600, keeping the owner of the file they replace (so
the broker, which reads them as its own user, can still read them after a SIGHUP).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

from hipstride import names, topics
from hipstride.config import ConfigError, write_private

PIPELINE_USER = "pipeline"
DASHBOARD_USER = "dashboard"
SERVICE_USERS = (PIPELINE_USER, DASHBOARD_USER)
#: Every service client id starts with this (``hipstride-pipeline-0-of-1``, ``hipstride-
#: dashboard-…``, ``hipstride-session-…``); no station id may, so that a station, whose client
#: id the broker replaces by its user name, can never take over a service's session.
SERVICE_CLIENT_PREFIX = "hipstride-"
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's; passwords made here are 192-bit random tokens
_SALT_BYTES = 12

ACL_HEADER = """\
# HipStride broker ACL (Mosquitto 2.0 acl_file), written by `hipstride admin`.
# One `user` block per account; rights follow hipstride/topics.py and docs/deployment.md.
# No topic line stands before the first `user` line: anonymous clients get no rights.
"""


# --- passwords --------------------------------------------------------------------------------
def check_user(user: str) -> str:
    """A broker account name follows the station id rule (:data:`hipstride.names.STATION`;
    the service accounts do too), so no name can break the password file (``:``, a line
    break) or the ACL's ``user`` lines; ConfigError naming the rule otherwise."""
    try:
        return names.check(names.STATION, user)
    except names.BadName as err:
        raise ConfigError(f"broker account: {err}") from None


def new_password() -> str:
    """A random broker password (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, *, salt: bytes | None = None,
                   iterations: int = PBKDF2_ITERATIONS) -> str:
    """The ``$7$`` hash Mosquitto 2.0 checks: PBKDF2-SHA512 over the raw salt bytes."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def read_passwd(path: Path) -> dict[str, str]:
    """``{user: hash}`` from a Mosquitto password file (missing file: empty)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{path}:{number}: not a `user:hash` line")
        entries[user] = encoded
    return entries


def set_password(path: Path, user: str, password: str) -> None:
    """Add or replace one account in the password file."""
    check_user(user)
    entries = read_passwd(path)
    entries[user] = mosquitto_hash(password)
    write_private(path, "".join(f"{u}:{h}\n" for u, h in entries.items()))


# --- ACL --------------------------------------------------------------------------------------
def _kind(kind: str, station: str | None = None) -> str:
    return topics.subscription(kind, station)


def station_rights(station: str) -> list[str]:
    """A station publishes its frames, stream descriptions and status; reads its control
    and the pipeline's store confirmation of it (``stored``)."""
    topics.check_station(station)
    return [f"topic write {_kind(topics.FRAMES, station)}",
            f"topic write {_kind(topics.STREAMS, station)}",
            f"topic write {_kind(topics.STATUS, station)}",
            f"topic read {_kind(topics.CONTROL, station)}",
            f"topic read {_kind(topics.STORED, station)}"]


def pipeline_rights() -> list[str]:
    """Reads what every station sends (and control, to follow sessions); writes results;
    reads and writes the partitions' claims (one pipeline process per partition)."""
    reads = (topics.FRAMES, topics.STREAMS, topics.STATUS, topics.CONTROL)
    writes = (topics.LIVE, topics.CUES, topics.SESSION, topics.RESULTS, topics.INGEST,
              topics.STORED)
    return ([f"topic read {_kind(k)}" for k in reads]
            + [f"topic write {_kind(k)}" for k in writes]
            + [f"topic readwrite {topics.pipeline_claims()}"])


def operator_rights() -> list[str]:
    """An operator's CLI tools (``hipstride tap``, ``hipstride session``): read every
    station topic and the partitions' claims, send control commands."""
    return [f"topic read {topics.ROOT}/#", f"topic read {topics.pipeline_claims()}",
            f"topic write {_kind(topics.CONTROL)}"]


def dashboard_rights() -> list[str]:
    """Reads the pipeline's outputs and station status; writes control (start/stop/mark)."""
    reads = (topics.LIVE, topics.CUES, topics.SESSION, topics.STATUS, topics.RESULTS,
             topics.INGEST)
    return [f"topic read {_kind(k)}" for k in reads] + [f"topic write {_kind(topics.CONTROL)}"]


def read_acl(path: Path) -> dict[str, list[str]]:
    """``{user: [rule lines]}`` in file order; comments outside blocks are dropped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("user "):
            current = blocks.setdefault(line[5:].strip(), [])
        elif current is None:
            raise ConfigError(f"{path}:{number}: {line!r} stands before any `user` line and "
                              "would apply to anonymous clients; move it into a user block")
        else:
            current.append(line)
    return blocks


def render_acl(blocks: dict[str, list[str]]) -> str:
    parts = [ACL_HEADER]
    for user, rules in blocks.items():
        parts.append("\n" + "\n".join([f"user {user}", *rules]) + "\n")
    return "".join(parts)


def set_acl(path: Path, user: str, rules: list[str]) -> None:
    """Add or replace one user's block, keeping the others as they are."""
    check_user(user)
    blocks = read_acl(path)
    blocks[user] = rules
    write_private(path, render_acl(blocks))


def remove_account(passwd: Path, acl: Path, user: str) -> bool:
    """Drop ``user`` from a password file and an ACL (if there); whether anything changed."""
    entries, blocks = read_passwd(passwd), read_acl(acl)
    changed = False
    if entries.pop(user, None) is not None:
        write_private(passwd, "".join(f"{u}:{h}\n" for u, h in entries.items()))
        changed = True
    if blocks.pop(user, None) is not None:
        write_private(acl, render_acl(blocks))
        changed = True
    return changed
