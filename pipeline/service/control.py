"""``hipstride session start|stop|mark|calibrate``: send one control command, print the reply.

Publishes ``{"version": 1, "command": …, "request": <random id>}`` on ``…/<station>/control``
(QoS 1) and waits for the pipeline's retained session state on ``…/<station>/session`` that
carries the same ``request`` id. Importing this module loads nothing heavy (the CLI builds
its parser from it); paho is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
import uuid
from typing import Any

__all__ = ["EXIT_NO_REPLY", "EXIT_REFUSED", "HELP", "add_arguments", "build_command", "run",
           "send_command"]

EXIT_OK, EXIT_NO_REPLY, EXIT_CONFIG, EXIT_REFUSED = 0, 1, 2, 5

HELP = """\
Start, stop, mark or calibrate a station's session through the control topic. The pipeline
answers each command with the station's session state (retained on
hipstride/v1/<station>/session); this command prints that reply as JSON.

configuration: --broker or HIPSTRIDE_BROKER (default mqtt://localhost:1883), the password in
HIPSTRIDE_BROKER_PASSWORD.

exit codes: 0 accepted, 1 no reply from the pipeline in time (is `hipstride pipeline`
running?), 2 bad arguments, 3 broker rejected the credentials, 4 broker unreachable,
5 the pipeline refused the command (the reason is printed).

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


def build_command(args: argparse.Namespace) -> dict[str, Any]:
    """The control JSON for parsed arguments (a fresh ``request`` id)."""
    body: dict[str, Any] = {"version": 1, "command": args.action,
                            "request": uuid.uuid4().hex}
    for key in ("athlete", "label", "notes", "session", "note", "phase"):
        value = getattr(args, key, None)
        if value is not None:
            body[key] = value
    if args.action == "calibrate":
        body["action"] = args.phase_action
    return body


def send_command(broker_url: str | None, station: str, body: dict[str, Any], *,
                 timeout_s: float = 10.0) -> dict[str, Any] | None:
    """Publish ``body`` (QoS 1) and return the pipeline's reply to it, or None on timeout.

    Raises :class:`hipstride.mqtt.BrokerError` when the broker cannot be used.
    """
    from hipstride import topics
    from hipstride.config import BrokerURL, env
    from hipstride.mqtt import BrokerUnreachable, Connection, make_client

    broker = BrokerURL.parse(broker_url or env("BROKER", "mqtt://localhost:1883"))
    reply_topic = topics.session(station)
    client = make_client(broker, f"hipstride-session-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                         clean_session=True, password=env("BROKER_PASSWORD"))
    inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    subscribed: queue.SimpleQueue[bool] = queue.SimpleQueue()
    client.on_message = lambda _c, _u, msg: inbox.put(bytes(msg.payload))
    client.on_subscribe = lambda *_a: subscribed.put(True)
    connection = Connection(client, broker)
    connection.on_connect(lambda _sp: client.subscribe(reply_topic, qos=1))
    end = time.monotonic() + timeout_s
    connection.open(timeout_s=timeout_s)
    try:
        try:  # subscribe before publishing, so the reply cannot be missed
            subscribed.get(timeout=max(0.1, end - time.monotonic()))
        except queue.Empty:
            raise BrokerUnreachable(f"the broker at {broker.redacted()} did not confirm the "
                                    f"subscription to {reply_topic}") from None
        info = client.publish(topics.control(station), json.dumps(body), qos=1)
        while time.monotonic() < end:
            try:
                payload = inbox.get(timeout=min(0.2, max(0.01, end - time.monotonic())))
            except queue.Empty:
                continue
            try:
                reply = json.loads(payload)
            except ValueError:
                continue
            if isinstance(reply, dict) and \
                    (reply.get("result") or {}).get("request") == body["request"]:
                return reply
        if not info.is_published():
            raise BrokerUnreachable(f"the broker at {broker.redacted()} did not acknowledge "
                                    f"the command within {timeout_s:g} s")
        return None
    finally:
        connection.close()


def run(args: argparse.Namespace) -> int:
    """CLI entry: send, print the reply (stdout) or the error (stderr), exit code."""
    from hipstride import topics
    from hipstride.mqtt import BrokerError

    try:
        topics.check_station(args.station)
    except ValueError as err:
        print(f"hipstride session: {err}", file=sys.stderr)
        return EXIT_CONFIG
    body = build_command(args)
    try:
        reply = send_command(args.broker, args.station, body, timeout_s=args.timeout)
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
