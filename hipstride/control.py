"""The client side of the control contract (docs/protocol.md, "Control"): build a command,
publish it (QoS 1), wait for the pipeline's reply carrying its ``request`` id.

:func:`build_command` is pure. :class:`ControlClient` keeps one connection and follows what
the pipeline says back for every station: the retained session state (``…/session``), the
latest calibration or prone-test result (``…/results``), and, to list stations and their EMG
channels, the edge's status and stream descriptions. :func:`send_command` is the one-shot
form ``hipstride session`` uses. Importing this module loads nothing heavy; paho comes with
the first connection.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hipstride import names

__all__ = ["ACTIONS", "COMMANDS", "CONTROL_VERSION", "PHASES", "SIDES", "ControlClient",
           "Received", "build_command", "send_command"]

CONTROL_VERSION = 1
COMMANDS = ("start", "stop", "mark", "calibrate")
PHASES = ("standing", "mvc", "prone")
ACTIONS = ("start", "stop")
SIDES = ("l", "r")
#: The fields each command may carry (``request`` and ``version`` are added by
#: :func:`build_command`).
FIELDS = {"start": ("athlete", "label", "notes", "session"), "stop": ("session",),
          "mark": ("label", "note"), "calibrate": ("phase", "action", "muscle", "side")}
#: The name rule (:mod:`hipstride.names`) of each free-form field.
FIELD_RULES = {"athlete": names.ATHLETE, "label": names.LABEL, "notes": names.NOTES,
               "note": names.NOTES, "session": names.SESSION, "muscle": names.CHANNEL}


def build_command(command: str, **fields: Any) -> dict[str, Any]:
    """The JSON body of a control command with a fresh ``request`` id; None values are left
    out. ValueError names a command or field the contract does not know;
    :class:`hipstride.names.BadName` (a ValueError) a name that breaks its rule (an athlete
    with a line break, say: docs/protocol.md, "Names")."""
    if command not in FIELDS:
        raise ValueError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    unknown = sorted(k for k, v in fields.items() if v is not None and k not in FIELDS[command])
    if unknown:
        raise ValueError(f"{command}: unknown field(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(FIELDS[command])}")
    if command == "calibrate":
        if fields.get("phase") not in PHASES:
            raise ValueError(f"calibrate: phase {fields.get('phase')!r}, expected one of "
                             f"{', '.join(PHASES)}")
        if fields.get("action", "start") not in ACTIONS:
            raise ValueError(f"calibrate: action {fields.get('action')!r}, expected start or "
                             "stop")
        if fields.get("side") not in (None, *SIDES):
            raise ValueError(f"calibrate: side {fields.get('side')!r}, expected 'l' or 'r'")
    body: dict[str, Any] = {"version": CONTROL_VERSION, "command": command,
                            "request": uuid.uuid4().hex}
    body.update({k: _checked(k, v) for k, v in fields.items() if v is not None})
    return body


def _checked(field: str, value: Any) -> Any:
    """A name field cleaned by its rule (:mod:`hipstride.names`, the rule the pipeline
    applies too); :class:`hipstride.names.BadName` names the rule it breaks."""
    rule = FIELD_RULES.get(field)
    return value if rule is None else names.check(rule, value)


@dataclass(frozen=True)
class Received:
    """A JSON message from a station's topic; ``seq`` orders arrivals (larger = later)."""

    seq: int
    body: Mapping[str, Any]
    arrived_s: float  # time.monotonic() at arrival


class ControlClient:
    """One broker connection for sending commands and reading what the stations report.

    Thread-safe: paho's network thread files each message under (kind, station); callers
    read the latest one, or wait for one newer than a ``seq`` they noted (a calibration
    result that arrives after the phase was stopped, say). Retained messages arrive on
    subscription, so a fresh client knows every station's state at once.
    """

    WATCHED = ("session", "results", "status", "streams")

    def __init__(self, broker_url: str | None = None, *, password: str | None = None,
                 name: str = "control", stations: Sequence[str] | None = None,
                 kinds: Sequence[str] = WATCHED) -> None:
        """``stations``: follow only these (None: every station, by wildcard); ``kinds``:
        which of their topics (a broker ACL may allow a user fewer)."""
        from hipstride.config import BrokerURL, env

        self.broker = BrokerURL.parse(broker_url or env("BROKER", "mqtt://localhost:1883"))
        self.password = password if password is not None else env("BROKER_PASSWORD")
        self.client_id = f"hipstride-{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stations_watched = tuple(stations) if stations is not None else None
        self.kinds = tuple(kinds)
        self._latest: dict[tuple[str, str], Received] = {}
        self._channels: dict[str, tuple[str, ...]] = {}  # station → EMG channel names
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._subscribed = threading.Event()
        self._client: Any = None
        self._connection: Any = None

    # connection -------------------------------------------------------------------------
    def open(self, timeout_s: float = 10.0) -> ControlClient:
        """Connect and subscribe; raises :class:`hipstride.mqtt.BrokerError` saying why not."""
        from hipstride import topics
        from hipstride.mqtt import BrokerUnreachable, Connection, make_client

        client = make_client(self.broker, self.client_id, clean_session=True,
                             password=self.password)
        who = self.stations_watched or (None,)
        filters = [(topics.subscription(k, s), 1) for k in self.kinds for s in who]
        client.on_message = self._on_message
        client.on_subscribe = lambda *_a: self._subscribed.set()
        connection = Connection(client, self.broker)
        connection.on_connect(lambda _sp: client.subscribe(filters))
        self._client, self._connection = client, connection
        connection.open(timeout_s=timeout_s)
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise BrokerUnreachable(f"the broker at {self.broker.redacted()} did not confirm "
                                    "the subscription to the stations' topics")
        return self

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ControlClient:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        from hipstride import topics

        try:
            where = topics.parse(msg.topic)
            body = json.loads(bytes(msg.payload)) if msg.payload else None
        except (ValueError, UnicodeDecodeError):
            return  # not ours or not JSON: the pipeline and the agent count those
        if not isinstance(body, dict):
            return
        with self._cond:
            if where.kind == topics.STREAMS:
                if body.get("kind") == "emg":
                    names = [c.get("name") for c in body.get("channels") or ()
                             if isinstance(c, dict)]
                    self._channels[where.station] = tuple(n for n in names if
                                                          isinstance(n, str))
                return
            self._latest[(where.kind, where.station)] = Received(
                next(self._seq), body, time.monotonic())
            self._cond.notify_all()

    # reading ----------------------------------------------------------------------------
    def latest(self, kind: str, station: str) -> Received | None:
        """The last ``session``, ``results`` or ``status`` message of a station, if any."""
        with self._cond:
            return self._latest.get((kind, station))

    def session_state(self, station: str) -> dict[str, Any] | None:
        got = self.latest("session", station)
        return dict(got.body) if got else None

    def stations(self) -> list[str]:
        """Every station heard of (status, session state or results), sorted."""
        with self._cond:
            return sorted({s for _, s in self._latest} | set(self._channels))

    def online(self, station: str) -> bool:
        got = self.latest("status", station)
        return bool(got and got.body.get("state") == "online")

    def emg_channels(self, station: str) -> tuple[str, ...]:
        """The EMG channel names of the station's stream description (empty if unknown)."""
        with self._cond:
            return self._channels.get(station, ())

    def mark(self) -> int:
        """The newest arrival so far: wait for something after it with :meth:`wait_for`."""
        with self._cond:
            return max((r.seq for r in self._latest.values()), default=0)

    def wait_for(self, kind: str, station: str, after: int,
                 accept: Callable[[Mapping[str, Any]], bool] = lambda _b: True, *,
                 timeout_s: float = 0.0) -> Received | None:
        """The station's latest ``kind`` message if it arrived after ``after`` and
        ``accept`` takes it; waits up to ``timeout_s`` for one (0: just look)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while True:
                got = self._latest.get((kind, station))
                if got is not None and got.seq > after and accept(got.body):
                    return got
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    # sending ----------------------------------------------------------------------------
    def send(self, station: str, body: Mapping[str, Any], *, timeout_s: float = 10.0
             ) -> dict[str, Any] | None:
        """Publish ``body`` on the station's control topic (QoS 1) and return the pipeline's
        session state that answers it (same ``request``), or None after ``timeout_s``.

        Raises :class:`hipstride.mqtt.BrokerUnreachable` if the broker did not take it."""
        from hipstride import topics
        from hipstride.mqtt import BrokerUnreachable

        if self._client is None:
            raise RuntimeError("ControlClient.open() first")
        request = body.get("request")
        if not request:
            raise ValueError("a command needs a 'request' id to recognise its reply: use "
                             "build_command()")
        info = self._client.publish(topics.control(station), json.dumps(body), qos=1)
        got = self.wait_for("session", station, 0,
                            lambda b: (b.get("result") or {}).get("request") == request,
                            timeout_s=timeout_s)
        if got is not None:
            return dict(got.body)
        if not info.is_published():
            raise BrokerUnreachable(f"the broker at {self.broker.redacted()} did not "
                                    f"acknowledge the command within {timeout_s:g} s")
        return None


def send_command(broker_url: str | None, station: str, body: Mapping[str, Any], *,
                 timeout_s: float = 10.0, password: str | None = None
                 ) -> dict[str, Any] | None:
    """Connect, send one command, return the pipeline's reply to it (None on timeout).

    Raises :class:`hipstride.mqtt.BrokerError` when the broker cannot be used."""
    from hipstride import topics

    topics.check_station(station)
    end = time.monotonic() + timeout_s
    client = ControlClient(broker_url, password=password, name="session",
                           stations=[station], kinds=("session",))
    client.open(timeout_s=timeout_s)
    try:
        return client.send(station, body, timeout_s=max(0.1, end - time.monotonic()))
    finally:
        client.close()
