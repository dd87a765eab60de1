"""``hipstride session start|stop|mark|calibrate``: send one control command, print the reply.

The client side of the contract lives in :mod:`hipstride.control` (the dashboard uses it too).
Publishes ``{"version": 1, "command": …, "request": <random id>}`` on ``…/<station>/control``
(QoS 1) and waits for the pipeline's retained session state on ``…/<station>/session`` that
carries the same ``request`` id. Importing this module loads nothing heavy (the CLI builds
its parser from it); paho is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["EXIT_NO_REPLY", "EXIT_REFUSED", "HELP", "add_arguments", "build_command", "run"]

EXIT_OK, EXIT_NO_REPLY, EXIT_CONFIG, EXIT_REFUSED = 0, 1, 2, 5

HELP = """\
Start, stop, mark or calibrate a station's session through the control topic. The pipeline
answers each command with the station's session state (retained on
hipstride/v1/<station>/session); this command prints that reply as JSON.

configuration: --broker or HIPSTRIDE_BROKER (default mqtt://localhost:1883), the password in
HIPSTRIDE_BROKER_PASSWORD.

names: athlete names may use any script, spaces and punctuation, but no control characters
(newline, tab, ...) and no backslash, at most 64 characters; labels at most 200 characters
on one line; session ids 1-64 of A-Z a-z 0-9 _ - . : (docs/protocol.md, "Names").

exit codes: 0 accepted, 1 no reply from the pipeline in time (is `hipstride pipeline`
running?), 2 bad arguments (a name that breaks its rule: the rule is printed), 3 broker
rejected the credentials, 4 broker unreachable, 5 the pipeline refused the command (the
reason is printed).

examples:
  hipstride session start --station treadmill-1 --athlete ana --label "easy 5k"
  hipstride session mark --station treadmill-1 --label "felt hamstring"
  hipstride session calibrate --station treadmill-1 --phase mvc --action start
  hipstride session stop --station treadmill-1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``hipstride session`` sub-commands and their flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--station", required=True, help="station id, e.g. treadmill-1")
    common.add_argument("--broker", metavar="URL",
                        help="mqtt[s]://[user@]host[:port] (default: HIPSTRIDE_BROKER or "
                             "mqtt://localhost:1883)")
    common.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="wait at most S seconds for the pipeline's reply (default 10)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = sub.add_parser("start", parents=[common], help="start a session")
    start.add_argument("--athlete", required=True, help="who runs")
    start.add_argument("--label", help="a short title")
    start.add_argument("--notes", help="free text")
    start.add_argument("--session", metavar="ID",
                       help="session id (default: <station>-<UTC yyyymmddThhmmss>)")
    stop = sub.add_parser("stop", parents=[common], help="stop the running session")
    stop.add_argument("--session", metavar="ID", help="only if this session is running")
    mark = sub.add_parser("mark", parents=[common], help="mark a moment of the session")
    mark.add_argument("--label", required=True, help="what happened")
    mark.add_argument("--note", help="free text")
    cal = sub.add_parser("calibrate", parents=[common],
                         help="start or stop a calibration phase or the prone test")
    cal.add_argument("--phase", required=True, choices=("standing", "mvc", "prone"))
    cal.add_argument("--action", dest="phase_action", default="start",
                     choices=("start", "stop"))
    cal.add_argument("--muscle", metavar="CHANNEL",
                     help="mvc: the EMG channel of this trial, e.g. glute_max_r")
    cal.add_argument("--side", choices=("l", "r"), help="prone: the side being tested")


def build_command(args: argparse.Namespace) -> dict[str, Any]:
    """The control JSON for parsed arguments (a fresh ``request`` id)."""
    from hipstride import control

    fields = {key: getattr(args, key, None) for key in control.FIELDS[args.action]
              if key != "action"}
    if args.action == "calibrate":
        fields["action"] = args.phase_action
    return control.build_command(args.action, **fields)


def run(args: argparse.Namespace) -> int:
    """CLI entry: send, print the reply (stdout) or the error (stderr), exit code."""
    from hipstride import control, topics
    from hipstride.mqtt import BrokerError

    try:
        topics.check_station(args.station)
        body = build_command(args)
    except ValueError as err:  # a bad station id or name (hipstride.names.BadName)
        print(f"hipstride session: {err}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        reply = control.send_command(args.broker, args.station, body, timeout_s=args.timeout)
    except BrokerError as err:
        text = str(err).replace(" (use --offline-ok to start anyway and send later)", "")
        print(f"hipstride session: {text}", file=sys.stderr)
        return err.exit_code
    if reply is None:
        print(f"hipstride session: no reply from the pipeline for station {args.station} "
              f"within {args.timeout:g} s: is `hipstride pipeline` running and subscribed to "
              "this broker (and does its --partition own this station)?", file=sys.stderr)
        return EXIT_NO_REPLY
    print(json.dumps(reply, indent=2, sort_keys=True))
    result = reply["result"]
    if not result.get("ok"):
        print(f"hipstride session: the pipeline refused {args.action!r} "
              f"({result.get('reason')}): {result.get('message')}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK
