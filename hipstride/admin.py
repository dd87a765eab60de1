"""``hipstride admin``: the deployment's accounts — broker credentials and ACL for stations and
services, dashboard logins for athletes, coaches and admins. Secrets are generated or read
from a file or a prompt, written to private (0600) files, and never logged or echoed in
errors; a station's generated password is printed once, or written to a file for the Pi.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path

from hipstride import broker_auth, topics
from hipstride.accounts import ACCOUNTS_ENV, Accounts, check_account
from hipstride.config import ConfigError, write_private

SITE_DIR = Path("deploy/site")
DEFAULT_PASSWD = SITE_DIR / "broker" / "passwd"
DEFAULT_ACL = SITE_DIR / "broker" / "acl"
#: The services' listener has its own accounts: a station's password is refused there.
DEFAULT_SERVICES_PASSWD = SITE_DIR / "broker" / "services.passwd"
DEFAULT_SERVICES_ACL = SITE_DIR / "broker" / "services.acl"
DEFAULT_ACCOUNTS = SITE_DIR / "dashboard" / "accounts.json"
#: The .env settings `init` fills with random values when they are empty.
ENV_SECRETS = ("MQTT_PIPELINE_PASSWORD", "MQTT_DASHBOARD_PASSWORD", "INFLUXDB_ADMIN_PASSWORD",
               "INFLUXDB_TOKEN")
MIN_LOGIN_PASSWORD = 8
RELOAD_HINT = "reload the broker:\n  docker compose kill -s SIGHUP mosquitto"

HELP = """\
Manage the accounts of a deployment (see docs/deployment.md). Run from the directory that
holds docker-compose.yml; the files below are relative to it and are git-ignored.

commands:
  init          fill the empty secrets in .env with random values, then write the broker's
                services password file and ACL for the pipeline and dashboard accounts
  add-station   create (or renew) a station's broker account, named like the station, and
                its ACL block: it may publish only under hipstride/v1/ID/ and read only
                hipstride/v1/ID/control. The password is generated and printed once (or
                written to --password-out, mode 0600, for the Pi's [broker] password_file)
  add-operator  a broker account for an operator's CLI tools (`hipstride tap`, `hipstride
                session`) on the services' listener: reads every station topic, sends
                control commands; password generated as for add-station
  add-athlete   a dashboard login that sees only that athlete's sessions
  add-coach     a dashboard login that sees the athletes given with --athlete
  add-admin     a dashboard login that sees every athlete

files (defaults):
  deploy/site/broker/passwd   station accounts (PBKDF2-SHA512, as mosquitto_passwd)
  deploy/site/broker/acl      station ACL (the stations' listener, 1883/8883)
  deploy/site/broker/services.passwd, services.acl  pipeline, dashboard, operators (1884)
  deploy/site/dashboard/accounts.json  dashboard logins (scrypt hashes); or HIPSTRIDE_ACCOUNTS

Dashboard passwords come from --password-file (first line) or are asked twice at the
prompt, never from the command line. After changing broker files, """ + RELOAD_HINT + """

examples:
  cp .env.example .env && hipstride admin init
  hipstride admin add-station treadmill-1 --password-out treadmill-1.password
  hipstride admin add-coach carla --athlete ana --athlete ben
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION")

    def broker_files(p: argparse.ArgumentParser) -> None:
        p.add_argument("--passwd-file", type=Path, default=DEFAULT_PASSWD, metavar="F",
                       help=f"Mosquitto password file (default {DEFAULT_PASSWD})")
        p.add_argument("--acl-file", type=Path, default=DEFAULT_ACL, metavar="F",
                       help=f"Mosquitto ACL file (default {DEFAULT_ACL})")

    def login(p: argparse.ArgumentParser) -> None:
        p.add_argument("--accounts", type=Path, metavar="F",
                       help=f"accounts file (default: {ACCOUNTS_ENV} or {DEFAULT_ACCOUNTS})")
        p.add_argument("--password-file", type=Path, metavar="F",
                       help="read the password from the first line of F (default: prompt)")

    def service_files(p: argparse.ArgumentParser) -> None:
        p.add_argument("--services-passwd-file", type=Path, default=DEFAULT_SERVICES_PASSWD,
                       metavar="F", help="password file of the services' listener (default "
                                         f"{DEFAULT_SERVICES_PASSWD})")
        p.add_argument("--services-acl-file", type=Path, default=DEFAULT_SERVICES_ACL,
                       metavar="F", help="ACL of the services' listener (default "
                                         f"{DEFAULT_SERVICES_ACL})")

    init = sub.add_parser("init", help="generate .env secrets and the service accounts",
                          description="Fill empty secrets in the env file with random values "
                                      "and write the pipeline and dashboard broker accounts.")
    init.add_argument("--env-file", type=Path, default=Path(".env"), metavar="F",
                      help="compose env file (default .env; copy .env.example first)")
    broker_files(init)
    service_files(init)

    operator = sub.add_parser("add-operator", help="broker account for the CLI tools",
                              description="Create or renew an operator's broker account on "
                                          "the services' listener (read every station topic, "
                                          "send control commands), for `hipstride tap` and "
                                          "`hipstride session` on the server.")
    operator.add_argument("name", metavar="NAME", help="account name, e.g. operator")
    operator.add_argument("--password-out", type=Path, metavar="F",
                          help="write the new password to F (mode 0600) instead of stdout")
    service_files(operator)

    station = sub.add_parser("add-station", help="broker account + ACL block for a station",
                             description="Create or renew a station's broker account (named "
                                         "like the station, random password) and its ACL "
                                         "block: publish only under hipstride/v1/ID/, read "
                                         "only hipstride/v1/ID/control.")
    station.add_argument("station", metavar="ID", help="station id, e.g. treadmill-1")
    station.add_argument("--password-out", type=Path, metavar="F",
                         help="write the new password to F (mode 0600) instead of stdout")
    broker_files(station)

    athlete = sub.add_parser("add-athlete", help="dashboard login for one athlete")
    athlete.add_argument("name", metavar="NAME", help="athlete id, as sessions name them")
    login(athlete)
    coach = sub.add_parser("add-coach", help="dashboard login for a coach")
    coach.add_argument("name", metavar="NAME")
    coach.add_argument("--athlete", action="append", default=[], metavar="A",
                       help="an athlete the coach may see (repeat for several)")
    login(coach)
    admin = sub.add_parser("add-admin", help="dashboard login that sees every athlete")
    admin.add_argument("name", metavar="NAME")
    login(admin)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "admin_command", None)
    if action is None:
        print(HELP, file=sys.stderr)
        return 2
    if action == "init":
        return init(args.env_file, args.passwd_file, args.acl_file,
                    args.services_passwd_file, args.services_acl_file)
    if action == "add-operator":
        return add_operator(args.name, args.services_passwd_file, args.services_acl_file,
                            args.password_out)
    if action == "add-station":
        return add_station(args.station, args.passwd_file, args.acl_file, args.password_out)
    role = {"add-athlete": "athlete", "add-coach": "coach", "add-admin": "admin"}[action]
    athletes = getattr(args, "athlete", ())
    if role == "coach" and not athletes:
        print("hipstride admin add-coach: no --athlete given: this coach will see no "
              "athlete until you add them again with --athlete", file=sys.stderr)
    return add_login(args.name, role, athletes, args.accounts, args.password_file)


# --- broker -----------------------------------------------------------------------------------
def init(env_file: Path, passwd: Path, acl: Path, services_passwd: Path = DEFAULT_SERVICES_PASSWD,
         services_acl: Path = DEFAULT_SERVICES_ACL) -> int:
    """The service accounts go to the services' listener files; the stations' files get
    (empty) files of their own, without any service account in them."""
    values = fill_env_secrets(env_file)
    broker_auth.set_password(services_passwd, broker_auth.PIPELINE_USER,
                             values["MQTT_PIPELINE_PASSWORD"])
    broker_auth.set_password(services_passwd, broker_auth.DASHBOARD_USER,
                             values["MQTT_DASHBOARD_PASSWORD"])
    broker_auth.set_acl(services_acl, broker_auth.PIPELINE_USER, broker_auth.pipeline_rights())
    broker_auth.set_acl(services_acl, broker_auth.DASHBOARD_USER,
                        broker_auth.dashboard_rights())
    for user in broker_auth.SERVICE_USERS:  # sites from before the two listeners
        if broker_auth.remove_account(passwd, acl, user):
            print(f"hipstride admin: moved broker account {user} from {passwd} to "
                  f"{services_passwd}", file=sys.stderr)
    if not passwd.exists():
        write_private(passwd, "")
    if not acl.exists():
        write_private(acl, broker_auth.render_acl({}))
    for station, rules in broker_auth.read_acl(acl).items():  # sites from before protocol 1.1
        if rules != broker_auth.station_rights(station):
            broker_auth.set_acl(acl, station, broker_auth.station_rights(station))
            print(f"hipstride admin: station {station}: ACL block brought up to date (store "
                  f"confirmations); {RELOAD_HINT}", file=sys.stderr)
    print(f"hipstride admin: secrets in {env_file}; broker accounts pipeline, dashboard in "
          f"{services_passwd} and {services_acl}; stations go to {passwd} and {acl}",
          file=sys.stderr)
    return 0


def add_operator(name: str, passwd: Path, acl: Path, password_out: Path | None) -> int:
    try:
        topics.check_station(name)  # the same simple account names as stations
    except ValueError as err:
        raise ConfigError(f"operator {str(err).removeprefix('station id ')}") from None
    if name in broker_auth.SERVICE_USERS:
        raise ConfigError(f"{name!r} is the {name} service's own account; choose another name "
                          "(e.g. operator)")
    password = broker_auth.new_password()
    broker_auth.set_password(passwd, name, password)
    broker_auth.set_acl(acl, name, broker_auth.operator_rights())
    where = _hand_out(password, password_out)
    print(f"hipstride admin: operator {name}: broker account in {passwd}, ACL block in {acl}; "
          f"{where}.\n  On the server: hipstride tap --broker mqtt://{name}@127.0.0.1:1884 "
          f"with HIPSTRIDE_BROKER_PASSWORD.\n  Then {RELOAD_HINT}", file=sys.stderr)
    return 0


def _hand_out(password: str, password_out: Path | None) -> str:
    """Print a generated password once, or write it to a private file; says where it is."""
    if password_out is not None:
        write_private(password_out, password + "\n")
        return f"the password is in {password_out} (mode 0600)"
    print(password)
    return "the password above is shown once"


_ENV_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def fill_env_secrets(env_file: Path) -> dict[str, str]:
    """Give every empty secret of ``env_file`` a random value; return the secrets."""
    try:
        lines = env_file.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{env_file} does not exist: copy .env.example to {env_file}, set "
                          "the hostnames you want, then run `hipstride admin init` again"
                          ) from None
    found: dict[str, str] = {}
    changed = False
    for i, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if not match or match.group(1) not in ENV_SECRETS:
            continue
        key, value = match.group(1), match.group(2).strip().strip("'\"")
        if not value:
            value = broker_auth.new_password()
            lines[i] = f"{key}={value}"
            changed = True
        found[key] = value
    for key in ENV_SECRETS:
        if key not in found:
            found[key] = broker_auth.new_password()
            lines.append(f"{key}={found[key]}")
            changed = True
    if changed or (env_file.stat().st_mode & 0o077):
        write_private(env_file, "\n".join(lines) + "\n")
    return found


def add_station(station: str, passwd: Path, acl: Path, password_out: Path | None) -> int:
    try:
        topics.check_station(station)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if station in broker_auth.SERVICE_USERS:
        raise ConfigError(f"station id {station!r} is reserved for the {station} service's "
                          "broker account; choose another id")
    if station.startswith(broker_auth.SERVICE_CLIENT_PREFIX):
        raise ConfigError(f"station id {station!r}: ids starting with "
                          f"{broker_auth.SERVICE_CLIENT_PREFIX!r} are reserved for the "
                          "services' client ids; choose another id")
    password = broker_auth.new_password()
    broker_auth.set_password(passwd, station, password)
    broker_auth.set_acl(acl, station, broker_auth.station_rights(station))
    if password_out is not None:
        write_private(password_out, password + "\n")
        where = f"the password is in {password_out} (mode 0600)"
    else:
        print(password)
        where = "the password above is shown once"
    print(f"hipstride admin: station {station}: broker account {station!r} in {passwd}, ACL "
          f"block in {acl}; {where}.\n  On the Pi: --broker mqtt://{station}@BROKER-HOST:1883 "
          f"with [broker] password_file (or HIPSTRIDE_BROKER_PASSWORD).\n  Then {RELOAD_HINT}",
          file=sys.stderr)
    return 0


# --- dashboard logins -------------------------------------------------------------------------
def read_login_password(password_file: Path | None, name: str) -> str:
    if password_file is not None:
        try:
            lines = password_file.read_text().splitlines()
        except OSError as err:
            raise ConfigError(f"--password-file {password_file}: {err.strerror}") from None
        password = lines[0].rstrip("\r\n") if lines else ""
    else:
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to ask for the password: give --password-file F")
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was changed")
    if len(password) < MIN_LOGIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_LOGIN_PASSWORD} characters; "
                          "nothing was changed")
    return password


def add_login(name: str, role: str, athletes, accounts_file: Path | None,
              password_file: Path | None) -> int:
    path = accounts_file or Path(os.environ.get(ACCOUNTS_ENV) or DEFAULT_ACCOUNTS)
    check_account(name, role, tuple(athletes))  # a bad name is refused before the prompt
    accounts = Accounts.load(path) if path.exists() else Accounts()
    password = read_login_password(password_file, name)
    replaced = accounts.get(name) is not None
    account = accounts.add(name, role, password, athletes=tuple(athletes))
    accounts.save(path)
    sees = ("every athlete" if role == "admin"
            else ", ".join(account.athletes) or "no athlete")
    print(f"hipstride admin: {'updated' if replaced else 'added'} {role} {name!r} in {path} "
          f"(sees {sees})", file=sys.stderr)
    return 0
