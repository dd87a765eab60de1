"""Dashboard accounts: who may log in, with which role, and whose data each may see.

The file (JSON, or TOML for hand-written ones; its path in ``HIPSTRIDE_ACCOUNTS``) holds one
entry per account with a salted scrypt hash, never a password::

    {"version": 1, "accounts": [
      {"name": "ana", "role": "athlete", "athletes": ["ana"], "password": "scrypt$16384$8$1$…$…"}]}

Roles: ``admin`` sees every athlete, ``coach`` sees the athletes assigned to them, ``athlete``
sees only themself. ``hipstride admin add-athlete`` / ``add-coach`` write this file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hipstride import names
from hipstride.config import ConfigError, write_private

ROLES = ("admin", "coach", "athlete")
ACCOUNTS_ENV = "HIPSTRIDE_ACCOUNTS"
NAME = names.LOGIN.pattern  # whole names only: fullmatch (hipstride.names.LOGIN)
# scrypt cost: 16 MiB and ~50 ms per check, OWASP's minimum for interactive logins.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32


@dataclass(frozen=True)
class Account:
    name: str
    role: str  # "admin" | "coach" | "athlete"
    athletes: tuple[str, ...] = ()  # coach: assigned athletes; athlete: (own id,)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + (1 << 20), dklen=_KEY_BYTES)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (base64), so costs can rise without breaking old entries."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def accounts_path(path: str | Path | None = None) -> Path:
    """The explicit path, else ``HIPSTRIDE_ACCOUNTS``."""
    chosen = path if path not in (None, "") else os.environ.get(ACCOUNTS_ENV)
    if not chosen:
        raise ConfigError(f"no accounts file: set {ACCOUNTS_ENV} to its path (create it with "
                          f"`hipstride admin add-coach` or `add-athlete`)")
    return Path(chosen)


def _check_name(name: object, what: str, rule: names.Rule = names.LOGIN) -> str:
    """A login name (or, with ``rule=names.ATHLETE``, an athlete id as sessions name it),
    cleaned; ConfigError naming the rule (docs/protocol.md, "Names") otherwise."""
    why = names.problem(rule, name)
    if why is not None:
        raise ConfigError(f"{what} {name!r} is not valid: it {why}; {rule.text}")
    return names.check(rule, name)


def check_account(name: str, role: str, athletes=()) -> Account:
    """The account ``add`` would make, without a password: ConfigError naming the rule a
    name breaks (check before asking for a password)."""
    return Accounts._make(name, role, athletes)


class Accounts:
    """The set of dashboard accounts; load, change and save it atomically."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Account, str]] = {}
        self._decoy: str | None = None  # hash checked for unknown names: same time as a miss

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(account for account, _ in self._entries.values())

    def get(self, name: str) -> Account | None:
        entry = self._entries.get(name)
        return entry[0] if entry else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> Accounts:
        """Read a JSON or TOML accounts file (``None``: the path in ``HIPSTRIDE_ACCOUNTS``)."""
        path = accounts_path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"accounts file {path} does not exist: create it with "
                              f"`hipstride admin add-coach` or `add-athlete`") from None
        except OSError as err:
            raise ConfigError(f"accounts file {path} cannot be read: {err.strerror}") from None
        try:
            text = raw.decode("utf-8")
            data = (tomllib.loads(text) if path.suffix.lower() == ".toml"
                    else json.loads(text))
        except (UnicodeDecodeError, ValueError) as err:
            kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
            raise ConfigError(f"accounts file {path} is not valid {kind}: {err}") from None
        return cls._from_data(data, path)

    @classmethod
    def _from_data(cls, data: Any, path: Path) -> Accounts:
        entries = data.get("accounts") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(f"accounts file {path}: expected a list under \"accounts\"")
        accounts = cls()
        for i, entry in enumerate(entries):
            where = f"accounts file {path}, entry {i + 1}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected a table/object")
            try:
                name = _check_name(entry.get("name"), "name")
                role = entry.get("role")
                if role not in ROLES:
                    raise ConfigError(f"role {role!r}: expected one of {', '.join(ROLES)}")
                athletes = entry.get("athletes", [])
                if not isinstance(athletes, list):
                    raise ConfigError("athletes: expected a list of athlete ids")
                encoded = entry.get("password")
                if not isinstance(encoded, str) or not encoded.startswith("scrypt$"):
                    raise ConfigError("password: expected a scrypt hash written by "
                                      "`hipstride admin` (never a plain password)")
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            if name in accounts._entries:
                raise ConfigError(f"{where}: account {name!r} appears twice")
            account = accounts._make(name, role, athletes)
            accounts._entries[name] = (account, encoded)
        return accounts

    @staticmethod
    def _make(name: str, role: str, athletes: Any) -> Account:
        _check_name(name, "account name")
        if role not in ROLES:
            raise ConfigError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        ids = tuple(dict.fromkeys(_check_name(a, "athlete", names.ATHLETE)
                                  for a in athletes))
        if role == "athlete":
            ids = ids or (name,)
            if len(ids) != 1:
                raise ConfigError(f"athlete account {name!r} must map to exactly one athlete id")
        elif role == "admin":
            ids = ()
        return Account(name=name, role=role, athletes=ids)

    def add(self, name: str, role: str, password: str, athletes=()) -> Account:
        """Add the account, or replace the one of that name (new role, password, athletes)."""
        if not isinstance(password, str) or not password:
            raise ConfigError(f"account {name!r}: the password must not be empty")
        account = self._make(name, role, athletes)
        self._entries[name] = (account, hash_password(password))
        return account

    def remove(self, name: str) -> bool:
        return self._entries.pop(name, None) is not None

    def save(self, path: str | Path | None = None) -> None:
        """Write JSON atomically (temp file + rename), readable by the owner only (0600)."""
        path = accounts_path(path)
        data = {"version": 1, "accounts": [
            {"name": a.name, "role": a.role, "athletes": list(a.athletes), "password": encoded}
            for a, encoded in self._entries.values()]}
        write_private(path, json.dumps(data, indent=2) + "\n")

    def verify(self, name: str, password: str) -> Account | None:
        """The account if the password matches, else None (same cost for unknown names)."""
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None and self._decoy is None:
            self._decoy = hash_password(secrets.token_hex(16))
        encoded = entry[1] if entry else self._decoy
        ok = isinstance(password, str) and check_password(password, encoded)
        return entry[0] if ok and entry else None

    def visible_athletes(self, account: Account) -> frozenset[str] | None:
        """Athlete ids this account may see; None means all (admin)."""
        if account.role == "admin":
            return None
        return frozenset(account.athletes)
