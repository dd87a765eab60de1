"""One way to build and connect a paho-mqtt client, for every HipStride component.

paho-mqtt 2.x with VERSION2 callbacks. The first connection is made synchronously so that a
wrong address or a rejected password is reported at once with a message that says what to
do; after that paho's network thread reconnects on its own with exponential backoff.
Callbacks registered by callers must never block: they hand work to queues.

:class:`Connection` logs every lost connection, every refused reconnect and every
reconnect, with the reason, the client id and how long the client was away — for every
component at once (pipeline, edge agent, dashboard, CLI tools). A connection the broker
closed because another client connected with the same client id (a session takeover) looks
like any dropped connection from here; the broker's log says "already connected, closing old
connection" (docs/deployment.md, "Client ids and accounts").
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipstride.config import BrokerURL

log = logging.getLogger("hipstride.mqtt")

class BrokerError(RuntimeError):
    """The broker cannot be used; ``exit_code`` tells the CLI how to exit."""

    exit_code = 1


class BrokerUnreachable(BrokerError):
    exit_code = 4


class BrokerRejected(BrokerError):
    exit_code = 3


@dataclass(frozen=True)
class TLSFiles:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip host-name checks (self-signed lab setups only)


def make_client(broker: BrokerURL, client_id: str, *, clean_session: bool = True,
                password: str | None = None, tls: TLSFiles | None = None,
                reconnect_max_s: float = 30.0, manual_ack: bool = False) -> mqtt.Client:
    """A configured but unconnected client (MQTT 3.1.1).

    ``clean_session=False`` keeps the broker session — subscriptions and queued QoS 1
    messages — across disconnects, which is what at-least-once delivery needs.
    ``manual_ack=True``: received QoS 1 messages are acknowledged only by ``client.ack``
    (the consumer acknowledges once it has kept them).
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session, protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, password or broker.password)
    if broker.tls:
        tls = tls or TLSFiles()
        client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(tls.insecure)
    client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max_s)))
    if manual_ack:
        client.manual_ack_set(True)
    return client


def explain_connack(reason: object, broker: BrokerURL) -> str:
    """A CONNACK refusal in words a user can act on."""
    text = str(reason)
    lowered = text.lower()
    if "password" in lowered or "not authori" in lowered or "bad user" in lowered:
        return (f"broker {broker.redacted()} rejected the credentials ({text}): check the user "
                "name in the URL and the password (HIPSTRIDE_BROKER_PASSWORD or "
                "[broker] password_file)")
    if "identifier" in lowered:
        return f"broker {broker.redacted()} rejected the client id ({text})"
    return f"broker {broker.redacted()} refused the connection ({text})"


def client_id_of(client: mqtt.Client) -> str:
    raw = getattr(client, "_client_id", b"")
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def disconnect_reason(reason_code: object) -> str:
    """A DISCONNECT/connection-lost reason in words, with the usual causes when unknown."""
    text = str(reason_code)
    if text in ("Unspecified error", "Unspecified", "128"):
        return ("connection lost (the broker closed it or the network dropped: a broker "
                "restart, a network outage, or another client connecting with the same client "
                "id, which the broker's log shows as 'already connected')")
    if text == "Keep alive timeout":
        return "no answer from the broker within the keep-alive time (network or broker stalled)"
    return text


class Connection:
    """Tracks a client's connection state from its callbacks, without blocking them, and
    logs each disconnect and reconnect with its reason (to ``logger``, default
    ``hipstride.mqtt``)."""

    def __init__(self, client: mqtt.Client, broker: BrokerURL, *,
                 logger: logging.Logger | None = None) -> None:
        self.client = client
        self.broker = broker
        self.log = logger or log
        self.client_id = client_id_of(client)
        self._opened = False  # open() returned: later refusals are logged, not raised
        self._closing = False
        self._lost_at: float | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()  # first CONNACK (good or bad) seen
        self.refusal: str | None = None
        self.connects = 0
        self.disconnects = 0
        self.last_disconnect_reason = ""
        self._user_on_connect = None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect

    def on_connect(self, callback) -> None:
        """Also call ``callback(session_present: bool)`` on every successful connect."""
        self._user_on_connect = callback

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refusal = explain_connack(reason_code, self.broker)
            if self._opened:
                self.log.warning("MQTT client %s: reconnect refused: %s; retrying",
                                 self.client_id, self.refusal)
        else:
            self.refusal = None
            self.connects += 1
            self.connected.set()
            if self._lost_at is not None:
                away = time.monotonic() - self._lost_at
                self._lost_at = None
                self.log.warning("MQTT client %s: reconnected to %s after %.1f s (session "
                                 "present: %s)", self.client_id, self.broker.redacted(), away,
                                 "yes" if flags.session_present else "no")
            if self._user_on_connect is not None:
                self._user_on_connect(bool(flags.session_present))
        self.answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.disconnects += 1
        self.last_disconnect_reason = str(reason_code)
        if self._closing:
            self.log.info("MQTT client %s: closed its connection to %s", self.client_id,
                          self.broker.redacted())
        elif was_connected:
            self._lost_at = time.monotonic()
            self.log.warning("MQTT client %s: lost the connection to %s: %s; reconnecting in "
                             "the background", self.client_id, self.broker.redacted(),
                             disconnect_reason(reason_code))

    def open(self, *, keepalive_s: int = 15, timeout_s: float = 10.0,
             offline_ok: bool = False) -> bool:
        """Connect and start the network thread; returns whether the broker answered yes.

        Raises :class:`BrokerUnreachable` or :class:`BrokerRejected` with a message that says
        what to check — unless ``offline_ok``, where an unreachable broker only means the
        network thread keeps trying in the background.
        """
        where = self.broker.redacted()
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=keepalive_s)
        except (OSError, ssl.SSLError) as err:
            if not offline_ok:
                reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
                raise BrokerUnreachable(
                    f"cannot reach the MQTT broker at {where} ({reason}): is the broker running "
                    "and is --broker right? (use --offline-ok to start anyway and send later)"
                ) from None
            self.client.connect_async(self.broker.host, self.broker.port, keepalive=keepalive_s)
            self.client.loop_start()
            self._opened = True
            return False
        self.client.loop_start()
        if not self.answered.wait(timeout_s):
            if offline_ok:
                self._opened = True
                return False
            self.close()
            raise BrokerUnreachable(f"the MQTT broker at {where} did not answer within "
                                    f"{timeout_s:g} s")
        if self.refusal is not None:
            self.close()
            raise BrokerRejected(self.refusal)
        self._opened = True
        return True

    def close(self) -> None:
        self._closing = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
