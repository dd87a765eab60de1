"""Who may use the dashboard, and whose data they see.

Three ways to require a login, chosen from the configuration (first that applies):

- **OIDC** — ``.streamlit/secrets.toml`` has an ``[auth]`` section: Streamlit's ``st.login``
  (Google, Microsoft, Auth0, Okta …). The identity's e-mail must be an account name in the
  accounts file (``HIPSTRIDE_ACCOUNTS``), which gives its role and athletes.
- **Accounts** — ``HIPSTRIDE_ACCOUNTS`` names an accounts file (``hipstride admin
  add-athlete|add-coach``): name and password, checked by :class:`hipstride.accounts.Accounts`.
- **One password** — ``HIPSTRIDE_DASHBOARD_PASSWORD``, for a single clinic: whoever knows it
  sees everything.

Without any of them there is no login, which ``hipstride dashboard`` allows only on this
machine (loopback). An athlete sees only their own sessions, a coach the athletes assigned to
them, an admin (and the single clinic password) everyone.

The configuration checks (:func:`login_mode`) are pure and import no Streamlit, so the CLI can
use them; :func:`require` is the gate every page calls first.
"""

from __future__ import annotations

import hmac
import os
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import throttle
from .safe import md

__all__ = ["PASSWORD_ENV", "Access", "can_see", "current", "login_mode", "login_page", "require",
           "visible"]

PASSWORD_ENV = "HIPSTRIDE_DASHBOARD_PASSWORD"
ACCOUNTS_ENV = "HIPSTRIDE_ACCOUNTS"
MODES = ("oidc", "accounts", "password", "none")
_STATE_KEY = "hipstride_access"
FAILED_LOGIN_DELAY_S = 1.0


@dataclass(frozen=True)
class Access:
    """The logged-in user: ``athletes`` they may see (None = all), how they logged in."""

    user: str
    role: str
    athletes: frozenset[str] | None
    mode: str

    @property
    def everyone(self) -> bool:
        return self.athletes is None


#: Nobody has to log in (loopback only): everything is visible.
OPEN = Access("local user", "admin", None, "none")


# --- configuration (pure) ---------------------------------------------------------------------
def secrets_have_auth(paths: Iterable[Path]) -> bool:
    """True when one of the Streamlit secrets files has an ``[auth]`` table."""
    for path in paths:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data.get("auth"), dict):
            return True
    return False


def secrets_paths(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit reads secrets: the working directory's and the user's ``.streamlit``."""
    return [(cwd or Path.cwd()) / ".streamlit" / "secrets.toml",
            Path.home() / ".streamlit" / "secrets.toml"]


def login_mode(environ: Mapping[str, str] | None = None, *, oidc: bool | None = None) -> str:
    """``oidc``, ``accounts``, ``password`` or ``none`` (see the module docstring).

    ``oidc``: whether the secrets have an ``[auth]`` section (default: look at the files)."""
    environ = os.environ if environ is None else environ
    if oidc is None:
        oidc = secrets_have_auth(secrets_paths())
    if oidc:
        return "oidc"
    if environ.get(ACCOUNTS_ENV):
        return "accounts"
    if environ.get(PASSWORD_ENV):
        return "password"
    return "none"


def can_see(access: Access, athlete: str | None) -> bool:
    """Whether the user may see this athlete's data (sessions without an athlete: admins)."""
    return access.athletes is None or (athlete is not None and athlete in access.athletes)


def visible(items: Iterable[Any], access: Access, *, athlete: Any = None) -> list[Any]:
    """The items (sessions, by ``.athlete``; or athlete names) this user may see."""
    get = athlete or (lambda item: getattr(item, "athlete", item))
    return [item for item in items if can_see(access, get(item))]


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of the single clinic password."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def access_for(account: Any, accounts: Any, mode: str) -> Access:
    """An :class:`Access` from a :class:`hipstride.accounts.Account`."""
    return Access(account.name, account.role, accounts.visible_athletes(account), mode)


# --- the gate (Streamlit) ---------------------------------------------------------------------
def _accounts() -> Any:
    from hipstride.accounts import Accounts

    return Accounts.load(os.environ.get(ACCOUNTS_ENV))


def _oidc_access(st: Any) -> Access | None:
    user = st.user
    if not user.is_logged_in:
        st.title("HipStride", anchor=False)
        st.info("Athlete data is private: log in to continue.", icon=":material/lock:")
        st.button("Log in", on_click=st.login, type="primary", icon=":material/login:")
        return None
    email = str(user.get("email") or "")
    from hipstride.config import ConfigError

    try:
        accounts = _accounts()
    except ConfigError as err:
        st.error(f"**Logins are set up, but accounts are not.** {err}")
        return None
    account = accounts.get(email)
    if account is None:
        who = md(email) if email else "This identity"
        st.error(f"**{who} has no HipStride account.** Ask the administrator to add it with "
                 f"`hipstride admin add-coach` (or `add-athlete`) and the name {who}.")
        st.button("Log out", on_click=st.logout)
        return None
    return access_for(account, accounts, "oidc")


def _form_access(st: Any, mode: str) -> Access | None:
    from hipstride.config import ConfigError

    st.title("HipStride", anchor=False)
    st.info("Athlete data is private: log in to continue.", icon=":material/lock:")
    with st.form("login"):
        name = st.text_input("Name", key="login_name") if mode == "accounts" else ""
        password = st.text_input("Password", type="password", key="login_password")
        sent = st.form_submit_button("Log in", type="primary")
    if not sent:
        return None
    try:
        policy = throttle.Policy.from_env()
    except ConfigError as err:
        st.error(f"**Logins cannot be checked.** {err}")
        return None
    accounts = None
    if mode == "accounts":
        try:
            accounts = _accounts()
        except ConfigError as err:
            st.error(f"**The accounts file cannot be used.** {err}")
            return None
    name = name.strip() if mode == "accounts" else ""
    limiter = throttle.shared()
    ticket, wait_s = limiter.try_login(name, client_address(st), policy)
    if ticket is None:  # checked before the password: the right one is refused too
        st.error(throttle.locked_message(wait_s), icon=":material/lock_clock:")
        return None
    access = _check_password(accounts, mode, name, password)
    if access is not None:
        limiter.succeeded(ticket)
        return access
    limiter.failed(ticket, policy)
    time.sleep(FAILED_LOGIN_DELAY_S)  # slows guessing down
    st.error("Wrong name or password." if mode == "accounts" else "Wrong password.")
    return None


def _check_password(accounts: Any, mode: str, name: str, password: str) -> Access | None:
    """The access the password gives (the clinic's, or the account's), or None."""
    if mode == "password":
        if password_matches(password, os.environ.get(PASSWORD_ENV, "")):
            return Access("clinic", "admin", None, mode)
        return None
    account = accounts.verify(name, password)
    return None if account is None else access_for(account, accounts, mode)


def client_address(st: Any) -> str:
    """The browser's address as the server sees it (the TCP peer: behind a reverse proxy,
    the proxy's); ``local`` for this machine (Streamlit gives None for loopback)."""
    address = st.context.ip_address
    return str(address) if address else "local"


def current() -> Access | None:
    """The logged-in user's access, without drawing anything; None until someone logs in."""
    import streamlit as st

    mode = login_mode()
    if mode == "none":
        return OPEN
    known = st.session_state.get(_STATE_KEY)
    if not isinstance(known, Access) or known.mode != mode:
        return None
    if mode == "oidc" and not st.user.is_logged_in:  # logged out, or the cookie expired
        st.session_state.pop(_STATE_KEY, None)
        return None
    return known


def require() -> Access:
    """The current user's access; shows the login and stops the page until there is one."""
    import streamlit as st

    known = current()
    if known is not None:
        return known
    mode = login_mode()
    access = _oidc_access(st) if mode == "oidc" else _form_access(st, mode)
    if access is None:
        st.stop()
    st.session_state[_STATE_KEY] = access
    st.rerun()  # draw the app, with its pages, instead of the login
    return access  # not reached


def login_page() -> None:
    """The only page there is before the login (so not even page names show)."""
    require()


def logout_button(access: Access) -> None:
    """Who is logged in, and a way out (in the sidebar)."""
    import streamlit as st

    if access.mode == "none":
        return
    with st.sidebar:
        what = {"admin": "all athletes", "coach": "your athletes",
                "athlete": "your sessions"}.get(access.role, "")
        st.caption(f"Logged in as **{md(access.user)}** ({md(access.role)}: {what})")
        if access.mode == "oidc":
            st.button("Log out", on_click=st.logout, key="logout")
        elif st.button("Log out", key="logout"):
            st.session_state.pop(_STATE_KEY, None)
            st.rerun()
