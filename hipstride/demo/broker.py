"""An MQTT broker inside this process (amqtt), for ``hipstride demo`` and nothing else.

The broker runs on its own asyncio loop in a daemon thread, bound to loopback only, and lets
in one account whose password is made fresh for every run (:mod:`.amqtt_ext`). It keeps the
QoS 1 sessions of clients that connect with ``clean_session = false`` (the edge agents and the
pipeline) for as long as it runs; nothing is persisted across runs — fine for the demo, whose
agents keep unsent frames in their own spools. Production uses Mosquitto with per-station
accounts and ACLs (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from typing import Any

log = logging.getLogger("hipstride.demo")


class BrokerStartError(RuntimeError):
    """The broker could not start; the message says why and what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


USERNAME = "demo"


def broker_config(host: str, port: int, password: str) -> dict[str, Any]:
    """amqtt settings: one TCP listener, one account, no $SYS topics, no packet logging."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "timeout_disconnect_delay": 0,
        "plugins": {"hipstride.demo.amqtt_ext.PasswordAuthPlugin":
                    {"username": USERNAME, "password": password}},
    }


class EmbeddedBroker:
    """``start()`` returns once the broker accepts connections; ``stop()`` shuts it down."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.username, self.password = USERNAME, secrets.token_urlsafe(18)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The URL the components connect with (the password goes in their environment)."""
        return f"mqtt://{self.username}@{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        try:
            import amqtt.broker  # noqa: F401 - fail early, with a clear message
        except ImportError:
            raise BrokerStartError("the demo's broker needs amqtt: pip install "
                                   "'hipstride[demo]'") from None
        for noisy in ("amqtt", "transitions"):  # their INFO is every packet and state change
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if port_in_use(self.port, self.host):
            raise BrokerStartError(f"port {self.port} on {self.host} is already in use: pick "
                                   "another with --mqtt-port, or leave it out to use a free "
                                   "one")
        self._thread = threading.Thread(target=self._run, name="demo-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise BrokerStartError(f"the broker did not start within {timeout_s:g} s")
        if self._error is not None:
            raise BrokerStartError(f"the broker could not start on {self.host}:{self.port}: "
                                   f"{self._error}")
        return self

    def _run(self) -> None:
        from .amqtt_ext import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def start() -> None:
            self._broker = Broker(broker_config(self.host, self.port, self.password),
                                  loop=loop)
            await self._broker.start()

        try:
            loop.run_until_complete(start())
        except BaseException as err:
            self._error = err
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if self._broker is not None:
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            try:
                future.result(timeout_s)
            except Exception as err:
                log.debug("broker shutdown: %s", err)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
