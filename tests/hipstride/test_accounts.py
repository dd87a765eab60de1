"""Dashboard accounts: hashing, roles, visibility, file round trips and bad files."""

from __future__ import annotations

import json
import stat

import pytest

from hipstride.accounts import Account, Accounts, check_password, hash_password
from hipstride.config import ConfigError


def test_hash_is_salted_and_checks():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse", a) and check_password("correct horse", b)
    assert not check_password("correct hors", a)
    assert not check_password("correct horse", "scrypt$garbage")
    assert not check_password("correct horse", "plain")


def test_roles_and_visibility():
    accounts = Accounts()
    admin = accounts.add("root", "admin", "pw-admin", athletes=("ignored",))
    coach = accounts.add("carla", "coach", "pw-coach", athletes=("ana", "ben", "ana"))
    athlete = accounts.add("ana", "athlete", "pw-ana")
    assert admin == Account("root", "admin", ())
    assert coach.athletes == ("ana", "ben")
    assert athlete.athletes == ("ana",)
    assert accounts.visible_athletes(admin) is None
    assert accounts.visible_athletes(coach) == frozenset({"ana", "ben"})
    assert accounts.visible_athletes(athlete) == frozenset({"ana"})


def test_verify():
    accounts = Accounts()
    accounts.add("carla", "coach", "s3cret-pw", athletes=("ana",))
    assert accounts.verify("carla", "s3cret-pw") == Account("carla", "coach", ("ana",))
    assert accounts.verify("carla", "s3cret-PW") is None
    assert accounts.verify("carla", "") is None
    assert accounts.verify("nobody", "s3cret-pw") is None


def test_add_replaces_and_rejects_bad_input():
    accounts = Accounts()
    accounts.add("carla", "coach", "old-password", athletes=("ana",))
    accounts.add("carla", "coach", "new-password", athletes=("ben",))
    assert len(accounts) == 1
    assert accounts.verify("carla", "old-password") is None
    assert accounts.verify("carla", "new-password").athletes == ("ben",)
    with pytest.raises(ConfigError, match="role"):
        accounts.add("x", "superuser", "pw")
    with pytest.raises(ConfigError, match="empty"):
        accounts.add("x", "coach", "")
    with pytest.raises(ConfigError, match="account name"):
        accounts.add("bad name", "coach", "pw")
    with pytest.raises(ConfigError, match="exactly one"):
        accounts.add("ana", "athlete", "pw", athletes=("ana", "ben"))


def test_save_load_round_trip_is_private_and_holds_no_password(tmp_path):
    path = tmp_path / "sub" / "accounts.json"
    accounts = Accounts()
    accounts.add("carla", "coach", "pw-carla-123", athletes=("ana",))
    accounts.add("ana", "athlete", "pw-ana-456")
    accounts.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "pw-carla-123" not in text and "pw-ana-456" not in text
    assert [p.name for p in path.parent.iterdir()] == ["accounts.json"]  # no temp left
    loaded = Accounts.load(path)
    assert {a.name for a in loaded} == {"carla", "ana"}
    assert loaded.verify("carla", "pw-carla-123") == accounts.get("carla")
    assert loaded.verify("ana", "pw-carla-123") is None


def test_load_toml_and_env_path(tmp_path, monkeypatch):
    path = tmp_path / "accounts.toml"
    path.write_text(f'[[accounts]]\nname = "carla"\nrole = "coach"\nathletes = ["ana"]\n'
                    f'password = "{hash_password("pw-toml-1")}"\n')
    monkeypatch.setenv("HIPSTRIDE_ACCOUNTS", str(path))
    loaded = Accounts.load(None)
    assert loaded.verify("carla", "pw-toml-1") == Account("carla", "coach", ("ana",))


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"users": []}', "expected a list"),
    ('{"accounts": [{"name": "a", "role": "god", "password": "scrypt$x"}]}', "role 'god'"),
    ('{"accounts": [{"name": "a", "role": "coach", "password": "hunter2"}]}', "scrypt hash"),
    ('{"accounts": [{"name": "a", "role": "coach", "password": "scrypt$x"},'
     ' {"name": "a", "role": "coach", "password": "scrypt$x"}]}', "appears twice"),
])
def test_broken_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "accounts.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        Accounts.load(path)
    assert str(path) in str(info.value)
    assert "hunter2" not in str(info.value)


def test_missing_file_and_unset_env(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        Accounts.load(tmp_path / "absent.json")
    monkeypatch.delenv("HIPSTRIDE_ACCOUNTS", raising=False)
    with pytest.raises(ConfigError, match="HIPSTRIDE_ACCOUNTS"):
        Accounts.load(None)


def test_file_written_by_save_is_json(tmp_path):
    path = tmp_path / "a.json"
    accounts = Accounts()
    accounts.add("root", "admin", "pw-root-1")
    accounts.save(path)
    data = json.loads(path.read_text())
    assert data["accounts"][0]["role"] == "admin"
    assert data["accounts"][0]["password"].startswith("scrypt$")


def test_admin_commands_write_logins_from_a_password_file(tmp_path):
    """`hipstride admin add-athlete/add-coach`: password from a file, never echoed; no
    terminal and no file is a clear error; short passwords are refused."""
    import subprocess
    import sys

    from tests.support.pipeline import clean_env

    def admin(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hipstride.cli", "admin", *args],
                              cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)

    (tmp_path / "pw").write_text("athlete-pass-1\n")
    (tmp_path / "short").write_text("short\n")
    done = admin("add-athlete", "ana", "--password-file", "pw")
    assert done.returncode == 0, done.stderr
    done = admin("add-coach", "carla", "--athlete", "ana", "--athlete", "ben",
                 "--password-file", "pw", "--accounts", "coaches.json")
    assert done.returncode == 0, done.stderr
    assert "athlete-pass-1" not in done.stdout + done.stderr
    default = tmp_path / "deploy/site/dashboard/accounts.json"
    assert Accounts.load(default).verify("ana", "athlete-pass-1") == Account(
        "ana", "athlete", ("ana",))
    assert Accounts.load(tmp_path / "coaches.json").verify("carla", "athlete-pass-1"
                                                            ).athletes == ("ana", "ben")
    no_tty = admin("add-admin", "root")
    assert no_tty.returncode == 2 and "--password-file" in no_tty.stderr
    short = admin("add-admin", "root", "--password-file", "short")
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert Accounts.load(default).get("root") is None
