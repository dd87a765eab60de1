"""Login throttling: failed logins counted per account name and per client address, with a
lockout that grows, shared by every browser session of the dashboard process.

The rule (defaults; ``HIPSTRIDE_LOGIN_*`` change them, see :class:`Policy`): 5 failed logins
of one name within 5 minutes lock that name for 5 minutes; 20 from one address lock the
address. Each further lockout of the same name or address doubles (at most a day); a correct
password for a name forgets the name's lockouts. While a name or an address is locked no
password is checked at all, the right one included, and the answer is the same whether the
name is an account or not.

Every try is counted *before* its password is checked (and taken back when it was right), so
parallel tries from many browser tabs cannot all slip in before the first failure is counted.

The counts live in this process (a dict behind a lock): ``hipstride dashboard`` is one
Streamlit server process. Several processes behind a load balancer would each count on their
own. Behind a reverse proxy every browser has the proxy's address (docs/dashboard.md).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hipstride.config import ConfigError

__all__ = ["POLICY_ENV", "Policy", "Throttle", "Ticket", "locked_message", "shared"]

#: Environment variable -> Policy field.
POLICY_ENV = {
    "HIPSTRIDE_LOGIN_MAX_FAILURES": "max_failures",
    "HIPSTRIDE_LOGIN_ADDRESS_MAX_FAILURES": "address_max_failures",
    "HIPSTRIDE_LOGIN_WINDOW_S": "window_s",
    "HIPSTRIDE_LOGIN_LOCKOUT_S": "lockout_s",
    "HIPSTRIDE_LOGIN_MAX_LOCKOUT_S": "max_lockout_s",
}
MAX_KEY_CHARS = 200      # a name longer than any account still gets one record, not a new one
MAX_RECORDS = 20_000     # bounded memory whatever names and addresses are tried


@dataclass(frozen=True)
class Policy:
    """How many failures lock what, and for how long (seconds)."""

    max_failures: int = 5
    address_max_failures: int = 20
    window_s: float = 300.0
    lockout_s: float = 300.0
    max_lockout_s: float = 86_400.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Policy:
        """The policy with ``HIPSTRIDE_LOGIN_*`` overrides; :class:`ConfigError` naming the
        variable when one is not a positive number."""
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for name, attr in POLICY_ENV.items():
            raw = (environ.get(name) or "").strip()
            if not raw:
                continue
            whole = attr.endswith("failures")
            try:
                value = int(raw) if whole else float(raw)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                kind = "a whole number of failed logins" if whole else "seconds"
                raise ConfigError(f"{name}={raw!r} is not valid: use a positive number "
                                  f"({kind}), or unset it for the default.")
            values[attr] = value
        return cls(**values)

    def limit(self, kind: str) -> int:
        return self.address_max_failures if kind == "address" else self.max_failures


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    lockouts: int = 0


@dataclass(frozen=True)
class Ticket:
    """One counted try: report its outcome with :meth:`Throttle.succeeded` or
    :meth:`Throttle.failed`."""

    keys: tuple[tuple[str, str], ...]
    at: float


class Throttle:
    """Failure counts and lockouts by ``(kind, key)``: kind ``account`` or ``address``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Record] = {}

    def try_login(self, account: str, address: str, policy: Policy
                  ) -> tuple[Ticket | None, float]:
        """A ticket for one try, or ``(None, seconds)`` while the account or the address is
        locked (a try that would pass a limit starts the lockout)."""
        keys = (("account", account[:MAX_KEY_CHARS]), ("address", address[:MAX_KEY_CHARS]))
        with self._lock:
            now = self._clock()
            self._forget(now, policy)
            wait = 0.0
            for key in keys:
                record = self._records.setdefault(key, _Record())
                self._prune(record, now, policy)
                if record.locked_until <= now and len(record.failures) >= policy.limit(key[0]):
                    self._lock_out(record, now, policy)
                wait = max(wait, record.locked_until - now)
            if wait > 0:
                return None, wait
            for key in keys:
                self._records[key].failures.append(now)
            return Ticket(keys, now), 0.0

    def failed(self, ticket: Ticket, policy: Policy) -> None:
        """The try's password was wrong: lock what has reached its limit."""
        with self._lock:
            now = self._clock()
            for key in ticket.keys:
                record = self._records.get(key)
                if record is None:
                    continue
                self._prune(record, now, policy)
                if record.locked_until <= now and len(record.failures) >= policy.limit(key[0]):
                    self._lock_out(record, now, policy)

    def succeeded(self, ticket: Ticket) -> None:
        """The try was right: it is no failure, and the account's lockouts are forgotten
        (the address's are not: an attacker could clear them with an account of their own)."""
        with self._lock:
            for kind, key in ticket.keys:
                record = self._records.get((kind, key))
                if record is None:
                    continue
                if ticket.at in record.failures:
                    record.failures.remove(ticket.at)
                if kind == "account":
                    record.lockouts = 0
                    record.failures.clear()

    def locked_for(self, kind: str, key: str) -> float:
        """Seconds the key stays locked (0: not locked)."""
        with self._lock:
            record = self._records.get((kind, key[:MAX_KEY_CHARS]))
            return max(0.0, record.locked_until - self._clock()) if record else 0.0

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # --- inside the lock ---------------------------------------------------------------------
    @staticmethod
    def _prune(record: _Record, now: float, policy: Policy) -> None:
        record.failures = [t for t in record.failures if now - t < policy.window_s]
        if record.lockouts and now - record.locked_until > policy.max_lockout_s:
            record.lockouts = 0  # a day without a lockout: start again from the shortest

    @staticmethod
    def _lock_out(record: _Record, now: float, policy: Policy) -> None:
        record.locked_until = now + min(policy.lockout_s * 2 ** min(record.lockouts, 32),
                                        policy.max_lockout_s)
        record.lockouts += 1
        record.failures.clear()

    def _forget(self, now: float, policy: Policy) -> None:
        if len(self._records) < MAX_RECORDS:
            return
        for key, record in list(self._records.items()):
            self._prune(record, now, policy)
            if not record.failures and record.locked_until <= now and not record.lockouts:
                del self._records[key]
        while len(self._records) >= MAX_RECORDS:  # still full: the oldest entries go
            del self._records[next(iter(self._records))]


def locked_message(seconds: float) -> str:
    """The answer while locked: the same for every name, account or not."""
    minutes = math.ceil(seconds / 60)
    wait = (f"{math.ceil(seconds)} s" if seconds < 90
            else f"{minutes} minute{'s' if minutes != 1 else ''}")
    return (f"Too many failed logins for this name or from this address: logging in is paused "
            f"for about {wait}. Try again then, or ask the administrator.")


_SHARED = Throttle()


def shared() -> Throttle:
    """The process's throttle, shared by every browser session."""
    return _SHARED
