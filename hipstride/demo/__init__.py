"""``hipstride demo``: the whole system on one machine with nothing but pip.

- :mod:`.broker` — an MQTT broker inside this process (amqtt), loopback only, one account;
- :mod:`.children` — the components as child processes: start, watch, stop in order;
- :mod:`.runner` — the orchestration: data dir, stations, sessions, browser, Ctrl-C.

Importing this package loads nothing heavy: the CLI builds its parser from here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hipstride.config import port_number

HELP = """\
Run everything on this machine, nothing to install but pip: an MQTT broker inside this
process, simulated stations (a healthy runner and a hamstring-dominant one, running until
you stop them), the pipeline with the embedded SQLite store, and the dashboard, opened in
the browser on the Live page. A session is started on every station, so the numbers move
within seconds. On the first run the demo then, after a short warm-up run, asks each runner
for a maximal contraction of every EMG muscle (MVC trials, about a minute, both stations at
once; the Live page shows each trial and its countdown), so that the EMG is
normalised to MVC and the hamstring-dominant runner is cued "Drive from the glutes"; later
runs reuse the stored references.

Ctrl-C (or SIGTERM) stops it all in order: the sessions are closed (so they show up in
Review next time), the stations send what they still hold, the pipeline writes it, then the
dashboard and the broker stop. Run it again with the same --data-dir and the earlier
sessions are in Review. No Docker, no system services, no internet; everything listens on
127.0.0.1 only.

The simulated runners follow the dashboard's Calibration and Prone test pages: they stand
still, contract a muscle or lie down and lift a leg when told, then run on.

data (--data-dir, default ~/.local/share/hipstride/demo):
  hipstride.sqlite   the store (open it with: hipstride dashboard --store sqlite:///PATH)
  recordings/        each session's raw frames (hipstride analyze --recording FILE)
  pipeline/, spool-*.sqlite, logs/   the pipeline's state, the agents' spools, every log

examples:
  hipstride demo
  hipstride demo --port 8502 --no-browser --stations 4
"""

PROFILES = ("healthy", "hamstring_dominant", "limited_extension", "asymmetry")
STATION_NAMES = {"healthy": "demo-healthy", "hamstring_dominant": "demo-hamstring",
                 "limited_extension": "demo-limited", "asymmetry": "demo-asymmetry"}


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/hipstride/demo``, else ``~/.local/share/hipstride/demo``."""
    import os

    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "hipstride" / "demo"


def _stations(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= n <= len(PROFILES):
        raise argparse.ArgumentTypeError(f"between 1 and {len(PROFILES)} stations "
                                         f"({', '.join(PROFILES)})")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``hipstride demo`` flags."""
    parser.add_argument("--port", type=port_number, default=8501,
                        help="the dashboard's port (default 8501)")
    parser.add_argument("--mqtt-port", type=port_number, default=None,
                        help="the broker's port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="store, recordings, state and logs (default "
                             "~/.local/share/hipstride/demo); reused by the next run")
    parser.add_argument("--stations", type=_stations, default=2, metavar="N",
                        help="simulated stations, 1-4 (default 2): healthy, "
                             "hamstring_dominant, limited_extension, asymmetry")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a browser (for servers and scripts)")


def run(args: argparse.Namespace) -> int:
    from .runner import Demo

    return Demo(data_dir=args.data_dir or default_data_dir(), dashboard_port=args.port,
                mqtt_port=args.mqtt_port, n_stations=args.stations,
                open_browser=not args.no_browser).run()
