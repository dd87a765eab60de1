"""One pipeline process per partition, enforced through a retained claim on the broker.

Two processes started with the same ``--partition`` would share one persistent broker session
(the client id is fixed per partition): each connection takes the session over from the other
and each receives part of the partition's messages. So:

- **Before** its persistent session connects, a pipeline reads the partition's retained claim
  (:func:`hipstride.topics.pipeline_claim`) on a short clean-session connection
  (:func:`ensure_free`). A claim ``running`` whose holder is alive — a heartbeat of it arrives
  within :data:`CLAIM_WAIT_S` — means another process runs this partition: it refuses to start
  (:class:`PartitionTaken`, exit 2) without ever touching the persistent session. A claim
  ``released`` (a clean stop, or the last will the broker publishes for a process that died),
  no claim, or a ``running`` claim without heartbeat (its holder died while the broker was
  down) lets it start.
- **Running**, it publishes its claim (retained) on every connect and every
  :data:`HEARTBEAT_S`, with ``released`` as its last will, and follows the claim topic
  (:class:`Claim`): another process's claim (two started at the same moment, or a process
  that cannot reach this broker's claim) is reported at once, CRITICAL, and the process that
  started later stops with exit 2 while the other restates its claim.

Nothing is lost either way: the pipeline acknowledges a message only once it is stored, so
whatever a refused or stopped process received and did not store is delivered again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hipstride import topics
from hipstride.mqtt import BrokerError, Connection, TLSFiles, make_client

from .config import PipelineConfig

__all__ = ["CLAIM_WAIT_S", "HEARTBEAT_S", "Claim", "ClaimBody", "PartitionTaken",
           "ensure_free"]

log = logging.getLogger("hipstride.pipeline")
CLAIM_VERSION = 1
#: A running pipeline restates its claim this often (s).
HEARTBEAT_S = 2.0
#: How long a starting pipeline waits for a heartbeat of a ``running`` claim (s).
CLAIM_WAIT_S = 2.5 * HEARTBEAT_S
#: After the SUBACK, how long the retained claim may take to arrive (s).
RETAINED_GRACE_S = 0.5


class PartitionTaken(BrokerError):
    """Another live process runs this partition: a configuration problem (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class ClaimBody:
    """The claim message (JSON): who holds the partition, since when, alive when."""

    state: str  # "running" or "released"
    instance: str
    partition: str
    since_ns: int
    time_ns: int
    host: str = ""
    pid: int = 0

    def to_json(self) -> bytes:
        return json.dumps({"version": CLAIM_VERSION, "state": self.state,
                           "instance": self.instance, "partition": self.partition,
                           "since_ns": self.since_ns, "time_ns": self.time_ns,
                           "host": self.host, "pid": self.pid}).encode()

    @classmethod
    def parse(cls, payload: bytes) -> ClaimBody | None:
        """The claim, or None for anything unreadable (then it claims nothing)."""
        try:
            body = json.loads(payload)
            return cls(str(body["state"]), str(body["instance"]), str(body["partition"]),
                       int(body["since_ns"]), int(body["time_ns"]), str(body.get("host", "")),
                       int(body.get("pid", 0)))
        except (ValueError, KeyError, TypeError):
            return None

    def who(self) -> str:
        return f"pid {self.pid} on host {self.host or '?'} (instance {self.instance[:8]})"


def yields_to(own: ClaimBody, other: ClaimBody) -> bool:
    """Whether ``own`` gives the partition up to ``other``: the later-started one yields
    (ties broken by instance id, so exactly one of two yields)."""
    return (own.since_ns, own.instance) > (other.since_ns, other.instance)


def taken_message(partition: str, holder: ClaimBody) -> str:
    return (f"partition {partition} is already run by another pipeline ({holder.who()}, "
            f"heartbeat seen just now): two processes with the same --partition would split "
            f"its messages. Stop the other one, or start this one with another partition "
            f"(e.g. --partition I/N with a different I, the same N for every process)")


class Claim:
    """This process's claim: the will and heartbeats it publishes, the conflicts it sees.

    :meth:`on_message` runs on paho's network thread and only records; the main thread asks
    :meth:`conflict` and calls :meth:`tick`.
    """

    def __init__(self, config: PipelineConfig) -> None:
        p = config.partition
        self.topic = topics.pipeline_claim(p.index, p.count)
        self.partition = str(p)
        self.instance = uuid.uuid4().hex
        self.since_ns = time.time_ns()
        self._next = 0.0
        self._lock = threading.Lock()
        self._conflict: ClaimBody | None = None

    def body(self, state: str = "running") -> ClaimBody:
        return ClaimBody(state, self.instance, self.partition, self.since_ns, time.time_ns(),
                         socket.gethostname(), os.getpid())

    def arm(self, client: Any) -> None:
        """Set the last will (before connecting): ``released`` if we vanish."""
        client.will_set(self.topic, self.body("released").to_json(), qos=1, retain=True)

    def on_connect(self, client: Any) -> None:
        client.subscribe(self.topic, qos=0)  # QoS 0: nothing to acknowledge by hand
        self.publish(client)

    def publish(self, client: Any, state: str = "running") -> Any:
        """Publish the claim (retained); returns paho's MQTTMessageInfo."""
        self._next = time.monotonic() + HEARTBEAT_S
        return client.publish(self.topic, self.body(state).to_json(), qos=1, retain=True)

    def release(self, client: Any, connected: bool, timeout_s: float = 2.0) -> None:
        """On a clean stop: ``released``, so the next process starts without waiting."""
        if not connected:
            return  # the broker publishes our will instead
        # the connection may go meanwhile (RuntimeError/ValueError): then the will stands
        with contextlib.suppress(RuntimeError, ValueError):
            self.publish(client, "released").wait_for_publish(timeout_s)

    def tick(self, client: Any) -> None:
        if time.monotonic() >= self._next:
            self.publish(client)

    def on_message(self, payload: bytes, retained: bool = False) -> None:
        """A claim on our topic. A retained one (sent on subscribing) is stale — the start-up
        check saw no heartbeat of it — or our own: a live rival's heartbeats come unretained."""
        if retained:
            return
        other = ClaimBody.parse(payload)
        if other is None or other.instance == self.instance or other.state != "running":
            return
        with self._lock:
            self._conflict = other

    def conflict(self) -> ClaimBody | None:
        """Another process's claim seen since the last call (then forgotten)."""
        with self._lock:
            other, self._conflict = self._conflict, None
        return other


def ensure_free(config: PipelineConfig, *, wait_s: float = CLAIM_WAIT_S) -> None:
    """Raise :class:`PartitionTaken` if a live process holds this partition (module doc);
    broker problems raise :class:`hipstride.mqtt.BrokerError` as for the main connection."""
    p = config.partition
    topic = topics.pipeline_claim(p.index, p.count)
    client = make_client(config.broker, f"hipstride-pipeline-probe-{p.index}-of-{p.count}-"
                         f"{uuid.uuid4().hex[:8]}", clean_session=True,
                         password=config.broker_password,
                         tls=TLSFiles(config.ca_file, config.cert_file, config.key_file,
                                      config.tls_insecure))
    subscribed = threading.Event()
    retained: list[ClaimBody | None] = []
    live = threading.Event()
    holder: list[ClaimBody] = []

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        body = ClaimBody.parse(msg.payload)
        if msg.retain:
            retained.append(body)
        elif body is not None and body.state == "running":
            holder.append(body)
            live.set()

    def on_subscribe(_c: Any, _u: Any, _mid: Any, reason_codes: Any, _p: Any) -> None:
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.warning("the broker refused the subscription to %s: this pipeline cannot see "
                        "whether another process runs partition %s. Give the pipeline account "
                        "`topic readwrite %s` (in the deployment: run `hipstride admin init` "
                        "again and reload the broker)", topic, p, topics.pipeline_claims())
        subscribed.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    connection = Connection(client, config.broker)
    connection.on_connect(lambda _sp: client.subscribe(topic, qos=0))
    connection.open(keepalive_s=config.keepalive_s, timeout_s=config.connect_timeout_s)
    try:
        if not subscribed.wait(config.connect_timeout_s):
            raise BrokerError(f"the broker at {config.broker.redacted()} did not confirm the "
                              f"subscription to {topic}: does the pipeline account have "
                              f"`topic readwrite {topics.pipeline_claims()}` in the ACL?")
        end = time.monotonic() + RETAINED_GRACE_S
        while not retained and not live.is_set() and time.monotonic() < end:
            time.sleep(0.02)
        claim = retained[0] if retained else None
        if live.is_set():
            raise PartitionTaken(taken_message(str(p), holder[0]))
        if claim is None or claim.state != "running":
            return
        # a running claim: is its holder alive? It restates the claim every HEARTBEAT_S
        if live.wait(wait_s):
            raise PartitionTaken(taken_message(str(p), holder[0]))
    finally:
        connection.close()
