"""The dashboard's MQTT adapter: one background paho client per dashboard process.

It subscribes to every station's live, cues, status, session, results and ingest topics and
hands each message to a :class:`~hipstride.dashboard.feed.Feed` (all the logic is there). The
pages never poll the store for live data: they read the feed, which this client keeps current.

The broker comes from ``HIPSTRIDE_BROKER`` (``hipstride dashboard --broker`` sets it) and its
password from ``HIPSTRIDE_BROKER_PASSWORD``, like every other HipStride command. A missing,
unreachable or refusing broker is never an exception on a page: :meth:`LiveClient.health` says
what is wrong in plain words while paho keeps retrying in the background.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass

import streamlit as st

from hipstride import topics
from hipstride.config import BrokerURL, ConfigError, env, read_secret
from hipstride.mqtt import BrokerError, BrokerRejected, Connection, make_client

from .feed import KINDS, Feed

__all__ = ["BROKER_ENV", "FeedHealth", "LiveClient", "broker_url", "live_client"]

BROKER_ENV = "HIPSTRIDE_BROKER"
CONNECT_TIMEOUT_S = 5.0
RETRY_REJECTED_S = 30.0  # a refused login is tried again this often (the password may change)


@dataclass(frozen=True)
class FeedHealth:
    """The live feed's connection in words: ``ok`` False means the page shows ``title``."""

    ok: bool
    title: str = ""
    hint: str = ""


def broker_url() -> str | None:
    """The broker URL from the environment (``HIPSTRIDE_BROKER``), or None."""
    return env("BROKER")


class LiveClient:
    """Connects in the background, (re)subscribes on every connect, feeds :attr:`feed`."""

    def __init__(self, url: str, password: str | None = None, *, feed: Feed | None = None
                 ) -> None:
        self.broker = BrokerURL.parse(url)
        self.password = password
        self.feed = feed or Feed()
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._problem: FeedHealth | None = None
        self._attempt_s = 0.0
        self._first_failed = False
        self.started_ns = time.time_ns()
        self._connect()

    def _connect(self) -> None:
        client = make_client(self.broker, f"hipstride-dashboard-{os.getpid()}-"
                                          f"{uuid.uuid4().hex[:8]}", password=self.password)
        connection = Connection(client, self.broker)
        connection.on_connect(lambda _present: self._subscribe(client))
        client.on_message = self._on_message
        self._connection = connection
        self._attempt_s = time.monotonic()
        self._first_failed = False
        threading.Thread(target=self._open, args=(connection,), name="hipstride-live-feed",
                         daemon=True).start()

    def _open(self, connection: Connection) -> None:
        try:
            if not connection.open(timeout_s=CONNECT_TIMEOUT_S, offline_ok=True):
                self._first_failed = True  # paho goes on trying in the background
        except BrokerRejected as err:
            with self._lock:
                self._problem = FeedHealth(False, "The broker refused the live feed's login.",
                                           f"{err}. Trying again every "
                                           f"{RETRY_REJECTED_S:.0f} s.")
        except BrokerError as err:  # pragma: no cover - open(offline_ok=True) only rejects
            with self._lock:
                self._problem = FeedHealth(False, "The live feed cannot start.", str(err))

    @staticmethod
    def _subscribe(client) -> None:
        client.subscribe([(topics.subscription(kind), 1) for kind in KINDS])

    def _on_message(self, _client, _userdata, message) -> None:
        self.feed.handle(message.topic, message.payload, time.time_ns())

    def health(self) -> FeedHealth:
        """Whether the feed is connected; if not, what is wrong and what to do."""
        connection = self._connection
        with self._lock:
            problem = self._problem
        if problem is not None:
            if time.monotonic() - self._attempt_s > RETRY_REJECTED_S:
                with self._lock:
                    self._problem = None
                self._connect()
            return problem
        if connection is not None and connection.connected.is_set():
            return FeedHealth(True)
        where = self.broker.redacted()
        if connection is not None and connection.refusal:
            return FeedHealth(False, "The broker refused the live feed's login.",
                              connection.refusal)
        if not self._first_failed and not (connection and connection.disconnects):
            return FeedHealth(False, f"Connecting to the live feed at {where} …",
                              "This takes a moment.")
        return FeedHealth(
            False, f"The live feed's broker at {where} cannot be reached.",
            "Is the MQTT broker running, and is `hipstride dashboard --broker` (or "
            f"{BROKER_ENV}) right? The dashboard keeps trying in the background; past "
            "sessions are on the **Review** page.")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@st.cache_resource(show_spinner=False)
def _shared_client(url: str, password: str | None) -> LiveClient:
    return LiveClient(url, password)


def live_client() -> tuple[LiveClient | None, FeedHealth]:
    """This process's live client (created on first use) and its health; ``None`` with the
    reason when no usable broker is configured."""
    url = broker_url()
    if not url:
        return None, FeedHealth(
            False, "No live feed is configured.",
            "Start the dashboard with `hipstride dashboard --broker mqtt://HOST:1883` (or set "
            f"{BROKER_ENV}; the password in HIPSTRIDE_BROKER_PASSWORD).")
    try:
        BrokerURL.parse(url)
        password = read_secret("BROKER_PASSWORD", None, "broker")
    except ConfigError as err:
        return None, FeedHealth(False, "The live feed's broker address is not valid.", str(err))
    client = _shared_client(url, password)
    return client, client.health()


def live_client_or_warning() -> LiveClient | None:
    """The live client for a page, after showing the feed's problem if it has one; ``None``
    (nothing more to draw) when there is no usable broker."""
    client, health = live_client()
    if client is None or not health.ok:
        st.warning(f"**{health.title}** {health.hint}", icon=":material/link_off:")
    return client
