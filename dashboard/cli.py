"""``hipstride dashboard``: run the Streamlit app against a store.

Kept import-light (standard library and the shared config only): the ``hipstride`` command
builds its parser from this module on machines without Streamlit. The store URL reaches the
app through ``HIPSTRIDE_STORE`` in the environment, never on a command line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hipstride.config import BrokerURL, ConfigError, env, port_number

APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
DEFAULT_BROKER = "mqtt://localhost:1883"

HELP = """\
Open the HipStride dashboard in the browser: live treadmill feedback (Live, Coach view),
session control, guided calibration and the prone hip extension test, and review of past
sessions (comparison, progress across weeks, CSV export, the report).

The store is the one the pipeline writes: --store, or HIPSTRIDE_STORE.
  sqlite:///hipstride.db                      a SQLite file (relative to this directory)
  sqlite:////var/lib/hipstride/hipstride.db   absolute path (four slashes)
  influx://USER@HOST:8086/hipstride           InfluxDB; the token from HIPSTRIDE_STORE_TOKEN

The Live and Coach pages follow the stations through the MQTT broker: --broker, or
HIPSTRIDE_BROKER (default mqtt://localhost:1883); the password in HIPSTRIDE_BROKER_PASSWORD,
never in the URL. Without a broker the other pages still work.

The dashboard listens on 127.0.0.1 only, unless --host says otherwise. Any other address
needs a login: HIPSTRIDE_ACCOUNTS (accounts from `hipstride admin add-athlete|add-coach`),
HIPSTRIDE_DASHBOARD_PASSWORD (one password for a single clinic), or an [auth] section in
.streamlit/secrets.toml (OIDC via st.login). See docs/dashboard.md.

example:
  hipstride dashboard --store sqlite:///hipstride.db --port 8501
  hipstride dashboard --store sqlite:///hipstride.db --broker mqtt://coach@localhost:1883
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL",
                        help="store URL (default: HIPSTRIDE_STORE); see above")
    parser.add_argument("--broker", metavar="URL",
                        help=f"MQTT broker for the live pages (default: HIPSTRIDE_BROKER, else "
                             f"{DEFAULT_BROKER}); password in HIPSTRIDE_BROKER_PASSWORD")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")


def store_url(url: str | None) -> str:
    """The checked store URL; a relative SQLite path made absolute (the app may run from
    another directory). Raises :class:`ConfigError` naming what is wrong."""
    url = url or env("STORE")
    if not url:
        raise ConfigError("no store: give --store URL or set HIPSTRIDE_STORE, e.g. "
                          "--store sqlite:///hipstride.db")
    from hipstride.pipeline.store import StoreURL

    parsed = StoreURL.parse(url)
    if parsed.kind == "sqlite" and parsed.path != ":memory:":
        return "sqlite:///" + str(Path(parsed.path).resolve())  # absolute: four slashes
    return url


def broker_url(url: str | None) -> str:
    """The checked broker URL (``--broker``, else ``HIPSTRIDE_BROKER``, else the default);
    raises :class:`ConfigError` naming what is wrong. It reaches the app through the
    environment, never on the ``streamlit run`` command line."""
    url = url or env("BROKER") or DEFAULT_BROKER
    BrokerURL.parse(url)
    return url


def command(app: Path, *, host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line: headless, no telemetry, no file watching, and
    no developer menu (no "Deploy" button) for the people using it."""
    return [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]


def run(args: Any) -> int:
    url = store_url(args.store)
    broker = broker_url(getattr(args, "broker", None))
    from hipstride.dashboard.throttle import Policy

    Policy.from_env()  # a bad HIPSTRIDE_LOGIN_* setting stops here, named (exit 2)
    if importlib.util.find_spec("streamlit") is None:
        print("hipstride dashboard: Streamlit is not installed: pip install "
              "'hipstride[dashboard]'", file=sys.stderr)
        return 1
    if url.startswith("sqlite:") and not Path(url[len("sqlite:///"):]).exists():
        print(f"hipstride dashboard: no store at {url[len('sqlite:///'):]} yet; the pages "
              "will say so until the pipeline creates it", file=sys.stderr)
    if args.host not in LOOPBACK:
        from hipstride.dashboard.auth import login_mode

        if login_mode() == "none":
            print(f"hipstride dashboard: refusing to listen on {args.host} without a login: "
                  "anyone who can reach it would see athlete data. Set HIPSTRIDE_ACCOUNTS "
                  "(`hipstride admin add-coach`), HIPSTRIDE_DASHBOARD_PASSWORD, or an [auth] "
                  "section in .streamlit/secrets.toml; or keep --host 127.0.0.1",
                  file=sys.stderr)
            return 2
    environ = {**os.environ, "HIPSTRIDE_STORE": url, "HIPSTRIDE_BROKER": broker}
    argv = command(APP, host=args.host, port=args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"hipstride dashboard: http://{shown}:{args.port}", file=sys.stderr, flush=True)
    if os.name == "posix":  # become Streamlit: signals reach it, nothing is left behind
        os.execve(argv[0], argv, environ)
    return subprocess.call(argv, env=environ)
