"""Login throttling (dashboard/throttle.py): failures per name and per address, lockouts that
grow, tries counted before the password is checked (so parallel tries cannot slip in), and
the login form in front of a page refusing even the right password while locked (AppTest)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride.accounts import Accounts
from hipstride.config import ConfigError
from hipstride.dashboard import data, throttle
from hipstride.dashboard.throttle import Policy, Throttle
from tests.support.pipeline import clean_env

REVIEW = Path(data.__file__).parent / "views" / "review.py"
POLICY = Policy(max_failures=5, address_max_failures=8, window_s=300, lockout_s=300,
                max_lockout_s=3600)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(t: Throttle, name: str, address: str = "10.0.0.1") -> float:
    """One wrong try; the seconds locked when it was refused (0 when it was counted)."""
    ticket, wait = t.try_login(name, address, POLICY)
    if ticket is not None:
        t.failed(ticket, POLICY)
    return wait


def test_five_failures_lock_the_name_and_a_right_password_is_refused_then():
    clock = Clock()
    t = Throttle(clock)
    assert [fail(t, "anna") for _ in range(5)] == [0.0] * 5
    assert t.locked_for("account", "anna") == pytest.approx(300)
    ticket, wait = t.try_login("anna", "10.0.0.2", POLICY)  # another address: the name is locked
    assert ticket is None and wait == pytest.approx(300)
    assert fail(t, "ben", "10.0.0.2") == 0.0  # other names are not
    clock.now += 301
    ticket, _ = t.try_login("anna", "10.0.0.2", POLICY)
    assert ticket is not None
    t.succeeded(ticket)
    assert t.locked_for("account", "anna") == 0


def test_lockouts_double_and_a_success_forgets_them():
    clock = Clock()
    t = Throttle(clock)
    lengths = []
    for _ in range(4):
        for _ in range(5):
            fail(t, "anna", "10.0.0.9")
        lengths.append(t.locked_for("account", "anna"))
        clock.now += lengths[-1] + 1
    assert lengths == pytest.approx([300, 600, 1200, 2400])
    ticket, _ = t.try_login("anna", "10.0.0.9", POLICY)
    t.succeeded(ticket)
    for _ in range(5):
        fail(t, "anna", "10.0.0.9")
    assert t.locked_for("account", "anna") == pytest.approx(300)


def test_an_address_trying_many_names_is_locked():
    t = Throttle(Clock())
    for i in range(8):
        assert fail(t, f"guess-{i}") == 0.0  # a different name each time
    assert t.locked_for("address", "10.0.0.1") == pytest.approx(300)
    ticket, wait = t.try_login("anna", "10.0.0.1", POLICY)
    assert ticket is None and wait > 0
    assert t.try_login("anna", "10.0.0.2", POLICY)[0] is not None  # elsewhere, anna may try


def test_a_right_password_is_not_a_failure_of_the_address():
    t = Throttle(Clock())
    for _ in range(20):
        ticket, _ = t.try_login("anna", "10.0.0.1", POLICY)
        assert ticket is not None
        t.succeeded(ticket)
    assert t.locked_for("address", "10.0.0.1") == 0


def test_parallel_tries_are_counted_before_any_password_is_checked():
    t = Throttle(Clock())
    tickets = []
    start = threading.Barrier(12)

    def one() -> None:
        start.wait()
        tickets.append(t.try_login("anna", "10.0.0.1", POLICY)[0])

    threads = [threading.Thread(target=one) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    # no password has been checked yet, and still only 5 of 12 may try
    assert sum(tk is not None for tk in tickets) == 5


def test_policy_from_environment_names_a_bad_setting():
    assert Policy.from_env({}) == Policy()
    got = Policy.from_env({"HIPSTRIDE_LOGIN_MAX_FAILURES": "3",
                           "HIPSTRIDE_LOGIN_LOCKOUT_S": "2.5"})
    assert (got.max_failures, got.lockout_s) == (3, 2.5)
    for bad in ("0", "-1", "many", "nan", "1.5"):
        with pytest.raises(ConfigError, match="HIPSTRIDE_LOGIN_MAX_FAILURES"):
            Policy.from_env({"HIPSTRIDE_LOGIN_MAX_FAILURES": bad})


def test_the_locked_message_does_not_say_whether_the_name_exists():
    message = throttle.locked_message(299)
    assert "5 minutes" in message and "this name or from this address" in message
    assert "account" not in message.lower()
    assert "3 s" in throttle.locked_message(2.2)


# --- the login form (AppTest) ------------------------------------------------------------------
@pytest.fixture
def accounts_file(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.json"
    accounts = Accounts()
    accounts.add("anna", "athlete", "pw-anna")
    accounts.save(path)
    return path


def _page(monkeypatch, store_url: str, accounts: Path, **environ: str) -> AppTest:
    for name in ("HIPSTRIDE_DASHBOARD_PASSWORD", *throttle.POLICY_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(data.STORE_ENV, store_url)
    monkeypatch.setenv("HIPSTRIDE_ACCOUNTS", str(accounts))
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(str(REVIEW), default_timeout=30).run()


def _log_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_login_form_locks_after_failures_from_other_sessions(monkeypatch, filled_store,
                                                            accounts_file):
    monkeypatch.setattr("hipstride.dashboard.auth.FAILED_LOGIN_DELAY_S", 0.0)
    env = {"HIPSTRIDE_LOGIN_MAX_FAILURES": "3", "HIPSTRIDE_LOGIN_LOCKOUT_S": "600"}
    for _ in range(3):  # three browser sessions, one wrong try each
        at = _page(monkeypatch, filled_store.url, accounts_file, **env)
        _log_in(at, "anna", "wrong")
        assert "Wrong name or password" in at.error[0].value
    at = _page(monkeypatch, filled_store.url, accounts_file, **env)
    _log_in(at, "anna", "pw-anna")  # the right password, while locked
    assert "Too many failed logins" in at.error[0].value
    assert not at.selectbox  # nothing of the store
    # a name that is no account gets the same answers
    for _ in range(3):
        _log_in(at, "nobody", "wrong")
    assert "Wrong name or password" in at.error[0].value
    _log_in(at, "nobody", "wrong")
    assert at.error[0].value == throttle.locked_message(
        throttle.shared().locked_for("account", "nobody"))


def test_a_bad_setting_is_shown_not_raised(monkeypatch, filled_store, accounts_file):
    at = _page(monkeypatch, filled_store.url, accounts_file,
               HIPSTRIDE_LOGIN_LOCKOUT_S="soon")
    _log_in(at, "anna", "pw-anna")
    assert not at.exception
    assert "HIPSTRIDE_LOGIN_LOCKOUT_S" in at.error[0].value


def test_cli_names_a_bad_login_setting(tmp_path, filled_store):
    done = subprocess.run(
        [sys.executable, "-m", "hipstride.cli", "dashboard", "--store", filled_store.url,
         "--port", "8599"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=clean_env(HOME=str(tmp_path), HIPSTRIDE_LOGIN_MAX_FAILURES="lots"))
    assert done.returncode == 2, done.stderr
    assert "HIPSTRIDE_LOGIN_MAX_FAILURES='lots' is not valid" in done.stderr
