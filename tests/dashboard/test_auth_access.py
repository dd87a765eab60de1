"""Dashboard access (dashboard/auth.py): which login applies, who sees which athlete, the login
form in front of a page (AppTest), and ``hipstride dashboard`` refusing to listen beyond this
machine without a login."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride.accounts import Accounts
from hipstride.dashboard import auth, data
from hipstride.pipeline.store import SessionMeta
from tests.support.pipeline import clean_env

REVIEW = Path(data.__file__).parent / "views" / "review.py"
TIMEOUT_S = 30


@pytest.mark.parametrize(("environ", "oidc", "mode"), [
    ({}, False, "none"),
    ({"HIPSTRIDE_DASHBOARD_PASSWORD": "s3cret"}, False, "password"),
    ({"HIPSTRIDE_ACCOUNTS": "/etc/hipstride/accounts.json"}, False, "accounts"),
    ({"HIPSTRIDE_ACCOUNTS": "/a.json", "HIPSTRIDE_DASHBOARD_PASSWORD": "x"}, False, "accounts"),
    ({"HIPSTRIDE_DASHBOARD_PASSWORD": ""}, False, "none"),  # empty is unset
    ({"HIPSTRIDE_DASHBOARD_PASSWORD": "x"}, True, "oidc"),
])
def test_login_mode(environ, oidc, mode):
    assert auth.login_mode(environ, oidc=oidc) == mode


def test_secrets_with_an_auth_section_mean_oidc(tmp_path):
    plain, with_auth, broken = (tmp_path / n for n in ("a.toml", "b.toml", "c.toml"))
    plain.write_text('[connections]\nx = 1\n')
    with_auth.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n'
                         'cookie_secret = "xyz"\n')
    broken.write_text("[auth\n")
    assert not auth.secrets_have_auth([plain, broken, tmp_path / "missing.toml"])
    assert auth.secrets_have_auth([plain, with_auth])


def _meta(session: str, athlete: str | None) -> SessionMeta:
    return SessionMeta(session, "tm1", athlete, 1)


def test_each_role_sees_its_athletes(tmp_path):
    path = tmp_path / "accounts.json"
    accounts = Accounts()
    accounts.add("carla", "coach", "pw-carla", ["anna", "ben"])
    accounts.add("anna", "athlete", "pw-anna")
    accounts.add("root", "admin", "pw-root")
    accounts.save(path)
    accounts = Accounts.load(path)
    sessions = [_meta("a", "anna"), _meta("b", "ben"), _meta("c", "chris"), _meta("d", None)]

    def seen(name: str, password: str) -> list[str]:
        account = accounts.verify(name, password)
        assert account is not None
        access = auth.access_for(account, accounts, "accounts")
        return [s.session for s in auth.visible(sessions, access)]

    assert seen("carla", "pw-carla") == ["a", "b"]
    assert seen("anna", "pw-anna") == ["a"]
    assert seen("root", "pw-root") == ["a", "b", "c", "d"]
    assert auth.visible(["ben", "chris"], auth.Access("x", "coach", frozenset({"ben"}),
                                                      "accounts")) == ["ben"]
    assert auth.visible(sessions, auth.OPEN) == sessions


def test_password_comparison():
    assert auth.password_matches("s3cret", "s3cret")
    assert not auth.password_matches("s3cret ", "s3cret")
    assert not auth.password_matches("", "s3cret")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for name in ("HIPSTRIDE_ACCOUNTS", "HIPSTRIDE_DASHBOARD_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    data.load_sessions.clear()
    data.load_strides.clear()
    data.connect.clear()


def _review(monkeypatch, store_url: str, **environ: str) -> AppTest:
    monkeypatch.setenv(data.STORE_ENV, store_url)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return AppTest.from_file(str(REVIEW), default_timeout=TIMEOUT_S).run()


def _log_in(at: AppTest, password: str, name: str | None = None) -> AppTest:
    if name is not None:
        at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_single_clinic_password_guards_the_page(monkeypatch, filled_store):
    at = _review(monkeypatch, filled_store.url, HIPSTRIDE_DASHBOARD_PASSWORD="clinic-pw")
    assert not at.exception
    assert "log in to continue" in at.info[0].value
    assert not at.selectbox and not at.metric  # nothing of the store shows
    _log_in(at, "wrong")
    assert "Wrong password" in at.error[0].value and not at.selectbox
    _log_in(at, "clinic-pw")
    assert not at.exception and not at.error
    assert at.selectbox(key="athlete").options == [data.ALL_ATHLETES, "anna", "ben"]


def test_a_coach_and_an_athlete_see_only_their_athletes(monkeypatch, filled_store, tmp_path):
    path = tmp_path / "accounts.json"
    accounts = Accounts()
    accounts.add("carla", "coach", "pw-carla", ["ben"])
    accounts.add("anna", "athlete", "pw-anna")
    accounts.save(path)

    at = _review(monkeypatch, filled_store.url, HIPSTRIDE_ACCOUNTS=str(path))
    _log_in(at, "pw-anna", "carla")
    assert "Wrong name or password" in at.error[0].value
    _log_in(at, "pw-carla", "carla")
    assert at.selectbox(key="athlete").options == [data.ALL_ATHLETES, "ben"]
    (only,) = at.selectbox(key="session").options  # ben's one session, on treadmill-2
    assert "treadmill-2" in only

    at = _review(monkeypatch, filled_store.url, HIPSTRIDE_ACCOUNTS=str(path))
    _log_in(at, "pw-anna", "anna")
    assert at.selectbox(key="athlete").options == [data.ALL_ATHLETES, "anna"]
    assert len(at.selectbox(key="session").options) == 2  # anna's two sessions, not ben's


def test_a_broken_accounts_file_is_named(monkeypatch, filled_store, tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text("{not json")
    at = _review(monkeypatch, filled_store.url, HIPSTRIDE_ACCOUNTS=str(path))
    _log_in(at, "x", "carla")
    assert not at.exception
    assert "accounts file cannot be used" in at.error[0].value and "not valid JSON" in \
        at.error[0].value


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_cli_refuses_to_expose_the_dashboard_without_a_login(tmp_path, filled_store, host):
    done = subprocess.run(
        [sys.executable, "-m", "hipstride.cli", "dashboard", "--store", filled_store.url,
         "--host", host, "--port", "8599"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env=clean_env(HOME=str(tmp_path)))
    assert done.returncode == 2, done.stderr
    assert f"refusing to listen on {host} without a login" in done.stderr
    assert "HIPSTRIDE_DASHBOARD_PASSWORD" in done.stderr
